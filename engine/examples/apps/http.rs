//! HTTP/1.1 (RFC 9112) for the `http_server` example: an incremental
//! request parser, the server (inline on the worker) and the demo's client
//! with its response parser.
//!
//! The server answers `GET` (and `HEAD`) for any target with a fixed body
//! of a settable size and its `Content-Length`, keeps connections alive
//! (HTTP/1.1 default, RFC 9112 §9.3), answers pipelined requests in order
//! (§9.3.2), and answers a malformed request with 400 and closes.
//!
//! Included with `#[path]` by the example and by `tests/examples.rs`.
// Each includer uses part of it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;

use wirespeed::api::{Context, Handler};
use wirespeed::buf::PacketBuf;
use wirespeed::port::Device;
use wirespeed::tcp::{CloseReason, ConnId, ListenConfig};
use wirespeed::{Duration, Instant};

use crate::common::{demo_tcp, run_on_link, SERVER_IP};

/// Longest request head taken (request line and header fields).
pub const MAX_HEAD: usize = 8 * 1024;

/// The body's bytes repeat this text.
pub const BODY_TEXT: &[u8] = b"wirespeed answers over its own TCP/IP stack.\n";

/// Byte `i` of every response body.
pub fn body_byte(i: usize) -> u8 {
    BODY_TEXT[i % BODY_TEXT.len()]
}

/// Request methods the server tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the head of a `GET` answer, no body.
    Head,
    /// Any other well-formed method (405).
    Other,
}

/// A parsed request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// HTTP/1.0 (else 1.1).
    pub http10: bool,
    /// Whether the connection stays open after the answer (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// Body bytes that follow the head (skipped).
    pub content_length: u64,
}

/// Why a request was refused; the answer's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Not HTTP/1.x syntax (400).
    Malformed(&'static str),
    /// The head is longer than [`MAX_HEAD`] (431, RFC 6585 §5).
    HeadTooLarge,
    /// `Transfer-Encoding` is not implemented here (501, RFC 9112 §6.1).
    TransferEncoding,
    /// An HTTP version other than 1.0 and 1.1 (505).
    Version,
}

impl RequestError {
    /// Status code and reason phrase of the answer.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            RequestError::Malformed(_) => (400, "Bad Request"),
            RequestError::HeadTooLarge => (431, "Request Header Fields Too Large"),
            RequestError::TransferEncoding => (501, "Not Implemented"),
            RequestError::Version => (505, "HTTP Version Not Supported"),
        }
    }
}

/// Finds the request heads in a byte stream as it arrives: call
/// [`parse`](Self::parse) with everything buffered so far; it remembers how
/// far it looked, so bytes are scanned once however the stream is cut.
#[derive(Debug, Default)]
pub struct RequestParser {
    scanned: usize,
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

impl RequestParser {
    /// The request whose head starts `buf` and the head's length, `None`
    /// while the head is incomplete. After a request, drop the head (and
    /// its body) from the front of the buffer before the next call.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<(Request, usize)>, RequestError> {
        // Empty lines before the request line are ignored (RFC 9112 §2.2).
        let mut start = 0;
        while buf[start..].starts_with(b"\r\n") {
            start += 2;
        }
        let from = self.scanned.saturating_sub(3).max(start);
        let end = buf
            .get(from..)
            .and_then(|s| s.windows(4).position(|w| w == b"\r\n\r\n"))
            .map(|p| from + p);
        let Some(end) = end else {
            self.scanned = buf.len();
            if buf.len() > MAX_HEAD {
                return Err(RequestError::HeadTooLarge);
            }
            return Ok(None);
        };
        if end > MAX_HEAD {
            return Err(RequestError::HeadTooLarge);
        }
        self.scanned = 0;
        let req = parse_head(&buf[start..end])?;
        Ok(Some((req, end + 4)))
    }
}

/// The CRLF-separated lines of a head.
struct CrlfLines<'a>(&'a [u8]);

