//! Transition tests, one per behaviour: inject segments built from
//! `SEND_TEMPL` with `send!`, expect the exact segments out with `recv!`
//! (templates from `RECV_TEMPL`), smoltcp-style.

use super::*;
use crate::buf::{HeapBuf, HeapPool};
use crate::tcp::{CcAlgorithm, Keepalive, TcpConfig};
use crate::time::Duration;
use crate::wire::{ChecksumCaps, TcpPacket};
use core::net::Ipv4Addr;

const LOCAL_PORT: u16 = 49_152;
const REMOTE_PORT: u16 = 80;
const TUPLE: FourTuple = FourTuple {
    local_addr: Ipv4Addr::new(10, 0, 0, 1),
    local_port: LOCAL_PORT,
    remote_addr: Ipv4Addr::new(10, 0, 0, 2),
    remote_port: REMOTE_PORT,
};
const ISS: u32 = 1000;
const IRS: u32 = 5000;
const WIN: u16 = 64_000;

/// A segment from the peer to the connection.
const SEND_TEMPL: TcpRepr<'static> = TcpRepr {
    src_port: REMOTE_PORT,
    dst_port: LOCAL_PORT,
    seq_number: TcpSeqNumber(IRS + 1),
    ack_number: Some(TcpSeqNumber(ISS + 1)),
    flags: TcpFlags::ACK,
    window_len: WIN,
    max_seg_size: None,
    window_scale: None,
    sack_permitted: false,
    sack_ranges: [None; 4],
    timestamp: None,
    payload: &[],
};

/// A segment from the connection to the peer.
const RECV_TEMPL: TcpRepr<'static> = TcpRepr {
    src_port: LOCAL_PORT,
    dst_port: REMOTE_PORT,
    seq_number: TcpSeqNumber(ISS + 1),
    ack_number: Some(TcpSeqNumber(IRS + 1)),
    flags: TcpFlags::ACK,
    window_len: WIN,
    max_seg_size: None,
    window_scale: None,
    sack_permitted: false,
    sack_ranges: [None; 4],
    timestamp: None,
    payload: &[],
};

const SYN: TcpFlags = TcpFlags::from_bits(0x02);
const SYN_ACK: TcpFlags = TcpFlags::from_bits(0x12);
const FIN_ACK: TcpFlags = TcpFlags::from_bits(0x11);
const PSH_ACK: TcpFlags = TcpFlags::from_bits(0x18);
const RST: TcpFlags = TcpFlags::from_bits(0x04);

/// No options: segments stay easy to write down.
fn plain() -> TcpConfig {
    TcpConfig {
        window_scale: false,
        sack: false,
        timestamps: false,
        rcv_buf: u32::from(WIN),
        mss: 1000,
        ..TcpConfig::default()
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

struct T {
    c: Connection<HeapBuf>,
    pool: HeapPool,
}

impl T {
    fn send(&mut self, now: Instant, seg: TcpRepr<'_>) {
        let buf = HeapBuf::from_slice(seg.payload, 0);
        self.c.handle_segment(now, &seg, Some(buf));
    }

    fn out(&mut self, now: Instant) -> Vec<TcpRepr<'static>> {
        self.c.debug_invariants().expect("invariants before output");
        let mut v = Vec::new();
        while let Some(b) = self.c.poll_transmit(now, &mut self.pool) {
            let mut bytes = b.as_slice().to_vec();
            bytes.extend_from_slice(b.attached());
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            let pkt = TcpPacket::new_checked(bytes).unwrap();
            let repr = TcpRepr::parse(
                &pkt,
                TUPLE.local_addr,
                TUPLE.remote_addr,
                &ChecksumCaps::SOFTWARE,
            )
            .expect("valid checksum");
            v.push(repr);
            assert!(v.len() < 1000, "runaway output");
        }
        self.c.debug_invariants().expect("invariants after output");
        v
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.c.poll_event()).collect()
    }
}

macro_rules! send {
    ($t:expr, $now:expr, $seg:expr) => {
        $t.send($now, $seg)
    };
}

macro_rules! recv {
    ($t:expr, $now:expr, [$($seg:expr),* $(,)?]) => {
        assert_eq!($t.out($now), vec![$($seg),*]);
    };
}

/// Buffers for application data copied in by `send_slice`.
fn app_pool() -> HeapPool {
    HeapPool::new(4096, 0, 1 << 16)
}

fn pool() -> HeapPool {
    HeapPool::new(256, 128, 1 << 16)
}

/// An ESTABLISHED connection (active open, no options), SYN-ACK handled.
fn established(cfg: &TcpConfig) -> T {
    let mut t0 = T {
        c: Connection::connect(cfg, TUPLE, ISS, t(0)),
        pool: pool(),
    };
    let _ = t0.out(t(0));
    send!(
        t0,
        t(10),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS),
            flags: SYN_ACK,
            max_seg_size: Some(1000),
            ..SEND_TEMPL
        }
    );
    let _ = t0.out(t(10));
    let _ = t0.events();
    assert_eq!(t0.c.state(), State::Established);
    t0
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

#[test]
fn connection_is_small() {
    // DESIGN.md principle 6: ten million connections on one server. The
    // stack's whole cost per idle connection (slot, flow-table and
    // timer-wheel entries) is measured in tests/conn_memory.rs.
    let size = core::mem::size_of::<Connection<HeapBuf>>();
    let hot = core::mem::offset_of!(Connection<HeapBuf>, rxq);
    eprintln!(
        "size_of::<Connection<HeapBuf>>() = {size} bytes; sequence variables, \
         flags, config and timers in the first {hot}"
    );
    assert!(size <= 640, "Connection<HeapBuf> grew to {size} bytes");
    assert!(
        hot <= 128,
        "hot state spills past two cache lines: {hot} bytes"
    );
    let c = established(&plain());
    // Idle: no buffers held.
    assert_eq!((c.c.send_queued(), c.c.recv_queued()), (0, 0));
}

#[test]
fn handshake_active() {
    let mut x = T {
        c: Connection::connect(&plain(), TUPLE, ISS, t(0)),
        pool: pool(),
    };
    assert_eq!(x.c.state(), State::SynSent);
    recv!(
        x,
        t(0),
        [TcpRepr {
            seq_number: TcpSeqNumber(ISS),
            ack_number: None,
            flags: SYN,
            max_seg_size: Some(1000),
            ..RECV_TEMPL
        }]
    );
    send!(
        x,
        t(10),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS),
            flags: SYN_ACK,
            max_seg_size: Some(1400),
            ..SEND_TEMPL
        }
    );
    assert_eq!(x.c.state(), State::Established);
    assert_eq!(x.events(), vec![Event::Connected]);
    recv!(x, t(10), [RECV_TEMPL]);
    assert_eq!(x.c.mss(), 1000); // clamped to ours
}

#[test]
fn handshake_passive() {
    let syn = TcpRepr {
        seq_number: TcpSeqNumber(IRS),
        ack_number: None,
        flags: SYN,
        ..SEND_TEMPL
    };
    let mut x = T {
        c: Connection::accept(&plain(), TUPLE, ISS, &syn, t(0)),
        pool: pool(),
    };
    assert_eq!(x.c.state(), State::SynReceived);
    recv!(
        x,
        t(0),
        [TcpRepr {
            seq_number: TcpSeqNumber(ISS),
            flags: SYN_ACK,
            max_seg_size: Some(1000),
            ..RECV_TEMPL
        }]
    );
    // No MSS option from the peer: 536 (RFC 9293 §3.7.1).
    assert_eq!(x.c.mss(), 536);
    send!(x, t(5), SEND_TEMPL);
    assert_eq!(x.c.state(), State::Established);
    assert_eq!(x.events(), vec![Event::Connected]);
    recv!(x, t(5), []);
}

