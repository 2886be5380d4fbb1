//! The connection's hot paths in a fixed loop, for instruction counts
//! (callgrind), which stay put where wall-clock times on a shared machine
//! do not. The same work as `benches/tcp_conn.rs`, connection only (no
//! Ethernet or IPv4, checksums offloaded, segments parsed outside the
//! counted functions):
//!
//! - `rx`: the receiver takes one in-order full-sized segment, hands the
//!   data out (`recv`), drains events and released buffers, and builds the
//!   ACK it owes (one per two segments): `tcp_conn/rx_segment/conn_only`;
//! - `ack`: the sender takes one cumulative ACK for two segments and
//!   releases the acknowledged buffers: `tcp_conn/ack/two_segments`
//!   without the parse;
//! - `tx`: the sender builds one full data segment (`poll_transmit`).
//!
//! Each counted part is an `#[inline(never)]` function named `counted_*`:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*counted_rx*' \
//!     target/release/examples/conn_hotpath rx 20000
//! ```
//!
//! and divide the instructions by the segments it prints;
//! `bench/callgrind_tcp_conn.sh` does that for every path.
//!
//! It also prints the time per segment of the counted calls: the fastest
//! batch (of 32 segments or so) and the median. On a shared machine the
//! fastest batch is the steadier of the two: other work only ever adds.

use std::net::Ipv4Addr;

use wirespeed::buf::{HeapBuf, HeapPool, PacketBuf};
use wirespeed::tcp::{Connection, FourTuple, State, TcpConfig};
use wirespeed::wire::{Checksum, ChecksumCaps, TcpPacket, TcpRepr};
use wirespeed::{Duration, Instant};

const SEGMENT: usize = 1448;
const BATCH: usize = 32;

const OFFLOAD: ChecksumCaps = ChecksumCaps {
    ipv4: Checksum::None,
    tcp: Checksum::None,
    icmpv4: Checksum::None,
};

const A: FourTuple = FourTuple {
    local_addr: Ipv4Addr::new(198, 18, 0, 1),
    local_port: 49152,
    remote_addr: Ipv4Addr::new(198, 18, 0, 2),
    remote_port: 5000,
};

const B: FourTuple = FourTuple {
    local_addr: A.remote_addr,
    local_port: A.remote_port,
    remote_addr: A.local_addr,
    remote_port: A.local_port,
};

/// A segment from `poll_transmit`, header and attached payload in one
/// buffer (what a device would deliver after the IPv4 header).
fn flatten(pool: &mut HeapPool, seg: HeapBuf) -> HeapBuf {
    let mut f = wirespeed::buf::BufAlloc::alloc(pool).expect("pool");
    let n = seg.frame_len();
    let out = f.append(n).expect("fits");
    let h = seg.len();
    out[..h].copy_from_slice(seg.as_slice());
    out[h..].copy_from_slice(seg.attached());
    pool.recycle(seg);
    f
}

/// The segment in `frame` and its payload as a handle on the frame.
fn parse(frame: &HeapBuf, from: FourTuple) -> (TcpRepr<'_>, Option<HeapBuf>) {
    let tcp = TcpPacket::new_checked(frame.as_slice()).expect("tcp");
    let hl = tcp.header_len();
    let repr = TcpRepr::parse(&tcp, from.local_addr, from.remote_addr, &OFFLOAD).expect("parse");
    let repr = TcpRepr {
        payload: &frame.as_slice()[hl..hl + repr.payload.len()],
        ..repr
    };
    let payload = (!repr.payload.is_empty()).then(|| {
        let mut p = frame.share();
        let _ = p.advance(hl);
        p.truncate(repr.payload.len());
        p
    });
    (repr, payload)
}

struct Pair {
    a: Connection<HeapBuf>,
    b: Connection<HeapBuf>,
    now: Instant,
    pool: HeapPool,
    chunk: HeapBuf,
}

impl Pair {
    fn new() -> Pair {
        let cfg = TcpConfig {
            checksum: OFFLOAD,
            ..TcpConfig::default()
        };
        let mut pool = HeapPool::new(2048, 128, 1 << 20);
        let now = Instant::from_millis(1);
        let mut a = Connection::connect(&cfg, A, 0x1234_5678, now);
        let syn = a.poll_transmit(now, &mut pool).expect("SYN");
        let syn = flatten(&mut pool, syn);
        let (repr, _) = parse(&syn, A);
        let b = Connection::accept(&cfg, B, 0x9abc_def0, &repr, now);
        let mut p = Pair {
            a,
            b,
            now,
            pool,
            chunk: HeapBuf::from_slice(&vec![0x5a; SEGMENT * BATCH], 0),
        };
        for _ in 0..4 {
            p.b_to_a();
            p.a_to_b();
        }
        assert_eq!(p.a.state(), State::Established);
        assert_eq!(p.b.state(), State::Established);
        p
    }

    fn frames(&mut self, from_a: bool) -> Vec<HeapBuf> {
        let mut out = Vec::new();
        loop {
            let c = if from_a { &mut self.a } else { &mut self.b };
            let Some(s) = c.poll_transmit(self.now, &mut self.pool) else {
                break;
            };
            out.push(flatten(&mut self.pool, s));
        }
        out
    }

