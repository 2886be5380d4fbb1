//! The script parser: text to [`Script`], or a [`ParseError`] naming file,
//! line, column, what was expected and what was found. See the
//! [module docs](super) for the format. Never panics on any text.

use core::fmt;
use std::net::SocketAddrV4;

use super::{
    Action, Command, Directive, Field, Line, LineKind, OptSpec, Options, Script, ScriptConfig,
    Segment, SeqRange, Time, TimeSpec, FLAG_CHARS,
};
use crate::time::Duration;
use crate::wire::TcpFlags;

/// Bytes of option space in a TCP header.
const MAX_OPTIONS_LEN: usize = 40;
/// Largest payload an injected segment may carry.
pub const MAX_PAYLOAD_LEN: u32 = 65_535;

/// Why a script could not be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file name (or `<script>`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters) of the offending token; one past the
    /// last character for "end of line".
    pub column: usize,
    /// What went wrong: usually "expected X, found Y".
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses a script; messages name the file `<script>`.
pub fn parse(text: &str) -> Result<Script, ParseError> {
    parse_named("<script>", text)
}

/// Parses a script; messages name the file `file`.
pub fn parse_named(file: &str, text: &str) -> Result<Script, ParseError> {
    let mut script = Script {
        file: file.to_string(),
        config: ScriptConfig::default(),
        lines: Vec::new(),
    };
    let mut seen_event = false;
    for (i, text) in text.lines().enumerate() {
        let number = i + 1;
        let toks = lex(text).map_err(|(column, message)| ParseError {
            file: file.to_string(),
            line: number,
            column,
            message,
        })?;
        if toks.is_empty() {
            continue;
        }
        let mut p = Parser {
            toks: &toks,
            pos: 0,
            file,
            line: number,
            eol_column: text.chars().count() + 1,
        };
        let kind = p.line()?;
        if let LineKind::Directive(d) = &kind {
            let c = &mut script.config;
            match *d {
                Directive::Tolerance(_) => {}
                _ if seen_event => {
                    let name = d.to_string();
                    let name = name.split(' ').next().unwrap_or("");
                    return Err(p.error_at(
                        1,
                        format!("directive `{name}` must come before the first event"),
                    ));
                }
                Directive::Mss(m) => c.mss = Some(m),
                Directive::Local(a) => c.local = a,
                Directive::Remote(a) => c.remote = a,
                Directive::PeerIsn(n) => c.peer_isn = n,
                Directive::Relative(r) => c.relative = r,
            }
        } else {
            seen_event = true;
        }
        script.lines.push(Line { number, kind });
    }
    Ok(script)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Punct(char),
    Str(Vec<u8>),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Punct(c) => format!("`{c}`"),
            Tok::Str(b) => format!("string {}", super::render_bytes(b)),
        }
    }
}

/// Splits one line into tokens with their 1-based columns; strips comments.
/// Errors carry a column and a message.
fn lex(line: &str) -> Result<Vec<(usize, Tok)>, (usize, String)> {
    let chars: Vec<char> = line.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let comment = |i: usize| at(i) == Some('#') || (at(i) == Some('/') && at(i + 1) == Some('/'));
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if comment(i) {
            break;
        }
        let col = i + 1;
        match c {
            '<' | '>' | ',' => {
                toks.push((col, Tok::Punct(c)));
                i += 1;
            }
            '"' => {
                i += 1;
                let mut bytes = Vec::new();
                loop {
                    match at(i) {
                        None => return Err((col, "unterminated string (missing `\"`)".into())),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let esc_col = i + 1;
                            let b = match at(i + 1) {
                                Some('\\') => b'\\',
                                Some('"') => b'"',
                                Some('n') => b'\n',
                                Some('r') => b'\r',
                                Some('t') => b'\t',
                                Some('0') => 0,
                                Some('x') => {
                                    let hex: String =
                                        [at(i + 2), at(i + 3)].iter().flatten().collect();
                                    match (hex.len(), u8::from_str_radix(&hex, 16)) {
                                        (2, Ok(b)) => {
                                            i += 2;
                                            b
                                        }
                                        _ => {
                                            return Err((
                                                esc_col,
                                                "expected two hex digits after `\\x`".into(),
                                            ))
                                        }
                                    }
                                }
                                other => {
                                    let found = other.map_or("end of line".to_string(), |c| {
                                        format!("`\\{c}`")
                                    });
                                    return Err((
                                        esc_col,
                                        format!(
                                            "expected an escape (\\\\ \\\" \\n \\r \\t \\0 \\xNN), found {found}"
                                        ),
                                    ));
                                }
                            };
                            bytes.push(b);
                            i += 2;
                        }
                        Some(ch) => {
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            i += 1;
                        }
                    }
                }
                toks.push((col, Tok::Str(bytes)));
            }
            _ => {
                let mut word = String::new();
                while let Some(d) = at(i) {
                    if d.is_whitespace() || matches!(d, '<' | '>' | ',' | '"') || comment(i) {
                        break;
                    }
                    word.push(d);
                    i += 1;
                }
                toks.push((col, Tok::Word(word)));
            }
        }
    }
    Ok(toks)
}

