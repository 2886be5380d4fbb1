//! smoltcp as the independent peer on the in-memory wire: the adapter and
//! the mixed-simulation driver, proved with smoltcp on both ends of TCP
//! (the engine's TCP takes one end once it exists), and ARP/IPv4/ICMP
//! interop between smoltcp and a wirespeed host.

#[path = "support/smol.rs"]
mod smol;

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use smol::{from_smol, to_smol, MixedSim, SmolHostConfig, SmolId, TcpState};
use smoltcp::iface::SocketHandle;
use wirespeed::net::{InterfaceConfig, Ipv4Cidr, NetEvent};
use wirespeed::port::{Impairment, MemPortConfig, PortStats};
use wirespeed::sim::Sim;
use wirespeed::wire::EthernetAddress;
use wirespeed::{Duration, Instant};

const MIB: usize = 1 << 20;
const SERVER_PORT: u16 = 5000;
const CLIENT_PORT: u16 = 49152;

fn mac(i: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, i])
}

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

/// Bytes from a splitmix64 stream: no period a misplaced segment could
/// hide in.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// FNV-1a, 64 bits.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// TCP segments seen on the wire, per sender (before any impairment).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Flags {
    syn: u32,
    fin: u32,
    rst: u32,
    data: u32,
}

type Seen = Arc<Mutex<[Flags; 2]>>;

