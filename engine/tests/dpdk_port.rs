//! The DPDK port on DPDK's virtual devices (cargo feature `dpdk`; root).
//!
//! The EAL starts once per process, so every test runs its body in a
//! process of its own: the test re-runs this binary on itself, filtered to
//! that one test, whichever runner started it (`cargo nextest` gives each
//! test a process already; `cargo test` runs them as threads of one).
//!
//! EAL arguments run without hugepages (`--no-huge -m 512 --no-shconf
//! --no-pci`). Devices: `net_ring` (a loopback: what a queue sends, the
//! same queue receives; mbuf chains come back as they were sent),
//! `net_null` (frees what it sends at once; reports RSS), and `net_tap` in
//! a network namespace the test process makes for itself (checksum
//! offloads, with the kernel on the other side of the TAP).

#[path = "../examples/apps/common.rs"]
mod common;
#[path = "../examples/apps/echo.rs"]
mod echo;

use std::io::{Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use wirespeed::buf::{cow_copies, PacketBuf};
use wirespeed::net::rss::SYMMETRIC_KEY;
use wirespeed::net::{Interface, InterfaceConfig};
use wirespeed::port::dpdk::{DpdkConfig, DpdkDevice, DpdkError, DpdkPort, Mbuf};
use wirespeed::port::Device;
use wirespeed::rt::{random_secret, CrossCore, Worker, WorkerConfig};
use wirespeed::tcp::TcpStack;
use wirespeed::wire::Checksum;
use wirespeed::{Duration, Instant};

const EAL: &[&str] = &[
    "--no-huge",
    "-m",
    "512",
    "--no-shconf",
    "--no-pci",
    "--log-level=warning",
];

const CHILD: &str = "WIRESPEED_DPDK_TEST_CHILD";

/// Runs `body` in a fresh process of this test binary (one EAL each);
/// `name` is the test's own name. Skips (or, with
/// `WIRESPEED_REQUIRE_ROOT_TESTS`, fails) when not root.
fn in_own_process(name: &str, body: fn()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        body();
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("WIRESPEED_REQUIRE_ROOT_TESTS").is_none(),
            "the DPDK tests need root, and WIRESPEED_REQUIRE_ROOT_TESTS is set"
        );
        eprintln!("skipped: the DPDK tests need root");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the test binary");
    let pid = child.id();
    let out = child.wait_with_output().expect("the test process");
    // The EAL's runtime directory of the child's own file prefix.
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", eal_prefix(pid)));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "{name} failed in its process");
    assert!(
        text.contains("1 passed"),
        "{name} did not run in its process:\n{text}"
    );
}

/// The EAL file prefix of the test process `pid`: each test process has
/// its own runtime directory, removed by its parent.
fn eal_prefix(pid: u32) -> String {
    format!("wsdp{pid}")
}

fn config(vdevs: &[&str], extra: &str) -> DpdkConfig {
    let mut text = EAL.join(" ");
    text.push_str(&format!(
        " --file-prefix {}",
        eal_prefix(std::process::id())
    ));
    for v in vdevs {
        text.push_str(&format!(" --vdev={v}"));
    }
    DpdkConfig::parse(&format!("{text}{extra}")).expect("configuration")
}

fn now() -> Instant {
    Instant::ZERO
}

/// A frame of `len` bytes: Ethernet header (an experimental EtherType, so
/// no stack takes it for its own) and a numbered pattern.
fn frame(dev: &mut DpdkDevice, seq: u8, len: usize) -> Mbuf {
    let mut b = dev.alloc_tx().expect("an mbuf");
    let bytes = b.append(len).unwrap();
    bytes[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    bytes[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    bytes[12..14].copy_from_slice(&[0x88, 0xb5]);
    for (i, x) in bytes[14..].iter_mut().enumerate() {
        *x = seq.wrapping_add(i as u8);
    }
    b
}

/// Receives until `n` frames arrived or many polls found nothing.
fn receive(dev: &mut DpdkDevice, n: usize) -> Vec<Mbuf> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        dev.rx_burst(now(), &mut out, 32);
        if out.len() >= n {
            break;
        }
        std::thread::yield_now();
    }
    out
}

