//! The in-memory wire: a switch joining several ports inside one process.
//!
//! Each port has a MAC address and N queues; [`MemWire::add_port`] hands out
//! one [`MemDevice`] per queue. A frame sent on any queue of a port is
//! switched by destination MAC: to the port owning that MAC, to every other
//! port for broadcast and multicast, and dropped (and counted) for unknown
//! unicast or a frame addressed back to its own port. At the destination the
//! Toeplitz hash of the frame over that port's RSS key, looked up in its
//! redirection table, picks the queue, exactly as a NIC would; non-IPv4
//! frames and IPv4 fragments go to queue 0 (see [`rss::frame_hash`]).
//!
//! Impairments ([`Impairment`]) apply on each port's egress: loss, reorder,
//! duplication, corruption, delay with jitter, and a rate limit with a tail-
//! drop queue. Random choices come from a PRNG per sending queue seeded from
//! (wire seed, port index, queue), so a run is deterministic for a seed as
//! long as each queue's calls happen in the same order.
//!
//! Time is the caller's: a frame sent at `now` is delivered by the first
//! `rx_burst(t, ..)` with `t` at or after its delivery time, in delivery-time
//! order (ties in send order). [`Device::poll_at`] tells a virtual clock
//! where to jump next.
//!
//! Threads: the wire is `Send + Sync` and each device is `Send`, so a
//! multi-core runtime can put each queue on its own thread. Every
//! destination queue's inbox sits behind a `Mutex` and the port table behind
//! an `RwLock`: that locking is this test wire's cost, not the engine's (real
//! ports hand each worker its own lock-free ring). Frames are copied twice
//! (into the inbox, then into a receive buffer from the receiver's pool);
//! that is also the test wire's cost.
//!
//! Contract: no input frame, however short or malformed, panics the wire.

use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::rng::Rng;
use super::{Device, DeviceCaps, RssInfo};
use crate::buf::{BufAlloc, HeapBuf, HeapPool, PacketBuf, DEFAULT_BUF_SIZE, DEFAULT_HEADROOM};
use crate::net::rss::{self, Toeplitz};
use crate::time::{Duration, Instant};
use crate::wire::{ChecksumCaps, EthernetAddress};

/// Extra time a reordered frame is held back, on top of a second
/// `delay + jitter`: frames sent up to this long after it overtake it.
pub const REORDER_HOLD: Duration = Duration::from_millis(1);

/// What a port's egress does to frames. Probabilities are in `0..=1`.
///
/// Order of application per frame: loss; switching; rate limit (with the
/// tail-drop queue); delay plus uniform jitter in `[0, jitter]`; reorder
/// (hold back by `delay + jitter + REORDER_HOLD` more); duplicate (a second
/// copy delivered right after the first); corrupt (one random bit of the
/// frame flipped, drawn independently for each delivered copy, after the
/// switching decision so the frame still reaches its port).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Probability that a frame is dropped.
    pub loss: f64,
    /// Probability that a frame is held back so later frames overtake it.
    pub reorder: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that one bit of a delivered copy is flipped.
    pub corrupt: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Uniform extra delay in `[0, jitter]`.
    pub jitter: Duration,
    /// Link rate of the port's egress in bits per second; `None` is
    /// unlimited. Frames are serialised one after another: delivery is at
    /// `max(now, link free) + len * 8 / rate` (plus delay).
    pub rate_bps: Option<u64>,
    /// With a rate limit, the most frames waiting or in serialisation on the
    /// link; more are tail-dropped (counted as `drop_overflow`). 0 is no limit.
    pub queue_limit: usize,
}

impl Impairment {
    /// A perfect link.
    pub const NONE: Impairment = Impairment {
        loss: 0.0,
        reorder: 0.0,
        duplicate: 0.0,
        corrupt: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        rate_bps: None,
        queue_limit: 1000,
    };

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), MemConfigError> {
        for (field, value) in [
            ("impairment.loss", self.loss),
            ("impairment.reorder", self.reorder),
            ("impairment.duplicate", self.duplicate),
            ("impairment.corrupt", self.corrupt),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(MemConfigError::Probability { field, value });
            }
        }
        if self.rate_bps == Some(0) {
            return Err(MemConfigError::OutOfRange {
                field: "impairment.rate_bps",
                value: 0,
                min: 1,
                max: u64::MAX,
            });
        }
        Ok(())
    }
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment::NONE
    }
}

/// One port of the in-memory wire.
#[derive(Debug, Clone, PartialEq)]
pub struct MemPortConfig {
    /// The port's MAC address: unicast, unique on the wire.
    pub mac: EthernetAddress,
    /// Number of queues (1..=1024); one [`MemDevice`] each.
    pub queues: u16,
    /// Layer 3 MTU (68..=65535): frames longer than this plus the Ethernet
    /// header (and one 802.1Q tag) are dropped as too big, both ways.
    pub mtu: usize,
    /// RSS key used to spread received frames over the queues.
    pub rss_key: [u8; 40],
    /// Redirection table size (1..=65536), filled round robin over the queues.
    pub reta_size: usize,
    /// What this port's egress does to the frames it sends.
    pub impairment: Impairment,
    /// Bytes per buffer; at least `headroom + mtu + 18`.
    pub buf_size: usize,
    /// Headroom in the buffers the devices hand out.
    pub headroom: usize,
    /// Buffers per queue (>= 1), shared by receive and `alloc_tx` as a NIC
    /// queue's mempool is: when all are out, `alloc_tx` returns `None` and
    /// received frames wait in the queue.
    pub pool_limit: usize,
    /// Frames that may wait in one receive queue (>= 1); later arrivals are
    /// dropped and counted as `drop_rx_full`.
    pub rx_queue_limit: usize,
}

impl MemPortConfig {
    /// A port with one queue, a 1500-byte MTU, the symmetric RSS key, a
    /// 128-entry RETA, no impairment and the default buffer sizes.
    pub fn new(mac: EthernetAddress) -> Self {
        MemPortConfig {
            mac,
            queues: 1,
            mtu: 1500,
            rss_key: rss::SYMMETRIC_KEY,
            reta_size: 128,
            impairment: Impairment::NONE,
            buf_size: DEFAULT_BUF_SIZE,
            headroom: DEFAULT_HEADROOM,
            pool_limit: 4096,
            rx_queue_limit: 4096,
        }
    }

