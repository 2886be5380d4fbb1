//! TCP header parse and emit cost, in nanoseconds per segment.

use std::net::Ipv4Addr;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use wirespeed::wire::{ChecksumCaps, TcpFlags, TcpPacket, TcpRepr, TcpSeqNumber};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn syn() -> TcpRepr<'static> {
    TcpRepr {
        src_port: 43210,
        dst_port: 80,
        seq_number: TcpSeqNumber(0x1a2b_3c4d),
        ack_number: None,
        flags: TcpFlags::SYN,
        window_len: 64240,
        max_seg_size: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        sack_ranges: [None; 4],
        timestamp: Some((0x0037_a1b2, 0)),
        payload: &[],
    }
}

fn data(payload: &[u8]) -> TcpRepr<'_> {
    TcpRepr {
        src_port: 43210,
        dst_port: 80,
        seq_number: TcpSeqNumber(0x1a2b_3c4e),
        ack_number: Some(TcpSeqNumber(0x5e6f_7081)),
        flags: TcpFlags::PSH | TcpFlags::ACK,
        window_len: 502,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [None; 4],
        timestamp: Some((0x0037_a1c0, 0x9f00_1234)),
        payload,
    }
}

fn segment(repr: &TcpRepr) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit_with_payload(&mut buf, SRC, DST, &ChecksumCaps::SOFTWARE)
        .expect("buffer sized by buffer_len");
    buf
}

fn bench_tcp(c: &mut Criterion) {
    let payload = vec![0x5au8; 1448];
    let no_csum = ChecksumCaps {
        tcp: wirespeed::wire::Checksum::None,
        ..ChecksumCaps::SOFTWARE
    };
    let mut group = c.benchmark_group("tcp");

    let syn_bytes = segment(&syn());
    group.bench_function("parse/syn_full_options", |b| {
        b.iter(|| {
            let p = TcpPacket::new_unchecked(black_box(&syn_bytes[..]));
            TcpRepr::parse(&p, SRC, DST, &ChecksumCaps::SOFTWARE)
        })
    });

    let data_bytes = segment(&data(&payload));
    group.bench_function("parse/data_ts_1448/verify_checksum", |b| {
        b.iter(|| {
            let p = TcpPacket::new_unchecked(black_box(&data_bytes[..]));
            TcpRepr::parse(&p, SRC, DST, &ChecksumCaps::SOFTWARE)
        })
    });
    group.bench_function("parse/data_ts_1448/nic_checksum", |b| {
        b.iter(|| {
            let p = TcpPacket::new_unchecked(black_box(&data_bytes[..]));
            TcpRepr::parse(&p, SRC, DST, &no_csum)
        })
    });

    let syn_repr = syn();
    let mut syn_buf = vec![0u8; syn_repr.buffer_len()];
    group.bench_function("emit/syn_full_options", |b| {
        b.iter(|| {
            let mut p = TcpPacket::new_unchecked(&mut syn_buf[..]);
            black_box(&syn_repr).emit(&mut p, SRC, DST, &ChecksumCaps::SOFTWARE);
        })
    });

    // Zero copy: the payload sits in the buffer; emit writes the header only.
    let header_only = data(&[]);
    let mut data_buf = data_bytes.clone();
    group.bench_function("emit/data_ts_1448/compute_checksum", |b| {
        b.iter(|| {
            let mut p = TcpPacket::new_unchecked(&mut data_buf[..]);
            black_box(&header_only).emit(&mut p, SRC, DST, &ChecksumCaps::SOFTWARE);
        })
    });
    group.bench_function("emit/data_ts_1448/nic_checksum", |b| {
        b.iter(|| {
            let mut p = TcpPacket::new_unchecked(&mut data_buf[..]);
            black_box(&header_only).emit(&mut p, SRC, DST, &no_csum);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_tcp);
criterion_main!(benches);
