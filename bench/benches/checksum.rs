//! Internet checksum throughput: the word-at-a-time `sum` against the RFC 1071
//! byte-pair `reference_sum`, over frame-sized and jumbo buffers.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wirespeed::wire::checksum;

fn bench_sum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    for len in [64usize, 1500, 9000, 65535] {
        // Deterministic, non-trivial contents.
        let data: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("sum", len), &data, |b, d| {
            b.iter(|| checksum::sum(black_box(d)))
        });
        group.bench_with_input(BenchmarkId::new("reference_sum", len), &data, |b, d| {
            b.iter(|| checksum::reference_sum(black_box(d)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_sum);
criterion_main!(benches);
