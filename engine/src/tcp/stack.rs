//! The TCP layer of one worker: many connections behind one interface.
//!
//! [`TcpStack`] owns a worker's connections and does what no single
//! connection can:
//! - **demultiplexing**: a segment finds its connection by 4-tuple in an O(1)
//!   keyed hash table ([`flow`](super::flow));
//! - **listeners**: a SYN for a listening port becomes a connection in
//!   SYN-RECEIVED, counted against the port's SYN backlog; once established
//!   it waits in the accept queue. When the SYN backlog is full the listener
//!   answers with a SYN cookie instead (RFC 4987 §3.6) and keeps no state; a
//!   valid cookie ACK creates the connection established;
//! - **closed ports**: a segment for no connection and no listener is
//!   answered with RST (RFC 9293 §3.10.7.1);
//! - **TIME-WAIT reuse**: a SYN for a 4-tuple in TIME-WAIT replaces it when
//!   the connection allows it (RFC 6191);
//! - **timers**: one entry per connection in a [`TimerWheel`], re-filed
//!   when the connection's next deadline moves earlier; a deadline that
//!   moves later (or goes) is caught up with when the entry fires.
//!
//! # Call order (once per worker loop iteration)
//! 1. [`handle_packet`](TcpStack::handle_packet) for each IPv4 delivery of
//!    protocol TCP from the interface;
//! 2. application calls: [`connect`](TcpStack::connect),
//!    [`accept`](TcpStack::accept), [`with_conn`](TcpStack::with_conn);
//! 3. [`handle_timeout`](TcpStack::handle_timeout) with the loop's `now`;
//! 4. [`poll_transmit`](TcpStack::poll_transmit) until `None`, handing each
//!    `(destination, segment)` to the interface's `send_ipv4`;
//! 5. [`poll_event`](TcpStack::poll_event) and
//!    [`poll_recycle`](TcpStack::poll_recycle) until `None`.
//!
//! Nothing here panics on any segment.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use super::config::{SharedConfig, TcpConfig};
use super::conn::{Connection, Event, State};
use super::flow::FlowHashBuilder;
use super::syncookie::{self, CookieTsOpts, SynCookies};
use super::{FourTuple, IsnGenerator, TimerHandle, TimerWheel};
use crate::buf::{BufAlloc, PacketBuf};
use crate::net::Ipv4Delivery;
use crate::time::{Duration, Instant};
use crate::wire::{ChecksumCaps, TcpFlags, TcpPacket, TcpRepr, TcpSeqNumber};

/// Handle of a connection in its [`TcpStack`]. A handle outlives its
/// connection safely: once the slot is reused, the old handle finds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

/// A listener's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenConfig {
    /// Established connections waiting for `accept` (Linux `somaxconn`:
    /// 4096).
    pub backlog: usize,
    /// Connections in SYN-RECEIVED before SYN cookies take over (Linux
    /// `tcp_max_syn_backlog`: 4096 on small hosts, more on large ones).
    pub syn_backlog: usize,
    /// Answer with SYN cookies when the SYN backlog is full (Linux
    /// `tcp_syncookies = 1`); without them excess SYNs are dropped.
    pub syn_cookies: bool,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            backlog: 4096,
            syn_backlog: 4096,
            syn_cookies: true,
        }
    }
}

/// Why an application call on the stack was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StackError {
    /// The port already has a listener.
    AlreadyListening(u16),
    /// A listener's backlog of zero.
    ZeroBacklog,
    /// The 4-tuple is in use by another connection.
    TupleInUse,
    /// Every ephemeral port to that destination is in use.
    NoEphemeralPort,
    /// More connections than the stack's slot table can index.
    TooManyConnections,
}

impl core::fmt::Display for StackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StackError::AlreadyListening(p) => write!(f, "port {p} already has a listener"),
            StackError::ZeroBacklog => f.write_str("a listener's backlog must be at least 1"),
            StackError::TupleInUse => f.write_str("that address and port pair is already in use"),
            StackError::NoEphemeralPort => {
                f.write_str("no free ephemeral port to that destination (32768-60999 all in use)")
            }
            StackError::TooManyConnections => f.write_str("connection table full"),
        }
    }
}

impl std::error::Error for StackError {}

