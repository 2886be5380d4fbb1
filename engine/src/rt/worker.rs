//! One worker: a core's run-to-completion loop over its own queue.
//!
//! A [`Worker`] owns one device queue, the interface and TCP stack above it
//! (flow table, timer wheel, counters), the application's inline
//! [`Handler`], the application's timers, and its ends of the cross-core
//! rings. Nothing in it is shared: another worker reaches it only through
//! those rings.
//!
//! One iteration of [`Worker::poll`] (DESIGN.md, "The data flow"):
//! 1. frames other workers passed here (ARP seen on queue 0; TCP segments
//!    that the NIC put on the wrong queue);
//! 2. at most `rx_bursts` bursts from the device, each frame through the
//!    interface and, for TCP, the stack; a bounded amount, so timers and
//!    the application run even under a flood, and TCP's receive window —
//!    not an unbounded backlog — pushes back on senders;
//! 3. segments the stack steered away go to their owner's ring;
//! 4. interface and TCP timers;
//! 5. transmit, then the stack's events to the handler, then
//!    [`Handler::on_poll`], then due application timers;
//! 6. one transmit burst for everything the handler queued.
//!
//! The loop reads the clock once per iteration ([`Worker::run`]); tests and
//! simulations call [`Worker::poll`] with a virtual clock instead.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use super::ring::{Consumer, Producer};
use super::rss_pick::SourcePorts;
use super::{DeviceAlloc, TcpHost, BURST};
use crate::api::{Context, Handler};
use crate::buf::PacketBuf;
use crate::net::{Interface, Ipv4Delivery};
use crate::port::Device;
use crate::tcp::{ConnId, Event, FourTuple, StackError, TcpStack};
use crate::time::{Duration, Instant};
use crate::wire::{IpProtocol, Ipv4Repr};

/// What a worker does when an iteration found no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Spin: lowest latency, one core at 100 %.
    BusyPoll,
    /// Spin for `spins` empty iterations, then sleep until the next timer,
    /// at most `max_sleep` at a time.
    Backoff {
        /// Empty iterations before sleeping.
        spins: u32,
        /// Longest single sleep.
        max_sleep: Duration,
    },
}

/// A worker's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Device bursts read per iteration at most.
    pub rx_bursts: usize,
    /// What to do when idle.
    pub idle: IdlePolicy,
    /// Source addresses for active opens, used in turn; empty: the
    /// interface's first address.
    pub source_addrs: Vec<Ipv4Addr>,
    /// Local ports for active opens.
    pub source_ports: RangeInclusive<u16>,
    /// TX batching: frames wait at most this long for a full burst
    /// ([`BURST`]) before going to the device. Zero sends every iteration's
    /// frames at its end.
    pub tx_hold: Duration,
}

impl WorkerConfig {
    /// Latency preset: busy-poll, one receive burst per iteration (a
    /// request never waits behind a long batch), frames out at the end of
    /// every iteration.
    pub fn latency() -> Self {
        WorkerConfig {
            rx_bursts: 1,
            idle: IdlePolicy::BusyPoll,
            source_addrs: Vec::new(),
            source_ports: 1024..=65535,
            tx_hold: Duration::ZERO,
        }
    }

    /// Throughput preset: larger receive batches, frames held up to 20 µs
    /// for full transmit bursts, and a back-off to sleep when idle.
    pub fn throughput() -> Self {
        WorkerConfig {
            rx_bursts: 8,
            idle: IdlePolicy::Backoff {
                spins: 1024,
                max_sleep: Duration::from_millis(1),
            },
            tx_hold: Duration::from_micros(20),
            ..WorkerConfig::latency()
        }
    }

    /// The TCP settings that go with the latency preset: no Nagle and no
    /// delayed ACK (every segment acknowledged at once).
    pub fn latency_tcp(mut tcp: crate::tcp::TcpConfig) -> crate::tcp::TcpConfig {
        tcp.nodelay = true;
        tcp.delayed_ack = Duration::ZERO;
        tcp
    }

    /// The TCP settings that go with the throughput preset: Nagle and a
    /// 40 ms delayed ACK, as Linux.
    pub fn throughput_tcp(mut tcp: crate::tcp::TcpConfig) -> crate::tcp::TcpConfig {
        tcp.nodelay = false;
        tcp.delayed_ack = Duration::from_millis(40);
        tcp
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            rx_bursts: 4,
            ..WorkerConfig::latency()
        }
    }
}

