//! The TCP input path: a connection (first input byte even) or a whole
//! `TcpStack` with a listener (odd) driven through arbitrary sequences of
//! segments, timer expiries and application calls, with the state
//! invariants checked after every step.
//!
//! Segments are built relative to the connection's current SND.UNA /
//! SND.MAX / RCV.NXT (or, for the stack, to what it last sent each peer),
//! so in-window cases are the common ones. Connections start in
//! SYN-SENT, SYN-RECEIVED or ESTABLISHED (active, passive or SYN-cookie
//! open, with the handshake optionally scripted) so every state is a few
//! operations away.
//!
//! Checked after every step (a panic names the broken one):
//! - `Connection::debug_invariants` (SND.UNA ≤ SND.NXT ≤ SND.MAX, buffers
//!   within their configured size, nothing in flight that was not queued,
//!   a retransmission timer whenever data is unacknowledged, ...);
//! - every emitted segment parses back with a valid checksum, acknowledges
//!   RCV.NXT, lies within what was sent (`seq + len <= SND.MAX`), carries
//!   the bytes the application wrote at those sequence numbers, sends no
//!   new data beyond the peer's window (a one-byte probe excepted), and
//!   never moves the advertised right edge left (RFC 9293 §3.8.6);
//! - data read is the bytes the peer sent at those sequence numbers;
//! - no event after `Closed`, and a connection in CLOSED has reported it.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use wirespeed::buf::{BufAlloc, HeapBuf, PacketBuf};
use wirespeed::net::Ipv4Delivery;
use wirespeed::tcp::conn::SeqVars;
use wirespeed::tcp::{
    CcAlgorithm, ConnId, Connection, Event, FourTuple, Keepalive, ListenConfig, State, TcpConfig,
    TcpStack,
};
use wirespeed::time::{Duration, Instant};
use wirespeed::wire::{
    ChecksumCaps, IpProtocol, Ipv4Repr, TcpFlags, TcpPacket, TcpRepr, TcpSeqNumber,
};

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const LISTEN_PORT: u16 = 80;
const CLOSED_PORT: u16 = 81;
const PEER_PORT: u16 = 40_000;
const TUPLE: FourTuple = FourTuple {
    local_addr: LOCAL,
    local_port: LISTEN_PORT,
    remote_addr: REMOTE,
    remote_port: PEER_PORT,
};
/// Operations per input at most.
const MAX_OPS: usize = 400;
/// Segments one drain may yield before it counts as a runaway.
const MAX_DRAIN: usize = 20_000;

// ---------- the input ----------

#[derive(Arbitrary, Debug)]
struct Knobs {
    mss: u16,
    rcv_buf: u8,
    snd_buf: u8,
    /// Bits: window scale, SACK, timestamps, nodelay, no delayed ACK,
    /// NewReno, keep-alive, TIME-WAIT reuse.
    opts: u8,
    dup_thresh: u8,
    challenge_acks: u8,
    max_ooo: u8,
    iss: u32,
}

const BUF_SIZES: [u32; 8] = [1, 100, 1000, 4096, 16_384, 65_535, 100_000, 262_144];

impl Knobs {
    fn config(&self) -> TcpConfig {
        let bit = |n: u8| self.opts & (1 << n) != 0;
        TcpConfig {
            mss: 64 + self.mss % 1400,
            rcv_buf: BUF_SIZES[usize::from(self.rcv_buf % 8)],
            snd_buf: BUF_SIZES[usize::from(self.snd_buf % 8)],
            window_scale: bit(0),
            sack: bit(1),
            timestamps: bit(2),
            nodelay: bit(3),
            delayed_ack: if bit(4) {
                Duration::ZERO
            } else {
                Duration::from_millis(40)
            },
            cc: if bit(5) {
                CcAlgorithm::NewReno
            } else {
                CcAlgorithm::Cubic
            },
            keepalive: bit(6).then_some(Keepalive {
                idle: Duration::from_secs(10),
                interval: Duration::from_secs(1),
                probes: 2,
            }),
            time_wait_reuse: bit(7),
            dup_thresh: 1 + self.dup_thresh % 4,
            challenge_ack_limit: u32::from(self.challenge_acks % 4),
            max_ooo_segments: u16::from(self.max_ooo % 8),
            ..TcpConfig::default()
        }
    }
}

