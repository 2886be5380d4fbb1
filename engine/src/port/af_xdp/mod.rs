//! The AF_XDP port: kernel bypass on any Linux interface.
//!
//! [`AfXdpPort::open`] loads the engine's own XDP program (a redirect of
//! every frame to the socket bound to its RX queue through an XSKMAP, and
//! `XDP_PASS` for queues with no socket), maps one UMEM for the port, and
//! binds one AF_XDP socket per queue, each with its own fill, completion,
//! RX and TX rings and its own share of the UMEM's frames. Each socket
//! becomes an [`AfXdpDevice`], owned by that queue's worker.
//!
//! The program is attached through a BPF link: it stays attached exactly as
//! long as the port's descriptors are open, so it goes away when the last
//! device is dropped, on every error path of `open`, and when the process
//! ends in any way (SIGINT, SIGTERM, a panic, SIGKILL).
//!
//! Zero copy: UMEM frames are the engine's buffers ([`XdpBuf`]). A received
//! payload reaches the application in its frame; segments are built in
//! frames; the retransmit queue keeps a reference on the payload's frame.
//! A TX descriptor names one contiguous frame, so a header with an attached
//! payload is gathered into the header's frame before it goes on the ring
//! (the same copy the kernel makes in copy mode).
//!
//! Checksums are computed in software: veth and most AF_XDP setups offer
//! no offload.
//!
//! Needs root (`CAP_NET_ADMIN`, `CAP_BPF`, `CAP_NET_RAW`) and Linux 5.9 or
//! later (XDP links). On veth, frames are copied (`zc=auto` reports copy
//! mode); zero copy needs a driver that supports it.

mod sys;
mod umem;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

pub use sys::XskKernelStats;
pub use umem::XdpBuf;

use super::{Device, DeviceCaps, RssInfo};
use crate::buf::{PacketBuf, DEFAULT_HEADROOM};
use crate::time::Instant;
use crate::wire::{ChecksumCaps, EthernetAddress};
use umem::QueueFrames;

/// Headroom the kernel leaves in front of a received frame
/// (`XDP_PACKET_HEADROOM`).
const KERNEL_HEADROOM: usize = 256;

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic where the driver has
    /// none.
    #[default]
    Auto,
    /// Native mode only.
    Native,
    /// Generic mode (on the socket buffer): works on every interface.
    Generic,
}

/// Whether the sockets move frames without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroCopy {
    /// Zero copy where the driver supports it, copy mode elsewhere.
    #[default]
    Auto,
    /// Zero copy or an error.
    On,
    /// Copy mode.
    Off,
}

/// What [`AfXdpPort::open`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// The interface, in the calling thread's network namespace.
    pub iface: String,
    /// Queues (and sockets) from queue 0 up.
    pub queues: u16,
    /// Native or generic XDP.
    pub mode: XdpMode,
    /// Zero copy or copy mode.
    pub zero_copy: ZeroCopy,
    /// UMEM frames per queue.
    pub frames: u32,
    /// Bytes per frame: 2048 or 4096.
    pub frame_size: u32,
    /// Descriptors in each RX and TX ring (a power of two); the fill and
    /// completion rings get twice as many.
    pub ring_size: u32,
}

impl AfXdpConfig {
    /// Defaults for `iface`: one queue, native mode with fallback, zero copy
    /// where possible, 16384 frames of 2048 bytes per queue, rings of 2048.
    pub fn new(iface: &str) -> Self {
        AfXdpConfig {
            iface: iface.to_owned(),
            queues: 1,
            mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
            frames: 16384,
            frame_size: 2048,
            ring_size: 2048,
        }
    }

