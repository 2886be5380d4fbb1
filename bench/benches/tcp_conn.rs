//! The engine's TCP connection on its hot paths, measured as
//! `smoltcp_tcp.rs` measures smoltcp so the two compare as ratios.
//!
//! Two `Connection<HeapBuf>`s, established (timestamps, SACK and window
//! scaling on, so full-sized segments carry 1448 bytes), exchange whole
//! Ethernet frames built outside the timed sections: the TCP header
//! `poll_transmit` built and its attached payload copied behind Ethernet
//! and IPv4 headers, as a device's gather DMA would lay them out.
//!
//! - `tcp_conn/rx_segment/*`: the receiver's fast path per in-order
//!   full-sized segment: Ethernet, IPv4 and TCP parse, `handle_segment`
//!   with the payload as a handle on the frame, the data drained with
//!   `recv()` (zero copy, as smoltcp's bench drains in place), events
//!   drained, and the ACK the connection builds every second segment
//!   (`poll_transmit`). `sw_checksum` verifies IPv4 and TCP checksums and
//!   computes the ACK's in software; `offload` leaves both to the NIC;
//!   `conn_only` is `offload` with the parse outside the timed section:
//!   the connection's own work.
//! - `tcp_conn/ack/*`: the sender taking one cumulative ACK (parse with
//!   software checksums, `handle_segment`, acknowledged buffers released
//!   through `poll_recycle`), for one or for two segments.
//! - `tcp_conn/tx_segment/*`: `poll_transmit` of one full data segment
//!   (header with options, payload attached as a shared view), checksum
//!   over header and payload in software or left to the NIC.
//! - `tcp_conn/bulk`: one connection moving 4 MiB per iteration, both
//!   ends in one thread, software checksums, one copy per segment (the
//!   "wire"); criterion reports decimal bytes/s (GB/s × 8 = Gbit/s).
//!
//! `bench/compare_smoltcp.sh` runs this and `smoltcp_tcp` interleaved and
//! prints the ratios.

use std::net::Ipv4Addr;
use std::time::Duration as StdDuration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wirespeed::buf::{HeapBuf, HeapPool, PacketBuf};
use wirespeed::tcp::{Connection, FourTuple, State, TcpConfig};
use wirespeed::wire::{
    Checksum, ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol,
    Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
};
use wirespeed::{Duration, Instant};

/// Payload of a full-sized segment with the timestamp option.
const SEGMENT: usize = 1448;
/// Segments per timed batch (even: every segment gets acknowledged).
const BATCH: usize = 32;
const ETH_IP: usize = 14 + 20;

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

fn reverse(t: FourTuple) -> FourTuple {
    FourTuple {
        local_addr: t.remote_addr,
        local_port: t.remote_port,
        remote_addr: t.local_addr,
        remote_port: t.local_port,
    }
}

fn mac(ip: Ipv4Addr) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, ip.octets()[3]])
}

/// One end: a connection, its 4-tuple and checksum capabilities.
struct End {
    conn: Connection<HeapBuf>,
    tuple: FourTuple,
    caps: ChecksumCaps,
}

/// A segment from `poll_transmit` as a whole Ethernet frame in a buffer
/// from `pool` (header and attached payload gathered, one copy).
fn encap(pool: &mut HeapPool, seg: &HeapBuf, t: &FourTuple, caps: &ChecksumCaps) -> HeapBuf {
    let tcp_len = seg.frame_len();
    let mut f = wirespeed::buf::BufAlloc::alloc(pool).expect("pool");
    let out = f.append(ETH_IP + tcp_len).expect("frame fits");
    EthernetRepr {
        src_addr: mac(t.local_addr),
        dst_addr: mac(t.remote_addr),
        ethertype: EtherType::Ipv4,
        vlan: None,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut out[..14]));
    Ipv4Repr {
        src_addr: t.local_addr,
        dst_addr: t.remote_addr,
        protocol: IpProtocol::Tcp,
        payload_len: tcp_len,
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut out[14..ETH_IP]), caps);
    let h = ETH_IP + seg.len();
    out[ETH_IP..h].copy_from_slice(seg.as_slice());
    out[h..].copy_from_slice(seg.attached());
    f
}

/// Parses a frame (Ethernet, IPv4, TCP; checksums as `caps` say) and hands
/// the segment to `conn`, the payload as a handle on the frame (no copy).
#[inline]
fn deliver(conn: &mut Connection<HeapBuf>, now: Instant, frame: &HeapBuf, caps: &ChecksumCaps) {
    let eth = EthernetFrame::new_checked(frame.as_slice()).expect("ethernet");
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
    let ipr = Ipv4Repr::parse(&ip, caps).expect("ipv4 header");
    let tcp = TcpPacket::new_checked(ip.payload()).expect("tcp");
    let repr = TcpRepr::parse(&tcp, ipr.src_addr, ipr.dst_addr, caps).expect("tcp header");
    let payload = (!repr.payload.is_empty()).then(|| {
        let mut p = frame.share();
        let _ = p.advance(eth.header_len() + ip.header_len() + tcp.header_len());
        p.truncate(repr.payload.len());
        p
    });
    conn.handle_segment(now, &repr, payload);
}