/// A sequence number relative to RCV.NXT (what the peer would send next).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum SeqRel {
    Next,
    Off(i16),
    Abs(u32),
}

/// An acknowledgment number relative to what was sent.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum AckRel {
    /// SND.MAX: everything sent.
    Max,
    Una,
    UnaOff(i16),
    MaxOff(i16),
    Abs(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum TsRel {
    /// The peer's clock now, echoing our last TSval.
    Current,
    Rel(i16, i16),
    Abs(u32, u32),
}

#[derive(Arbitrary, Debug, Clone)]
struct Seg {
    /// Raw flag bits (FIN SYN RST PSH ACK URG ECE CWR); `ack` applies when
    /// ACK is set.
    flags: u8,
    seq: SeqRel,
    ack: AckRel,
    window: u16,
    mss: Option<u16>,
    wscale: Option<u8>,
    sack_permitted: bool,
    /// SACK blocks as (offset from SND.UNA, length).
    sacks: [Option<(u16, u16)>; 3],
    ts: Option<TsRel>,
    len: u16,
    /// Hand the connection no buffer for the payload.
    no_buf: bool,
}

#[derive(Arbitrary, Debug, Clone)]
enum Start {
    /// `connect`; with `Some`, the peer's SYN-ACK follows.
    Active(Option<SynOpts>),
    /// `accept` of a SYN; with `handshake`, the peer's ACK follows.
    Passive { syn: SynOpts, handshake: bool },
    /// `accept_cookie`: ESTABLISHED at once.
    Cookie {
        irs: u32,
        window: u16,
        mss: u16,
        wscale: Option<u8>,
        sack: bool,
        ts: Option<u32>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct SynOpts {
    irs: u32,
    window: u16,
    mss: Option<u16>,
    wscale: Option<u8>,
    sack: bool,
    ts: Option<u32>,
}

#[derive(Arbitrary, Debug, Clone)]
enum AppOp {
    SendSlice(u16),
    SendBuf(u16),
    Read(u16),
    Recv,
    Shutdown,
    Close,
    Abort,
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Segment(Seg),
    /// The peer acknowledges everything, in order, with this window.
    AckAll(u16),
    Advance(u16),
    AdvanceSecs(u8),
    /// Jump to the next deadline and fire it.
    FireTimer,
    /// Transmit at most this many segments (0: until `None`).
    Transmit(u8),
    /// One `poll_transmit` with an exhausted buffer pool.
    TransmitNoBuf,
    Events,
    Recycle,
    App(AppOp),
}

#[derive(Arbitrary, Debug, Clone)]
enum StackOp {
    /// A segment from peer `peer` to the listener (`to` 0), to the port of
    /// the peer's last active open (1) or to a closed port (2).
    Segment {
        peer: u8,
        to: u8,
        seg: Seg,
        bad_checksum: bool,
    },
    Connect(u8),
    Accept,
    App(u8, AppOp),
    Advance(u16),
    AdvanceSecs(u8),
    FireTimers,
    Transmit(u8),
    TransmitNoBuf,
    Events,
    Recycle,
    Unlisten,
}

// ---------- helpers ----------

/// With `TCP_CONN_TRACE` set, each operation is printed (to read a
/// reproducer: `TCP_CONN_TRACE=1 cargo fuzz run tcp_conn CRASH`).
fn trace() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("TCP_CONN_TRACE").is_some())
}

fn seq_le(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}
fn seq_lt(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}
fn seq_max(a: u32, b: u32) -> u32 {
    if seq_lt(a, b) {
        b
    } else {
        a
    }
}

/// The byte the peer sends at sequence number `s` (overlapping segments
/// always agree).
fn peer_byte(s: u32) -> u8 {
    (s.wrapping_mul(0x9E37_79B1) >> 24) as u8
}

/// The byte our application writes at stream offset `off`.
fn app_byte(off: u32) -> u8 {
    (off.wrapping_mul(0x85EB_CA6B) >> 24) as u8 ^ 0x5a
}

struct Alloc {
    fail: bool,
}

impl BufAlloc for Alloc {
    type Buf = HeapBuf;
    fn alloc(&mut self) -> Option<HeapBuf> {
        (!self.fail).then(|| HeapBuf::new(512, 128))
    }
}

/// What the peer knows: our last TSval.
#[derive(Default, Clone, Copy)]
struct PeerClock {
    last_tsval: u32,
    ts_base: u32,
}

impl PeerClock {
    fn tsval(&self, now: Instant) -> u32 {
        self.ts_base.wrapping_add(now.as_millis() as u32)
    }
}

/// The peer's view of the bases a segment is built from.
#[derive(Clone, Copy)]
struct Bases {
    rcv_nxt: u32,
    snd_una: u32,
    snd_max: u32,
    ts_recent: Option<u32>,
}

/// Builds `seg` on the wire (so it is exactly what a parser hands the
/// stack) and returns the bytes.
fn build(
    seg: &Seg,
    b: Bases,
    clock: &PeerClock,
    now: Instant,
    src_port: u16,
    dst_port: u16,
) -> Vec<u8> {
    let seq = match seg.seq {
        SeqRel::Next => b.rcv_nxt,
        SeqRel::Off(o) => b.rcv_nxt.wrapping_add(o as i32 as u32),
        SeqRel::Abs(a) => a,
    };
    let ack = match seg.ack {
        AckRel::Max => b.snd_max,
        AckRel::Una => b.snd_una,
        AckRel::UnaOff(o) => b.snd_una.wrapping_add(o as i32 as u32),
        AckRel::MaxOff(o) => b.snd_max.wrapping_add(o as i32 as u32),
        AckRel::Abs(a) => a,
    };
    let flags = TcpFlags::from_bits(u16::from(seg.flags));
    let len = usize::from(seg.len % 3000);
    let payload: Vec<u8> = (0..len as u32)
        .map(|i| peer_byte(seq.wrapping_add(i)))
        .collect();
    let mut sack_ranges = [None; 4];
    for (slot, s) in sack_ranges.iter_mut().zip(seg.sacks.iter().flatten()) {
        let l = b.snd_una.wrapping_add(u32::from(s.0));
        *slot = Some((l, l.wrapping_add(u32::from(s.1))));
    }
    let timestamp = seg.ts.map(|t| match t {
        TsRel::Current => (clock.tsval(now), clock.last_tsval),
        TsRel::Rel(a, e) => (
            b.ts_recent
                .unwrap_or_else(|| clock.tsval(now))
                .wrapping_add(a as i32 as u32),
            clock.last_tsval.wrapping_add(e as i32 as u32),
        ),
        TsRel::Abs(a, e) => (a, e),
    });
    let repr = TcpRepr {
        src_port,
        dst_port,
        seq_number: TcpSeqNumber(seq),
        ack_number: flags.contains(TcpFlags::ACK).then_some(TcpSeqNumber(ack)),
        flags,
        window_len: seg.window,
        max_seg_size: seg.mss,
        window_scale: seg.wscale,
        sack_permitted: seg.sack_permitted,
        sack_ranges,
        timestamp,
        payload: &payload,
    };
    let hl = repr.header_len();
    let mut bytes = vec![0u8; hl + payload.len()];
    bytes[hl..].copy_from_slice(&payload);
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut bytes[..]),
        REMOTE,
        LOCAL,
        &ChecksumCaps::SOFTWARE,
    );
    bytes
}

