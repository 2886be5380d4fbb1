//! The server emulator: inline handlers for `http`, `echo` and `discard`,
//! one per worker.
//!
//! - `http`: HTTP/1.1 keep-alive; every `GET` gets 200 with a body of the
//!   configured size, other methods 405, a malformed request 400 and a
//!   close. The response bytes are built once per worker in port buffers
//!   and sent as shared handles: zero copy per response.
//! - `echo` (RFC 862): received buffers are sent back as they are (zero
//!   copy).
//! - `discard` (RFC 863): received buffers go straight back to the pool.
//!
//! Each connection's close from the peer is answered with our close.
//! Counters go to a [`CoreStats`] like the load generator's, so a `serve`
//! run prints the same live line (requests are requests answered).

use std::collections::HashMap;
use std::sync::mpsc::Sender;

use wirespeed::api::{Context, Handler};
use wirespeed::buf::PacketBuf;
use wirespeed::port::Device;
use wirespeed::tcp::{CloseReason, ConnId, ListenConfig, State};
use wirespeed::time::{Duration, Instant};

use crate::args::ServeMode;
use crate::http::{response_head, RequestParser};
use crate::stats::{CoreStats, Interval};

/// One worker's server.
pub struct Server<D: Device> {
    mode: ServeMode,
    port: u16,
    body_size: usize,
    /// The 200 response, in port buffers, shared per send.
    response: Vec<D::Buf>,
    response_len: usize,
    conns: HashMap<ConnId, RequestParser>,
    /// Echo: a received view waiting for send space, per connection.
    held: HashMap<ConnId, D::Buf>,
    /// Connections whose response could not be queued in full (send buffer
    /// full): how many responses are still owed.
    owed: HashMap<ConnId, u64>,
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
            response: Vec::new(),
            response_len: 0,
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
        let mut bytes = response_head(200, self.body_size, false).into_bytes();
        bytes.extend((0..self.body_size).map(|i| b'a' + (i % 26) as u8));
        self.response_len = bytes.len();
        for chunk in bytes.chunks(1024) {
            let Some(mut b) = cx.alloc() else {
                // No pool buffer: fall back on copying per response.
                self.response.clear();
                return;
            };
            match b.append(chunk.len()) {
                Ok(room) => room.copy_from_slice(chunk),
                Err(_) => {
                    cx.release(b);
                    self.response.clear();
                    return;
                }
            }
            self.response.push(b);
        }
    }

    /// Queues one 200 response; false when the send buffer is full.
    fn send_response(&mut self, cx: &mut Context<'_, D>, id: ConnId) -> bool {
        if self.response.is_empty() {
            let mut bytes = response_head(200, self.body_size, false).into_bytes();
            bytes.extend((0..self.body_size).map(|i| b'a' + (i % 26) as u8));
            // All or nothing: a partial response would corrupt the stream.
            let free = cx.conn(id).map_or(0, |c| c.send_space());
            if free < bytes.len() {
                return false;
            }
            cx.send_slice(id, &bytes);
        } else {
            let free = cx.conn(id).map_or(0, |c| c.send_space());
            if free < self.response_len {
                return false;
            }
            for b in &self.response {
                if let Err(back) = cx.send(id, b.share()) {
                    cx.release(back);
                    return false;
                }
            }
        }
        self.stats.counters.requests += 1;
        self.stats.counters.responses += 1;
        self.stats.counters.bytes_tx += self.response_len as u64;
        self.stats.record_status(200);
        true
    }

    fn send_error(&mut self, cx: &mut Context<'_, D>, id: ConnId, status: u16, close: bool) {
        let head = response_head(status, 0, close);
        cx.send_slice(id, head.as_bytes());
        self.stats.record_status(status);
        self.stats.counters.requests += 1;
        self.stats.counters.bytes_tx += head.len() as u64;
        if close {
            cx.close(id);
        }
    }

    fn http_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        // Responses owed from before go first (order matters).
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
                if !r.get {
                    self.send_error(cx, id, 405, r.close);
                } else if self.owed.contains_key(&id) || !self.send_response(cx, id) {
                    *self.owed.entry(id).or_insert(0) += 1;
                } else if r.close {
                    cx.close(id);
                }
            }
            if parsed.is_err() {
                self.send_error(cx, id, 400, true);
                return;
            }
            if self.owed.contains_key(&id) {
                return;
            }
        }
    }

    /// Sends owed responses; true while some are still owed.
    fn pay_debt(&mut self, cx: &mut Context<'_, D>, id: ConnId) -> bool {
        let Some(mut n) = self.owed.remove(&id) else {
            return false;
        };
        while n > 0 && self.send_response(cx, id) {
            n -= 1;
        }
        if n > 0 {
            self.owed.insert(id, n);
        }
        n > 0
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
