//! System calls of the AF_XDP port: `bpf(2)` for the XSKMAP, the XDP
//! program and its link; AF_XDP sockets and their four rings; interface
//! queries. All `unsafe` of the port outside the buffer type lives here.
//!
//! Layouts and constants follow the kernel's UAPI headers
//! (`linux/bpf.h`, `linux/if_xdp.h`, `linux/if_link.h`, `linux/ethtool.h`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

pub(crate) fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

// bpf(2) commands and types.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;

/// `XDP_FLAGS_SKB_MODE`: generic XDP, run on the socket buffer.
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP, run in the driver.
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

// AF_XDP socket options and bind flags.
const SOL_XDP: libc::c_int = 283;
const XDP_MMAP_OFFSETS: libc::c_int = 1;
const XDP_RX_RING: libc::c_int = 2;
const XDP_TX_RING: libc::c_int = 3;
const XDP_UMEM_REG: libc::c_int = 4;
const XDP_UMEM_FILL_RING: libc::c_int = 5;
const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
const XDP_STATISTICS: libc::c_int = 7;
const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;
pub(crate) const XDP_SHARED_UMEM: u16 = 1 << 0;
pub(crate) const XDP_COPY: u16 = 1 << 1;
pub(crate) const XDP_ZEROCOPY: u16 = 1 << 2;
pub(crate) const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
const XDP_RING_NEED_WAKEUP: u32 = 1;
const XDP_PGOFF_RX_RING: libc::off_t = 0;
const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// One RX or TX descriptor (`struct xdp_desc`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct RingOffsets {
    producer: u64,
    consumer: u64,
    desc: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct MmapOffsets {
    rx: RingOffsets,
    tx: RingOffsets,
    fr: RingOffsets,
    cr: RingOffsets,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct UmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SockaddrXdp {
    family: u16,
    flags: u16,
    ifindex: u32,
    queue_id: u32,
    shared_umem_fd: u32,
}

/// Kernel counters of one AF_XDP socket (`struct xdp_statistics`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskKernelStats {
    /// Frames dropped for reasons other than a full RX ring or an empty
    /// fill ring.
    pub rx_dropped: u64,
    /// Invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was found empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was found empty.
    pub tx_ring_empty_descs: u64,
}

/// The `bpf(2)` attribute block: 128 zeroed bytes, fields written at the
/// offsets of `union bpf_attr`.
#[repr(C, align(8))]
struct BpfAttr([u8; 128]);

impl BpfAttr {
    fn new() -> Self {
        BpfAttr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn name(&mut self, off: usize, name: &str) -> &mut Self {
        let n = name.len().min(15);
        self.0[off..off + n].copy_from_slice(&name.as_bytes()[..n]);
        self
    }
}

/// `bpf(cmd, attr)`; returns the new descriptor (or 0) or `errno`.
fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> Result<libc::c_long, i32> {
    // SAFETY: `attr` is a valid, exclusively borrowed 128-byte block that
    // lives through the call; every pointer written into it (instructions,
    // license, key, value) points at memory the caller keeps alive until
    // the call returns. The kernel reads and writes only within `size`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            core::mem::size_of::<BpfAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(rc)
    }
}

/// Wraps a descriptor the kernel just returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful system call that
    // creates a descriptor; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Creates an XSKMAP with `entries` slots (one per queue).
pub(crate) fn create_xskmap(entries: u32) -> Result<OwnedFd, i32> {
    let mut a = BpfAttr::new();
    a.u32(0, BPF_MAP_TYPE_XSKMAP)
        .u32(4, 4)
        .u32(8, 4)
        .u32(12, entries)
        .name(28, "ws_xsks");
    bpf(BPF_MAP_CREATE, &mut a).map(owned)
}