fn syn_seg(o: &SynOpts) -> Seg {
    Seg {
        flags: 0x02,
        seq: SeqRel::Abs(o.irs),
        ack: AckRel::Max,
        window: o.window,
        mss: o.mss,
        wscale: o.wscale,
        sack_permitted: o.sack,
        sacks: [None; 3],
        ts: o.ts.map(|t| TsRel::Abs(t, 0)),
        len: 0,
        no_buf: false,
    }
}

fn ack_seg(window: u16, ts: bool) -> Seg {
    Seg {
        flags: 0x10,
        seq: SeqRel::Next,
        ack: AckRel::Max,
        window,
        mss: None,
        wscale: None,
        sack_permitted: false,
        sacks: [None; 3],
        ts: ts.then_some(TsRel::Current),
        len: 0,
        no_buf: false,
    }
}

// ---------- one connection ----------

struct ConnHarness {
    c: Connection<HeapBuf>,
    cfg: TcpConfig,
    now: Instant,
    clock: PeerClock,
    /// Largest right edge advertised so far.
    adv_edge: Option<u32>,
    written: u32,
    read: u32,
    closed_seen: bool,
}

impl ConnHarness {
    fn bases(&self) -> Bases {
        let s = self.c.debug_seq();
        Bases {
            rcv_nxt: s.rcv_nxt,
            snd_una: s.snd_una,
            snd_max: s.snd_max,
            ts_recent: s.ts_recent,
        }
    }

