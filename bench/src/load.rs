//! The load generator: one inline handler per worker.
//!
//! Modes (see `docs/cli.md`):
//! - `http`: GET requests on keep-alive connections (`pipeline` in flight
//!   per connection), or one connection per request;
//! - `echo`: messages of `size` bytes, every byte checked on return;
//! - `connect`: open, one echo exchange of `size` bytes (none for 0), close;
//! - `bulk`: a one-way stream of shared buffers (zero copy) to a discard
//!   server.
//!
//! Closed loop (default): `connections` connections (or connection
//! attempts) in flight, each issuing its next request when the previous
//! response completes. Open loop (`rate`): operations are scheduled at
//! fixed intended times; an operation that finds no idle connection waits
//! in a backlog, and latency is always measured from its *intended* time,
//! so a stalled server shows up in the percentiles instead of slowing the
//! schedule (no coordinated omission). Sends that leave more than
//! [`LATE_AFTER`] behind schedule are counted as late.
//!
//! The run ends at `end`: no new operation starts, persistent connections
//! close when idle, and the worker stops once every close it began has
//! reached TIME-WAIT (the peer's FIN acknowledged). Whatever is still
//! outstanding `grace` later is aborted (and counted as a timeout if a
//! request was in flight).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;
use std::sync::mpsc::Sender;

use wirespeed::api::{Context, Handler};
use wirespeed::buf::PacketBuf;
use wirespeed::port::Device;
use wirespeed::tcp::{CloseReason, ConnId, State};
use wirespeed::time::{Duration, Instant};

use crate::args::LoadMode;
use crate::http::{get_request, ResponseParser};
use crate::stats::{CoreStats, ErrorKind, Interval};

/// A send this far behind its intended time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(1);

/// A hasher for connection handles (two small integers): one multiply.
#[derive(Debug, Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(32) ^ u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdMap<V> = HashMap<ConnId, V, BuildHasherDefault<IdHasher>>;

/// What one worker generates.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The mode.
    pub mode: LoadMode,
    /// The server.
    pub target: (Ipv4Addr, u16),
    /// This worker's connections in flight (closed loop), or its cap on
    /// concurrent connections (open loop).
    pub connections: usize,
    /// This worker's operations per second (open loop).
    pub rate: Option<f64>,
    /// A new connection per request.
    pub per_request_conn: bool,
    /// Message (echo, connect) or write (bulk) size.
    pub size: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// HTTP request path.
    pub path: String,
    /// When load starts (also the statistics intervals' origin).
    pub start: Instant,
    /// When load stops.
    pub end: Instant,
    /// How long after `end` outstanding operations may still complete.
    pub grace: Duration,
}

#[derive(Debug)]
struct Conn {
    /// Intended start times of outstanding requests, oldest first.
    inflight: VecDeque<Instant>,
    /// Per-request connections: the operation's intended start.
    op_start: Instant,
    connected: bool,
    /// Echo: messages sent and checked so far, and progress in the current
    /// reply.
    sent: u64,
    checked: u64,
    rx_off: usize,
    http: Option<ResponseParser>,
    /// Request bytes the send buffer had no room for yet (a message larger
    /// than the send buffer), sent as room opens, in order.
    unsent: Vec<u8>,
    unsent_off: usize,
}

impl Conn {
    fn new(op_start: Instant, http: bool) -> Self {
        Conn {
            inflight: VecDeque::new(),
            op_start,
            connected: false,
            sent: 0,
            checked: 0,
            rx_off: 0,
            unsent: Vec::new(),
            unsent_off: 0,
            http: http.then(ResponseParser::new),
        }
    }
}

/// Byte `i` of echo message `k`: differs between messages, so a reply out
/// of order or from the wrong message fails the check.
#[inline]
fn pattern(k: u64, i: usize) -> u8 {
    (k.wrapping_mul(31) as u8)
        .wrapping_add((i as u8).wrapping_mul(7))
        .wrapping_add(1)
}

