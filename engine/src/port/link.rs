//! The threaded in-memory link: two ports joined back to back, each with N
//! queues, for the multi-core runtime and stack-only benchmarks.
//!
//! Where [`mem`](super::mem) is a switch built for deterministic tests
//! (virtual time, impairments, any number of ports, locks), this link is
//! built to get out of the way of the stack running on real cores:
//!
//! - every (sending queue, receiving queue) pair has its own bounded
//!   single-producer single-consumer ring ([`crate::rt::ring`]), so no lock
//!   and no shared write sits on the path;
//! - a frame moves into the ring as the sender's buffer, without a copy; a
//!   frame with attached payload (scatter-gather) is gathered into one
//!   buffer first, as a NIC's DMA would read it;
//! - buffers come back over return rings: what the receiver recycles beyond
//!   a small local cache goes back to the peer's queues, so the two sides'
//!   pools stay balanced and steady state allocates nothing;
//! - the sender computes the peer port's Toeplitz hash over the frame and
//!   looks it up in the peer's redirection table to pick the receiving
//!   queue, exactly as the peer's NIC would; non-IPv4 frames (ARP) go to
//!   queue 0.
//!
//! A full ring refuses frames (`tx_burst` returns fewer): backpressure, as a
//! NIC's full descriptor ring. Frames larger than the MTU are dropped and
//! counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{Device, DeviceCaps, RssInfo};
use crate::buf::{HeapBuf, PacketBuf, DEFAULT_BUF_SIZE, DEFAULT_HEADROOM};
use crate::net::rss::{self, Toeplitz};
use crate::rt::ring::{self, Consumer, Producer};
use crate::time::Instant;
use crate::wire::{Checksum, ChecksumCaps, EthernetAddress};

/// The Toeplitz key Microsoft's RSS specification uses in its examples (and
/// many drivers by default).
pub const DEFAULT_RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3a, 0xbe, 0xac, 0x01, 0xfa,
];

/// One port of a [`link_pair`].
#[derive(Debug, Clone)]
pub struct LinkPortConfig {
    /// The port's MAC address.
    pub mac: EthernetAddress,
    /// Queues (one per worker), 1 to 64.
    pub queues: u16,
    /// Largest IP packet carried.
    pub mtu: usize,
    /// RSS key; [`DEFAULT_RSS_KEY`] by default.
    pub rss_key: Vec<u8>,
    /// Redirection table; 128 entries round robin over the queues by default.
    pub reta: Vec<u16>,
    /// Slots in each ring.
    pub ring_size: usize,
    /// Most buffers the port's queues create together.
    pub buffers: usize,
    /// The table the link really hashes arriving frames with, when it is
    /// not `reta` (which is what the port reports in its capabilities): a
    /// NIC whose table changed under the application. For tests of the
    /// runtime's wrong-queue handling; `None` in normal use.
    pub actual_reta: Option<Vec<u16>>,
    /// Checksum work left to software. The link cannot corrupt a frame, so
    /// the default is full offload ([`Checksum::None`]), as on a NIC that
    /// verifies and fills in checksums; [`ChecksumCaps::SOFTWARE`] measures
    /// the software path.
    pub checksum: ChecksumCaps,
}

impl LinkPortConfig {
    /// Defaults for a port with `queues` queues: MTU 1500, the default RSS
    /// key, a 128-entry round-robin table, 1024-slot rings, 64 Ki buffers per
    /// queue.
    pub fn new(mac: EthernetAddress, queues: u16) -> Self {
        LinkPortConfig {
            mac,
            queues,
            mtu: 1500,
            rss_key: DEFAULT_RSS_KEY.to_vec(),
            reta: rss::round_robin_reta(128, queues),
            ring_size: 1024,
            buffers: 64 * 1024 * usize::from(queues.max(1)),
            actual_reta: None,
            checksum: ChecksumCaps {
                ipv4: Checksum::None,
                tcp: Checksum::None,
                icmpv4: Checksum::None,
            },
        }
    }

    fn validate(&self) -> Result<(), LinkConfigError> {
        if self.queues == 0 || self.queues > 64 {
            return Err(LinkConfigError::Queues(self.queues));
        }
        if self.mtu < 576 || self.mtu + 18 + DEFAULT_HEADROOM > DEFAULT_BUF_SIZE {
            return Err(LinkConfigError::Mtu(self.mtu));
        }
        for reta in std::iter::once(&self.reta).chain(self.actual_reta.as_ref()) {
            if reta.is_empty() || reta.iter().any(|&q| q >= self.queues) {
                return Err(LinkConfigError::Reta);
            }
        }
        if self.ring_size < 2 {
            return Err(LinkConfigError::RingSize(self.ring_size));
        }
        Ok(())
    }
}