#[test]
fn handshake_simultaneous_open() {
    let mut x = T {
        c: Connection::connect(&plain(), TUPLE, ISS, t(0)),
        pool: pool(),
    };
    let _ = x.out(t(0));
    send!(
        x,
        t(1),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS),
            ack_number: None,
            flags: SYN,
            max_seg_size: Some(1000),
            ..SEND_TEMPL
        }
    );
    assert_eq!(x.c.state(), State::SynReceived);
    recv!(
        x,
        t(1),
        [TcpRepr {
            seq_number: TcpSeqNumber(ISS),
            flags: SYN_ACK,
            max_seg_size: Some(1000),
            ..RECV_TEMPL
        }]
    );
    send!(
        x,
        t(2),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS),
            flags: SYN_ACK,
            max_seg_size: Some(1000),
            ..SEND_TEMPL
        }
    );
    // The peer's SYN-ACK repeats its SYN: challenge-ACKed, then its ACK.
    send!(x, t(2), SEND_TEMPL);
    assert_eq!(x.c.state(), State::Established);
}

#[test]
fn options_negotiated_only_when_both_offer() {
    let cfg = TcpConfig {
        rcv_buf: 1 << 20,
        ..plain()
    };
    let all = TcpConfig {
        window_scale: true,
        sack: true,
        timestamps: true,
        ..cfg
    };
    let mut x = T {
        c: Connection::connect(&all, TUPLE, ISS, t(0)),
        pool: pool(),
    };
    let syn = x.out(t(0)).remove(0);
    assert_eq!(syn.max_seg_size, Some(1000));
    assert_eq!(syn.window_scale, Some(5)); // 1 MiB >> 5 fits 16 bits
    assert!(syn.sack_permitted);
    assert!(syn.timestamp.is_some());
    // Peer offers only SACK: no scaling, no timestamps.
    send!(
        x,
        t(10),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS),
            flags: SYN_ACK,
            max_seg_size: Some(1460),
            sack_permitted: true,
            window_len: 1000,
            ..SEND_TEMPL
        }
    );
    let ack = x.out(t(10)).remove(0);
    assert_eq!(ack.timestamp, None);
    assert_eq!(ack.window_len, 65_535); // unscaled, capped
    assert_eq!(x.c.mss(), 1000);
    // Peer offers everything: timestamps take 12 bytes of each segment.
    let syn = TcpRepr {
        seq_number: TcpSeqNumber(IRS),
        ack_number: None,
        flags: SYN,
        max_seg_size: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamp: Some((77, 0)),
        ..SEND_TEMPL
    };
    let mut y = T {
        c: Connection::accept(&all, TUPLE, ISS, &syn, t(0)),
        pool: pool(),
    };
    let sa = y.out(t(0)).remove(0);
    assert_eq!(
        (
            sa.window_scale,
            sa.sack_permitted,
            sa.timestamp.map(|t| t.1)
        ),
        (Some(5), true, Some(77))
    );
    assert_eq!(y.c.mss(), 988);
    // Without the peer's scale option we send none back.
    let mut z = T {
        c: Connection::accept(
            &all,
            TUPLE,
            ISS,
            &TcpRepr {
                window_scale: None,
                ..syn
            },
            t(0),
        ),
        pool: pool(),
    };
    assert_eq!(z.out(t(0))[0].window_scale, None);
}

#[test]
fn syn_retransmits_with_backoff_then_times_out() {
    let cfg = plain();
    let mut x = T {
        c: Connection::connect(&cfg, TUPLE, ISS, t(0)),
        pool: pool(),
    };
    assert_eq!(x.out(t(0)).len(), 1);
    let mut now = t(0);
    let mut gaps = Vec::new();
    for _ in 0..cfg.syn_retries {
        let next = x.c.poll_timeout().unwrap();
        gaps.push(next.saturating_since(now).as_secs());
        now = next;
        x.c.handle_timeout(now);
        let out = x.out(now);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].flags, SYN);
    }
    assert_eq!(gaps, vec![1, 2, 4, 8, 16, 32]);
    let next = x.c.poll_timeout().unwrap();
    x.c.handle_timeout(next);
    assert_eq!(x.c.state(), State::Closed);
    assert_eq!(x.events(), vec![Event::Closed(CloseReason::TimedOut)]);
    assert_eq!(x.c.stats().retransmits, 6);
}

#[test]
fn data_out_and_in_with_delayed_ack() {
    // NODELAY: the 500-byte tail goes without waiting for an ACK.
    let mut x = established(&TcpConfig {
        nodelay: true,
        ..plain()
    });
    let d = data(1500);
    let mut p = app_pool();
    assert_eq!(x.c.send_slice(&d, &mut p), 1500);
    let out = x.out(t(20));
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        TcpRepr {
            payload: &d[..1000],
            ..RECV_TEMPL
        }
    );
    assert_eq!(out[1].flags, PSH_ACK);
    assert_eq!(out[1].payload, &d[1000..]);
    // One segment in: the ACK waits 40 ms.
    send!(
        x,
        t(30),
        TcpRepr {
            ack_number: Some(TcpSeqNumber(ISS + 1 + 1500)),
            payload: &d[..100],
            ..SEND_TEMPL
        }
    );
    recv!(x, t(30), []);
    assert_eq!(x.c.poll_timeout(), Some(t(70)));
    x.c.handle_timeout(t(70));
    let ack = x.out(t(70));
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].ack_number, Some(TcpSeqNumber(IRS + 101)));
    let mut buf = [0u8; 200];
    assert_eq!(x.c.read(&mut buf), 100);
    assert_eq!(&buf[..100], &d[..100]);
    // Two full-sized segments: ACK at once (RFC 5681 §4.2).
    for i in 0..2u32 {
        send!(
            x,
            t(80),
            TcpRepr {
                seq_number: TcpSeqNumber(IRS + 101 + i * 1000),
                ack_number: Some(TcpSeqNumber(ISS + 1 + 1500)),
                payload: &d[..1000],
                ..SEND_TEMPL
            }
        );
    }
    let ack = x.out(t(80));
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].ack_number, Some(TcpSeqNumber(IRS + 2101)));
}

#[test]
fn out_of_order_gets_immediate_ack_with_sack_blocks() {
    let cfg = TcpConfig {
        sack: true,
        ..plain()
    };
    let mut x = T {
        c: Connection::connect(&cfg, TUPLE, ISS, t(0)),
        pool: pool(),
    };
    let _ = x.out(t(0));
    send!(
        x,
        t(1),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS),
            flags: SYN_ACK,
            max_seg_size: Some(1000),
            sack_permitted: true,
            ..SEND_TEMPL
        }
    );
    let _ = x.out(t(1));
    let d = data(300);
    send!(
        x,
        t(2),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS + 101),
            payload: &d[..100],
            ..SEND_TEMPL
        }
    );
    send!(
        x,
        t(2),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS + 301),
            payload: &d[..50],
            ..SEND_TEMPL
        }
    );
    let out = x.out(t(2));
    assert_eq!(out.len(), 1, "coalesced into one immediate ACK");
    assert_eq!(
        out[0].sack_ranges,
        [
            Some((IRS + 301, IRS + 351)),
            Some((IRS + 101, IRS + 201)),
            None,
            None
        ]
    );
    // Hole fill: immediate ACK covering everything held before 301.
    send!(
        x,
        t(3),
        TcpRepr {
            payload: &d[..100],
            ..SEND_TEMPL
        }
    );
    let out = x.out(t(3));
    assert_eq!(out[0].ack_number, Some(TcpSeqNumber(IRS + 201)));
    // Duplicate: ACKed, counted.
    send!(
        x,
        t(4),
        TcpRepr {
            payload: &d[..100],
            ..SEND_TEMPL
        }
    );
    assert_eq!(x.out(t(4)).len(), 1);
    // (It fails the acceptability test: all of it lies below RCV.NXT.)
    assert_eq!(x.c.stats().out_of_window, 1);
}

