//! Application threads: an application that cannot run on the worker's core
//! talks to a worker over bounded lock-free rings ([`crate::rt::ring`]).
//!
//! [`bridge`] makes the two halves. The [`RingBridge`] is a [`Handler`]
//! that runs inline on the worker and owns the worker's ring ends; the
//! [`AppHandle`] goes to the application thread. Three rings join them:
//!
//! - **events**, worker → application ([`Event`]): connections opened and
//!   accepted, received data as the receive buffer itself (zero copy), send
//!   space, the peer's FIN, closes, timers;
//! - **commands**, application → worker ([`Command`]): connect, listen,
//!   send a buffer, write a copy, release a received buffer, close, shut
//!   down, abort, set a timer, stop;
//! - **lending**, worker → application: empty buffers from the worker's
//!   pool, kept topped up each iteration, for [`Command::Send`] (build the
//!   payload in place, no copy on the worker).
//!
//! # Pushing back, never dropping
//!
//! - A full command ring refuses the command and hands it back
//!   ([`AppHandle::try_send`]); [`AppHandle::send`] waits for room.
//! - Received data stays in the connection's TCP receive queue while the
//!   event ring is full, and is taken on a later iteration: the advertised
//!   window shrinks and closes, so TCP flow control stops the peer
//!   (RFC 9293 §3.8.6) instead of the worker buffering without bound.
//! - Other events that find the event ring full wait in a small local
//!   queue that the worker drains first; while it is not empty no new data
//!   is taken from receive queues, and once it holds as many events as the
//!   event ring has slots, no new commands are taken either (so a command
//!   ring that fills up tells the application to read its events).
//! - A send the connection cannot take now (send buffer full) waits, in
//!   order, in that connection's backlog on the worker:
//!   [`Event::SendBlocked`] says so, [`Event::Writable`] follows once the
//!   backlog is all in the send buffer. A close or shutdown asked for
//!   meanwhile takes effect after the backlog.
//!
//! # Order
//!
//! Per connection the application sees `Connected`/`Accepted`, then `Data`
//! in stream order, then `PeerFin` (only after the last `Data`), then
//! `Closed`. Commands are carried out in the order sent. Received buffers
//! should come back with [`Command::Release`] (dropping them is safe, but
//! leaves a heap-backed pool a buffer short). A [`Command::Close`] while
//! received data still waits on the worker resets the connection, as an
//! inline close with unread data does (RFC 9293 §3.10.4).
//!
//! `D::Buf` crosses threads, so it must be `Send` (a [`HeapBuf`] is).
//! Data still unread when a connection ends in TIME-WAIT expiry (we shut
//! down first and the application stalled for 2·MSL) is lost with the
//! connection; [`BridgeStats::unread_at_close`] counts those.
//!
//! [`HeapBuf`]: crate::buf::HeapBuf

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use super::{Context, Handler};
use crate::buf::PacketBuf;
use crate::port::Device;
use crate::rt::ring::{self, Consumer, Producer};
use crate::rt::ConnectError;
use crate::tcp::{CloseReason, ConnId, ListenConfig, StackError};
use crate::time::Duration;

/// What the worker tells the application.
#[derive(Debug)]
pub enum Event<B> {
    /// A connection opened with [`Command::Connect`] is established.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The token given with the connect command.
        token: u64,
    },
    /// A [`Command::Connect`] failed, locally or on the wire.
    ConnectFailed {
        /// The token given with the connect command.
        token: u64,
        /// Why.
        error: ConnectFailure,
    },
    /// A listener on `port` established a new connection.
    Accepted {
        /// The connection.
        conn: ConnId,
        /// The listening port.
        port: u16,
    },
    /// In-order received data: the receive buffer itself, trimmed to the
    /// payload. Give it back with [`Command::Release`] (or send it on with
    /// [`Command::Send`]).
    Data {
        /// The connection.
        conn: ConnId,
        /// The payload.
        buf: B,
    },
    /// A send could not go into the connection's send buffer: it waits in
    /// the worker's backlog for that connection, with every later send.
    /// Stop sending on it until [`Event::Writable`].
    SendBlocked(ConnId),
    /// The connection's backlog is all in its send buffer again.
    Writable(ConnId),
    /// The peer sent FIN after the last [`Event::Data`].
    PeerFin(ConnId),
    /// The connection is gone; its id is stale from here on.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why it closed.
        reason: CloseReason,
    },
    /// A timer set with [`Command::SetTimer`] is due.
    Timer(u64),
    /// The lending ring ran dry and has buffers again
    /// ([`AppHandle::alloc`]).
    Buffers,
    /// A [`Command::Listen`] took effect: connections to `port` are
    /// accepted from here on.
    Listening {
        /// The port.
        port: u16,
    },
    /// A [`Command::Listen`] was refused.
    ListenFailed {
        /// The port.
        port: u16,
        /// Why.
        error: StackError,
    },
}