/// Everything `from` has to send, as frames.
fn transmit(from: &mut End, now: Instant, pool: &mut HeapPool, out: &mut Vec<HeapBuf>) {
    while let Some(seg) = from.conn.poll_transmit(now, pool) {
        out.push(encap(pool, &seg, &from.tuple, &from.caps));
        pool.recycle(seg);
    }
}

/// Client (sender) and server (receiver), established; `b_cfg` for the
/// receiver (delayed ACKs).
fn connected(caps: ChecksumCaps, b_cfg: TcpConfig, pool: &mut HeapPool) -> (End, End, Instant) {
    let cfg = TcpConfig {
        checksum: caps,
        ..TcpConfig::default()
    };
    let b_cfg = TcpConfig {
        checksum: caps,
        ..b_cfg
    };
    let mut now = Instant::from_millis(1);
    let mut a = End {
        conn: Connection::connect(&cfg, A, 0x1234_5678, now),
        tuple: A,
        caps,
    };
    let mut frames = Vec::new();
    transmit(&mut a, now, pool, &mut frames);
    let syn = frames.pop().expect("SYN");
    let mut b = {
        let eth = EthernetFrame::new_checked(syn.as_slice()).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let repr = TcpRepr::parse(&tcp, A.local_addr, A.remote_addr, &caps).unwrap();
        End {
            conn: Connection::accept(&b_cfg, reverse(A), 0x9abc_def0, &repr, now),
            tuple: reverse(A),
            caps,
        }
    };
    for _ in 0..10 {
        now += Duration::from_micros(10);
        exchange(&mut a, &mut b, now, pool, &mut frames);
        if a.conn.state() == State::Established && b.conn.state() == State::Established {
            return (a, b, now);
        }
    }
    panic!("no connection: {:?} / {:?}", a.conn, b.conn);
}

/// One round both ways, untimed: `a` sends, `b` takes it all in and
/// drains it, `b`'s answers go back to `a`. Returns the bytes `b` got.
fn exchange(
    a: &mut End,
    b: &mut End,
    now: Instant,
    pool: &mut HeapPool,
    frames: &mut Vec<HeapBuf>,
) -> usize {
    transmit(a, now, pool, frames);
    for f in frames.drain(..) {
        deliver(&mut b.conn, now, &f, &b.caps);
        pool.recycle(f);
    }
    let got = drain(&mut b.conn, pool);
    transmit(b, now, pool, frames);
    for f in frames.drain(..) {
        deliver(&mut a.conn, now, &f, &a.caps);
        pool.recycle(f);
    }
    while let Some(r) = a.conn.poll_recycle() {
        pool.recycle(r);
    }
    while a.conn.poll_event().is_some() {}
    got
}

/// Drains received data (zero copy), events and released buffers.
#[inline]
fn drain(conn: &mut Connection<HeapBuf>, pool: &mut HeapPool) -> usize {
    let mut n = 0;
    while let Some(p) = conn.recv() {
        n += p.len();
        pool.recycle(p);
    }
    while conn.poll_event().is_some() {}
    while let Some(r) = conn.poll_recycle() {
        pool.recycle(r);
    }
    n
}

/// Keeps `a`'s send queue stocked with whole batches of full segments
/// (zero copy: shares of one application buffer).
fn stock(a: &mut End, chunk: &HeapBuf) {
    while a.conn.send_queued() < 4 * chunk.len() {
        if a.conn.send(chunk.share()).is_err() {
            break;
        }
    }
}

fn pool() -> HeapPool {
    HeapPool::new(2048, 128, 1 << 20)
}

#[derive(Clone, Copy, PartialEq)]
enum Rx {
    SwChecksum,
    Offload,
    ConnOnly,
}