    fn validate(&self) -> Result<(), MemConfigError> {
        let range = |field, value: usize, min: usize, max: usize| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(MemConfigError::OutOfRange {
                    field,
                    value: value as u64,
                    min: min as u64,
                    max: max as u64,
                })
            }
        };
        if !self.mac.is_unicast() {
            return Err(MemConfigError::MacNotUnicast(self.mac));
        }
        range("queues", usize::from(self.queues), 1, 1024)?;
        range("mtu", self.mtu, 68, 65535)?;
        range("reta_size", self.reta_size, 1, 65536)?;
        range("headroom", self.headroom, 0, 65536)?;
        range(
            "buf_size",
            self.buf_size,
            self.headroom + self.mtu + MAX_L2_HEADER,
            1 << 20,
        )?;
        range("pool_limit", self.pool_limit, 1, usize::MAX)?;
        range("rx_queue_limit", self.rx_queue_limit, 1, usize::MAX)?;
        self.impairment.validate()
    }
}

/// Why a port configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum MemConfigError {
    /// A probability outside `0..=1` (or NaN).
    Probability {
        /// The field, e.g. `impairment.loss`.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// An integer field outside its accepted range.
    OutOfRange {
        /// The field, e.g. `queues`.
        field: &'static str,
        /// The value given.
        value: u64,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// The port's MAC is a group address or all zeros.
    MacNotUnicast(EthernetAddress),
    /// Another port on the wire already has this MAC.
    DuplicateMac(EthernetAddress),
}

impl core::fmt::Display for MemConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MemConfigError::Probability { field, value } => write!(
                f,
                "{field} = {value} is invalid: expected a probability in 0..=1"
            ),
            MemConfigError::OutOfRange {
                field,
                value,
                min,
                max,
            } => write!(
                f,
                "{field} = {value} is out of range: expected {min}..={max}"
            ),
            MemConfigError::MacNotUnicast(mac) => {
                write!(f, "mac = {mac} is invalid: expected a unicast address")
            }
            MemConfigError::DuplicateMac(mac) => {
                write!(f, "mac = {mac} is already used by another port on the wire")
            }
        }
    }
}

impl std::error::Error for MemConfigError {}

/// Counters of one port (all its queues), as a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames handed to `tx_burst` (before any drop).
    pub tx_frames: u64,
    /// Bytes handed to `tx_burst`.
    pub tx_bytes: u64,
    /// Frames handed out by `rx_burst`.
    pub rx_frames: u64,
    /// Bytes handed out by `rx_burst`.
    pub rx_bytes: u64,
    /// Sent frames dropped by the `loss` impairment.
    pub drop_loss: u64,
    /// Sent frames tail-dropped by the rate limiter's queue.
    pub drop_overflow: u64,
    /// Arriving frames dropped because the receive queue was full.
    pub drop_rx_full: u64,
    /// Frames longer than the MTU plus header (sent or arriving).
    pub drop_too_big: u64,
    /// Sent frames whose destination MAC no other port owns.
    pub drop_unknown_dst: u64,
    /// Sent frames dropped by the wire's test filter.
    pub drop_filtered: u64,
    /// Sent frames shorter than an Ethernet header.
    pub drop_runt: u64,
    /// Extra copies made by the `duplicate` impairment.
    pub duplicated: u64,
    /// Copies with a bit flipped by the `corrupt` impairment.
    pub corrupted: u64,
    /// Frames held back by the `reorder` impairment.
    pub reordered: u64,
}

/// Counters of the whole wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Frames dropped for an unknown (or own) destination MAC, all ports.
    pub unknown_dst: u64,
    /// Frames dropped by the test filter, all ports.
    pub filtered: u64,
    /// Frames waiting in receive queues now (delivered or not yet due).
    pub queued: u64,
}

#[derive(Default)]
struct Counters {
    tx_frames: AtomicU64,
    tx_bytes: AtomicU64,
    rx_frames: AtomicU64,
    rx_bytes: AtomicU64,
    drop_loss: AtomicU64,
    drop_overflow: AtomicU64,
    drop_rx_full: AtomicU64,
    drop_too_big: AtomicU64,
    drop_unknown_dst: AtomicU64,
    drop_filtered: AtomicU64,
    drop_runt: AtomicU64,
    duplicated: AtomicU64,
    corrupted: AtomicU64,
    reordered: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> PortStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PortStats {
            tx_frames: r(&self.tx_frames),
            tx_bytes: r(&self.tx_bytes),
            rx_frames: r(&self.rx_frames),
            rx_bytes: r(&self.rx_bytes),
            drop_loss: r(&self.drop_loss),
            drop_overflow: r(&self.drop_overflow),
            drop_rx_full: r(&self.drop_rx_full),
            drop_too_big: r(&self.drop_too_big),
            drop_unknown_dst: r(&self.drop_unknown_dst),
            drop_filtered: r(&self.drop_filtered),
            drop_runt: r(&self.drop_runt),
            duplicated: r(&self.duplicated),
            corrupted: r(&self.corrupted),
            reordered: r(&self.reordered),
        }
    }
}

/// Ethernet header plus one 802.1Q tag.
const MAX_L2_HEADER: usize = 18;

/// Whether `frame` exceeds `mtu` plus its Ethernet header (14 bytes, 18
/// with an 802.1Q tag).
fn too_big(frame: &[u8], mtu: usize) -> bool {
    let tagged = frame.get(12..14) == Some(&[0x81, 0x00][..]);
    frame.len() > mtu + if tagged { 18 } else { 14 }
}