/// Why a [`Command::Connect`] did not give a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The worker could not open it (no source port, table full).
    Local(ConnectError),
    /// It closed before the handshake completed (refused, timed out).
    Closed(CloseReason),
}

/// What the application asks of the worker.
#[derive(Debug)]
pub enum Command<B> {
    /// Opens a connection to `remote`; [`Event::Connected`] or
    /// [`Event::ConnectFailed`] follows with `token`.
    Connect {
        /// Address and port to connect to.
        remote: (Ipv4Addr, u16),
        /// The application's name for this attempt.
        token: u64,
    },
    /// Listens on `port`; answered with [`Event::Listening`] or
    /// [`Event::ListenFailed`] (clients connecting before that are
    /// refused).
    Listen {
        /// The port.
        port: u16,
        /// Backlog and SYN-cookie settings.
        config: ListenConfig,
    },
    /// Sends a buffer without copying it: one from [`AppHandle::alloc`]
    /// with the payload appended, or a received one sent on.
    Send(ConnId, B),
    /// Sends a copy of these bytes (for small writes, where a buffer of
    /// one's own costs more than the copy).
    Write(ConnId, Vec<u8>),
    /// Gives a received (or unused lent) buffer back to the worker's pool.
    Release(B),
    /// Closes after the queued data (FIN; RFC 9293 §3.10.4).
    Close(ConnId),
    /// Stops sending (FIN) but keeps receiving.
    Shutdown(ConnId),
    /// Resets the connection (RST); its backlog is dropped.
    Abort(ConnId),
    /// Asks for [`Event::Timer`] with `token` after `after` (worker time).
    SetTimer {
        /// Delay from the iteration that takes the command.
        after: Duration,
        /// Given back with the event.
        token: u64,
    },
    /// Finishes the worker's loop.
    Stop,
}

/// Ring sizes and per-iteration bounds of a bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeConfig {
    /// Slots of the event ring (rounded up to a power of two, at least 2).
    pub events: usize,
    /// Slots of the command ring.
    pub commands: usize,
    /// Slots of the lending ring (buffers lent out of the worker's pool at
    /// most); 0 lends none.
    pub lend: usize,
    /// Most commands taken per loop iteration, so a busy application
    /// cannot starve the network side.
    pub commands_per_poll: usize,
    /// Most data events one connection gets per turn before the next
    /// readable connection's turn.
    pub data_per_turn: usize,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            events: 1024,
            commands: 1024,
            lend: 64,
            commands_per_poll: 256,
            data_per_turn: 16,
        }
    }
}

/// Counters of a bridge (worker side).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Events pushed into the event ring.
    pub events: u64,
    /// Events that found the ring full (or others waiting) and went to the
    /// local queue first.
    pub events_deferred: u64,
    /// Longest the local queue grew.
    pub local_queue_max: u64,
    /// Data events sent.
    pub data_events: u64,
    /// Payload bytes in them.
    pub data_bytes: u64,
    /// Times received data was left in a receive queue because the event
    /// ring was full or other events were waiting.
    pub data_held: u64,
    /// The most in-order bytes a receive queue held at such a time (the
    /// window the peer was refused).
    pub held_bytes_max: u64,
    /// Commands carried out.
    pub commands: u64,
    /// Iterations that stopped taking commands because the local queue
    /// was full.
    pub commands_held: u64,
    /// Commands for connections already gone (their buffers released).
    pub stale_commands: u64,
    /// Sends that went to a connection's backlog (send buffer full).
    pub sends_blocked: u64,
    /// Sends refused because the application had already closed or shut
    /// down the connection (buffers released).
    pub sends_after_close: u64,
    /// Buffers lent to the application.
    pub lent: u64,
    /// Connections that closed with received data the application had not
    /// been given yet (TIME-WAIT expiry, resets).
    pub unread_at_close: u64,
}