    /// Parses `IFACE[,queues=N][,mode=native|generic|auto][,zc=auto|on|off]
    /// [,frames=N][,frame_size=2048|4096][,ring=N]`; the message of an
    /// error names the bad part and the accepted values.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(',');
        let iface = parts.next().unwrap_or("").trim();
        check_name(iface)?;
        let mut c = AfXdpConfig::new(iface);
        for p in parts {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                format!("'{p}': expected KEY=VALUE (queues, mode, zc, frames, frame_size, ring)")
            })?;
            let (k, v) = (k.trim(), v.trim());
            let num = |max: u64| -> Result<u64, String> {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("{k}={v}: expected a whole number from 1 to {max}"))
            };
            match k {
                "queues" => c.queues = num(256)? as u16,
                "mode" => {
                    c.mode = match v {
                        "auto" => XdpMode::Auto,
                        "native" | "drv" => XdpMode::Native,
                        "generic" | "skb" => XdpMode::Generic,
                        _ => return Err(format!("mode={v}: expected native, generic or auto")),
                    }
                }
                "zc" => {
                    c.zero_copy = match v {
                        "auto" => ZeroCopy::Auto,
                        "on" => ZeroCopy::On,
                        "off" => ZeroCopy::Off,
                        _ => return Err(format!("zc={v}: expected auto, on or off")),
                    }
                }
                "frames" => c.frames = num(1 << 24)? as u32,
                "frame_size" => {
                    c.frame_size = match v {
                        "2048" => 2048,
                        "4096" => 4096,
                        _ => return Err(format!("frame_size={v}: expected 2048 or 4096")),
                    }
                }
                "ring" => {
                    let n = num(1 << 16)? as u32;
                    if !n.is_power_of_two() || n < 64 {
                        return Err(format!(
                            "ring={v}: expected a power of two from 64 to 65536"
                        ));
                    }
                    c.ring_size = n;
                }
                _ => {
                    return Err(format!(
                    "'{k}': unknown option (accepted: queues, mode, zc, frames, frame_size, ring)"
                ))
                }
            }
        }
        if u64::from(c.frames) < 4 * u64::from(c.ring_size) {
            return Err(format!(
                "frames={}: at least 4 × ring ({}) frames per queue are needed",
                c.frames,
                4 * c.ring_size
            ));
        }
        Ok(c)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let bad = |c: char| {
        c == '/' || c == ':' || c == '%' || c == ',' || c.is_whitespace() || c.is_control()
    };
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." || name.chars().any(bad) {
        return Err(format!(
            "'{name}': not an interface name (1 to 15 characters, no '/', ':', '%', ',' or spaces)"
        ));
    }
    Ok(())
}

/// Why an AF_XDP port could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfXdpError {
    /// The configuration is inconsistent (a bad name, too few frames).
    BadConfig,
    /// No interface of that name in this network namespace.
    NoSuchInterface,
    /// The kernel refused: loading XDP programs and AF_XDP sockets need
    /// root (`CAP_NET_ADMIN`, `CAP_BPF`, `CAP_NET_RAW`).
    NotPermitted,
    /// The kernel has no AF_XDP sockets or no XDP links (needs Linux 5.9).
    Unsupported {
        /// The `errno` value.
        errno: i32,
    },
    /// Another XDP program is attached to the interface.
    AlreadyAttached,
    /// More queues asked for than the interface has.
    TooManyQueues {
        /// Queues asked for.
        asked: u16,
        /// RX queues the interface has.
        available: u32,
    },
    /// Several queues, but the interface does not report a Toeplitz RSS
    /// configuration: which queue a flow lands on cannot be predicted.
    NoRss,
    /// The UMEM could not be allocated or registered.
    UmemAlloc {
        /// Bytes asked for.
        bytes: u64,
        /// The `errno` value.
        errno: i32,
    },
    /// The interface's MTU does not fit a frame.
    MtuTooLarge {
        /// The interface's MTU.
        mtu: usize,
        /// The largest MTU frames of this size hold.
        max: usize,
    },
    /// The XDP program could not be attached in the mode asked for.
    AttachMode {
        /// The mode tried last.
        native: bool,
        /// The `errno` value.
        errno: i32,
    },
    /// `zc=on`, and the driver cannot do zero copy.
    NoZeroCopy {
        /// The `errno` value of the zero-copy bind.
        errno: i32,
    },
    /// Another system call failed.
    Sys {
        /// What was being done.
        op: &'static str,
        /// The `errno` value.
        errno: i32,
    },
}

fn strerror(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
}

