//! HTTP/1.1 for the load generator and the server emulator: incremental
//! parsers that take bytes as they arrive (a response may span many
//! segments, a segment may hold many pipelined messages) and never copy a
//! body.
//!
//! - [`ResponseParser`]: status line, headers, then a body framed by
//!   `Content-Length` or `Transfer-Encoding: chunked` (RFC 9112 §6–7).
//! - [`RequestParser`]: request line and headers; bodies with
//!   `Content-Length` are skipped (the emulated server ignores them).
//!
//! Limits: a head (start line and headers) is at most [`MAX_HEAD`] bytes;
//! anything malformed is an error, and the caller drops the connection.

use std::fmt;

/// Longest request or response head accepted.
pub const MAX_HEAD: usize = 8192;

/// Why a message did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// The head exceeded [`MAX_HEAD`] bytes.
    HeadTooLong,
    /// The start line is malformed.
    BadStartLine,
    /// A header line is malformed.
    BadHeader,
    /// `Content-Length` or a chunk size is not a number.
    BadLength,
    /// Chunk data not followed by CRLF.
    BadChunk,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::HeadTooLong => "message head too long",
            HttpError::BadStartLine => "malformed start line",
            HttpError::BadHeader => "malformed header",
            HttpError::BadLength => "malformed length",
            HttpError::BadChunk => "malformed chunk",
        })
    }
}

impl std::error::Error for HttpError {}

/// Finds the end of a head (`\r\n\r\n`) in `head`, searching from `from`.
fn head_end(head: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    head.get(start..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| start + p + 4)
}

fn parse_decimal(v: &[u8]) -> Result<u64, HttpError> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadLength);
    }
    Ok(v.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// The headers that frame a message.
#[derive(Debug, Default, Clone, Copy)]
struct Framing {
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
}

/// Reads the header lines of a head (after the start line).
fn framing(lines: &[u8]) -> Result<Framing, HttpError> {
    let mut f = Framing::default();
    for line in lines.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HttpError::BadHeader)?;
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
            return Err(HttpError::BadHeader);
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            f.content_length = Some(parse_decimal(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            f.chunked = value
                .split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            f.close = value
                .split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"close"));
        }
    }
    Ok(f)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Reading the head.
    Head,
    /// `n` body bytes to go.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// `n` bytes of chunk data to go, then CRLF.
    ChunkData(u64),
    /// The CRLF after chunk data (`n` of its bytes seen).
    ChunkEnd(u8),
    /// Trailer lines after the last chunk, until an empty line.
    Trailer,
}

/// A complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Body bytes (after de-chunking).
    pub body_len: u64,
    /// The server said `Connection: close`.
    pub close: bool,
}

/// Incremental HTTP/1.1 response parser.
#[derive(Debug)]
pub struct ResponseParser {
    head: Vec<u8>,
    body: Body,
    status: u16,
    body_len: u64,
    close: bool,
    line: Vec<u8>,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    /// A parser waiting for a status line.
    pub fn new() -> Self {
        ResponseParser {
            head: Vec::with_capacity(256),
            body: Body::Head,
            status: 0,
            body_len: 0,
            close: false,
            line: Vec::new(),
        }
    }

    /// Whether a response is partly read.
    pub fn in_progress(&self) -> bool {
        self.body != Body::Head || !self.head.is_empty()
    }

