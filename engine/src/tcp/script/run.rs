//! The script runner: replays a [`Script`] against a [`ScriptEndpoint`] in
//! virtual time.
//!
//! # What the runner does with each line
//!
//! Time starts at [`Instant::ZERO`] (script time 0) and only moves forward.
//! Moving it to a target `T` means: collect whatever the endpoint transmits
//! now, then repeatedly jump to the endpoint's next timer deadline if it is
//! at or before `T`, call [`handle_timeout`](ScriptEndpoint::handle_timeout)
//! there and collect again; finally stand at `T` and collect once more. So
//! timers fire at their exact deadlines, and every transmitted segment is
//! stamped with the virtual time it came out.
//!
//! - Injection (`<`) and command lines: move to the line's time; if any
//!   collected segment is still unmatched, fail ("unexpected segment");
//!   otherwise build the segment (real bytes, checksummed for the configured
//!   addresses, parsed back with [`TcpRepr::parse`]) and
//!   [`inject`](ScriptEndpoint::inject) it, or run the
//!   [`command`](ScriptEndpoint::command); then collect.
//! - Expected segments (`>`): take the oldest collected segment; if there is
//!   none, move time forward one timer at a time, up to the latest time the
//!   line allows, until the endpoint transmits. Fail if nothing came, if
//!   any field differs (the message names the fields and renders both
//!   segments), or if it came outside the allowed time.
//! - After the last line: collect at the current time; anything unmatched
//!   fails the script.
//!
//! The runner never sleeps and never reads a clock. It stops with an error
//! instead of looping forever when an endpoint keeps transmitting or keeps
//! a timer armed at a time that never moves.

use core::fmt;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::parse::{option_len, parse_named, ParseError};
use super::{
    pattern, render_secs, Action, Command, Directive, Field, Line, LineKind, OptSpec, Options,
    Script, ScriptConfig, Segment, SeqRange, Time, TimeSpec, ANY_TIME_HORIZON, DEFAULT_TOLERANCE,
};
use crate::time::Instant;
use crate::wire::{ChecksumCaps, TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr};

/// What a script drives: a TCP connection or listener behind an adapter.
///
/// Call order, per line: [`start`](Self::start) once before anything else;
/// then any number of [`poll_transmit`](Self::poll_transmit),
/// [`poll_timeout`](Self::poll_timeout) and
/// [`handle_timeout`](Self::handle_timeout) calls as time moves, and one
/// [`inject`](Self::inject) or [`command`](Self::command) per line that asks
/// for it. `now` never decreases from one call to the next.
pub trait ScriptEndpoint {
    /// Called once before the first line, with the script's directives
    /// (addresses, ports, MSS). An error fails the script.
    fn start(&mut self, config: &ScriptConfig) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// A segment from the peer (`remote` to `local`) arrives.
    fn inject(&mut self, now: Instant, seg: &TcpRepr<'_>);

    /// The same arrival with the segment's bytes exactly as the script laid
    /// them out (`seg` is parsed from `bytes`), for endpoints that take
    /// whole segments off the wire. By default calls [`inject`](Self::inject).
    fn inject_bytes(&mut self, now: Instant, bytes: &[u8], seg: &TcpRepr<'_>) {
        let _ = bytes;
        self.inject(now, seg);
    }

    /// The next segment to send, as the bytes of one TCP segment (header,
    /// options, payload; checksum over the `local` to `remote`
    /// pseudo-header), or `None` when there is nothing to send now.
    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>>;

    /// The earliest armed timer, if any.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Time has reached a deadline from [`poll_timeout`](Self::poll_timeout).
    fn handle_timeout(&mut self, now: Instant);

    /// Runs a command line. Unknown commands and failed expectations are
    /// errors; the message is shown with the line.
    fn command(&mut self, now: Instant, cmd: &Command) -> Result<(), String>;
}

/// What a script that passed did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The file name.
    pub file: String,
    /// Event lines run.
    pub events: usize,
    /// Segments injected.
    pub injected: usize,
    /// Segments matched by `>` lines.
    pub matched: usize,
    /// Commands run.
    pub commands: usize,
    /// Virtual time at the end.
    pub end: Instant,
}

/// A script that failed while running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError {
    /// The file name.
    pub file: String,
    /// The line that failed (0: before the first line).
    pub line: usize,
    /// What happened; may span several lines.
    pub message: String,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for RunError {}