/// Puts socket `xsk` in slot `queue` of the XSKMAP `map`.
pub(crate) fn xskmap_set(map: &OwnedFd, queue: u32, xsk: RawFd) -> Result<(), i32> {
    let key = queue;
    let value = xsk as u32;
    let mut a = BpfAttr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, &key as *const u32 as u64)
        .u64(16, &value as *const u32 as u64)
        .u64(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

/// One eBPF instruction, as the kernel reads it (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The XDP program: redirect every frame to the socket bound to its RX
/// queue, and pass it to the kernel where no socket is bound.
///
/// ```text
/// r2 = *(u32 *)(r1 + 16)        ; xdp_md->rx_queue_index
/// r1 = map_fd ll                ; the XSKMAP
/// r3 = XDP_PASS                 ; bpf_redirect_map's action when the slot is empty
/// call bpf_redirect_map
/// exit
/// ```
/// The low bits of `bpf_redirect_map`'s flags are the return value when
/// the lookup fails (Linux 5.3 and later).
fn program(map_fd: RawFd) -> [Insn; 6] {
    const XDP_PASS: i32 = 2;
    [
        insn(0x61, 2, 1, 16, 0),                     // ldxw r2, [r1 + 16]
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd), // lddw r1, map (low half)
        insn(0, 0, 0, 0, 0),                         // lddw (high half)
        insn(0xb7, 3, 0, 0, XDP_PASS),               // mov64 r3, XDP_PASS
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),  // call bpf_redirect_map
        insn(0x95, 0, 0, 0, 0),                      // exit
    ]
}

/// Loads the redirect program for `map`; on failure returns `errno` and the
/// verifier's log.
pub(crate) fn load_program(map: &OwnedFd) -> Result<OwnedFd, (i32, String)> {
    let insns = program(map.as_raw_fd());
    let license = c"Dual MIT/Apache-2.0";
    let mut log = vec![0u8; 4096];
    let mut a = BpfAttr::new();
    a.u32(0, BPF_PROG_TYPE_XDP)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64)
        .name(48, "ws_xsk_redirect")
        .u32(68, BPF_XDP);
    bpf(BPF_PROG_LOAD, &mut a).map(owned).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        (e, String::from_utf8_lossy(&log[..end]).trim().to_owned())
    })
}

/// Attaches `prog` to interface `ifindex` through a BPF link: the program
/// stays attached exactly as long as the returned descriptor is open, so it
/// is detached when the port is dropped and when the process ends in any
/// way. `flags` picks native or generic mode.
pub(crate) fn attach_link(prog: &OwnedFd, ifindex: u32, flags: u32) -> Result<OwnedFd, i32> {
    let mut a = BpfAttr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, ifindex)
        .u32(8, BPF_XDP)
        .u32(12, flags);
    bpf(BPF_LINK_CREATE, &mut a).map(owned)
}

/// The index of interface `name` in the calling thread's network
/// namespace, or `None` when there is no such interface.
pub(crate) fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is plain data; all zero bytes is a valid value.
    let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes().iter().take(15)) {
        *dst = src as libc::c_char;
    }
    req
}

fn dgram_socket() -> Result<OwnedFd, i32> {
    // SAFETY: plain system call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno());
    }
    Ok(owned(fd.into()))
}

/// The interface's MAC address and MTU.
pub(crate) fn mac_and_mtu(name: &str) -> Result<([u8; 6], usize), i32> {
    let sock = dgram_socket()?;
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFHWADDR fills one `ifreq`; `req` is valid for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(errno());
    }
    // SAFETY: the call succeeded, so the kernel wrote `ifru_hwaddr`.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, &b) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *m = b as u8;
    }
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFMTU fills one `ifreq`; `req` is valid for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(errno());
    }
    // SAFETY: the call succeeded, so the kernel wrote `ifru_mtu`.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok((mac, usize::try_from(mtu).unwrap_or(0)))
}

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

fn ethtool(name: &str, data: *mut libc::c_void) -> Result<(), i32> {
    let sock = dgram_socket()?;
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_data = data.cast();
    // SAFETY: SIOCETHTOOL reads the command at `data` and writes the
    // answer there; the caller passes a valid, exclusively borrowed
    // structure of the size that command expects.
    if unsafe { libc::ioctl(sock.as_raw_fd(), 0x8946, &mut req) } < 0 {
        return Err(errno());
    }
    Ok(())
}

/// How many receive queues the interface has in use: ethtool's channel
/// count, or the `queues/rx-*` entries in sysfs where the driver has no
/// channel operation.
pub(crate) fn rx_queues(name: &str) -> Option<u32> {
    let mut ch = EthtoolChannels {
        cmd: 0x3c, // ETHTOOL_GCHANNELS
        ..Default::default()
    };
    if ethtool(name, (&mut ch as *mut EthtoolChannels).cast()).is_ok() {
        let n = ch.rx_count.max(ch.combined_count);
        if n > 0 {
            return Some(n);
        }
    }
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues")).ok()?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    u32::try_from(n).ok().filter(|&n| n > 0)
}