/// Counts TCP flags per sender (`mac(1)` index 0, `mac(2)` index 1); drops
/// nothing.
fn watch_tcp(sim: &MixedSim) -> Seen {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    sim.wire().set_filter(Some(Box::new(move |f: &[u8]| {
        let who = match f.get(6..12) {
            Some(m) if m == mac(1).0 => 0,
            Some(m) if m == mac(2).0 => 1,
            _ => return false,
        };
        if f.get(12..14) != Some(&[0x08, 0x00][..]) || f.get(23) != Some(&6) {
            return false;
        }
        let ihl = usize::from(f[14] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
        let tcp = 14 + ihl;
        let (Some(&off), Some(&flags)) = (f.get(tcp + 12), f.get(tcp + 13)) else {
            return false;
        };
        let payload = total.saturating_sub(ihl + usize::from(off >> 4) * 4);
        let mut seen = sink.lock().unwrap();
        let s = &mut seen[who];
        s.syn += u32::from(flags & 0x02 != 0);
        s.fin += u32::from(flags & 0x01 != 0);
        s.rst += u32::from(flags & 0x04 != 0);
        s.data += u32::from(payload > 0);
        false
    })));
    seen
}

/// One end's application: sends `out`, closes when all is queued, reads
/// everything until the peer's FIN.
struct End {
    host: SmolId,
    sock: SocketHandle,
    out: Vec<u8>,
    sent: usize,
    /// Close only once the peer has closed (the passive side).
    passive: bool,
    closed: bool,
    got: Vec<u8>,
}

impl End {
    fn new(host: SmolId, sock: SocketHandle, out: Vec<u8>, passive: bool) -> Self {
        End {
            host,
            sock,
            out,
            sent: 0,
            passive,
            closed: false,
            got: Vec::new(),
        }
    }

    fn run(&mut self, sim: &mut MixedSim) {
        let host = sim.smol(self.host);
        while self.sent < self.out.len() {
            let n = host.send(self.sock, &self.out[self.sent..]);
            if n == 0 {
                break;
            }
            self.sent += n;
        }
        // may_send: established (closing in SYN-SENT would abort).
        let peer_closed = host.state(self.sock) == TcpState::CloseWait;
        if self.sent == self.out.len()
            && !self.closed
            && host.tcp(self.sock).may_send()
            && (!self.passive || peer_closed)
        {
            host.close(self.sock);
            self.closed = true;
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = host.recv(self.sock, &mut buf);
            if n == 0 {
                break;
            }
            self.got.extend_from_slice(&buf[..n]);
        }
    }

    /// All sent and received, FINs exchanged and acknowledged.
    fn finished(&self, sim: &mut MixedSim, expect: usize) -> bool {
        let state = sim.smol(self.host).state(self.sock);
        self.got.len() == expect
            && self.closed
            && matches!(state, TcpState::TimeWait | TcpState::Closed)
    }
}

/// What a transfer did.
#[derive(Debug, PartialEq)]
struct Report {
    done_at: Instant,
    steps: u64,
    states: (TcpState, TcpState),
    seen: [Flags; 2],
    ports: (PortStats, PortStats),
}

/// A transfer that did not finish in time.
#[derive(Debug, PartialEq)]
struct Stalled {
    /// Bytes received by A and by B.
    got: (usize, usize),
    states: (TcpState, TcpState),
    /// When each host wanted to run next, at the deadline.
    wakes: (Option<Instant>, Option<Instant>),
    seen: [Flags; 2],
}

/// `len` bytes each way between two smoltcp hosts whose ports both apply
/// `imp`, within `max` virtual time; checks the data and the close.
fn try_transfer(
    seed: u64,
    imp: Impairment,
    port: MemPortConfig,
    len: usize,
    max: Duration,
) -> Result<Report, Stalled> {
    let mut sim = MixedSim::new(seed);
    let seen = watch_tcp(&sim);
    let config = |i: u8, addr: &str| SmolHostConfig {
        port: MemPortConfig {
            impairment: imp,
            ..port.clone()
        },
        ..SmolHostConfig::new(mac(i), cidr(addr))
    };
    let a = sim.add_smol_with(config(1, "198.18.0.1/24")).unwrap();
    let b = sim.add_smol_with(config(2, "198.18.0.2/24")).unwrap();
    let server = sim.smol(b).listen(SERVER_PORT);
    let client = sim.smol(a).connect(
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), SERVER_PORT),
        CLIENT_PORT,
    );
    let mut ea = End::new(a, client, pattern(seed ^ 0xa, len), false);
    let mut eb = End::new(b, server, pattern(seed ^ 0xb, len), true);

    let done_at = sim.run_until(
        |sim| {
            ea.run(sim);
            eb.run(sim);
            ea.finished(sim, len) && eb.finished(sim, len)
        },
        max,
    );
    let states = (sim.smol(a).state(client), sim.smol(b).state(server));
    let Some(done_at) = done_at else {
        let now = sim.now();
        return Err(Stalled {
            got: (ea.got.len(), eb.got.len()),
            states,
            wakes: (sim.smol(a).poll_at(now), sim.smol(b).poll_at(now)),
            seen: *seen.lock().unwrap(),
        });
    };

    // The data: hash, then exact bytes (the hash alone could collide).
    assert_eq!(fnv1a(&ea.got), fnv1a(&eb.out), "B to A corrupted");
    assert_eq!(fnv1a(&eb.got), fnv1a(&ea.out), "A to B corrupted");
    assert!(ea.got == eb.out && eb.got == ea.out);

    // An orderly close: each side sent a FIN, nobody sent a RST, and one
    // side (or both, on a simultaneous close) waits in TIME-WAIT.
    let seen = *seen.lock().unwrap();
    for s in &seen {
        assert!(s.syn >= 1 && s.fin >= 1 && s.rst == 0, "{seen:?}");
    }
    assert!(
        matches!(
            states,
            (TcpState::TimeWait, TcpState::Closed)
                | (TcpState::Closed, TcpState::TimeWait)
                | (TcpState::TimeWait, TcpState::TimeWait)
        ),
        "{states:?}"
    );
    let ports = (
        sim.smol(a).device().mem().stats(),
        sim.smol(b).device().mem().stats(),
    );
    assert_eq!(sim.smol(a).device().oversize(), 0);
    assert_eq!(sim.smol(b).device().oversize(), 0);
    Ok(Report {
        done_at,
        steps: sim.steps(),
        states,
        seen,
        ports,
    })
}

fn transfer(seed: u64, imp: Impairment, port: MemPortConfig, len: usize, max: Duration) -> Report {
    match try_transfer(seed, imp, port, len, max) {
        Ok(r) => r,
        Err(e) => panic!("{len} bytes each way not done within {max:?}: {e:?}"),
    }
}

/// A 100 Mbit/s link with 1 ms delay (one frame takes 121 µs to send).
///
/// The wire draws jitter per frame: jitter larger than a frame's
/// serialisation time shuffles whole windows sent at one instant. smoltcp
/// (no SACK, a few out-of-order ranges kept, go-back-N after an RTO with
/// exponential backoff) then makes almost no progress: 1 MiB does not get
/// through in 120 s of virtual time with 200 µs ± 100 µs on an unlimited
/// link. Hence a rate limit, and jitter below a frame's serialisation time;
/// reordering comes from `reorder`.
fn lossy(loss: f64, reorder: f64, jitter_us: u64) -> Impairment {
    Impairment {
        loss,
        reorder,
        delay: Duration::from_millis(1),
        jitter: Duration::from_micros(jitter_us),
        rate_bps: Some(100_000_000),
        ..Impairment::NONE
    }
}