#[test]
fn frames_go_round_a_ring_loopback() {
    in_own_process("frames_go_round_a_ring_loopback", || {
        let mut port = DpdkPort::open(&config(&["net_ring0"], "")).unwrap();
        let line = port.info.to_string();
        assert!(line.contains("driver net_ring"), "{line}");
        assert!(line.contains("no RSS: one queue"), "{line}");
        let dev = &mut port.devices[0];
        let caps = dev.caps().clone();
        assert_eq!((caps.queue, caps.queues, caps.rss), (0, 1, None));
        assert_eq!(caps.headroom, wirespeed::buf::DEFAULT_HEADROOM);
        assert_eq!(caps.mtu, 1500);
        // net_ring offers no checksum offload: software does them all.
        assert_eq!(caps.checksum, wirespeed::wire::ChecksumCaps::SOFTWARE);

        let sent: Vec<Vec<u8>> = (0..40u8)
            .map(|i| frame(dev, i, 60 + usize::from(i) * 30).as_slice().to_vec())
            .collect();
        let mut frames: Vec<Mbuf> = sent
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let mut b = dev.alloc_tx().unwrap();
                b.append(bytes.len()).unwrap().copy_from_slice(bytes);
                assert_eq!(b.headroom(), 128, "frame {i}");
                b
            })
            .collect();
        assert_eq!(dev.tx_burst(now(), &mut frames), 40);
        assert!(frames.is_empty());
        let got = receive(dev, 40);
        let got: Vec<Vec<u8>> = got.iter().map(|b| b.as_slice().to_vec()).collect();
        assert_eq!(got, sent);
        let s = dev.stats();
        assert_eq!((s.tx_frames, s.rx_frames), (40, 40));
        assert_eq!((s.tx_copied, s.tx_chained, s.rx_copied), (0, 0, 0));
        let p = dev.port_stats().expect("port counters");
        assert_eq!((p.tx_packets, p.rx_packets), (40, 40));
        assert!(!dev.xstats().is_empty());

        // A received frame is sent back as it is (the stack's in-place
        // replies): its own mbuf goes to the PMD, nothing is copied.
        let f = frame(dev, 7, 64);
        let mut back = receive_after_send(dev, f);
        let before = cow_copies();
        back.as_mut_slice()[0] = 0x04;
        assert_eq!(cow_copies(), before, "a received frame is unique");
        let bytes = back.as_slice().to_vec();
        let mut v = vec![back];
        assert_eq!(dev.tx_burst(now(), &mut v), 1);
        assert_eq!(receive(dev, 1)[0].as_slice(), &bytes[..]);
        assert_eq!(dev.stats().tx_copied, 0);
    });
}

fn receive_after_send(dev: &mut DpdkDevice, f: Mbuf) -> Mbuf {
    let mut v = vec![f];
    assert_eq!(dev.tx_burst(now(), &mut v), 1);
    receive(dev, 1).pop().expect("the frame back")
}