/// One worker's load generator.
pub struct LoadClient<D: Device> {
    plan: LoadPlan,
    conns: IdMap<Conn>,
    /// Connections with room for another request (open loop).
    idle: VecDeque<ConnId>,
    /// Open loop: operations due but not yet sent (intended times).
    backlog: VecDeque<Instant>,
    /// Connections we closed whose FIN exchange is not over (not yet in
    /// TIME-WAIT), oldest first. The run ends only once they are: a
    /// process that exits before ACKing the peer's FIN leaves the peer in
    /// LAST-ACK, and its next SYN from that port is answered with an ACK,
    /// a RST, and a one-second retransmission.
    closing: VecDeque<ConnId>,
    next_op: Instant,
    op_gap: Duration,
    request: Vec<u8>,
    scratch: Vec<u8>,
    bulk: Option<D::Buf>,
    /// This worker's statistics.
    pub stats: CoreStats,
    intervals: Option<Sender<Interval>>,
    next_tick: Instant,
    started: bool,
    ended: bool,
    aborted: bool,
    /// Connect calls refused locally (no source port, table full).
    pub local_connect_errors: u64,
}

impl<D: Device> core::fmt::Debug for LoadClient<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LoadClient")
            .field("plan", &self.plan)
            .field("connections", &self.conns.len())
            .finish()
    }
}