/// Why [`Context::connect`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// Every source port (of every source address) whose replies reach this
    /// worker is in use toward that destination.
    NoSourcePort,
    /// The stack refused it.
    Stack(StackError),
}

impl core::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConnectError::NoSourcePort => f.write_str(
                "no free source port toward that destination on this worker (add source addresses)",
            ),
            ConnectError::Stack(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Something another worker passes over a cross-core ring (a copy: each
/// worker's buffers stay in its own pool).
#[derive(Debug)]
pub enum Forward {
    /// A whole Ethernet frame (ARP, seen only by queue 0).
    Frame(Box<[u8]>),
    /// A TCP segment that arrived on the wrong queue, with its IPv4 header.
    Tcp(Ipv4Repr, Box<[u8]>),
}

/// A worker's ends of the cross-core rings.
#[derive(Debug, Default)]
pub struct CrossCore {
    /// From each other worker (`None` for ourselves).
    pub inbound: Vec<Option<Consumer<Forward>>>,
    /// To each other worker (`None` for ourselves).
    pub outbound: Vec<Option<Producer<Forward>>>,
}

/// Rings between every pair of `n` workers, `capacity` slots each.
pub fn cross_core_mesh(n: usize, capacity: usize) -> Vec<CrossCore> {
    let mut cores: Vec<CrossCore> = (0..n)
        .map(|_| CrossCore {
            inbound: (0..n).map(|_| None).collect(),
            outbound: (0..n).map(|_| None).collect(),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from != to {
                let (p, c) = super::ring::channel(capacity);
                cores[from].outbound[to] = Some(p);
                cores[to].inbound[from] = Some(c);
            }
        }
    }
    cores
}

/// Counters of the loop itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Iterations run.
    pub iterations: u64,
    /// Iterations that moved no frame.
    pub idle_iterations: u64,
    /// Frames received from the device.
    pub rx_frames: u64,
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Non-IPv4 frames (ARP) copied to the other workers.
    pub forwarded_out: u64,
    /// Non-IPv4 frames taken from other workers.
    pub forwarded_in: u64,
    /// TCP segments that arrived on this queue but belong to another
    /// worker's connection, passed to it.
    pub steered_out: u64,
    /// TCP segments other workers passed here.
    pub steered_in: u64,
    /// Forwards dropped: the ring to the owner was full.
    pub forward_ring_full: u64,
    /// Forwarded items dropped: no buffer to copy them into.
    pub forward_no_buffer: u64,
    /// Events handed to the handler.
    pub events: u64,
    /// Application timers fired.
    pub timers_fired: u64,
    /// Connection attempts refused locally (no port, table full).
    pub connect_errors: u64,
}

/// Everything of a worker except its handler (what a [`Context`] reaches).
pub struct WorkerCore<D: Device> {
    /// The worker's index (= its queue).
    pub index: usize,
    /// Interface, TCP stack and device queue.
    pub host: TcpHost<D>,
    pub(crate) config: WorkerConfig,
    picker: Option<SourcePorts>,
    source_next: usize,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    xcore: CrossCore,
    rx: Vec<D::Buf>,
    /// When the oldest frame held for TX batching was queued.
    tx_held_since: Option<Instant>,
    pub(crate) stop_requested: bool,
    /// Loop counters.
    pub stats: LoopStats,
}

impl<D: Device> core::fmt::Debug for WorkerCore<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WorkerCore")
            .field("index", &self.index)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish()
    }
}

/// A worker: its core state and its inline application.
pub struct Worker<D: Device, H> {
    /// Stack, device and loop state.
    pub core: WorkerCore<D>,
    /// The application.
    pub handler: H,
    started: bool,
}

impl<D: Device, H> core::fmt::Debug for Worker<D, H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker").field("core", &self.core).finish()
    }
}