impl<'a> Iterator for CrlfLines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        match self.0.windows(2).position(|w| w == b"\r\n") {
            Some(p) => {
                let line = &self.0[..p];
                self.0 = &self.0[p + 2..];
                Some(line)
            }
            None => Some(core::mem::take(&mut self.0)),
        }
    }
}

/// Parses a request head (without its final empty line).
fn parse_head(head: &[u8]) -> Result<Request, RequestError> {
    use RequestError::Malformed;
    // Lines end in CRLF; a bare CR or LF left inside a line fails the
    // checks of the part it lands in.
    let mut lines = CrlfLines(head);
    let line = lines.next().ok_or(Malformed("empty head"))?;
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed("request line"));
    };
    if !is_token(method) {
        return Err(Malformed("method"));
    }
    if target.is_empty() || !target.iter().all(|b| (0x21..0x7f).contains(b)) {
        return Err(Malformed("request target"));
    }
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        [b'H', b'T', b'T', b'P', b'/', d1, b'.', d2]
            if d1.is_ascii_digit() && d2.is_ascii_digit() =>
        {
            return Err(RequestError::Version)
        }
        _ => return Err(Malformed("version")),
    };
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    let (mut close, mut keep, mut hosts) = (false, false, 0);
    let mut content_length: Option<u64> = None;
    for line in lines {
        if line.is_empty() {
            return Err(Malformed("empty line in head"));
        }
        if matches!(line[0], b' ' | b'\t') {
            // Obsolete line folding (RFC 9112 §5.2).
            return Err(Malformed("folded header"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Malformed("header without colon"))?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        // No whitespace between name and colon (RFC 9112 §5.1).
        if !is_token(name) {
            return Err(Malformed("header name"));
        }
        if value
            .iter()
            .any(|&b| b == b'\r' || b == 0 || (b < 0x20 && b != b'\t'))
        {
            return Err(Malformed("header value"));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(Malformed("content-length"))?;
            // Differing lengths: the message is not delimited (RFC 9112 §6.3).
            if content_length.is_some_and(|c| c != n) {
                return Err(Malformed("content-length twice"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(RequestError::TransferEncoding);
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for opt in value.split(|&b| b == b',').map(trim_ows) {
                close |= opt.eq_ignore_ascii_case(b"close");
                keep |= opt.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    // A 1.1 request has exactly one Host (RFC 9112 §3.2).
    if (!http10 && hosts != 1) || hosts > 1 {
        return Err(Malformed("host"));
    }
    Ok(Request {
        method,
        http10,
        keep_alive: !close && (!http10 || keep),
        content_length: content_length.unwrap_or(0),
    })
}

/// A response head.
pub fn response_head(status: u16, reason: &str, len: usize, close: bool, http10: bool) -> Vec<u8> {
    let connection = if close {
        "Connection: close\r\n"
    } else if http10 {
        "Connection: keep-alive\r\n"
    } else {
        ""
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nServer: wirespeed-example\r\nContent-Type: text/plain\r\n\
         Content-Length: {len}\r\n{allow}{connection}\r\n"
    )
    .into_bytes()
}

/// What the server counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HttpStats {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered 200.
    pub ok: u64,
    /// Requests answered with an error status.
    pub errors: u64,
    /// Body bytes sent.
    pub body_bytes: u64,
}

enum Out<B> {
    Bytes(Arc<[u8]>, usize),
    Buf(B),
}

struct HttpConn<B> {
    input: Vec<u8>,
    parser: RequestParser,
    /// Body bytes of the current request still to skip.
    skip: u64,
    out: VecDeque<Out<B>>,
    /// After the queued answer: half-close, then discard input until the
    /// peer closes (RFC 9112 §9.6).
    close_after: bool,
    closing: bool,
    peer_fin: bool,
}

/// The HTTP server, inline on the worker. Bodies are pool buffers filled
/// once and shared by every answer (zero copy: the stack sends views of
/// them); heads are copied in.
pub struct HttpServer<B> {
    port: u16,
    body_size: usize,
    body: Vec<B>,
    /// The body as bytes, when the pool could not hold it.
    body_bytes: Option<Arc<[u8]>>,
    head_keep: Arc<[u8]>,
    head_keep10: Arc<[u8]>,
    head_close: Arc<[u8]>,
    conns: HashMap<ConnId, HttpConn<B>>,
    /// Counters.
    pub stats: HttpStats,
}

impl<B> HttpServer<B> {
    /// A server on `port` answering `GET` with `body_size` bytes.
    pub fn new(port: u16, body_size: usize) -> Self {
        let head = |close, http10| response_head(200, "OK", body_size, close, http10).into();
        HttpServer {
            port,
            body_size,
            body: Vec::new(),
            body_bytes: None,
            head_keep: head(false, false),
            head_keep10: head(false, true),
            head_close: head(true, false),
            conns: HashMap::new(),
            stats: HttpStats::default(),
        }
    }
}

impl<B: PacketBuf> HttpServer<B> {
    /// Fills pool buffers with the body, once.
    fn build_body<D: Device<Buf = B>>(&mut self, cx: &mut Context<'_, D>) {
        let mut filled = 0;
        while filled < self.body_size {
            let Some(mut b) = cx.alloc() else { break };
            let n = b.tailroom().min(self.body_size - filled);
            match b.append(n) {
                Ok(room) if n > 0 => {
                    for (i, x) in room.iter_mut().enumerate() {
                        *x = body_byte(filled + i);
                    }
                    filled += n;
                    self.body.push(b);
                }
                _ => {
                    cx.release(b);
                    break;
                }
            }
        }
        if filled < self.body_size {
            for b in self.body.drain(..) {
                cx.release(b);
            }
            self.body_bytes = Some((0..self.body_size).map(body_byte).collect());
        }
    }

    fn answer(&mut self, c: &mut HttpConn<B>, req: Request) {
        match req.method {
            Method::Get | Method::Head => {
                let head = if !req.keep_alive {
                    &self.head_close
                } else if req.http10 {
                    &self.head_keep10
                } else {
                    &self.head_keep
                };
                c.out.push_back(Out::Bytes(head.clone(), 0));
                if req.method == Method::Get {
                    match &self.body_bytes {
                        Some(bytes) => c.out.push_back(Out::Bytes(bytes.clone(), 0)),
                        None => c.out.extend(self.body.iter().map(|b| Out::Buf(b.share()))),
                    }
                    self.stats.body_bytes += self.body_size as u64;
                }
                self.stats.ok += 1;
            }
            Method::Other => {
                let head = response_head(405, "Method Not Allowed", 0, !req.keep_alive, req.http10);
                c.out.push_back(Out::Bytes(head.into(), 0));
                self.stats.errors += 1;
            }
        }
        c.close_after |= !req.keep_alive;
    }

    fn refuse(&mut self, c: &mut HttpConn<B>, e: RequestError) {
        let (status, reason) = e.status();
        let head = response_head(status, reason, 0, true, false);
        c.out.push_back(Out::Bytes(head.into(), 0));
        c.close_after = true;
        c.input.clear();
        self.stats.errors += 1;
    }

    /// Sends what is queued, parses what is buffered, reads more; stops
    /// when the send buffer is full (the rest of the input then waits in
    /// the receive queue) or the input runs out.
    fn pump<D: Device<Buf = B>>(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let Some(mut c) = self.conns.remove(&id) else {
            return;
        };
        self.pump_conn(cx, id, &mut c);
        self.conns.insert(id, c);
    }

    fn pump_conn<D: Device<Buf = B>>(
        &mut self,
        cx: &mut Context<'_, D>,
        id: ConnId,
        c: &mut HttpConn<B>,
    ) {
        loop {
            while let Some(front) = c.out.pop_front() {
                match front {
                    Out::Bytes(bytes, off) => {
                        let off = off + cx.send_slice(id, &bytes[off..]);
                        if off < bytes.len() {
                            c.out.push_front(Out::Bytes(bytes, off));
                            return;
                        }
                    }
                    Out::Buf(b) => {
                        if let Err(b) = cx.send(id, b) {
                            c.out.push_front(Out::Buf(b));
                            return;
                        }
                    }
                }
            }
            if c.close_after && !c.closing {
                c.closing = true;
                cx.shutdown(id);
            }
            if c.closing {
                // Lingering close: read and drop until the peer is done.
                while let Some(b) = cx.recv(id) {
                    cx.release(b);
                }
                if c.peer_fin {
                    cx.close(id);
                }
                return;
            }
            if c.skip > 0 {
                let n = c.skip.min(c.input.len() as u64) as usize;
                c.input.drain(..n);
                c.skip -= n as u64;
            }
            if c.skip == 0 && !c.input.is_empty() {
                match c.parser.parse(&c.input) {
                    Ok(Some((req, head_len))) => {
                        c.input.drain(..head_len);
                        c.skip = req.content_length;
                        self.answer(c, req);
                        continue;
                    }
                    Err(e) => {
                        self.refuse(c, e);
                        continue;
                    }
                    Ok(None) => {}
                }
            }
            match cx.recv(id) {
                Some(b) => {
                    c.input.extend_from_slice(b.as_slice());
                    cx.release(b);
                }
                None => {
                    if c.peer_fin {
                        // Nothing more will come: an incomplete request
                        // stays unanswered.
                        cx.close(id);
                    }
                    return;
                }
            }
        }
    }
}

impl<D: Device> Handler<D> for HttpServer<D::Buf> {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        self.build_body(cx);
        if let Err(e) = cx.listen(self.port, ListenConfig::default()) {
            eprintln!("http: cannot listen on {}: {e}", self.port);
            cx.stop();
        }
    }
    fn on_accepted(&mut self, _cx: &mut Context<'_, D>, id: ConnId, _port: u16) {
        self.stats.connections += 1;
        self.conns.insert(
            id,
            HttpConn {
                input: Vec::new(),
                parser: RequestParser::default(),
                skip: 0,
                out: VecDeque::new(),
                close_after: false,
                closing: false,
                peer_fin: false,
            },
        );
    }
    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.pump(cx, id);
    }
    fn on_writable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.pump(cx, id);
    }
    fn on_peer_fin(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.peer_fin = true;
        }
        self.pump(cx, id);
    }
    fn on_closed(&mut self, cx: &mut Context<'_, D>, id: ConnId, _reason: CloseReason) {
        if let Some(c) = self.conns.remove(&id) {
            for o in c.out {
                if let Out::Buf(b) = o {
                    cx.release(b);
                }
            }
        }
    }
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// `Content-Length`.
    pub content_length: u64,
    /// `Connection: close`.
    pub close: bool,
}

/// A complete response, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// Its head.
    pub head: ResponseHead,
    /// Whether every body byte was the expected one.
    pub body_ok: bool,
}

/// Reads responses from a byte stream as it arrives; bodies are checked
/// against [`body_byte`] as they pass, not kept.
#[derive(Debug, Default)]
pub struct ResponseReader {
    head: Vec<u8>,
    body: Option<(ResponseHead, u64, bool)>,
}

fn parse_response_head(head: &[u8]) -> Option<ResponseHead> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let (mut content_length, mut close) = (None, false);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("connection") {
            close |= value
                .split(',')
                .any(|o| o.trim().eq_ignore_ascii_case("close"));
        }
    }
    Some(ResponseHead {
        status,
        content_length: content_length?,
        close,
    })
}