/// Why [`link_pair`] refused a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkConfigError {
    /// Queue count outside 1..=64.
    Queues(u16),
    /// MTU outside 576..=1882 (a frame must fit a 2 KiB buffer).
    Mtu(usize),
    /// The redirection table is empty or names a queue the port lacks.
    Reta,
    /// Rings need at least 2 slots.
    RingSize(usize),
}

impl core::fmt::Display for LinkConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LinkConfigError::Queues(q) => write!(f, "queues: {q} (accepted: 1 to 64)"),
            LinkConfigError::Mtu(m) => write!(f, "mtu: {m} (accepted: 576 to 1882)"),
            LinkConfigError::Reta => {
                f.write_str("reta: must be non-empty and name only queues the port has")
            }
            LinkConfigError::RingSize(n) => write!(f, "ring size: {n} (accepted: at least 2)"),
        }
    }
}

impl std::error::Error for LinkConfigError {}

/// Counters of one link queue (this queue's own, not shared).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames refused because the ring toward the peer queue was full.
    pub tx_ring_full: u64,
    /// Frames dropped: larger than the MTU, or no buffer to gather into.
    pub tx_dropped: u64,
    /// Frames gathered from a header and attached payload into one buffer.
    pub tx_gathered: u64,
    /// Buffers created (the pool grows until steady state).
    pub buffers_created: u64,
    /// Buffers freed (every spare ring toward the peer was full).
    pub buffers_freed: u64,
}

/// One queue of a link port, owned by one worker.
pub struct LinkDevice {
    caps: DeviceCaps,
    peer_toeplitz: Arc<Toeplitz>,
    peer_reta: Arc<[u16]>,
    /// Data toward each peer queue.
    tx: Vec<Producer<HeapBuf>>,
    /// Data from each peer queue.
    rx: Vec<Consumer<HeapBuf>>,
    /// Spare buffers toward each peer queue.
    give: Vec<Producer<HeapBuf>>,
    /// Spare buffers from each peer queue.
    take: Vec<Consumer<HeapBuf>>,
    free: Vec<HeapBuf>,
    budget: Arc<AtomicUsize>,
    rx_next: usize,
    give_next: usize,
    stats: LinkStats,
}

impl core::fmt::Debug for LinkDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LinkDevice")
            .field("mac", &self.caps.mac)
            .field("queue", &self.caps.queue)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Buffers a queue keeps for itself before handing spares to the peer.
const LOCAL_CACHE: usize = 512;

struct Side {
    devices: Vec<LinkDevice>,
}

/// Two ports joined back to back; returns each port's queues, index = queue.
pub fn link_pair(
    a: &LinkPortConfig,
    b: &LinkPortConfig,
) -> Result<(Vec<LinkDevice>, Vec<LinkDevice>), LinkConfigError> {
    a.validate()?;
    b.validate()?;
    let mut sa = side(a, b);
    let mut sb = side(b, a);
    // Data rings a.i -> b.j and b.j -> a.i; spare-buffer rings both ways.
    for i in 0..sa.devices.len() {
        for j in 0..sb.devices.len() {
            let (p, c) = ring::channel(a.ring_size.max(b.ring_size));
            sa.devices[i].tx.push(p);
            sb.devices[j].rx.push(c);
            let (p, c) = ring::channel(a.ring_size.max(b.ring_size));
            sb.devices[j].tx.push(p);
            sa.devices[i].rx.push(c);
            let (p, c) = ring::channel(a.ring_size.max(b.ring_size));
            sa.devices[i].give.push(p);
            sb.devices[j].take.push(c);
            let (p, c) = ring::channel(a.ring_size.max(b.ring_size));
            sb.devices[j].give.push(p);
            sa.devices[i].take.push(c);
        }
    }
    Ok((sa.devices, sb.devices))
}

fn side(me: &LinkPortConfig, peer: &LinkPortConfig) -> Side {
    let peer_toeplitz = Arc::new(Toeplitz::new(&peer.rss_key));
    let peer_reta: Arc<[u16]> = peer
        .actual_reta
        .as_ref()
        .unwrap_or(&peer.reta)
        .clone()
        .into();
    let budget = Arc::new(AtomicUsize::new(me.buffers));
    let devices = (0..me.queues)
        .map(|q| LinkDevice {
            caps: DeviceCaps {
                mac: me.mac,
                mtu: me.mtu,
                headroom: DEFAULT_HEADROOM,
                checksum: me.checksum,
                queue: q,
                queues: me.queues,
                rss: Some(RssInfo {
                    key: me.rss_key.clone(),
                    reta: me.reta.clone(),
                }),
            },
            peer_toeplitz: peer_toeplitz.clone(),
            peer_reta: peer_reta.clone(),
            tx: Vec::new(),
            rx: Vec::new(),
            give: Vec::new(),
            take: Vec::new(),
            free: Vec::new(),
            budget: budget.clone(),
            rx_next: 0,
            give_next: 0,
            stats: LinkStats::default(),
        })
        .collect();
    Side { devices }
}