    /// Feeds `data`; calls `done` for each response completed in it.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        mut done: impl FnMut(Response),
    ) -> Result<(), HttpError> {
        while !data.is_empty() {
            match self.body {
                Body::Head => {
                    let from = self.head.len();
                    let take = data.len().min(MAX_HEAD + 4 - from);
                    self.head.extend_from_slice(&data[..take]);
                    match head_end(&self.head, from) {
                        Some(end) => {
                            let extra = self.head.len() - end;
                            self.start_body(end)?;
                            data = &data[take - extra..];
                            self.head.clear();
                            if self.body == Body::Fixed(0) {
                                self.finish(&mut done);
                            }
                        }
                        None if self.head.len() > MAX_HEAD => return Err(HttpError::HeadTooLong),
                        None => data = &data[take..],
                    }
                }
                Body::Fixed(n) => {
                    let k = (data.len() as u64).min(n);
                    self.body_len += k;
                    data = &data[k as usize..];
                    self.body = Body::Fixed(n - k);
                    if n == k {
                        self.finish(&mut done);
                    }
                }
                Body::ChunkSize | Body::Trailer => {
                    let nl = data.iter().position(|&b| b == b'\n');
                    let upto = nl.map_or(data.len(), |p| p + 1);
                    if self.line.len() + upto > MAX_HEAD {
                        return Err(HttpError::HeadTooLong);
                    }
                    self.line.extend_from_slice(&data[..upto]);
                    data = &data[upto..];
                    if nl.is_none() {
                        continue;
                    }
                    let line = core::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\n").unwrap_or(&line);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if self.body == Body::Trailer {
                        if line.is_empty() {
                            self.finish(&mut done);
                        }
                        continue;
                    }
                    // RFC 9112 §7.1: chunk-size [; extensions]
                    let size = line.split(|&b| b == b';').next().unwrap_or(&[]);
                    let size = trim(size);
                    if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit)
                    {
                        return Err(HttpError::BadLength);
                    }
                    let n = size.iter().fold(0u64, |n, &d| {
                        n * 16 + u64::from((d as char).to_digit(16).unwrap_or(0))
                    });
                    self.body = if n == 0 {
                        Body::Trailer
                    } else {
                        Body::ChunkData(n)
                    };
                }
                Body::ChunkData(n) => {
                    let k = (data.len() as u64).min(n);
                    self.body_len += k;
                    data = &data[k as usize..];
                    self.body = if n == k {
                        Body::ChunkEnd(0)
                    } else {
                        Body::ChunkData(n - k)
                    };
                }
                Body::ChunkEnd(seen) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    if data[0] != want {
                        return Err(HttpError::BadChunk);
                    }
                    data = &data[1..];
                    self.body = if seen == 0 {
                        Body::ChunkEnd(1)
                    } else {
                        Body::ChunkSize
                    };
                }
            }
        }
        Ok(())
    }

    fn start_body(&mut self, end: usize) -> Result<(), HttpError> {
        let head = &self.head[..end];
        let first = head
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(HttpError::BadStartLine)?;
        let line = &head[..first];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // RFC 9112 §4: HTTP-version SP status-code SP [reason-phrase]
        let mut parts = line.splitn(3, |&b| b == b' ');
        let version = parts.next().unwrap_or(&[]);
        let code = parts.next().unwrap_or(&[]);
        if !version.starts_with(b"HTTP/1.")
            || code.len() != 3
            || !code.iter().all(u8::is_ascii_digit)
        {
            return Err(HttpError::BadStartLine);
        }
        self.status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        let f = framing(&head[first + 1..])?;
        self.close = f.close;
        self.body_len = 0;
        // RFC 9112 §6.3: 1xx, 204 and 304 have no body; chunked wins over
        // Content-Length.
        let no_body = self.status < 200 || self.status == 204 || self.status == 304;
        self.body = if no_body {
            Body::Fixed(0)
        } else if f.chunked {
            Body::ChunkSize
        } else {
            // A response without length reads to close; the load generator
            // needs framing to count responses, so it treats it as empty.
            Body::Fixed(f.content_length.unwrap_or(0))
        };
        Ok(())
    }

    fn finish(&mut self, done: &mut impl FnMut(Response)) {
        done(Response {
            status: self.status,
            body_len: self.body_len,
            close: self.close,
        });
        self.body = Body::Head;
        self.body_len = 0;
    }
}

/// A parsed request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// `GET` (the only method answered with 200; others get 405).
    pub get: bool,
    /// The client asked to close after this request (`Connection: close`,
    /// or HTTP/1.0 without keep-alive).
    pub close: bool,
}

/// Incremental HTTP/1.1 request parser.
#[derive(Debug, Default)]
pub struct RequestParser {
    head: Vec<u8>,
    skip: u64,
}

