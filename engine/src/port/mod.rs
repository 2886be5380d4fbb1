//! Ports: the devices the engine sends and receives frames through.
//!
//! A [`Device`] is **one queue pair of one port**, owned by one worker: the
//! worker is the only code that touches it, so no method needs a lock. A port
//! with several queues hands out one `Device` per queue when it is opened.
//!
//! Call order, once per loop iteration of the owning worker:
//! 1. `rx_burst(now, ..)` moves up to `max` received frames into the caller's
//!    vector (buffers are the device's own: no copy);
//! 2. the stack processes them and builds replies in buffers from
//!    `alloc_tx()` or in the received buffers themselves;
//! 3. `tx_burst(now, ..)` sends frames from the front of the caller's vector
//!    and removes the ones it took; the rest stay for the next call.
//!
//! `now` is the worker's clock reading for the iteration; real devices ignore
//! it, the in-memory wire uses it for delay and rate.
//!
//! Drivers: [`mem`] (the in-memory wire with software RSS and impairments),
//! [`tap`] (a Linux TAP device), [`af_xdp`] (AF_XDP sockets on any Linux
//! interface), `dpdk` (DPDK poll-mode drivers, cargo feature `dpdk`),
//! [`pcap`] (a wrapper recording any device's traffic to a pcap file).

pub mod af_xdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod link;
pub mod mem;
pub mod pcap;
pub mod rng;
pub mod tap;

pub use af_xdp::{AfXdpConfig, AfXdpDevice, AfXdpError, AfXdpPort, XdpBuf};
#[cfg(feature = "dpdk")]
pub use dpdk::{DpdkConfig, DpdkDevice, DpdkError, DpdkInfo, DpdkPort, DpdkStats, Mbuf};
pub use mem::{
    Impairment, MemConfigError, MemDevice, MemPortConfig, MemWire, PortStats, WireStats,
};
pub use pcap::{PcapDevice, PcapWriter};
pub use tap::{TapDevice, TapError, TapStats};

use crate::buf::PacketBuf;
use crate::time::Instant;
use crate::wire::{ChecksumCaps, EthernetAddress};

/// What a device queue is and what it can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCaps {
    /// The port's MAC address.
    pub mac: EthernetAddress,
    /// Largest IP packet (layer 3 MTU) the port carries.
    pub mtu: usize,
    /// Headroom in the buffers the device hands out.
    pub headroom: usize,
    /// Which checksums software must compute and verify.
    pub checksum: ChecksumCaps,
    /// This queue's index.
    pub queue: u16,
    /// Number of queues on the port.
    pub queues: u16,
    /// The receive-side scaling configuration in force, if the port spreads
    /// frames over several queues by hash.
    pub rss: Option<RssInfo>,
}

/// The RSS configuration a port actually uses: hash key and redirection table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssInfo {
    /// Toeplitz hash key (40 bytes on most NICs).
    pub key: Vec<u8>,
    /// Redirection table: queue index for `hash % reta.len()`.
    pub reta: Vec<u16>,
}

/// One queue pair of a port, owned by one worker.
pub trait Device {
    /// The buffer type frames travel in.
    type Buf: PacketBuf;

    /// The queue's description.
    fn caps(&self) -> &DeviceCaps;

    /// Moves up to `max` received frames to the end of `out`; returns how many.
    fn rx_burst(&mut self, now: Instant, out: &mut Vec<Self::Buf>, max: usize) -> usize;

    /// Sends frames from the front of `frames`, removing those taken; returns
    /// how many were taken. Frames not taken (ring full) stay in `frames`.
    /// Each frame on the wire is the buffer's own bytes followed by its
    /// attached payload ([`PacketBuf::attached`]), if any.
    fn tx_burst(&mut self, now: Instant, frames: &mut Vec<Self::Buf>) -> usize;

    /// An empty transmit buffer with the device's headroom, or `None` when the
    /// device's pool is exhausted.
    fn alloc_tx(&mut self) -> Option<Self::Buf>;

    /// The earliest time at which the device will have something to deliver
    /// without further input (a delayed frame on the in-memory wire). Real
    /// devices return `None`.
    fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// Gives back a buffer the caller is done with (a consumed received
    /// frame, a transmit buffer it decided not to send).
    ///
    /// Why this exists: heap-backed devices count their buffers to behave
    /// like a NIC's fixed pool, and can reuse a buffer's memory and uncount
    /// it only when it comes back. The default drops the buffer, which is
    /// right for buffer types that return themselves to their pool on drop
    /// (an owning mbuf wrapper). Not calling it is never unsafe: at worst a
    /// heap-backed device's pool runs dry and `alloc_tx`/`rx_burst` stall.
    fn recycle(&mut self, buf: Self::Buf) {
        drop(buf);
    }

    /// Buffers of this queue's pool that exist right now (free or handed
    /// out), where the driver counts them; for statistics.
    fn buffers_in_use(&self) -> Option<usize> {
        None
    }

    /// The driver's own counters for this queue (and, from queue 0, the
    /// port's: device statistics, extended statistics, link state), as
    /// name and value, appended to `out`; for statistics, read about once
    /// a second. The default has none.
    fn counters(&self, out: &mut Vec<(String, u64)>) {
        let _ = out;
    }
}
