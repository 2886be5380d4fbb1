//! Interval logs merge exactly: logs written from per-core interval streams
//! and read back through `wirespeed report merge` give the very histogram
//! that was recorded, count for count; logs from two machines merge into
//! their union, second by second.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use wirespeed_bench::hlog::{read_log_file, write_log_file, LogInterval};
use wirespeed_bench::stats::{latency_histogram, Aggregator, CoreStats};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ws-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small deterministic generator (xorshift64*), so that the test needs
/// no RNG crate and fails the same way every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A latency with a long tail: mostly tens of microseconds, sometimes
    /// milliseconds, rarely seconds.
    fn latency(&mut self) -> u64 {
        let r = self.next();
        match r % 1000 {
            0 => 1_000_000_000 + r % 2_000_000_000,
            1..=20 => 1_000_000 + r % 50_000_000,
            _ => 5_000 + r % 100_000,
        }
    }
}

/// Records `seconds` seconds on `cores` cores; returns each core's interval
/// stream as log intervals starting at `start`, and everything recorded.
fn record(
    cores: usize,
    seconds: u64,
    start: Duration,
    seed: u64,
) -> (Vec<Vec<LogInterval>>, Histogram<u64>) {
    let mut rng = Rng(seed);
    let mut stats: Vec<CoreStats> = (0..cores).map(|_| CoreStats::new()).collect();
    let mut streams: Vec<Vec<LogInterval>> = vec![Vec::new(); cores];
    let mut all = latency_histogram();
    for _ in 0..seconds {
        for (core, s) in stats.iter_mut().enumerate() {
            for _ in 0..(2_000 + rng.next() % 2_000) {
                let ns = rng.latency();
                s.record_latency(ns);
                all.record(ns).unwrap();
            }
            let iv = s.take_interval();
            streams[core].push(LogInterval {
                start: start + Duration::from_secs(iv.seq),
                length: Duration::from_secs(1),
                histogram: iv.latency,
            });
        }
    }
    (streams, all)
}