#[test]
fn a_shared_payload_is_sent_as_a_chain_without_a_copy() {
    in_own_process("a_shared_payload_is_sent_as_a_chain_without_a_copy", || {
        // Port 0 loops back (to see the bytes), port 1 frees what it sends
        // (to see the references go).
        let c = config(&["net_ring0", "net_null0"], "");
        let mut ring = DpdkPort::open(&c).unwrap();
        let mut null = DpdkPort::open(&DpdkConfig { port: 1, ..c }).unwrap();
        assert!(ring.info.multi_seg, "{}", ring.info);
        assert!(!null.info.multi_seg, "{}", null.info);
        let before = cow_copies();

        for (dev, loops) in [(&mut ring.devices[0], true), (&mut null.devices[0], false)] {
            let mut payload = dev.alloc_tx().unwrap();
            payload.append(1000).unwrap().fill(0xab);
            // The retransmit queue's handle: same bytes, its own window.
            let mut kept = payload.share();
            assert_eq!(kept.refcnt(), Some(2));
            payload.advance(100).unwrap();
            payload.truncate(500);
            let mut head = frame(dev, 1, 54);
            head.attach(payload).unwrap();
            assert_eq!(head.frame_len(), 554);
            let expect = [head.as_slice(), head.attached()].concat();

            let mut v = vec![head];
            assert_eq!(dev.tx_burst(now(), &mut v), 1);
            let s = dev.stats();
            if loops {
                assert_eq!((s.tx_chained, s.tx_copied), (1, 0), "{s:?}");
                // In flight: the indirect segment holds a reference.
                assert_eq!(kept.refcnt(), Some(2));
                let got = receive(dev, 1);
                assert_eq!(got[0].as_slice(), &expect[..]);
                assert_eq!(
                    dev.stats().rx_copied,
                    1,
                    "the chain is made one mbuf on receive"
                );
            } else {
                // net_null takes no chains: the payload is copied behind
                // the header, and the copy counted.
                assert_eq!((s.tx_chained, s.tx_copied), (0, 1), "{s:?}");
            }
            // The chain is freed (or the payload was copied): only the
            // kept handle holds the payload now, and writing to it copies
            // nothing.
            assert_eq!(kept.refcnt(), Some(1));
            assert!(!kept.is_shared());
            kept.as_mut_slice()[0] = 1;
        }
        assert_eq!(cow_copies(), before, "no copy on write anywhere");

        // A frame whose own mbuf is shared goes out through an indirect
        // mbuf; the sharer keeps its bytes untouched.
        let dev = &mut null.devices[0];
        let f = frame(dev, 3, 80);
        let keep = f.share();
        let mut v = vec![f];
        assert_eq!(dev.tx_burst(now(), &mut v), 1);
        assert_eq!(keep.refcnt(), Some(1));
        assert_eq!(keep.as_slice()[14], 3);
        assert_eq!(cow_copies(), before);
        assert_eq!(dev.stats().tx_copied, 1, "only the gathered payload above");

        // A write through a shared handle copies (and counts) first.
        let mut a = frame(dev, 4, 80);
        let b = a.share();
        a.as_mut_slice()[20] = 0xee;
        assert_eq!(cow_copies(), before + 1);
        assert_ne!(a.as_slice()[20], b.as_slice()[20]);
        assert_eq!((a.refcnt(), b.refcnt()), (Some(1), Some(1)));
    });
}

#[test]
fn mempool_exhaustion_returns_none_and_is_counted() {
    in_own_process("mempool_exhaustion_returns_none_and_is_counted", || {
        let mut port = DpdkPort::open(&config(&["net_ring0"], ";mbufs=64")).unwrap();
        let dev = &mut port.devices[0];
        let mut held = Vec::new();
        while let Some(b) = dev.alloc_tx() {
            held.push(b);
            assert!(held.len() <= 64, "more mbufs than the pool holds");
        }
        assert_eq!(held.len(), 64);
        assert_eq!(dev.stats().alloc_failures, 1);
        assert!(dev.alloc_tx().is_none());
        assert_eq!(dev.stats().alloc_failures, 2);
        assert_eq!(dev.free_mbufs(), 0);
        assert_eq!(dev.buffers_in_use(), Some(64));

        // With the pool empty, a write through a shared handle still
        // works (its copy goes to the heap), and such a frame is dropped
        // and counted at transmission, not a crash.
        let mut a = held.pop().unwrap();
        a.append(60).unwrap().fill(9);
        let b = a.share();
        a.as_mut_slice()[0] = 1;
        assert_eq!(a.refcnt(), None, "a heap copy");
        let mut v = vec![a];
        assert_eq!(dev.tx_burst(now(), &mut v), 1);
        assert!(v.is_empty());
        assert_eq!(dev.stats().tx_dropped, 1);
        drop(b);
        // One mbuf back in the pool: allocation works again, and the heap
        // copy of a frame goes out in it.
        assert_eq!(dev.free_mbufs(), 1);
        let mut c = dev.alloc_tx().unwrap();
        c.append(60).unwrap().fill(5);
        let d = c.share();
        c.as_mut_slice()[0] = 1;
        drop(d);
        held.clear();
        let mut v = vec![c];
        assert_eq!(dev.tx_burst(now(), &mut v), 1);
        assert_eq!(dev.stats().tx_copied, 1);
        let got = receive(dev, 1);
        assert_eq!(got[0].as_slice()[..2], [1, 5]);
    });
}