/// Bytes waiting to go into a connection's send buffer.
enum Unsent<B> {
    Buf(B),
    Bytes(Vec<u8>, usize),
}

/// What to do once a connection's backlog has drained.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finish {
    None,
    Shutdown,
    Close,
}

struct Conn<B> {
    /// The connect token, until the handshake completes.
    connecting: Option<u64>,
    /// In the ready list (data may be waiting).
    ready: bool,
    /// The peer's FIN waits for the data before it.
    fin_pending: bool,
    unsent: VecDeque<Unsent<B>>,
    /// `SendBlocked` went out; `Writable` is owed.
    blocked: bool,
    /// The application closed or shut down the send side.
    shut: bool,
    finish: Finish,
}

impl<B> Conn<B> {
    fn new(connecting: Option<u64>) -> Self {
        Conn {
            connecting,
            ready: false,
            fin_pending: false,
            unsent: VecDeque::new(),
            blocked: false,
            shut: false,
            finish: Finish::None,
        }
    }
}

/// The worker's half: a [`Handler`] that turns the stack's callbacks into
/// [`Event`]s and carries out [`Command`]s.
pub struct RingBridge<B> {
    events: Producer<Event<B>>,
    commands: Consumer<Command<B>>,
    lend: Producer<B>,
    config: BridgeConfig,
    /// Events waiting for room in the ring, oldest first.
    local: VecDeque<Event<B>>,
    conns: HashMap<ConnId, Conn<B>>,
    /// Connections whose receive queue may hold data, in turn order.
    ready: VecDeque<ConnId>,
    lent_once: bool,
    stopped: bool,
    stats: BridgeStats,
}

impl<B> core::fmt::Debug for RingBridge<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RingBridge")
            .field("config", &self.config)
            .field("connections", &self.conns.len())
            .field("local", &self.local.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// The application thread's half: its ends of the rings.
pub struct AppHandle<B> {
    events: Consumer<Event<B>>,
    commands: Producer<Command<B>>,
    lend: Consumer<B>,
}

impl<B> core::fmt::Debug for AppHandle<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AppHandle")
            .field("events_waiting", &self.events.len())
            .field("commands", &self.commands)
            .finish()
    }
}

/// A bridge and the application's handle on it. Put the bridge on a worker
/// (as its handler) and move the handle to the application thread.
pub fn bridge<B: PacketBuf + Send>(config: &BridgeConfig) -> (RingBridge<B>, AppHandle<B>) {
    let (ep, ec) = ring::channel(config.events);
    let (cp, cc) = ring::channel(config.commands);
    let (lp, lc) = ring::channel(config.lend.max(1));
    (
        RingBridge {
            events: ep,
            commands: cc,
            lend: lp,
            config: *config,
            local: VecDeque::new(),
            conns: HashMap::new(),
            ready: VecDeque::new(),
            lent_once: false,
            stopped: false,
            stats: BridgeStats::default(),
        },
        AppHandle {
            events: ec,
            commands: cp,
            lend: lc,
        },
    )
}

impl<B: PacketBuf + Send> RingBridge<B> {
    /// The bridge's counters.
    pub fn stats(&self) -> &BridgeStats {
        &self.stats
    }

    /// Events waiting in the local queue.
    pub fn deferred(&self) -> usize {
        self.local.len()
    }

    /// Hands `ev` to the application, behind any events already waiting.
    fn emit(&mut self, ev: Event<B>) {
        if self.local.is_empty() {
            match self.events.push(ev) {
                Ok(()) => {
                    self.stats.events += 1;
                    return;
                }
                Err(ev) => self.local.push_back(ev),
            }
        } else {
            self.local.push_back(ev);
        }
        self.stats.events_deferred += 1;
        self.stats.local_queue_max = self.stats.local_queue_max.max(self.local.len() as u64);
    }