fn bench_rx_segment(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_conn/rx_segment");
    group.measurement_time(StdDuration::from_secs(5));
    group.warm_up_time(StdDuration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for (name, mode) in [
        ("sw_checksum", Rx::SwChecksum),
        ("offload", Rx::Offload),
        ("conn_only", Rx::ConnOnly),
    ] {
        let caps = if mode == Rx::SwChecksum {
            ChecksumCaps::SOFTWARE
        } else {
            OFFLOAD
        };
        let mut pool = pool();
        let (mut a, mut b, mut now) = connected(caps, TcpConfig::default(), &mut pool);
        let chunk = HeapBuf::from_slice(&vec![0x5au8; SEGMENT * BATCH], 0);
        let mut batch: Vec<HeapBuf> = Vec::with_capacity(4 * BATCH);
        let mut acks: Vec<HeapBuf> = Vec::with_capacity(4 * BATCH);
        let mut spent: Vec<HeapBuf> = Vec::with_capacity(4 * BATCH);
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut timed = StdDuration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    // Untimed: the sender builds the segments its window
                    // allows (a whole batch once cwnd has grown).
                    stock(&mut a, &chunk);
                    transmit(&mut a, now, &mut pool, &mut batch);
                    let segs = batch.len();
                    assert!(segs > 0, "sender stuck");
                    let mut got = 0;
                    if mode == Rx::ConnOnly {
                        // The parse, untimed; the connection's work, timed.
                        let parsed: Vec<(TcpRepr<'_>, HeapBuf)> = batch
                            .iter()
                            .map(|f| {
                                let s = &f.as_slice()[ETH_IP..];
                                let tcp = TcpPacket::new_checked(s).unwrap();
                                let hl = tcp.header_len();
                                let repr = TcpRepr::parse(&tcp, A.local_addr, A.remote_addr, &caps)
                                    .unwrap();
                                let mut p = f.share();
                                let _ = p.advance(ETH_IP + hl);
                                p.truncate(repr.payload.len());
                                // Re-borrow the payload from the frame itself.
                                let repr = TcpRepr {
                                    payload: &s[hl..hl + repr.payload.len()],
                                    ..repr
                                };
                                (repr, p)
                            })
                            .collect();
                        let start = std::time::Instant::now();
                        for (repr, p) in parsed {
                            b.conn.handle_segment(now, &repr, Some(p));
                            while let Some(d) = b.conn.recv() {
                                got += d.len();
                                spent.push(d);
                            }
                            while b.conn.poll_event().is_some() {}
                            while let Some(r) = b.conn.poll_recycle() {
                                spent.push(r);
                            }
                            while let Some(ack) = b.conn.poll_transmit(now, &mut pool) {
                                acks.push(ack);
                            }
                        }
                        timed += start.elapsed();
                    } else {
                        let start = std::time::Instant::now();
                        for f in &batch {
                            deliver(&mut b.conn, now, f, &caps);
                            while let Some(d) = b.conn.recv() {
                                got += d.len();
                                spent.push(d);
                            }
                            while b.conn.poll_event().is_some() {}
                            while let Some(r) = b.conn.poll_recycle() {
                                spent.push(r);
                            }
                            while let Some(ack) = b.conn.poll_transmit(now, &mut pool) {
                                acks.push(ack);
                            }
                        }
                        timed += start.elapsed();
                    }
                    assert_eq!(got, segs * SEGMENT);
                    if segs.is_multiple_of(2) {
                        // What was measured: one ACK per two segments.
                        assert_eq!(acks.len(), segs / 2, "ACKs per batch");
                    }
                    // Untimed: frames and buffers back, ACKs to the sender.
                    for f in batch.drain(..) {
                        pool.recycle(f);
                    }
                    for s in spent.drain(..) {
                        pool.recycle(s);
                    }
                    for ack in acks.drain(..) {
                        let f = encap(&mut pool, &ack, &b.tuple, &caps);
                        pool.recycle(ack);
                        deliver(&mut a.conn, now, &f, &caps);
                        pool.recycle(f);
                    }
                    while let Some(r) = a.conn.poll_recycle() {
                        pool.recycle(r);
                    }
                    while a.conn.poll_event().is_some() {}
                    now += Duration::from_micros(1);
                    done += segs as u64;
                }
                timed.mul_f64(iters as f64 / done as f64)
            });
        });
    }
    group.finish();
}