#[test]
fn an_mbuf_outlives_its_port() {
    in_own_process("an_mbuf_outlives_its_port", || {
        let mut port = DpdkPort::open(&config(&["net_ring0"], "")).unwrap();
        let mut kept = port.devices[0].alloc_tx().unwrap();
        kept.append(3).unwrap().copy_from_slice(b"abc");
        let copy = kept.share();
        drop(port);
        // The port is closed; its pool stays while one of its mbufs does.
        assert_eq!(kept.as_slice(), b"abc");
        drop(copy);
        kept.as_mut_slice()[0] = b'x';
        assert_eq!(kept.as_slice(), b"xbc");
        drop(kept);
        // A closed virtual device's port does not come back.
        let err = DpdkPort::open(&config(&["net_ring0"], "")).unwrap_err();
        assert!(
            matches!(err, DpdkError::NoDevice | DpdkError::PortOutOfRange { .. }),
            "{err:?}"
        );
    });
}

#[test]
fn bad_setups_give_errors_that_say_why() {
    in_own_process("bad_setups_give_errors_that_say_why", || {
        // An option the EAL does not know: it refuses, and the process
        // goes on (and can start the EAL properly afterwards).
        let bad = DpdkConfig::parse("--no-huge --no-pci --no-such-option").unwrap();
        let err = DpdkPort::open(&bad).unwrap_err();
        assert_eq!(
            err,
            DpdkError::EalInit {
                errno: libc::EINVAL
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("EAL initialisation failed: Invalid argument"),
            "{text}"
        );
        // The EAL's help would end the process: refused before it runs.
        let help = DpdkConfig::parse("--no-huge --help").unwrap();
        assert_eq!(DpdkPort::open(&help).unwrap_err(), DpdkError::BadEalArgs);

        let good = config(&["net_ring0"], "");
        let err = DpdkPort::open(&DpdkConfig {
            queues: 17,
            ..good.clone()
        })
        .unwrap_err();
        assert_eq!(err, DpdkError::TooManyQueues { asked: 17, max: 16 });
        assert!(err.to_string().contains("accepted: 1 to 16"), "{err}");
        let err = DpdkPort::open(&DpdkConfig {
            queues: 2,
            ..good.clone()
        })
        .unwrap_err();
        assert_eq!(err, DpdkError::NoRss { queues: 2 });
        assert!(err.to_string().contains("runs one queue"), "{err}");
        let err = DpdkPort::open(&DpdkConfig {
            port: 3,
            ..good.clone()
        })
        .unwrap_err();
        assert_eq!(
            err,
            DpdkError::PortOutOfRange {
                port: 3,
                available: 1
            }
        );
        let err = DpdkPort::open(&DpdkConfig {
            mbufs_per_queue: 1,
            ..good.clone()
        })
        .unwrap_err();
        assert_eq!(err, DpdkError::BadConfig);

        // Refused setups leave the port usable.
        let port = DpdkPort::open(&good).unwrap();
        assert_eq!(
            DpdkPort::open(&good).unwrap_err(),
            DpdkError::PortInUse { port: 0 }
        );
        // One EAL per process: other arguments are refused.
        let other = config(&["net_ring1"], "");
        let err = DpdkPort::open(&other).unwrap_err();
        assert_eq!(err, DpdkError::EalArgsDiffer);
        assert!(err.to_string().contains("once per process"), "{err}");
        drop(port);
    });
}

#[test]
fn no_device_says_where_to_look() {
    in_own_process("no_device_says_where_to_look", || {
        let err = DpdkPort::open(&config(&[], "")).unwrap_err();
        assert_eq!(err, DpdkError::NoDevice);
        let text = err.to_string();
        assert!(
            text.contains("--vdev") && text.contains("--no-pci"),
            "{text}"
        );
    });
}

#[test]
fn rss_key_and_table_are_read_back_from_the_device() {
    in_own_process("rss_key_and_table_are_read_back_from_the_device", || {
        // net_null reports RSS (it keeps a key and a table, and hashes
        // nothing): enough to see them set and read back.
        let port = DpdkPort::open(&config(&["net_null0"], ";queues=2")).unwrap();
        assert_eq!(port.devices.len(), 2);
        let rss = port.info.rss.clone().expect("RSS in force");
        assert_eq!(rss.key, SYMMETRIC_KEY);
        assert!(!rss.reta.is_empty());
        assert!(rss.reta.iter().all(|&q| q < 2));
        assert!(rss.reta.contains(&0) && rss.reta.contains(&1));
        for (i, d) in port.devices.iter().enumerate() {
            assert_eq!((d.caps().queue, d.caps().queues), (i as u16, 2));
            assert_eq!(d.caps().rss.as_ref(), Some(&rss));
        }
        let line = port.info.to_string();
        assert!(line.contains("2 queue(s), RSS (key 40 bytes"), "{line}");
    });
}

/// An AF_PACKET socket on `iface`: the kernel's view of the TAP.
struct Raw {
    fd: i32,
    ifindex: i32,
}

impl Raw {
    fn open(iface: &str) -> Raw {
        let name = std::ffi::CString::new(iface).unwrap();
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        assert!(ifindex > 0, "no interface {iface}");
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket creation.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
        assert!(fd >= 0, "AF_PACKET socket");
        // SAFETY: sockaddr_ll is plain bytes.
        let mut sa: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = proto;
        sa.sll_ifindex = ifindex;
        // SAFETY: `sa` is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd,
                (&sa as *const libc::sockaddr_ll).cast(),
                core::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind AF_PACKET");
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: `tv` is a valid timeval of the size passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                core::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Raw { fd, ifindex }
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: sockaddr_ll is plain bytes.
        let mut sa: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = self.ifindex;
        sa.sll_halen = 6;
        // SAFETY: `frame` and `sa` are valid for the sizes passed.
        let n = unsafe {
            libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                core::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(n, frame.len() as isize, "AF_PACKET send");
    }

    /// The next frame the kernel sees with `ether_dst`, within a few tries.
    fn recv_to(&self, ether_dst: [u8; 6]) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        for _ in 0..50 {
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 && buf[..6] == ether_dst {
                return Some(buf[..n as usize].to_vec());
            }
        }
        None
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours.
        unsafe { libc::close(self.fd) };
    }
}

const TAP_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xd0, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xd0, 0x02];
const ENGINE_IP: [u8; 4] = [198, 18, 7, 2];
const PEER_IP: [u8; 4] = [198, 18, 7, 1];

