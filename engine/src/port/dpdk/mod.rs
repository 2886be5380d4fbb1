//! The DPDK port (cargo feature `dpdk`): poll-mode drivers, on real NICs or
//! on DPDK's virtual devices.
//!
//! [`DpdkPort::open`] starts the EAL (once per process; a later port reuses
//! it when given the same arguments), configures one port with `queues` RX
//! and TX queues, gives each queue its own mempool, starts the port, and
//! hands out one [`DpdkDevice`] per queue, owned by that queue's worker.
//! When the last device goes, the port is stopped and closed (a closed
//! virtual device's port id does not come back in the same process).
//!
//! Zero copy: mbufs are the engine's buffers ([`Mbuf`]). A received frame
//! reaches the stack in its mbuf; the retransmit queue keeps a reference
//! (the mbuf's reference count) on the payload; a segment whose payload is
//! attached to a small header buffer goes out as a two-mbuf chain, header
//! then an indirect mbuf on the payload's bytes (see [`mbuf`]'s doc). PMDs
//! without multi-segment transmit get the payload copied behind the header
//! instead (counted in [`DpdkStats::tx_copied`]).
//!
//! RSS: with `queues > 1` the port must report RSS. The port is given a
//! symmetric Toeplitz key (0x6d5a repeated, so both directions of a flow
//! land on one queue) where the PMD takes a key; the key and redirection
//! table in force are then read back from the PMD and put in
//! [`DeviceCaps::rss`], which is what the engine's RSS-aware active open
//! computes with. A PMD without RSS runs one queue.
//!
//! Checksums: where the PMD reports IPv4 and TCP checksum offloads, they
//! are enabled and [`DeviceCaps::checksum`] tells the stack to leave them
//! to the NIC. On transmit the driver sets `ol_flags`, `l2_len` and
//! `l3_len`; the stack has written the pseudo-header sum into the TCP
//! checksum field, as DPDK requires, and left a zero IPv4 checksum. On
//! receive, frames the NIC marks bad are dropped and counted, and frames
//! it did not check are verified in software here.
//!
//! Virtual devices tried on this project's machines (DPDK 22.11, no
//! hugepages: `--no-huge -m 512 --no-shconf --no-pci`), and RSS with two
//! queues on each:
//! - `net_ring` (`--vdev=net_ring0`): a loopback (each TX queue feeds the
//!   same RX queue), up to 16 queues, multi-segment TX, no offloads, no
//!   RSS (two queues: refused). The tests run on it.
//! - `net_null`: frees what it sends; reports RSS (a 40-byte key and a
//!   128-entry table) but hashes nothing. It ignores the key given at
//!   configure time and starts with an all-zero table; it takes both
//!   through the update calls, which is why they are set again and read
//!   back after start. No multi-segment TX: payloads are copied.
//! - `net_tap` (a TAP in the process's network namespace): IPv4/TCP
//!   checksum offloads both ways (done in software by the PMD) and
//!   multi-segment TX. It lists RSS hash types but cannot report its key
//!   or table (`rte_eth_dev_rss_hash_conf_get`: not supported), and this
//!   kernel has no `multiq` qdisc for its flow steering: two queues are
//!   refused ([`DpdkError::RssQuery`]).
//! - `net_af_xdp` on a veth: `queue_count=2` fails at probe (veth reports
//!   no combined channels, so one queue); no RSS, no offloads.
//! - `net_af_packet` (`qpairs=2`) and `net_memif`: no RSS (two queues:
//!   refused); multi-segment TX.
//!
//! So no virtual device here spreads flows by Toeplitz hash; RSS with a
//! key and table read back is for real NICs (and `net_null`'s stand-in).
//!
//! Needs the system's DPDK (22.11 or later) and, for real NICs, hugepages
//! and a NIC bound to a DPDK-capable driver. Everything `unsafe` of the
//! port lives in this module and [`mbuf`].

mod eal;
pub mod mbuf;

use std::ffi::CStr;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use sys::mbuf as field;
use wirespeed_dpdk_sys as sys;

pub use mbuf::Mbuf;
use mbuf::{TxFrame, TxPools};

use super::{Device, DeviceCaps, RssInfo};
use crate::buf::{PacketBuf, DEFAULT_HEADROOM};
use crate::time::Instant;
use crate::wire::{Checksum, ChecksumCaps, EthernetAddress, IpProtocol, Ipv4Packet, TcpPacket};

// The engine builds headers in the headroom DPDK leaves in every mbuf.
const _: () = assert!(sys::RTE_PKTMBUF_HEADROOM as usize == DEFAULT_HEADROOM);
// Mbuf fields are reached through `sys::mbuf`, whose sizes and offsets are
// checked there at compile time against the installed headers.
// rte_eth_rss_reta_entry64: a 64-bit mask, then 64 entries.
const _: () = assert!(core::mem::size_of::<sys::rte_eth_rss_reta_entry64>() == 8 + 64 * 2);

/// Mbufs per queue when the configuration does not say.
pub const DEFAULT_MBUFS: u32 = 8192;
/// Fewest mbufs per queue accepted.
pub const MIN_MBUFS: u32 = 64;
const MAX_MBUFS: u32 = 1 << 24;
const MAX_QUEUES: u16 = 1024;
/// Frames per PMD call.
const BURST: usize = 64;

/// What [`DpdkPort::open`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    /// Arguments for the EAL (`rte_eal_init`), without a program name.
    pub eal_args: Vec<String>,
    /// The port id among the ports the EAL found.
    pub port: u16,
    /// RX and TX queues (one device each).
    pub queues: u16,
    /// Mbufs in each queue's mempool.
    pub mbufs_per_queue: u32,
    /// MTU to set; `None` keeps the port's own.
    pub mtu: Option<usize>,
}

impl DpdkConfig {
    /// Port 0, one queue, [`DEFAULT_MBUFS`] mbufs, the port's MTU.
    pub fn new(eal_args: &[&str]) -> Self {
        DpdkConfig {
            eal_args: eal_args.iter().map(|s| (*s).to_owned()).collect(),
            port: 0,
            queues: 1,
            mbufs_per_queue: DEFAULT_MBUFS,
            mtu: None,
        }
    }