impl<D: Device> WorkerCore<D> {
    pub(crate) fn connect(
        &mut self,
        now: Instant,
        remote: (Ipv4Addr, u16),
    ) -> Result<ConnId, ConnectError> {
        let addrs = if self.config.source_addrs.is_empty() {
            vec![self
                .host
                .lp
                .iface
                .config()
                .addrs
                .first()
                .map_or(Ipv4Addr::UNSPECIFIED, |c| c.addr)]
        } else {
            self.config.source_addrs.clone()
        };
        let n = addrs.len();
        for k in 0..n {
            let local = addrs[(self.source_next + k) % n];
            let tcp = &mut self.host.tcp;
            let mut result = None;
            let picked = match self.picker.as_mut() {
                Some(p) => p.pick(local, remote, |port| {
                    match tcp.connect(now, local, Some(port), remote) {
                        Ok(id) => {
                            result = Some(Ok(id));
                            true
                        }
                        Err(StackError::TupleInUse) => false,
                        Err(e) => {
                            result = Some(Err(e));
                            true
                        }
                    }
                }),
                None => {
                    result = Some(tcp.connect(now, local, None, remote));
                    Some(0)
                }
            };
            if picked.is_some() {
                self.source_next = (self.source_next + k + 1) % n;
                return match result {
                    Some(Ok(id)) => Ok(id),
                    Some(Err(e)) => {
                        self.stats.connect_errors += 1;
                        Err(ConnectError::Stack(e))
                    }
                    None => unreachable!("a picked port has a result"),
                };
            }
        }
        self.stats.connect_errors += 1;
        Err(ConnectError::NoSourcePort)
    }

    pub(crate) fn set_timer(&mut self, at: Instant, token: u64) {
        self.timers.push(Reverse((at, token)));
    }

    /// Moves what TCP has to the interface, and the interface's queue to
    /// the device unless TX batching holds it for a fuller burst.
    fn transmit(&mut self, now: Instant) {
        self.host.flush_with(now, false);
        let pending = self.host.lp.iface.tx_pending();
        if pending == 0 {
            self.tx_held_since = None;
            return;
        }
        let hold = self.config.tx_hold;
        if !hold.is_zero() && pending < BURST {
            let since = *self.tx_held_since.get_or_insert(now);
            if now.saturating_since(since) < hold {
                return;
            }
        }
        self.tx_held_since = None;
        let sent = self.host.lp.flush(now);
        self.stats.tx_frames += sent as u64;
    }

    /// Copies `bytes` into a buffer from the device's pool.
    fn copy_in(&mut self, bytes: &[u8]) -> Option<D::Buf> {
        let mut b = self.host.lp.dev.alloc_tx()?;
        match b.append(bytes.len()) {
            Ok(room) => {
                room.copy_from_slice(bytes);
                Some(b)
            }
            Err(_) => {
                self.host.lp.recycle(b);
                None
            }
        }
    }

    fn deliver(&mut self, now: Instant, d: Ipv4Delivery<D::Buf>) {
        if d.repr.protocol == IpProtocol::Tcp {
            self.host.tcp.handle_packet(now, d);
        } else {
            self.host.lp.recycle(d.buf);
        }
    }

    fn receive_frame(&mut self, now: Instant, frame: D::Buf) {
        let lp = &mut self.host.lp;
        if let Some(d) = lp.iface.receive(now, frame, &mut DeviceAlloc(&mut lp.dev)) {
            self.deliver(now, d);
        }
    }

    /// Takes what other workers passed here.
    fn take_forwarded(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for i in 0..self.xcore.inbound.len() {
            while let Some(f) = self.xcore.inbound[i].as_mut().and_then(Consumer::pop) {
                n += 1;
                match f {
                    Forward::Frame(bytes) => match self.copy_in(&bytes) {
                        Some(b) => {
                            self.stats.forwarded_in += 1;
                            self.receive_frame(now, b);
                        }
                        None => self.stats.forward_no_buffer += 1,
                    },
                    Forward::Tcp(repr, bytes) => match self.copy_in(&bytes) {
                        Some(buf) => {
                            self.stats.steered_in += 1;
                            self.host
                                .tcp
                                .handle_steered(now, Ipv4Delivery { repr, buf });
                        }
                        None => self.stats.forward_no_buffer += 1,
                    },
                }
            }
        }
        n
    }

    fn forward(&mut self, to: usize, f: Forward) {
        let tcp = matches!(f, Forward::Tcp(..));
        match self.xcore.outbound.get_mut(to).and_then(Option::as_mut) {
            Some(ring) => match ring.push(f) {
                Ok(()) if tcp => self.stats.steered_out += 1,
                Ok(()) => self.stats.forwarded_out += 1,
                Err(_) => self.stats.forward_ring_full += 1,
            },
            None => self.stats.forward_ring_full += 1,
        }
    }