    fn deliver(&mut self, to_a: bool, frames: Vec<HeapBuf>) {
        let (c, from) = if to_a {
            (&mut self.a, B)
        } else {
            (&mut self.b, A)
        };
        for f in frames {
            let (repr, p) = parse(&f, from);
            c.handle_segment(self.now, &repr, p);
            self.pool.recycle(f);
        }
        while let Some(d) = c.recv() {
            self.pool.recycle(d);
        }
        while c.poll_event().is_some() {}
        while let Some(r) = c.poll_recycle() {
            self.pool.recycle(r);
        }
    }

    fn a_to_b(&mut self) {
        let f = self.frames(true);
        self.deliver(false, f);
    }

    fn b_to_a(&mut self) {
        let f = self.frames(false);
        self.deliver(true, f);
    }

    fn stock(&mut self) {
        while self.a.send_queued() < 4 * self.chunk.len() {
            if self.a.send(self.chunk.share()).is_err() {
                break;
            }
        }
    }
}

#[inline(never)]
fn counted_rx(
    b: &mut Connection<HeapBuf>,
    now: Instant,
    segs: Vec<(TcpRepr<'_>, Option<HeapBuf>)>,
    pool: &mut HeapPool,
    spent: &mut Vec<HeapBuf>,
    acks: &mut Vec<HeapBuf>,
) -> usize {
    let mut got = 0;
    for (repr, p) in segs {
        b.handle_segment(now, &repr, p);
        while let Some(d) = b.recv() {
            got += d.len();
            spent.push(d);
        }
        while b.poll_event().is_some() {}
        while let Some(r) = b.poll_recycle() {
            spent.push(r);
        }
        while let Some(ack) = b.poll_transmit(now, pool) {
            acks.push(ack);
        }
    }
    got
}

#[inline(never)]
fn counted_ack(
    a: &mut Connection<HeapBuf>,
    now: Instant,
    segs: Vec<(TcpRepr<'_>, Option<HeapBuf>)>,
    spent: &mut Vec<HeapBuf>,
) {
    for (repr, p) in segs {
        a.handle_segment(now, &repr, p);
        while let Some(r) = a.poll_recycle() {
            spent.push(r);
        }
        while a.poll_event().is_some() {}
    }
}

#[inline(never)]
fn counted_tx(
    a: &mut Connection<HeapBuf>,
    now: Instant,
    pool: &mut HeapPool,
    out: &mut Vec<HeapBuf>,
) {
    while let Some(s) = a.poll_transmit(now, pool) {
        out.push(s);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "rx".into());
    let total: usize = args
        .next()
        .map_or(20_000, |n| n.parse().expect("segment count"));
    let mut p = Pair::new();
    let mut spent = Vec::with_capacity(4 * BATCH);
    let mut acks = Vec::with_capacity(4 * BATCH);
    let mut counted = 0usize;
    let mut times: Vec<f64> = Vec::new();
    while counted < total {
        p.stock();
        match mode.as_str() {
            "rx" => {
                let frames = p.frames(true);
                let n = frames.len();
                let segs: Vec<_> = frames.iter().map(|f| parse(f, A)).collect();
                let t = std::time::Instant::now();
                let got = counted_rx(&mut p.b, p.now, segs, &mut p.pool, &mut spent, &mut acks);
                times.push(t.elapsed().as_nanos() as f64 / n as f64);
                assert_eq!(got, n * SEGMENT);
                counted += n;
                for f in frames.into_iter().chain(spent.drain(..)) {
                    p.pool.recycle(f);
                }
                let acks: Vec<_> = acks.drain(..).map(|s| flatten(&mut p.pool, s)).collect();
                p.deliver(true, acks);
            }
            "ack" => {
                // The receiver's ACK after every second segment.
                let mut frames = Vec::new();
                for f in p.frames(true) {
                    p.deliver(false, vec![f]);
                    frames.extend(p.frames(false));
                }
                let n = frames.len();
                let segs: Vec<_> = frames.iter().map(|f| parse(f, B)).collect();
                let t = std::time::Instant::now();
                counted_ack(&mut p.a, p.now, segs, &mut spent);
                times.push(t.elapsed().as_nanos() as f64 / n as f64);
                counted += n;
                for f in frames.into_iter().chain(spent.drain(..)) {
                    p.pool.recycle(f);
                }
            }
            "tx" => {
                let t = std::time::Instant::now();
                counted_tx(&mut p.a, p.now, &mut p.pool, &mut acks);
                times.push(t.elapsed().as_nanos() as f64 / acks.len().max(1) as f64);
                counted += acks.len();
                let frames: Vec<_> = acks.drain(..).map(|s| flatten(&mut p.pool, s)).collect();
                p.deliver(false, frames);
                p.b_to_a();
            }
            m => panic!("unknown mode {m}: rx, ack or tx"),
        }
        p.now += Duration::from_micros(1);
    }
    times.sort_by(f64::total_cmp);
    let fastest = times.first().copied().unwrap_or(0.0);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!(
        "{mode}: {counted} segments; ns/segment: fastest batch {fastest:.1}, median {median:.1}"
    );
}