impl core::fmt::Display for AfXdpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            AfXdpError::BadConfig => f.write_str("bad AF_XDP configuration"),
            AfXdpError::NoSuchInterface => {
                f.write_str("no such interface in this network namespace")
            }
            AfXdpError::NotPermitted => f.write_str(
                "permission denied: AF_XDP and XDP programs need root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW)",
            ),
            AfXdpError::Unsupported { errno } => write!(
                f,
                "this kernel cannot run the AF_XDP port (needs AF_XDP sockets and XDP links, Linux 5.9 or later): {}",
                strerror(errno)
            ),
            AfXdpError::AlreadyAttached => f.write_str(
                "an XDP program is already attached to the interface; remove it first \
                 (ip link set dev IFACE xdp off) or stop the program that owns it",
            ),
            AfXdpError::TooManyQueues { asked, available } => write!(
                f,
                "queues={asked}: the interface has {available} RX queue(s) (accepted: 1 to {available})"
            ),
            AfXdpError::NoRss => f.write_str(
                "several queues need the interface's Toeplitz RSS key and table (ethtool -x), \
                 which it does not report; use queues=1",
            ),
            AfXdpError::UmemAlloc { bytes, errno } => write!(
                f,
                "cannot allocate a UMEM of {bytes} bytes: {} (lower frames= or queues=)",
                strerror(errno)
            ),
            AfXdpError::MtuTooLarge { mtu, max } => write!(
                f,
                "the interface's MTU {mtu} does not fit a frame (at most {max}; use frame_size=4096 or lower the MTU)"
            ),
            AfXdpError::AttachMode { native, errno } => write!(
                f,
                "cannot attach the XDP program in {} mode: {}",
                if native { "native" } else { "generic" },
                strerror(errno)
            ),
            AfXdpError::NoZeroCopy { errno } => write!(
                f,
                "zc=on: the driver cannot bind in zero-copy mode: {} (accepted here: zc=auto or zc=off)",
                strerror(errno)
            ),
            AfXdpError::Sys { op, errno } => write!(f, "{op} failed: {}", strerror(errno)),
        }
    }
}

impl std::error::Error for AfXdpError {}

fn sys_error(op: &'static str, errno: i32) -> AfXdpError {
    match errno {
        libc::EPERM | libc::EACCES => AfXdpError::NotPermitted,
        libc::EAFNOSUPPORT | libc::ENOSYS => AfXdpError::Unsupported { errno },
        _ => AfXdpError::Sys { op, errno },
    }
}

/// What [`AfXdpPort::open`] set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpInfo {
    /// The interface.
    pub iface: String,
    /// Its index.
    pub ifindex: u32,
    /// Whether the program runs in native (driver) mode; generic otherwise.
    pub native: bool,
    /// Whether the sockets run in zero-copy mode; copy mode otherwise.
    pub zero_copy: bool,
    /// Queues bound.
    pub queues: u16,
    /// The interface's MAC address.
    pub mac: EthernetAddress,
    /// The interface's MTU.
    pub mtu: usize,
    /// UMEM size in bytes.
    pub umem_bytes: u64,
}

impl core::fmt::Display for AfXdpInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "af_xdp {}: {} queue(s), XDP {} mode, {} mode, MTU {}, MAC {}, UMEM {} MiB",
            self.iface,
            self.queues,
            if self.native { "native" } else { "generic" },
            if self.zero_copy { "zero-copy" } else { "copy" },
            self.mtu,
            self.mac,
            self.umem_bytes >> 20
        )
    }
}

/// Descriptors that keep the program attached; dropped with the last
/// device (closing the link detaches the program).
#[derive(Debug)]
struct Attachment {
    _link: OwnedFd,
    _prog: OwnedFd,
    _map: OwnedFd,
}

/// An opened AF_XDP port: one device per queue.
#[derive(Debug)]
pub struct AfXdpPort {
    /// One device per queue, in queue order.
    pub devices: Vec<AfXdpDevice>,
    /// What was set up.
    pub info: AfXdpInfo,
}