    /// Moves waiting events into the ring while it has room.
    fn flush_local(&mut self) {
        while let Some(ev) = self.local.pop_front() {
            match self.events.push(ev) {
                Ok(()) => self.stats.events += 1,
                Err(ev) => {
                    self.local.push_front(ev);
                    return;
                }
            }
        }
    }

    fn mark_ready(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            if !c.ready {
                c.ready = true;
                self.ready.push_back(id);
            }
        }
    }

    /// Gives received data to the application while the ring has room,
    /// connection by connection in turn; what does not fit stays in the
    /// receive queues.
    fn take_data<D: Device<Buf = B>>(&mut self, cx: &mut Context<'_, D>) {
        let mut turns = self.ready.len();
        while turns > 0 {
            turns -= 1;
            let Some(id) = self.ready.pop_front() else {
                return;
            };
            if !self.conns.contains_key(&id) {
                continue;
            }
            let mut given = 0;
            let drained = loop {
                if !self.local.is_empty() || !self.events.has_room() {
                    self.stats.data_held += 1;
                    let held = cx.conn(id).map_or(0, |c| c.recv_queued()) as u64;
                    self.stats.held_bytes_max = self.stats.held_bytes_max.max(held);
                    self.ready.push_front(id);
                    return;
                }
                if given == self.config.data_per_turn.max(1) {
                    break false;
                }
                let Some(buf) = cx.recv(id) else {
                    break true;
                };
                given += 1;
                self.stats.data_events += 1;
                self.stats.data_bytes += buf.len() as u64;
                self.emit(Event::Data { conn: id, buf });
            };
            if drained {
                let fin = self.conns.get_mut(&id).is_some_and(|c| {
                    c.ready = false;
                    core::mem::take(&mut c.fin_pending)
                });
                if fin {
                    self.emit(Event::PeerFin(id));
                }
            } else {
                self.ready.push_back(id);
            }
        }
    }

    /// Lends pool buffers until the lending ring is full.
    fn top_up<D: Device<Buf = B>>(&mut self, cx: &mut Context<'_, D>) {
        if self.config.lend == 0 || !self.lend.has_room() {
            return;
        }
        let was_dry = self.lend.is_empty() && self.lent_once;
        let mut pushed = 0;
        while self.lend.has_room() {
            let Some(b) = cx.alloc() else { break };
            if let Err(b) = self.lend.push(b) {
                cx.release(b);
                break;
            }
            pushed += 1;
        }
        self.stats.lent += pushed;
        if pushed > 0 {
            self.lent_once = true;
            if was_dry {
                self.emit(Event::Buffers);
            }
        }
    }

    /// Moves a connection's backlog into its send buffer; returns whether
    /// it is empty now.
    fn drain_backlog<D: Device<Buf = B>>(
        cx: &mut Context<'_, D>,
        id: ConnId,
        c: &mut Conn<B>,
    ) -> bool {
        while let Some(front) = c.unsent.pop_front() {
            match front {
                Unsent::Buf(b) => {
                    if let Err(b) = cx.send(id, b) {
                        c.unsent.push_front(Unsent::Buf(b));
                        return false;
                    }
                }
                Unsent::Bytes(v, off) => {
                    let n = off + cx.send_slice(id, &v[off..]);
                    if n < v.len() {
                        c.unsent.push_front(Unsent::Bytes(v, n));
                        return false;
                    }
                }
            }
        }
        true
    }

    /// After a backlog drained: `Writable`, then a deferred close.
    fn after_drain<D: Device<Buf = B>>(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let was_blocked = core::mem::take(&mut c.blocked);
        let finish = core::mem::replace(&mut c.finish, Finish::None);
        match finish {
            Finish::Close => cx.close(id),
            Finish::Shutdown => cx.shutdown(id),
            Finish::None => {}
        }
        if was_blocked {
            self.emit(Event::Writable(id));
        }
    }

    /// Queues `data` on connection `id`: into the send buffer, or behind
    /// the backlog.
    fn queue_send<D: Device<Buf = B>>(
        &mut self,
        cx: &mut Context<'_, D>,
        id: ConnId,
        data: Unsent<B>,
    ) {
        let Some(c) = self.conns.get_mut(&id) else {
            self.stats.stale_commands += 1;
            if let Unsent::Buf(b) = data {
                cx.release(b);
            }
            return;
        };
        if c.shut {
            self.stats.sends_after_close += 1;
            if let Unsent::Buf(b) = data {
                cx.release(b);
            }
            return;
        }
        let was_empty = c.unsent.is_empty();
        c.unsent.push_back(data);
        if was_empty && Self::drain_backlog(cx, id, c) {
            return;
        }
        self.stats.sends_blocked += 1;
        if !c.blocked {
            c.blocked = true;
            self.emit(Event::SendBlocked(id));
        }
    }

    fn finish<D: Device<Buf = B>>(&mut self, cx: &mut Context<'_, D>, id: ConnId, how: Finish) {
        let Some(c) = self.conns.get_mut(&id) else {
            self.stats.stale_commands += 1;
            return;
        };
        c.shut = true;
        if c.unsent.is_empty() {
            match how {
                Finish::Close => cx.close(id),
                Finish::Shutdown => cx.shutdown(id),
                Finish::None => {}
            }
        } else if how == Finish::Close || c.finish == Finish::None {
            c.finish = how;
        }
    }

    fn command<D: Device<Buf = B>>(&mut self, cx: &mut Context<'_, D>, cmd: Command<B>) {
        self.stats.commands += 1;
        match cmd {
            Command::Connect { remote, token } => match cx.connect(remote) {
                Ok(id) => {
                    self.conns.insert(id, Conn::new(Some(token)));
                }
                Err(e) => self.emit(Event::ConnectFailed {
                    token,
                    error: ConnectFailure::Local(e),
                }),
            },
            Command::Listen { port, config } => match cx.listen(port, config) {
                Ok(()) => self.emit(Event::Listening { port }),
                Err(error) => self.emit(Event::ListenFailed { port, error }),
            },
            Command::Send(id, b) => self.queue_send(cx, id, Unsent::Buf(b)),
            Command::Write(id, v) => self.queue_send(cx, id, Unsent::Bytes(v, 0)),
            Command::Release(b) => cx.release(b),
            Command::Close(id) => self.finish(cx, id, Finish::Close),
            Command::Shutdown(id) => self.finish(cx, id, Finish::Shutdown),
            Command::Abort(id) => match self.conns.get_mut(&id) {
                Some(c) => {
                    c.shut = true;
                    for u in core::mem::take(&mut c.unsent) {
                        if let Unsent::Buf(b) = u {
                            cx.release(b);
                        }
                    }
                    cx.abort(id);
                }
                None => self.stats.stale_commands += 1,
            },
            Command::SetTimer { after, token } => {
                let at = cx.now() + after;
                cx.set_timer(at, token);
            }
            Command::Stop => {
                self.stopped = true;
                cx.stop();
            }
        }
    }
}