impl ResponseReader {
    /// Takes `data`; appends each response it completes to `out`. `Err`
    /// when a head is not HTTP.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Response>) -> Result<(), ()> {
        while !data.is_empty() {
            if let Some((head, seen, ok)) = &mut self.body {
                let n = ((head.content_length - *seen) as usize).min(data.len());
                let start = *seen as usize;
                *ok &= data[..n]
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == body_byte(start + i));
                *seen += n as u64;
                data = &data[n..];
                if *seen == head.content_length {
                    out.push(Response {
                        head: *head,
                        body_ok: *ok,
                    });
                    self.body = None;
                }
                continue;
            }
            // Accumulate the head up to its empty line.
            let before = self.head.len();
            self.head.extend_from_slice(data);
            let from = before.saturating_sub(3);
            let Some(p) = self.head[from..].windows(4).position(|w| w == b"\r\n\r\n") else {
                if self.head.len() > MAX_HEAD {
                    return Err(());
                }
                return Ok(());
            };
            let end = from + p;
            let head = parse_response_head(&self.head[..end]).ok_or(())?;
            let used = end + 4 - before;
            data = &data[used..];
            self.head.clear();
            if head.content_length == 0 {
                out.push(Response {
                    head,
                    body_ok: true,
                });
            } else {
                self.body = Some((head, 0, true));
            }
        }
        Ok(())
    }
}