impl AfXdpPort {
    /// Opens the port as `config` asks, in the calling thread's network
    /// namespace.
    pub fn open(config: &AfXdpConfig) -> Result<AfXdpPort, AfXdpError> {
        let c = config;
        check_name(&c.iface).map_err(|_| AfXdpError::BadConfig)?;
        if c.queues == 0
            || !(c.frame_size == 2048 || c.frame_size == 4096)
            || !c.ring_size.is_power_of_two()
            || u64::from(c.frames) < 4 * u64::from(c.ring_size)
        {
            return Err(AfXdpError::BadConfig);
        }
        let ifindex = sys::ifindex(&c.iface).ok_or(AfXdpError::NoSuchInterface)?;
        let available = sys::rx_queues(&c.iface).unwrap_or(1);
        if u32::from(c.queues) > available {
            return Err(AfXdpError::TooManyQueues {
                asked: c.queues,
                available,
            });
        }
        let (mac, mtu) = sys::mac_and_mtu(&c.iface).map_err(|e| sys_error("SIOCGIFHWADDR", e))?;
        // Ethernet header and one VLAN tag after the kernel's headroom.
        let max = c.frame_size as usize - KERNEL_HEADROOM - 18;
        if mtu > max {
            return Err(AfXdpError::MtuTooLarge { mtu, max });
        }
        let rss = if c.queues > 1 {
            let (key, reta) = sys::rss(&c.iface).ok_or(AfXdpError::NoRss)?;
            Some(RssInfo { key, reta })
        } else {
            None
        };

        let bytes = u64::from(c.queues) * u64::from(c.frames) * u64::from(c.frame_size);
        let len = usize::try_from(bytes).map_err(|_| AfXdpError::UmemAlloc {
            bytes,
            errno: libc::ENOMEM,
        })?;
        let area = Arc::new(
            sys::Mapping::anonymous(len).map_err(|errno| AfXdpError::UmemAlloc { bytes, errno })?,
        );

        let map =
            sys::create_xskmap(u32::from(c.queues)).map_err(|e| sys_error("BPF_MAP_CREATE", e))?;
        let prog = sys::load_program(&map).map_err(|(e, log)| match e {
            libc::EPERM | libc::EACCES => AfXdpError::NotPermitted,
            _ => {
                if !log.is_empty() {
                    eprintln!("XDP program rejected by the verifier:\n{log}");
                }
                sys_error("BPF_PROG_LOAD", e)
            }
        })?;

        // Attached first: another program on the interface is the
        // likeliest conflict, and until the sockets are in the map every
        // frame passes to the kernel.
        let attach = |flags| sys::attach_link(&prog, ifindex, flags);
        let link_error = |native: bool, errno: i32| match errno {
            libc::EBUSY | libc::EEXIST => AfXdpError::AlreadyAttached,
            libc::EPERM | libc::EACCES => AfXdpError::NotPermitted,
            libc::EINVAL if native => AfXdpError::AttachMode { native, errno },
            libc::ENOSYS => AfXdpError::Unsupported { errno },
            _ => AfXdpError::AttachMode { native, errno },
        };
        let (link, native) = match c.mode {
            XdpMode::Native => (
                attach(sys::XDP_FLAGS_DRV_MODE).map_err(|e| link_error(true, e))?,
                true,
            ),
            XdpMode::Generic => (
                attach(sys::XDP_FLAGS_SKB_MODE).map_err(|e| link_error(false, e))?,
                false,
            ),
            XdpMode::Auto => match attach(sys::XDP_FLAGS_DRV_MODE) {
                Ok(l) => (l, true),
                Err(e @ (libc::EBUSY | libc::EEXIST | libc::EPERM | libc::EACCES)) => {
                    return Err(link_error(true, e))
                }
                Err(_) => (
                    attach(sys::XDP_FLAGS_SKB_MODE).map_err(|e| link_error(false, e))?,
                    false,
                ),
            },
        };
        let sizes = sys::RingSizes {
            fill: c.ring_size * 2,
            comp: c.ring_size * 2,
            rx: c.ring_size,
            tx: c.ring_size,
        };
        let mut sockets = Vec::with_capacity(usize::from(c.queues));
        let mut zero_copy = false;
        for q in 0..u32::from(c.queues) {
            let fd = sys::xsk_socket().map_err(|e| sys_error("socket(AF_XDP)", e))?;
            if q == 0 {
                sys::register_umem(&fd, &area, c.frame_size).map_err(|errno| match errno {
                    libc::EPERM | libc::EACCES => AfXdpError::NotPermitted,
                    _ => AfXdpError::UmemAlloc { bytes, errno },
                })?;
            }
            let rings = sys::rings(&fd, sizes).map_err(|(op, e)| sys_error(op, e))?;
            if q == 0 {
                let wake = sys::XDP_USE_NEED_WAKEUP;
                let zc = || sys::bind(&fd, ifindex, q, wake | sys::XDP_ZEROCOPY, None);
                let copy = || sys::bind(&fd, ifindex, q, wake | sys::XDP_COPY, None);
                match c.zero_copy {
                    ZeroCopy::On => zc().map_err(|errno| AfXdpError::NoZeroCopy { errno })?,
                    ZeroCopy::Off => copy().map_err(bind_error)?,
                    ZeroCopy::Auto => {
                        if zc().is_err() {
                            copy().map_err(bind_error)?;
                        }
                    }
                }
                zero_copy = sys::is_zerocopy(&fd);
            } else {
                let first: &(OwnedFd, sys::Rings) = &sockets[0];
                sys::bind(&fd, ifindex, q, 0, Some(first.0.as_raw_fd())).map_err(bind_error)?;
            }
            sys::xskmap_set(&map, q, fd.as_raw_fd())
                .map_err(|e| sys_error("BPF_MAP_UPDATE_ELEM", e))?;
            sockets.push((fd, rings));
        }

        let attachment = Arc::new(Attachment {
            _link: link,
            _prog: prog,
            _map: map,
        });

        let mac = EthernetAddress(mac);
        let mut devices = Vec::with_capacity(sockets.len());
        for (q, (fd, rings)) in sockets.into_iter().enumerate() {
            let frames = Arc::new(QueueFrames::new(
                Arc::clone(&area),
                q as u32 * c.frames,
                c.frames,
                c.frame_size,
            ));
            let mut dev = AfXdpDevice {
                caps: DeviceCaps {
                    mac,
                    mtu,
                    headroom: DEFAULT_HEADROOM,
                    checksum: ChecksumCaps::SOFTWARE,
                    queue: q as u16,
                    queues: c.queues,
                    rss: rss.clone(),
                },
                free: (0..c.frames).rev().collect(),
                q: frames,
                rings,
                fd,
                zero_copy,
                reserve: c.ring_size as usize,
                stats: AfXdpStats::default(),
                _attachment: Arc::clone(&attachment),
            };
            dev.refill();
            devices.push(dev);
        }
        Ok(AfXdpPort {
            devices,
            info: AfXdpInfo {
                iface: c.iface.clone(),
                ifindex,
                native,
                zero_copy,
                queues: c.queues,
                mac,
                mtu,
                umem_bytes: bytes,
            },
        })
    }
}