/// Counters of the TCP layer (per-connection counters live in each
/// connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StackStats {
    /// TCP segments handed in by the interface.
    pub segments_in: u64,
    /// Segments handed out by `poll_transmit`.
    pub segments_out: u64,
    /// Segments dropped: too short, bad data offset or options, zero port.
    pub drop_malformed: u64,
    /// Segments dropped for a bad checksum.
    pub drop_bad_checksum: u64,
    /// RSTs sent: for segments to closed ports or for no connection, and
    /// by connections (an unacceptable ACK in SYN-SENT, an abort), those
    /// counted when the connection is freed.
    pub rst_sent: u64,
    /// Segments for no connection that were themselves RSTs (dropped, RFC
    /// 9293 §3.10.7.1).
    pub drop_rst_for_nothing: u64,
    /// SYNs dropped: SYN backlog full and cookies off, or accept queue full.
    pub syn_dropped: u64,
    /// SYN-ACKs sent with a cookie instead of state.
    pub cookies_sent: u64,
    /// Connections created from a valid cookie ACK.
    pub cookies_accepted: u64,
    /// ACKs for a listening port that carried no valid cookie (answered
    /// with RST).
    pub cookies_rejected: u64,
    /// Connections opened with `connect`.
    pub active_opens: u64,
    /// Connections created by listeners.
    pub passive_opens: u64,
    /// Established connections dropped because the accept queue was full.
    pub accept_overflow: u64,
    /// TIME-WAIT connections replaced by a new SYN (RFC 6191).
    pub time_wait_reused: u64,
    /// Connections removed after reaching CLOSED.
    pub closed: u64,
    /// No buffer for a stateless reply (RST, cookie SYN-ACK).
    pub no_buffer: u64,
    /// Segments for no local connection that the steering rule said belong
    /// to another worker (see [`TcpStack::set_steering`]).
    pub steered_away: u64,
    /// Retransmissions of connections already removed (live connections
    /// keep their own count: [`TcpStack::retransmits`] adds both).
    pub retransmits_closed: u64,
}

/// Decides whether a segment for no local connection and no listener
/// belongs to another worker (its reply hash maps to another queue).
pub type SteeringRule = Box<dyn Fn(&FourTuple) -> bool>;

struct Listener {
    config: ListenConfig,
    syn_received: usize,
    accept: VecDeque<ConnId>,
}

struct Entry<B: PacketBuf> {
    conn: Connection<B>,
    timer: Option<TimerHandle>,
    /// The deadline the timer was filed for ([`encode_deadline`]).
    deadline: u64,
    /// The listening port while the connection counts against its backlog
    /// (SYN-RECEIVED) or sits in its accept queue.
    listener: Option<u16>,
    accepted_queue: bool,
    dirty: bool,
}

struct Slot<B: PacketBuf> {
    generation: u32,
    entry: Option<Entry<B>>,
}

/// A connection's next deadline in 8 bytes rather than an
/// `Option<Instant>`'s 16: nanoseconds, `u64::MAX` for none (a timer table
/// never reports that as a deadline: it is its "stopped").
fn encode_deadline(d: Option<Instant>) -> u64 {
    d.map_or(u64::MAX, Instant::as_nanos)
}

/// Slots per chunk of the slot table, as a shift.
const SLOT_CHUNK_SHIFT: u32 = 10;
const SLOT_CHUNK: usize = 1 << SLOT_CHUNK_SHIFT;

/// The connection slots, indexed by `ConnId::index`, in chunks of
/// `SLOT_CHUNK`: growing appends a chunk and never moves the slots already
/// there (one `Vec` of ten million slots would copy gigabytes each time it
/// doubled, and keep up to half of its capacity unused); at most one chunk
/// is partly used.
struct Slots<B: PacketBuf> {
    chunks: Vec<Vec<Slot<B>>>,
    len: u32,
}

impl<B: PacketBuf> Slots<B> {
    const fn new() -> Self {
        Slots {
            chunks: Vec::new(),
            len: 0,
        }
    }

    #[inline]
    fn get(&self, index: u32) -> Option<&Slot<B>> {
        self.chunks
            .get((index >> SLOT_CHUNK_SHIFT) as usize)?
            .get(index as usize & (SLOT_CHUNK - 1))
    }

    #[inline]
    fn get_mut(&mut self, index: u32) -> Option<&mut Slot<B>> {
        self.chunks
            .get_mut((index >> SLOT_CHUNK_SHIFT) as usize)?
            .get_mut(index as usize & (SLOT_CHUNK - 1))
    }

    /// Every slot, in index order.
    fn iter(&self) -> impl Iterator<Item = &Slot<B>> {
        self.chunks.iter().flatten()
    }

    /// A new empty slot's index, or `None` when `u32` indices ran out.
    fn grow(&mut self) -> Option<u32> {
        let index = self.len;
        self.len = self.len.checked_add(1)?;
        if self.chunks.last().is_none_or(|c| c.len() == SLOT_CHUNK) {
            self.chunks.push(Vec::new());
        }
        self.chunks.last_mut()?.push(Slot {
            generation: 0,
            entry: None,
        });
        Some(index)
    }
}

/// Connections the idle sweep visits per millisecond.
const SWEEP_PER_MS: u32 = 64;

/// Most stateless replies (RSTs, cookie SYN-ACKs) waiting to be sent.
const MAX_PENDING_REPLIES: usize = 4096;

/// Ephemeral ports, as Linux's default `ip_local_port_range`.
const EPHEMERAL: core::ops::RangeInclusive<u16> = 32768..=60999;