fn default_port() -> MemPortConfig {
    MemPortConfig::new(mac(0xff))
}

#[test]
fn time_converts_to_whole_microseconds() {
    let t = Instant::from_nanos(1_234_567_891);
    assert_eq!(to_smol(t).total_micros(), 1_234_567);
    assert_eq!(from_smol(to_smol(t)), Instant::from_nanos(1_234_567_000));
    assert_eq!(
        from_smol(smoltcp::time::Instant::from_micros(-5)),
        Instant::ZERO
    );
    let big = Instant::from_nanos(u64::MAX);
    assert_eq!(to_smol(big).total_micros(), (u64::MAX / 1000) as i64);
}

#[test]
fn one_mib_each_way_on_a_clean_wire() {
    let r = transfer(
        1,
        Impairment::NONE,
        default_port(),
        MIB,
        Duration::from_secs(10),
    );
    // No loss, no delay: only delayed-ACK timers (10 ms) take time.
    assert!(r.done_at <= Instant::from_millis(50), "{r:?}");
    for p in [r.ports.0, r.ports.1] {
        assert_eq!(p.drop_loss + p.drop_too_big + p.drop_rx_full, 0, "{p:?}");
    }
    // Full-sized segments: 1 MiB is at least 719 segments of 1460 bytes.
    assert!(r.seen.iter().all(|s| s.data >= 719), "{r:?}");
}

/// With a rate limit the virtual clock must account for every frame's
/// serialisation: 1 MiB plus headers at 100 Mbit/s cannot arrive before
/// 87 ms, and 64 KiB windows over a 2 ms round trip keep the link busy.
#[test]
fn one_mib_each_way_at_100_mbit_takes_the_serialisation_time() {
    let r = transfer(
        1,
        lossy(0.0, 0.0, 0),
        default_port(),
        MIB,
        Duration::from_secs(10),
    );
    assert!(
        r.done_at >= Instant::from_millis(87) && r.done_at <= Instant::from_millis(150),
        "{r:?}"
    );
}

#[test]
fn one_mib_each_way_with_1pct_loss_reorder_and_jitter() {
    let r = transfer(
        2,
        lossy(0.01, 0.01, 50),
        default_port(),
        MIB,
        Duration::from_secs(120),
    );
    assert!(r.ports.0.drop_loss > 0 && r.ports.1.drop_loss > 0, "{r:?}");
    assert!(r.ports.0.reordered > 0 && r.ports.1.reordered > 0, "{r:?}");
    // smoltcp's minimum RTO is 1 s and it has no SACK: losses cost seconds.
    assert!(r.done_at <= Instant::from_millis(20_000), "{r:?}");
}

#[test]
fn one_mib_each_way_with_5pct_loss_reorder_and_jitter() {
    let r = transfer(
        2,
        lossy(0.05, 0.02, 100),
        default_port(),
        MIB,
        Duration::from_secs(300),
    );
    assert!(
        r.ports.0.drop_loss > 20 && r.ports.1.drop_loss > 20,
        "{r:?}"
    );
    assert!(r.ports.0.reordered > 0 && r.ports.1.reordered > 0, "{r:?}");
    assert!(r.done_at <= Instant::from_millis(90_000), "{r:?}");
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        transfer(
            seed,
            lossy(0.05, 0.02, 100),
            default_port(),
            MIB / 4,
            Duration::from_secs(300),
        )
    };
    let one = run(2);
    assert_eq!(one, run(2));
    assert_ne!(one.done_at, run(3).done_at);
}

/// smoltcp 0.14 bug, pinned so an upgrade that fixes it shows here.
///
/// When only a FIN is unacknowledged, a bare ACK repeating the FIN's
/// sequence number counts as a duplicate ACK (`ack < remote_last_seq`).
/// The third one replaces the retransmission timer with a fast retransmit,
/// which finds nothing to resend (its test needs data in the send buffer)
/// and leaves the timer idle: the FIN is never sent again and the socket
/// stays in FIN-WAIT-1 (or CLOSING, LAST-ACK) for good. Duplicate ACKs of
/// that kind come from the peer answering go-back-N retransmissions of
/// data it already has. With these impairments about one seed in six hits
/// it; the transfers above use seeds that do not, and a wirespeed end
/// facing smoltcp must expect it.
#[test]
fn smoltcp_0_14_fast_retransmit_with_only_a_fin_unacked_disarms_its_timer() {
    let len = MIB / 4;
    let stalled = try_transfer(
        7,
        lossy(0.05, 0.02, 100),
        default_port(),
        len,
        Duration::from_secs(600),
    )
    .unwrap_err();
    // A sent everything and its FIN; B has every byte but not the FIN, and
    // A, its FIN unacknowledged, has no timer left.
    assert_eq!(stalled.states, (TcpState::FinWait1, TcpState::Established));
    assert_eq!(stalled.got.1, len);
    assert_eq!(stalled.wakes.0, None, "{stalled:?}");
    assert!(stalled.seen[0].fin >= 1 && stalled.seen[1].fin == 0);
}