fn merge(args: &[&Path], extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wirespeed"))
        .args(["report", "merge"])
        .args(args)
        .args(extra)
        .output()
        .expect("the wirespeed binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn sum(intervals: &[LogInterval]) -> Histogram<u64> {
    let mut h = latency_histogram();
    for iv in intervals {
        h.add(&iv.histogram).unwrap();
    }
    h
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn per_core_logs_merge_to_what_was_recorded() {
    let dir = TempDir::new("hlog-cores");
    let start = Duration::from_millis(1_700_000_000_123);
    let (streams, all) = record(4, 6, start, 0x5eed);
    let mut files = Vec::new();
    for (core, stream) in streams.iter().enumerate() {
        let f = dir.path(&format!("core{core}.hlog"));
        write_log_file(&f, start, stream.clone()).unwrap();
        // Each log reads back as written.
        let back = read_log_file(&f).unwrap();
        assert_eq!(back.len(), stream.len());
        for (a, b) in stream.iter().zip(&back) {
            assert_eq!(a.start, b.start);
            assert_eq!(a.histogram, b.histogram);
        }
        files.push(f);
    }
    let out = dir.path("merged.hlog");
    let report = dir.path("merged.json");
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let text = merge(
        &paths,
        &[
            "-o",
            out.to_str().unwrap(),
            "--json",
            report.to_str().unwrap(),
            "--latency",
        ],
    );
    assert!(text.contains("merged 4 files: 6 intervals"), "{text}");
    assert!(text.contains("Detailed Percentile spectrum"), "{text}");

    let merged = read_log_file(&out).unwrap();
    assert_eq!(merged.len(), 6, "one merged interval per second");
    for (i, iv) in merged.iter().enumerate() {
        // Per second: the four cores' intervals of that second, exactly.
        let mut expect = latency_histogram();
        for stream in &streams {
            expect.add(&stream[i].histogram).unwrap();
        }
        assert_eq!(iv.histogram, expect, "second {i}");
        assert_eq!(iv.start, Duration::from_secs(1_700_000_000 + i as u64));
    }
    let total = sum(&merged);
    assert_eq!(total, all);
    // Count per value, spelled out.
    for v in all.iter_recorded() {
        assert_eq!(total.count_at(v.value_iterated_to()), v.count_at_value());
    }

    let j = json(&report);
    assert_eq!(j["intervals"], 6);
    assert_eq!(j["interval_s"], 1.0);
    assert_eq!(j["latency_us"]["count"], all.len());
    assert_eq!(
        j["latency_us"]["max"].as_f64().unwrap(),
        all.max() as f64 / 1e3
    );
    assert_eq!(
        j["latency_us"]["p99"].as_f64().unwrap(),
        all.value_at_quantile(0.99) as f64 / 1e3
    );
}

#[test]
fn aggregated_run_log_equals_the_recording() {
    // What a run writes: the cores' intervals merged per second by the
    // Aggregator, one log.
    let dir = TempDir::new("hlog-run");
    let start = SystemTime::now();
    let epoch = start.duration_since(UNIX_EPOCH).unwrap();
    let (streams, all) = record(3, 5, epoch, 42);
    let mut agg = Aggregator::new(3);
    let mut merged = Vec::new();
    for second in 0..5 {
        for stream in &streams {
            let mut iv = wirespeed_bench::stats::Interval::empty(second as u64);
            iv.latency = stream[second].histogram.clone();
            if let Some(m) = agg.push(iv) {
                merged.push(LogInterval {
                    start: epoch + Duration::from_secs(m.seq),
                    length: Duration::from_secs(1),
                    histogram: m.latency,
                });
            }
        }
    }
    let f = dir.path("run.hlog");
    write_log_file(&f, epoch, merged).unwrap();
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.contains("#[StartTime: "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with('#') && l.contains("nanoseconds")),
        "{text}"
    );
    let back = read_log_file(&f).unwrap();
    assert_eq!(back.len(), 5);
    assert_eq!(sum(&back), all);
    let out = dir.path("again.hlog");
    merge(&[&f], &["-o", out.to_str().unwrap()]);
    assert_eq!(sum(&read_log_file(&out).unwrap()), all);
}

#[test]
fn two_machines_merge_to_their_union() {
    let dir = TempDir::new("hlog-machines");
    // Machine B started 2.3 s after A (its clock's seconds are offset by
    // 0.3 s); both ran 5 s, so they overlap for about 3 s.
    let a_start = Duration::from_millis(1_700_000_100_000);
    let b_start = Duration::from_millis(1_700_000_102_300);
    let (a, a_all) = record(2, 5, a_start, 7);
    let (b, b_all) = record(2, 5, b_start, 8);
    let mut files = Vec::new();
    for (name, streams, start) in [("a", &a, a_start), ("b", &b, b_start)] {
        for (core, s) in streams.iter().enumerate() {
            let f = dir.path(&format!("{name}{core}.hlog"));
            write_log_file(&f, start, s.clone()).unwrap();
            files.push(f);
        }
    }
    let out = dir.path("union.hlog");
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    merge(&paths, &["-o", out.to_str().unwrap()]);
    let merged = read_log_file(&out).unwrap();

    let mut union = a_all.clone();
    union.add(&b_all).unwrap();
    assert_eq!(sum(&merged), union);
    // Seconds 100..104 from A, 102..106 from B (102.3 rounds to 102):
    // seven distinct seconds, of which 102, 103 and 104 hold both.
    let secs: Vec<u64> = merged
        .iter()
        .map(|iv| iv.start.as_secs() - 1_700_000_000)
        .collect();
    assert_eq!(secs, vec![100, 101, 102, 103, 104, 105, 106]);
    for (i, iv) in merged.iter().enumerate() {
        let mut expect = latency_histogram();
        let sec = secs[i];
        for s in &a {
            if (100..105).contains(&sec) {
                expect.add(&s[(sec - 100) as usize].histogram).unwrap();
            }
        }
        for s in &b {
            if (102..107).contains(&sec) {
                expect.add(&s[(sec - 102) as usize].histogram).unwrap();
            }
        }
        assert_eq!(iv.histogram, expect, "second {sec}");
    }
}