    /// Parses `EAL ARGS[;port=N][;queues=N][;mbufs=N][;mtu=N]`: the EAL
    /// arguments are split on whitespace. The message of an error names
    /// the bad part and the accepted values.
    pub fn parse(text: &str) -> Result<DpdkConfig, String> {
        let mut parts = text.split(';');
        let eal: Vec<&str> = parts.next().unwrap_or("").split_whitespace().collect();
        let mut c = DpdkConfig::new(&eal);
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("'{p}': expected KEY=VALUE (port, queues, mbufs, mtu)"))?;
            let (k, v) = (k.trim(), v.trim());
            let num = |min: u64, max: u64| -> Result<u64, String> {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| format!("{k}={v}: expected a whole number from {min} to {max}"))
            };
            match k {
                "port" => c.port = num(0, u64::from(sys::RTE_MAX_ETHPORTS) - 1)? as u16,
                "queues" => c.queues = num(1, u64::from(MAX_QUEUES))? as u16,
                "mbufs" => {
                    c.mbufs_per_queue = num(u64::from(MIN_MBUFS), u64::from(MAX_MBUFS))? as u32;
                }
                "mtu" => c.mtu = Some(num(68, 16_000)? as usize),
                _ => {
                    return Err(format!(
                        "'{k}': unknown option (accepted: port, queues, mbufs, mtu)"
                    ))
                }
            }
        }
        Ok(c)
    }
}

/// Why a DPDK port could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpdkError {
    /// The configuration is out of range (no queue, too few mbufs).
    BadConfig,
    /// An EAL argument holds a NUL byte, or asks the EAL for its help text
    /// (which ends the process).
    BadEalArgs,
    /// `rte_eal_init` failed.
    EalInit {
        /// `rte_errno`.
        errno: i32,
    },
    /// The EAL of this process was started with other arguments; it starts
    /// once per process.
    EalArgsDiffer,
    /// The EAL found no Ethernet port.
    NoDevice,
    /// No port with this id.
    PortOutOfRange {
        /// The port asked for.
        port: u16,
        /// Ports the EAL found.
        available: u16,
    },
    /// The port is already open in this process.
    PortInUse {
        /// The port.
        port: u16,
    },
    /// More queues asked for than the port has.
    TooManyQueues {
        /// Queues asked for.
        asked: u16,
        /// The most the port has (RX and TX).
        max: u16,
    },
    /// Several queues, and the port reports no RSS.
    NoRss {
        /// Queues asked for.
        queues: u16,
    },
    /// The port spreads frames over its queues, but does not report its
    /// RSS key or redirection table.
    RssQuery {
        /// The error of the query.
        errno: i32,
    },
    /// The MTU asked for is outside what the port accepts, or does not fit
    /// an mbuf.
    MtuOutOfRange {
        /// The MTU asked for.
        mtu: usize,
        /// The smallest the port accepts.
        min: usize,
        /// The largest the port accepts.
        max: usize,
    },
    /// A mempool could not be created.
    Mempool {
        /// The queue it was for.
        queue: u16,
        /// Mbufs asked for.
        mbufs: u32,
        /// `rte_errno`.
        errno: i32,
    },
    /// `rte_eth_dev_info_get` failed.
    DeviceInfo {
        /// The error.
        errno: i32,
    },
    /// `rte_eth_dev_configure` failed.
    Configure {
        /// The error.
        errno: i32,
    },
    /// `rte_eth_rx_queue_setup` failed.
    RxQueueSetup {
        /// The queue.
        queue: u16,
        /// The error.
        errno: i32,
    },
    /// `rte_eth_tx_queue_setup` failed.
    TxQueueSetup {
        /// The queue.
        queue: u16,
        /// The error.
        errno: i32,
    },
    /// `rte_eth_dev_start` failed.
    Start {
        /// The error.
        errno: i32,
    },
}

impl core::fmt::Display for DpdkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = sys::strerror;
        match *self {
            DpdkError::BadConfig => write!(
                f,
                "bad DPDK configuration: queues must be 1 to {MAX_QUEUES}, mbufs {MIN_MBUFS} to {MAX_MBUFS}"
            ),
            DpdkError::BadEalArgs => f.write_str(
                "bad EAL arguments: one holds a NUL byte or asks for the EAL's help (-h, --help)",
            ),
            DpdkError::EalInit { errno } => write!(
                f,
                "DPDK EAL initialisation failed: {} (see the EAL's messages above; \
                 without hugepages use --no-huge -m 512 --no-shconf --no-pci)",
                text(errno)
            ),
            DpdkError::EalArgsDiffer => f.write_str(
                "the DPDK EAL is already initialised in this process with different arguments \
                 (it starts once per process: give every port the same EAL arguments)",
            ),
            DpdkError::NoDevice => f.write_str(
                "the DPDK EAL found no Ethernet port: check --vdev (e.g. --vdev=net_tap0) or -a \
                 (a PCI device bound to a DPDK driver), and that --no-pci is not hiding the NIC",
            ),
            DpdkError::PortOutOfRange { port, available } => write!(
                f,
                "port={port}: no such DPDK port ({available} found: accepted 0 to {})",
                available.saturating_sub(1)
            ),
            DpdkError::PortInUse { port } => {
                write!(f, "DPDK port {port} is already open in this process")
            }
            DpdkError::TooManyQueues { asked, max } => write!(
                f,
                "queues={asked}: the DPDK port has at most {max} RX/TX queue(s) (accepted: 1 to {max})"
            ),
            DpdkError::NoRss { queues } => write!(
                f,
                "queues={queues}: the DPDK port reports no RSS, so it runs one queue (use queues=1)"
            ),
            DpdkError::RssQuery { errno } => write!(
                f,
                "the DPDK port spreads frames over queues but does not report its RSS key and \
                 redirection table ({}): use queues=1",
                text(errno)
            ),
            DpdkError::MtuOutOfRange { mtu, min, max } => write!(
                f,
                "mtu={mtu}: the DPDK port accepts an MTU from {min} to {max}"
            ),
            DpdkError::Mempool { queue, mbufs, errno } => write!(
                f,
                "cannot create the mempool of queue {queue} ({mbufs} mbufs): {} \
                 (lower mbufs=, or give the EAL more memory: -m, hugepages)",
                text(errno)
            ),
            DpdkError::DeviceInfo { errno } => {
                write!(f, "cannot read the DPDK port's information: {}", text(errno))
            }
            DpdkError::Configure { errno } => {
                write!(f, "cannot configure the DPDK port: {}", text(errno))
            }
            DpdkError::RxQueueSetup { queue, errno } => write!(
                f,
                "cannot set up RX queue {queue} of the DPDK port: {}",
                text(errno)
            ),
            DpdkError::TxQueueSetup { queue, errno } => write!(
                f,
                "cannot set up TX queue {queue} of the DPDK port: {}",
                text(errno)
            ),
            DpdkError::Start { errno } => {
                write!(f, "cannot start the DPDK port: {}", text(errno))
            }
        }
    }
}

impl std::error::Error for DpdkError {}