/// An Ethernet + IPv4 + TCP frame with a 16-byte payload, checksums as the
/// stack writes them for `caps` (zero IPv4 sum and the pseudo-header sum
/// in TCP where the NIC computes).
fn tcp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    offload: bool,
) -> Vec<u8> {
    use wirespeed::wire::checksum;
    let mut f = vec![0u8; 14 + 20 + 20 + 16];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&56u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    if !offload {
        let s = checksum::finish(checksum::sum(ip));
        ip[10..12].copy_from_slice(&s.to_be_bytes());
    }
    let tcp = &mut f[34..];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&7u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    for (i, b) in tcp[20..].iter_mut().enumerate() {
        *b = b'a' + i as u8;
    }
    let ph = checksum::pseudo_header(src.into(), dst.into(), 6, 36);
    let sum = if offload {
        ph
    } else {
        checksum::finish(checksum::combine(&[ph, checksum::sum(tcp)]))
    };
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    f
}

fn checksums_verify(f: &[u8]) -> (bool, bool) {
    use wirespeed::wire::checksum;
    let ip = &f[14..34];
    let src: [u8; 4] = ip[12..16].try_into().unwrap();
    let dst: [u8; 4] = ip[16..20].try_into().unwrap();
    let tcp = &f[34..];
    let ph = checksum::pseudo_header(src.into(), dst.into(), 6, tcp.len() as u32);
    (
        checksum::sum(ip) == 0xffff,
        checksum::combine(&[ph, checksum::sum(tcp)]) == 0xffff,
    )
}