#[test]
fn zero_window_probe_and_reopening() {
    let mut x = established(&plain());
    send!(
        x,
        t(20),
        TcpRepr {
            window_len: 0,
            ..SEND_TEMPL
        }
    );
    let mut p = app_pool();
    x.c.send_slice(&data(500), &mut p);
    recv!(x, t(20), []);
    let at = x.c.poll_timeout().unwrap();
    x.c.handle_timeout(at);
    recv!(
        x,
        at,
        [TcpRepr {
            seq_number: TcpSeqNumber(ISS),
            ..RECV_TEMPL
        }]
    );
    // Backoff: the next probe comes later.
    let at2 = x.c.poll_timeout().unwrap();
    assert!(at2.saturating_since(at) > at.saturating_since(t(20)));
    // The window reopens: data flows.
    send!(x, at2, SEND_TEMPL);
    let out = x.out(at2);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload.len(), 500);
}

#[test]
fn nagle_holds_small_segments_unless_nodelay() {
    for nodelay in [false, true] {
        let mut x = established(&TcpConfig { nodelay, ..plain() });
        let mut p = app_pool();
        x.c.send_slice(b"a", &mut p);
        assert_eq!(x.out(t(20)).len(), 1);
        x.c.send_slice(b"b", &mut p);
        assert_eq!(x.out(t(20)).len(), usize::from(nodelay));
        // The ACK releases the held byte.
        send!(
            x,
            t(30),
            TcpRepr {
                ack_number: Some(TcpSeqNumber(ISS + 2)),
                ..SEND_TEMPL
            }
        );
        assert_eq!(x.out(t(30)).len(), usize::from(!nodelay));
    }
}

#[test]
fn rto_backs_off_and_retries2_gives_up() {
    let cfg = TcpConfig {
        retries2: 3,
        ..plain()
    };
    let mut x = established(&cfg);
    let mut p = app_pool();
    x.c.send_slice(&data(10), &mut p);
    assert_eq!(x.out(t(20)).len(), 1);
    let mut now = t(20);
    let mut gaps = Vec::new();
    for _ in 0..3 {
        let at = x.c.poll_timeout().unwrap();
        gaps.push(at.saturating_since(now).as_millis());
        now = at;
        x.c.handle_timeout(now);
        let out = x.out(now);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].seq_number, TcpSeqNumber(ISS + 1));
    }
    // RTO from the SYN-ACK sample (10 ms -> floor 200 ms), doubling.
    assert_eq!(gaps, vec![200, 400, 800]);
    let at = x.c.poll_timeout().unwrap();
    x.c.handle_timeout(at);
    assert_eq!(x.c.state(), State::Closed);
    assert_eq!(x.events(), vec![Event::Closed(CloseReason::TimedOut)]);
}

/// Sends `n` full segments of 1000 bytes; returns the payload.
fn flight(x: &mut T, n: usize, now: Instant) -> Vec<u8> {
    let d = data(1000 * n);
    for chunk in d.chunks(1000) {
        x.c.send(HeapBuf::from_slice(chunk, 0)).unwrap();
    }
    assert_eq!(x.out(now).len(), n);
    d
}

fn ack(n: u32) -> TcpRepr<'static> {
    TcpRepr {
        ack_number: Some(TcpSeqNumber(ISS + 1 + n)),
        ..SEND_TEMPL
    }
}

#[test]
fn fast_retransmit_on_third_dup_ack_and_newreno_partial_ack() {
    let mut x = established(&TcpConfig {
        cc: CcAlgorithm::NewReno,
        ..plain()
    });
    flight(&mut x, 10, t(20));
    // Segments 1 and 4 lost: ACK 0 four times (one new ACK? no: dup).
    send!(x, t(30), ack(0));
    send!(x, t(30), ack(0));
    recv!(x, t(30), []);
    send!(x, t(30), ack(0));
    let out = x.out(t(30));
    assert_eq!(out[0].seq_number, TcpSeqNumber(ISS + 1));
    assert_eq!(out[0].payload.len(), 1000);
    assert_eq!(x.c.stats().fast_retransmits, 1);
    // Partial ACK up to the second hole: it is retransmitted at once.
    send!(x, t(40), ack(3000));
    let out = x.out(t(40));
    assert_eq!(out[0].seq_number, TcpSeqNumber(ISS + 1 + 3000));
    // Full ACK ends recovery.
    send!(x, t(50), ack(10_000));
    assert_eq!(x.c.cwnd(), x.c.cc.ssthresh());
    assert_eq!(x.c.stats().rto_timeouts, 0);
}

#[test]
fn sack_recovery_repairs_two_holes() {
    let cfg = TcpConfig {
        sack: true,
        ..plain()
    };
    let mut x = T {
        c: Connection::connect(&cfg, TUPLE, ISS, t(0)),
        pool: pool(),
    };
    let _ = x.out(t(0));
    send!(
        x,
        t(10),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS),
            flags: SYN_ACK,
            max_seg_size: Some(1000),
            sack_permitted: true,
            ..SEND_TEMPL
        }
    );
    let _ = x.out(t(10));
    flight(&mut x, 10, t(20));
    let b = |l: u32, r: u32| Some((ISS + 1 + l, ISS + 1 + r));
    // Holes at [0,1000) and [3000,4000); SACKs for the rest arrive.
    let sacks = [
        [b(1000, 2000), None, None, None],
        [b(1000, 3000), None, None, None],
        [b(4000, 5000), b(1000, 3000), None, None],
        [b(4000, 6000), b(1000, 3000), None, None],
        // More than 2·MSS SACKed above 3000: IsLost (RFC 6675 §4).
        [b(4000, 7000), b(1000, 3000), None, None],
    ];
    for s in sacks {
        send!(
            x,
            t(30),
            TcpRepr {
                sack_ranges: s,
                ..ack(0)
            }
        );
    }
    let out = x.out(t(30));
    let seqs: Vec<u32> = out.iter().map(|s| s.seq_number.0 - ISS - 1).collect();
    assert_eq!(&seqs[..2], &[0, 3000], "both holes, nothing SACKed resent");
    assert_eq!(x.c.stats().fast_retransmits, 1);
    send!(x, t(40), ack(10_000));
    assert_eq!(x.c.stats().rto_timeouts, 0);
}

#[test]
fn karn_skips_samples_from_retransmitted_segments() {
    let mut x = established(&plain());
    let rto0 = x.c.rtt.rto();
    flight(&mut x, 1, t(20));
    x.c.handle_timeout(t(20) + rto0);
    assert_eq!(x.out(t(20) + rto0).len(), 1);
    let backed = x.c.rtt.rto();
    // The ACK of the retransmission is ambiguous: no sample, the backoff
    // stays until fresh data is timed.
    send!(x, t(5000), ack(1000));
    assert_eq!(x.c.rtt.rto(), backed);
    flight(&mut x, 1, t(5000));
    send!(x, t(5010), ack(2000));
    assert!(x.c.rtt.rto() < backed);
}