/// What [`DpdkPort::open`] set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkInfo {
    /// The port id.
    pub port: u16,
    /// The device's name (`net_ring0`, a PCI address).
    pub name: String,
    /// The PMD's name (`net_ring`, `net_ice`).
    pub driver: String,
    /// Queues configured (RX and TX).
    pub queues: u16,
    /// The RSS key and redirection table in force (several queues only).
    pub rss: Option<RssInfo>,
    /// Checksums left to the NIC.
    pub checksum: ChecksumCaps,
    /// Whether the PMD takes mbuf chains (zero-copy payloads).
    pub multi_seg: bool,
    /// The port's MTU.
    pub mtu: usize,
    /// The port's MAC address.
    pub mac: EthernetAddress,
    /// Whether the link is up (when the port was opened).
    pub link_up: bool,
    /// Link speed in Mbit/s (0 when unknown).
    pub link_speed_mbps: u32,
    /// Mbufs in each queue's mempool.
    pub mbufs_per_queue: u32,
    /// The DPDK library's version.
    pub version: String,
}

fn offload_text(c: Checksum) -> Option<&'static str> {
    match c {
        Checksum::Both => None,
        Checksum::Rx => Some("tx"),
        Checksum::Tx => Some("rx"),
        Checksum::None => Some("rx+tx"),
    }
}

impl core::fmt::Display for DpdkInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "dpdk port {} ({}, driver {}): {} queue(s), ",
            self.port, self.name, self.driver, self.queues
        )?;
        match &self.rss {
            Some(r) => write!(
                f,
                "RSS (key {} bytes, {} table entries)",
                r.key.len(),
                r.reta.len()
            )?,
            None => f.write_str("no RSS: one queue")?,
        }
        let mut offloads = Vec::new();
        if let Some(t) = offload_text(self.checksum.ipv4) {
            offloads.push(format!("IPv4 checksum {t}"));
        }
        if let Some(t) = offload_text(self.checksum.tcp) {
            offloads.push(format!("TCP checksum {t}"));
        }
        if self.multi_seg {
            offloads.push("multi-segment tx".into());
        }
        if offloads.is_empty() {
            f.write_str(", offloads: none")?;
        } else {
            write!(f, ", offloads: {}", offloads.join(", "))?;
        }
        write!(f, ", MTU {}, MAC {}, link ", self.mtu, self.mac)?;
        if !self.link_up {
            f.write_str("down")?;
        } else if self.link_speed_mbps == 0 || self.link_speed_mbps == u32::MAX {
            f.write_str("up")?;
        } else {
            write!(f, "up {} Mbit/s", self.link_speed_mbps)?;
        }
        write!(
            f,
            ", {} mbufs/queue, {}",
            self.mbufs_per_queue, self.version
        )
    }
}

/// An opened DPDK port: one device per queue.
#[derive(Debug)]
pub struct DpdkPort {
    /// One device per queue, in queue order.
    pub devices: Vec<DpdkDevice>,
    /// What was set up.
    pub info: DpdkInfo,
}

/// Checksum handling from what the NIC does on receive and on transmit.
fn checksum_mode(rx_nic: bool, tx_nic: bool) -> Checksum {
    match (rx_nic, tx_nic) {
        (false, false) => Checksum::Both,
        (false, true) => Checksum::Rx,
        (true, false) => Checksum::Tx,
        (true, true) => Checksum::None,
    }
}

/// A symmetric Toeplitz key of `len` bytes: 0x6d5a repeated makes the hash
/// of (a, b, pa, pb) equal that of (b, a, pb, pa), so both directions of a
/// flow land on one queue.
fn symmetric_key(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| if i % 2 == 0 { 0x6d } else { 0x5a })
        .collect()
}

/// Descriptors per ring: a quarter of the pool, 32 to 1024.
fn ring_size(mbufs: u32) -> u16 {
    let quarter = (mbufs / 4).max(1);
    let pow = 1u32 << (31 - quarter.leading_zeros());
    pow.clamp(32, 1024) as u16
}

fn dev_info(port: u16) -> Result<sys::rte_eth_dev_info, DpdkError> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: `port` is a valid port id; `info` is writable.
    let rc = unsafe { sys::rte_eth_dev_info_get(port, &mut info) };
    if rc < 0 {
        return Err(DpdkError::DeviceInfo { errno: -rc });
    }
    Ok(info)
}