/// What the demo client saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent.
    pub sent: u64,
    /// 200 answers with the expected body.
    pub ok: u64,
    /// Answers with another status, a wrong body or a wrong length.
    pub bad: u64,
    /// The malformed request's answer status, once seen.
    pub malformed_status: Option<u16>,
    /// Connections that ended before their requests were answered.
    pub failed: u64,
}

struct ClientConn {
    sent: usize,
    answered: usize,
    reader: ResponseReader,
    malformed: bool,
    closed: bool,
}

/// The demo's HTTP client: `conns` keep-alive connections, each sending
/// `requests` `GET`s with up to `depth` of them in flight (pipelined),
/// checking every answer's status and body; plus one connection that sends
/// a malformed request and expects 400 and the server's close.
pub struct HttpClient {
    target: (Ipv4Addr, u16),
    conns: usize,
    requests: usize,
    depth: usize,
    body_size: u64,
    open: HashMap<ConnId, ClientConn>,
    opened: usize,
    malformed_conn: bool,
    started: Option<Instant>,
    finished: Option<Instant>,
    /// Counters.
    pub stats: ClientStats,
}

/// The request the demo client sends.
pub const REQUEST: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: 198.18.0.2\r\nUser-Agent: wirespeed-example\r\n\r\n";

/// A request with a space before a header's colon (RFC 9112 §5.1: 400).
pub const MALFORMED: &[u8] = b"GET / HTTP/1.1\r\nHost : 198.18.0.2\r\n\r\n";