impl<D, B> Handler<D> for RingBridge<B>
where
    D: Device<Buf = B>,
    B: PacketBuf + Send,
{
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        self.top_up(cx);
    }

    fn on_connected(&mut self, _cx: &mut Context<'_, D>, id: ConnId) {
        // Every active open on this worker came from a `Connect` command,
        // so the token is there.
        let c = self.conns.entry(id).or_insert_with(|| Conn::new(None));
        let token = c.connecting.take().unwrap_or_default();
        self.emit(Event::Connected { conn: id, token });
    }

    fn on_accepted(&mut self, _cx: &mut Context<'_, D>, id: ConnId, port: u16) {
        self.conns.insert(id, Conn::new(None));
        self.emit(Event::Accepted { conn: id, port });
    }

    fn on_readable(&mut self, _cx: &mut Context<'_, D>, id: ConnId) {
        self.mark_ready(id);
    }

    fn on_writable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.unsent.is_empty() && !c.blocked {
            return;
        }
        if Self::drain_backlog(cx, id, c) {
            self.after_drain(cx, id);
        }
    }

    fn on_peer_fin(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let unread = cx.conn(id).is_some_and(|c| c.recv_queued() > 0);
        match self.conns.get_mut(&id) {
            Some(c) if unread || c.ready => {
                c.fin_pending = true;
                self.mark_ready(id);
            }
            _ => self.emit(Event::PeerFin(id)),
        }
    }

    fn on_closed(&mut self, cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        let Some(c) = self.conns.remove(&id) else {
            self.emit(Event::Closed { conn: id, reason });
            return;
        };
        if c.ready {
            self.stats.unread_at_close += 1;
        }
        for u in c.unsent {
            if let Unsent::Buf(b) = u {
                cx.release(b);
            }
        }
        self.emit(match c.connecting {
            Some(token) => Event::ConnectFailed {
                token,
                error: ConnectFailure::Closed(reason),
            },
            None => Event::Closed { conn: id, reason },
        });
    }

    fn on_timer(&mut self, _cx: &mut Context<'_, D>, token: u64) {
        self.emit(Event::Timer(token));
    }

    fn on_poll(&mut self, cx: &mut Context<'_, D>) {
        self.flush_local();
        let limit = self.config.events.max(2);
        for _ in 0..self.config.commands_per_poll.max(1) {
            if self.local.len() >= limit {
                self.stats.commands_held += 1;
                break;
            }
            let Some(cmd) = self.commands.pop() else {
                break;
            };
            self.command(cx, cmd);
        }
        self.top_up(cx);
        self.take_data(cx);
    }

    fn is_done(&self) -> bool {
        self.stopped || (self.commands.is_disconnected() && self.commands.is_empty())
    }
}