fn c_string(p: *const core::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: DPDK strings are NUL-terminated and live with the port.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Distinguishes mempool names across ports opened in one process.
static POOL_SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl DpdkPort {
    /// Starts the EAL if this process has not, then opens and starts the
    /// port as `config` asks.
    pub fn open(config: &DpdkConfig) -> Result<DpdkPort, DpdkError> {
        let c = config;
        if c.queues == 0
            || c.queues > MAX_QUEUES
            || !(MIN_MBUFS..=MAX_MBUFS).contains(&c.mbufs_per_queue)
        {
            return Err(DpdkError::BadConfig);
        }
        eal::eal(&c.eal_args)?;
        // SAFETY: the EAL is initialised.
        let available = unsafe { sys::rte_eth_dev_count_avail() };
        if available == 0 {
            return Err(DpdkError::NoDevice);
        }
        // SAFETY: any port id may be asked about.
        if unsafe { sys::rte_eth_dev_is_valid_port(c.port) } == 0 {
            return Err(DpdkError::PortOutOfRange {
                port: c.port,
                available,
            });
        }
        if !eal::claim_port(c.port) {
            return Err(DpdkError::PortInUse { port: c.port });
        }
        // From here on, dropping `shared` gives the port back (and stops
        // and closes it once started).
        let mut shared = eal::PortShared {
            port: c.port,
            pools: Vec::new(),
            started: false,
        };
        let port = c.port;
        let info = dev_info(port)?;
        let max = info.max_rx_queues.min(info.max_tx_queues);
        if c.queues > max {
            return Err(DpdkError::TooManyQueues {
                asked: c.queues,
                max,
            });
        }
        let rss_hf_wanted = u64::from(
            sys::WIRESPEED_RSS_IPV4
                | sys::WIRESPEED_RSS_FRAG_IPV4
                | sys::WIRESPEED_RSS_NONFRAG_IPV4_TCP
                | sys::WIRESPEED_RSS_NONFRAG_IPV4_OTHER,
        );
        let rss_hf = rss_hf_wanted & info.flow_type_rss_offloads;
        if c.queues > 1 && rss_hf == 0 {
            return Err(DpdkError::NoRss { queues: c.queues });
        }
        // The largest MTU: the PMD's own bound, and its largest frame less
        // the Ethernet overhead DPDK counts (its eth_dev_get_overhead_len).
        let overhead = if info.max_mtu != u16::MAX && info.max_rx_pktlen > u32::from(info.max_mtu) {
            (info.max_rx_pktlen - u32::from(info.max_mtu)) as usize
        } else {
            (sys::RTE_ETHER_HDR_LEN + sys::RTE_ETHER_CRC_LEN) as usize
        };
        let min_mtu = usize::from(info.min_mtu);
        let max_mtu =
            usize::from(info.max_mtu).min((info.max_rx_pktlen as usize).saturating_sub(overhead));
        let mtu = match c.mtu {
            Some(m) => m,
            None => {
                let mut m = 0u16;
                // SAFETY: valid port; `m` is writable.
                let rc = unsafe { sys::rte_eth_dev_get_mtu(port, &mut m) };
                if rc == 0 && m > 0 {
                    usize::from(m)
                } else {
                    sys::RTE_ETHER_MTU as usize
                }
            }
        };
        // Ethernet header and one VLAN tag after the headroom.
        let frame_room = mtu + 18;
        let data_room = DEFAULT_HEADROOM + frame_room.max(2048);
        let room_max = usize::from(u16::MAX) - DEFAULT_HEADROOM - 18;
        if c.mtu.is_some() && (mtu < min_mtu || mtu > max_mtu) || mtu > room_max {
            return Err(DpdkError::MtuOutOfRange {
                mtu,
                min: min_mtu,
                max: max_mtu.min(room_max),
            });
        }

        let want_rx =
            u64::from(sys::WIRESPEED_RX_OFFLOAD_IPV4_CKSUM | sys::WIRESPEED_RX_OFFLOAD_TCP_CKSUM);
        let want_tx = u64::from(
            sys::WIRESPEED_TX_OFFLOAD_IPV4_CKSUM
                | sys::WIRESPEED_TX_OFFLOAD_TCP_CKSUM
                | sys::WIRESPEED_TX_OFFLOAD_MULTI_SEGS,
        );
        let rx_off = want_rx & info.rx_offload_capa;
        let tx_off = want_tx & info.tx_offload_capa;
        let has = |set: u64, flag: u32| set & u64::from(flag) != 0;

        let mut conf = sys::rte_eth_conf::default();
        conf.rxmode.offloads = rx_off;
        conf.txmode.offloads = tx_off;
        if let Some(m) = c.mtu {
            conf.rxmode.mtu = m as u32;
        }
        let mut key = symmetric_key(usize::from(info.hash_key_size));
        if c.queues > 1 {
            conf.rxmode.mq_mode = sys::WIRESPEED_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if !key.is_empty() {
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            }
        }
        // SAFETY: valid, stopped port; `conf` (and the key it points to)
        // outlives the call, which copies what it needs.
        let rc = unsafe { sys::rte_eth_dev_configure(port, c.queues, c.queues, &conf) };
        if rc < 0 {
            return Err(DpdkError::Configure { errno: -rc });
        }
        let (mut nb_rx, mut nb_tx) = (ring_size(c.mbufs_per_queue), ring_size(c.mbufs_per_queue));
        // SAFETY: valid, configured port; both counts are writable.
        let rc = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut nb_rx, &mut nb_tx) };
        if rc < 0 {
            return Err(DpdkError::Configure { errno: -rc });
        }
        // SAFETY: valid port.
        let socket = match unsafe { sys::rte_eth_dev_socket_id(port) } {
            s if s < 0 => sys::SOCKET_ID_ANY,
            s => s,
        };
        let serial = POOL_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut queue_pools = Vec::with_capacity(usize::from(c.queues));
        for q in 0..c.queues {
            let pool_err = |errno| DpdkError::Mempool {
                queue: q,
                mbufs: c.mbufs_per_queue,
                errno,
            };
            let data = eal::pktmbuf_pool(
                &format!("ws{serial}d{port}.{q}"),
                c.mbufs_per_queue,
                data_room as u16,
                socket,
            )
            .map_err(pool_err)?;
            let data_ptr = data.0;
            shared.pools.push(data);
            // Indirect mbufs carry no data: one per segment in flight that
            // points into another mbuf.
            let ind = eal::pktmbuf_pool(
                &format!("ws{serial}i{port}.{q}"),
                c.mbufs_per_queue,
                0,
                socket,
            )
            .map_err(pool_err)?;
            let ind_ptr = ind.0;
            shared.pools.push(ind);
            // SAFETY: valid, configured port; the pool lives as long as
            // the port (and longer while mbufs of it are held).
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(
                    port,
                    q,
                    nb_rx,
                    socket as u32,
                    ptr::null(),
                    data_ptr.as_ptr(),
                )
            };
            if rc < 0 {
                return Err(DpdkError::RxQueueSetup {
                    queue: q,
                    errno: -rc,
                });
            }
            // SAFETY: as above; a null configuration takes the PMD's
            // defaults and the port's offloads.
            let rc =
                unsafe { sys::rte_eth_tx_queue_setup(port, q, nb_tx, socket as u32, ptr::null()) };
            if rc < 0 {
                return Err(DpdkError::TxQueueSetup {
                    queue: q,
                    errno: -rc,
                });
            }
            queue_pools.push(TxPools {
                data: data_ptr,
                indirect: ind_ptr,
                multi_seg: has(tx_off, sys::WIRESPEED_TX_OFFLOAD_MULTI_SEGS),
            });
        }
        // SAFETY: valid port, every queue set up.
        let rc = unsafe { sys::rte_eth_dev_start(port) };
        if rc < 0 {
            return Err(DpdkError::Start { errno: -rc });
        }
        shared.started = true;

        let rss = if c.queues > 1 {
            Some(settle_rss(
                port,
                c.queues,
                rss_hf,
                usize::from(info.hash_key_size),
            )?)
        } else {
            None
        };
        let checksum = ChecksumCaps {
            ipv4: checksum_mode(
                has(rx_off, sys::WIRESPEED_RX_OFFLOAD_IPV4_CKSUM),
                has(tx_off, sys::WIRESPEED_TX_OFFLOAD_IPV4_CKSUM),
            ),
            tcp: checksum_mode(
                has(rx_off, sys::WIRESPEED_RX_OFFLOAD_TCP_CKSUM),
                has(tx_off, sys::WIRESPEED_TX_OFFLOAD_TCP_CKSUM),
            ),
            icmpv4: Checksum::Both,
        };
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port; `addr` is writable.
        unsafe { sys::rte_eth_macaddr_get(port, &mut addr) };
        let mac = EthernetAddress(addr.addr_bytes);
        let mut actual_mtu = 0u16;
        // SAFETY: valid port; `actual_mtu` is writable.
        let mtu =
            if unsafe { sys::rte_eth_dev_get_mtu(port, &mut actual_mtu) } == 0 && actual_mtu > 0 {
                usize::from(actual_mtu).min(mtu)
            } else {
                mtu
            };
        let (mut speed, mut up, mut duplex) = (0u32, 0u8, 0u8);
        // SAFETY: valid port; the three outputs are writable.
        unsafe { sys::wirespeed_link_get(port, &mut speed, &mut up, &mut duplex) };
        let mut name = [0 as core::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: valid port; the buffer holds RTE_ETH_NAME_MAX_LEN bytes.
        let name = if unsafe { sys::rte_eth_dev_get_name_by_port(port, name.as_mut_ptr()) } == 0 {
            c_string(name.as_ptr())
        } else {
            String::new()
        };

        let shared = Arc::new(shared);
        let devices = queue_pools
            .into_iter()
            .enumerate()
            .map(|(q, pools)| DpdkDevice {
                caps: DeviceCaps {
                    mac,
                    mtu,
                    headroom: DEFAULT_HEADROOM,
                    checksum,
                    queue: q as u16,
                    queues: c.queues,
                    rss: rss.clone(),
                },
                port,
                queue: q as u16,
                pools,
                rx_check: RxCheck {
                    ipv4: !checksum.ipv4.verify_rx(),
                    tcp: !checksum.tcp.verify_rx(),
                },
                tx_offload: TxOffload {
                    ipv4: !checksum.ipv4.compute_tx(),
                    tcp: !checksum.tcp.compute_tx(),
                },
                stats: DpdkStats::default(),
                scratch: Vec::with_capacity(BURST),
                _shared: Arc::clone(&shared),
            })
            .collect();
        Ok(DpdkPort {
            devices,
            info: DpdkInfo {
                port,
                name,
                driver: c_string(info.driver_name),
                queues: c.queues,
                rss,
                checksum,
                multi_seg: has(tx_off, sys::WIRESPEED_TX_OFFLOAD_MULTI_SEGS),
                mtu,
                mac,
                link_up: up != 0,
                link_speed_mbps: speed,
                mbufs_per_queue: c.mbufs_per_queue,
                version: sys::version(),
            },
        })
    }
}