impl HttpClient {
    /// A client of `conns` connections to `target`, and the one that sends
    /// a malformed request when `malformed` is set.
    pub fn new(
        target: (Ipv4Addr, u16),
        conns: usize,
        requests: usize,
        depth: usize,
        body_size: usize,
        malformed: bool,
    ) -> Self {
        HttpClient {
            target,
            conns,
            requests,
            depth: depth.max(1),
            body_size: body_size as u64,
            open: HashMap::new(),
            opened: 0,
            malformed_conn: malformed,
            started: None,
            finished: None,
            stats: ClientStats::default(),
        }
    }

    /// From the first connect to the last answer (the closes after it not
    /// included).
    pub fn busy(&self) -> Option<Duration> {
        Some(self.finished?.saturating_since(self.started?))
    }

    /// Whether every request got its 200 and body and the malformed one
    /// its 400.
    pub fn all_ok(&self) -> bool {
        self.stats.ok == (self.conns * self.requests) as u64
            && self.stats.bad == 0
            && self.stats.failed == 0
            && (!self.malformed_conn || self.stats.malformed_status == Some(400))
    }

    fn fill<D: Device>(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let Some(c) = self.open.get_mut(&id) else {
            return;
        };
        if c.malformed {
            if c.sent == 0 && cx.send_slice(id, MALFORMED) == MALFORMED.len() {
                c.sent = 1;
            }
            return;
        }
        while c.sent < self.requests && c.sent - c.answered < self.depth {
            if cx.send_slice(id, REQUEST) < REQUEST.len() {
                // Partly queued requests would be cut: the send buffer
                // holds far more than the pipeline depth needs.
                break;
            }
            c.sent += 1;
            self.stats.sent += 1;
        }
        if c.answered == self.requests && !c.closed {
            c.closed = true;
            cx.close(id);
        }
    }
}