    /// Receives at most `rx_bursts` bursts; returns frames received.
    fn receive(&mut self, now: Instant) -> usize {
        let mut total = 0;
        let others = self.xcore.outbound.len() > 1;
        for _ in 0..self.config.rx_bursts.max(1) {
            let mut rx = core::mem::take(&mut self.rx);
            let n = self.host.lp.dev.rx_burst(now, &mut rx, BURST);
            total += n;
            for frame in rx.drain(..) {
                // Queue 0 gets every non-IPv4 frame (the NIC hashes only
                // IP): the others need the ARP replies too.
                if others && !is_ipv4(frame.as_slice()) {
                    let bytes: Box<[u8]> = frame.as_slice().into();
                    for to in 0..self.xcore.outbound.len() {
                        if to != self.index {
                            self.forward(to, Forward::Frame(bytes.clone()));
                        }
                    }
                }
                self.receive_frame(now, frame);
            }
            self.rx = rx;
            if n < BURST {
                break;
            }
        }
        self.stats.rx_frames += total as u64;
        total
    }

    /// Passes segments the stack steered away to their owners.
    fn send_steered(&mut self, now: Instant) {
        while let Some(d) = self.host.tcp.poll_steered() {
            let owner = self.picker.as_ref().and_then(|p| {
                let s = d.buf.as_slice();
                let (sp, dp) = (u16::from_be_bytes([*s.first()?, *s.get(1)?]), {
                    u16::from_be_bytes([*s.get(2)?, *s.get(3)?])
                });
                let tuple = FourTuple {
                    local_addr: d.repr.dst_addr,
                    local_port: dp,
                    remote_addr: d.repr.src_addr,
                    remote_port: sp,
                };
                Some(usize::from(p.reply_queue(&tuple)))
            });
            match owner {
                Some(to) if to != self.index => {
                    let bytes: Box<[u8]> = d.buf.as_slice().into();
                    self.forward(to, Forward::Tcp(d.repr, bytes));
                    self.host.lp.recycle(d.buf);
                }
                // Ours after all (rule and table disagree): process here.
                _ => self.host.tcp.handle_steered(now, d),
            }
        }
    }
}

fn is_ipv4(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x00]) => true,
        // One 802.1Q tag.
        Some([0x81, 0x00]) => matches!(frame.get(16..18), Some([0x08, 0x00])),
        _ => false,
    }
}

impl<D: Device, H: Handler<D>> Worker<D, H> {
    /// A worker on `dev` (queue `dev.caps().queue`) with `iface` and `tcp`
    /// above it, running `handler`; `xcore` are its ring ends (empty for a
    /// lone worker).
    pub fn new(
        iface: Interface<D::Buf>,
        dev: D,
        mut tcp: TcpStack<D::Buf>,
        handler: H,
        config: WorkerConfig,
        xcore: CrossCore,
    ) -> Self {
        let caps = dev.caps().clone();
        let index = usize::from(caps.queue);
        let picker = caps
            .rss
            .as_ref()
            .filter(|_| caps.queues > 1)
            .map(|rss| SourcePorts::new(rss, caps.queue, config.source_ports.clone()));
        if let Some(p) = &picker {
            // Another worker's replies that the NIC put here anyway.
            tcp.set_steering(Some(Box::new(p.foreign_rule())));
        }
        Worker {
            core: WorkerCore {
                index,
                host: TcpHost::new(iface, dev, tcp),
                config,
                picker,
                source_next: 0,
                timers: BinaryHeap::new(),
                xcore,
                rx: Vec::with_capacity(BURST),
                tx_held_since: None,
                stop_requested: false,
                stats: LoopStats::default(),
            },
            handler,
            started: false,
        }
    }