/// The RSS key and redirection table in force once the port runs: the
/// symmetric key and a round-robin table are set again where the PMD did
/// not apply them at configure time (some take them only through the
/// update calls), then both are read back; what the PMD reports is what
/// the engine computes with.
fn settle_rss(port: u16, queues: u16, rss_hf: u64, key_size: usize) -> Result<RssInfo, DpdkError> {
    let first = read_rss(port, key_size)?;
    // A PMD that does not state its key size is offered a key as long as
    // the one it reports.
    let mut key = symmetric_key(first.key.len());
    let keyed = first.key == key;
    if !keyed && !key.is_empty() {
        #[allow(
            clippy::needless_update,
            reason = "DPDK 23.11 and later add fields (the hash algorithm), left at their defaults"
        )]
        let mut conf = sys::rte_eth_rss_conf {
            rss_key: key.as_mut_ptr(),
            rss_key_len: key.len() as u8,
            rss_hf,
            ..Default::default()
        };
        // Best effort: a PMD that refuses keeps its own key, read back
        // below.
        // SAFETY: valid, started port; the key outlives the call.
        let _ = unsafe { sys::rte_eth_dev_rss_hash_update(port, &mut conf) };
    }
    let spread = (0..queues).all(|q| first.reta.contains(&q));
    if !spread {
        let group = sys::RTE_ETH_RETA_GROUP_SIZE as usize;
        let size = first.reta.len();
        let mut groups = reta_groups(size);
        for i in 0..size {
            groups[i / group].reta[i % group] = (i % usize::from(queues)) as u16;
        }
        // Best effort, as above.
        // SAFETY: valid, started port; `groups` covers `size` entries.
        let _ = unsafe { sys::rte_eth_dev_rss_reta_update(port, groups.as_mut_ptr(), size as u16) };
    }
    if keyed && spread {
        return Ok(first);
    }
    read_rss(port, key_size)
}

/// Entries for `size` table slots, every slot's mask bit set.
fn reta_groups(size: usize) -> Vec<sys::rte_eth_rss_reta_entry64> {
    let group = sys::RTE_ETH_RETA_GROUP_SIZE as usize;
    (0..size.div_ceil(group))
        .map(|g| sys::rte_eth_rss_reta_entry64 {
            mask: match size - g * group {
                n if n >= 64 => u64::MAX,
                n => (1u64 << n) - 1,
            },
            reta: [0; 64],
        })
        .collect()
}

/// The RSS key and redirection table the started port reports.
fn read_rss(port: u16, key_size: usize) -> Result<RssInfo, DpdkError> {
    // Devices that report no key size are asked with the common 40 bytes.
    let mut key = vec![0u8; if key_size == 0 { 40 } else { key_size }];
    let mut conf = sys::rte_eth_rss_conf {
        rss_key: key.as_mut_ptr(),
        rss_key_len: key.len() as u8,
        ..Default::default()
    };
    // SAFETY: valid, started port; `conf.rss_key` points to
    // `rss_key_len` writable bytes that outlive the call.
    let rc = unsafe { sys::rte_eth_dev_rss_hash_conf_get(port, &mut conf) };
    if rc < 0 {
        return Err(DpdkError::RssQuery { errno: -rc });
    }
    key.truncate(usize::from(conf.rss_key_len).min(key.len()));
    // Some PMDs size their table only once configured.
    let reta_size = usize::from(dev_info(port)?.reta_size);
    if reta_size == 0 {
        return Err(DpdkError::RssQuery {
            errno: libc::ENOTSUP,
        });
    }
    let group = sys::RTE_ETH_RETA_GROUP_SIZE as usize;
    let mut groups = reta_groups(reta_size);
    // SAFETY: valid, started port; `groups` holds reta_size entries.
    let rc =
        unsafe { sys::rte_eth_dev_rss_reta_query(port, groups.as_mut_ptr(), reta_size as u16) };
    if rc < 0 {
        return Err(DpdkError::RssQuery { errno: -rc });
    }
    let reta = (0..reta_size)
        .map(|i| groups[i / group].reta[i % group])
        .collect();
    Ok(RssInfo { key, reta })
}

/// Counters of one queue, kept by the driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpdkStats {
    /// Frames received and handed to the stack.
    pub rx_frames: u64,
    /// Frames the PMD took for transmission.
    pub tx_frames: u64,
    /// Received frames that came as mbuf chains or indirect mbufs, copied
    /// into one mbuf of their own.
    pub rx_copied: u64,
    /// Received frames dropped: no mbuf to copy a chain into, or too long.
    pub rx_dropped: u64,
    /// Received frames dropped for a bad IPv4 or TCP checksum.
    pub rx_bad_checksum: u64,
    /// Received frames whose checksums the NIC left unchecked, verified in
    /// software.
    pub rx_checked_in_software: u64,
    /// Frames sent as a header mbuf chained to the payload's mbuf (no copy).
    pub tx_chained: u64,
    /// Frames whose bytes were copied into a fresh mbuf before transmission
    /// (heap copies, payloads gathered for a PMD without chains).
    pub tx_copied: u64,
    /// Frames dropped at transmission: no mbuf for a segment.
    pub tx_dropped: u64,
    /// Transmit bursts of which the PMD took only a part (ring full).
    pub tx_ring_full: u64,
    /// `alloc_tx` calls that found the mempool empty.
    pub alloc_failures: u64,
}