impl<D: Device> Handler<D> for HttpClient {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        self.started = Some(cx.now());
        let total = self.conns + usize::from(self.malformed_conn);
        for i in 0..total {
            match cx.connect(self.target) {
                Ok(id) => {
                    self.opened += 1;
                    let c = ClientConn {
                        sent: 0,
                        answered: 0,
                        reader: ResponseReader::default(),
                        malformed: i == self.conns,
                        closed: false,
                    };
                    self.open.insert(id, c);
                }
                Err(e) => {
                    eprintln!("http client: connect: {e}");
                    self.stats.failed += 1;
                }
            }
        }
    }
    fn on_connected(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.fill(cx, id);
    }
    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let Some(c) = self.open.get_mut(&id) else {
            return;
        };
        let mut done = Vec::new();
        while let Some(b) = cx.recv(id) {
            if c.reader.feed(b.as_slice(), &mut done).is_err() {
                self.stats.bad += 1;
            }
            cx.release(b);
        }
        for r in done {
            self.finished = Some(cx.now());
            c.answered += 1;
            if c.malformed {
                self.stats.malformed_status = Some(r.head.status);
            } else if r.head.status == 200 && r.body_ok && r.head.content_length == self.body_size {
                self.stats.ok += 1;
            } else {
                self.stats.bad += 1;
            }
        }
        self.fill(cx, id);
    }
    fn on_peer_fin(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        // After our close, or the server's after the malformed request;
        // an early close shows as an incomplete connection when it ends.
        cx.close(id);
    }
    fn on_closed(&mut self, _cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        if let Some(c) = self.open.remove(&id) {
            let complete = c.answered == if c.malformed { 1 } else { self.requests };
            if !complete || reason != CloseReason::Normal {
                self.stats.failed += 1;
            }
        }
    }
    fn is_done(&self) -> bool {
        self.opened > 0 && self.open.is_empty()
    }
}

/// What a demo run gave.
pub struct HttpDemo {
    /// The client's view.
    pub client: HttpClient,
    /// The server's counters.
    pub server: HttpStats,
    /// From the client's first connect to its last verified byte.
    pub elapsed: std::time::Duration,
}