impl LinkDevice {
    /// This queue's counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Which peer queue a frame goes to, by the peer's RSS.
    fn peer_queue(&self, frame: &[u8]) -> usize {
        let q = rss::frame_hash(&self.peer_toeplitz, frame)
            .map_or(0, |h| rss::queue_for(h, &self.peer_reta));
        usize::from(q)
    }

    fn new_buf(&mut self) -> Option<HeapBuf> {
        if let Some(b) = self.free.pop() {
            return Some(b);
        }
        for c in &mut self.take {
            if let Some(mut b) = c.pop() {
                b.reset(DEFAULT_HEADROOM);
                return Some(b);
            }
        }
        // Rare: only while the pool grows to its working size.
        let left = self.budget.load(Ordering::Relaxed);
        if left == 0 {
            return None;
        }
        self.budget.fetch_sub(1, Ordering::Relaxed);
        self.stats.buffers_created += 1;
        Some(HeapBuf::new(DEFAULT_BUF_SIZE, DEFAULT_HEADROOM))
    }

    fn too_big(&self, len: usize) -> bool {
        len > self.caps.mtu + 18
    }
}

impl Device for LinkDevice {
    type Buf = HeapBuf;

    fn caps(&self) -> &DeviceCaps {
        &self.caps
    }

    fn rx_burst(&mut self, _now: Instant, out: &mut Vec<HeapBuf>, max: usize) -> usize {
        let rings = self.rx.len();
        let mut n = 0;
        for k in 0..rings {
            let i = (self.rx_next + k) % rings;
            while n < max {
                let Some(b) = self.rx[i].pop() else { break };
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += b.len() as u64;
                out.push(b);
                n += 1;
            }
            if n == max {
                break;
            }
        }
        self.rx_next = (self.rx_next + 1) % rings.max(1);
        n
    }

    fn tx_burst(&mut self, _now: Instant, frames: &mut Vec<HeapBuf>) -> usize {
        let mut taken = 0;
        for mut buf in core::mem::take(frames) {
            let len = buf.frame_len();
            if self.too_big(len) {
                self.stats.tx_dropped += 1;
                taken += 1;
                self.recycle(buf);
                continue;
            }
            if !buf.attached().is_empty() {
                // Gather header and payload into one buffer, as DMA would.
                let Some(mut g) = self.new_buf() else {
                    self.stats.tx_dropped += 1;
                    taken += 1;
                    self.recycle(buf);
                    continue;
                };
                g.reset(0);
                let ok = match g.append(len) {
                    Ok(room) => {
                        let head = buf.as_slice().len();
                        room[..head].copy_from_slice(buf.as_slice());
                        room[head..].copy_from_slice(buf.attached());
                        true
                    }
                    Err(_) => false,
                };
                self.stats.tx_gathered += 1;
                let old = core::mem::replace(&mut buf, g);
                self.recycle(old);
                if !ok {
                    self.stats.tx_dropped += 1;
                    taken += 1;
                    self.recycle(buf);
                    continue;
                }
            }
            let q = self.peer_queue(buf.as_slice());
            let Some(ring) = self.tx.get_mut(q) else {
                self.stats.tx_dropped += 1;
                taken += 1;
                self.recycle(buf);
                continue;
            };
            match ring.push(buf) {
                Ok(()) => {
                    self.stats.tx_frames += 1;
                    self.stats.tx_bytes += len as u64;
                    taken += 1;
                }
                Err(back) => {
                    self.stats.tx_ring_full += 1;
                    frames.push(back);
                }
            }
        }
        taken
    }

    fn alloc_tx(&mut self) -> Option<HeapBuf> {
        self.new_buf()
    }

    /// Regions this queue created and has not freed; they travel between
    /// the two ports, so only the sum over all queues means "in use".
    fn buffers_in_use(&self) -> Option<usize> {
        Some((self.stats.buffers_created - self.stats.buffers_freed) as usize)
    }

    fn recycle(&mut self, mut buf: HeapBuf) {
        if buf.is_shared() {
            // Another handle (a payload the application holds) keeps the
            // region; the last handle brings it back.
            return;
        }
        buf.reset(DEFAULT_HEADROOM);
        if self.free.len() < LOCAL_CACHE {
            self.free.push(buf);
            return;
        }
        let rings = self.give.len();
        for k in 0..rings {
            let i = (self.give_next + k) % rings;
            match self.give[i].push(buf) {
                Ok(()) => {
                    self.give_next = (i + 1) % rings;
                    return;
                }
                Err(back) => buf = back,
            }
        }
        // Every spare ring full: let the region go.
        drop(buf);
        self.stats.buffers_freed += 1;
        self.budget.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EtherType, EthernetFrame};

