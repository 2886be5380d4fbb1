//! A Linux TAP device: Ethernet frames to and from the kernel's stack.
//!
//! [`TapDevice::open`] creates a TAP interface (`/dev/net/tun`,
//! `IFF_TAP | IFF_NO_PI`, non-blocking) in the calling thread's network
//! namespace. The kernel's side of the TAP is the Linux peer: frames the
//! engine writes arrive at the kernel as if from a wire, and the kernel's
//! frames come out of `rx_burst`. The `mac` given is the *engine's* address,
//! not the kernel netdev's (the kernel keeps its own random one). The
//! interface vanishes when the device is dropped.
//!
//! Needs `CAP_NET_ADMIN` (root). The kernel side needs no IP address for the
//! engine to work; give it one only when the kernel is meant to be the peer.
//!
//! All `unsafe` of this port lives in this file, one system call per block.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{Device, DeviceCaps};
use crate::buf::{BufAlloc, HeapBuf, HeapPool, PacketBuf, DEFAULT_BUF_SIZE, DEFAULT_HEADROOM};
use crate::time::{Duration, Instant};
use crate::wire::{ChecksumCaps, EthernetAddress};

/// Longest interface name Linux accepts (`IFNAMSIZ - 1`).
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Why a TAP device could not be opened or configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TapError {
    /// The interface name is longer than [`MAX_NAME_LEN`] bytes.
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
    },
    /// The name is empty, `.` or `..`, or holds `/`, `:`, `%`, whitespace
    /// or NUL.
    InvalidName,
    /// The MTU is outside 68..=65517.
    InvalidMtu {
        /// The MTU given.
        mtu: usize,
    },
    /// Not allowed: creating a TAP needs `CAP_NET_ADMIN` (run as root).
    PermissionDenied,
    /// `/dev/net/tun` does not exist (no `tun` module, or not in a container).
    NoTunDevice,
    /// Opening `/dev/net/tun` failed for another reason.
    Open {
        /// The `errno` value.
        errno: i32,
    },
    /// A configuration `ioctl` failed.
    Ioctl {
        /// The request, e.g. `TUNSETIFF`.
        op: &'static str,
        /// The `errno` value.
        errno: i32,
    },
}

impl core::fmt::Display for TapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            TapError::NameTooLong { len } => write!(
                f,
                "TAP interface name is {len} bytes long: at most {MAX_NAME_LEN} allowed"
            ),
            TapError::InvalidName => f.write_str(
                "TAP interface name is invalid: it must be non-empty, not '.' or '..', \
                 and hold no '/', ':', '%', whitespace or NUL",
            ),
            TapError::InvalidMtu { mtu } => {
                write!(f, "TAP MTU {mtu} is out of range: expected 68..=65517")
            }
            TapError::PermissionDenied => {
                f.write_str("permission denied: creating a TAP device needs CAP_NET_ADMIN (root)")
            }
            TapError::NoTunDevice => {
                f.write_str("/dev/net/tun does not exist: load the tun module or expose the device")
            }
            TapError::Open { errno } => write!(
                f,
                "cannot open /dev/net/tun: {}",
                io::Error::from_raw_os_error(errno)
            ),
            TapError::Ioctl { op, errno } => {
                write!(f, "{op} failed: {}", io::Error::from_raw_os_error(errno))
            }
        }
    }
}

impl std::error::Error for TapError {}

/// Counters of a TAP device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Frames read from the kernel.
    pub rx_frames: u64,
    /// Frames written to the kernel.
    pub tx_frames: u64,
    /// Reads that failed with an error other than "try again".
    pub rx_errors: u64,
    /// Frames dropped because their write failed (other than "try again"),
    /// for example while the interface is down.
    pub tx_errors: u64,
}

