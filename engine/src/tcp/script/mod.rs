//! Conformance scripts: a small packetdrill-style text format, its parser
//! ([`parse`]) and a runner ([`run`]) that replays a script against anything
//! implementing [`ScriptEndpoint`], in virtual time.
//!
//! A script is a conversation between the endpoint under test ("us", the
//! TCP) and a peer played by the script: segments the peer sends (`<`),
//! segments we must send (`>`), and application or timer commands.
//!
//! ```text
//! // passive open, then one data segment each way
//! local  198.18.0.2:80
//! remote 198.18.0.1:40000
//! tolerance 0.004
//!
//! 0     listen 80
//! +0    < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
//! +0.01 > S. 0:0(0) ack 1 win * <mss 1460,sackOK,TS val * ecr 100,nop,wscale 7>
//! +0    < . 1:1(0) ack 1 win 65535
//! +0    < P. 1:6(5) ack 1 win 65535 "hello"
//! *     > . 1:1(0) ack 6 win * <...>
//! +0    expect state ESTABLISHED
//! ```
//!
//! # Lines
//!
//! One line is one event or one directive. `//` and `#` start a comment that
//! runs to the end of the line (outside a quoted string); blank lines are
//! ignored. Tokens are separated by white space; `<`, `>`, `,` and quoted
//! strings stand on their own. A line that starts with a time is an event,
//! any other line a directive.
//!
//! # Times
//!
//! Every event line starts with its time, in seconds with up to nine
//! decimal places (integer nanoseconds internally, no floating point):
//!
//! | form | meaning |
//! |---|---|
//! | `0.250` | absolute: 250 ms after the script's start |
//! | `+0.1` | relative: 100 ms after the previous event |
//! | `*` | any time: an expected segment may come whenever (up to [`ANY_TIME_HORIZON`] after the previous event); other events happen at the current virtual time |
//! | `+0~+0.2`, `0.1~0.3` | a range (only on `>` lines): the segment must come no earlier than the first time and no later than the second, each resolved like a plain time |
//! | `~+0.2` | a range starting at the previous event: "no later than 200 ms after it" |
//!
//! "The previous event" is the time the previous event line was scheduled
//! at; after a `*` or range line it is the time the segment actually came.
//! An expected segment with an exact time may come up to the tolerance
//! (directive `tolerance`, default [`DEFAULT_TOLERANCE`]) before or after
//! it; ranges are widened by the tolerance too. Injected segments and
//! commands happen exactly at their time. Virtual time never goes back: an
//! injection or command scheduled earlier than the current time by more
//! than the tolerance is an error.
//!
//! # Segments
//!
//! ```text
//! <time> < FLAGS SEQ [ack N] [win N] [<OPTIONS>] ["payload"]   inject: the peer sends this
//! <time> > FLAGS SEQ [ack N] [win N] [<OPTIONS>] ["payload"]   expect: we must send exactly this
//! ```
//!
//! - FLAGS: one or more of `F` FIN, `S` SYN, `R` RST, `P` PSH, `.` ACK, `U`
//!   URG, `E` ECE, `W` CWR, in any order, each at most once; `-` alone for
//!   no flag at all. `ack N` implies ACK, so `S 0:0(0) ack 1` is a SYN-ACK.
//!   Rendered in the order `FSRP.UEW`.
//! - SEQ: `start:end(len)` as in packetdrill: `end - start` (modulo 2^32)
//!   must equal `len`, the payload length (SYN and FIN are not counted).
//! - `ack N`, `win N` (the raw 16-bit window field). An injected segment
//!   without `win` carries 65535; an injected `.` needs `ack N`.
//! - OPTIONS, comma-separated, in wire order: `mss N`, `wscale N`, `sackOK`,
//!   `sack A:B C:D ...` (one to four blocks), `TS val N ecr N`, `nop`, `eol`.
//!   Injected options are laid out exactly as written (at most 40 bytes) and
//!   padded to a multiple of four with zero bytes (end of list); expected
//!   options must match the segment's option list exactly, `nop` and `eol`
//!   included. No `<...>` at all means no options.
//! - payload: `(len)` alone fills an injected payload with a deterministic
//!   pattern ([`pattern`]: the byte at relative sequence number `s` is
//!   `b'a' + s % 26`); a quoted string (`"hello"`, escapes `\\ \" \n \r \t
//!   \0 \xNN`) gives the bytes, and its length must equal `len`. An expected
//!   payload is compared byte for byte only when a string is given.
//!
//! Wildcards, in expected (`>`) segments only: `*` for SEQ (any sequence
//! number and any length), `ack *`, `win *`, `mss *`, `wscale *`, `sack *`,
//! `TS val * ecr N` (either field), and `<...>` for "any options". An
//! expected segment without `win` means `win *`. Everything else must match
//! exactly, ports included (`local` port to `remote` port).
//!
//! # Sequence numbers
//!
//! Relative, as in packetdrill. The peer's sequence numbers (SEQ of `<`,
//! ACK and SACK blocks of `>`) are offsets from the peer's ISN, which is the
//! `peer_isn` directive (default [`DEFAULT_PEER_ISN`]): `< S 0:0(0)` sends
//! that ISN. Our sequence numbers (SEQ of `>`, ACK and SACK blocks of `<`)
//! are offsets from our ISN, learned from the first SYN we send that a `>`
//! line matches: `> S 0:0(0)` seeing sequence number 123456 makes 123456
//! our zero. Before that, our numbers are taken as absolute. `seq absolute`
//! turns both offsets off. Timestamp values are never remapped.
//!
//! # Commands
//!
//! `<time> WORD ARGS...`: any other event is a command, handed to the
//! endpoint as a [`Command`] (its name and its arguments as strings; quoted
//! arguments may hold spaces). The endpoint decides which commands exist:
//! `connect`, `listen 8080`, `accept`, `write 1000`, `read 500`, `close`,
//! `shutdown`, `abort`, `expect event connected`, `expect state
//! ESTABLISHED`, ... An endpoint error, an unknown command included, fails
//! the script at that line.
//!
//! # Directives
//!
//! | directive | meaning |
//! |---|---|
//! | `tolerance 0.01` | timing tolerance in seconds for the following `>` lines |
//! | `local 198.18.0.2:80` | our address and port (default [`DEFAULT_LOCAL`]) |
//! | `remote 198.18.0.1:40000` | the peer's address and port (default [`DEFAULT_REMOTE`]) |
//! | `mss 1460` | an MSS for the endpoint to configure itself with ([`ScriptConfig::mss`]) |
//! | `peer_isn 4294967000` | the peer's ISN (absolute) |
//! | `seq absolute` / `seq relative` | sequence-number mode (default relative) |
//!
//! All but `tolerance` must come before the first event: they are handed to
//! the endpoint in [`ScriptConfig`] before anything runs.
//!
//! # Errors
//!
//! Every parse error names the file, line and column and says what was
//! expected and what was found ([`ParseError`]). Run errors name the file
//! and line and, for segments, render the expected and the actual segment in
//! this syntax with the differing fields named ([`RunError`]).
//!
//! Nothing here panics on any script text or any bytes an endpoint sends;
//! `unsafe` is forbidden (see [`crate::tcp`]).