/// The interface's Toeplitz RSS key and redirection table, if the driver
/// reports them (`ETHTOOL_GRSSH`).
pub(crate) fn rss(name: &str) -> Option<(Vec<u8>, Vec<u16>)> {
    // struct ethtool_rxfh: cmd, rss_context, indir_size, key_size, hfunc,
    // input_xfrm, rsvd8[2], rsvd32, then indir[indir_size] and key[key_size].
    let mut head = [0u32; 6];
    head[0] = 0x46; // ETHTOOL_GRSSH
    ethtool(name, head.as_mut_ptr().cast()).ok()?;
    let (indir, key) = (head[2] as usize, head[3] as usize);
    if indir == 0 || key == 0 || indir > 4096 || key > 256 {
        return None;
    }
    let words = 6 + indir + key.div_ceil(4);
    let mut all = vec![0u32; words];
    all[0] = 0x46;
    all[2] = indir as u32;
    all[3] = key as u32;
    ethtool(name, all.as_mut_ptr().cast()).ok()?;
    // hfunc bit 0: Toeplitz (ETH_RSS_HASH_TOP); 0 means "not reported".
    let hfunc = all[4] & 0xff;
    if hfunc != 0 && hfunc & 1 == 0 {
        return None;
    }
    let reta = all[6..6 + indir].iter().map(|&q| q as u16).collect();
    let bytes: Vec<u8> = all[6 + indir..]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .take(key)
        .collect();
    Some((bytes, reta))
}

/// An anonymous, page-aligned memory region (the UMEM), unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; which thread
// unmaps it does not matter. Access to its bytes is governed by the frame
// reference counts in `umem.rs`.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only exposes the base pointer and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of zeroed anonymous memory.
    pub(crate) fn anonymous(len: usize) -> Result<Mapping, i32> {
        // SAFETY: anonymous private mapping with no address hint: touches
        // no existing memory.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(errno());
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).ok_or(libc::ENOMEM)?,
            len,
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this value created and
        // nobody else unmaps; after this no pointer into it is used (every
        // user holds an `Arc` that keeps this value alive).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A new AF_XDP socket.
pub(crate) fn xsk_socket() -> Result<OwnedFd, i32> {
    // SAFETY: plain system call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno());
    }
    Ok(owned(fd.into()))
}

fn setsockopt<T>(fd: &OwnedFd, opt: libc::c_int, v: &T) -> Result<(), i32> {
    // SAFETY: `v` points at a valid `T` of exactly the length passed, alive
    // through the call; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (v as *const T).cast(),
            core::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

fn getsockopt<T: Default>(fd: &OwnedFd, opt: libc::c_int) -> Result<T, i32> {
    let mut v = T::default();
    let mut len = core::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a valid, exclusively borrowed `T` and `len` its size;
    // the kernel writes at most `len` bytes into it.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (&mut v as *mut T).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(v)
    }
}

/// Registers `area` as the socket's UMEM, in frames of `frame_size`.
pub(crate) fn register_umem(fd: &OwnedFd, area: &Mapping, frame_size: u32) -> Result<(), i32> {
    let reg = UmemReg {
        addr: area.as_ptr() as u64,
        len: area.len() as u64,
        chunk_size: frame_size,
        ..Default::default()
    };
    setsockopt(fd, XDP_UMEM_REG, &reg)
}

/// Sizes of the four rings of one socket (powers of two).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingSizes {
    pub fill: u32,
    pub comp: u32,
    pub rx: u32,
    pub tx: u32,
}

/// The four mapped rings of one socket.
pub(crate) struct Rings {
    pub fill: ProdRing<u64>,
    pub comp: ConsRing<u64>,
    pub rx: ConsRing<XdpDesc>,
    pub tx: ProdRing<XdpDesc>,
}