    /// Runs one loop iteration at `now`; returns whether it did any work.
    pub fn poll(&mut self, now: Instant) -> bool {
        let core = &mut self.core;
        if !self.started {
            self.started = true;
            self.handler.on_start(&mut Context { core, now });
        }
        let core = &mut self.core;
        core.stats.iterations += 1;
        let mut work = core.take_forwarded(now);
        work += core.receive(now);
        core.send_steered(now);
        if core.host.lp.iface.poll_at().is_some_and(|t| t <= now) {
            let lp = &mut core.host.lp;
            lp.iface.handle_timeout(now, &mut DeviceAlloc(&mut lp.dev));
        }
        core.host.tcp.handle_timeout(now);
        core.host.flush_with(now, false);
        // Events, then whatever the handler's calls produced, a few rounds.
        for _ in 0..4 {
            let mut any = false;
            while let Some((id, ev)) = self.core.host.poll_event() {
                any = true;
                work += 1;
                self.dispatch(now, id, ev);
            }
            if !any {
                break;
            }
            self.core.host.flush_with(now, false);
        }
        self.handler.on_poll(&mut Context {
            core: &mut self.core,
            now,
        });
        while let Some(&Reverse((at, token))) = self.core.timers.peek() {
            if at > now {
                break;
            }
            self.core.timers.pop();
            self.core.stats.timers_fired += 1;
            work += 1;
            self.handler.on_timer(
                &mut Context {
                    core: &mut self.core,
                    now,
                },
                token,
            );
        }
        self.core.transmit(now);
        if work == 0 {
            self.core.stats.idle_iterations += 1;
        }
        work > 0
    }

    fn dispatch(&mut self, now: Instant, id: ConnId, ev: Event) {
        self.core.stats.events += 1;
        let h = &mut self.handler;
        let mut cx = Context {
            core: &mut self.core,
            now,
        };
        match ev {
            Event::Connected => match cx.core.host.tcp.take_accepted(id) {
                Some(port) => h.on_accepted(&mut cx, id, port),
                None => h.on_connected(&mut cx, id),
            },
            Event::Readable => h.on_readable(&mut cx, id),
            Event::Writable => h.on_writable(&mut cx, id),
            Event::PeerFin => h.on_peer_fin(&mut cx, id),
            Event::Closed(reason) => h.on_closed(&mut cx, id, reason),
        }
    }

    /// Whether the loop should end: the handler is done or asked to stop.
    pub fn finished(&self) -> bool {
        self.core.stop_requested || self.handler.is_done()
    }

    /// The earliest time the worker has work without new frames.
    pub fn poll_at(&self) -> Option<Instant> {
        let app = self.core.timers.peek().map(|Reverse((at, _))| *at);
        let held = self
            .core
            .tx_held_since
            .map(|t| t + self.core.config.tx_hold);
        [self.core.host.poll_at(), app, held]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the loop on the real clock until the handler is done, `stop`
    /// is set, or `deadline` passes; the caller has pinned the thread.
    pub fn run(&mut self, stop: &std::sync::atomic::AtomicBool, deadline: Option<Instant>) {
        let done = std::sync::atomic::AtomicUsize::new(0);
        self.run_in_group(stop, deadline, &done, 1);
    }

    /// [`run`](Self::run) for one of `size` workers of a port: a worker
    /// whose handler is done counts itself in `done` and keeps polling
    /// until every worker is done (or `stop`, or `deadline`), because the
    /// others' segments that the NIC puts on its queue, and the ARP replies
    /// queue 0 shares, still pass through it.
    pub fn run_in_group(
        &mut self,
        stop: &std::sync::atomic::AtomicBool,
        deadline: Option<Instant>,
        done: &std::sync::atomic::AtomicUsize,
        size: usize,
    ) {
        use std::sync::atomic::Ordering;
        let mut idle: u32 = 0;
        let mut counted = false;
        loop {
            let now = Instant::now_monotonic();
            let busy = self.poll(now);
            if !counted && self.finished() {
                counted = true;
                done.fetch_add(1, Ordering::AcqRel);
            }
            if (counted && done.load(Ordering::Acquire) >= size)
                || stop.load(Ordering::Relaxed)
                || deadline.is_some_and(|d| now >= d)
            {
                break;
            }
            if busy {
                idle = 0;
                continue;
            }
            idle = idle.saturating_add(1);
            match self.core.config.idle {
                IdlePolicy::BusyPoll => core::hint::spin_loop(),
                IdlePolicy::Backoff { spins, max_sleep } => {
                    if idle < spins {
                        core::hint::spin_loop();
                    } else {
                        let until = self
                            .poll_at()
                            .map_or(max_sleep, |t| t.saturating_since(now))
                            .min(max_sleep);
                        if !until.is_zero() {
                            std::thread::sleep(until);
                        }
                    }
                }
            }
        }
        // What the handler queued last goes out.
        self.core.host.flush(Instant::now_monotonic());
    }
}