use core::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::time::Duration;
use crate::wire::TcpFlags;

pub mod parse;
pub mod run;

pub use parse::{parse, parse_named, ParseError};
pub use run::{
    run_dir, run_file, run_parsed, run_script, run_script_named, DirReport, Report, RunError,
    ScriptEndpoint, ScriptError,
};

/// Timing tolerance before any `tolerance` directive (packetdrill's default).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_millis(4);
/// The peer's ISN before any `peer_isn` directive.
pub const DEFAULT_PEER_ISN: u32 = 0x1000_0000;
/// Our address and port before any `local` directive.
pub const DEFAULT_LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
/// The peer's address and port before any `remote` directive.
pub const DEFAULT_REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 40000);
/// How long after the previous event a `*` expected segment is waited for.
pub const ANY_TIME_HORIZON: Duration = Duration::from_secs(600);

/// The byte at relative sequence number `seq` of a pattern-filled payload.
pub fn pattern_byte(seq: u32) -> u8 {
    b'a' + (seq % 26) as u8
}

/// A pattern-filled payload of `len` bytes starting at relative sequence
/// number `start`.
pub fn pattern(start: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| pattern_byte(start.wrapping_add(i as u32)))
        .collect()
}

/// Settings from the directives before the first event; handed to
/// [`ScriptEndpoint::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptConfig {
    /// Our address and port.
    pub local: SocketAddrV4,
    /// The peer's address and port.
    pub remote: SocketAddrV4,
    /// The `mss` directive, for the endpoint to use as it sees fit.
    pub mss: Option<u16>,
    /// The peer's ISN.
    pub peer_isn: u32,
    /// Whether sequence numbers are relative to the ISNs.
    pub relative: bool,
}

impl Default for ScriptConfig {
    fn default() -> Self {
        ScriptConfig {
            local: DEFAULT_LOCAL,
            remote: DEFAULT_REMOTE,
            mss: None,
            peer_isn: DEFAULT_PEER_ISN,
            relative: true,
        }
    }
}