    fn mac(n: u8) -> EthernetAddress {
        EthernetAddress([2, 0, 0, 0, 0, n])
    }

    fn tcp_frame(dst: EthernetAddress, src_port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[..6].copy_from_slice(&dst.0);
        f[6..12].copy_from_slice(&mac(9).0);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[198, 18, 0, 1]);
        f[30..34].copy_from_slice(&[198, 18, 0, 2]);
        f[34..36].copy_from_slice(&src_port.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f
    }

    #[test]
    fn frames_reach_the_queue_rss_picks_and_buffers_come_back() {
        let a = LinkPortConfig::new(mac(1), 2);
        let b = LinkPortConfig::new(mac(2), 4);
        let (mut qa, mut qb) = link_pair(&a, &b).unwrap();
        let t = Toeplitz::new(&b.rss_key);
        let now = Instant::ZERO;
        for port in 1000..1200u16 {
            let frame = tcp_frame(b.mac, port);
            let want = rss::queue_for(rss::frame_hash(&t, &frame).unwrap(), &b.reta);
            let mut buf = qa[0].alloc_tx().unwrap();
            buf.append(frame.len()).unwrap().copy_from_slice(&frame);
            let mut v = vec![buf];
            assert_eq!(qa[0].tx_burst(now, &mut v), 1);
            let mut got = Vec::new();
            for (q, dev) in qb.iter_mut().enumerate() {
                if dev.rx_burst(now, &mut got, 32) == 1 {
                    assert_eq!(q, usize::from(want));
                }
            }
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].as_slice(), &frame[..]);
            let eth = EthernetFrame::new_checked(got[0].as_slice()).unwrap();
            assert_eq!(eth.ethertype(), EtherType::Ipv4);
            for b in got {
                qb[usize::from(want)].recycle(b);
            }
        }
        // 200 frames, but buffers were reused: the receiver's cache fed
        // nothing back yet, so the sender created one per frame at most.
        assert!(qa[0].stats().buffers_created <= 200);
        assert_eq!(qa[0].stats().tx_frames, 200);
    }

    #[test]
    fn arp_goes_to_queue_zero_and_full_ring_pushes_back() {
        let mut a = LinkPortConfig::new(mac(1), 1);
        a.ring_size = 4;
        let b = LinkPortConfig {
            ring_size: 4,
            ..LinkPortConfig::new(mac(2), 2)
        };
        let (mut qa, mut qb) = link_pair(&a, &b).unwrap();
        let now = Instant::ZERO;
        let mut frames = Vec::new();
        for _ in 0..6 {
            let mut buf = qa[0].alloc_tx().unwrap();
            let room = buf.append(42).unwrap();
            room.fill(0);
            room[..6].copy_from_slice(&[0xff; 6]);
            room[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
            frames.push(buf);
        }
        assert_eq!(qa[0].tx_burst(now, &mut frames), 4);
        assert_eq!(
            frames.len(),
            2,
            "frames past a full ring stay with the caller"
        );
        assert_eq!(qa[0].stats().tx_ring_full, 2);
        let mut got = Vec::new();
        assert_eq!(qb[1].rx_burst(now, &mut got, 32), 0);
        assert_eq!(qb[0].rx_burst(now, &mut got, 32), 4);
    }

    #[test]
    fn gathers_attached_payload() {
        let a = LinkPortConfig::new(mac(1), 1);
        let b = LinkPortConfig::new(mac(2), 1);
        let (mut qa, mut qb) = link_pair(&a, &b).unwrap();
        let frame = tcp_frame(b.mac, 5);
        let mut head = qa[0].alloc_tx().unwrap();
        head.append(frame.len()).unwrap().copy_from_slice(&frame);
        let mut payload = qa[0].alloc_tx().unwrap();
        payload.append(100).unwrap().fill(0xab);
        head.attach(payload).unwrap();
        let mut v = vec![head];
        assert_eq!(qa[0].tx_burst(Instant::ZERO, &mut v), 1);
        let mut got = Vec::new();
        assert_eq!(qb[0].rx_burst(Instant::ZERO, &mut got, 8), 1);
        assert_eq!(got[0].len(), frame.len() + 100);
        assert!(got[0].as_slice()[frame.len()..].iter().all(|&b| b == 0xab));
        assert_eq!(qa[0].stats().tx_gathered, 1);
    }

    #[test]
    fn bad_configs_are_named() {
        let mut c = LinkPortConfig::new(mac(1), 0);
        assert_eq!(link_pair(&c, &c).unwrap_err(), LinkConfigError::Queues(0));
        c.queues = 2;
        c.reta = vec![0, 5];
        assert_eq!(link_pair(&c, &c).unwrap_err(), LinkConfigError::Reta);
        assert!(LinkConfigError::Mtu(9000).to_string().contains("mtu"));
    }
}