    fn inject(&mut self, seg: &Seg) {
        let bytes = build(
            seg,
            self.bases(),
            &self.clock,
            self.now,
            PEER_PORT,
            LISTEN_PORT,
        );
        // Options the parser refuses (a zero MSS, ...) never reach a
        // connection.
        let Ok(pkt) = TcpPacket::new_checked(&bytes[..]) else {
            return;
        };
        let hl = pkt.header_len();
        let Ok(repr) = TcpRepr::parse(&pkt, REMOTE, LOCAL, &ChecksumCaps::SOFTWARE) else {
            return;
        };
        let buf = (!repr.payload.is_empty() && !seg.no_buf).then(|| {
            let mut b = HeapBuf::from_slice(&bytes, 0);
            let _ = b.advance(hl);
            b
        });
        self.c.handle_segment(self.now, &repr, buf);
    }

    fn transmit(&mut self, max: usize) {
        let mut alloc = Alloc { fail: false };
        for _ in 0..max {
            let before = self.c.debug_seq();
            let state_before = self.c.state();
            let Some(out) = self.c.poll_transmit(self.now, &mut alloc) else {
                return;
            };
            let mut bytes = out.as_slice().to_vec();
            bytes.extend_from_slice(out.attached());
            self.check_out(&bytes, before, state_before);
        }
    }

    fn drain(&mut self) {
        self.transmit(MAX_DRAIN);
        assert!(
            self.c
                .poll_transmit(self.now, &mut Alloc { fail: false })
                .is_none(),
            "runaway output: more than {MAX_DRAIN} segments in one drain"
        );
    }

    fn check_out(&mut self, bytes: &[u8], before: SeqVars, state_before: State) {
        let pkt = TcpPacket::new_checked(bytes).expect("emitted segment too short");
        let repr = TcpRepr::parse(&pkt, LOCAL, REMOTE, &ChecksumCaps::SOFTWARE)
            .expect("emitted segment does not parse or fails its checksum");
        assert_eq!(
            (repr.src_port, repr.dst_port),
            (LISTEN_PORT, PEER_PORT),
            "emitted segment on the wrong ports"
        );
        let after = self.c.debug_seq();
        if repr.flags.contains(TcpFlags::RST) {
            return;
        }
        assert!(
            state_before != State::Closed,
            "non-RST segment from a CLOSED connection"
        );
        let syn = repr.flags.contains(TcpFlags::SYN);
        let seq = repr.seq_number.0;
        let plen = repr.payload.len() as u32;
        let seg_len = repr.segment_len() as u32;
        match repr.ack_number {
            Some(a) => assert_eq!(a.0, after.rcv_nxt, "emitted ACK is not RCV.NXT"),
            None => assert!(
                syn && state_before == State::SynSent,
                "segment without ACK outside SYN-SENT"
            ),
        }
        assert!(
            seq_le(after.snd_una.wrapping_sub(1), seq),
            "emitted segment below SND.UNA - 1"
        );
        assert!(
            seq_le(seq.wrapping_add(seg_len), after.snd_max),
            "emitted segment beyond SND.MAX"
        );
        if plen > 0 {
            assert!(!syn, "data on a SYN");
            let base = after.iss.wrapping_add(1);
            for (i, &b) in repr.payload.iter().enumerate() {
                let off = seq.wrapping_add(i as u32).wrapping_sub(base);
                assert!(off < self.written, "emitted data never written");
                assert_eq!(
                    b,
                    app_byte(off),
                    "emitted data differs from what was written"
                );
            }
            let end = seq.wrapping_add(plen);
            if seq_lt(before.snd_max, end) {
                let edge = after.snd_una.wrapping_add(after.snd_wnd);
                assert!(
                    seq_le(end, edge) || plen == 1,
                    "new data beyond the peer's window: end {end} edge {edge} ({before:?} -> {after:?})"
                );
            }
        }
        if let Some(a) = repr.ack_number {
            let shift = if syn { 0 } else { after.rcv_wscale };
            let edge = a.0.wrapping_add(u32::from(repr.window_len) << shift);
            // A SYN's window field is unscaled (RFC 7323 §2.2), so a
            // SYN-ACK sent again cannot repeat an edge a scaled ACK in
            // SYN-RECEIVED offered: SYNs are not held to it.
            if let (Some(prev), false) = (self.adv_edge, syn) {
                assert!(
                    seq_le(prev, edge),
                    "advertised right edge moved left: {prev} -> {edge}"
                );
            }
            self.adv_edge = Some(self.adv_edge.map_or(edge, |p| seq_max(p, edge)));
        }
        if let Some((tsval, _)) = repr.timestamp {
            self.clock.last_tsval = tsval;
        }
    }