/// An ESTABLISHED connection with SACK (no other option); the SYN-ACK at
/// 10 ms gives SRTT = RACK.min_RTT = 10 ms and an RTO of 200 ms.
fn established_sack(cfg: &TcpConfig) -> T {
    let cfg = TcpConfig { sack: true, ..*cfg };
    let mut x = T {
        c: Connection::connect(&cfg, TUPLE, ISS, t(0)),
        pool: pool(),
    };
    let _ = x.out(t(0));
    send!(
        x,
        t(10),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS),
            flags: SYN_ACK,
            max_seg_size: Some(1000),
            sack_permitted: true,
            ..SEND_TEMPL
        }
    );
    let _ = x.out(t(10));
    let _ = x.events();
    x
}

/// An ACK of `n` bytes with SACK blocks, all relative to our ISN + 1.
fn sack_ack(n: u32, blocks: &[(u32, u32)]) -> TcpRepr<'static> {
    let mut ranges = [None; 4];
    for (slot, &(l, r)) in ranges.iter_mut().zip(blocks) {
        *slot = Some((ISS + 1 + l, ISS + 1 + r));
    }
    TcpRepr {
        sack_ranges: ranges,
        ..ack(n)
    }
}

/// Sequence numbers (relative to our ISN + 1) of segments.
fn seqs(segs: &[TcpRepr<'_>]) -> Vec<u32> {
    segs.iter().map(|s| s.seq_number.0 - ISS - 1).collect()
}

fn micros(us: u64) -> Instant {
    Instant::from_micros(us)
}

#[test]
fn limited_transmit_sends_new_data_on_the_first_two_dup_acks() {
    // RFC 3042: 12 segments queued, cwnd (IW) lets 10 out; each of the
    // first two duplicate ACKs lets one new segment out, the third starts
    // fast retransmit.
    let mut x = established(&TcpConfig {
        cc: CcAlgorithm::NewReno,
        ..plain()
    });
    let d = data(12_000);
    for chunk in d.chunks(1000) {
        x.c.send(HeapBuf::from_slice(chunk, 0)).unwrap();
    }
    assert_eq!(x.out(t(20)).len(), 10);
    send!(x, t(30), ack(0));
    assert_eq!(seqs(&x.out(t(30))), vec![10_000]);
    send!(x, t(30), ack(0));
    assert_eq!(seqs(&x.out(t(30))), vec![11_000]);
    send!(x, t(30), ack(0));
    assert_eq!(seqs(&x.out(t(30))), vec![0]);
    assert_eq!(x.c.stats().fast_retransmits, 1);
}

#[test]
fn rack_marks_a_loss_once_the_reordering_window_passes() {
    // RFC 8985 §6.2: four segments, the second SACKed. One SACKed segment
    // is not DupThresh, so RACK waits RACK.rtt + min_RTT/4 = 12.5 ms after
    // the first was sent, then retransmits it (no RTO, no third dup ACK).
    let mut x = established_sack(&plain());
    flight(&mut x, 4, t(20));
    send!(x, t(30), sack_ack(0, &[(1000, 2000)]));
    recv!(x, t(30), []);
    assert_eq!(x.c.poll_timeout(), Some(micros(32_500)));
    x.c.handle_timeout(micros(32_500));
    assert_eq!(seqs(&x.out(micros(32_500))), vec![0]);
    assert_eq!(x.c.stats().fast_retransmits, 1);
    assert_eq!(x.c.stats().rack_lost, 1);
    send!(x, t(45), ack(4000));
    assert_eq!(x.c.stats().rto_timeouts, 0);
}

#[test]
fn rack_with_dup_thresh_sacked_marks_at_once() {
    // RFC 8985 §6.2 step 4: with DupThresh segments SACKed and no
    // reordering seen, the window is zero: both holes go at once. (NewReno
    // halves cwnd to the three segments the pipe then holds: no rescue.)
    let mut x = established_sack(&TcpConfig {
        cc: CcAlgorithm::NewReno,
        ..plain()
    });
    flight(&mut x, 6, t(20));
    send!(x, t(30), sack_ack(0, &[(1000, 2000), (3000, 5000)]));
    assert_eq!(seqs(&x.out(t(30))), vec![0, 2000]);
    assert_eq!(x.c.stats().rack_lost, 2);
}

#[test]
fn rack_detects_a_lost_retransmission() {
    // The retransmission of the first segment is lost too: once a
    // segment sent after it is SACKed and RACK.rtt has passed, it is lost
    // again and goes a third time, without waiting for the RTO.
    let mut x = established_sack(&plain());
    flight(&mut x, 6, t(20));
    send!(x, t(30), sack_ack(0, &[(1000, 6000)]));
    assert_eq!(seqs(&x.out(t(30))), vec![0]);
    x.c.send(HeapBuf::from_slice(&data(1000), 0)).unwrap();
    assert_eq!(seqs(&x.out(t(31))), vec![6000]);
    send!(x, t(41), sack_ack(0, &[(1000, 7000)]));
    assert_eq!(seqs(&x.out(t(41))), vec![0]);
    assert_eq!(x.c.stats().retransmits, 2);
    assert_eq!(x.c.stats().rto_timeouts, 0);
}

#[test]
fn tail_loss_probe_sends_new_data_first() {
    // RFC 8985 §7.3: with cwnd full and more data queued, the probe after
    // 2·SRTT + 2 ms is the next new segment (cwnd does not apply to it).
    let mut x = established_sack(&plain());
    let d = data(12_000);
    for chunk in d.chunks(1000) {
        x.c.send(HeapBuf::from_slice(chunk, 0)).unwrap();
    }
    assert_eq!(x.out(t(20)).len(), 10);
    assert_eq!(x.c.poll_timeout(), Some(t(42)));
    x.c.handle_timeout(t(42));
    assert_eq!(seqs(&x.out(t(42))), vec![10_000]);
    assert_eq!(x.c.stats().loss_probes, 1);
    assert_eq!(x.c.stats().retransmits, 0);
    // One probe per flight: the next timer is the RTO, from the probe on.
    assert_eq!(x.c.poll_timeout(), Some(t(242)));
}

#[test]
fn tail_loss_probe_turns_a_tail_loss_into_fast_recovery() {
    // Three segments, all lost. The probe re-sends the last one; its SACK
    // lets RACK find the other two (RFC 8985 §7 with §6.2) long before
    // the RTO.
    let mut x = established_sack(&plain());
    flight(&mut x, 3, t(20));
    assert_eq!(x.c.poll_timeout(), Some(t(42)));
    x.c.handle_timeout(t(42));
    assert_eq!(seqs(&x.out(t(42))), vec![2000]);
    send!(x, t(52), sack_ack(0, &[(2000, 3000)]));
    assert_eq!(seqs(&x.out(t(52))), vec![0, 1000]);
    assert_eq!(x.c.stats().fast_retransmits, 1);
    send!(x, t(62), ack(3000));
    assert_eq!(x.c.stats().rto_timeouts, 0);
    assert_eq!(x.c.state(), State::Established);
}

#[test]
fn tail_loss_probe_that_repaired_a_loss_reduces_cwnd() {
    // RFC 8985 §7.4: the probe re-sent the last segment; an ACK beyond
    // TLP.end_seq without a D-SACK means only the probe arrived.
    let mut x = established_sack(&TcpConfig {
        cc: CcAlgorithm::NewReno,
        ..plain()
    });
    flight(&mut x, 4, t(20));
    send!(x, t(30), ack(2000));
    let cwnd = x.c.cwnd();
    x.c.handle_timeout(t(52));
    assert_eq!(seqs(&x.out(t(52))), vec![3000]);
    // TLP.end_seq = 4000: an ACK of exactly that is ambiguous, and keeps
    // the episode open.
    send!(x, t(62), ack(4000));
    assert_eq!(x.c.cc.ssthresh(), u32::MAX);
    x.c.send(HeapBuf::from_slice(&data(1000), 0)).unwrap();
    assert_eq!(seqs(&x.out(t(62))), vec![4000]);
    send!(x, t(72), ack(5000));
    assert!(x.c.cc.ssthresh() < u32::MAX, "cwnd reduced once");
    assert!(x.c.cwnd() < cwnd + 2000);
}

#[test]
fn tail_loss_probe_answered_by_a_duplicate_ack_keeps_cwnd() {
    // RFC 8985 §7.4: a pure duplicate ACK at TLP.end_seq: original and
    // probe both arrived, nothing was lost.
    let mut x = established_sack(&TcpConfig {
        cc: CcAlgorithm::NewReno,
        ..plain()
    });
    flight(&mut x, 4, t(20));
    send!(x, t(30), ack(2000));
    x.c.handle_timeout(t(52));
    assert_eq!(seqs(&x.out(t(52))), vec![3000]);
    send!(x, t(55), ack(4000));
    send!(x, t(62), ack(4000));
    x.c.send(HeapBuf::from_slice(&data(1000), 0)).unwrap();
    assert_eq!(seqs(&x.out(t(62))), vec![4000]);
    send!(x, t(72), ack(5000));
    assert_eq!(x.c.cc.ssthresh(), u32::MAX);
}

#[test]
fn rtt_sample_comes_from_the_newest_segment_after_lost_acks() {
    // The ACKs of four segments sent at 20 ms are lost; a fifth goes at
    // 100 ms and its ACK (covering all five) arrives at 110 ms. The path
    // RTT is 10 ms, not the 90 ms since the first segment was sent.
    let mut x = established(&plain());
    flight(&mut x, 4, t(20));
    flight(&mut x, 1, t(100));
    send!(x, t(110), ack(5000));
    assert_eq!(x.c.rtt.srtt(), Some(Duration::from_millis(10)));
}

#[test]
fn rtt_sample_not_taken_from_an_ack_echoing_a_timestamp_older_than_the_retransmission() {
    // Timestamps on. Three segments at 20 ms, every ACK lost; the RTO
    // re-sends the first at 220 ms. The ACK covering all three echoes the
    // TSval of the original transmissions: it does not prove which
    // transmission of the first segment arrived (Karn's algorithm, RFC
    // 6298 §3 with RFC 7323 §4), and a sample from it (210 ms on a 10 ms
    // path) would inflate SRTT. No sample: SRTT stays and the RTO stays
    // backed off until a segment sent once is acknowledged.
    let cfg = TcpConfig {
        timestamps: true,
        mss: 1012,
        ..plain()
    };
    let mut x = T {
        c: Connection::connect(&cfg, TUPLE, ISS, t(0)),
        pool: pool(),
    };
    let syn = x.out(t(0));
    let offset = x.c.ts_offset;
    let our_ts = |now: Instant| timestamp_value(offset, now);
    assert_eq!(syn[0].timestamp.map(|(v, _)| v), Some(our_ts(t(0))));
    send!(
        x,
        t(10),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS),
            flags: SYN_ACK,
            max_seg_size: Some(1012),
            timestamp: Some((7, our_ts(t(0)))),
            ..SEND_TEMPL
        }
    );
    let _ = x.out(t(10));
    assert_eq!(x.c.mss(), 1000);
    flight(&mut x, 3, t(20));
    let srtt = x.c.rtt.srtt();
    x.c.handle_timeout(t(220));
    assert_eq!(seqs(&x.out(t(220))), vec![0]);
    let backed = x.c.rtt.rto();
    send!(
        x,
        t(230),
        TcpRepr {
            timestamp: Some((8, our_ts(t(20)))),
            ..ack(3000)
        }
    );
    assert_eq!(x.c.rtt.srtt(), srtt);
    assert_eq!(x.c.rtt.rto(), backed);
    // An echo of the retransmission proves it: a 10 ms sample.
    flight(&mut x, 1, t(240));
    x.c.handle_timeout(t(240) + backed);
    let again = t(240) + backed;
    assert_eq!(seqs(&x.out(again)), vec![3000]);
    send!(
        x,
        again + Duration::from_millis(10),
        TcpRepr {
            timestamp: Some((9, our_ts(again))),
            ..ack(4000)
        }
    );
    assert!(x.c.rtt.rto() < backed);
}