/// The port's own counters (`rte_eth_stats_get`), all queues together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpdkPortStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames the NIC dropped for want of a free RX descriptor.
    pub rx_missed: u64,
    /// Erroneous frames received.
    pub rx_errors: u64,
    /// Frames that failed transmission.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Which checksums the NIC verifies on receive.
#[derive(Debug, Clone, Copy)]
struct RxCheck {
    ipv4: bool,
    tcp: bool,
}

/// Which checksums the NIC computes on transmit.
#[derive(Debug, Clone, Copy)]
struct TxOffload {
    ipv4: bool,
    tcp: bool,
}

/// One queue of a DPDK port, owned by one worker.
pub struct DpdkDevice {
    caps: DeviceCaps,
    port: u16,
    queue: u16,
    pools: TxPools,
    rx_check: RxCheck,
    tx_offload: TxOffload,
    stats: DpdkStats,
    /// Frames being handed to the PMD (reused between bursts).
    scratch: Vec<TxFrame>,
    _shared: Arc<eal::PortShared>,
}

// SAFETY: the device is one queue, used by one thread at a time (the
// worker that owns it); the pools it points to are multi-thread safe and
// outlive it (held through `shared`); DPDK allows a queue to move between
// threads as long as two never poll it at once, which `&mut self` ensures.
unsafe impl Send for DpdkDevice {}

impl core::fmt::Debug for DpdkDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DpdkDevice")
            .field("port", &self.port)
            .field("queue", &self.queue)
            .field("stats", &self.stats)
            .finish()
    }
}

impl DpdkDevice {
    /// This queue's counters.
    pub fn stats(&self) -> DpdkStats {
        self.stats
    }

    /// The port's counters (all queues), from the PMD.
    pub fn port_stats(&self) -> Option<DpdkPortStats> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: the port is started (held by `shared`); `s` is writable.
        if unsafe { sys::rte_eth_stats_get(self.port, &mut s) } != 0 {
            return None;
        }
        Some(DpdkPortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The PMD's extended counters (`rte_eth_xstats_get`), by name.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        // SAFETY: valid port; a null array asks for the count.
        let n = unsafe { sys::rte_eth_xstats_get_names(self.port, ptr::null_mut(), 0) };
        if n <= 0 {
            return Vec::new();
        }
        let n = n as usize;
        let mut names = vec![sys::rte_eth_xstat_name::default(); n];
        let mut values = vec![sys::rte_eth_xstat::default(); n];
        // SAFETY: both arrays hold `n` writable entries.
        let got_names =
            unsafe { sys::rte_eth_xstats_get_names(self.port, names.as_mut_ptr(), n as u32) };
        // SAFETY: as above.
        let got = unsafe { sys::rte_eth_xstats_get(self.port, values.as_mut_ptr(), n as u32) };
        if got_names <= 0 || got <= 0 {
            return Vec::new();
        }
        let count = (got as usize).min(got_names as usize).min(n);
        values[..count]
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                Some((c_string(name.name.as_ptr()), v.value))
            })
            .collect()
    }

    /// Free mbufs in this queue's mempool (counting other lcores' caches).
    pub fn free_mbufs(&self) -> usize {
        // SAFETY: the pool is live while the port is.
        unsafe { sys::rte_mempool_avail_count(self.pools.data.as_ptr()) as usize }
    }

    /// A received mbuf, made a single direct segment if it is not one:
    /// chains and indirect mbufs (a loopback PMD hands back what was sent)
    /// are copied into a fresh mbuf.
    fn single(&mut self, m: NonNull<sys::rte_mbuf>) -> Option<NonNull<sys::rte_mbuf>> {
        // SAFETY: the PMD handed over `m`; it is ours.
        let segs = unsafe { field::nb_segs(m.as_ptr()) };
        // SAFETY: as above.
        let flags = unsafe { field::ol_flags(m.as_ptr()) };
        if segs == 1 && flags & sys::RTE_MBUF_F_INDIRECT == 0 {
            return Some(m);
        }
        let copy = self.gather(m);
        // SAFETY: the received chain is ours; freeing it drops the
        // references its segments hold.
        unsafe { sys::rte_pktmbuf_free(m.as_ptr()) };
        match copy {
            Some(c) => {
                self.stats.rx_copied += 1;
                Some(c)
            }
            None => {
                self.stats.rx_dropped += 1;
                None
            }
        }
    }

    fn gather(&mut self, m: NonNull<sys::rte_mbuf>) -> Option<NonNull<sys::rte_mbuf>> {
        // SAFETY: the data pool is live.
        let c = NonNull::new(unsafe { sys::rte_pktmbuf_alloc(self.pools.data.as_ptr()) })?;
        let c = c.as_ptr();
        let off = DEFAULT_HEADROOM;
        // SAFETY: `c` is a fresh mbuf, ours alone.
        let room = usize::from(unsafe { field::buf_len(c) }).saturating_sub(off);
        // SAFETY: as above.
        let base = unsafe { field::buf_addr(c) }.cast::<u8>().wrapping_add(off);
        let mut len = 0usize;
        let mut seg = m.as_ptr();
        while !seg.is_null() {
            // SAFETY: `seg` is a segment of the received chain, which is
            // ours until freed (also below).
            let n = usize::from(unsafe { field::data_len(seg) });
            if len + n > room {
                // SAFETY: `c` is ours, single-segment.
                unsafe { sys::rte_pktmbuf_free_seg(c) };
                return None;
            }
            // SAFETY: as above.
            let src = unsafe { field::mtod(seg) };
            // SAFETY: the segment's data window lies in its buffer
            // (DPDK's invariant); `[len, len + n)` after `base` fits `c`'s
            // buffer (checked), a different buffer.
            unsafe { ptr::copy_nonoverlapping(src, base.wrapping_add(len), n) };
            len += n;
            // SAFETY: as above.
            seg = unsafe { field::next(seg) };
        }
        // SAFETY: the received head is ours until freed.
        let flags = unsafe { field::ol_flags(m.as_ptr()) };
        // SAFETY: `c` is ours; its window was just filled.
        unsafe { field::set_single_segment(c, off as u16, len as u16) };
        // The receive flags (checksum verdicts) stay with the copy.
        // SAFETY: as above.
        unsafe {
            field::set_ol_flags(
                c,
                flags & !(sys::RTE_MBUF_F_INDIRECT | sys::RTE_MBUF_F_EXTERNAL),
            )
        };
        NonNull::new(c)
    }

    /// Whether a received frame's checksums are good, as far as software
    /// leaves them to the NIC: the NIC's verdict where it gave one, a
    /// software check where it did not.
    fn checksums_ok(&mut self, flags: u64, frame: &[u8]) -> bool {
        let ip = flags & u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK);
        let l4 = flags & u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_MASK);
        let check_ip = self.rx_check.ipv4;
        let check_l4 = self.rx_check.tcp;
        if (check_ip && ip == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD))
            || (check_l4 && l4 == u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_BAD))
        {
            return false;
        }
        let sw_ip = check_ip && ip == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN);
        let sw_l4 = check_l4 && l4 == u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN);
        if !(sw_ip || sw_l4) {
            return true;
        }
        match software_checksums_ok(frame, sw_ip, sw_l4) {
            Some(ok) => {
                self.stats.rx_checked_in_software += 1;
                ok
            }
            None => true,
        }
    }

    /// Transmit offload flags for a frame whose first bytes are `head`:
    /// `(ol_flags, l2_len, l3_len)`, or `None` when nothing is left to the
    /// NIC.
    fn tx_flags(&self, head: &[u8]) -> Option<(u64, u16, u16)> {
        let (l2, ip) = ipv4_header(head)?;
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let mut flags = 0;
        // The stack leaves the IPv4 checksum zero when the NIC computes it;
        // a header it summed itself keeps its sum.
        if self.tx_offload.ipv4 && ip[10] == 0 && ip[11] == 0 {
            flags |= sys::RTE_MBUF_F_TX_IP_CKSUM;
        }
        let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
        if self.tx_offload.tcp && ip[9] == 6 && !fragment {
            flags |= sys::RTE_MBUF_F_TX_TCP_CKSUM;
        }
        (flags != 0).then_some((flags | sys::RTE_MBUF_F_TX_IPV4, l2 as u16, ihl as u16))
    }
}