/// Two buffers per port: a buffer the adapter kept would stall the
/// transfer within two frames.
#[test]
fn two_buffer_pool_is_enough() {
    let port = MemPortConfig {
        pool_limit: 2,
        ..default_port()
    };
    transfer(
        4,
        Impairment::NONE,
        port,
        256 * 1024,
        Duration::from_secs(10),
    );
}

/// ARP, IPv4 and ICMP between two implementations: smoltcp pings a
/// wirespeed host, and the wirespeed host pings smoltcp.
#[test]
fn smoltcp_and_wirespeed_ping_each_other() {
    let ws_ip = Ipv4Addr::new(198, 18, 0, 3);
    let smol_ip = Ipv4Addr::new(198, 18, 0, 2);
    let mut ws = Sim::new(5);
    let imp = Impairment {
        delay: Duration::from_micros(50),
        ..Impairment::NONE
    };
    let w = ws
        .add_host(
            InterfaceConfig::new(mac(3), cidr("198.18.0.3/24")),
            MemPortConfig {
                impairment: imp,
                ..MemPortConfig::new(mac(3))
            },
        )
        .unwrap();
    let mut sim = MixedSim::on_wire(ws.wire().clone());
    let s = sim
        .add_smol_with(SmolHostConfig {
            port: MemPortConfig {
                impairment: imp,
                ..MemPortConfig::new(mac(2))
            },
            ..SmolHostConfig::new(mac(2), cidr("198.18.0.2/24"))
        })
        .unwrap();
    let ws = Rc::new(RefCell::new(ws));
    sim.add_participant(Box::new(Rc::clone(&ws)));

    // smoltcp → wirespeed, sizes from empty to a full 1500-byte packet.
    let icmp = sim.smol(s).icmp_socket(0x5a5a, 8);
    let sizes = [0usize, 1, 56, 1000, 1472];
    for (seq, &n) in sizes.iter().enumerate() {
        let data = pattern(seq as u64, n);
        assert!(sim.smol(s).ping(icmp, ws_ip, 0x5a5a, seq as u16, &data));
        let mut reply = None;
        let at = sim.run_until(
            |sim| {
                reply = sim.smol(s).recv_echo_reply(icmp);
                reply.is_some()
            },
            Duration::from_secs(5),
        );
        assert!(at.is_some(), "no reply to ping {seq}");
        assert_eq!(reply, Some((ws_ip, 0x5a5a, seq as u16, data)));
    }
    assert_eq!(ws.borrow().host(w).stats().icmp_rx_echo_requests, 5);

    // wirespeed → smoltcp.
    for (seq, &n) in sizes.iter().enumerate() {
        let data = pattern(100 + seq as u64, n);
        ws.borrow_mut()
            .ping(w, smol_ip, 0x7777, seq as u16, &data)
            .unwrap();
        let mut events = Vec::new();
        let at = sim.run_until(
            |_| {
                events.extend(ws.borrow_mut().host_mut(w).take_events());
                events
                    .iter()
                    .any(|e| matches!(e, NetEvent::EchoReply { .. }))
            },
            Duration::from_secs(5),
        );
        assert!(
            at.is_some(),
            "no reply from smoltcp to ping {seq}: {events:?}"
        );
        assert!(
            events.contains(&NetEvent::EchoReply {
                from: smol_ip,
                ident: 0x7777,
                seq_no: seq as u16,
                len: n,
            }),
            "{events:?}"
        );
    }
    // Nothing either side failed to parse or dropped as bad.
    let st = *ws.borrow().host(w).stats();
    assert_eq!(
        (st.icmp_rx_echo_requests, st.icmp_tx_echo_replies),
        (5, 5),
        "{st:?}"
    );
    assert_eq!(
        (st.icmp_tx_echo_requests, st.icmp_rx_echo_replies),
        (5, 5),
        "{st:?}"
    );
    assert_eq!(
        st.drop_bad_checksum + st.drop_malformed + st.drop_truncated,
        0,
        "{st:?}"
    );
}