#[test]
fn rto_keeps_the_scoreboard_and_resends_only_what_was_not_sacked() {
    // RFC 6675 §5.1, RFC 8985 §6.3: segments 1 and 3 of four are lost,
    // and so are their fast retransmissions. After the timeout only 1 and
    // 3 go again, one per cwnd as slow start allows; 2 and 4, SACKed,
    // never do.
    let mut x = established_sack(&plain());
    flight(&mut x, 4, t(20));
    send!(x, t(30), sack_ack(0, &[(1000, 2000), (3000, 4000)]));
    x.c.handle_timeout(micros(32_500));
    assert_eq!(seqs(&x.out(micros(32_500))), vec![0, 2000]);
    let at = x.c.poll_timeout().unwrap();
    // The RTO, from the first transmission at 20 ms (the SACKs did not
    // move SND.UNA).
    assert_eq!(at, t(220));
    x.c.handle_timeout(at);
    assert_eq!(seqs(&x.out(at)), vec![0]);
    assert_eq!(x.c.cwnd(), 1000);
    send!(x, t(230), sack_ack(2000, &[(3000, 4000)]));
    assert_eq!(seqs(&x.out(t(230))), vec![2000]);
    send!(x, t(240), ack(4000));
    recv!(x, t(240), []);
    assert_eq!(x.c.stats().retransmits, 4);
    assert_eq!(x.c.stats().rto_timeouts, 1);
}

#[test]
fn rto_after_reneging_forgets_the_sacks() {
    // RFC 2018 §8: the receiver may drop what it SACKed. A SACK of the
    // segment at SND.UNA itself can only mean that; at the timeout every
    // mark goes and all of it is sent again.
    let mut x = established_sack(&plain());
    flight(&mut x, 2, t(20));
    send!(x, t(30), sack_ack(0, &[(0, 1000)]));
    x.c.handle_timeout(t(220));
    assert_eq!(seqs(&x.out(t(220))), vec![0]);
    send!(x, t(230), ack(1000));
    assert_eq!(seqs(&x.out(t(230))), vec![1000]);
}