/// Why a script did not pass.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// The text is not a valid script.
    Parse(ParseError),
    /// The endpoint did not behave as the script says.
    Run(RunError),
    /// The file could not be read.
    Io {
        /// The file name.
        file: String,
        /// The operating system's message.
        message: String,
    },
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptError::Parse(e) => write!(f, "parse error: {e}"),
            ScriptError::Run(e) => e.fmt(f),
            ScriptError::Io { file, message } => write!(f, "{file}: {message}"),
        }
    }
}

impl std::error::Error for ScriptError {}

impl From<ParseError> for ScriptError {
    fn from(e: ParseError) -> Self {
        ScriptError::Parse(e)
    }
}

/// Parses and runs a script; messages name the file `<script>`.
pub fn run_script<E: ScriptEndpoint + ?Sized>(
    text: &str,
    endpoint: &mut E,
) -> Result<Report, ScriptError> {
    run_script_named("<script>", text, endpoint)
}

/// Parses and runs a script; messages name the file `file`.
pub fn run_script_named<E: ScriptEndpoint + ?Sized>(
    file: &str,
    text: &str,
    endpoint: &mut E,
) -> Result<Report, ScriptError> {
    let script = parse_named(file, text)?;
    run_parsed(&script, endpoint)
}

/// Reads, parses and runs one script file.
pub fn run_file<E: ScriptEndpoint + ?Sized>(
    path: &Path,
    endpoint: &mut E,
) -> Result<Report, ScriptError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScriptError::Io {
        file: file.clone(),
        message: e.to_string(),
    })?;
    run_script_named(&file, &text, endpoint)
}

/// The results of every script in a folder.
#[derive(Debug)]
pub struct DirReport {
    /// Each `*.pkt` file, sorted by name, with its result.
    pub results: Vec<(PathBuf, Result<Report, ScriptError>)>,
}

impl DirReport {
    /// The scripts that failed, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&Path, &ScriptError)> {
        self.results
            .iter()
            .filter_map(|(p, r)| r.as_ref().err().map(|e| (p.as_path(), e)))
    }

    /// Whether every script passed (and there was at least one).
    pub fn all_passed(&self) -> bool {
        !self.results.is_empty() && self.failures().next().is_none()
    }
}

impl fmt::Display for DirReport {
    /// One line per script (`ok` or `FAIL`), each failure's message indented
    /// below it, and a count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (path, result) in &self.results {
            match result {
                Ok(_) => writeln!(f, "ok   {}", path.display())?,
                Err(e) => {
                    writeln!(f, "FAIL {}", path.display())?;
                    for l in e.to_string().lines() {
                        writeln!(f, "       {l}")?;
                    }
                }
            }
        }
        let failed = self.failures().count();
        write!(f, "{} scripts, {failed} failed", self.results.len())
    }
}

/// Runs every `*.pkt` file in `dir` (not recursing), in name order, each
/// against a fresh endpoint from `factory`. Only listing the folder can
/// fail; each script's own failure is in the report.
pub fn run_dir<E, F>(dir: &Path, mut factory: F) -> std::io::Result<DirReport>
where
    E: ScriptEndpoint,
    F: FnMut(&Path) -> E,
{
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "pkt") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let results = paths
        .into_iter()
        .map(|path| {
            let mut ep = factory(&path);
            let r = run_file(&path, &mut ep);
            (path, r)
        })
        .collect();
    Ok(DirReport { results })
}

/// Runs a parsed script.
pub fn run_parsed<E: ScriptEndpoint + ?Sized>(
    script: &Script,
    endpoint: &mut E,
) -> Result<Report, ScriptError> {
    let cfg = script.config;
    let mut r = Runner {
        ep: endpoint,
        file: script.file.clone(),
        cfg,
        tolerance: nanos(DEFAULT_TOLERANCE),
        now: 0,
        anchor: 0,
        pending: VecDeque::new(),
        local_off: 0,
        local_known: !cfg.relative,
        peer_off: if cfg.relative { cfg.peer_isn } else { 0 },
        report: Report {
            file: script.file.clone(),
            events: 0,
            injected: 0,
            matched: 0,
            commands: 0,
            end: Instant::ZERO,
        },
    };
    r.ep.start(&cfg)
        .map_err(|m| r.fail(0, format!("the endpoint refused the configuration: {m}")))?;
    for line in &script.lines {
        match &line.kind {
            LineKind::Directive(Directive::Tolerance(d)) => r.tolerance = nanos(*d),
            LineKind::Directive(_) => {}
            LineKind::Event { time, action } => {
                r.report.events += 1;
                match action {
                    Action::Expect(seg) => r.expect(line, time, seg)?,
                    _ => r.act(line, time, action)?,
                }
            }
        }
    }
    let last = script.lines.last().map_or(0, |l| l.number);
    r.drain(last)?;
    if let Some((at, bytes)) = r.pending.pop_front() {
        let msg = format!(
            "unexpected segment sent at {} after the last line\n  actual:   {}",
            render_secs(at),
            r.render_actual(at, &bytes, false)
        );
        return Err(r.fail(last, msg));
    }
    r.report.end = Instant::from_nanos(r.now);
    Ok(r.report)
}