/// Sizes the rings of `fd` and maps them.
pub(crate) fn rings(fd: &OwnedFd, s: RingSizes) -> Result<Rings, (&'static str, i32)> {
    setsockopt(fd, XDP_UMEM_FILL_RING, &s.fill).map_err(|e| ("XDP_UMEM_FILL_RING", e))?;
    setsockopt(fd, XDP_UMEM_COMPLETION_RING, &s.comp)
        .map_err(|e| ("XDP_UMEM_COMPLETION_RING", e))?;
    setsockopt(fd, XDP_RX_RING, &s.rx).map_err(|e| ("XDP_RX_RING", e))?;
    setsockopt(fd, XDP_TX_RING, &s.tx).map_err(|e| ("XDP_TX_RING", e))?;
    let off: MmapOffsets = getsockopt(fd, XDP_MMAP_OFFSETS).map_err(|e| ("XDP_MMAP_OFFSETS", e))?;
    let map = |o: &RingOffsets, n: u32, entry: usize, pgoff| {
        RawRing::map(fd, o, n, entry, pgoff).map_err(|e| ("mmap ring", e))
    };
    Ok(Rings {
        fill: ProdRing::new(map(&off.fr, s.fill, 8, XDP_UMEM_PGOFF_FILL_RING)?),
        comp: ConsRing::new(map(&off.cr, s.comp, 8, XDP_UMEM_PGOFF_COMPLETION_RING)?),
        rx: ConsRing::new(map(&off.rx, s.rx, 16, XDP_PGOFF_RX_RING)?),
        tx: ProdRing::new(map(&off.tx, s.tx, 16, XDP_PGOFF_TX_RING)?),
    })
}