#[test]
fn tap_checksum_offloads_on_both_sides() {
    in_own_process("tap_checksum_offloads_on_both_sides", || {
        // A namespace that goes with this process: the TAP is made in it.
        // SAFETY: unshare only changes this thread's namespace; the EAL's
        // threads, started below from this thread, inherit it.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
        let mac = TAP_MAC
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let vdev = format!("net_tap0,iface=wsdtap0,mac={mac}");
        let mut port = DpdkPort::open(&config(&[&vdev], "")).unwrap();
        let caps = port.devices[0].caps().clone();
        assert_eq!(caps.mac.0, TAP_MAC);
        // The TAP PMD offers both checksums both ways: the stack leaves
        // them to it.
        assert_eq!(
            (caps.checksum.ipv4, caps.checksum.tcp),
            (Checksum::None, Checksum::None)
        );
        assert_eq!(caps.checksum.icmpv4, Checksum::Both);
        assert!(
            port.info.to_string().contains("TCP checksum rx+tx"),
            "{}",
            port.info
        );
        let raw = Raw::open("wsdtap0");
        let dev = &mut port.devices[0];

        // Transmit: the stack's offload form goes out with both sums
        // filled in.
        let f = tcp_frame(TAP_MAC, PEER_MAC, ENGINE_IP, PEER_IP, true);
        let mut b = dev.alloc_tx().unwrap();
        b.append(f.len()).unwrap().copy_from_slice(&f);
        let mut v = vec![b];
        assert_eq!(dev.tx_burst(now(), &mut v), 1);
        let seen = raw.recv_to(PEER_MAC).expect("the kernel sees the frame");
        assert_eq!(seen.len(), f.len());
        assert_eq!(checksums_verify(&seen), (true, true), "{seen:02x?}");
        assert_eq!(seen[34 + 20..], f[34 + 20..]);

        // The same with the payload in a chained mbuf.
        let whole = tcp_frame(TAP_MAC, PEER_MAC, ENGINE_IP, PEER_IP, true);
        let mut head = dev.alloc_tx().unwrap();
        head.append(54).unwrap().copy_from_slice(&whole[..54]);
        let mut payload = dev.alloc_tx().unwrap();
        payload.append(16).unwrap().copy_from_slice(&whole[54..]);
        let kept = payload.share();
        head.attach(payload).unwrap();
        let mut v = vec![head];
        let before = cow_copies();
        assert_eq!(dev.tx_burst(now(), &mut v), 1);
        assert_eq!((dev.stats().tx_chained, dev.stats().tx_copied), (1, 0));
        // The TAP PMD wrote the chain out and freed it: the indirect
        // segment's reference is gone.
        assert_eq!(kept.refcnt(), Some(1));
        assert_eq!(cow_copies(), before);
        let seen = raw
            .recv_to(PEER_MAC)
            .expect("the kernel sees the chained frame");
        assert_eq!(checksums_verify(&seen), (true, true), "{seen:02x?}");
        assert_eq!(&seen[54..], kept.as_slice());

        // Receive: a frame with a bad TCP sum is dropped and counted, a
        // good one arrives.
        let good = tcp_frame(PEER_MAC, TAP_MAC, PEER_IP, ENGINE_IP, false);
        let mut bad = good.clone();
        bad[60] ^= 0xff;
        raw.send(&bad);
        raw.send(&good);
        let mut got = Vec::new();
        for _ in 0..200_000 {
            dev.rx_burst(now(), &mut got, 32);
            if got.iter().any(|b| b.as_slice() == &good[..]) {
                break;
            }
            std::thread::yield_now();
        }
        assert!(
            got.iter().any(|b| b.as_slice() == &good[..]),
            "the good frame arrives"
        );
        assert!(
            !got.iter().any(|b| b.as_slice() == &bad[..]),
            "the bad one does not"
        );
        assert_eq!(dev.stats().rx_bad_checksum, 1, "{:?}", dev.stats());
    });
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn linux_talks_tcp_to_the_engine_over_a_dpdk_tap() {
    in_own_process("linux_talks_tcp_to_the_engine_over_a_dpdk_tap", || {
        // SAFETY: as in the test above; the worker thread and `ip`, both
        // started from this thread, share its namespace.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
        let vdev = "net_tap0,iface=wsdtap1,mac=02:00:00:00:d1:02";
        let mut port = DpdkPort::open(&config(&[vdev], "")).unwrap();
        let dev = port.devices.pop().unwrap();
        // The kernel is the peer on the TAP's other side.
        ip(&["addr", "add", "198.18.8.1/24", "dev", "wsdtap1"]);
        ip(&["link", "set", "wsdtap1", "up"]);

        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let engine = std::thread::spawn(move || {
            let caps = dev.caps().clone();
            let now = Instant::now_monotonic();
            let mut ic = InterfaceConfig::new(caps.mac, "198.18.8.2/24".parse().unwrap());
            // The port's offloads for IPv4 too, not only TCP.
            ic.checksum = caps.checksum;
            let iface = Interface::new(ic, now).unwrap();
            let tcp = TcpStack::new(common::server_tcp(), caps.checksum, random_secret(), now);
            let mut w = Worker::new(
                iface,
                dev,
                tcp,
                echo::EchoServer::new(7),
                WorkerConfig::throughput(),
                CrossCore::default(),
            );
            w.run(&flag, Some(now + Duration::from_secs(60)));
            (w.core.host.lp.dev.stats(), w.handler.bytes, cow_copies())
        });

        // Bounded: 4 MiB out and back, on one connection.
        let data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
        let mut conn = std::net::TcpStream::connect_timeout(
            &"198.18.8.2:7".parse().unwrap(),
            std::time::Duration::from_secs(10),
        )
        .expect("connect to the engine");
        conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut writer = conn.try_clone().unwrap();
        let out = data.clone();
        let sender = std::thread::spawn(move || {
            writer.write_all(&out).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let started = std::time::Instant::now();
        let mut back = Vec::with_capacity(data.len());
        conn.read_to_end(&mut back)
            .expect("the echo, then the engine's FIN");
        sender.join().unwrap();
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let (stats, echoed, copies) = engine.join().unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "the echo differs from what was sent");
        assert_eq!(echoed, data.len() as u64);
        // Received payloads went back out as chains on their own mbufs,
        // checksums filled in by the PMD (the kernel accepted every one).
        assert!(stats.tx_chained > 0, "{stats:?}");
        assert_eq!(
            (stats.rx_bad_checksum, stats.tx_dropped),
            (0, 0),
            "{stats:?}"
        );
        assert_eq!(copies, 0, "no copy on write in the worker: {stats:?}");
        eprintln!(
            "4 MiB echoed over the DPDK TAP in {took:?} ({:.0} Mbit/s each way): {stats:?}",
            data.len() as f64 * 8.0 / took.as_secs_f64() / 1e6
        );
    });
}