fn nanos(d: crate::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Most segments collected in one go, and most timer firings at one
/// instant, before the endpoint is declared stuck.
const MAX_SPIN: u32 = 100_000;

struct Runner<'e, E: ScriptEndpoint + ?Sized> {
    ep: &'e mut E,
    file: String,
    cfg: ScriptConfig,
    /// Nanoseconds.
    tolerance: u64,
    /// Virtual time, nanoseconds.
    now: u64,
    /// What relative times count from.
    anchor: u64,
    /// Transmitted and not yet matched: (time, bytes).
    pending: VecDeque<(u64, Vec<u8>)>,
    /// Our ISN (what our relative sequence numbers count from).
    local_off: u32,
    local_known: bool,
    /// The peer's ISN.
    peer_off: u32,
    report: Report,
}

impl<E: ScriptEndpoint + ?Sized> Runner<'_, E> {
    fn fail(&self, line: usize, message: String) -> ScriptError {
        ScriptError::Run(RunError {
            file: self.file.clone(),
            line,
            message,
        })
    }

    fn resolve(&self, t: &Time) -> u64 {
        match *t {
            Time::Absolute(ns) => ns,
            Time::Relative(ns) => self.anchor.saturating_add(ns),
        }
    }

    /// Collects everything the endpoint transmits at the current time.
    fn drain(&mut self, line: usize) -> Result<(), ScriptError> {
        for _ in 0..MAX_SPIN {
            match self.ep.poll_transmit(Instant::from_nanos(self.now)) {
                Some(bytes) => self.pending.push_back((self.now, bytes)),
                None => return Ok(()),
            }
        }
        Err(self.fail(
            line,
            format!(
                "the endpoint kept transmitting: {MAX_SPIN} segments at {}",
                render_secs(self.now)
            ),
        ))
    }

    /// Fires timers due at or before `limit`, collecting transmissions.
    /// With `until_segment`, stops as soon as a segment is pending and
    /// returns true. Leaves `now` at the last deadline fired.
    fn fire_until(
        &mut self,
        limit: u64,
        until_segment: bool,
        line: usize,
    ) -> Result<bool, ScriptError> {
        let mut stuck = 0;
        loop {
            self.drain(line)?;
            if until_segment && !self.pending.is_empty() {
                return Ok(true);
            }
            let Some(deadline) = self.ep.poll_timeout().map(Instant::as_nanos) else {
                return Ok(false);
            };
            if deadline > limit {
                return Ok(false);
            }
            if deadline <= self.now {
                stuck += 1;
                if stuck > MAX_SPIN {
                    return Err(self.fail(
                        line,
                        format!(
                            "the endpoint's timer at {} stays armed after firing {MAX_SPIN} times",
                            render_secs(deadline)
                        ),
                    ));
                }
            } else {
                stuck = 0;
                self.now = deadline;
            }
            self.ep.handle_timeout(Instant::from_nanos(self.now));
        }
    }

    /// An injection or a command.
    fn act(&mut self, line: &Line, time: &TimeSpec, action: &Action) -> Result<(), ScriptError> {
        let n = line.number;
        let target = match time {
            TimeSpec::Any => self.now,
            TimeSpec::At(t) | TimeSpec::Range(t, _) => self.resolve(t),
        };
        if target.saturating_add(self.tolerance) < self.now {
            return Err(self.fail(
                n,
                format!(
                    "line is at {}, but virtual time is already {} (time only moves forward)",
                    render_secs(target),
                    render_secs(self.now)
                ),
            ));
        }
        self.fire_until(target, false, n)?;
        self.now = self.now.max(target);
        self.drain(n)?;
        if let Some((at, bytes)) = self.pending.pop_front() {
            let msg = format!(
                "unexpected segment sent at {} (no `>` line expects it before this line)\n  actual:   {}\n  line:     {}",
                render_secs(at),
                self.render_actual(at, &bytes, false),
                line
            );
            return Err(self.fail(n, msg));
        }
        let now = Instant::from_nanos(self.now);
        match action {
            Action::Inject(seg) => {
                let bytes = self.build(seg).map_err(|m| self.fail(n, m))?;
                let (src, dst) = (*self.cfg.remote.ip(), *self.cfg.local.ip());
                let packet = TcpPacket::new_unchecked(&bytes[..]);
                let repr =
                    TcpRepr::parse(&packet, src, dst, &ChecksumCaps::SOFTWARE).map_err(|e| {
                        self.fail(n, format!("the injected segment does not parse back: {e}"))
                    })?;
                self.ep.inject_bytes(now, &bytes, &repr);
                self.report.injected += 1;
            }
            Action::Command(cmd) => {
                self.ep
                    .command(now, cmd)
                    .map_err(|m| self.fail(n, format!("command `{cmd}` failed: {m}")))?;
                self.report.commands += 1;
            }
            Action::Expect(_) => {}
        }
        self.drain(n)?;
        self.anchor = target;
        Ok(())
    }

    /// An expected segment.
    fn expect(&mut self, line: &Line, time: &TimeSpec, seg: &Segment) -> Result<(), ScriptError> {
        let n = line.number;
        let tol = self.tolerance;
        let (lo, hi, exact, when) = match time {
            TimeSpec::Any => (
                self.now,
                self.now.saturating_add(nanos(ANY_TIME_HORIZON)),
                None,
                "at any time".to_string(),
            ),
            TimeSpec::At(t) => {
                let t = self.resolve(t);
                (
                    t.saturating_sub(tol),
                    t.saturating_add(tol),
                    Some(t),
                    format!("at {} ± {}", render_secs(t), render_secs(tol)),
                )
            }
            TimeSpec::Range(a, b) => {
                let (a, b) = (self.resolve(a), self.resolve(b));
                if b < a {
                    return Err(self.fail(
                        n,
                        format!(
                            "time range ends ({}) before it starts ({})",
                            render_secs(b),
                            render_secs(a)
                        ),
                    ));
                }
                (
                    a.saturating_sub(tol),
                    b.saturating_add(tol),
                    None,
                    format!(
                        "between {} and {} ± {}",
                        render_secs(a),
                        render_secs(b),
                        render_secs(tol)
                    ),
                )
            }
        };
        if self.pending.is_empty() {
            self.fire_until(hi, true, n)?;
        }
        let Some((at, bytes)) = self.pending.pop_front() else {
            let timer = match self.ep.poll_timeout() {
                Some(t) => format!("next timer at {}", render_secs(t.as_nanos())),
                None => "no timer armed".to_string(),
            };
            return Err(self.fail(
                n,
                format!(
                    "expected segment was not sent (expected {when}; waited until {}, {timer})\n  expected: {line}",
                    render_secs(hi)
                ),
            ));
        };
        let (src, dst) = (*self.cfg.local.ip(), *self.cfg.remote.ip());
        let packet = TcpPacket::new_unchecked(&bytes[..]);
        let repr = match TcpRepr::parse(&packet, src, dst, &ChecksumCaps::SOFTWARE) {
            Ok(r) => r,
            Err(e) => {
                return Err(self.fail(
                    n,
                    format!(
                        "segment sent at {} does not parse as TCP from {} to {}: {e} ({} bytes)\n  expected: {line}",
                        render_secs(at),
                        self.cfg.local,
                        self.cfg.remote,
                        bytes.len()
                    ),
                ))
            }
        };
        if !self.local_known
            && repr.flags.contains(TcpFlags::SYN)
            && seg.flags.contains(TcpFlags::SYN)
        {
            let start = match seg.seq {
                Field::Is(r) => r.start,
                Field::Any => 0,
            };
            self.local_off = repr.seq_number.0.wrapping_sub(start);
            self.local_known = true;
        }
        let actual = self.to_segment(&repr, packet.options());
        let mut fields = diff(seg, &actual);
        if repr.src_port != self.cfg.local.port() || repr.dst_port != self.cfg.remote.port() {
            fields.insert(0, "ports");
        }
        let mut rendered = actual;
        if seg.payload.is_none() {
            rendered.payload = None;
        }
        let actual_line = format!("{} > {rendered}", render_secs(at));
        if !fields.is_empty() {
            let mut msg = format!(
                "segment differs in {}\n  expected: {line}\n  actual:   {actual_line}",
                fields.join(", ")
            );
            if fields.first() == Some(&"ports") {
                msg.push_str(&format!(
                    "\n  ports: expected {} > {}, got {} > {}",
                    self.cfg.local.port(),
                    self.cfg.remote.port(),
                    repr.src_port,
                    repr.dst_port
                ));
            }
            return Err(self.fail(n, msg));
        }
        if at < lo || at > hi {
            let how = if at < lo { "early" } else { "late" };
            return Err(self.fail(
                n,
                format!(
                    "segment came too {how}: sent at {}, expected {when}\n  expected: {line}\n  actual:   {actual_line}",
                    render_secs(at)
                ),
            ));
        }
        self.anchor = exact.unwrap_or(at);
        self.report.matched += 1;
        Ok(())
    }

    /// A segment the endpoint sent, in script terms (relative numbers).
    fn to_segment(&self, repr: &TcpRepr<'_>, options: &[u8]) -> Segment {
        let peer = self.peer_off;
        let options = TcpOptions::new(options)
            .filter_map(Result::ok)
            .map(|o| match o {
                TcpOption::EndOfList => OptSpec::Eol,
                TcpOption::NoOperation => OptSpec::Nop,
                TcpOption::MaxSegmentSize(m) => OptSpec::Mss(Field::Is(m)),
                TcpOption::WindowScale(s) => OptSpec::WindowScale(Field::Is(s)),
                TcpOption::SackPermitted => OptSpec::SackPermitted,
                TcpOption::SackRange(r) => OptSpec::Sack(Field::Is(
                    r.iter()
                        .flatten()
                        .map(|(l, r)| (l.wrapping_sub(peer), r.wrapping_sub(peer)))
                        .collect(),
                )),
                TcpOption::TimeStamp { tsval, tsecr } => OptSpec::Timestamp {
                    val: Field::Is(tsval),
                    ecr: Field::Is(tsecr),
                },
                TcpOption::Unknown { kind, data } => OptSpec::Unknown {
                    kind,
                    data: data.to_vec(),
                },
            })
            .collect();
        Segment {
            flags: repr.flags,
            seq: Field::Is(SeqRange {
                start: repr.seq_number.0.wrapping_sub(self.local_off),
                len: repr.payload.len() as u32,
            }),
            ack: repr
                .ack_number
                .map(|a| Field::Is(a.0.wrapping_sub(self.peer_off))),
            win: Field::Is(repr.window_len),
            options: Options::List(options),
            payload: Some(repr.payload.to_vec()),
        }
    }

    /// A collected segment rendered for a message (or why it cannot be).
    fn render_actual(&self, at: u64, bytes: &[u8], with_payload: bool) -> String {
        let (src, dst) = (*self.cfg.local.ip(), *self.cfg.remote.ip());
        let packet = TcpPacket::new_unchecked(bytes);
        match TcpRepr::parse(&packet, src, dst, &ChecksumCaps::SOFTWARE) {
            Ok(repr) => {
                let mut seg = self.to_segment(&repr, packet.options());
                if !with_payload {
                    seg.payload = None;
                }
                format!("{} > {seg}", render_secs(at))
            }
            Err(e) => format!(
                "{} > ({} bytes that do not parse as TCP: {e})",
                render_secs(at),
                bytes.len()
            ),
        }
    }

    /// The bytes of an injected segment: header, options exactly as
    /// written (zero-padded to a multiple of four), payload, checksum.
    fn build(&self, seg: &Segment) -> Result<Vec<u8>, String> {
        let wildcard = || "wildcard `*` in an injected segment".to_string();
        let Field::Is(seq) = seg.seq else {
            return Err(wildcard());
        };
        let Field::Is(win) = seg.win else {
            return Err(wildcard());
        };
        let ack = match &seg.ack {
            None => None,
            Some(Field::Is(a)) => Some(a.wrapping_add(self.local_off)),
            Some(Field::Any) => return Err(wildcard()),
        };
        let list = match &seg.options {
            Options::List(l) => l.as_slice(),
            Options::Any => return Err(wildcard()),
        };
        let opt_len: usize = list.iter().map(option_len).sum();
        if opt_len > 40 {
            return Err(format!("options take {opt_len} bytes, at most 40 fit"));
        }
        let mut opts = [0u8; 40];
        let mut rest: &mut [u8] = &mut opts;
        for o in list {
            let local = self.local_off;
            let opt = match o {
                OptSpec::Mss(Field::Is(m)) => TcpOption::MaxSegmentSize(*m),
                OptSpec::WindowScale(Field::Is(s)) => TcpOption::WindowScale(*s),
                OptSpec::SackPermitted => TcpOption::SackPermitted,
                OptSpec::Sack(Field::Is(blocks)) if !blocks.is_empty() && blocks.len() <= 4 => {
                    let mut r = [None; 4];
                    for (slot, (a, b)) in r.iter_mut().zip(blocks) {
                        *slot = Some((a.wrapping_add(local), b.wrapping_add(local)));
                    }
                    TcpOption::SackRange(r)
                }
                OptSpec::Timestamp {
                    val: Field::Is(v),
                    ecr: Field::Is(e),
                } => TcpOption::TimeStamp {
                    tsval: *v,
                    tsecr: *e,
                },
                OptSpec::Nop => TcpOption::NoOperation,
                OptSpec::Eol => TcpOption::EndOfList,
                OptSpec::Unknown { kind, data } if data.len() <= 38 => {
                    TcpOption::Unknown { kind: *kind, data }
                }
                other => return Err(format!("option `{other}` cannot be injected")),
            };
            if rest.len() < opt.buffer_len() {
                return Err(format!("options take {opt_len} bytes, at most 40 fit"));
            }
            rest = opt.emit(rest);
        }
        let header_len = 20 + opt_len.div_ceil(4) * 4;
        let payload = match &seg.payload {
            Some(p) if p.len() as u64 == u64::from(seq.len) => p.clone(),
            Some(p) => {
                return Err(format!(
                    "payload string is {} bytes, but the segment length is {}",
                    p.len(),
                    seq.len
                ))
            }
            None => pattern(seq.start, seq.len as usize),
        };
        let mut buf = vec![0u8; header_len + payload.len()];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(self.cfg.remote.port());
        p.set_dst_port(self.cfg.local.port());
        p.set_seq_number(crate::wire::TcpSeqNumber(
            seq.start.wrapping_add(self.peer_off),
        ));
        p.set_ack_number(crate::wire::TcpSeqNumber(ack.unwrap_or(0)));
        p.set_header_len(header_len);
        let mut flags = seg.flags;
        flags.set(TcpFlags::ACK, ack.is_some());
        p.set_flags(flags);
        p.set_window_len(win);
        p.set_urgent_at(0);
        p.options_mut()
            .iter_mut()
            .zip(opts.iter())
            .for_each(|(d, s)| *d = *s);
        p.payload_mut().copy_from_slice(&payload);
        p.fill_checksum(*self.cfg.remote.ip(), *self.cfg.local.ip());
        Ok(buf)
    }
}

/// The names of the fields where `actual` (no wildcards) breaks `expected`.
fn diff(expected: &Segment, actual: &Segment) -> Vec<&'static str> {
    let mut out = Vec::new();
    if expected.flags != actual.flags {
        out.push("flags");
    }
    if let (Field::Is(e), Field::Is(a)) = (&expected.seq, &actual.seq) {
        if e.start != a.start {
            out.push("seq");
        }
        if e.len != a.len {
            out.push("length");
        }
    }
    let ack_ok = match (&expected.ack, &actual.ack) {
        (None, None) => true,
        (Some(e), Some(Field::Is(a))) => e.matches(a),
        _ => false,
    };
    if !ack_ok {
        out.push("ack");
    }
    if let Field::Is(a) = &actual.win {
        if !expected.win.matches(a) {
            out.push("win");
        }
    }
    if let (Options::List(e), Options::List(a)) = (&expected.options, &actual.options) {
        if e.len() != a.len() || !e.iter().zip(a).all(|(e, a)| e.matches(a)) {
            out.push("options");
        }
    }
    if let Some(e) = &expected.payload {
        if actual.payload.as_ref() != Some(e) {
            out.push("payload");
        }
    }
    out
}