#[test]
fn rescue_retransmission_resends_the_tail_once() {
    // RFC 6675 §4 NextSeg rule 4. Segments 1 and 2 of four are lost
    // (RACK marks them when the third is SACKed); the fourth, the tail,
    // too. The retransmissions' ACKs come back faster than the minimum
    // RTT, so RACK cannot trust them (RFC 8985 §6.2 step 2) and cannot
    // tell about the tail: with nothing else to send and room in the
    // pipe, the tail goes once more.
    let mut x = established_sack(&plain());
    flight(&mut x, 4, t(20));
    send!(x, t(30), sack_ack(0, &[(2000, 3000)]));
    x.c.handle_timeout(micros(32_500));
    assert_eq!(seqs(&x.out(micros(32_500))), vec![0]);
    send!(x, t(40), sack_ack(1000, &[(2000, 3000)]));
    assert_eq!(seqs(&x.out(t(40))), vec![1000]);
    send!(x, t(48), ack(3000));
    assert_eq!(seqs(&x.out(t(48))), vec![3000]);
    // Once per recovery.
    send!(x, t(49), ack(3000));
    recv!(x, t(49), []);
    send!(x, t(60), ack(4000));
    assert_eq!(x.c.stats().rto_timeouts, 0);
}

/// Found by the `tcp_conn` fuzz target: without SACK, the go-back-N
/// retransmission after a timeout carried the FIN queued since, sent for
/// the first time, and the scoreboard did not record it (SND.MAX moved past
/// its last record).
#[test]
fn go_back_n_retransmission_with_a_new_fin_is_recorded() {
    let mut x = established(&plain());
    let mut ap = app_pool();
    assert_eq!(x.c.send_slice(&data(100), &mut ap), 100);
    assert_eq!(x.out(t(20)).len(), 1);
    let at = x.c.poll_timeout().unwrap();
    x.c.handle_timeout(at);
    x.c.shutdown(at);
    let segs = x.out(at);
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].payload.len(), 100);
    assert!(segs[0].flags.contains(TcpFlags::FIN));
    assert_eq!(x.c.debug_seq().snd_max, ISS + 102);
    send!(x, at + Duration::from_millis(10), ack(101));
    assert_eq!(x.c.state(), State::FinWait2);
}

#[test]
fn syn_ack_sent_again_echoes_the_retransmitted_syn() {
    // RFC 7323 §4.3: the peer's second SYN (its first SYN-ACK from us was
    // lost) updates TS.Recent, so the SYN-ACK sent again echoes it and the
    // peer times one round trip, not the lost exchange as well.
    let cfg = TcpConfig {
        timestamps: true,
        ..plain()
    };
    let syn = |tsval: u32| TcpRepr {
        seq_number: TcpSeqNumber(IRS),
        ack_number: None,
        flags: SYN,
        timestamp: Some((tsval, 0)),
        ..SEND_TEMPL
    };
    let mut x = T {
        c: Connection::accept(&cfg, TUPLE, ISS, &syn(100), t(0)),
        pool: pool(),
    };
    let first = x.out(t(0));
    assert_eq!(first[0].timestamp.map(|(_, ecr)| ecr), Some(100));
    send!(x, t(1000), syn(1100));
    let again = x.out(t(1000));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].flags, SYN_ACK);
    assert_eq!(again[0].timestamp.map(|(_, ecr)| ecr), Some(1100));
}

#[test]
fn syn_ack_echoing_an_earlier_syn_gives_no_rtt_sample() {
    // The SYN went twice (RTO at 1 s); a SYN-ACK echoing the first SYN's
    // TSval answers the exchange that was lost, and timing it would give
    // 1 s on a 1 ms path. No sample: the RTO falls back to 3 s (RFC 6298
    // §5.7) rather than to one computed from 1 s. An echo of the second
    // SYN is a fair 1 ms sample.
    let cfg = TcpConfig {
        timestamps: true,
        ..plain()
    };
    for (echo_first, want_srtt) in [(true, None), (false, Some(Duration::from_millis(1)))] {
        let mut x = T {
            c: Connection::connect(&cfg, TUPLE, ISS, t(0)),
            pool: pool(),
        };
        let syn1 = x.out(t(0));
        x.c.handle_timeout(t(1000));
        let syn2 = x.out(t(1000));
        let tsval = |s: &[TcpRepr<'_>]| s[0].timestamp.map_or(0, |(v, _)| v);
        let ecr = if echo_first {
            tsval(&syn1)
        } else {
            tsval(&syn2)
        };
        send!(
            x,
            t(1001),
            TcpRepr {
                seq_number: TcpSeqNumber(IRS),
                flags: SYN_ACK,
                max_seg_size: Some(1012),
                timestamp: Some((5, ecr)),
                ..SEND_TEMPL
            }
        );
        assert_eq!(x.c.state(), State::Established);
        assert_eq!(x.c.rtt.srtt(), want_srtt);
        if echo_first {
            assert_eq!(x.c.rtt.rto(), Duration::from_secs(3));
        }
    }
}

fn fin_from_peer(seq: u32, ackn: u32) -> TcpRepr<'static> {
    TcpRepr {
        seq_number: TcpSeqNumber(seq),
        ack_number: Some(TcpSeqNumber(ackn)),
        flags: FIN_ACK,
        ..SEND_TEMPL
    }
}

#[test]
fn active_close_through_time_wait() {
    let mut x = established(&plain());
    x.c.close(t(20));
    assert_eq!(x.c.state(), State::FinWait1);
    recv!(
        x,
        t(20),
        [TcpRepr {
            flags: FIN_ACK,
            ..RECV_TEMPL
        }]
    );
    send!(x, t(30), ack(1));
    assert_eq!(x.c.state(), State::FinWait2);
    send!(x, t(40), fin_from_peer(IRS + 1, ISS + 2));
    assert_eq!(x.c.state(), State::TimeWait);
    recv!(
        x,
        t(40),
        [TcpRepr {
            seq_number: TcpSeqNumber(ISS + 2),
            ack_number: Some(TcpSeqNumber(IRS + 2)),
            // The FIN took one number; the right edge stays put.
            window_len: WIN - 1,
            ..RECV_TEMPL
        }]
    );
    // A retransmitted FIN is ACKed again and restarts 2·MSL.
    send!(x, t(1000), fin_from_peer(IRS + 1, ISS + 2));
    assert_eq!(x.out(t(1000)).len(), 1);
    assert_eq!(x.c.poll_timeout(), Some(t(61_000)));
    x.c.handle_timeout(t(61_000));
    assert_eq!(x.c.state(), State::Closed);
    assert!(x.events().contains(&Event::Closed(CloseReason::Normal)));
}

#[test]
fn passive_close_and_half_close() {
    let mut x = established(&plain());
    send!(x, t(20), fin_from_peer(IRS + 1, ISS + 1));
    assert_eq!(x.c.state(), State::CloseWait);
    assert_eq!(x.events(), vec![Event::PeerFin]);
    // Half-closed: we still send.
    let mut p = app_pool();
    x.c.send_slice(b"late", &mut p);
    let out = x.out(t(20));
    assert_eq!(out.last().unwrap().payload, b"late");
    x.c.shutdown(t(21));
    assert_eq!(x.c.state(), State::LastAck);
    recv!(
        x,
        t(21),
        [TcpRepr {
            seq_number: TcpSeqNumber(ISS + 5),
            ack_number: Some(TcpSeqNumber(IRS + 2)),
            flags: FIN_ACK,
            window_len: WIN - 1,
            ..RECV_TEMPL
        }]
    );
    send!(
        x,
        t(30),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS + 2),
            ..ack(5)
        }
    );
    assert_eq!(x.c.state(), State::Closed);
    assert_eq!(x.events(), vec![Event::Closed(CloseReason::Normal)]);
}