    fn events(&mut self) {
        while let Some(ev) = self.c.poll_event() {
            assert!(!self.closed_seen, "event {ev:?} after Closed");
            if matches!(ev, Event::Closed(_)) {
                self.closed_seen = true;
            }
        }
        if self.c.state() == State::Closed {
            assert!(self.closed_seen, "CLOSED without a Closed event");
        }
    }

    fn read_check(&mut self, data: &[u8]) {
        let irs = self.c.debug_seq().irs;
        for (i, &b) in data.iter().enumerate() {
            let s = irs
                .wrapping_add(1)
                .wrapping_add(self.read)
                .wrapping_add(i as u32);
            assert_eq!(b, peer_byte(s), "read data differs from what the peer sent");
        }
        self.read = self.read.wrapping_add(data.len() as u32);
    }

    fn app(&mut self, op: &AppOp) {
        let now = self.now;
        match *op {
            AppOp::SendSlice(n) => {
                let data: Vec<u8> = (0..u32::from(n))
                    .map(|i| app_byte(self.written.wrapping_add(i)))
                    .collect();
                let taken = self.c.send_slice(&data, &mut Alloc { fail: false });
                assert!(taken <= data.len());
                self.written = self.written.wrapping_add(taken as u32);
            }
            AppOp::SendBuf(n) => {
                let data: Vec<u8> = (0..u32::from(n))
                    .map(|i| app_byte(self.written.wrapping_add(i)))
                    .collect();
                if self.c.send(HeapBuf::from_slice(&data, 0)).is_ok() {
                    self.written = self.written.wrapping_add(u32::from(n));
                }
            }
            AppOp::Read(n) => {
                let mut buf = vec![0u8; usize::from(n)];
                let got = self.c.read(&mut buf);
                assert!(got <= buf.len());
                self.read_check(&buf[..got]);
            }
            AppOp::Recv => {
                if let Some(b) = self.c.recv() {
                    let v = b.as_slice().to_vec();
                    self.read_check(&v);
                }
            }
            AppOp::Shutdown => self.c.shutdown(now),
            AppOp::Close => self.c.close(now),
            AppOp::Abort => self.c.abort(now),
        }
    }

    fn check(&mut self) {
        if let Err(e) = self.c.debug_invariants() {
            panic!(
                "invariant broken: {e}: {:?} {:?}",
                self.c,
                self.c.debug_seq()
            );
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Segment(seg) => self.inject(seg),
            Op::AckAll(w) => {
                let ts = self.c.debug_seq().ts_recent.is_some();
                self.inject(&ack_seg(*w, ts));
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.c.handle_timeout(self.now);
            }
            Op::AdvanceSecs(s) => {
                self.now += Duration::from_secs(u64::from(*s));
                self.c.handle_timeout(self.now);
            }
            Op::FireTimer => {
                if let Some(t) = self.c.poll_timeout() {
                    if t > self.now {
                        self.now = t;
                    }
                    self.c.handle_timeout(self.now);
                }
            }
            Op::Transmit(n) => {
                if *n == 0 {
                    self.drain();
                } else {
                    self.transmit(usize::from(*n));
                }
            }
            Op::TransmitNoBuf => {
                let out = self.c.poll_transmit(self.now, &mut Alloc { fail: true });
                assert!(out.is_none(), "a segment without a buffer");
            }
            Op::Events => self.events(),
            Op::Recycle => while self.c.poll_recycle().is_some() {},
            Op::App(a) => self.app(a),
        }
        self.check();
    }
}