/// Serialisation time of `len` bytes at `rate` bit/s, rounded up.
fn serialisation(len: usize, rate: u64) -> Duration {
    let bits = len as u128 * 8;
    let nanos = (bits * 1_000_000_000).div_ceil(u128::from(rate.max(1)));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on another thread (a failed test) must not cascade here; the
    // data under these locks stays consistent between statements.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A frame waiting in a receive queue; the heap's top is the earliest.
struct Pending {
    at: Instant,
    seq: u64,
    frame: Box<[u8]>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The rate-limited egress link of a port, shared by its queues.
struct Link {
    free_at: Instant,
    /// Finish times of the frames waiting or in serialisation.
    backlog: VecDeque<Instant>,
}

struct Port {
    index: usize,
    mac: EthernetAddress,
    mtu: usize,
    toeplitz: Toeplitz,
    reta: Vec<u16>,
    impairment: Impairment,
    rx_queue_limit: usize,
    inboxes: Vec<Mutex<BinaryHeap<Pending>>>,
    link: Mutex<Link>,
    stats: Counters,
}

impl Port {
    /// Puts an arriving frame into the receive queue its RSS hash picks.
    fn arrive(&self, at: Instant, seq: u64, frame: Box<[u8]>) {
        if too_big(&frame, self.mtu) {
            bump(&self.stats.drop_too_big, 1);
            return;
        }
        let queue =
            rss::frame_hash(&self.toeplitz, &frame).map_or(0, |h| rss::queue_for(h, &self.reta));
        let Some(inbox) = self.inboxes.get(usize::from(queue)) else {
            return;
        };
        let mut inbox = lock(inbox);
        if inbox.len() >= self.rx_queue_limit {
            bump(&self.stats.drop_rx_full, 1);
            return;
        }
        inbox.push(Pending { at, seq, frame });
    }
}

/// A test filter: returns true for frames to drop.
pub type FrameFilter = Box<dyn FnMut(&[u8]) -> bool + Send>;

struct Inner {
    seed: u64,
    ports: RwLock<Vec<Arc<Port>>>,
    has_filter: AtomicBool,
    filter: Mutex<Option<FrameFilter>>,
    seq: AtomicU64,
    unknown_dst: AtomicU64,
    filtered: AtomicU64,
}

/// The in-memory wire: a cloneable handle to one switch.
#[derive(Clone)]
pub struct MemWire {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for MemWire {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemWire")
            .field("seed", &self.inner.seed)
            .field("ports", &self.ports())
            .finish()
    }
}

impl MemWire {
    /// An empty wire whose impairments draw from PRNGs derived from `seed`.
    pub fn new(seed: u64) -> Self {
        MemWire {
            inner: Arc::new(Inner {
                seed,
                ports: RwLock::new(Vec::new()),
                has_filter: AtomicBool::new(false),
                filter: Mutex::new(None),
                seq: AtomicU64::new(0),
                unknown_dst: AtomicU64::new(0),
                filtered: AtomicU64::new(0),
            }),
        }
    }

    /// Adds a port and returns its queues' devices (index `i` is queue `i`).
    /// The port's index is the number of ports added before it.
    pub fn add_port(&self, config: MemPortConfig) -> Result<Vec<MemDevice>, MemConfigError> {
        config.validate()?;
        let mut ports = self
            .inner
            .ports
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ports.iter().any(|p| p.mac == config.mac) {
            return Err(MemConfigError::DuplicateMac(config.mac));
        }
        let index = ports.len();
        let reta = rss::round_robin_reta(config.reta_size, config.queues);
        let port = Arc::new(Port {
            index,
            mac: config.mac,
            mtu: config.mtu,
            toeplitz: Toeplitz::new(&config.rss_key),
            reta: reta.clone(),
            impairment: config.impairment,
            rx_queue_limit: config.rx_queue_limit,
            inboxes: (0..config.queues)
                .map(|_| Mutex::new(BinaryHeap::new()))
                .collect(),
            link: Mutex::new(Link {
                free_at: Instant::ZERO,
                backlog: VecDeque::new(),
            }),
            stats: Counters::default(),
        });
        ports.push(Arc::clone(&port));
        drop(ports);
        Ok((0..config.queues)
            .map(|queue| MemDevice {
                wire: Arc::clone(&self.inner),
                port: Arc::clone(&port),
                queue,
                caps: DeviceCaps {
                    mac: config.mac,
                    mtu: config.mtu,
                    headroom: config.headroom,
                    checksum: ChecksumCaps::SOFTWARE,
                    queue,
                    queues: config.queues,
                    rss: Some(RssInfo {
                        key: config.rss_key.to_vec(),
                        reta: reta.clone(),
                    }),
                },
                pool: HeapPool::new(config.buf_size, config.headroom, config.pool_limit),
                rng: Rng::from_parts(&[self.inner.seed, index as u64, u64::from(queue)]),
                gather: Vec::new(),
            })
            .collect())
    }

    /// Installs (or with `None` removes) a test filter: every frame sent on
    /// any port is shown to it first, and dropped (counted as filtered) when
    /// it returns true. Deterministic, for tests such as "lose the first ARP
    /// request".
    pub fn set_filter(&self, filter: Option<FrameFilter>) {
        let mut slot = lock(&self.inner.filter);
        self.inner
            .has_filter
            .store(filter.is_some(), Ordering::Release);
        *slot = filter;
    }

    /// Number of ports.
    pub fn ports(&self) -> usize {
        self.port_table().len()
    }

    /// Counters of port `port`, or `None` if there is no such port.
    pub fn port_stats(&self, port: usize) -> Option<PortStats> {
        self.port_table().get(port).map(|p| p.stats.snapshot())
    }

    /// Counters of the whole wire.
    pub fn stats(&self) -> WireStats {
        let queued = self
            .port_table()
            .iter()
            .flat_map(|p| p.inboxes.iter())
            .map(|i| lock(i).len() as u64)
            .sum();
        WireStats {
            unknown_dst: self.inner.unknown_dst.load(Ordering::Relaxed),
            filtered: self.inner.filtered.load(Ordering::Relaxed),
            queued,
        }
    }

    /// The earliest delivery time over every queue of every port: where a
    /// virtual clock should jump when all hosts are idle.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.port_table()
            .iter()
            .flat_map(|p| p.inboxes.iter())
            .filter_map(|i| lock(i).peek().map(|p| p.at))
            .min()
    }

    fn port_table(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Port>>> {
        self.inner
            .ports
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One queue of one port of a [`MemWire`].
pub struct MemDevice {
    wire: Arc<Inner>,
    port: Arc<Port>,
    queue: u16,
    caps: DeviceCaps,
    pool: HeapPool,
    rng: Rng,
    /// Gathers a frame's own bytes and its attached payload.
    gather: Vec<u8>,
}

impl core::fmt::Debug for MemDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemDevice")
            .field("port", &self.port.index)
            .field("queue", &self.queue)
            .field("mac", &self.port.mac)
            .finish()
    }
}

impl MemDevice {
    /// The port's index on the wire.
    pub fn port(&self) -> usize {
        self.port.index
    }

    /// This queue's index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Counters of this device's port (all queues).
    pub fn stats(&self) -> PortStats {
        self.port.stats.snapshot()
    }

    /// Whether the test filter drops `frame`.
    fn filtered(&self, frame: &[u8]) -> bool {
        if !self.wire.has_filter.load(Ordering::Acquire) {
            return false;
        }
        lock(&self.wire.filter)
            .as_mut()
            .is_some_and(|filter| filter(frame))
    }

    /// Takes the departure time on the rate-limited link, or `None` when its
    /// queue is full.
    fn depart(&self, now: Instant, len: usize) -> Option<Instant> {
        let imp = &self.port.impairment;
        let Some(rate) = imp.rate_bps else {
            return Some(now);
        };
        let mut link = lock(&self.port.link);
        while link.backlog.front().is_some_and(|&t| t <= now) {
            link.backlog.pop_front();
        }
        if imp.queue_limit > 0 && link.backlog.len() >= imp.queue_limit {
            return None;
        }
        let finish = link.free_at.max(now) + serialisation(len, rate);
        link.free_at = finish;
        link.backlog.push_back(finish);
        Some(finish)
    }

    /// Sends one frame through the impairments and the switch.
    fn send(&mut self, now: Instant, frame: &[u8]) {
        let stats = &self.port.stats;
        let imp = self.port.impairment;
        bump(&stats.tx_frames, 1);
        bump(&stats.tx_bytes, frame.len() as u64);
        let Some(dst) = frame.get(..6) else {
            bump(&stats.drop_runt, 1);
            return;
        };
        if frame.len() < 14 {
            bump(&stats.drop_runt, 1);
            return;
        }
        if self.filtered(frame) {
            bump(&stats.drop_filtered, 1);
            bump(&self.wire.filtered, 1);
            return;
        }
        if too_big(frame, self.port.mtu) {
            bump(&stats.drop_too_big, 1);
            return;
        }
        if self.rng.chance(imp.loss) {
            bump(&stats.drop_loss, 1);
            return;
        }
        let dst = EthernetAddress([dst[0], dst[1], dst[2], dst[3], dst[4], dst[5]]);
        let table = self
            .wire
            .ports
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let own = self.port.index;
        let targets: Vec<&Arc<Port>> = if dst.is_multicast() {
            table.iter().filter(|p| p.index != own).collect()
        } else {
            // A switch never sends a frame back out of its ingress port.
            table
                .iter()
                .filter(|p| p.mac == dst && p.index != own)
                .collect()
        };
        if targets.is_empty() && !dst.is_multicast() {
            bump(&stats.drop_unknown_dst, 1);
            bump(&self.wire.unknown_dst, 1);
            return;
        }
        let Some(departed) = self.depart(now, frame.len()) else {
            bump(&stats.drop_overflow, 1);
            return;
        };
        let mut at = departed + imp.delay;
        if !imp.jitter.is_zero() {
            let j = u64::try_from(imp.jitter.as_nanos()).unwrap_or(u64::MAX);
            at += Duration::from_nanos(self.rng.below(j.saturating_add(1)));
        }
        if self.rng.chance(imp.reorder) {
            at += imp.delay + imp.jitter + REORDER_HOLD;
            bump(&stats.reordered, 1);
        }
        let copies = if self.rng.chance(imp.duplicate) {
            bump(&stats.duplicated, 1);
            2
        } else {
            1
        };
        for target in targets {
            for _ in 0..copies {
                let mut bytes: Box<[u8]> = frame.into();
                if self.rng.chance(imp.corrupt) {
                    let bit = self.rng.below(bytes.len() as u64 * 8) as usize;
                    if let Some(b) = bytes.get_mut(bit / 8) {
                        *b ^= 0x80 >> (bit % 8);
                    }
                    bump(&stats.corrupted, 1);
                }
                let seq = self.wire.seq.fetch_add(1, Ordering::Relaxed);
                target.arrive(at, seq, bytes);
            }
        }
    }
}

impl Device for MemDevice {
    type Buf = HeapBuf;

    fn caps(&self) -> &DeviceCaps {
        &self.caps
    }

    fn rx_burst(&mut self, now: Instant, out: &mut Vec<HeapBuf>, max: usize) -> usize {
        let Some(inbox) = self.port.inboxes.get(usize::from(self.queue)) else {
            return 0;
        };
        let mut inbox = lock(inbox);
        let mut n = 0;
        while n < max && inbox.peek().is_some_and(|p| p.at <= now) {
            let Some(mut buf) = self.pool.alloc() else {
                break; // No buffer: the frame waits, as on a NIC out of mbufs.
            };
            let Some(p) = inbox.pop() else {
                self.pool.recycle(buf);
                break;
            };
            match buf.append(p.frame.len()) {
                Ok(room) => room.copy_from_slice(&p.frame),
                Err(_) => {
                    // Unreachable with a validated config; drop, don't panic.
                    self.pool.recycle(buf);
                    bump(&self.port.stats.drop_too_big, 1);
                    continue;
                }
            }
            bump(&self.port.stats.rx_frames, 1);
            bump(&self.port.stats.rx_bytes, p.frame.len() as u64);
            out.push(buf);
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, now: Instant, frames: &mut Vec<HeapBuf>) -> usize {
        let n = frames.len();
        for buf in core::mem::take(frames) {
            if buf.attached().is_empty() {
                self.send(now, buf.as_slice());
            } else {
                let mut gather = core::mem::take(&mut self.gather);
                gather.clear();
                gather.extend_from_slice(buf.as_slice());
                gather.extend_from_slice(buf.attached());
                self.send(now, &gather);
                self.gather = gather;
            }
            self.pool.recycle(buf);
        }
        n
    }

    fn alloc_tx(&mut self) -> Option<HeapBuf> {
        self.pool.alloc()
    }

    fn buffers_in_use(&self) -> Option<usize> {
        Some(self.pool.outstanding())
    }

    fn poll_at(&self) -> Option<Instant> {
        let inbox = self.port.inboxes.get(usize::from(self.queue))?;
        lock(inbox).peek().map(|p| p.at)
    }

    fn recycle(&mut self, buf: HeapBuf) {
        self.pool.recycle(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::rss::tests::ipv4_frame;

    fn mac(i: u8) -> EthernetAddress {
        EthernetAddress([0x02, 0, 0, 0, 0, i])
    }

    fn port(wire: &MemWire, i: u8, queues: u16, imp: Impairment) -> Vec<MemDevice> {
        wire.add_port(MemPortConfig {
            queues,
            impairment: imp,
            ..MemPortConfig::new(mac(i))
        })
        .unwrap()
    }

    fn send(dev: &mut MemDevice, now: Instant, frame: &[u8]) {
        let mut b = dev.alloc_tx().unwrap();
        b.append(frame.len()).unwrap().copy_from_slice(frame);
        let mut v = vec![b];
        assert_eq!(dev.tx_burst(now, &mut v), 1);
        assert!(v.is_empty());
    }

    fn recv(dev: &mut MemDevice, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        dev.rx_burst(now, &mut out, usize::MAX);
        out.into_iter()
            .map(|b| {
                let v = b.as_slice().to_vec();
                dev.recycle(b);
                v
            })
            .collect()
    }

    /// Steps a virtual clock through every delivery of `dev`:
    /// (delivery time, frame), in delivery order.
    fn drain_timed(dev: &mut MemDevice) -> Vec<(Instant, Vec<u8>)> {
        let mut got = Vec::new();
        while let Some(t) = dev.poll_at() {
            let mut out = Vec::new();
            dev.rx_burst(t, &mut out, 1);
            for b in out {
                got.push((t, b.as_slice().to_vec()));
                dev.recycle(b);
            }
        }
        got
    }

    fn raw(dst: EthernetAddress, src: EthernetAddress, ethertype: u16, len: usize) -> Vec<u8> {
        let mut f = dst.0.to_vec();
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.resize(len, 0xab);
        f
    }

    fn tcp(from: u8, to: u8, flow: ([u8; 4], [u8; 4], u16, u16), payload: &[u8]) -> Vec<u8> {
        let (s, d, sp, dp) = flow;
        ipv4_frame((mac(to).0, mac(from).0), 6, s, d, sp, dp, payload)
    }

    #[test]
    fn wire_and_devices_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<MemWire>();
        send::<MemDevice>();
    }

    #[test]
    fn attached_payload_arrives_as_one_frame() {
        let wire = MemWire::new(1);
        let mut a = port(&wire, 1, 1, Impairment::NONE);
        let mut b = port(&wire, 2, 1, Impairment::NONE);
        let f = raw(mac(2), mac(1), 0x0806, 60);
        let mut payload = HeapBuf::new(128, 0);
        payload.append(46).unwrap().copy_from_slice(&f[14..]);
        let kept = payload.share();
        let mut head = a[0].alloc_tx().unwrap();
        head.append(14).unwrap().copy_from_slice(&f[..14]);
        head.attach(payload).unwrap();
        let mut v = vec![head];
        assert_eq!(a[0].tx_burst(Instant::ZERO, &mut v), 1);
        assert_eq!(recv(&mut b[0], Instant::ZERO), vec![f.clone()]);
        // The sender's handle went back to its pool; the kept one is whole.
        assert!(!kept.is_shared());
        assert_eq!(kept.as_slice(), &f[14..]);
        assert_eq!(wire.port_stats(0).unwrap().tx_bytes, 60);
    }

    #[test]
    fn delivery_by_mac_and_unknown_dst() {
        let wire = MemWire::new(1);
        let mut a = port(&wire, 1, 1, Impairment::NONE);
        let mut b = port(&wire, 2, 1, Impairment::NONE);
        let mut c = port(&wire, 3, 1, Impairment::NONE);
        let f = raw(mac(2), mac(1), 0x0806, 60);
        send(&mut a[0], Instant::ZERO, &f);
        assert_eq!(recv(&mut b[0], Instant::ZERO), vec![f.clone()]);
        assert!(recv(&mut c[0], Instant::ZERO).is_empty());
        assert!(recv(&mut a[0], Instant::ZERO).is_empty());

        send(&mut a[0], Instant::ZERO, &raw(mac(9), mac(1), 0x0806, 60));
        send(&mut a[0], Instant::ZERO, &raw(mac(1), mac(1), 0x0806, 60));
        assert_eq!(wire.stats().unknown_dst, 2);
        let sa = wire.port_stats(0).unwrap();
        assert_eq!(
            (sa.tx_frames, sa.tx_bytes, sa.drop_unknown_dst),
            (3, 180, 2)
        );
        let sb = b[0].stats();
        assert_eq!((sb.rx_frames, sb.rx_bytes), (1, 60));
        assert_eq!(wire.port_stats(7), None);
        assert_eq!(wire.stats().queued, 0);
    }

    #[test]
    fn broadcast_and_multicast_fan_out() {
        let wire = MemWire::new(1);
        let mut ports: Vec<_> = (1..=4)
            .map(|i| port(&wire, i, 1, Impairment::NONE))
            .collect();
        let bcast = raw(EthernetAddress::BROADCAST, mac(1), 0x0806, 42);
        let mcast = raw(
            EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]),
            mac(1),
            0x0800,
            42,
        );
        send(&mut ports[0][0], Instant::ZERO, &bcast);
        send(&mut ports[0][0], Instant::ZERO, &mcast);
        assert!(recv(&mut ports[0][0], Instant::ZERO).is_empty());
        for p in &mut ports[1..] {
            assert_eq!(
                recv(&mut p[0], Instant::ZERO),
                vec![bcast.clone(), mcast.clone()]
            );
        }
    }

    #[test]
    fn rss_picks_the_queue_and_replies_come_back_to_the_same_index() {
        let mut rng = Rng::new(99);
        for queues in 1..=8u16 {
            let wire = MemWire::new(u64::from(queues));
            let mut a = port(&wire, 1, queues, Impairment::NONE);
            let mut b = port(&wire, 2, queues, Impairment::NONE);
            let toeplitz = Toeplitz::new(&rss::SYMMETRIC_KEY);
            let reta = b[0].caps().rss.as_ref().unwrap().reta.clone();
            assert_eq!(reta, rss::round_robin_reta(128, queues));
            let mut used = vec![false; usize::from(queues)];
            for _ in 0..200 {
                let ip = |r: &mut Rng| (r.next_u64() as u32 | 0xc612_0000).to_be_bytes();
                let flow = (ip(&mut rng), ip(&mut rng), rng.next_u64() as u16, 80);
                let f = tcp(1, 2, flow, b"hi");
                let want = rss::queue_for(rss::frame_hash(&toeplitz, &f).unwrap(), &reta);
                let from = rng.below(u64::from(queues)) as usize;
                send(&mut a[from], Instant::ZERO, &f);
                let got: Vec<usize> = (0..b.len())
                    .filter(|&q| !recv(&mut b[q], Instant::ZERO).is_empty())
                    .collect();
                assert_eq!(got, vec![usize::from(want)], "queues {queues}");
                used[usize::from(want)] = true;

                let (s, d, sp, dp) = flow;
                let reply = tcp(2, 1, (d, s, dp, sp), b"ho");
                send(&mut b[usize::from(want)], Instant::ZERO, &reply);
                let back: Vec<usize> = (0..a.len())
                    .filter(|&q| !recv(&mut a[q], Instant::ZERO).is_empty())
                    .collect();
                assert_eq!(back, vec![usize::from(want)], "reply, queues {queues}");
            }
            assert!(
                used.iter().all(|&u| u),
                "200 flows reach all {queues} queues"
            );
        }
    }

    #[test]
    fn rss_uses_the_ports_own_key_and_non_ip_goes_to_queue_0() {
        let wire = MemWire::new(3);
        let mut a = port(&wire, 1, 1, Impairment::NONE);
        let mut b = wire
            .add_port(MemPortConfig {
                queues: 4,
                rss_key: rss::MICROSOFT_KEY,
                reta_size: 64,
                ..MemPortConfig::new(mac(2))
            })
            .unwrap();
        let caps = b[3].caps().clone();
        assert_eq!((caps.queue, caps.queues, caps.mac), (3, 4, mac(2)));
        assert_eq!(caps.rss.as_ref().unwrap().key, rss::MICROSOFT_KEY.to_vec());
        let t = Toeplitz::new(&rss::MICROSOFT_KEY);
        let reta = rss::round_robin_reta(64, 4);
        for i in 0..64u16 {
            let f = tcp(1, 2, ([198, 18, 0, 1], [198, 18, 0, 2], 1000 + i, 80), b"");
            let want = rss::queue_for(rss::frame_hash(&t, &f).unwrap(), &reta);
            send(&mut a[0], Instant::ZERO, &f);
            assert_eq!(recv(&mut b[usize::from(want)], Instant::ZERO).len(), 1);
        }
        for len in [14, 42, 100] {
            send(&mut a[0], Instant::ZERO, &raw(mac(2), mac(1), 0x0806, len));
            assert_eq!(recv(&mut b[0], Instant::ZERO).len(), 1);
        }
    }

    #[test]
    fn runts_garbage_and_too_big_frames_are_counted_not_fatal() {
        let wire = MemWire::new(5);
        let mut a = port(&wire, 1, 2, Impairment::NONE);
        let mut b = wire
            .add_port(MemPortConfig {
                queues: 3,
                mtu: 1000,
                ..MemPortConfig::new(mac(2))
            })
            .unwrap();
        for len in 0..14 {
            send(&mut a[0], Instant::ZERO, &vec![0x02; len]);
        }
        assert_eq!(a[0].stats().drop_runt, 14);
        let mut rng = Rng::new(1);
        for _ in 0..2000 {
            let len = 14 + rng.below(80) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            f[..6].copy_from_slice(&mac(2).0);
            if rng.chance(0.5) {
                f[12..14].copy_from_slice(&[0x08, 0x00]);
            }
            send(&mut a[1], Instant::ZERO, &f);
        }
        let got: usize = b.iter_mut().map(|d| recv(d, Instant::ZERO).len()).sum();
        assert_eq!(got, 2000);

        // Sender MTU 1500: 1514 passes, 1515 does not; a tag allows 4 more.
        send(&mut a[0], Instant::ZERO, &raw(mac(2), mac(1), 0x0806, 1515));
        assert_eq!(a[0].stats().drop_too_big, 1);
        // Receiver MTU 1000: 1014 passes, 1015 is dropped on arrival.
        send(&mut a[0], Instant::ZERO, &raw(mac(2), mac(1), 0x0806, 1014));
        send(&mut a[0], Instant::ZERO, &raw(mac(2), mac(1), 0x8100, 1018));
        send(&mut a[0], Instant::ZERO, &raw(mac(2), mac(1), 0x0806, 1015));
        assert_eq!(recv(&mut b[0], Instant::ZERO).len(), 2);
        assert_eq!(b[0].stats().drop_too_big, 1);
    }

    #[test]
    fn filter_drops_the_first_arp_request_only() {
        let wire = MemWire::new(1);
        let mut a = port(&wire, 1, 1, Impairment::NONE);
        let mut b = port(&wire, 2, 1, Impairment::NONE);
        let mut seen = 0;
        wire.set_filter(Some(Box::new(move |f: &[u8]| {
            let arp = f.get(12..14) == Some(&[0x08, 0x06][..]);
            seen += usize::from(arp);
            arp && seen == 1
        })));
        let req = raw(EthernetAddress::BROADCAST, mac(1), 0x0806, 42);
        send(&mut a[0], Instant::ZERO, &req);
        send(&mut a[0], Instant::ZERO, &req);
        assert_eq!(recv(&mut b[0], Instant::ZERO).len(), 1);
        assert_eq!(wire.stats().filtered, 1);
        assert_eq!(a[0].stats().drop_filtered, 1);
        wire.set_filter(None);
    }

    #[test]
    fn pool_exhaustion_holds_frames_and_rx_queue_limit_drops() {
        let wire = MemWire::new(1);
        let mut a = port(&wire, 1, 1, Impairment::NONE);
        let mut b = wire
            .add_port(MemPortConfig {
                pool_limit: 2,
                rx_queue_limit: 3,
                ..MemPortConfig::new(mac(2))
            })
            .unwrap();
        for _ in 0..5 {
            send(&mut a[0], Instant::ZERO, &raw(mac(2), mac(1), 0x0806, 60));
        }
        assert_eq!(b[0].stats().drop_rx_full, 2);
        let mut out = Vec::new();
        assert_eq!(b[0].rx_burst(Instant::ZERO, &mut out, 10), 2);
        assert_eq!(b[0].rx_burst(Instant::ZERO, &mut out, 10), 0);
        assert!(b[0].alloc_tx().is_none());
        b[0].recycle(out.pop().unwrap());
        assert_eq!(b[0].rx_burst(Instant::ZERO, &mut out, 10), 1);
        assert_eq!(b[0].poll_at(), None);
    }

    /// Sends `n` frames A→B, one every 10 µs, the payload carrying the
    /// index; returns what B received, timed, with B's and A's stats.
    fn run(seed: u64, imp: Impairment, n: u32) -> (Vec<(Instant, Vec<u8>)>, PortStats) {
        let wire = MemWire::new(seed);
        let mut a = port(&wire, 1, 1, imp);
        let mut b = wire
            .add_port(MemPortConfig {
                rx_queue_limit: 2 * n as usize,
                ..MemPortConfig::new(mac(2))
            })
            .unwrap();
        for i in 0..n {
            let f = tcp(
                1,
                2,
                ([198, 18, 0, 1], [198, 18, 0, 2], 5, 6),
                &i.to_be_bytes(),
            );
            send(&mut a[0], Instant::from_micros(u64::from(i) * 10), &f);
        }
        (drain_timed(&mut b[0]), a[0].stats())
    }

    fn index_of(frame: &[u8]) -> u32 {
        let p = &frame[frame.len() - 4..];
        u32::from_be_bytes([p[0], p[1], p[2], p[3]])
    }

    const N: u32 = 10_000;

    #[test]
    fn loss_drops_about_the_asked_fraction() {
        let (got, st) = run(
            7,
            Impairment {
                loss: 0.1,
                ..Impairment::NONE
            },
            N,
        );
        let lost = N as usize - got.len();
        assert!((850..=1150).contains(&lost), "lost {lost}");
        assert_eq!(st.drop_loss as usize, lost);
        // Survivors keep their order.
        assert!(got
            .windows(2)
            .all(|w| index_of(&w[0].1) < index_of(&w[1].1)));
    }

    #[test]
    fn duplicate_delivers_second_copies() {
        let (got, st) = run(
            7,
            Impairment {
                duplicate: 0.2,
                ..Impairment::NONE
            },
            N,
        );
        let extra = got.len() - N as usize;
        assert!((1850..=2150).contains(&extra), "extra {extra}");
        assert_eq!(st.duplicated as usize, extra);
        let mut idx: Vec<u32> = got.iter().map(|(_, f)| index_of(f)).collect();
        idx.dedup();
        assert_eq!(idx, (0..N).collect::<Vec<_>>());
    }

    #[test]
    fn corrupt_flips_exactly_one_bit() {
        let (got, st) = run(
            7,
            Impairment {
                corrupt: 0.05,
                ..Impairment::NONE
            },
            N,
        );
        assert_eq!(got.len(), N as usize);
        let mut corrupted = 0;
        for (i, (_, f)) in got.iter().enumerate() {
            let sent = tcp(
                1,
                2,
                ([198, 18, 0, 1], [198, 18, 0, 2], 5, 6),
                &(i as u32).to_be_bytes(),
            );
            let bits: u32 = f.iter().zip(&sent).map(|(x, y)| (x ^ y).count_ones()).sum();
            assert!(bits <= 1);
            corrupted += bits;
        }
        assert!((400..=600).contains(&corrupted), "corrupted {corrupted}");
        assert_eq!(st.corrupted, u64::from(corrupted));
    }

    #[test]
    fn reorder_lets_later_frames_overtake() {
        let (got, st) = run(
            7,
            Impairment {
                reorder: 0.1,
                ..Impairment::NONE
            },
            N,
        );
        assert_eq!(got.len(), N as usize);
        // A held frame arrives after frames sent later: count frames that
        // arrive after a higher index has been seen.
        let mut max_seen = None;
        let mut late = 0;
        for (_, f) in &got {
            let i = index_of(f);
            if max_seen.is_some_and(|m| i < m) {
                late += 1;
            }
            max_seen = max_seen.max(Some(i));
        }
        assert!((850..=1150).contains(&late), "late {late}");
        // Frames held back near the end may have nothing left to overtake.
        assert!(
            st.reordered.abs_diff(late) <= 100,
            "{} vs {late}",
            st.reordered
        );
    }

    #[test]
    fn delay_and_jitter_bound_the_delivery_time() {
        let delay = Duration::from_millis(20);
        let jitter = Duration::from_millis(4);
        let (got, _) = run(
            7,
            Impairment {
                delay,
                jitter,
                ..Impairment::NONE
            },
            N,
        );
        assert_eq!(got.len(), N as usize);
        let mut sum = 0u64;
        for (t, f) in &got {
            let sent = Instant::from_micros(u64::from(index_of(f)) * 10);
            let d = *t - sent;
            assert!(d >= delay && d <= delay + jitter, "{d:?}");
            sum += (d - delay).as_nanos() as u64;
        }
        let mean = sum / u64::from(N);
        assert!(
            (1_900_000..=2_100_000).contains(&mean),
            "mean jitter {mean} ns"
        );
        // Delivery order follows delivery time.
        assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn same_seed_same_run_other_seed_other_run() {
        let imp = Impairment {
            loss: 0.05,
            reorder: 0.05,
            duplicate: 0.05,
            corrupt: 0.05,
            delay: Duration::from_micros(300),
            jitter: Duration::from_micros(200),
            rate_bps: Some(100_000_000),
            queue_limit: 50,
        };
        let one = run(42, imp, 2000);
        assert_eq!(one, run(42, imp, 2000));
        assert_ne!(one.0, run(43, imp, 2000).0);
    }

    #[test]
    fn delay_and_rate_timing_is_exact() {
        let wire = MemWire::new(1);
        let imp = Impairment {
            delay: Duration::from_millis(5),
            rate_bps: Some(8_000_000), // 1000 bytes take exactly 1 ms
            queue_limit: 3,
            ..Impairment::NONE
        };
        let mut a = port(&wire, 1, 2, imp);
        let mut b = port(&wire, 2, 1, Impairment::NONE);
        let f = raw(mac(2), mac(1), 0x0806, 1000);
        // Four frames at once from two queues of one port: one link, three fit.
        for q in [0, 1, 0, 1] {
            send(&mut a[q], Instant::ZERO, &f);
        }
        assert_eq!(a[0].stats().drop_overflow, 1);
        // At 3 ms the link is free again: start now, done at 4 ms.
        send(&mut a[0], Instant::from_millis(3), &f);
        // At 3.5 ms it is busy until 4 ms: done at 5 ms.
        send(&mut a[1], Instant::from_micros(3500), &f);
        let times: Vec<u64> = drain_timed(&mut b[0])
            .iter()
            .map(|(t, _)| t.as_nanos())
            .collect();
        let ms = 1_000_000;
        assert_eq!(times, vec![6 * ms, 7 * ms, 8 * ms, 9 * ms, 10 * ms]);

        // Nothing is delivered early.
        send(&mut a[0], Instant::from_millis(20), &f);
        assert_eq!(b[0].poll_at(), Some(Instant::from_millis(26)));
        assert_eq!(wire.next_delivery(), Some(Instant::from_millis(26)));
        assert!(recv(&mut b[0], Instant::from_nanos(26 * ms - 1)).is_empty());
        assert_eq!(recv(&mut b[0], Instant::from_millis(26)).len(), 1);
        assert_eq!(serialisation(1, 3), Duration::from_nanos(2_666_666_667));
    }

    #[test]
    fn ties_are_delivered_in_send_order() {
        let wire = MemWire::new(1);
        let imp = Impairment {
            delay: Duration::from_millis(1),
            ..Impairment::NONE
        };
        let mut a = port(&wire, 1, 1, imp);
        let mut b = port(&wire, 2, 1, Impairment::NONE);
        for i in 0..50u8 {
            let mut f = raw(mac(2), mac(1), 0x0806, 60);
            f[20] = i;
            send(&mut a[0], Instant::ZERO, &f);
        }
        assert!(recv(&mut b[0], Instant::ZERO).is_empty());
        let got: Vec<u8> = recv(&mut b[0], Instant::from_millis(1))
            .iter()
            .map(|f| f[20])
            .collect();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn bad_config_names_the_field() {
        let wire = MemWire::new(1);
        let base = MemPortConfig::new(mac(1));
        let bad_imp = |imp: Impairment| MemPortConfig {
            impairment: imp,
            ..base.clone()
        };
        let cases: Vec<(MemPortConfig, &str)> = vec![
            (
                bad_imp(Impairment {
                    loss: 1.5,
                    ..Impairment::NONE
                }),
                "impairment.loss",
            ),
            (
                bad_imp(Impairment {
                    reorder: -0.1,
                    ..Impairment::NONE
                }),
                "impairment.reorder",
            ),
            (
                bad_imp(Impairment {
                    duplicate: f64::NAN,
                    ..Impairment::NONE
                }),
                "impairment.duplicate",
            ),
            (
                bad_imp(Impairment {
                    corrupt: 2.0,
                    ..Impairment::NONE
                }),
                "impairment.corrupt",
            ),
            (
                bad_imp(Impairment {
                    rate_bps: Some(0),
                    ..Impairment::NONE
                }),
                "impairment.rate_bps",
            ),
            (
                MemPortConfig {
                    queues: 0,
                    ..base.clone()
                },
                "queues",
            ),
            (
                MemPortConfig {
                    mtu: 10,
                    ..base.clone()
                },
                "mtu",
            ),
            (
                MemPortConfig {
                    reta_size: 0,
                    ..base.clone()
                },
                "reta_size",
            ),
            (
                MemPortConfig {
                    buf_size: 1600,
                    ..base.clone()
                },
                "buf_size",
            ),
            (
                MemPortConfig {
                    pool_limit: 0,
                    ..base.clone()
                },
                "pool_limit",
            ),
            (
                MemPortConfig {
                    rx_queue_limit: 0,
                    ..base.clone()
                },
                "rx_queue_limit",
            ),
        ];
        for (cfg, field) in cases {
            let err = wire.add_port(cfg).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with(&format!("{field} = ")), "{msg}");
        }
        let err = wire.add_port(MemPortConfig::new(EthernetAddress::BROADCAST));
        assert!(matches!(err, Err(MemConfigError::MacNotUnicast(_))));
        assert_eq!(
            MemPortConfig {
                mtu: 10,
                ..base.clone()
            }
            .validate()
            .unwrap_err()
            .to_string(),
            "mtu = 10 is out of range: expected 68..=65535"
        );
        assert!(wire.add_port(base.clone()).is_ok());
        assert_eq!(
            wire.add_port(base).unwrap_err(),
            MemConfigError::DuplicateMac(mac(1))
        );
        assert_eq!(wire.ports(), 1);
    }

    #[test]
    fn queues_work_from_their_own_threads() {
        let wire = MemWire::new(1);
        let a = port(&wire, 1, 4, Impairment::NONE);
        let b = port(&wire, 2, 4, Impairment::NONE);
        let senders: Vec<_> = a
            .into_iter()
            .map(|mut dev| {
                std::thread::spawn(move || {
                    for i in 0..100u16 {
                        let q = dev.queue();
                        let f = tcp(
                            1,
                            2,
                            ([198, 18, 0, 1], [198, 18, 0, 2], q * 1000 + i, 80),
                            b"",
                        );
                        send(&mut dev, Instant::ZERO, &f);
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        let receivers: Vec<_> = b
            .into_iter()
            .map(|mut dev| std::thread::spawn(move || recv(&mut dev, Instant::ZERO).len()))
            .collect();
        let total: usize = receivers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(total, 400);
        assert_eq!(wire.port_stats(1).unwrap().rx_frames, 400);
    }
}