fn bind_error(errno: i32) -> AfXdpError {
    match errno {
        libc::EBUSY => AfXdpError::Sys {
            op: "bind(AF_XDP): the queue already has a socket",
            errno,
        },
        e => sys_error("bind(AF_XDP)", e),
    }
}

/// Counters of one AF_XDP queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AfXdpStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames put on the TX ring.
    pub tx_frames: u64,
    /// Frames whose bytes were gathered or copied into a frame of their
    /// own before transmission (attached payloads, heap copies).
    pub tx_gathered: u64,
    /// Frames dropped at transmission: no free frame to gather into, or
    /// too long for a frame.
    pub tx_dropped: u64,
    /// RX descriptors naming no frame of this queue (dropped).
    pub rx_invalid: u64,
    /// Kicks of the TX ring (`sendto`).
    pub tx_kicks: u64,
    /// Kicks that failed with an error other than "try again".
    pub tx_kick_errors: u64,
}

/// One queue of an AF_XDP port, owned by one worker.
pub struct AfXdpDevice {
    caps: DeviceCaps,
    q: Arc<QueueFrames>,
    /// Frames of this queue no one holds.
    free: Vec<u32>,
    rings: sys::Rings,
    fd: OwnedFd,
    zero_copy: bool,
    /// Free frames kept back from the fill ring for transmission.
    reserve: usize,
    stats: AfXdpStats,
    _attachment: Arc<Attachment>,
}