fn bench_ack(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_conn/ack");
    group.measurement_time(StdDuration::from_secs(4));
    group.warm_up_time(StdDuration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for (name, delayed_ack) in [
        ("one_segment", Duration::ZERO),
        ("two_segments", TcpConfig::default().delayed_ack),
    ] {
        let caps = ChecksumCaps::SOFTWARE;
        let b_cfg = TcpConfig {
            delayed_ack,
            ..TcpConfig::default()
        };
        let mut pool = pool();
        let (mut a, mut b, mut now) = connected(caps, b_cfg, &mut pool);
        let chunk = HeapBuf::from_slice(&vec![0x5au8; SEGMENT * BATCH], 0);
        let mut frames: Vec<HeapBuf> = Vec::with_capacity(4 * BATCH);
        let mut acks: Vec<HeapBuf> = Vec::with_capacity(4 * BATCH);
        let mut released: Vec<HeapBuf> = Vec::with_capacity(4 * BATCH);
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut timed = StdDuration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    // Untimed: data to the receiver one segment at a time,
                    // the ACK it owes after each (one per segment or per
                    // two) as frames.
                    stock(&mut a, &chunk);
                    transmit(&mut a, now, &mut pool, &mut frames);
                    for f in frames.drain(..) {
                        deliver(&mut b.conn, now, &f, &b.caps);
                        pool.recycle(f);
                        drain(&mut b.conn, &mut pool);
                        transmit(&mut b, now, &mut pool, &mut acks);
                    }
                    let n = acks.len();
                    assert!(n > 0, "no ACKs");
                    // Timed: the sender takes them.
                    let start = std::time::Instant::now();
                    for f in &acks {
                        deliver(&mut a.conn, now, f, &caps);
                        while let Some(r) = a.conn.poll_recycle() {
                            released.push(r);
                        }
                        while a.conn.poll_event().is_some() {}
                    }
                    timed += start.elapsed();
                    for f in acks.drain(..) {
                        pool.recycle(f);
                    }
                    released.clear();
                    now += Duration::from_micros(1);
                    done += n as u64;
                }
                timed.mul_f64(iters as f64 / done as f64)
            });
        });
    }
    group.finish();
}

fn bench_tx_segment(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_conn/tx_segment");
    group.measurement_time(StdDuration::from_secs(4));
    group.warm_up_time(StdDuration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for (name, caps) in [
        ("sw_checksum", ChecksumCaps::SOFTWARE),
        ("offload", OFFLOAD),
    ] {
        let mut pool = pool();
        let (mut a, mut b, mut now) = connected(caps, TcpConfig::default(), &mut pool);
        let chunk = HeapBuf::from_slice(&vec![0x5au8; SEGMENT * BATCH], 0);
        let mut segs: Vec<HeapBuf> = Vec::with_capacity(4 * BATCH);
        let mut frames: Vec<HeapBuf> = Vec::with_capacity(4 * BATCH);
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut timed = StdDuration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    stock(&mut a, &chunk);
                    // Timed: the sender builds what its window allows.
                    let start = std::time::Instant::now();
                    while let Some(s) = a.conn.poll_transmit(now, &mut pool) {
                        segs.push(s);
                    }
                    timed += start.elapsed();
                    let n = segs.len();
                    assert!(n > 0, "sender stuck");
                    assert!(segs.iter().all(|s| s.attached().len() == SEGMENT));
                    // Untimed: to the receiver and its ACKs back.
                    for s in segs.drain(..) {
                        frames.push(encap(&mut pool, &s, &a.tuple, &caps));
                        pool.recycle(s);
                    }
                    for f in frames.drain(..) {
                        deliver(&mut b.conn, now, &f, &b.caps);
                        pool.recycle(f);
                    }
                    drain(&mut b.conn, &mut pool);
                    transmit(&mut b, now, &mut pool, &mut frames);
                    for f in frames.drain(..) {
                        deliver(&mut a.conn, now, &f, &a.caps);
                        pool.recycle(f);
                    }
                    while let Some(r) = a.conn.poll_recycle() {
                        pool.recycle(r);
                    }
                    while a.conn.poll_event().is_some() {}
                    now += Duration::from_micros(1);
                    done += n as u64;
                }
                timed.mul_f64(iters as f64 / done as f64)
            });
        });
    }
    group.finish();
}

fn bench_bulk(c: &mut Criterion) {
    const PER_ITER: usize = 4 << 20;
    let mut group = c.benchmark_group("tcp_conn");
    group.measurement_time(StdDuration::from_secs(8));
    group.warm_up_time(StdDuration::from_secs(1));
    group.sample_size(20);
    group.throughput(Throughput::BytesDecimal(PER_ITER as u64));
    let caps = ChecksumCaps::SOFTWARE;
    let mut pool = pool();
    let (mut a, mut b, mut now) = connected(caps, TcpConfig::default(), &mut pool);
    let chunk = HeapBuf::from_slice(&vec![0xa5u8; 64 * 1024], 0);
    let mut frames: Vec<HeapBuf> = Vec::with_capacity(256);
    group.bench_function("bulk", |bench| {
        bench.iter(|| {
            let (mut sent, mut got) = (0, 0);
            while got < PER_ITER {
                while sent < PER_ITER {
                    let n = (PER_ITER - sent).min(chunk.len());
                    let mut buf = chunk.share();
                    buf.truncate(n);
                    if a.conn.send(buf).is_err() {
                        break;
                    }
                    sent += n;
                }
                got += exchange(&mut a, &mut b, now, &mut pool, &mut frames);
                now += Duration::from_micros(1);
            }
            assert_eq!(got, PER_ITER);
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_rx_segment,
    bench_ack,
    bench_tx_segment,
    bench_bulk
);
criterion_main!(benches);