/// Spins, then yields, then naps: how the handle's blocking calls wait.
struct Backoff(u32);

impl Backoff {
    fn wait(&mut self) {
        self.0 = self.0.saturating_add(1);
        if self.0 <= 64 {
            core::hint::spin_loop();
        } else if self.0 <= 1024 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

impl<B: PacketBuf + Send> AppHandle<B> {
    /// The next event, if one is waiting.
    pub fn try_recv(&mut self) -> Option<Event<B>> {
        self.events.pop()
    }

    /// The next event, waiting for one; `None` once the worker is gone and
    /// every event has been taken.
    pub fn recv(&mut self) -> Option<Event<B>> {
        let mut b = Backoff(0);
        loop {
            if let Some(ev) = self.events.pop() {
                return Some(ev);
            }
            if self.events.is_disconnected() {
                return self.events.pop();
            }
            b.wait();
        }
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: std::time::Duration) -> Option<Event<B>> {
        let end = std::time::Instant::now() + timeout;
        let mut b = Backoff(0);
        loop {
            if let Some(ev) = self.events.pop() {
                return Some(ev);
            }
            if self.events.is_disconnected() || std::time::Instant::now() >= end {
                return self.events.pop();
            }
            b.wait();
        }
    }

    /// Queues `cmd` for the worker, or hands it back when the command ring
    /// is full (read events, then try again) or the worker is gone.
    pub fn try_send(&mut self, cmd: Command<B>) -> Result<(), Command<B>> {
        if self.commands.is_disconnected() {
            return Err(cmd);
        }
        self.commands.push(cmd)
    }

    /// Queues `cmd`, waiting while the command ring is full; hands it back
    /// only when the worker is gone. The worker stops taking commands while
    /// its events wait for this thread, so a thread that never reads events
    /// can wait here for ever: use [`try_send`](Self::try_send) where both
    /// happen in one loop.
    pub fn send(&mut self, mut cmd: Command<B>) -> Result<(), Command<B>> {
        let mut b = Backoff(0);
        loop {
            match self.try_send(cmd) {
                Ok(()) => return Ok(()),
                Err(back) if self.commands.is_disconnected() => return Err(back),
                Err(back) => cmd = back,
            }
            b.wait();
        }
    }

    /// An empty buffer lent from the worker's pool, with headroom for the
    /// headers; `None` when the lending ring is dry ([`Event::Buffers`]
    /// says when it is not any more).
    pub fn alloc(&mut self) -> Option<B> {
        self.lend.pop()
    }

    /// Events waiting.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Whether the worker's half has been dropped (its loop ended).
    pub fn is_worker_gone(&self) -> bool {
        self.events.is_disconnected()
    }
}
