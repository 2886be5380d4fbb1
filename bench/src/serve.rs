//! The server emulator: inline handlers for `http`, `echo` and `discard`,
//! one per worker.
//!
//! - `http`: HTTP/1.1 keep-alive; every `GET` gets 200 with a body of the
//!   configured size, other methods 405, a malformed request 400 and a
//!   close. The response bytes are built once per worker; up to
//!   [`SHARED_RESPONSE_MAX`] they live in port buffers sent as shared
//!   handles (zero copy per response), bigger ones are copied in as send
//!   space opens. Replies go out in request order; one larger than the
//!   send buffer goes out in pieces.
//! - `echo` (RFC 862): received buffers are sent back as they are (zero
//!   copy).
//! - `discard` (RFC 863): received buffers go straight back to the pool.
//!
//! Each connection's close from the peer is answered with our close.
//! Counters go to a [`CoreStats`] like the load generator's, so a `serve`
//! run prints the same live line (requests are requests answered).

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::Sender;

use wirespeed::api::{Context, Handler};
use wirespeed::buf::PacketBuf;
use wirespeed::port::Device;
use wirespeed::tcp::{CloseReason, ConnId, ListenConfig, State};
use wirespeed::time::{Duration, Instant};

use crate::args::ServeMode;
use crate::http::{response_head, RequestParser};
use crate::stats::{CoreStats, Interval};

/// The largest 200 response kept in port buffers and shared per send: a
/// 256-buffer slice of a port's pool (4096 buffers on a TAP) at most.
pub const SHARED_RESPONSE_MAX: usize = 256 * CHUNK;

/// Bytes per port buffer of a shared response.
const CHUNK: usize = 1024;

/// The body of every 200 response: `a` to `z`, repeated.
fn body(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (len - out.len()).min(ALPHABET.len());
        out.extend_from_slice(&ALPHABET[..n]);
    }
    out
}

/// An HTTP reply owed to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// The 200 response; `close` once it is queued (the client asked).
    Page { close: bool },
    /// An error status with an empty body; `close` once it is queued.
    Error { status: u16, close: bool },
}

/// Replies a connection is owed while its send buffer is full, oldest
/// first.
#[derive(Debug, Default)]
struct Owed {
    replies: VecDeque<Reply>,
    /// Bytes of the oldest reply already queued.
    sent: usize,
}

/// One worker's server.
pub struct Server<D: Device> {
    mode: ServeMode,
    port: u16,
    body_size: usize,
    /// The 200 response, head and body.
    page: Vec<u8>,
    /// The same bytes in port buffers of [`CHUNK`] bytes, shared per send;
    /// empty when the response is copied instead.
    shared: Vec<D::Buf>,
    conns: HashMap<ConnId, RequestParser>,
    /// Echo: a received view waiting for send space, per connection.
    held: HashMap<ConnId, D::Buf>,
    /// HTTP connections whose replies did not fit in the send buffer.
    owed: HashMap<ConnId, Owed>,
    /// Statistics of this worker.
    pub stats: CoreStats,
    intervals: Option<Sender<Interval>>,
    start: Instant,
    next_tick: Instant,
    end: Option<Instant>,
    done: bool,
}

impl<D: Device> core::fmt::Debug for Server<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("mode", &self.mode)
            .field("port", &self.port)
            .field("connections", &self.conns.len())
            .finish()
    }
}

impl<D: Device> Server<D> {
    /// A server of `mode` on TCP `port`; `intervals` receives one statistics
    /// interval per second from `start`; serving ends at `end` if given.
    pub fn new(
        mode: ServeMode,
        port: u16,
        body_size: usize,
        intervals: Option<Sender<Interval>>,
        start: Instant,
        end: Option<Instant>,
    ) -> Self {
        Server {
            mode,
            port,
            body_size,
            page: Vec::new(),
            shared: Vec::new(),
            conns: HashMap::new(),
            owed: HashMap::new(),
            held: HashMap::new(),
            stats: CoreStats::new(),
            intervals,
            start,
            next_tick: start + Duration::from_secs(1),
            end,
            done: false,
        }
    }