/// A parsed script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The file name used in messages.
    pub file: String,
    /// The directives before the first event, folded.
    pub config: ScriptConfig,
    /// Every non-blank line, in order.
    pub lines: Vec<Line>,
}

/// One line of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the file.
    pub number: usize,
    /// What the line says.
    pub kind: LineKind,
}

/// A directive or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// A setting.
    Directive(Directive),
    /// Something that happens at a time.
    Event {
        /// When.
        time: TimeSpec,
        /// What.
        action: Action,
    },
}

/// A directive line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// `tolerance SECS`.
    Tolerance(Duration),
    /// `mss N`.
    Mss(u16),
    /// `local ADDR:PORT`.
    Local(SocketAddrV4),
    /// `remote ADDR:PORT`.
    Remote(SocketAddrV4),
    /// `peer_isn N`.
    PeerIsn(u32),
    /// `seq relative` (true) or `seq absolute` (false).
    Relative(bool),
}

/// A point in script time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    /// Nanoseconds after the script's start.
    Absolute(u64),
    /// Nanoseconds after the previous event.
    Relative(u64),
}

/// When an event happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// `*`.
    Any,
    /// One time.
    At(Time),
    /// `A~B`: no earlier than A, no later than B.
    Range(Time, Time),
}

/// What an event line does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `<`: the peer sends this segment to us.
    Inject(Segment),
    /// `>`: we must send this segment.
    Expect(Segment),
    /// Anything else, for the endpoint.
    Command(Command),
}

/// A value or a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<T> {
    /// `*`: anything.
    Any,
    /// Exactly this.
    Is(T),
}

impl<T: PartialEq> Field<T> {
    /// Whether `actual` is allowed.
    pub fn matches(&self, actual: &T) -> bool {
        match self {
            Field::Any => true,
            Field::Is(v) => v == actual,
        }
    }
}

impl<T: fmt::Display> fmt::Display for Field<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Any => f.write_str("*"),
            Field::Is(v) => v.fmt(f),
        }
    }
}

/// `start:end(len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    /// First sequence number.
    pub start: u32,
    /// Payload length; the end is `start + len` modulo 2^32.
    pub len: u32,
}

impl fmt::Display for SeqRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}({})",
            self.start,
            self.start.wrapping_add(self.len),
            self.len
        )
    }
}

/// One option in a segment's option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptSpec {
    /// `mss N`.
    Mss(Field<u16>),
    /// `wscale N`.
    WindowScale(Field<u8>),
    /// `sackOK`.
    SackPermitted,
    /// `sack A:B ...`.
    Sack(Field<Vec<(u32, u32)>>),
    /// `TS val N ecr N`.
    Timestamp {
        /// TSval.
        val: Field<u32>,
        /// TSecr.
        ecr: Field<u32>,
    },
    /// `nop`.
    Nop,
    /// `eol`.
    Eol,
    /// An option of another kind: only seen in segments the endpoint sent,
    /// rendered for messages; scripts cannot write it.
    Unknown {
        /// The kind byte.
        kind: u8,
        /// The bytes after the length byte.
        data: Vec<u8>,
    },
}

impl OptSpec {
    /// Whether `actual` (an option with no wildcard) is allowed.
    pub fn matches(&self, actual: &OptSpec) -> bool {
        match (self, actual) {
            (OptSpec::Mss(e), OptSpec::Mss(Field::Is(a))) => e.matches(a),
            (OptSpec::WindowScale(e), OptSpec::WindowScale(Field::Is(a))) => e.matches(a),
            (OptSpec::Sack(e), OptSpec::Sack(Field::Is(a))) => e.matches(a),
            (
                OptSpec::Timestamp { val, ecr },
                OptSpec::Timestamp {
                    val: Field::Is(v),
                    ecr: Field::Is(c),
                },
            ) => val.matches(v) && ecr.matches(c),
            (e, a) => e == a,
        }
    }
}