/// The Ethernet header length (one VLAN tag at most) and the IPv4 header
/// of `frame`, if it carries IPv4 with a plausible header length.
fn ipv4_header(frame: &[u8]) -> Option<(usize, &[u8])> {
    let mut l2 = 14;
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype == 0x8100 {
        l2 = 18;
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(l2..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    (ihl >= 20 && ip.len() >= ihl).then_some((l2, ip))
}

/// Software verification of what the NIC left unchecked: `None` when the
/// frame is not IPv4 (nothing to check) or does not parse (the stack drops
/// and counts it itself).
fn software_checksums_ok(frame: &[u8], ip: bool, tcp: bool) -> Option<bool> {
    let (_, bytes) = ipv4_header(frame)?;
    let packet = Ipv4Packet::new_checked(bytes).ok()?;
    if ip && !packet.verify_checksum() {
        return Some(false);
    }
    if tcp && packet.protocol() == IpProtocol::Tcp && !packet.is_fragment() {
        if let Ok(seg) = TcpPacket::new_checked(packet.payload()) {
            return Some(seg.verify_checksum(packet.src_addr(), packet.dst_addr()));
        }
    }
    Some(true)
}

impl Device for DpdkDevice {
    type Buf = Mbuf;

    fn caps(&self) -> &DeviceCaps {
        &self.caps
    }

    fn rx_burst(&mut self, _now: Instant, out: &mut Vec<Mbuf>, max: usize) -> usize {
        eal::register_thread();
        let mut pkts = [ptr::null_mut::<sys::rte_mbuf>(); BURST];
        let mut got = 0;
        let mut left = max;
        while left > 0 {
            let want = left.min(BURST);
            // SAFETY: this device alone polls its queue (`&mut self`); the
            // array has room for `want` pointers.
            let n = usize::from(unsafe {
                sys::rte_eth_rx_burst(self.port, self.queue, pkts.as_mut_ptr(), want as u16)
            });
            for &raw in &pkts[..n] {
                let Some(m) = NonNull::new(raw) else { continue };
                let Some(m) = self.single(m) else { continue };
                // SAFETY: `m` is a direct single-segment mbuf whose only
                // reference the PMD (or `single`) gave us.
                let buf = unsafe { Mbuf::from_raw(m) };
                if self.rx_check.ipv4 || self.rx_check.tcp {
                    // SAFETY: `m` is live (held by `buf`).
                    let flags = unsafe { field::ol_flags(m.as_ptr()) };
                    if !self.checksums_ok(flags, buf.as_slice()) {
                        self.stats.rx_bad_checksum += 1;
                        continue;
                    }
                }
                out.push(buf);
                got += 1;
            }
            left -= n;
            if n < want {
                break;
            }
        }
        self.stats.rx_frames += got as u64;
        got
    }

    fn tx_burst(&mut self, _now: Instant, frames: &mut Vec<Mbuf>) -> usize {
        eal::register_thread();
        let mut taken = 0;
        let mut pkts = [ptr::null_mut::<sys::rte_mbuf>(); BURST];
        while !frames.is_empty() {
            let n = frames.len().min(BURST);
            let mut failed = false;
            self.scratch.clear();
            for buf in &frames[..n] {
                let Some(frame) = TxFrame::build(buf, self.pools) else {
                    failed = true;
                    break;
                };
                if let Some((flags, l2, l3)) = self.tx_flags(buf.as_slice()) {
                    // SAFETY: the head is this transmission's alone until
                    // the PMD takes it.
                    unsafe {
                        sys::wirespeed_mbuf_set_tx_offload(frame.head.as_ptr(), flags, l2, l3)
                    };
                }
                pkts[self.scratch.len()] = frame.head.as_ptr();
                self.scratch.push(frame);
            }
            let built = self.scratch.len();
            let sent = if built == 0 {
                0
            } else {
                // SAFETY: this device alone uses its TX queue; `pkts` holds
                // `built` valid frames, of which the PMD takes the first
                // `sent` (and frees them once sent).
                usize::from(unsafe {
                    sys::rte_eth_tx_burst(self.port, self.queue, pkts.as_mut_ptr(), built as u16)
                })
            };
            for frame in self.scratch.drain(sent..) {
                frame.undo();
            }
            for (buf, frame) in frames.drain(..sent).zip(self.scratch.drain(..)) {
                self.stats.tx_chained += u64::from(frame.chained);
                self.stats.tx_copied += u64::from(frame.copied);
                TxFrame::sent(buf, frame.kind);
            }
            self.stats.tx_frames += sent as u64;
            taken += sent;
            if sent < built {
                self.stats.tx_ring_full += 1;
                break;
            }
            if failed {
                // The frame that found no mbuf is now first: dropped, as a
                // lost frame would be.
                drop(frames.remove(0));
                self.stats.tx_dropped += 1;
                taken += 1;
            }
        }
        taken
    }

    fn alloc_tx(&mut self) -> Option<Mbuf> {
        eal::register_thread();
        // SAFETY: the data pool is live while the port is.
        match NonNull::new(unsafe { sys::rte_pktmbuf_alloc(self.pools.data.as_ptr()) }) {
            // SAFETY: a fresh direct mbuf with one reference, now the
            // handle's; rte_pktmbuf_alloc left it empty at the headroom.
            Some(m) => Some(unsafe { Mbuf::from_raw(m) }),
            None => {
                self.stats.alloc_failures += 1;
                None
            }
        }
    }

    fn buffers_in_use(&self) -> Option<usize> {
        // SAFETY: the data pool is live while the port is.
        Some(unsafe { sys::rte_mempool_in_use_count(self.pools.data.as_ptr()) } as usize)
    }

    /// This queue's counters; queue 0 adds the port's: link state and
    /// speed, the device statistics (`port_*`) and the PMD's extended
    /// statistics (`xstat_*`), so a total over workers counts them once.
    fn counters(&self, out: &mut Vec<(String, u64)>) {
        let s = self.stats;
        for (k, v) in [
            ("rx_frames", s.rx_frames),
            ("tx_frames", s.tx_frames),
            ("rx_copied", s.rx_copied),
            ("rx_dropped", s.rx_dropped),
            ("rx_bad_checksum", s.rx_bad_checksum),
            ("rx_checked_in_software", s.rx_checked_in_software),
            ("tx_chained", s.tx_chained),
            ("tx_copied", s.tx_copied),
            ("tx_dropped", s.tx_dropped),
            ("tx_ring_full", s.tx_ring_full),
            ("alloc_failures", s.alloc_failures),
        ] {
            out.push((k.to_owned(), v));
        }
        if self.queue != 0 {
            return;
        }
        let (mut speed, mut up, mut duplex) = (0u32, 0u8, 0u8);
        // SAFETY: valid, started port; the three outputs are writable.
        if unsafe { sys::wirespeed_link_get(self.port, &mut speed, &mut up, &mut duplex) } == 0 {
            out.push(("link_up".to_owned(), u64::from(up)));
            out.push(("link_speed_mbps".to_owned(), u64::from(speed)));
        }
        if let Some(p) = self.port_stats() {
            for (k, v) in [
                ("port_rx_packets", p.rx_packets),
                ("port_tx_packets", p.tx_packets),
                ("port_rx_bytes", p.rx_bytes),
                ("port_tx_bytes", p.tx_bytes),
                ("port_rx_missed", p.rx_missed),
                ("port_rx_errors", p.rx_errors),
                ("port_tx_errors", p.tx_errors),
                ("port_rx_nombuf", p.rx_nombuf),
            ] {
                out.push((k.to_owned(), v));
            }
        }
        for (k, v) in self.xstats() {
            // Names go into JSON keys: keep them to [A-Za-z0-9_].
            let k: String = k
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            out.push((format!("xstat_{k}"), v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_takes_eal_args_and_options() {
        let c = DpdkConfig::parse(
            "--no-huge -m 512  --vdev=net_ring0 --no-pci;queues=2; mbufs=4096;mtu=9000;port=1",
        )
        .unwrap();
        assert_eq!(
            c.eal_args,
            ["--no-huge", "-m", "512", "--vdev=net_ring0", "--no-pci"]
        );
        assert_eq!(
            (c.port, c.queues, c.mbufs_per_queue, c.mtu),
            (1, 2, 4096, Some(9000))
        );
        let d = DpdkConfig::parse("--no-pci").unwrap();
        assert_eq!(
            (d.port, d.queues, d.mbufs_per_queue, d.mtu),
            (0, 1, DEFAULT_MBUFS, None)
        );
        assert_eq!(DpdkConfig::parse("--no-pci;").unwrap(), d);
    }

    #[test]
    fn parse_errors_name_the_part_and_the_accepted_values() {
        let err = |s| DpdkConfig::parse(s).unwrap_err();
        assert_eq!(
            err("--no-pci;queues=0"),
            "queues=0: expected a whole number from 1 to 1024"
        );
        assert_eq!(
            err("--no-pci;mbufs=10"),
            "mbufs=10: expected a whole number from 64 to 16777216"
        );
        assert_eq!(
            err("--no-pci;port=x"),
            "port=x: expected a whole number from 0 to 31"
        );
        assert_eq!(
            err("--no-pci;mtu=20"),
            "mtu=20: expected a whole number from 68 to 16000"
        );
        assert_eq!(
            err("--no-pci;queue=2"),
            "'queue': unknown option (accepted: port, queues, mbufs, mtu)"
        );
        assert_eq!(
            err("--no-pci;fast"),
            "'fast': expected KEY=VALUE (port, queues, mbufs, mtu)"
        );
    }

    #[test]
    fn checksum_modes_follow_the_offloads() {
        assert_eq!(checksum_mode(false, false), Checksum::Both);
        assert_eq!(checksum_mode(false, true), Checksum::Rx);
        assert_eq!(checksum_mode(true, false), Checksum::Tx);
        assert_eq!(checksum_mode(true, true), Checksum::None);
        assert!(symmetric_key(52).chunks(2).all(|c| c == [0x6d, 0x5a]));
        assert_eq!(symmetric_key(40), crate::net::rss::SYMMETRIC_KEY);
        assert_eq!(
            (ring_size(64), ring_size(8192), ring_size(1 << 20)),
            (32, 1024, 1024)
        );
        assert_eq!(ring_size(1000), 128);
    }

    #[test]
    fn software_checksum_check_finds_a_corrupt_tcp_segment() {
        let mut frame = vec![0u8; 14 + 20 + 20];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut frame[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
        ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
        let mut p = Ipv4Packet::new_checked(&mut frame[14..]).unwrap();
        p.fill_checksum();
        let tcp = &mut frame[34..];
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        let mut t = TcpPacket::new_checked(&mut frame[34..]).unwrap();
        t.fill_checksum([198, 18, 0, 1].into(), [198, 18, 0, 2].into());
        assert_eq!(software_checksums_ok(&frame, true, true), Some(true));
        frame[40] ^= 1;
        assert_eq!(software_checksums_ok(&frame, false, true), Some(false));
        assert_eq!(software_checksums_ok(&frame, true, false), Some(true));
        frame[40] ^= 1;
        frame[22] ^= 1;
        assert_eq!(software_checksums_ok(&frame, true, false), Some(false));
        // Not IPv4: nothing to check here.
        assert_eq!(software_checksums_ok(&[0u8; 60], true, true), None);
        assert_eq!(ipv4_header(&frame[..20]), None);
    }
}