    fn build_response(&mut self, cx: &mut Context<'_, D>) {
        self.page = response_head(200, self.body_size, false).into_bytes();
        self.page.extend_from_slice(&body(self.body_size));
        if self.page.len() > SHARED_RESPONSE_MAX {
            return;
        }
        for chunk in self.page.chunks(CHUNK) {
            let Some(mut b) = cx.alloc() else {
                // No pool buffer: fall back on copying per response.
                self.release_shared(cx);
                return;
            };
            match b.append(chunk.len()) {
                Ok(room) => room.copy_from_slice(chunk),
                Err(_) => {
                    cx.release(b);
                    self.release_shared(cx);
                    return;
                }
            }
            self.shared.push(b);
        }
    }

    fn release_shared(&mut self, cx: &mut Context<'_, D>) {
        for b in self.shared.drain(..) {
            cx.release(b);
        }
    }

    /// Queues `reply` behind whatever `id` is owed already.
    fn reply(&mut self, cx: &mut Context<'_, D>, id: ConnId, reply: Reply) {
        if let Some(owed) = self.owed.get_mut(&id) {
            owed.replies.push_back(reply);
            return;
        }
        match self.write_reply(cx, id, reply, 0) {
            None => self.replied(cx, id, reply),
            Some(sent) => {
                self.owed.insert(
                    id,
                    Owed {
                        replies: VecDeque::from([reply]),
                        sent,
                    },
                );
            }
        }
    }

    /// Queues `reply` from byte `from` on: `None` once all of it is
    /// queued, else how far it got (the send buffer is full; a refused
    /// send brings [`Handler::on_writable`] once space opens).
    fn write_reply(
        &mut self,
        cx: &mut Context<'_, D>,
        id: ConnId,
        reply: Reply,
        from: usize,
    ) -> Option<usize> {
        match reply {
            Reply::Page { .. } if !self.shared.is_empty() => {
                // Whole chunks only, so `from` is always a chunk boundary.
                for (i, b) in self.shared.iter().enumerate().skip(from / CHUNK) {
                    if let Err(back) = cx.send(id, b.share()) {
                        cx.release(back);
                        return Some(i * CHUNK);
                    }
                }
                None
            }
            Reply::Page { .. } => {
                let n = cx.send_slice(id, &self.page[from..]);
                (from + n < self.page.len()).then_some(from + n)
            }
            Reply::Error { status, close } => {
                let head = response_head(status, 0, close);
                let n = cx.send_slice(id, &head.as_bytes()[from..]);
                (from + n < head.len()).then_some(from + n)
            }
        }
    }

    /// Counts a reply queued in full, and closes if it said so.
    fn replied(&mut self, cx: &mut Context<'_, D>, id: ConnId, reply: Reply) {
        self.stats.counters.requests += 1;
        let close = match reply {
            Reply::Page { close } => {
                self.stats.counters.responses += 1;
                self.stats.counters.bytes_tx += self.page.len() as u64;
                self.stats.record_status(200);
                close
            }
            Reply::Error { status, close } => {
                self.stats.counters.bytes_tx += response_head(status, 0, close).len() as u64;
                self.stats.record_status(status);
                close
            }
        };
        if close {
            cx.close(id);
        }
    }