impl fmt::Display for OptSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptSpec::Mss(v) => write!(f, "mss {v}"),
            OptSpec::WindowScale(v) => write!(f, "wscale {v}"),
            OptSpec::SackPermitted => f.write_str("sackOK"),
            OptSpec::Sack(Field::Any) => f.write_str("sack *"),
            OptSpec::Sack(Field::Is(blocks)) => {
                f.write_str("sack")?;
                for (l, r) in blocks {
                    write!(f, " {l}:{r}")?;
                }
                Ok(())
            }
            OptSpec::Timestamp { val, ecr } => write!(f, "TS val {val} ecr {ecr}"),
            OptSpec::Nop => f.write_str("nop"),
            OptSpec::Eol => f.write_str("eol"),
            OptSpec::Unknown { kind, data } => {
                write!(f, "unknown-kind-{kind}[")?;
                for b in data {
                    write!(f, "{b:02x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A segment's option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Options {
    /// `<...>`: any options, or none.
    Any,
    /// Exactly these, in this order (empty: no options, no `<>` written).
    List(Vec<OptSpec>),
}

/// A segment as a script line writes it (numbers relative, see the module
/// docs). Invariant kept by the parser: `flags` holds ACK exactly when
/// `ack` is `Some`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Control bits.
    pub flags: TcpFlags,
    /// Sequence range.
    pub seq: Field<SeqRange>,
    /// Acknowledgment number, when ACK is set.
    pub ack: Option<Field<u32>>,
    /// Window field.
    pub win: Field<u16>,
    /// Options.
    pub options: Options,
    /// The payload bytes when given as a string.
    pub payload: Option<Vec<u8>>,
}

/// Flag letters in rendering order.
pub(crate) const FLAG_CHARS: [(char, TcpFlags); 8] = [
    ('F', TcpFlags::FIN),
    ('S', TcpFlags::SYN),
    ('R', TcpFlags::RST),
    ('P', TcpFlags::PSH),
    ('.', TcpFlags::ACK),
    ('U', TcpFlags::URG),
    ('E', TcpFlags::ECE),
    ('W', TcpFlags::CWR),
];

/// Renders flags as a script writes them (`S.`, `-` for none).
pub fn render_flags(flags: TcpFlags) -> String {
    let s: String = FLAG_CHARS
        .iter()
        .filter(|(_, fl)| flags.contains(*fl))
        .map(|(c, _)| *c)
        .collect();
    if s.is_empty() {
        "-".to_string()
    } else {
        s
    }
}

/// Renders bytes as a quoted script string.
pub fn render_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0 => s.push_str("\\0"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", render_flags(self.flags), self.seq)?;
        if let Some(ack) = &self.ack {
            write!(f, " ack {ack}")?;
        }
        write!(f, " win {}", self.win)?;
        match &self.options {
            Options::Any => f.write_str(" <...>")?,
            Options::List(list) if list.is_empty() => {}
            Options::List(list) => {
                f.write_str(" <")?;
                for (i, o) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    o.fmt(f)?;
                }
                f.write_str(">")?;
            }
        }
        if let Some(p) = &self.payload {
            write!(f, " {}", render_bytes(p))?;
        }
        Ok(())
    }
}

/// An application or timer command, passed to the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The first word (`connect`, `write`, `expect`, ...).
    pub name: String,
    /// The following words; quoted strings unquoted.
    pub args: Vec<String>,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for a in &self.args {
            let plain = !a.is_empty()
                && a.chars().all(|c| {
                    !c.is_whitespace() && !matches!(c, '<' | '>' | ',' | '"' | '#' | '\\')
                })
                && !a.contains("//");
            if plain {
                write!(f, " {a}")?;
            } else {
                write!(f, " {}", render_bytes(a.as_bytes()))?;
            }
        }
        Ok(())
    }
}

/// Renders nanoseconds as seconds with no trailing zeros (`0`, `0.25`).
pub fn render_secs(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    if frac == 0 {
        return secs.to_string();
    }
    let digits = format!("{frac:09}");
    format!("{secs}.{}", digits.trim_end_matches('0'))
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Time::Absolute(ns) => f.write_str(&render_secs(*ns)),
            Time::Relative(ns) => write!(f, "+{}", render_secs(*ns)),
        }
    }
}

impl fmt::Display for TimeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeSpec::Any => f.write_str("*"),
            TimeSpec::At(t) => t.fmt(f),
            TimeSpec::Range(a, b) => write!(f, "{a}~{b}"),
        }
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Directive::Tolerance(d) => {
                let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                write!(f, "tolerance {}", render_secs(ns))
            }
            Directive::Mss(m) => write!(f, "mss {m}"),
            Directive::Local(a) => write!(f, "local {a}"),
            Directive::Remote(a) => write!(f, "remote {a}"),
            Directive::PeerIsn(n) => write!(f, "peer_isn {n}"),
            Directive::Relative(true) => f.write_str("seq relative"),
            Directive::Relative(false) => f.write_str("seq absolute"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Inject(s) => write!(f, "< {s}"),
            Action::Expect(s) => write!(f, "> {s}"),
            Action::Command(c) => c.fmt(f),
        }
    }
}

impl fmt::Display for LineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineKind::Directive(d) => d.fmt(f),
            LineKind::Event { time, action } => write!(f, "{time} {action}"),
        }
    }
}

impl fmt::Display for Line {
    /// The line in normalised form (no comment, single spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}