struct Parser<'a> {
    toks: &'a [(usize, Tok)],
    pos: usize,
    file: &'a str,
    line: usize,
    eol_column: usize,
}

/// Parses a decimal number of up to `max`; digits only.
fn number(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|&n| n <= max)
}

/// Parses `SECS[.FRACTION]` (up to nine decimals) into nanoseconds.
fn seconds(s: &str) -> Option<u64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let mut ns = number(int, u64::MAX / 1_000_000_000)?.checked_mul(1_000_000_000)?;
    if let Some(frac) = frac {
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let scaled = number(frac, 999_999_999)? * 10u64.pow(9 - frac.len() as u32);
        ns = ns.checked_add(scaled)?;
    }
    Some(ns)
}

fn time(s: &str) -> Option<Time> {
    match s.strip_prefix('+') {
        Some(rest) => seconds(rest).map(Time::Relative),
        None => seconds(s).map(Time::Absolute),
    }
}

/// Whether a first word is a time rather than a directive name.
fn looks_like_time(w: &str) -> bool {
    w.starts_with(['+', '~', '*']) || w.starts_with(|c: char| c.is_ascii_digit())
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a (usize, Tok)> {
        self.toks.get(self.pos)
    }

    fn bump(&mut self) -> Option<&'a (usize, Tok)> {
        let t = self.toks.get(self.pos);
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn column(&self) -> usize {
        self.peek().map_or(self.eol_column, |(c, _)| *c)
    }

    fn found(&self) -> String {
        self.peek()
            .map_or("end of line".to_string(), |(_, t)| t.describe())
    }

    fn error_at(&self, column: usize, message: String) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line: self.line,
            column,
            message,
        }
    }

    /// "expected `what`, found <the next token>", at the next token.
    fn expected(&self, what: &str) -> ParseError {
        self.error_at(self.column(), format!("expected {what}, found {}", self.found()))
    }

    /// The next token as a word, or an "expected" error.
    fn word(&mut self, what: &str) -> Result<(usize, &'a str), ParseError> {
        match self.peek() {
            Some((col, Tok::Word(w))) => {
                self.pos += 1;
                Ok((*col, w.as_str()))
            }
            _ => Err(self.expected(what)),
        }
    }

    /// A number up to `max`, described as `what`.
    fn num(&mut self, what: &str, max: u64) -> Result<u64, ParseError> {
        let save = self.pos;
        let (_, w) = self.word(what)?;
        number(w, max).ok_or_else(|| {
            self.pos = save;
            self.expected(what)
        })
    }

    /// A number or `*`. In an injected segment `*` is an error.
    fn num_or_any(&mut self, what: &str, max: u64, inject: bool) -> Result<Field<u64>, ParseError> {
        if let Some((col, Tok::Word(w))) = self.peek() {
            if w == "*" {
                if inject {
                    return Err(self.wildcard_error(*col));
                }
                self.pos += 1;
                return Ok(Field::Any);
            }
        }
        self.num(what, max).map(Field::Is)
    }

    fn wildcard_error(&self, column: usize) -> ParseError {
        self.error_at(
            column,
            "wildcard `*` is only allowed in expected (`>`) segments".to_string(),
        )
    }

    fn end(&self) -> Result<(), ParseError> {
        if self.peek().is_some() {
            return Err(self.expected("end of line"));
        }
        Ok(())
    }

    fn line(&mut self) -> Result<LineKind, ParseError> {
        let (col, first) = self.word("a time or a directive")?;
        if !looks_like_time(first) {
            let d = self.directive(col, first)?;
            self.end()?;
            return Ok(LineKind::Directive(d));
        }
        let time = self.time_spec(col, first)?;
        let action = match self.peek() {
            Some((_, Tok::Punct('<'))) => {
                self.pos += 1;
                Action::Inject(self.segment(true)?)
            }
            Some((_, Tok::Punct('>'))) => {
                self.pos += 1;
                Action::Expect(self.segment(false)?)
            }
            Some((_, Tok::Word(w))) if w.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                Action::Command(self.command()?)
            }
            _ => return Err(self.expected("`<`, `>` or a command after the time")),
        };
        if matches!(time, TimeSpec::Range(..)) && !matches!(action, Action::Expect(_)) {
            return Err(self.error_at(
                col,
                "a time range is only allowed on expected (`>`) segments".to_string(),
            ));
        }
        Ok(LineKind::Event { time, action })
    }

    fn time_spec(&self, col: usize, w: &str) -> Result<TimeSpec, ParseError> {
        let bad = || {
            self.error_at(
                col,
                format!(
                    "expected a time (`0.1`, `+0.1`, `*`, or a range `+0~+0.2`), found `{w}`"
                ),
            )
        };
        if w == "*" {
            return Ok(TimeSpec::Any);
        }
        match w.split_once('~') {
            None => time(w).map(TimeSpec::At).ok_or_else(bad),
            Some((a, b)) => {
                let a = if a.is_empty() {
                    Some(Time::Relative(0))
                } else {
                    time(a)
                };
                match (a, time(b)) {
                    (Some(a), Some(b)) => Ok(TimeSpec::Range(a, b)),
                    _ => Err(bad()),
                }
            }
        }
    }

    fn directive(&mut self, col: usize, name: &str) -> Result<Directive, ParseError> {
        let addr = |p: &mut Self| -> Result<SocketAddrV4, ParseError> {
            let what = "an IPv4 address and port such as `198.18.0.1:40000`";
            let save = p.pos;
            let (_, w) = p.word(what)?;
            match w.parse::<SocketAddrV4>() {
                Ok(a) if a.port() != 0 => Ok(a),
                _ => {
                    p.pos = save;
                    Err(p.expected(what))
                }
            }
        };
        Ok(match name {
            "tolerance" => {
                let what = "a tolerance in seconds such as `0.004`";
                let save = self.pos;
                let (_, w) = self.word(what)?;
                let ns = seconds(w).ok_or_else(|| {
                    self.pos = save;
                    self.expected(what)
                })?;
                Directive::Tolerance(Duration::from_nanos(ns))
            }
            "mss" => Directive::Mss(self.num("an MSS (0..=65535)", 65_535)? as u16),
            "local" => Directive::Local(addr(self)?),
            "remote" => Directive::Remote(addr(self)?),
            "peer_isn" => {
                Directive::PeerIsn(self.num("an ISN (0..=4294967295)", u64::from(u32::MAX))? as u32)
            }
            "seq" => match self.word("`relative` or `absolute`")? {
                (_, "relative") => Directive::Relative(true),
                (_, "absolute") => Directive::Relative(false),
                _ => {
                    self.pos -= 1;
                    return Err(self.expected("`relative` or `absolute`"));
                }
            },
            _ => {
                return Err(self.error_at(
                    col,
                    format!(
                        "expected a time or a directive (tolerance, local, remote, mss, peer_isn, seq), found `{name}`"
                    ),
                ))
            }
        })
    }

    fn command(&mut self) -> Result<Command, ParseError> {
        let (_, name) = self.word("a command")?;
        let mut args = Vec::new();
        while let Some((col, tok)) = self.bump() {
            match tok {
                Tok::Word(w) => args.push(w.clone()),
                Tok::Str(b) => match String::from_utf8(b.clone()) {
                    Ok(s) => args.push(s),
                    Err(_) => {
                        return Err(
                            self.error_at(*col, "command arguments must be UTF-8".to_string())
                        )
                    }
                },
                Tok::Punct(_) => {
                    self.pos -= 1;
                    return Err(self.expected("a command argument (a word or a string)"));
                }
            }
        }
        Ok(Command {
            name: name.to_string(),
            args,
        })
    }

    fn flags(&mut self) -> Result<(usize, TcpFlags), ParseError> {
        let what = "TCP flags (some of `FSRP.UEW`, or `-` for none)";
        let (col, w) = self.word(what)?;
        let mut flags = TcpFlags::empty();
        if w != "-" {
            for c in w.chars() {
                let flag = FLAG_CHARS.iter().find(|(fc, _)| *fc == c).map(|(_, f)| *f);
                match flag {
                    Some(f) if !flags.contains(f) => flags.insert(f),
                    _ => {
                        self.pos -= 1;
                        return Err(self.expected(what));
                    }
                }
            }
        }
        Ok((col, flags))
    }

    fn seq(&mut self, inject: bool) -> Result<Field<SeqRange>, ParseError> {
        let what = "a sequence range `start:end(len)`";
        let (col, w) = self.word(what)?;
        if w == "*" {
            if inject {
                return Err(self.wildcard_error(col));
            }
            return Ok(Field::Any);
        }
        let parsed = (|| {
            let (start, rest) = w.split_once(':')?;
            let (end, rest) = rest.split_once('(')?;
            let len = rest.strip_suffix(')')?;
            let max = u64::from(u32::MAX);
            Some((number(start, max)?, number(end, max)?, number(len, max)?))
        })();
        let Some((start, end, len)) = parsed else {
            self.pos -= 1;
            return Err(self.expected(what));
        };
        let (start, end, len) = (start as u32, end as u32, len as u32);
        if end.wrapping_sub(start) != len {
            return Err(self.error_at(
                col,
                format!(
                    "sequence range `{w}`: end - start is {}, but the length says {len}",
                    end.wrapping_sub(start)
                ),
            ));
        }
        if inject && len > MAX_PAYLOAD_LEN {
            return Err(self.error_at(
                col,
                format!("payload length {len} is larger than {MAX_PAYLOAD_LEN}"),
            ));
        }
        Ok(Field::Is(SeqRange { start, len }))
    }

    fn segment(&mut self, inject: bool) -> Result<Segment, ParseError> {
        let (flags_col, mut flags) = self.flags()?;
        let seq = self.seq(inject)?;
        let mut ack = None;
        let mut win = None;
        let mut options = None;
        let mut payload = None;
        while let Some((col, tok)) = self.peek() {
            let col = *col;
            match tok {
                Tok::Word(w) if w == "ack" => {
                    if ack.is_some() {
                        return Err(self.error_at(col, "`ack` given twice".to_string()));
                    }
                    self.pos += 1;
                    let a = self.num_or_any(
                        "an acknowledgment number (0..=4294967295) or `*`",
                        u64::from(u32::MAX),
                        inject,
                    )?;
                    ack = Some(match a {
                        Field::Any => Field::Any,
                        Field::Is(n) => Field::Is(n as u32),
                    });
                }
                Tok::Word(w) if w == "win" => {
                    if win.is_some() {
                        return Err(self.error_at(col, "`win` given twice".to_string()));
                    }
                    self.pos += 1;
                    let v = self.num_or_any("a window (0..=65535) or `*`", 65_535, inject)?;
                    win = Some(match v {
                        Field::Any => Field::Any,
                        Field::Is(n) => Field::Is(n as u16),
                    });
                }
                Tok::Punct('<') => {
                    if options.is_some() {
                        return Err(self.error_at(col, "options given twice".to_string()));
                    }
                    self.pos += 1;
                    options = Some(self.options(col, inject)?);
                }
                Tok::Str(bytes) => {
                    if payload.is_some() {
                        return Err(self.error_at(col, "payload given twice".to_string()));
                    }
                    self.pos += 1;
                    if let Field::Is(r) = &seq {
                        if bytes.len() as u64 != u64::from(r.len) {
                            return Err(self.error_at(
                                col,
                                format!(
                                    "payload string is {} bytes, but the segment length is {}",
                                    bytes.len(),
                                    r.len
                                ),
                            ));
                        }
                    }
                    payload = Some(bytes.clone());
                }
                _ => {
                    return Err(self.expected(
                        "`ack`, `win`, `<options>`, a payload string or end of line",
                    ))
                }
            }
        }
        if ack.is_some() {
            flags.insert(TcpFlags::ACK);
        } else if flags.contains(TcpFlags::ACK) {
            if inject {
                return Err(self.error_at(
                    flags_col,
                    "ACK flag `.` needs `ack N` in an injected segment".to_string(),
                ));
            }
            ack = Some(Field::Any);
        }
        let win = win.unwrap_or(if inject {
            Field::Is(65_535)
        } else {
            Field::Any
        });
        Ok(Segment {
            flags,
            seq,
            ack,
            win,
            options: options.unwrap_or(Options::List(Vec::new())),
            payload,
        })
    }

    /// After `<`: `...>` or a comma-separated list and `>`.
    fn options(&mut self, open_col: usize, inject: bool) -> Result<Options, ParseError> {
        if let Some((col, Tok::Word(w))) = self.peek() {
            if w == "..." {
                if inject {
                    return Err(self.error_at(
                        *col,
                        "`<...>` (any options) is only allowed in expected (`>`) segments"
                            .to_string(),
                    ));
                }
                self.pos += 1;
                if !matches!(self.bump(), Some((_, Tok::Punct('>')))) {
                    self.pos = self.pos.saturating_sub(1);
                    return Err(self.expected("`>` after `<...`"));
                }
                return Ok(Options::Any);
            }
        }
        let mut list = Vec::new();
        loop {
            list.push(self.option(inject)?);
            match self.peek() {
                Some((_, Tok::Punct(','))) => self.pos += 1,
                Some((_, Tok::Punct('>'))) => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.expected("`,` or `>` in the option list")),
            }
        }
        if inject {
            let len: usize = list.iter().map(option_len).sum();
            if len > MAX_OPTIONS_LEN {
                return Err(self.error_at(
                    open_col,
                    format!("options take {len} bytes, at most {MAX_OPTIONS_LEN} fit"),
                ));
            }
        }
        Ok(Options::List(list))
    }

    fn option(&mut self, inject: bool) -> Result<OptSpec, ParseError> {
        let what = "a TCP option (mss, wscale, sackOK, sack, TS, nop, eol) or `...`";
        let (_, name) = self.word(what)?;
        Ok(match name {
            "mss" => OptSpec::Mss(self.u16_field("an MSS (0..=65535) or `*`", inject)?),
            "wscale" => {
                OptSpec::WindowScale(match self.num_or_any("a shift count (0..=255) or `*`", 255, inject)? {
                    Field::Any => Field::Any,
                    Field::Is(n) => Field::Is(n as u8),
                })
            }
            "sackOK" => OptSpec::SackPermitted,
            "nop" => OptSpec::Nop,
            "eol" => OptSpec::Eol,
            "TS" => {
                if !matches!(self.word("`val`")?, (_, "val")) {
                    self.pos -= 1;
                    return Err(self.expected("`val`"));
                }
                let val = self.u32_field("a TSval (0..=4294967295) or `*`", inject)?;
                if !matches!(self.word("`ecr`")?, (_, "ecr")) {
                    self.pos -= 1;
                    return Err(self.expected("`ecr`"));
                }
                let ecr = self.u32_field("a TSecr (0..=4294967295) or `*`", inject)?;
                OptSpec::Timestamp { val, ecr }
            }
            "sack" => {
                let what = "a SACK block `left:right` or `*`";
                if let Some((col, Tok::Word(w))) = self.peek() {
                    if w == "*" {
                        if inject {
                            return Err(self.wildcard_error(*col));
                        }
                        self.pos += 1;
                        return Ok(OptSpec::Sack(Field::Any));
                    }
                }
                let mut blocks = Vec::new();
                while let Some((col, Tok::Word(w))) = self.peek() {
                    let max = u64::from(u32::MAX);
                    let block = w
                        .split_once(':')
                        .and_then(|(l, r)| Some((number(l, max)? as u32, number(r, max)? as u32)));
                    let Some(block) = block else {
                        return Err(self.expected(what));
                    };
                    if blocks.len() == 4 {
                        return Err(self.error_at(*col, "at most 4 SACK blocks fit".to_string()));
                    }
                    blocks.push(block);
                    self.pos += 1;
                }
                if blocks.is_empty() {
                    return Err(self.expected(what));
                }
                OptSpec::Sack(Field::Is(blocks))
            }
            _ => {
                self.pos -= 1;
                return Err(self.expected(what));
            }
        })
    }

    fn u16_field(&mut self, what: &str, inject: bool) -> Result<Field<u16>, ParseError> {
        Ok(match self.num_or_any(what, 65_535, inject)? {
            Field::Any => Field::Any,
            Field::Is(n) => Field::Is(n as u16),
        })
    }

    fn u32_field(&mut self, what: &str, inject: bool) -> Result<Field<u32>, ParseError> {
        Ok(match self.num_or_any(what, u64::from(u32::MAX), inject)? {
            Field::Any => Field::Any,
            Field::Is(n) => Field::Is(n as u32),
        })
    }
}

/// Bytes an option takes on the wire.
pub(crate) fn option_len(o: &OptSpec) -> usize {
    match o {
        OptSpec::Nop | OptSpec::Eol => 1,
        OptSpec::Mss(_) => 4,
        OptSpec::WindowScale(_) => 3,
        OptSpec::SackPermitted => 2,
        OptSpec::Sack(Field::Is(b)) => 2 + 8 * b.len(),
        OptSpec::Sack(Field::Any) => 2,
        OptSpec::Timestamp { .. } => 10,
        OptSpec::Unknown { data, .. } => 2 + data.len(),
    }
}