#[test]
fn shutdown_still_receives() {
    let mut x = established(&plain());
    x.c.shutdown(t(20));
    let _ = x.out(t(20));
    send!(x, t(30), ack(1));
    assert_eq!(x.c.state(), State::FinWait2);
    send!(
        x,
        t(40),
        TcpRepr {
            ack_number: Some(TcpSeqNumber(ISS + 2)),
            payload: b"more",
            ..SEND_TEMPL
        }
    );
    let mut b = [0u8; 8];
    assert_eq!(x.c.read(&mut b), 4);
    // No FIN-WAIT-2 bound after shutdown() (only after close()).
    assert!(x.c.timers.get(Timer::FinWait2).is_none());
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut x = established(&plain());
    x.c.shutdown(t(20));
    let _ = x.out(t(20));
    send!(x, t(25), fin_from_peer(IRS + 1, ISS + 1));
    assert_eq!(x.c.state(), State::Closing);
    send!(
        x,
        t(30),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS + 2),
            ..ack(1)
        }
    );
    assert_eq!(x.c.state(), State::TimeWait);
}

#[test]
fn fin_wait2_times_out_after_close() {
    let mut x = established(&plain());
    x.c.close(t(20));
    let _ = x.out(t(20));
    send!(x, t(30), ack(1));
    assert_eq!(x.c.state(), State::FinWait2);
    assert_eq!(x.c.poll_timeout(), Some(t(60_030)));
    x.c.handle_timeout(t(60_030));
    assert_eq!(x.c.state(), State::Closed);
}

#[test]
fn close_with_unread_data_resets() {
    let mut x = established(&plain());
    send!(
        x,
        t(20),
        TcpRepr {
            payload: b"unread",
            ..SEND_TEMPL
        }
    );
    x.c.close(t(21));
    let out = x.out(t(21));
    assert_eq!(out[0].flags, RST);
    assert_eq!(x.c.state(), State::Closed);
}

#[test]
fn rst_in_every_state() {
    // SYN-SENT: a RST with an acceptable ACK refuses the connection.
    let mut x = T {
        c: Connection::connect(&plain(), TUPLE, ISS, t(0)),
        pool: pool(),
    };
    let _ = x.out(t(0));
    send!(
        x,
        t(1),
        TcpRepr {
            seq_number: TcpSeqNumber(0),
            flags: TcpFlags::from_bits(0x14),
            ..SEND_TEMPL
        }
    );
    assert_eq!(x.events(), vec![Event::Closed(CloseReason::Refused)]);
    // Without an ACK it is ignored.
    let mut x = T {
        c: Connection::connect(&plain(), TUPLE, ISS, t(0)),
        pool: pool(),
    };
    send!(
        x,
        t(1),
        TcpRepr {
            ack_number: None,
            flags: RST,
            ..SEND_TEMPL
        }
    );
    assert_eq!(x.c.state(), State::SynSent);
    // Synchronized states: an exact RST resets.
    type Setup = fn(&mut T);
    let setups: [(State, Setup); 6] = [
        (State::Established, |_| {}),
        (State::FinWait1, |x| {
            x.c.shutdown(t(20));
            let _ = x.out(t(20));
        }),
        (State::FinWait2, |x| {
            x.c.shutdown(t(20));
            let _ = x.out(t(20));
            send!(x, t(21), ack(1));
        }),
        (State::CloseWait, |x| {
            send!(x, t(20), fin_from_peer(IRS + 1, ISS + 1));
        }),
        (State::Closing, |x| {
            x.c.shutdown(t(20));
            let _ = x.out(t(20));
            send!(x, t(21), fin_from_peer(IRS + 1, ISS + 1));
        }),
        (State::LastAck, |x| {
            send!(x, t(20), fin_from_peer(IRS + 1, ISS + 1));
            x.c.shutdown(t(20));
            let _ = x.out(t(20));
        }),
    ];
    for (state, setup) in setups {
        let mut x = established(&plain());
        setup(&mut x);
        assert_eq!(x.c.state(), state);
        let _ = x.out(t(22));
        let rcv_nxt = x.c.rcv_nxt();
        send!(
            x,
            t(23),
            TcpRepr {
                seq_number: TcpSeqNumber(rcv_nxt),
                ack_number: None,
                flags: RST,
                ..SEND_TEMPL
            }
        );
        assert_eq!(x.c.state(), State::Closed, "{state:?}");
        assert!(x.events().contains(&Event::Closed(CloseReason::Reset)));
        recv!(x, t(23), []);
    }
    // SYN-RECEIVED (passive): reset.
    let syn = TcpRepr {
        seq_number: TcpSeqNumber(IRS),
        ack_number: None,
        flags: SYN,
        ..SEND_TEMPL
    };
    let mut x = T {
        c: Connection::accept(&plain(), TUPLE, ISS, &syn, t(0)),
        pool: pool(),
    };
    send!(
        x,
        t(1),
        TcpRepr {
            ack_number: None,
            flags: RST,
            ..SEND_TEMPL
        }
    );
    assert_eq!(x.c.state(), State::Closed);
}

#[test]
fn rfc5961_challenge_acks_and_rate_limit() {
    let mut x = established(&TcpConfig {
        challenge_ack_limit: 2,
        ..plain()
    });
    let rst = TcpRepr {
        seq_number: TcpSeqNumber(IRS + 100),
        ack_number: None,
        flags: RST,
        ..SEND_TEMPL
    };
    send!(x, t(20), rst);
    assert_eq!(x.c.state(), State::Established);
    recv!(x, t(20), [RECV_TEMPL]);
    // SYN in a synchronized state: challenge ACK.
    send!(
        x,
        t(21),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS + 7),
            ack_number: None,
            flags: SYN,
            ..SEND_TEMPL
        }
    );
    recv!(x, t(21), [RECV_TEMPL]);
    // Over the limit within the second: suppressed.
    send!(x, t(22), rst);
    recv!(x, t(22), []);
    assert_eq!(x.c.stats().challenge_acks_suppressed, 1);
    // A new second: allowed again.
    send!(x, t(1100), rst);
    recv!(x, t(1100), [RECV_TEMPL]);
    // Out of window: dropped without a challenge.
    send!(
        x,
        t(1101),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS + 1_000_000),
            ..rst
        }
    );
    recv!(x, t(1101), []);
    // ACK for data never sent: ACK and drop.
    send!(x, t(1102), ack(5000));
    recv!(x, t(1102), [RECV_TEMPL]);
    assert_eq!(x.c.state(), State::Established);
}

#[test]
fn paws_drops_old_timestamps_but_not_rst() {
    let cfg = TcpConfig {
        timestamps: true,
        ..plain()
    };
    let mut x = T {
        c: Connection::connect(&cfg, TUPLE, ISS, t(0)),
        pool: pool(),
    };
    let _ = x.out(t(0));
    send!(
        x,
        t(10),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS),
            flags: SYN_ACK,
            max_seg_size: Some(1000),
            timestamp: Some((500, 0)),
            ..SEND_TEMPL
        }
    );
    let _ = x.out(t(10));
    send!(
        x,
        t(20),
        TcpRepr {
            timestamp: Some((499, 0)),
            payload: b"old",
            ..SEND_TEMPL
        }
    );
    assert_eq!(x.c.stats().paws_drops, 1);
    assert_eq!(x.c.recv_queued(), 0);
    assert_eq!(x.out(t(20)).len(), 1, "answered with an ACK");
    send!(
        x,
        t(21),
        TcpRepr {
            timestamp: Some((600, 0)),
            payload: b"new",
            ..SEND_TEMPL
        }
    );
    assert_eq!(x.c.recv_queued(), 3);
    send!(
        x,
        t(22),
        TcpRepr {
            seq_number: TcpSeqNumber(IRS + 4),
            ack_number: None,
            flags: RST,
            timestamp: Some((1, 0)),
            ..SEND_TEMPL
        }
    );
    assert_eq!(x.c.state(), State::Closed);
}