impl<D: Device> LoadClient<D> {
    /// A client running `plan`, sending one statistics interval per second
    /// (from `plan.start`) to `intervals`.
    pub fn new(plan: LoadPlan, intervals: Option<Sender<Interval>>) -> Self {
        let op_gap = plan
            .rate
            .filter(|r| *r > 0.0)
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r));
        let close = plan.per_request_conn;
        let request = match plan.mode {
            LoadMode::Http => get_request(&plan.path, &plan.target.0.to_string(), close),
            _ => Vec::new(),
        };
        LoadClient {
            next_op: plan.start,
            next_tick: plan.start + Duration::from_secs(1),
            op_gap,
            request,
            plan,
            conns: IdMap::default(),
            idle: VecDeque::new(),
            backlog: VecDeque::new(),
            closing: VecDeque::new(),
            scratch: Vec::new(),
            bulk: None,
            stats: CoreStats::new(),
            intervals,
            started: false,
            ended: false,
            aborted: false,
            local_connect_errors: 0,
        }
    }

    fn open_loop(&self) -> bool {
        self.plan.rate.is_some()
    }

    fn uses_requests(&self) -> bool {
        match self.plan.mode {
            LoadMode::Http | LoadMode::Echo => true,
            LoadMode::Connect => self.plan.size > 0,
            LoadMode::Bulk => false,
        }
    }

    fn open(&mut self, cx: &mut Context<'_, D>, op_start: Instant) -> bool {
        match cx.connect(self.plan.target) {
            Ok(id) => {
                let http = self.plan.mode == LoadMode::Http;
                self.conns.insert(id, Conn::new(op_start, http));
                true
            }
            Err(_) => {
                self.local_connect_errors += 1;
                false
            }
        }
    }

    /// Sends one request on `id` with intended start `at`.
    fn send_request(&mut self, cx: &mut Context<'_, D>, id: ConnId, at: Instant) -> bool {
        let now = cx.now();
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        let sent = match self.plan.mode {
            LoadMode::Http => {
                let n = cx.send_slice(id, &self.request);
                n == self.request.len()
            }
            LoadMode::Echo | LoadMode::Connect => {
                let k = c.sent;
                self.scratch.clear();
                self.scratch
                    .extend((0..self.plan.size).map(|i| pattern(k, i)));
                // Behind an unsent tail, the new message waits its turn;
                // otherwise what the send buffer cannot take now goes out
                // as it drains (`on_writable`).
                let n = if c.unsent.is_empty() {
                    cx.send_slice(id, &self.scratch)
                } else {
                    0
                };
                c.unsent.extend_from_slice(&self.scratch[n..]);
                true
            }
            LoadMode::Bulk => false,
        };
        if !sent {
            // The send buffer is full (not with pipeline ≤ its size in
            // normal runs): the request is lost to us, count it.
            self.stats.record_error(ErrorKind::Timeout);
            return false;
        }
        let len = if self.plan.mode == LoadMode::Http {
            self.request.len()
        } else {
            self.plan.size
        };
        c.sent += 1;
        c.inflight.push_back(at);
        self.stats.counters.requests += 1;
        self.stats.counters.bytes_tx += len as u64;
        if now.saturating_since(at) > LATE_AFTER {
            self.stats.counters.late_sends += 1;
        }
        true
    }

    /// A response completed on `id`.
    fn complete(&mut self, cx: &mut Context<'_, D>, id: ConnId, close: bool) {
        let now = cx.now();
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(at) = c.inflight.pop_front() else {
            self.stats.record_error(ErrorKind::BadResponse);
            return;
        };
        let from = if self.plan.per_request_conn {
            c.op_start
        } else {
            at
        };
        self.stats
            .record_latency(now.saturating_since(from).as_nanos() as u64);
        self.stats.counters.responses += 1;
        if self.plan.per_request_conn || close {
            self.retire(cx, id, false);
            return;
        }
        self.next_request(cx, id);
    }

    /// Keeps a persistent connection busy (closed loop) or marks it idle
    /// (open loop); closes it once the run is over and it is idle.
    fn next_request(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let now = cx.now();
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        let inflight = c.inflight.len();
        if now >= self.plan.end {
            if inflight == 0 {
                self.retire(cx, id, false);
            }
            return;
        }
        if self.open_loop() {
            while self.conns[&id].inflight.len() < self.plan.pipeline {
                let Some(at) = self.backlog.pop_front() else {
                    self.idle.push_back(id);
                    return;
                };
                if !self.send_request(cx, id, at) {
                    return;
                }
            }
        } else {
            for _ in inflight..self.plan.pipeline {
                if !self.send_request(cx, id, now) {
                    return;
                }
            }
        }
    }

    fn fill_bulk(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        if cx.now() >= self.plan.end {
            // Bytes still queued were never delivered: not throughput.
            let unsent = cx.conn(id).map_or(0, |c| c.send_queued()) as u64;
            self.stats.counters.bytes_tx = self.stats.counters.bytes_tx.saturating_sub(unsent);
            self.retire(cx, id, false);
            return;
        }
        if self.bulk.is_none() {
            let Some(mut b) = cx.alloc() else { return };
            let n = self.plan.size.clamp(1, b.tailroom());
            match b.append(n) {
                Ok(room) => {
                    for (i, x) in room.iter_mut().enumerate() {
                        *x = pattern(0, i);
                    }
                }
                Err(_) => {
                    cx.release(b);
                    return;
                }
            }
            self.bulk = Some(b);
        }
        let Some(b) = self.bulk.as_ref() else { return };
        let len = b.len() as u64;
        loop {
            // Shared handles of one buffer: no copy, one reference count.
            let h = b.share();
            match cx.send(id, h) {
                Ok(()) => self.stats.counters.bytes_tx += len,
                Err(back) => {
                    drop(back);
                    break;
                }
            }
        }
    }

    fn echo_rx(&mut self, cx: &mut Context<'_, D>, id: ConnId, data: &[u8]) {
        let size = self.plan.size;
        let mut done = 0;
        {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            let mut bad = false;
            for &byte in data {
                if c.checked >= c.sent {
                    bad = true;
                    break;
                }
                if byte != pattern(c.checked, c.rx_off) {
                    bad = true;
                }
                c.rx_off += 1;
                if c.rx_off == size {
                    c.rx_off = 0;
                    c.checked += 1;
                    done += 1;
                }
            }
            if bad {
                self.stats.record_error(ErrorKind::ChecksumMismatch);
                self.retire(cx, id, true);
                return;
            }
        }
        for _ in 0..done {
            self.complete(cx, id, false);
        }
    }

    fn http_rx(&mut self, cx: &mut Context<'_, D>, id: ConnId, data: &[u8]) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(parser) = c.http.as_mut() else {
            return;
        };
        let mut done = Vec::new();
        let r = parser.feed(data, |resp| done.push(resp));
        for resp in done {
            self.stats.record_status(resp.status);
            self.complete(cx, id, resp.close);
        }
        if r.is_err() {
            self.stats.record_error(ErrorKind::BadResponse);
            self.retire(cx, id, true);
        }
    }

    fn tick(&mut self, now: Instant) {
        while now >= self.next_tick {
            self.next_tick += Duration::from_secs(1);
            self.stats.counters.open_connections = self.conns.len() as u64;
            let iv = self.stats.take_interval();
            if let Some(tx) = &self.intervals {
                let _ = tx.send(iv);
            }
        }
    }

    /// Ends our use of `id` (FIN, or RST with `abort`), forgets it and, in
    /// closed loop, opens a replacement to keep the concurrency.
    fn retire(&mut self, cx: &mut Context<'_, D>, id: ConnId, abort: bool) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if abort {
            cx.abort(id);
        } else {
            cx.close(id);
            self.closing.push_back(id);
        }
        if c.connected {
            self.stats.connection_closed();
        }
        self.replace(cx);
    }

    /// Forgets closed connections whose FIN exchange is over. Closes end
    /// roughly in the order they began: stop at the first still going,
    /// moved to the back so that one slow close holds up no other.
    fn reap_closing(&mut self, cx: &Context<'_, D>) {
        while let Some(id) = self.closing.pop_front() {
            let going = cx
                .conn(id)
                .is_some_and(|c| !matches!(c.state(), State::TimeWait | State::Closed));
            if going {
                self.closing.push_back(id);
                return;
            }
        }
    }

    /// Closed loop: a connection (attempt) ended before the run did; open
    /// the next one.
    fn replace(&mut self, cx: &mut Context<'_, D>) {
        if !self.open_loop() && cx.now() < self.plan.end && self.conns.len() < self.plan.connections
        {
            let now = cx.now();
            self.open(cx, now);
        }
    }

    /// Sends the last, partial interval (after the loop ends).
    pub fn finish(&mut self) {
        self.stats.counters.open_connections = self.conns.len() as u64;
        let iv = self.stats.take_interval();
        if let Some(tx) = &self.intervals {
            let _ = tx.send(iv);
        }
    }

    /// Open-loop scheduling: issue every operation due by `now`.
    fn schedule(&mut self, cx: &mut Context<'_, D>) {
        let now = cx.now();
        while self.next_op <= now && self.next_op < self.plan.end {
            let at = self.next_op;
            self.next_op += self.op_gap;
            if self.plan.per_request_conn || !self.uses_requests() {
                self.backlog.push_back(at);
            } else {
                match self.idle.pop_front() {
                    Some(id) if self.conns.contains_key(&id) => {
                        if self.send_request(cx, id, at)
                            && self.conns[&id].inflight.len() < self.plan.pipeline
                        {
                            self.idle.push_front(id);
                        }
                    }
                    _ => self.backlog.push_back(at),
                }
            }
        }
        if self.plan.per_request_conn || !self.uses_requests() {
            // Each backlog entry is a new connection, within the cap.
            while self.conns.len() < self.plan.connections {
                let Some(at) = self.backlog.pop_front() else {
                    break;
                };
                if now.saturating_since(at) > LATE_AFTER {
                    self.stats.counters.late_sends += 1;
                }
                if !self.open(cx, at) {
                    break;
                }
            }
        }
    }
}