impl RequestParser {
    /// A parser waiting for a request line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `data`; calls `done` for each request head completed in it.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        mut done: impl FnMut(Request),
    ) -> Result<(), HttpError> {
        while !data.is_empty() {
            if self.skip > 0 {
                let k = (data.len() as u64).min(self.skip);
                self.skip -= k;
                data = &data[k as usize..];
                continue;
            }
            let from = self.head.len();
            let take = data.len().min(MAX_HEAD + 4 - from);
            self.head.extend_from_slice(&data[..take]);
            match head_end(&self.head, from) {
                Some(end) => {
                    let extra = self.head.len() - end;
                    let req = self.parse_head(end)?;
                    self.head.clear();
                    data = &data[take - extra..];
                    done(req);
                }
                None if self.head.len() > MAX_HEAD => return Err(HttpError::HeadTooLong),
                None => data = &data[take..],
            }
        }
        Ok(())
    }

    fn parse_head(&mut self, end: usize) -> Result<Request, HttpError> {
        let head = &self.head[..end];
        let first = head
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(HttpError::BadStartLine)?;
        let line = &head[..first];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // RFC 9112 §3: method SP request-target SP HTTP-version
        let mut parts = line.split(|&b| b == b' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HttpError::BadStartLine);
        };
        if method.is_empty()
            || !method.iter().all(u8::is_ascii_uppercase)
            || target.is_empty()
            || !version.starts_with(b"HTTP/1.")
        {
            return Err(HttpError::BadStartLine);
        }
        let f = framing(&head[first + 1..])?;
        if f.chunked {
            // A chunked request body is not supported by the emulator.
            return Err(HttpError::BadLength);
        }
        self.skip = f.content_length.unwrap_or(0);
        let http10 = version == b"HTTP/1.0";
        Ok(Request {
            get: method == b"GET",
            close: f.close || http10,
        })
    }
}

/// The response head the server emulator sends before a body of `len`
/// bytes.
pub fn response_head(status: u16, len: usize, close: bool) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        _ => "Status",
    };
    let conn = if close { "Connection: close\r\n" } else { "" };
    format!(
        "HTTP/1.1 {status} {reason}\r\nServer: wirespeed\r\nContent-Length: {len}\r\n{conn}\r\n"
    )
}

/// A GET request for `path` on `host`.
pub fn get_request(path: &str, host: &str, close: bool) -> Vec<u8> {
    let conn = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{conn}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responses(chunks: &[&[u8]]) -> Result<Vec<Response>, HttpError> {
        let mut p = ResponseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |r| out.push(r))?;
        }
        Ok(out)
    }

    #[test]
    fn content_length_split_anywhere() {
        let msg = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\ncontent-length:0\r\n\r\n";
        for cut in 0..msg.len() {
            let got = responses(&[&msg[..cut], &msg[cut..]]).unwrap();
            assert_eq!(got.len(), 2, "cut {cut}");
            assert_eq!((got[0].status, got[0].body_len), (200, 5));
            assert_eq!((got[1].status, got[1].body_len), (404, 0));
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = msg.chunks(1).collect();
        assert_eq!(responses(&bytes).unwrap().len(), 2);
    }

    #[test]
    fn chunked_with_extensions_and_trailer() {
        let msg = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        for cut in 0..msg.len() {
            let got = responses(&[&msg[..cut], &msg[cut..]]).unwrap();
            assert_eq!(got.len(), 1, "cut {cut}");
            assert_eq!(got[0].body_len, 15);
        }
        assert_eq!(
            responses(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX"]),
            Err(HttpError::BadChunk)
        );
        assert_eq!(
            responses(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]),
            Err(HttpError::BadLength)
        );
    }

    #[test]
    fn no_body_statuses_and_close() {
        let got = responses(&[
            b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nHTTP/1.1 500 E\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
        ])
        .unwrap();
        assert_eq!(got[0].status, 204);
        assert_eq!(got[0].body_len, 0);
        assert_eq!(got[1].status, 500);
        assert!(got[1].close);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"FOO\r\n\r\n"[..],
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert!(
                responses(&[bad]).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(responses(&[&long]), Err(HttpError::HeadTooLong));
    }

    #[test]
    fn requests_pipelined_and_split() {
        let mut msg = get_request("/", "h", false);
        msg.extend(b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        msg.extend(get_request("/y", "h", true));
        for cut in 0..msg.len() {
            let mut p = RequestParser::new();
            let mut got = Vec::new();
            p.feed(&msg[..cut], |r| got.push(r)).unwrap();
            p.feed(&msg[cut..], |r| got.push(r)).unwrap();
            assert_eq!(got.len(), 3, "cut {cut}");
            assert!(got[0].get && !got[0].close);
            assert!(!got[1].get);
            assert!(got[2].get && got[2].close);
        }
        let mut p = RequestParser::new();
        assert!(p.feed(b"get / HTTP/1.1\r\n\r\n", |_| {}).is_err());
        let mut p = RequestParser::new();
        assert!(p.feed(b"GET /\r\n\r\n", |_| {}).is_err());
    }

    #[test]
    fn response_head_round_trips() {
        let mut bytes = response_head(200, 3, false).into_bytes();
        bytes.extend(b"abc");
        let got = responses(&[&bytes]).unwrap();
        assert_eq!(
            got,
            vec![Response {
                status: 200,
                body_len: 3,
                close: false
            }]
        );
    }
}