fn run_conn(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let knobs: Knobs = u.arbitrary()?;
    let start: Start = u.arbitrary()?;
    let cfg = knobs.config();
    let now = Instant::from_millis(1_000_000);
    let iss = knobs.iss;
    let clock = PeerClock {
        last_tsval: 0,
        ts_base: iss.rotate_left(7),
    };
    let (c, script): (Connection<HeapBuf>, Vec<Seg>) = match &start {
        Start::Active(syn_ack) => {
            let c = Connection::connect(&cfg, TUPLE, iss, now);
            let script = syn_ack
                .iter()
                .map(|o| {
                    let mut s = syn_seg(o);
                    s.flags = 0x12;
                    s
                })
                .collect();
            (c, script)
        }
        Start::Passive { syn, handshake } => {
            let bytes = build(
                &syn_seg(syn),
                Bases {
                    rcv_nxt: 0,
                    snd_una: 0,
                    snd_max: 0,
                    ts_recent: None,
                },
                &clock,
                now,
                PEER_PORT,
                LISTEN_PORT,
            );
            let Ok(pkt) = TcpPacket::new_checked(&bytes[..]) else {
                return Ok(());
            };
            let Ok(repr) = TcpRepr::parse(&pkt, REMOTE, LOCAL, &ChecksumCaps::SOFTWARE) else {
                return Ok(());
            };
            let c = Connection::accept(&cfg, TUPLE, iss, &repr, now);
            let script = if *handshake {
                vec![ack_seg(syn.window, syn.ts.is_some())]
            } else {
                Vec::new()
            };
            (c, script)
        }
        Start::Cookie {
            irs,
            window,
            mss,
            wscale,
            sack,
            ts,
        } => {
            let seg = Seg {
                ts: ts.map(|t| TsRel::Abs(t, 0)),
                window: *window,
                seq: SeqRel::Abs(irs.wrapping_add(1)),
                ack: AckRel::Abs(iss.wrapping_add(1)),
                ..ack_seg(*window, false)
            };
            let bytes = build(
                &seg,
                Bases {
                    rcv_nxt: 0,
                    snd_una: 0,
                    snd_max: 0,
                    ts_recent: None,
                },
                &clock,
                now,
                PEER_PORT,
                LISTEN_PORT,
            );
            let Ok(pkt) = TcpPacket::new_checked(&bytes[..]) else {
                return Ok(());
            };
            let Ok(repr) = TcpRepr::parse(&pkt, REMOTE, LOCAL, &ChecksumCaps::SOFTWARE) else {
                return Ok(());
            };
            let c = Connection::accept_cookie(
                &cfg,
                TUPLE,
                iss,
                &repr,
                (*mss).max(64),
                *wscale,
                *sack,
                now,
            );
            (c, Vec::new())
        }
    };
    let mut h = ConnHarness {
        c,
        cfg,
        now,
        clock,
        adv_edge: None,
        written: 0,
        read: 0,
        closed_seen: false,
    };
    if trace() {
        eprintln!("{cfg:?}\n{start:?}");
    }
    let _ = h.cfg;
    h.check();
    for seg in &script {
        h.drain();
        h.inject(seg);
        h.check();
    }
    let mut n = 0;
    while !u.is_empty() && n < MAX_OPS {
        let op: Op = u.arbitrary()?;
        if trace() {
            eprintln!("{:?} {:?} {:?}", h.c.state(), h.c.debug_seq(), op);
        }
        h.step(&op);
        n += 1;
    }
    h.drain();
    h.events();
    h.check();
    Ok(())
}

// ---------- a stack with a listener ----------

/// What a peer saw from the stack on one 4-tuple.
#[derive(Clone, Copy, Default)]
struct View {
    /// Highest sequence number the stack sent + 1.
    snd_max: u32,
    /// The stack's last acknowledgment (its RCV.NXT).
    rcv_nxt: u32,
    clock: PeerClock,
}