impl<D: Device> Handler<D> for LoadClient<D> {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        self.started = true;
        if self.open_loop() && (self.plan.per_request_conn || !self.uses_requests()) {
            return; // connections open on schedule
        }
        let now = cx.now();
        for _ in 0..self.plan.connections {
            if !self.open(cx, now) {
                break;
            }
        }
    }

    fn on_connected(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.stats.connection_opened();
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.connected = true;
        let op_start = c.op_start;
        match self.plan.mode {
            LoadMode::Bulk => self.fill_bulk(cx, id),
            LoadMode::Connect if self.plan.size == 0 => {
                let now = cx.now();
                self.stats
                    .record_latency(now.saturating_since(op_start).as_nanos() as u64);
                self.stats.counters.responses += 1;
                self.stats.counters.requests += 1;
                self.retire(cx, id, false);
            }
            _ if self.plan.per_request_conn => {
                // Sent now, on time: an open-loop operation's lateness was
                // judged when its connection opened, and its latency counts
                // from `op_start` (see `complete`), not from this send.
                let now = cx.now();
                self.send_request(cx, id, now);
            }
            _ => self.next_request(cx, id),
        }
    }

    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        while let Some(buf) = cx.recv(id) {
            self.stats.counters.bytes_rx += buf.len() as u64;
            match self.plan.mode {
                LoadMode::Http => self.http_rx(cx, id, buf.as_slice()),
                LoadMode::Echo | LoadMode::Connect => self.echo_rx(cx, id, buf.as_slice()),
                LoadMode::Bulk => {}
            }
            cx.release(buf);
            if !self.conns.contains_key(&id) {
                break;
            }
        }
    }

    fn on_writable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        if self.plan.mode == LoadMode::Bulk {
            self.fill_bulk(cx, id);
            return;
        }
        if let Some(c) = self.conns.get_mut(&id) {
            if c.unsent_off < c.unsent.len() {
                c.unsent_off += cx.send_slice(id, &c.unsent[c.unsent_off..]);
                if c.unsent_off == c.unsent.len() {
                    c.unsent.clear();
                    c.unsent_off = 0;
                }
            }
        }
    }

    fn on_peer_fin(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        for _ in 0..c.inflight.len() {
            self.stats.record_error(ErrorKind::ClosedEarly);
        }
        self.retire(cx, id, false);
    }

    fn on_closed(&mut self, cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        // Connections we retired are gone from the map: their teardown
        // is the stack's business. Anything still here closed on us.
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if c.connected {
            self.stats.connection_closed();
        }
        match (c.connected, reason) {
            (false, CloseReason::Refused) => self.stats.record_error(ErrorKind::ConnectRefused),
            (false, CloseReason::TimedOut) => self.stats.record_error(ErrorKind::ConnectTimeout),
            (_, CloseReason::TimedOut) => self.stats.record_error(ErrorKind::Timeout),
            (_, CloseReason::Normal) if !c.inflight.is_empty() => {
                self.stats.record_error(ErrorKind::ClosedEarly);
            }
            (_, CloseReason::Normal) => {}
            _ => self.stats.record_error(ErrorKind::Reset),
        }
        self.replace(cx);
    }

    fn on_poll(&mut self, cx: &mut Context<'_, D>) {
        let now = cx.now();
        if now >= self.next_tick {
            self.tick(now);
        }
        self.ended = now >= self.plan.end;
        if self.open_loop() && now < self.plan.end {
            self.schedule(cx);
        }
        if now >= self.plan.end && !self.idle.is_empty() {
            // Idle persistent connections close at the end.
            while let Some(id) = self.idle.pop_front() {
                if self.conns.get(&id).is_some_and(|c| c.inflight.is_empty()) {
                    self.retire(cx, id, false);
                }
            }
        }
        self.reap_closing(cx);
        if now >= self.plan.end + self.plan.grace && !self.aborted {
            self.aborted = true;
            // Closes the peer never finished: reset, so it keeps no state.
            for id in self.closing.drain(..) {
                cx.abort(id);
            }
            let ids: Vec<ConnId> = self.conns.keys().copied().collect();
            for id in ids {
                if let Some(c) = self.conns.get(&id) {
                    for _ in 0..c.inflight.len() {
                        self.stats.record_error(ErrorKind::Timeout);
                    }
                }
                self.retire(cx, id, true);
            }
            for _ in 0..self.backlog.len() {
                self.stats.record_error(ErrorKind::Timeout);
            }
            self.backlog.clear();
        }
    }

    fn is_done(&self) -> bool {
        self.ended && self.conns.is_empty() && self.closing.is_empty()
    }
}