#[test]
fn keepalive_probes_then_dead_peer() {
    let cfg = TcpConfig {
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            probes: 3,
        }),
        ..plain()
    };
    let mut x = established(&cfg);
    assert_eq!(x.c.poll_timeout(), Some(t(10_010)));
    x.c.handle_timeout(t(10_010));
    recv!(
        x,
        t(10_010),
        [TcpRepr {
            seq_number: TcpSeqNumber(ISS),
            ..RECV_TEMPL
        }]
    );
    // An answer resets the count.
    send!(x, t(10_020), SEND_TEMPL);
    let mut now = x.c.poll_timeout().unwrap();
    assert_eq!(now, t(20_020));
    for _ in 0..3 {
        x.c.handle_timeout(now);
        assert_eq!(x.out(now).len(), 1);
        now = x.c.poll_timeout().unwrap();
    }
    x.c.handle_timeout(now);
    assert_eq!(x.out(now)[0].flags, TcpFlags::from_bits(0x14));
    assert_eq!(x.events(), vec![Event::Closed(CloseReason::TimedOut)]);
}

#[test]
fn rst_for_answers_per_rfc9293_3_10_7_1() {
    let with_ack = TcpRepr {
        ack_number: Some(TcpSeqNumber(77)),
        ..SEND_TEMPL
    };
    let r = rst_for(&with_ack).unwrap();
    assert_eq!(
        (r.seq_number, r.ack_number, r.flags),
        (TcpSeqNumber(77), None, RST)
    );
    assert_eq!((r.src_port, r.dst_port), (LOCAL_PORT, REMOTE_PORT));
    let syn = TcpRepr {
        seq_number: TcpSeqNumber(10),
        ack_number: None,
        flags: SYN,
        payload: b"ab",
        ..SEND_TEMPL
    };
    let r = rst_for(&syn).unwrap();
    assert_eq!(
        (r.seq_number, r.ack_number),
        (TcpSeqNumber(0), Some(TcpSeqNumber(13)))
    );
    assert!(rst_for(&TcpRepr {
        flags: RST,
        ..SEND_TEMPL
    })
    .is_none());
}

#[test]
fn time_wait_reuse_only_when_enabled_and_newer() {
    for reuse in [false, true] {
        let mut x = established(&TcpConfig {
            time_wait_reuse: reuse,
            ..plain()
        });
        send!(x, t(20), fin_from_peer(IRS + 1, ISS + 1));
        x.c.shutdown(t(21));
        let _ = x.out(t(21));
        assert_eq!(x.c.state(), State::LastAck);
        let mut y = established(&TcpConfig {
            time_wait_reuse: reuse,
            ..plain()
        });
        y.c.shutdown(t(20));
        let _ = y.out(t(20));
        send!(y, t(21), ack(1));
        send!(y, t(22), fin_from_peer(IRS + 1, ISS + 2));
        assert_eq!(y.c.state(), State::TimeWait);
        let syn = |seq| TcpRepr {
            seq_number: TcpSeqNumber(seq),
            ack_number: None,
            flags: SYN,
            ..SEND_TEMPL
        };
        assert_eq!(y.c.time_wait_accepts_syn(&syn(IRS + 100_000)), reuse);
        assert!(!y.c.time_wait_accepts_syn(&syn(IRS - 100)));
    }
}

#[test]
fn hostile_segments_never_panic() {
    let mut r = crate::port::rng::Rng::new(5);
    for _ in 0..2000 {
        let mut x = established(&TcpConfig::default());
        for _ in 0..20 {
            let seg = TcpRepr {
                seq_number: TcpSeqNumber(r.next_u64() as u32),
                ack_number: r.chance(0.8).then(|| TcpSeqNumber(r.next_u64() as u32)),
                flags: TcpFlags::from_bits(r.below(64) as u16),
                window_len: r.next_u64() as u16,
                sack_ranges: [
                    Some((r.next_u64() as u32, r.next_u64() as u32)),
                    None,
                    None,
                    None,
                ],
                timestamp: r.chance(0.5).then(|| (r.next_u64() as u32, 0)),
                payload: b"xyz",
                ..SEND_TEMPL
            };
            send!(x, t(30), seg);
            let _ = x.out(t(30));
            if let Some(at) = x.c.poll_timeout() {
                x.c.handle_timeout(at);
            }
        }
    }
}

/// The segments `x` has ready, each checked to lie within SND.MAX.
fn out_within_snd_max(x: &mut T, now: Instant) -> Vec<TcpRepr<'static>> {
    let segs = x.out(now);
    let snd_max = x.c.debug_seq().snd_max;
    for s in &segs {
        let end = s.seq_number.0.wrapping_add(s.segment_len() as u32);
        assert!(
            !seq_lt(snd_max, end),
            "segment {s:?} ends beyond SND.MAX {snd_max}"
        );
    }
    segs
}

/// Found through the SND.MAX check of the `tcp_conn` fuzz target: the fast retransmission of the
/// head took bytes queued behind SND.MAX (held back by Nagle) along
/// without counting them as sent, so the peer's ACK for them read as an
/// ACK of data never sent.
#[test]
fn fast_retransmit_stays_within_snd_max() {
    let cfg = TcpConfig {
        dup_thresh: 1,
        ..plain()
    };
    let mut x = established(&cfg);
    let mut ap = app_pool();
    assert_eq!(x.c.send_slice(&data(100), &mut ap), 100);
    assert_eq!(out_within_snd_max(&mut x, t(20)).len(), 1);
    assert_eq!(x.c.send_slice(&data(100), &mut ap), 100);
    assert!(x.out(t(21)).is_empty(), "Nagle holds the tail");
    send!(x, t(30), SEND_TEMPL); // a duplicate ACK: fast retransmit
    let segs = out_within_snd_max(&mut x, t(30));
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].seq_number, TcpSeqNumber(ISS + 1));
    assert_eq!(segs[0].payload.len(), 100);
    assert_eq!(x.c.stats().fast_retransmits, 1);
}

/// Found through the SND.MAX check of the `tcp_conn` fuzz target: with the FIN queued after the
/// loss, the fast retransmission of the last data carried the FIN, sent
/// for the first time as a retransmission and not counted in SND.MAX.
#[test]
fn fast_retransmit_carries_no_unsent_fin() {
    let cfg = TcpConfig {
        dup_thresh: 1,
        ..plain()
    };
    let mut x = established(&cfg);
    let mut ap = app_pool();
    assert_eq!(x.c.send_slice(&data(100), &mut ap), 100);
    assert_eq!(out_within_snd_max(&mut x, t(20)).len(), 1);
    send!(x, t(30), SEND_TEMPL); // a duplicate ACK: fast retransmit
    x.c.shutdown(t(30));
    let segs = out_within_snd_max(&mut x, t(30));
    // The retransmission, then the FIN as new data.
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert!(!segs[0].flags.contains(TcpFlags::FIN));
    assert_eq!(segs[0].payload.len(), 100);
    assert!(segs[1].flags.contains(TcpFlags::FIN));
    assert_eq!(segs[1].seq_number, TcpSeqNumber(ISS + 101));
    assert_eq!(x.c.debug_seq().snd_max, ISS + 102);
}