/// The demo: the server on 198.18.0.2 `port` with `body_size`-byte
/// bodies, the client on 198.18.0.1 (`conns` connections × `requests`
/// requests, `depth` pipelined, and one malformed request), joined by the
/// in-memory link.
pub fn demo(
    port: u16,
    body_size: usize,
    conns: usize,
    requests: usize,
    depth: usize,
) -> Result<HttpDemo, String> {
    let run = run_on_link(
        1,
        Duration::from_secs(120),
        demo_tcp(),
        move |_| HttpServer::new(port, body_size),
        || Ok(()),
        move |_| HttpClient::new((SERVER_IP, port), conns, requests, depth, body_size, true),
    )?;
    let c = run.clients.into_iter().next().ok_or("no client worker")?;
    let s = run.servers.into_iter().next().ok_or("no server worker")?;
    Ok(HttpDemo {
        elapsed: c.handler.busy().unwrap_or(run.elapsed),
        client: c.handler,
        server: s.handler.stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(stream: &[u8]) -> Vec<Result<Request, RequestError>> {
        let mut p = RequestParser::default();
        let mut buf = stream.to_vec();
        let mut out = Vec::new();
        loop {
            match p.parse(&buf) {
                Ok(Some((req, n))) => {
                    out.push(Ok(req));
                    buf.drain(..n + req.content_length as usize);
                }
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[test]
    fn request_split_anywhere_parses_the_same() {
        let stream = [
            REQUEST,
            b"\r\nHEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ]
        .concat();
        let whole = parse_all(&stream);
        assert_eq!(whole.len(), 2);
        for cut in 1..stream.len() {
            let mut p = RequestParser::default();
            let mut buf = stream[..cut].to_vec();
            let mut got = Vec::new();
            let mut fed = cut;
            loop {
                match p.parse(&buf).unwrap() {
                    Some((req, n)) => {
                        got.push(Ok(req));
                        buf.drain(..n);
                    }
                    None if fed < stream.len() => {
                        // One byte at a time after the cut.
                        buf.push(stream[fed]);
                        fed += 1;
                    }
                    None => break,
                }
            }
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    #[test]
    fn keep_alive_rules() {
        let r = |s: &[u8]| parse_all(s).remove(0).unwrap();
        assert!(r(REQUEST).keep_alive);
        assert!(!r(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!r(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        let ka10 = r(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(ka10.keep_alive && ka10.http10);
        let post = r(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!((post.method, post.content_length), (Method::Other, 5));
    }

    #[test]
    fn malformed_requests_are_named() {
        let e = |s: &[u8]| parse_all(s).remove(0).unwrap_err();
        assert!(matches!(e(MALFORMED), RequestError::Malformed(_)));
        assert!(matches!(
            e(b"GET / HTTP/1.1\r\n\r\n"),
            RequestError::Malformed("host")
        ));
        assert!(matches!(
            e(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::Malformed(_)
        ));
        assert!(matches!(
            e(b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
            RequestError::Malformed(_)
        ));
        assert!(matches!(
            e(b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"),
            RequestError::Malformed(_)
        ));
        assert!(matches!(
            e(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            RequestError::Malformed(_)
        ));
        assert!(matches!(
            e(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            RequestError::Malformed(_)
        ));
        assert_eq!(e(b"GET / HTTP/2.0\r\n\r\n"), RequestError::Version);
        assert_eq!(
            e(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            RequestError::TransferEncoding
        );
        let long = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(e(&long), RequestError::HeadTooLarge);
        // Garbage never panics.
        for junk in [
            &b"\0\0\r\n\r\n"[..],
            b"\r\n\r\n",
            b": \r\n\r\n",
            b"\xff \xff \xff\r\n\r\n",
        ] {
            assert!(parse_all(junk).iter().all(Result::is_err), "{junk:?}");
        }
    }

    #[test]
    fn responses_split_anywhere_read_the_same() {
        let body: Vec<u8> = (0..100).map(body_byte).collect();
        let one = [response_head(200, "OK", 100, false, false), body.clone()].concat();
        let stream = [
            one.clone(),
            response_head(400, "Bad Request", 0, true, false),
            one,
        ]
        .concat();
        for cut in 0..stream.len() {
            let mut r = ResponseReader::default();
            let mut out = Vec::new();
            r.feed(&stream[..cut], &mut out).unwrap();
            r.feed(&stream[cut..], &mut out).unwrap();
            let statuses: Vec<_> = out.iter().map(|x| (x.head.status, x.body_ok)).collect();
            assert_eq!(
                statuses,
                [(200, true), (400, true), (200, true)],
                "cut {cut}"
            );
        }
        let mut wrong = stream.clone();
        let at = wrong.len() - 1;
        wrong[at] ^= 1;
        let mut out = Vec::new();
        ResponseReader::default().feed(&wrong, &mut out).unwrap();
        assert!(!out[2].body_ok);
    }
}