/// Binds `fd` to queue `queue` of `ifindex`; `shared` is the socket that
/// registered the UMEM when this one shares it.
pub(crate) fn bind(
    fd: &OwnedFd,
    ifindex: u32,
    queue: u32,
    flags: u16,
    shared: Option<RawFd>,
) -> Result<(), i32> {
    let sa = SockaddrXdp {
        family: libc::AF_XDP as u16,
        flags: flags | shared.map_or(0, |_| XDP_SHARED_UMEM),
        ifindex,
        queue_id: queue,
        shared_umem_fd: shared.map_or(0, |f| f as u32),
    };
    // SAFETY: `sa` is a valid `sockaddr_xdp` of the length passed, alive
    // through the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const SockaddrXdp).cast(),
            core::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Whether the bound socket runs in zero-copy mode.
pub(crate) fn is_zerocopy(fd: &OwnedFd) -> bool {
    getsockopt::<u32>(fd, XDP_OPTIONS).is_ok_and(|f| f & XDP_OPTIONS_ZEROCOPY != 0)
}

/// The socket's kernel counters.
pub(crate) fn statistics(fd: &OwnedFd) -> Result<XskKernelStats, i32> {
    getsockopt(fd, XDP_STATISTICS)
}

/// Kicks the kernel to process the TX ring (copy mode needs it for every
/// batch; zero-copy drivers when they ask). Transient errors are expected
/// and harmless: the next kick retries.
pub(crate) fn kick_tx(fd: RawFd) -> Result<(), i32> {
    // SAFETY: a zero-length send with no buffer and no address: the kernel
    // reads no user memory.
    let rc = unsafe {
        libc::sendto(
            fd,
            core::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            core::ptr::null(),
            0,
        )
    };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Wakes the driver to use the fill ring again (when it asks).
pub(crate) fn kick_rx(fd: RawFd) {
    // SAFETY: a zero-length receive with no buffer and no address: the
    // kernel writes no user memory.
    unsafe {
        libc::recvfrom(
            fd,
            core::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
}

/// Waits until `fd` is readable or `timeout_ms` passes.
pub(crate) fn wait_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd, exclusively borrowed for the call.
    let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    rc > 0 && p.revents & libc::POLLIN != 0
}

/// A ring shared with the kernel: producer and consumer indices, flags and
/// `size` entries of `entry` bytes, in a mapping of the socket.
struct RawRing {
    map: *mut libc::c_void,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    size: u32,
}

impl RawRing {
    fn map(
        fd: &OwnedFd,
        o: &RingOffsets,
        size: u32,
        entry: usize,
        pgoff: libc::off_t,
    ) -> Result<RawRing, i32> {
        let map_len = o.desc as usize + size as usize * entry;
        // SAFETY: maps the ring the kernel allocated for this socket at the
        // documented page offset; no existing memory is touched.
        let map = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(errno());
        }
        let base = map.cast::<u8>();
        // The kernel's offsets lie inside the mapping just made (`desc` is
        // the largest; the indices and flags are 4-byte aligned u32 words
        // before it): plain address arithmetic, dereferenced only through
        // the accessors below.
        let at = |off: u64| base.wrapping_add(off as usize);
        Ok(RawRing {
            map,
            map_len,
            producer: at(o.producer).cast(),
            consumer: at(o.consumer).cast(),
            flags: at(o.flags).cast(),
            desc: at(o.desc),
            size,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping (unmapped only on drop); the
        // kernel and this process access it only atomically.
        unsafe { &*self.producer }
    }
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }
    fn need_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

impl Drop for RawRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` made; no reference into
        // it outlives `self`.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// A ring this process produces into (fill, TX).
pub(crate) struct ProdRing<T> {
    raw: RawRing,
    /// Our producer index, published on `submit`.
    prod: u32,
    /// The kernel's consumer index as last read.
    cons: u32,
    _t: core::marker::PhantomData<T>,
}

/// A ring the kernel produces into (completion, RX).
pub(crate) struct ConsRing<T> {
    raw: RawRing,
    /// Our consumer index, published on `release`.
    cons: u32,
    /// The kernel's producer index as last read.
    prod: u32,
    _t: core::marker::PhantomData<T>,
}

// SAFETY: a ring is used by one thread at a time (its device's worker);
// the raw pointers point into a mapping the ring owns.
unsafe impl<T> Send for ProdRing<T> {}
// SAFETY: as above.
unsafe impl<T> Send for ConsRing<T> {}

impl<T: Copy> ProdRing<T> {
    fn new(raw: RawRing) -> Self {
        let prod = raw.producer().load(Ordering::Relaxed);
        let cons = raw.consumer().load(Ordering::Acquire);
        ProdRing {
            raw,
            prod,
            cons,
            _t: core::marker::PhantomData,
        }
    }

    /// Free slots, re-reading the kernel's index when fewer than `want`
    /// seem free.
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.raw.size - self.prod.wrapping_sub(self.cons);
        if free >= want {
            return free;
        }
        self.cons = self.raw.consumer().load(Ordering::Acquire);
        self.raw.size - self.prod.wrapping_sub(self.cons)
    }

    /// Writes `v` in the next slot (the caller checked [`free`](Self::free)).
    pub(crate) fn push(&mut self, v: T) {
        let i = (self.prod & (self.raw.size - 1)) as usize;
        let slot = self.raw.desc.cast::<T>().wrapping_add(i);
        // SAFETY: `i < size`, so `slot` lies inside the descriptor array of
        // the mapping (aligned: the kernel aligns the array); the slot is
        // free (the caller checked), so the kernel does not read it until
        // `submit` publishes it.
        unsafe { slot.write(v) };
        self.prod = self.prod.wrapping_add(1);
    }

    /// Publishes the slots written since the last call.
    pub(crate) fn submit(&mut self) {
        self.raw.producer().store(self.prod, Ordering::Release);
    }

    /// Entries the kernel has not consumed yet (re-reads its index).
    pub(crate) fn in_flight(&mut self) -> u32 {
        self.cons = self.raw.consumer().load(Ordering::Acquire);
        self.prod.wrapping_sub(self.cons)
    }

    pub(crate) fn need_wakeup(&self) -> bool {
        self.raw.need_wakeup()
    }
}

impl<T: Copy> ConsRing<T> {
    fn new(raw: RawRing) -> Self {
        let cons = raw.consumer().load(Ordering::Relaxed);
        let prod = raw.producer().load(Ordering::Acquire);
        ConsRing {
            raw,
            cons,
            prod,
            _t: core::marker::PhantomData,
        }
    }

    /// Entries ready, re-reading the kernel's index when none seem ready.
    pub(crate) fn ready(&mut self) -> u32 {
        let n = self.prod.wrapping_sub(self.cons);
        if n > 0 {
            return n;
        }
        self.prod = self.raw.producer().load(Ordering::Acquire);
        self.prod.wrapping_sub(self.cons)
    }

    /// Takes the next entry (the caller checked [`ready`](Self::ready)).
    pub(crate) fn pop(&mut self) -> T {
        let i = (self.cons & (self.raw.size - 1)) as usize;
        let slot = self.raw.desc.cast::<T>().wrapping_add(i);
        // SAFETY: `i < size`, so `slot` lies inside the descriptor array;
        // the kernel published this slot (acquire load of its producer
        // index in `ready`) and does not reuse it until `release`.
        let v = unsafe { slot.read() };
        self.cons = self.cons.wrapping_add(1);
        v
    }

    /// Gives the slots taken since the last call back to the kernel.
    pub(crate) fn release(&mut self) {
        self.raw.consumer().store(self.cons, Ordering::Release);
    }
}