    fn http_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        // Replies owed from before go first (order matters).
        if self.pay_debt(cx, id) {
            // Still owing: leave new data in the receive queue, so the
            // client's window closes instead of our memory growing.
            return;
        }
        while let Some(buf) = cx.recv(id) {
            self.stats.counters.bytes_rx += buf.len() as u64;
            let mut parser = self.conns.remove(&id).unwrap_or_default();
            let mut reqs = Vec::new();
            let parsed = parser.feed(buf.as_slice(), |r| reqs.push(r));
            cx.release(buf);
            self.conns.insert(id, parser);
            for r in reqs {
                let reply = if r.get {
                    Reply::Page { close: r.close }
                } else {
                    Reply::Error {
                        status: 405,
                        close: r.close,
                    }
                };
                self.reply(cx, id, reply);
            }
            if parsed.is_err() {
                let bad = Reply::Error {
                    status: 400,
                    close: true,
                };
                self.reply(cx, id, bad);
                return;
            }
            if self.owed.contains_key(&id) {
                return;
            }
        }
    }

    /// Queues what `id` is owed, in order; true while some is still owed.
    fn pay_debt(&mut self, cx: &mut Context<'_, D>, id: ConnId) -> bool {
        let Some(mut owed) = self.owed.remove(&id) else {
            return false;
        };
        while let Some(&reply) = owed.replies.front() {
            if let Some(sent) = self.write_reply(cx, id, reply, owed.sent) {
                owed.sent = sent;
                self.owed.insert(id, owed);
                return true;
            }
            owed.replies.pop_front();
            owed.sent = 0;
            self.replied(cx, id, reply);
        }
        false
    }

    /// Sends a received view back, zero copy.
    fn echo(&mut self, cx: &mut Context<'_, D>, id: ConnId, buf: D::Buf) -> Result<(), D::Buf> {
        let n = buf.len() as u64;
        cx.send(id, buf)?;
        self.stats.counters.bytes_rx += n;
        self.stats.counters.bytes_tx += n;
        self.stats.counters.requests += 1;
        Ok(())
    }

    fn tick(&mut self, now: Instant) {
        while now >= self.next_tick {
            self.next_tick += Duration::from_secs(1);
            let iv = self.stats.take_interval();
            if let Some(tx) = &self.intervals {
                let _ = tx.send(iv);
            }
        }
    }
}

impl<D: Device> Handler<D> for Server<D> {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        let config = ListenConfig {
            backlog: 65536,
            syn_backlog: 65536,
            syn_cookies: true,
        };
        if cx.listen(self.port, config).is_err() {
            self.done = true;
            return;
        }
        if self.mode == ServeMode::Http {
            self.build_response(cx);
        }
        let _ = self.start;
    }

    fn on_accepted(&mut self, _cx: &mut Context<'_, D>, id: ConnId, _port: u16) {
        self.stats.connection_opened();
        if self.mode == ServeMode::Http {
            self.conns.insert(id, RequestParser::new());
        }
    }

    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        match self.mode {
            ServeMode::Http => self.http_readable(cx, id),
            ServeMode::Echo => {
                // A view refused for lack of send space waits here, and
                // reading stops until it is out: the receive window, not
                // our memory, absorbs a client that outpaces us.
                if let Some(buf) = self.held.remove(&id) {
                    if let Err(back) = self.echo(cx, id, buf) {
                        self.held.insert(id, back);
                        return;
                    }
                }
                while let Some(buf) = cx.recv(id) {
                    if let Err(back) = self.echo(cx, id, buf) {
                        self.held.insert(id, back);
                        return;
                    }
                }
            }
            ServeMode::Discard => {
                while let Some(buf) = cx.recv(id) {
                    self.stats.counters.bytes_rx += buf.len() as u64;
                    cx.release(buf);
                }
            }
        }
    }

    fn on_writable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        match self.mode {
            ServeMode::Http => {
                if !self.pay_debt(cx, id) {
                    self.http_readable(cx, id);
                }
            }
            ServeMode::Echo => self.on_readable(cx, id),
            ServeMode::Discard => {}
        }
        // The peer finished while we were behind: close once caught up.
        let behind = self.owed.contains_key(&id) || self.held.contains_key(&id);
        if !behind && cx.conn(id).is_some_and(|c| c.state() == State::CloseWait) {
            cx.close(id);
        }
    }

    fn on_peer_fin(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        if !self.owed.contains_key(&id) && !self.held.contains_key(&id) {
            cx.close(id);
        }
    }

    fn on_closed(&mut self, cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        if let Some(b) = self.held.remove(&id) {
            cx.release(b);
        }
        self.conns.remove(&id);
        self.owed.remove(&id);
        self.stats.connection_closed();
        if reason == CloseReason::Reset {
            self.stats.record_error(crate::stats::ErrorKind::Reset);
        }
    }

    fn on_poll(&mut self, cx: &mut Context<'_, D>) {
        let now = cx.now();
        if now >= self.next_tick {
            self.tick(now);
        }
        if self.end.is_some_and(|e| now >= e) {
            self.done = true;
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

impl<D: Device> Server<D> {
    /// Sends the last, partial interval (call after the loop ends).
    pub fn finish(&mut self) {
        let iv = self.stats.take_interval();
        if let Some(tx) = &self.intervals {
            let _ = tx.send(iv);
        }
    }
}