/// A TAP interface, as one queue pair.
#[derive(Debug)]
pub struct TapDevice {
    fd: OwnedFd,
    name: String,
    caps: DeviceCaps,
    pool: HeapPool,
    /// A receive buffer left over from a read that found nothing.
    spare: Option<HeapBuf>,
    stats: TapStats,
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn check_name(name: &str) -> Result<(), TapError> {
    if name.len() > MAX_NAME_LEN {
        return Err(TapError::NameTooLong { len: name.len() });
    }
    let bad = |c: char| c == '/' || c == ':' || c == '%' || c == '\0' || c.is_whitespace();
    if name.is_empty() || name == "." || name == ".." || name.chars().any(bad) {
        return Err(TapError::InvalidName);
    }
    Ok(())
}

/// An all-zero `ifreq` naming `name` (checked by [`check_name`]).
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is plain data (byte arrays, integers, a sockaddr and a
    // raw pointer in a union): all zero bytes is a valid value of it.
    let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

/// Owns a throwaway `AF_INET` datagram socket for interface ioctls.
fn ioctl_socket() -> Result<OwnedFd, TapError> {
    // SAFETY: plain system call with constant arguments; no memory is passed.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(TapError::Ioctl {
            op: "socket",
            errno: errno(),
        });
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl_error(op: &'static str) -> TapError {
    match errno() {
        libc::EPERM | libc::EACCES => TapError::PermissionDenied,
        errno => TapError::Ioctl { op, errno },
    }
}

impl TapDevice {
    /// Creates TAP interface `name` in the calling thread's network namespace,
    /// sets its MTU to `mtu`, and returns it (down: see [`Self::set_up`]).
    /// `mac` is the engine's address, reported by `caps()`.
    pub fn open(name: &str, mac: EthernetAddress, mtu: usize) -> Result<TapDevice, TapError> {
        check_name(name)?;
        if !(68..=65535 - 18).contains(&mtu) {
            return Err(TapError::InvalidMtu { mtu });
        }
        let path: &CStr = c"/dev/net/tun";
        // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(match errno() {
                libc::ENOENT | libc::ENODEV | libc::ENXIO => TapError::NoTunDevice,
                libc::EPERM | libc::EACCES => TapError::PermissionDenied,
                errno => TapError::Open { errno },
            });
        }
        // SAFETY: `raw` was just returned by open(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let mut req = ifreq(name);
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`; `req` is a valid,
        // exclusively borrowed `ifreq` that lives through the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(ioctl_error("TUNSETIFF"));
        }
        let name: String = req
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8 as char)
            .collect();

        let sock = ioctl_socket()?;
        let mut req = ifreq(&name);
        req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
        // SAFETY: SIOCSIFMTU reads one `ifreq`; `req` is valid for the call.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &mut req) };
        if rc < 0 {
            return Err(ioctl_error("SIOCSIFMTU"));
        }

        let headroom = DEFAULT_HEADROOM;
        let buf_size = DEFAULT_BUF_SIZE.max(headroom + mtu + 18);
        Ok(TapDevice {
            fd,
            name,
            caps: DeviceCaps {
                mac,
                mtu,
                headroom,
                checksum: ChecksumCaps::SOFTWARE,
                queue: 0,
                queues: 1,
                rss: None,
            },
            pool: HeapPool::new(buf_size, headroom, 4096),
            spare: None,
            stats: TapStats::default(),
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file descriptor, for an event loop.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Counters.
    pub fn stats(&self) -> TapStats {
        self.stats
    }

    /// Brings the interface up (`ip link set <name> up`), in the calling
    /// thread's network namespace.
    pub fn set_up(&self) -> Result<(), TapError> {
        let sock = ioctl_socket()?;
        let mut req = ifreq(&self.name);
        // SAFETY: SIOCGIFFLAGS fills one `ifreq`; `req` is valid for the call.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
        if rc < 0 {
            return Err(ioctl_error("SIOCGIFFLAGS"));
        }
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel wrote `ifru_flags`.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads one `ifreq`; `req` is valid for the call.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) };
        if rc < 0 {
            return Err(ioctl_error("SIOCSIFFLAGS"));
        }
        Ok(())
    }

    /// Waits until a frame can be read or `timeout` passes (`None` waits
    /// forever): for an idle worker that would rather sleep than spin.
    /// Returns whether the device is readable.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let ms = match timeout {
            None => -1,
            // Round up so a short timeout does not become a busy poll.
            Some(t) => i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: `pfd` is one valid pollfd, exclusively borrowed for the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc >= 0 {
                return Ok(rc > 0 && pfd.revents & libc::POLLIN != 0);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl AsRawFd for TapDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Device for TapDevice {
    type Buf = HeapBuf;

    fn caps(&self) -> &DeviceCaps {
        &self.caps
    }

    /// Reads until the kernel has nothing more (`EAGAIN`), `max` frames, or
    /// the pool is exhausted.
    fn rx_burst(&mut self, _now: Instant, out: &mut Vec<HeapBuf>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(mut buf) = self.spare.take().or_else(|| self.pool.alloc()) else {
                break;
            };
            let room = buf.tailroom();
            let Ok(space) = buf.append(room) else {
                self.pool.recycle(buf);
                break;
            };
            // SAFETY: `space` is a writable region of exactly `space.len()`
            // bytes, exclusively borrowed for the call.
            let rc =
                unsafe { libc::read(self.fd.as_raw_fd(), space.as_mut_ptr().cast(), space.len()) };
            if rc > 0 {
                buf.truncate(rc as usize);
                out.push(buf);
                self.stats.rx_frames += 1;
                n += 1;
                continue;
            }
            buf.truncate(0);
            self.spare = Some(buf);
            if rc < 0 {
                match errno() {
                    libc::EINTR => continue,
                    libc::EAGAIN => {}
                    _ => self.stats.rx_errors += 1,
                }
            }
            break;
        }
        n
    }

    /// Writes frames in order; stops at `EAGAIN` leaving the rest. A frame
    /// whose write fails otherwise is dropped and counted in `tx_errors`.
    fn tx_burst(&mut self, _now: Instant, frames: &mut Vec<HeapBuf>) -> usize {
        let mut taken = 0;
        while let Some(buf) = frames.get(taken) {
            // A frame's own bytes, then its attached payload: one writev,
            // one frame on the TAP.
            let (head, tail) = (buf.as_slice(), buf.attached());
            let iov = [
                libc::iovec {
                    iov_base: head.as_ptr() as *mut libc::c_void,
                    iov_len: head.len(),
                },
                libc::iovec {
                    iov_base: tail.as_ptr() as *mut libc::c_void,
                    iov_len: tail.len(),
                },
            ];
            let iovcnt = if tail.is_empty() { 1 } else { 2 };
            // SAFETY: each iovec describes a readable region (`head`, `tail`)
            // that lives through the call; writev only reads them.
            let rc = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), iovcnt) };
            if rc >= 0 {
                self.stats.tx_frames += 1;
            } else {
                match errno() {
                    libc::EINTR => continue,
                    libc::EAGAIN => break,
                    _ => self.stats.tx_errors += 1,
                }
            }
            taken += 1;
        }
        for buf in frames.drain(..taken) {
            self.pool.recycle(buf);
        }
        taken
    }

    fn alloc_tx(&mut self) -> Option<HeapBuf> {
        self.pool.alloc()
    }

    fn recycle(&mut self, buf: HeapBuf) {
        self.pool.recycle(buf);
    }

    fn buffers_in_use(&self) -> Option<usize> {
        Some(self.pool.outstanding())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn bad_names_and_mtus_are_refused_before_any_system_call() {
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            TapDevice::open(&long, mac, 1500).unwrap_err(),
            TapError::NameTooLong { len: 16 }
        );
        for name in ["", ".", "..", "a/b", "a b", "tap%d", "a:1", "a\0b"] {
            assert_eq!(
                TapDevice::open(name, mac, 1500).unwrap_err(),
                TapError::InvalidName,
                "{name:?}"
            );
        }
        assert_eq!(
            TapDevice::open("ok", mac, 10).unwrap_err(),
            TapError::InvalidMtu { mtu: 10 }
        );
        assert!(TapError::NameTooLong { len: 16 }
            .to_string()
            .contains("at most 15"));
        assert!(TapError::Ioctl {
            op: "TUNSETIFF",
            errno: libc::EBUSY
        }
        .to_string()
        .starts_with("TUNSETIFF failed: "));
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    const ENGINE_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

    /// An ARP request from 198.18.0.2 (the engine) for 198.18.0.1.
    fn arp_request() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&ENGINE_MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f.extend_from_slice(&ENGINE_MAC);
        f.extend_from_slice(&[198, 18, 0, 2]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[198, 18, 0, 1]);
        f
    }

    fn is_arp_reply_for_engine(f: &[u8]) -> bool {
        f.len() >= 42
            && f[..6] == ENGINE_MAC
            && f[12..14] == [0x08, 0x06]
            && f[20..22] == [0, 2]
            && f[28..32] == [198, 18, 0, 1]
            && f[32..38] == ENGINE_MAC
            && f[38..42] == [198, 18, 0, 2]
    }

    /// Runs `ip args` inside the network namespace of thread `tid`.
    fn ip_in(tid: i32, args: &[&str]) {
        let ns = format!("--net=/proc/{}/task/{tid}/ns/net", std::process::id());
        let status = Command::new("nsenter")
            .arg(&ns)
            .arg("ip")
            .args(args)
            .status()
            .expect("nsenter runs");
        assert!(status.success(), "ip {args:?} in {ns}");
    }

    #[test]
    fn kernel_answers_arp_through_the_tap() {
        if !is_root() {
            assert!(
                std::env::var_os("WIRESPEED_REQUIRE_ROOT_TESTS").is_none(),
                "this test needs root and WIRESPEED_REQUIRE_ROOT_TESTS is set"
            );
            eprintln!("skipped: creating a TAP in a new network namespace needs root");
            return;
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            eprintln!("skipped: /dev/net/tun does not exist here");
            return;
        }
        // A thread of its own: the new namespace is the thread's, and goes
        // away with it (and the TAP with its descriptor).
        let worker = std::thread::spawn(|| {
            // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's
            // network namespace; no memory is passed.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", io::Error::last_os_error());
            let own = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
            let process = std::fs::read_link("/proc/self/ns/net").unwrap();
            assert_ne!(own, process, "must not touch the root namespace");
            // SAFETY: gettid has no preconditions and cannot fail.
            let tid = unsafe { libc::gettid() };

            let mut tap = TapDevice::open("wstap0", EthernetAddress(ENGINE_MAC), 1500).unwrap();
            assert_eq!(tap.name(), "wstap0");
            assert_eq!(tap.caps().mac, EthernetAddress(ENGINE_MAC));
            tap.set_up().unwrap();
            ip_in(tid, &["addr", "add", "198.18.0.1/24", "dev", "wstap0"]);

            let start = std::time::Instant::now();
            let mut next_request = start;
            while start.elapsed() < std::time::Duration::from_secs(5) {
                if std::time::Instant::now() >= next_request {
                    let mut b = tap.alloc_tx().unwrap();
                    let req = arp_request();
                    b.append(req.len()).unwrap().copy_from_slice(&req);
                    let mut v = vec![b];
                    assert_eq!(tap.tx_burst(Instant::ZERO, &mut v), 1);
                    next_request += std::time::Duration::from_millis(500);
                }
                tap.wait_readable(Some(Duration::from_millis(50))).unwrap();
                let mut out = Vec::new();
                tap.rx_burst(Instant::ZERO, &mut out, 32);
                if out.iter().any(|b| is_arp_reply_for_engine(b.as_slice())) {
                    return tap.stats();
                }
                for b in out {
                    tap.recycle(b);
                }
            }
            panic!("no ARP reply from the kernel within 5 s: {:?}", tap.stats());
        });
        let stats = worker.join().unwrap();
        assert!(stats.tx_frames >= 1 && stats.rx_frames >= 1, "{stats:?}");
        assert_eq!((stats.rx_errors, stats.tx_errors), (0, 0));
    }
}