impl core::fmt::Debug for AfXdpDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AfXdpDevice")
            .field("queue", &self.caps.queue)
            .field("free", &self.free.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl AfXdpDevice {
    /// Counters.
    pub fn stats(&self) -> AfXdpStats {
        self.stats
    }

    /// The kernel's counters for this queue's socket.
    pub fn kernel_stats(&self) -> Option<XskKernelStats> {
        sys::statistics(&self.fd).ok()
    }

    /// Whether the socket runs in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Frames of this queue that are free right now.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Waits until a frame can be received or `timeout_ms` passes.
    pub fn wait_readable(&self, timeout_ms: i32) -> bool {
        sys::wait_readable(self.fd.as_raw_fd(), timeout_ms)
    }

    /// Frees what the completion ring reports sent.
    fn reap_completions(&mut self) {
        let n = self.rings.comp.ready();
        if n == 0 {
            return;
        }
        for _ in 0..n {
            let addr = self.rings.comp.pop();
            if let Some((idx, _)) = self.q.locate(addr) {
                if self.q.release(idx) {
                    self.free.push(idx);
                }
            }
        }
        self.rings.comp.release();
    }

    /// Tops the fill ring up from the free frames, keeping `reserve` back.
    fn refill(&mut self) {
        if self.free.len() <= self.reserve {
            self.q.take_returns(&mut self.free);
        }
        let spare = self.free.len().saturating_sub(self.reserve);
        let room = self.rings.fill.free(64) as usize;
        let n = spare.min(room);
        if n == 0 {
            return;
        }
        for _ in 0..n {
            let Some(idx) = self.free.pop() else { break };
            self.rings.fill.push(self.q.addr(idx, 0));
        }
        self.rings.fill.submit();
        if self.rings.fill.need_wakeup() {
            sys::kick_rx(self.fd.as_raw_fd());
        }
    }

    /// A free frame, from the free list, the return stack, or the
    /// completion ring.
    fn take_frame(&mut self) -> Option<u32> {
        if let Some(i) = self.free.pop() {
            return Some(i);
        }
        if self.q.take_returns(&mut self.free) == 0 {
            self.reap_completions();
        }
        self.free.pop()
    }

    /// A frame holding `buf`'s whole frame (own bytes and attached
    /// payload), as a TX descriptor names it: `buf` itself when it already
    /// is one, its own frame with the payload appended when there is room,
    /// or a copy in a fresh frame.
    fn flatten(&mut self, mut buf: XdpBuf) -> Option<XdpBuf> {
        if buf.frame_of(&self.q).is_some() {
            return Some(buf);
        }
        self.stats.tx_gathered += 1;
        if buf.gather_in_place(&self.q) {
            return Some(buf);
        }
        let total = buf.frame_len();
        let start = DEFAULT_HEADROOM as u32;
        if total > self.q.frame_size as usize - DEFAULT_HEADROOM {
            return None;
        }
        let idx = self.take_frame()?;
        let mut out = XdpBuf::from_frame(&self.q, idx, start, 0);
        let room = out.append(total).ok()?;
        let own = buf.len();
        room[..own].copy_from_slice(buf.as_slice());
        room[own..].copy_from_slice(buf.attached());
        drop(buf);
        Some(out)
    }

    /// Asks the kernel to send what is on the TX ring: copy mode sends
    /// only inside `sendto`, a limited batch per call.
    fn kick(&mut self) {
        if self.zero_copy && !self.rings.tx.need_wakeup() {
            return;
        }
        let mut before = self.rings.tx.in_flight();
        let mut rounds = 0;
        while before > 0 && rounds < 64 {
            rounds += 1;
            self.stats.tx_kicks += 1;
            match sys::kick_tx(self.fd.as_raw_fd()) {
                Ok(()) => {}
                Err(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => {}
                Err(_) => {
                    self.stats.tx_kick_errors += 1;
                    break;
                }
            }
            let after = self.rings.tx.in_flight();
            if after >= before || self.zero_copy {
                break;
            }
            before = after;
        }
    }
}

impl Device for AfXdpDevice {
    type Buf = XdpBuf;

    fn caps(&self) -> &DeviceCaps {
        &self.caps
    }

    fn rx_burst(&mut self, _now: Instant, out: &mut Vec<XdpBuf>, max: usize) -> usize {
        let n = (self.rings.rx.ready() as usize).min(max);
        let mut got = 0;
        for _ in 0..n {
            let d = self.rings.rx.pop();
            match self.q.locate(d.addr) {
                Some((idx, off)) if off as usize + d.len as usize <= self.q.frame_size as usize => {
                    out.push(XdpBuf::from_frame(&self.q, idx, off, d.len));
                    got += 1;
                }
                _ => self.stats.rx_invalid += 1,
            }
        }
        if n > 0 {
            self.rings.rx.release();
            self.stats.rx_frames += got as u64;
        }
        self.refill();
        got
    }

    fn tx_burst(&mut self, _now: Instant, frames: &mut Vec<XdpBuf>) -> usize {
        self.reap_completions();
        let room = self.rings.tx.free(frames.len() as u32) as usize;
        let take = room.min(frames.len());
        let mut queued = 0;
        for buf in frames.drain(..take) {
            let Some(buf) = self.flatten(buf) else {
                self.stats.tx_dropped += 1;
                continue;
            };
            let Some((idx, start, len)) = buf.frame_of(&self.q) else {
                self.stats.tx_dropped += 1;
                continue;
            };
            self.rings.tx.push(sys::XdpDesc {
                addr: self.q.addr(idx, start),
                len,
                options: 0,
            });
            buf.into_ring_ref();
            queued += 1;
        }
        if queued > 0 {
            self.rings.tx.submit();
            self.stats.tx_frames += queued;
        }
        if self.rings.tx.in_flight() > 0 {
            self.kick();
        }
        take
    }

    fn alloc_tx(&mut self) -> Option<XdpBuf> {
        let idx = self.take_frame()?;
        Some(XdpBuf::from_frame(&self.q, idx, DEFAULT_HEADROOM as u32, 0))
    }

    fn recycle(&mut self, buf: XdpBuf) {
        match buf.into_free_frame(&self.q) {
            Ok(Some(idx)) => self.free.push(idx),
            Ok(None) => {}
            Err(other) => drop(other),
        }
    }

    fn buffers_in_use(&self) -> Option<usize> {
        Some(self.q.frames as usize - self.free.len())
    }

    /// This queue's counters and its socket's kernel counters (`xsk_*`).
    fn counters(&self, out: &mut Vec<(String, u64)>) {
        let s = self.stats;
        for (k, v) in [
            ("rx_frames", s.rx_frames),
            ("tx_frames", s.tx_frames),
            ("tx_gathered", s.tx_gathered),
            ("tx_dropped", s.tx_dropped),
            ("rx_invalid", s.rx_invalid),
            ("tx_kicks", s.tx_kicks),
            ("tx_kick_errors", s.tx_kick_errors),
        ] {
            out.push((k.to_owned(), v));
        }
        if let Some(k) = self.kernel_stats() {
            for (n, v) in [
                ("xsk_rx_dropped", k.rx_dropped),
                ("xsk_rx_invalid_descs", k.rx_invalid_descs),
                ("xsk_tx_invalid_descs", k.tx_invalid_descs),
                ("xsk_rx_ring_full", k.rx_ring_full),
                ("xsk_rx_fill_ring_empty_descs", k.rx_fill_ring_empty_descs),
                ("xsk_tx_ring_empty_descs", k.tx_ring_empty_descs),
            ] {
                out.push((n.to_owned(), v));
            }
        }
    }
}