struct StackHarness {
    s: TcpStack<HeapBuf>,
    now: Instant,
    /// Keyed by (peer port, our port).
    views: HashMap<(u16, u16), View>,
    /// Our port of each peer's last active open.
    active_port: HashMap<u16, u16>,
    conns: Vec<ConnId>,
    closed: HashSet<ConnId>,
    /// Per-connection bytes written, for the payload check.
    peer_isn: u32,
}

impl StackHarness {
    fn learn(&mut self, id: ConnId) {
        if !self.conns.contains(&id) {
            self.conns.push(id);
        }
    }

    fn transmit(&mut self, max: usize, fail: bool) {
        let mut alloc = Alloc { fail };
        for _ in 0..max {
            let Some((dst, out)) = self.s.poll_transmit(self.now, &mut alloc) else {
                return;
            };
            assert_eq!(dst, REMOTE, "segment to an unknown address");
            let mut bytes = out.as_slice().to_vec();
            bytes.extend_from_slice(out.attached());
            let pkt = TcpPacket::new_checked(&bytes[..]).expect("emitted segment too short");
            let repr = TcpRepr::parse(&pkt, LOCAL, REMOTE, &ChecksumCaps::SOFTWARE)
                .expect("emitted segment does not parse or fails its checksum");
            let key = (repr.dst_port, repr.src_port);
            let v = self.views.entry(key).or_default();
            let end = repr.seq_number.0.wrapping_add(repr.segment_len() as u32);
            if repr.flags.contains(TcpFlags::SYN) {
                v.snd_max = end;
            } else if !repr.flags.contains(TcpFlags::RST) {
                v.snd_max = seq_max(v.snd_max, end);
            }
            if let Some(a) = repr.ack_number {
                v.rcv_nxt = a.0;
            }
            if let Some((tsval, _)) = repr.timestamp {
                v.clock.last_tsval = tsval;
            }
            if repr.flags.intersects(TcpFlags::RST | TcpFlags::SYN) {
                continue;
            }
            // Within what the connection sent.
            for &id in &self.conns {
                let Some(c) = self.s.conn(id) else { continue };
                let t = c.tuple();
                if (t.remote_port, t.local_port) == key {
                    let sv = c.debug_seq();
                    assert!(seq_le(end, sv.snd_max), "emitted segment beyond SND.MAX");
                    assert_eq!(
                        repr.ack_number.map(|a| a.0),
                        Some(sv.rcv_nxt),
                        "emitted ACK is not RCV.NXT"
                    );
                }
            }
        }
    }

    fn events(&mut self) {
        while let Some((id, ev)) = self.s.poll_event() {
            assert!(!self.closed.contains(&id), "event {ev:?} after Closed");
            if matches!(ev, Event::Closed(_)) {
                self.closed.insert(id);
            }
            self.learn(id);
        }
    }

    fn check(&mut self) {
        for &id in &self.conns {
            if let Some(c) = self.s.conn(id) {
                if let Err(e) = c.debug_invariants() {
                    panic!("invariant broken: {e}: {c:?} {:?}", c.debug_seq());
                }
            }
        }
    }

