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
                                    let found = other
                                        .map_or("end of line".to_string(), |c| format!("`\\{c}`"));
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
        self.error_at(
            self.column(),
            format!("expected {what}, found {}", self.found()),
        )
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
                format!("expected a time (`0.1`, `+0.1`, `*`, or a range `+0~+0.2`), found `{w}`"),
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
                    return Err(
                        self.expected("`ack`, `win`, `<options>`, a payload string or end of line")
                    )
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
                if !matches!(self.peek(), Some((_, Tok::Punct('>')))) {
                    return Err(self.expected("`>` after `<...`"));
                }
                self.pos += 1;
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
            "wscale" => OptSpec::WindowScale(
                match self.num_or_any("a shift count (0..=255) or `*`", 255, inject)? {
                    Field::Any => Field::Any,
                    Field::Is(n) => Field::Is(n as u8),
                },
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn one(text: &str) -> LineKind {
        let s = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(s.lines.len(), 1, "{text}");
        s.lines.into_iter().next().map(|l| l.kind).unwrap()
    }

    fn event(text: &str) -> (TimeSpec, Action) {
        match one(text) {
            LineKind::Event { time, action } => (time, action),
            other => panic!("not an event: {other:?}"),
        }
    }

    fn inject(text: &str) -> Segment {
        match event(text).1 {
            Action::Inject(s) => s,
            other => panic!("not an injection: {other:?}"),
        }
    }

    fn expect(text: &str) -> Segment {
        match event(text).1 {
            Action::Expect(s) => s,
            other => panic!("not an expectation: {other:?}"),
        }
    }

    fn err(text: &str) -> ParseError {
        match parse_named("t.pkt", text) {
            Ok(s) => panic!("{text}: parsed as {s:?}"),
            Err(e) => e,
        }
    }

    /// Asserts an error's position and that its message holds every piece.
    fn assert_err(text: &str, line: usize, column: usize, pieces: &[&str]) {
        let e = err(text);
        let shown = e.to_string();
        assert_eq!((e.line, e.column), (line, column), "{shown}");
        assert!(
            shown.starts_with(&format!("t.pkt:{line}:{column}: ")),
            "{shown}"
        );
        for p in pieces {
            assert!(shown.contains(p), "`{p}` not in: {shown}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(event("0 connect").0, TimeSpec::At(Time::Absolute(0)));
        assert_eq!(
            event("0.250 connect").0,
            TimeSpec::At(Time::Absolute(250_000_000))
        );
        assert_eq!(
            event("+0.1 connect").0,
            TimeSpec::At(Time::Relative(100_000_000))
        );
        assert_eq!(
            event("+1.000000001 connect").0,
            TimeSpec::At(Time::Relative(1_000_000_001))
        );
        assert_eq!(event("* connect").0, TimeSpec::Any);
        assert_eq!(
            event("+0~+0.2 > . 1:1(0) ack 1").0,
            TimeSpec::Range(Time::Relative(0), Time::Relative(200_000_000))
        );
        assert_eq!(
            event("~+0.2 > . 1:1(0) ack 1").0,
            TimeSpec::Range(Time::Relative(0), Time::Relative(200_000_000))
        );
        assert_eq!(
            event("0.1~0.3 > . 1:1(0) ack 1").0,
            TimeSpec::Range(Time::Absolute(100_000_000), Time::Absolute(300_000_000))
        );
    }

    #[test]
    fn inject_syn_with_every_option() {
        let s = inject(
            "+0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7,sack 1:2 3:4,eol>",
        );
        assert_eq!(s.flags, TcpFlags::SYN);
        assert_eq!(s.seq, Field::Is(SeqRange { start: 0, len: 0 }));
        assert_eq!(s.ack, None);
        assert_eq!(s.win, Field::Is(65535));
        assert_eq!(
            s.options,
            Options::List(vec![
                OptSpec::Mss(Field::Is(1460)),
                OptSpec::SackPermitted,
                OptSpec::Timestamp {
                    val: Field::Is(100),
                    ecr: Field::Is(0)
                },
                OptSpec::Nop,
                OptSpec::WindowScale(Field::Is(7)),
                OptSpec::Sack(Field::Is(vec![(1, 2), (3, 4)])),
                OptSpec::Eol,
            ])
        );
        assert_eq!(s.payload, None);
    }

    #[test]
    fn flags_and_ack() {
        let all = inject("0 < FSRP.UEW 0:0(0) ack 1");
        assert_eq!(all.flags.bits(), 0xff);
        // `ack N` implies ACK.
        let synack = inject("0 < S 0:0(0) ack 1");
        assert_eq!(synack.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(synack.ack, Some(Field::Is(1)));
        assert_eq!(inject("0 < - 0:0(0)").flags, TcpFlags::empty());
        assert_eq!(
            inject("0 < F. 1:1(0) ack 1").flags,
            TcpFlags::FIN | TcpFlags::ACK
        );
        // An expected `.` without `ack` accepts any acknowledgment number.
        assert_eq!(expect("0 > . 1:1(0)").ack, Some(Field::Any));
        // An injected segment without `win` carries 65535; expected: any.
        assert_eq!(inject("0 < R 0:0(0)").win, Field::Is(65535));
        assert_eq!(expect("0 > R 0:0(0)").win, Field::Any);
    }

    #[test]
    fn payloads() {
        let s = inject("+0 < P. 1:1001(1000) ack 1 win 257");
        assert_eq!(
            s.seq,
            Field::Is(SeqRange {
                start: 1,
                len: 1000
            })
        );
        assert_eq!(s.payload, None);
        let s = inject(r#"+0 < P. 1:8(7) ack 1 "a\"\\\n\x00\t\0""#);
        assert_eq!(s.payload, Some(b"a\"\\\n\x00\t\0".to_vec()));
        // Sequence numbers wrap.
        let s = inject("0 < . 4294967295:9(10) ack 1");
        assert_eq!(
            s.seq,
            Field::Is(SeqRange {
                start: u32::MAX,
                len: 10
            })
        );
    }

    #[test]
    fn wildcards() {
        let s = expect("+0 > S. * ack * win * <mss *,wscale *,sack *,TS val * ecr 100>");
        assert_eq!(s.seq, Field::Any);
        assert_eq!(s.ack, Some(Field::Any));
        assert_eq!(s.win, Field::Any);
        assert_eq!(
            s.options,
            Options::List(vec![
                OptSpec::Mss(Field::Any),
                OptSpec::WindowScale(Field::Any),
                OptSpec::Sack(Field::Any),
                OptSpec::Timestamp {
                    val: Field::Any,
                    ecr: Field::Is(100)
                },
            ])
        );
        assert_eq!(expect("0 > . 1:1(0) ack 1 <...>").options, Options::Any);
        assert_eq!(
            expect("0 > . 1:1(0) ack 1").options,
            Options::List(Vec::new())
        );
    }

    #[test]
    fn commands() {
        let (_, a) = event(r#"+0 write 1000 "two words" x"#);
        assert_eq!(
            a,
            Action::Command(Command {
                name: "write".into(),
                args: vec!["1000".into(), "two words".into(), "x".into()],
            })
        );
        let (_, a) = event("+0 expect event connected");
        let Action::Command(c) = a else { panic!() };
        assert_eq!((c.name.as_str(), c.args.len()), ("expect", 2));
    }

    #[test]
    fn directives_and_comments() {
        let s = parse(
            "// header comment\n\
             # another\n\
             \n\
             local 10.0.0.2:8080   // trailing\n\
             remote 10.0.0.1:1234 # trailing\n\
             mss 1400\n\
             peer_isn 4294967000\n\
             seq absolute\n\
             tolerance 0.01\n\
             0 connect\n\
             tolerance 0\n",
        )
        .unwrap();
        assert_eq!(
            s.config.local,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 8080)
        );
        assert_eq!(
            s.config.remote,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1234)
        );
        assert_eq!(s.config.mss, Some(1400));
        assert_eq!(s.config.peer_isn, 4_294_967_000);
        assert!(!s.config.relative);
        let numbers: Vec<usize> = s.lines.iter().map(|l| l.number).collect();
        assert_eq!(numbers, [4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(
            s.lines[5].kind,
            LineKind::Directive(Directive::Tolerance(Duration::from_millis(10)))
        );
        assert_eq!(
            s.config,
            ScriptConfig {
                mss: Some(1400),
                peer_isn: 4_294_967_000,
                relative: false,
                ..s.config
            }
        );
    }

    #[test]
    fn round_trip() {
        // (input, normalised form)
        let corpus = [
            ("0 connect", "0 connect"),
            ("+0.100 listen 8080", "+0.1 listen 8080"),
            ("*   accept", "* accept"),
            ("+0 expect state ESTABLISHED", "+0 expect state ESTABLISHED"),
            (r#"+0 write "a b""#, r#"+0 write "a b""#),
            (
                "+0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>",
                "+0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>",
            ),
            (
                "+0 > S. 0:0(0) ack 1 <mss 1460>",
                "+0 > S. 0:0(0) ack 1 win * <mss 1460>",
            ),
            (
                "+0 > S. 0:0(0) ack 1 <...>",
                "+0 > S. 0:0(0) ack 1 win * <...>",
            ),
            ("+0 < . 1:1(0) ack 1", "+0 < . 1:1(0) ack 1 win 65535"),
            ("+0 < S 0:0(0) ack 5", "+0 < S. 0:0(0) ack 5 win 65535"),
            (
                "0.5 > .P 1:11(10) ack 1 win 0",
                "0.5 > P. 1:11(10) ack 1 win 0",
            ),
            (
                r#"+0  <  P.  1:4(3)  ack 1  win 100  "a\x01b"  // comment"#,
                r#"+0 < P. 1:4(3) ack 1 win 100 "a\x01b""#,
            ),
            ("~+0.2 > F. 1:1(0) ack 2", "+0~+0.2 > F. 1:1(0) ack 2 win *"),
            ("0.1~+0.3 > R 1:1(0)", "0.1~+0.3 > R 1:1(0) win *"),
            ("* > . * ack *", "* > . * ack * win *"),
            (
                "+0 > . 1:1(0) ack 1 <nop,nop,sack 1001:2001 3001:4001>",
                "+0 > . 1:1(0) ack 1 win * <nop,nop,sack 1001:2001 3001:4001>",
            ),
            (
                "+0 > . 1:1(0) ack 1 <TS val * ecr *,eol>",
                "+0 > . 1:1(0) ack 1 win * <TS val * ecr *,eol>",
            ),
            ("+0 < - 0:0(0) win 0", "+0 < - 0:0(0) win 0"),
            ("tolerance 0.010", "tolerance 0.01"),
            ("local 198.18.0.2:80", "local 198.18.0.2:80"),
            ("remote 198.18.0.1:40000", "remote 198.18.0.1:40000"),
            ("mss 1460", "mss 1460"),
            ("peer_isn 7", "peer_isn 7"),
            ("seq absolute", "seq absolute"),
        ];
        for (input, normal) in corpus {
            let rendered = one(input).to_string();
            assert_eq!(rendered, normal, "from {input}");
            // The normal form is a fixed point.
            assert_eq!(one(normal).to_string(), normal);
        }
    }

    #[test]
    fn errors_name_position_and_expectation() {
        assert_err("0 < X 0:0(0)", 1, 5, &["expected TCP flags", "found `X`"]);
        assert_err("0 < SS 0:0(0)", 1, 5, &["expected TCP flags", "`SS`"]);
        assert_err(
            "0 < S",
            1,
            6,
            &["expected a sequence range", "found end of line"],
        );
        assert_err(
            "0 < S 0-0(0)",
            1,
            7,
            &["expected a sequence range", "`0-0(0)`"],
        );
        assert_err("0 < S 0:5(4)", 1, 7, &["end - start is 5", "length says 4"]);
        assert_err(
            "0 < S 0:0(0) win 70000",
            1,
            18,
            &["expected a window", "`70000`"],
        );
        assert_err(
            "0 < S 0:0(0) ack",
            1,
            17,
            &["expected an acknowledgment number", "end of line"],
        );
        assert_err("0 < S 0:0(0) ack 1 ack 2", 1, 20, &["`ack` given twice"]);
        assert_err("0 < S 0:0(0) win 1 win 2", 1, 20, &["`win` given twice"]);
        assert_err(
            "0 < S 0:0(0) foo",
            1,
            14,
            &["expected `ack`, `win`", "found `foo`"],
        );
        assert_err(
            "0 < S 0:0(0) <mss 1460",
            1,
            23,
            &["expected `,` or `>`", "end of line"],
        );
        assert_err(
            "0 < S 0:0(0) <mss>",
            1,
            18,
            &["expected an MSS", "found `>`"],
        );
        assert_err(
            "0 < S 0:0(0) <bogus 1>",
            1,
            15,
            &["expected a TCP option", "`bogus`"],
        );
        assert_err(
            "0 < S 0:0(0) <TS 1 ecr 2>",
            1,
            18,
            &["expected `val`", "`1`"],
        );
        assert_err(
            "0 < S 0:0(0) <TS val 1 2>",
            1,
            24,
            &["expected `ecr`", "`2`"],
        );
        assert_err(
            "0 < S 0:0(0) <wscale 256>",
            1,
            22,
            &["expected a shift count", "`256`"],
        );
        assert_err(
            "0 < S 0:0(0) <sack>",
            1,
            19,
            &["expected a SACK block", "`>`"],
        );
        assert_err(
            "0 < S 0:0(0) <sack 1-2>",
            1,
            20,
            &["expected a SACK block", "`1-2`"],
        );
        assert_err(
            "0 < . 1:1(0) ack 1 <sack 1:2 3:4 5:6 7:8 9:10>",
            1,
            42,
            &["at most 4 SACK blocks"],
        );
        assert_err(
            "0 < S 0:0(0) <TS val 1 ecr 2,TS val 1 ecr 2,TS val 1 ecr 2,TS val 1 ecr 2,nop>",
            1,
            14,
            &["options take 41 bytes, at most 40 fit"],
        );
        assert_err(
            "0 < S 0:0(0) win *",
            1,
            18,
            &["wildcard `*` is only allowed in expected"],
        );
        assert_err(
            "0 < S * win 1",
            1,
            7,
            &["wildcard `*` is only allowed in expected"],
        );
        assert_err("0 < . 1:1(0) ack *", 1, 18, &["wildcard"]);
        assert_err("0 < S 0:0(0) <mss *>", 1, 19, &["wildcard"]);
        assert_err(
            "0 < S 0:0(0) <...>",
            1,
            15,
            &["`<...>` (any options) is only allowed"],
        );
        assert_err("0 > S 0:0(0) <...", 1, 18, &["expected `>` after `<...`"]);
        assert_err("0 < . 1:1(0)", 1, 5, &["ACK flag `.` needs `ack N`"]);
        assert_err(
            r#"0 < P. 1:3(2) ack 1 "abc""#,
            1,
            21,
            &["payload string is 3 bytes", "length is 2"],
        );
        assert_err(
            r#"0 < P. 1:3(2) ack 1 "ab"#,
            1,
            21,
            &["unterminated string"],
        );
        assert_err(r#"0 write "\q""#, 1, 10, &["expected an escape", "`\\q`"]);
        assert_err(r#"0 write "\x4""#, 1, 10, &["two hex digits"]);
        assert_err(
            "0 < S 0:65536(65536)",
            1,
            7,
            &["payload length 65536 is larger than 65535"],
        );
        assert_err("+x connect", 1, 1, &["expected a time", "`+x`"]);
        assert_err("0.1234567891 connect", 1, 1, &["expected a time"]);
        assert_err("1~ connect", 1, 1, &["expected a time"]);
        assert_err(
            "0",
            1,
            2,
            &["expected `<`, `>` or a command", "end of line"],
        );
        assert_err("0 , x", 1, 3, &["expected `<`, `>` or a command", "`,`"]);
        assert_err(
            "+0 write 1 , 2",
            1,
            12,
            &["expected a command argument", "`,`"],
        );
        assert_err(
            "+0~+1 connect",
            1,
            1,
            &["time range is only allowed on expected"],
        );
        assert_err(
            "frobnicate 1",
            1,
            1,
            &["expected a time or a directive", "`frobnicate`"],
        );
        assert_err(
            "tolerance",
            1,
            10,
            &["expected a tolerance in seconds", "end of line"],
        );
        assert_err(
            "tolerance -1",
            1,
            11,
            &["expected a tolerance in seconds", "`-1`"],
        );
        assert_err(
            "local 1.2.3.4",
            1,
            7,
            &["expected an IPv4 address and port", "`1.2.3.4`"],
        );
        assert_err(
            "remote 1.2.3.4:0",
            1,
            8,
            &["expected an IPv4 address and port"],
        );
        assert_err("mss 1460 1", 1, 10, &["expected end of line", "`1`"]);
        assert_err(
            "seq sideways",
            1,
            5,
            &["expected `relative` or `absolute`", "`sideways`"],
        );
        assert_err("peer_isn 4294967296", 1, 10, &["expected an ISN"]);
        assert_err(
            "0 connect\nlocal 1.2.3.4:5",
            2,
            1,
            &["directive `local` must come before the first event"],
        );
        // Line numbers count blank and comment lines.
        assert_err(
            "# c\n\n0 connect\n0 < Q 0:0(0)",
            4,
            5,
            &["expected TCP flags"],
        );
    }

    proptest::proptest! {
        /// Any text built from the grammar's characters parses or fails
        /// with a position inside the text; it never panics.
        #[test]
        fn never_panics(text in "[ +~*.:()<>,\"\\\\x0-9SFRPUEW.a-z/#\n-]{0,60}") {
            if let Err(e) = parse(&text) {
                let line = text.lines().nth(e.line - 1).unwrap_or("");
                proptest::prop_assert!(e.column >= 1 && e.column <= line.chars().count() + 1);
            }
        }
    }

    #[test]
    fn never_panics_on_odd_text() {
        for text in [
            "",
            "<",
            ">",
            "\"",
            "0 <",
            "0 >",
            "0 < S 0:0(0) <",
            "0 < S 0:0(0) <,",
            "~",
            "+",
            "*",
            "+.5 x",
            "0 < S :(",
            "0 < S 1:(0)",
            "0 < S ((((",
            "0 > S. 0:0(0) <... x>",
            "\u{feff}0 connect",
            "0 < S 0:0(0) <TS",
            "0 < S 0:0(0) <TS val",
            "é",
            "0 é",
            "0 < S 0:0(0) \"\\",
            "18446744073709551616 connect",
            "18446744073.709551615 x",
        ] {
            let _ = parse(text);
        }
    }
}