/// The TCP layer of one worker. See the module documentation.
pub struct TcpStack<B: PacketBuf> {
    /// Shared by every connection of this stack (and no other stack).
    config: SharedConfig,
    caps: ChecksumCaps,
    slots: Slots<B>,
    free: Vec<u32>,
    flows: HashMap<FourTuple, u32, FlowHashBuilder>,
    listeners: HashMap<u16, Listener>,
    wheel: TimerWheel<ConnId>,
    isn: IsnGenerator,
    cookies: SynCookies,
    dirty: VecDeque<u32>,
    replies: VecDeque<(FourTuple, TcpRepr<'static>)>,
    events: VecDeque<(ConnId, Event)>,
    recycle: Vec<B>,
    next_ephemeral: u16,
    stats: StackStats,
    steering: Option<SteeringRule>,
    steered: Vec<Ipv4Delivery<B>>,
    next_sweep: Instant,
    sweep_at: u32,
}

impl<B: PacketBuf> core::fmt::Debug for TcpStack<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpStack")
            .field("connections", &self.flows.len())
            .field("listeners", &self.listeners.len())
            .field("timers", &self.wheel.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<B: PacketBuf> TcpStack<B> {
    /// A stack with `config` for every connection, checksums handled as
    /// `caps` says (the port's offloads: they override `config.checksum`,
    /// since every connection sends through that port), and `secret` (48
    /// random bytes from the runtime) keying the ISN generator, the SYN
    /// cookies and the flow table's hash.
    pub fn new(mut config: TcpConfig, caps: ChecksumCaps, secret: [u8; 48], now: Instant) -> Self {
        config.checksum = caps;
        let mut isn_key = [0u8; 16];
        let mut cookie_key = [0u8; 16];
        let mut flow_key = [0u8; 16];
        isn_key.copy_from_slice(&secret[..16]);
        cookie_key.copy_from_slice(&secret[16..32]);
        flow_key.copy_from_slice(&secret[32..]);
        let port_seed = u16::from_le_bytes([secret[40], secret[41]]);
        let span = EPHEMERAL.end() - EPHEMERAL.start() + 1;
        TcpStack {
            config: SharedConfig::new(config),
            caps,
            slots: Slots::new(),
            free: Vec::new(),
            flows: HashMap::with_hasher(FlowHashBuilder::new(flow_key)),
            listeners: HashMap::new(),
            wheel: TimerWheel::new(now, Duration::from_millis(1)),
            isn: IsnGenerator::new(isn_key),
            cookies: SynCookies::new(cookie_key),
            dirty: VecDeque::new(),
            replies: VecDeque::new(),
            events: VecDeque::new(),
            recycle: Vec::new(),
            next_ephemeral: EPHEMERAL.start() + port_seed % span,
            stats: StackStats::default(),
            steering: None,
            steered: Vec::new(),
            next_sweep: now,
            sweep_at: 0,
        }
    }

    /// The configuration every connection starts from.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &StackStats {
        &self.stats
    }

    /// Live connections (any state but CLOSED).
    pub fn connections(&self) -> usize {
        self.flows.len()
    }

    // ----- application -----

    /// Listens on `port` on every local address.
    pub fn listen(&mut self, port: u16, config: ListenConfig) -> Result<(), StackError> {
        if config.backlog == 0 {
            return Err(StackError::ZeroBacklog);
        }
        if self.listeners.contains_key(&port) {
            return Err(StackError::AlreadyListening(port));
        }
        self.listeners.insert(
            port,
            Listener {
                config,
                syn_received: 0,
                accept: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// Stops listening on `port`; connections already accepted or queued
    /// are not affected (queued ones stay reachable through their events).
    pub fn unlisten(&mut self, port: u16) -> bool {
        self.listeners.remove(&port).is_some()
    }

    /// Takes the oldest established connection from `port`'s accept queue.
    pub fn accept(&mut self, port: u16) -> Option<ConnId> {
        loop {
            let id = self.listeners.get_mut(&port)?.accept.pop_front()?;
            if let Some(e) = self.entry_mut(id) {
                e.listener = None;
                e.accepted_queue = false;
                return Some(id);
            }
            // Closed while queued: skip it.
        }
    }

    /// Opens a connection from `local_addr` to `remote`. With no
    /// `local_port`, an ephemeral port whose 4-tuple is free is chosen.
    pub fn connect(
        &mut self,
        now: Instant,
        local_addr: Ipv4Addr,
        local_port: Option<u16>,
        remote: (Ipv4Addr, u16),
    ) -> Result<ConnId, StackError> {
        let mut tuple = FourTuple {
            local_addr,
            local_port: local_port.unwrap_or(0),
            remote_addr: remote.0,
            remote_port: remote.1,
        };
        match local_port {
            Some(_) => {
                if !self.tuple_free(&tuple) {
                    return Err(StackError::TupleInUse);
                }
            }
            None => {
                let span = u32::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
                let mut found = false;
                for _ in 0..span {
                    let port = self.next_ephemeral;
                    self.next_ephemeral = if port >= *EPHEMERAL.end() {
                        *EPHEMERAL.start()
                    } else {
                        port + 1
                    };
                    tuple.local_port = port;
                    if self.tuple_free(&tuple) {
                        found = true;
                        break;
                    }
                }
                if !found {
                    return Err(StackError::NoEphemeralPort);
                }
            }
        }
        let iss = self.isn.isn(now, &tuple);
        let mut conn = Connection::connect(&self.config, tuple, iss, now);
        conn.set_timestamp_offset(self.isn.ts_offset(tuple.local_addr, tuple.remote_addr));
        let id = self.insert(tuple, conn, None)?;
        self.stats.active_opens += 1;
        self.touch(id.index, now);
        Ok(id)
    }

    /// Whether an active open may take `tuple`: no connection holds it, or
    /// (with `time_wait_reuse`) only one in TIME-WAIT, which gives way.
    /// The new SYN's sequence number comes from the RFC 6528 clock and its
    /// timestamp from the same per-address-pair clock as the old
    /// connection's, so both are newer than anything the old incarnation
    /// sent: a peer still in TIME-WAIT accepts it (RFC 6191), and old
    /// duplicates fail PAWS (RFC 7323 §5). Linux calls this `tcp_tw_reuse`.
    fn tuple_free(&mut self, tuple: &FourTuple) -> bool {
        let Some(&index) = self.flows.get(tuple) else {
            return true;
        };
        let reusable = self.config.time_wait_reuse
            && self
                .slots
                .get(index)
                .and_then(|s| s.entry.as_ref())
                .is_some_and(|e| e.conn.state() == State::TimeWait);
        if reusable {
            self.stats.time_wait_reused += 1;
            self.remove(index);
        }
        reusable
    }

    /// The connection on `tuple`, if any (any state but CLOSED).
    pub fn lookup(&self, tuple: &FourTuple) -> Option<ConnId> {
        let index = *self.flows.get(tuple)?;
        let slot = self.slots.get(index)?;
        slot.entry.as_ref().map(|_| ConnId {
            index,
            generation: slot.generation,
        })
    }

    /// A connection, to read its state.
    pub fn conn(&self, id: ConnId) -> Option<&Connection<B>> {
        self.slots
            .get(id.index)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.entry.as_ref())
            .map(|e| &e.conn)
    }

    /// Runs `f` on a connection (to send, read, close) and then brings the
    /// stack up to date with what it did: transmission scheduled, timers
    /// re-filed, events collected. `None` if the connection is gone.
    pub fn with_conn<R>(
        &mut self,
        now: Instant,
        id: ConnId,
        f: impl FnOnce(&mut Connection<B>) -> R,
    ) -> Option<R> {
        let r = f(&mut self.entry_mut(id)?.conn);
        self.touch(id.index, now);
        Some(r)
    }

    // ----- input -----

    /// Sets the rule that sends segments for no local connection and no
    /// listener to another worker instead of answering them with RST: they
    /// wait in [`poll_steered`](Self::poll_steered) for the runtime to pass
    /// over a cross-core ring, where the owner takes them with
    /// [`handle_steered`](Self::handle_steered).
    pub fn set_steering(&mut self, rule: Option<SteeringRule>) {
        self.steering = rule;
    }

    /// The next segment the steering rule sent away.
    pub fn poll_steered(&mut self) -> Option<Ipv4Delivery<B>> {
        self.steered.pop()
    }

    /// Processes a segment another worker steered here: as
    /// [`handle_packet`](Self::handle_packet), but never steered again.
    pub fn handle_steered(&mut self, now: Instant, delivery: Ipv4Delivery<B>) {
        self.handle_packet_inner(now, delivery, false);
    }

    /// Retransmissions over the stack's life: removed connections' and live
    /// ones' (a walk over the connections: for snapshots, not per packet).
    pub fn retransmits(&self) -> u64 {
        self.stats.retransmits_closed
            + self
                .slots
                .iter()
                .filter_map(|s| s.entry.as_ref())
                .map(|e| u64::from(e.conn.stats().retransmits))
                .sum::<u64>()
    }

    /// Connections per state, indexed by [`State`] as `usize` (a walk: for
    /// snapshots).
    pub fn states(&self) -> [u64; State::COUNT] {
        let mut n = [0u64; State::COUNT];
        for e in self.slots.iter().filter_map(|s| s.entry.as_ref()) {
            n[e.conn.state() as usize] += 1;
        }
        n
    }

    /// Takes `id` out of its listener's accept queue, as
    /// [`accept`](Self::accept) would, and returns the listening port; `None`
    /// when `id` is not waiting there. For runtimes that hand each
    /// connection to the application as it is established.
    pub fn take_accepted(&mut self, id: ConnId) -> Option<u16> {
        let e = self.entry_mut(id)?;
        if !e.accepted_queue {
            return None;
        }
        let port = e.listener.take()?;
        e.accepted_queue = false;
        if let Some(l) = self.listeners.get_mut(&port) {
            if let Some(pos) = l.accept.iter().position(|&x| x == id) {
                l.accept.remove(pos);
            }
        }
        Some(port)
    }

    /// Processes one IPv4 packet of protocol TCP from the interface.
    pub fn handle_packet(&mut self, now: Instant, delivery: Ipv4Delivery<B>) {
        self.handle_packet_inner(now, delivery, true);
    }

    fn handle_packet_inner(&mut self, now: Instant, delivery: Ipv4Delivery<B>, steer: bool) {
        self.stats.segments_in += 1;
        let Ipv4Delivery { repr: ip, buf } = delivery;
        let parsed = TcpPacket::new_checked(buf.as_slice()).and_then(|p| {
            let header_len = p.header_len();
            TcpRepr::parse(&p, ip.src_addr, ip.dst_addr, &self.caps).map(|r| (r, header_len))
        });
        let (seg, header_len) = match parsed {
            Ok(x) => x,
            Err(crate::wire::Error::Checksum) => {
                self.stats.drop_bad_checksum += 1;
                self.recycle.push(buf);
                return;
            }
            Err(_) => {
                self.stats.drop_malformed += 1;
                self.recycle.push(buf);
                return;
            }
        };
        let tuple = FourTuple {
            local_addr: ip.dst_addr,
            local_port: seg.dst_port,
            remote_addr: ip.src_addr,
            remote_port: seg.src_port,
        };
        let found = self.flows.get(&tuple).copied();
        if found.is_none()
            && steer
            && !self.listeners.contains_key(&tuple.local_port)
            && self.steering.as_ref().is_some_and(|rule| rule(&tuple))
        {
            self.stats.steered_away += 1;
            self.steered.push(Ipv4Delivery { repr: ip, buf });
            return;
        }
        // The payload travels on as its own handle on the received buffer
        // (a reference, not a copy); `seg` keeps borrowing the original.
        let payload = (!seg.payload.is_empty()).then(|| {
            let mut p = buf.share();
            let _ = p.advance(header_len);
            p.truncate(seg.payload.len());
            p
        });

        if let Some(index) = found {
            let reuse = seg.flags.contains(TcpFlags::SYN)
                && !seg.flags.contains(TcpFlags::ACK)
                && self
                    .slots
                    .get(index)
                    .and_then(|s| s.entry.as_ref())
                    .is_some_and(|e| {
                        e.conn.state() == State::TimeWait && e.conn.time_wait_accepts_syn(&seg)
                    });
            if reuse {
                // RFC 6191 §2: the old incarnation gives way to the new SYN.
                self.stats.time_wait_reused += 1;
                self.remove(index);
            } else {
                if let Some(e) = self.slots.get_mut(index).and_then(|s| s.entry.as_mut()) {
                    e.conn.handle_segment(now, &seg, payload);
                }
                // Back to the pool: a handle still shared with the payload
                // is only dropped there; a pure ACK's buffer is counted back.
                self.recycle.push(buf);
                self.touch(index, now);
                return;
            }
        }
        self.no_connection(now, tuple, &seg, payload);
        self.recycle.push(buf);
    }

    /// A segment for no connection: a listener's SYN or cookie ACK, or RST.
    fn no_connection(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        payload: Option<B>,
    ) {
        let flags = seg.flags;
        if flags.contains(TcpFlags::RST) {
            // RFC 9293 §3.10.7.1: an incoming RST for nothing is discarded.
            self.stats.drop_rst_for_nothing += 1;
            self.recycle.extend(payload);
            return;
        }
        let Some(listener) = self.listeners.get(&tuple.local_port) else {
            self.recycle.extend(payload);
            self.reset(tuple, seg);
            return;
        };
        let config = listener.config;
        let syn_full = listener.syn_received >= config.syn_backlog;
        let accept_full = listener.accept.len() >= config.backlog;
        if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) {
            self.recycle.extend(payload);
            if accept_full || (syn_full && !config.syn_cookies) {
                // Like Linux: a full queue drops the SYN; the peer retries.
                self.stats.syn_dropped += 1;
                return;
            }
            if syn_full {
                self.send_cookie(now, tuple, seg);
                return;
            }
            let iss = self.isn.isn(now, &tuple);
            let mut conn = Connection::accept(&self.config, tuple, iss, seg, now);
            conn.set_timestamp_offset(self.isn.ts_offset(tuple.local_addr, tuple.remote_addr));
            let Ok(id) = self.insert(tuple, conn, Some(tuple.local_port)) else {
                self.stats.syn_dropped += 1;
                return;
            };
            if let Some(l) = self.listeners.get_mut(&tuple.local_port) {
                l.syn_received += 1;
            }
            self.stats.passive_opens += 1;
            self.touch(id.index, now);
            return;
        }
        if flags.contains(TcpFlags::ACK) && !flags.contains(TcpFlags::SYN) && config.syn_cookies {
            if let Some(id) = self.cookie_ack(now, tuple, seg, accept_full) {
                if payload.is_some() {
                    if let Some(e) = self.entry_mut(id) {
                        e.conn.handle_segment(now, seg, payload);
                    }
                } else {
                    self.recycle.extend(payload);
                }
                self.touch(id.index, now);
                return;
            }
        }
        self.recycle.extend(payload);
        self.reset(tuple, seg);
    }

    /// A SYN-ACK whose ISN is a cookie: no state kept (RFC 4987 §3.6).
    fn send_cookie(&mut self, now: Instant, tuple: FourTuple, syn: &TcpRepr<'_>) {
        let peer_mss = syn.max_seg_size.unwrap_or(536);
        let ours = self.config.mss;
        let (iss, mss) = self
            .cookies
            .generate(now, &tuple, syn.seq_number.0, peer_mss.min(ours));
        // Options the SYN asked for survive in the timestamp we send
        // (RFC 4987 §3.6 notes cookies otherwise lose them).
        // The clock every connection to this address runs on (and the one
        // the connection the cookie creates will continue).
        let ts_offset = self.isn.ts_offset(tuple.local_addr, tuple.remote_addr);
        let timestamp = syn
            .timestamp
            .filter(|_| self.config.timestamps)
            .map(|(tsval, _)| {
                let opts = CookieTsOpts {
                    wscale: syn.window_scale.filter(|_| self.config.window_scale),
                    sack_ok: syn.sack_permitted && self.config.sack,
                    ecn_ok: false,
                };
                (
                    syncookie::encode_ts_opts(super::conn::timestamp_value(ts_offset, now), opts),
                    tsval,
                )
            });
        let with_ts = timestamp.is_some();
        let reply = TcpRepr {
            src_port: tuple.local_port,
            dst_port: tuple.remote_port,
            seq_number: TcpSeqNumber(iss),
            ack_number: Some(syn.seq_number + 1u32),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window_len: u16::try_from(self.config.rcv_buf).unwrap_or(u16::MAX),
            max_seg_size: Some(mss),
            // Window scale and SACK only where the timestamp can carry them.
            window_scale: syn
                .window_scale
                .filter(|_| with_ts && self.config.window_scale)
                .and_then(|_| self.config.wscale_shift()),
            sack_permitted: with_ts && syn.sack_permitted && self.config.sack,
            sack_ranges: [None; 4],
            timestamp,
            payload: &[],
        };
        if self.queue_reply(tuple, &reply) {
            self.stats.cookies_sent += 1;
        }
    }

    /// Checks an ACK against the cookies and creates the connection it
    /// proves, established.
    fn cookie_ack(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        accept_full: bool,
    ) -> Option<ConnId> {
        let ack = seg.ack_number?;
        let client_isn = seg.seq_number.0.wrapping_sub(1);
        let cookie = ack.0.wrapping_sub(1);
        let Some(info) = self.cookies.validate(now, &tuple, client_isn, cookie) else {
            self.stats.cookies_rejected += 1;
            return None;
        };
        if accept_full {
            self.stats.accept_overflow += 1;
            return None;
        }
        let opts = seg
            .timestamp
            .map(|(_, tsecr)| syncookie::decode_ts_opts(tsecr));
        let wscale = opts.and_then(|o| o.wscale);
        let sack = opts.is_some_and(|o| o.sack_ok);
        let mut conn = Connection::accept_cookie(
            &self.config,
            tuple,
            cookie,
            seg,
            info.mss,
            wscale,
            sack,
            now,
        );
        // The clock the cookie SYN-ACK's timestamp ran on.
        conn.set_timestamp_offset(self.isn.ts_offset(tuple.local_addr, tuple.remote_addr));
        let id = self.insert(tuple, conn, Some(tuple.local_port)).ok()?;
        self.stats.cookies_accepted += 1;
        self.stats.passive_opens += 1;
        if let Some(l) = self.listeners.get_mut(&tuple.local_port) {
            l.accept.push_back(id);
        }
        if let Some(e) = self.entry_mut(id) {
            e.accepted_queue = true;
        }
        Some(id)
    }

    /// Answers a segment for nothing with RST (RFC 9293 §3.10.7.1).
    fn reset(&mut self, tuple: FourTuple, seg: &TcpRepr<'_>) {
        if let Some(rst) = super::conn::rst_for(seg) {
            if self.queue_reply(tuple, &rst) {
                self.stats.rst_sent += 1;
            }
        }
    }

    /// Queues a stateless segment (no payload) for `poll_transmit`.
    fn queue_reply(&mut self, tuple: FourTuple, repr: &TcpRepr<'_>) -> bool {
        if self.replies.len() >= MAX_PENDING_REPLIES {
            // A flood of segments for nothing must not grow memory.
            return false;
        }
        self.replies.push_back((tuple, header_only(repr)));
        true
    }

    // ----- timers -----

    /// The earliest time `handle_timeout` has work: a lower bound (the wheel
    /// may come due up to 511 ms before a timer and re-file it, and an entry
    /// stays at a deadline that has since moved later or gone, after which
    /// this gives a later time), never later than the next timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wheel.next_deadline()
    }

    /// Runs every connection timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(id) = self.wheel.poll_expired(now) {
            let Some(e) = self.entry_mut(id) else {
                continue;
            };
            e.timer = None;
            e.deadline = encode_deadline(None);
            e.conn.handle_timeout(now);
            self.touch(id.index, now);
        }
        self.sweep_idle(now);
    }

    /// Gives back idle connections' spare queue capacity, a few connections
    /// per millisecond in slot order (a full pass over ten million takes a
    /// few minutes; memory of connections that went quiet comes back
    /// within one pass, busy ones are rarely disturbed).
    fn sweep_idle(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + Duration::from_millis(1);
        let n = self.slots.len;
        if n == 0 {
            return;
        }
        for _ in 0..SWEEP_PER_MS.min(n) {
            let i = self.sweep_at % n;
            self.sweep_at = (i + 1) % n;
            if let Some(e) = self.slots.get_mut(i).and_then(|s| s.entry.as_mut()) {
                e.conn.shrink_if_idle();
            }
        }
    }

    /// Every connection's spare queue capacity given back now where its
    /// queues are empty (tests and memory measurements).
    pub fn shrink_idle(&mut self) {
        for i in 0..self.slots.len {
            if let Some(e) = self.slots.get_mut(i).and_then(|s| s.entry.as_mut()) {
                e.conn.shrink_if_idle();
            }
        }
    }

    // ----- output -----

    /// The next segment to send and its destination: a TCP header (with any
    /// payload attached) in a buffer from `alloc`, for the interface's
    /// `send_ipv4`.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        alloc: &mut impl BufAlloc<Buf = B>,
    ) -> Option<(Ipv4Addr, B)> {
        self.poll_transmit_from(now, alloc)
            .map(|(_, dst, buf)| (dst, buf))
    }

    /// [`poll_transmit`](Self::poll_transmit) with the segment's source
    /// address too, for hosts with several addresses: `(source,
    /// destination, segment)`.
    pub fn poll_transmit_from(
        &mut self,
        now: Instant,
        alloc: &mut impl BufAlloc<Buf = B>,
    ) -> Option<(Ipv4Addr, Ipv4Addr, B)> {
        while let Some((tuple, repr)) = self.replies.pop_front() {
            match build_segment(alloc, &tuple, &repr, &self.caps) {
                Some(buf) => {
                    self.stats.segments_out += 1;
                    return Some((tuple.local_addr, tuple.remote_addr, buf));
                }
                None => self.stats.no_buffer += 1,
            }
        }
        while let Some(&index) = self.dirty.front() {
            let Some(e) = self.slots.get_mut(index).and_then(|s| s.entry.as_mut()) else {
                self.dirty.pop_front();
                continue;
            };
            if let Some(seg) = e.conn.poll_transmit(now, alloc) {
                self.stats.segments_out += 1;
                let t = e.conn.tuple();
                return Some((t.local_addr, t.remote_addr, seg));
            }
            e.dirty = false;
            self.dirty.pop_front();
            self.settle(index, now);
        }
        None
    }

    /// The next connection event.
    pub fn poll_event(&mut self) -> Option<(ConnId, Event)> {
        self.events.pop_front()
    }

    /// Buffers the stack let go, for the driver's pool.
    pub fn poll_recycle(&mut self) -> Option<B> {
        self.recycle.pop()
    }

    // ----- bookkeeping -----

    fn entry_mut(&mut self, id: ConnId) -> Option<&mut Entry<B>> {
        self.slots
            .get_mut(id.index)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.entry.as_mut())
    }

    fn insert(
        &mut self,
        tuple: FourTuple,
        conn: Connection<B>,
        listener: Option<u16>,
    ) -> Result<ConnId, StackError> {
        let entry = Entry {
            conn,
            timer: None,
            deadline: encode_deadline(None),
            listener,
            accepted_queue: false,
            dirty: false,
        };
        let index = match self.free.pop() {
            Some(i) => i,
            None => self.slots.grow().ok_or(StackError::TooManyConnections)?,
        };
        let slot = self
            .slots
            .get_mut(index)
            .ok_or(StackError::TooManyConnections)?;
        slot.entry = Some(entry);
        self.flows.insert(tuple, index);
        Ok(ConnId {
            index,
            generation: slot.generation,
        })
    }

    /// After anything happened to connection `index`: schedule it for
    /// transmission and bring its events, buffers and timer up to date.
    fn touch(&mut self, index: u32, now: Instant) {
        let Some(e) = self.slots.get_mut(index).and_then(|s| s.entry.as_mut()) else {
            return;
        };
        if !e.dirty {
            e.dirty = true;
            self.dirty.push_back(index);
        }
        self.settle(index, now);
    }

    /// Collects a connection's events and buffers, re-files its timer, and
    /// removes it once CLOSED.
    fn settle(&mut self, index: u32, _now: Instant) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let id = ConnId {
            index,
            generation: slot.generation,
        };
        let Some(e) = slot.entry.as_mut() else {
            return;
        };
        while let Some(b) = e.conn.poll_recycle() {
            self.recycle.push(b);
        }
        while let Some(ev) = e.conn.poll_event() {
            if matches!(ev, Event::Connected) && !e.accepted_queue {
                if let Some(port) = e.listener {
                    // Established from SYN-RECEIVED: into the accept queue.
                    if let Some(l) = self.listeners.get_mut(&port) {
                        l.syn_received = l.syn_received.saturating_sub(1);
                        if l.accept.len() < l.config.backlog {
                            l.accept.push_back(id);
                            e.accepted_queue = true;
                        } else {
                            self.stats.accept_overflow += 1;
                            e.conn.abort(_now);
                        }
                    }
                }
            }
            self.events.push_back((id, ev));
        }
        // Filed again only when the deadline moves earlier (or nothing is
        // filed). A later one (the RTO restarted by an ACK, the delayed
        // ACK sent and re-armed, a timer stopped) leaves the entry where it
        // is: it fires early, the connection finds nothing due, and it is
        // filed at the deadline of that moment. One wheel operation per
        // timer that comes closer instead of one per segment.
        let deadline = encode_deadline(e.conn.poll_timeout());
        if deadline < e.deadline {
            e.deadline = deadline;
            // TCP timers are due on their tick. The wheel is exact up to
            // `PRECISE_TICKS` ahead and a bounded fraction late beyond; a far
            // deadline (TIME-WAIT, keep-alive, a long RTO backoff) is filed
            // early by that bound, so it fires at or before the deadline,
            // and the remainder is filed again then (a no-op wake-up for
            // the connection; a few in a long timer's life).
            let d = Instant::from_nanos(deadline);
            let file_at = d - self.wheel.lateness_for(d);
            let rescheduled = e.timer.is_some_and(|h| self.wheel.reschedule(h, file_at));
            if !rescheduled {
                e.timer = self.wheel.insert(file_at, id).ok();
            }
        }
        if e.conn.state() == State::Closed && !e.dirty {
            self.remove(index);
        }
    }

    /// Drops connection `index` from every table.
    fn remove(&mut self, index: u32) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Some(mut e) = slot.entry.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        if let Some(h) = e.timer {
            self.wheel.cancel(h);
        }
        if let Some(port) = e.listener {
            if !e.accepted_queue {
                if let Some(l) = self.listeners.get_mut(&port) {
                    l.syn_received = l.syn_received.saturating_sub(1);
                }
            }
        }
        self.flows.remove(&e.conn.tuple());
        self.stats.retransmits_closed += u64::from(e.conn.stats().retransmits);
        self.stats.rst_sent += u64::from(e.conn.stats().resets_out);
        while let Some(b) = e.conn.poll_recycle() {
            self.recycle.push(b);
        }
        self.stats.closed += 1;
    }
}

/// Builds a header-only segment (RST, SYN-ACK) in a buffer from `alloc`,
/// with its checksum per `caps`.
fn build_segment<B: PacketBuf>(
    alloc: &mut impl BufAlloc<Buf = B>,
    tuple: &FourTuple,
    repr: &TcpRepr<'_>,
    caps: &ChecksumCaps,
) -> Option<B> {
    let mut buf = alloc.alloc()?;
    let len = repr.header_len();
    let bytes = buf.append(len).ok()?;
    let mut packet = TcpPacket::new_unchecked(bytes);
    repr.emit(&mut packet, tuple.local_addr, tuple.remote_addr, caps);
    Some(buf)
}

/// The same segment's header fields, with no payload.
fn header_only(r: &TcpRepr<'_>) -> TcpRepr<'static> {
    TcpRepr {
        src_port: r.src_port,
        dst_port: r.dst_port,
        seq_number: r.seq_number,
        ack_number: r.ack_number,
        flags: r.flags,
        window_len: r.window_len,
        max_seg_size: r.max_seg_size,
        window_scale: r.window_scale,
        sack_permitted: r.sack_permitted,
        sack_ranges: r.sack_ranges,
        timestamp: r.timestamp,
        payload: &[],
    }
}