    fn step(&mut self, op: &StackOp) {
        match op {
            StackOp::Segment {
                peer,
                to,
                seg,
                bad_checksum,
            } => {
                let peer_port = PEER_PORT + u16::from(peer % 4);
                let dst = match to % 3 {
                    0 => LISTEN_PORT,
                    1 => self
                        .active_port
                        .get(&peer_port)
                        .copied()
                        .unwrap_or(LISTEN_PORT),
                    _ => CLOSED_PORT,
                };
                let v = self.views.get(&(peer_port, dst)).copied().unwrap_or(View {
                    snd_max: 0,
                    rcv_nxt: self.peer_isn.wrapping_add(u32::from(peer_port)),
                    clock: PeerClock::default(),
                });
                let b = Bases {
                    rcv_nxt: v.rcv_nxt,
                    snd_una: v.snd_max,
                    snd_max: v.snd_max,
                    ts_recent: None,
                };
                let mut bytes = build(seg, b, &v.clock, self.now, peer_port, dst);
                if *bad_checksum {
                    bytes[16] ^= 0x55;
                }
                let delivery = Ipv4Delivery {
                    repr: Ipv4Repr {
                        src_addr: REMOTE,
                        dst_addr: LOCAL,
                        protocol: IpProtocol::Tcp,
                        payload_len: bytes.len(),
                        ttl: 64,
                        dscp_ecn: 0,
                        ident: 0,
                    },
                    buf: HeapBuf::from_slice(&bytes, 0),
                };
                self.s.handle_packet(self.now, delivery);
            }
            StackOp::Connect(p) => {
                let peer_port = PEER_PORT + u16::from(p % 4);
                if let Ok(id) = self.s.connect(self.now, LOCAL, None, (REMOTE, peer_port)) {
                    if let Some(c) = self.s.conn(id) {
                        self.active_port.insert(peer_port, c.tuple().local_port);
                    }
                    self.learn(id);
                }
            }
            StackOp::Accept => {
                if let Some(id) = self.s.accept(LISTEN_PORT) {
                    self.learn(id);
                }
            }
            StackOp::App(i, a) => {
                if !self.conns.is_empty() {
                    let id = self.conns[usize::from(*i) % self.conns.len()];
                    let now = self.now;
                    self.s.with_conn(now, id, |c| match *a {
                        AppOp::SendSlice(n) | AppOp::SendBuf(n) => {
                            let data = vec![0xa5u8; usize::from(n)];
                            let _ = c.send_slice(&data, &mut Alloc { fail: false });
                        }
                        AppOp::Read(n) => {
                            let mut buf = vec![0u8; usize::from(n)];
                            let _ = c.read(&mut buf);
                        }
                        AppOp::Recv => {
                            let _ = c.recv();
                        }
                        AppOp::Shutdown => c.shutdown(now),
                        AppOp::Close => c.close(now),
                        AppOp::Abort => c.abort(now),
                    });
                }
            }
            StackOp::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.s.handle_timeout(self.now);
            }
            StackOp::AdvanceSecs(s) => {
                self.now += Duration::from_secs(u64::from(*s));
                self.s.handle_timeout(self.now);
            }
            StackOp::FireTimers => {
                if let Some(t) = self.s.poll_timeout() {
                    if t > self.now {
                        self.now = t;
                    }
                    self.s.handle_timeout(self.now);
                }
            }
            StackOp::Transmit(n) => {
                let n = if *n == 0 { MAX_DRAIN } else { usize::from(*n) };
                self.transmit(n, false);
            }
            StackOp::TransmitNoBuf => self.transmit(1, true),
            StackOp::Events => self.events(),
            StackOp::Recycle => while self.s.poll_recycle().is_some() {},
            StackOp::Unlisten => {
                self.s.unlisten(LISTEN_PORT);
            }
        }
        self.check();
    }
}

fn run_stack(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let knobs: Knobs = u.arbitrary()?;
    let backlog: u8 = u.arbitrary()?;
    let syn_backlog: u8 = u.arbitrary()?;
    let cookies: bool = u.arbitrary()?;
    let cfg = knobs.config();
    let now = Instant::from_millis(1_000_000);
    let mut secret = [0u8; 48];
    secret[..4].copy_from_slice(&knobs.iss.to_le_bytes());
    let mut s = TcpStack::new(cfg, ChecksumCaps::SOFTWARE, secret, now);
    s.listen(
        LISTEN_PORT,
        ListenConfig {
            backlog: 1 + usize::from(backlog % 4),
            syn_backlog: usize::from(syn_backlog % 4),
            syn_cookies: cookies,
        },
    )
    .expect("listen");
    if trace() {
        eprintln!("{cfg:?}\nbacklog {backlog} syn_backlog {syn_backlog} cookies {cookies}");
    }
    let mut h = StackHarness {
        s,
        now,
        views: HashMap::new(),
        active_port: HashMap::new(),
        conns: Vec::new(),
        closed: HashSet::new(),
        peer_isn: knobs.iss.rotate_left(11),
    };
    let mut n = 0;
    while !u.is_empty() && n < MAX_OPS {
        let op: StackOp = u.arbitrary()?;
        if trace() {
            eprintln!("{op:?}");
        }
        h.step(&op);
        n += 1;
    }
    h.transmit(MAX_DRAIN, false);
    h.events();
    h.check();
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let _ = if mode & 1 == 0 {
        run_conn(&mut u)
    } else {
        run_stack(&mut u)
    };
});
