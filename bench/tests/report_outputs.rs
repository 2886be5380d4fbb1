//! A run's outputs from its statistics: the JSON report holds every field
//! and its figures agree with each other; the SVG plot is well-formed;
//! the exit outcome follows --error-threshold.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use wirespeed_bench::args::LoadArgs;
use wirespeed_bench::cli::{parse_from, Invocation};
use wirespeed_bench::collect::{conclude_load, Collector};
use wirespeed_bench::report::{Live, Outcome};
use wirespeed_bench::stats::{CoreStats, ErrorKind, StatusClass};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ws-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_args(args: &[&str]) -> LoadArgs {
    match parse_from(["wirespeed", "load"].iter().chain(args)) {
        Ok(Invocation::Load(l)) => l,
        other => panic!("{other:?}"),
    }
}

/// Drives two cores for `seconds` through a Collector, as the runtime
/// does; returns the report's outcome and the JSON file's contents.
fn simulated_run(args: &LoadArgs, seconds: u64, errors_per_second: u64) -> (Outcome, String) {
    let mut c: Collector<Vec<u8>> = Collector::new(
        2,
        SystemTime::now(),
        Duration::from_secs(1),
        Some(Live::new(Vec::new(), false, Some(args.duration))),
        None,
    );
    let mut cores = [CoreStats::new(), CoreStats::new()];
    for core in cores.iter_mut() {
        for _ in 0..50 {
            core.connection_opened();
        }
    }
    for second in 0..seconds {
        for (i, core) in cores.iter_mut().enumerate() {
            for k in 0..1000u64 {
                core.counters.requests += 1;
                core.counters.responses += 1;
                core.counters.bytes_tx += 100;
                core.counters.bytes_rx += 1_000;
                core.record_status(if k % 250 == 0 { 404 } else { 200 });
                core.record_latency(20_000 + k * 37 + i as u64 * 11 + second);
            }
            for _ in 0..errors_per_second {
                core.record_error(ErrorKind::Reset);
            }
            core.counters.late_sends += 2;
            c.push(core.take_interval()).unwrap();
        }
    }
    cores[1].connection_closed();
    c.push(cores[0].take_interval()).unwrap();
    c.push(cores[1].take_interval()).unwrap();
    let totals = c.finish().unwrap();
    let mut text = Vec::new();
    let (_, outcome) =
        conclude_load(args, &totals, Duration::from_secs(seconds), &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("load http") && text.contains("p99.99"),
        "{text}"
    );
    let json = args
        .json
        .as_ref()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap_or_default();
    (outcome, json)
}

#[test]
fn json_report_fields_agree() {
    let dir = TempDir::new("report-json");
    let json_path = dir.file("run.json");
    let plot_path = dir.file("run.svg");
    let args = load_args(&[
        "http",
        "--duration",
        "4s",
        "--cores",
        "2",
        "--json",
        &json_path,
        "--plot",
        &plot_path,
    ]);
    let (outcome, json) = simulated_run(&args, 4, 0);
    assert_eq!(outcome, Outcome::Passed);
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();

    for field in [
        "mode",
        "connections",
        "cores",
        "duration_s",
        "requests",
        "responses",
        "connections_opened",
        "connections_closed",
        "errors",
        "rps",
        "cps",
        "bytes_rx",
        "bytes_tx",
        "gbps",
        "late_sends",
        "latency_us",
        "status",
    ] {
        assert!(j.get(field).is_some(), "{field} missing from {json}");
    }
    for p in ["p50", "p90", "p99", "p999", "p9999", "max", "mean"] {
        assert!(
            j["latency_us"][p].is_f64(),
            "latency_us.{p} is not a float: {json}"
        );
    }
    for kind in ErrorKind::ALL {
        assert_eq!(j["errors"][kind.name()], 0, "{json}");
    }
    assert_eq!(j["errors"]["total"], 0);
    for class in StatusClass::ALL {
        assert!(j["status"][class.name()].is_u64(), "{json}");
    }

    assert_eq!(j["mode"], "load http");
    assert_eq!(j["connections"], 100);
    assert_eq!(j["cores"], 2);
    let d = j["duration_s"].as_f64().unwrap();
    assert_eq!(d, 4.0);
    let requests = j["requests"].as_u64().unwrap();
    assert_eq!(requests, 2 * 4 * 1000);
    assert_eq!(j["rps"].as_f64().unwrap(), requests as f64 / d);
    assert_eq!(j["connections_opened"], 100);
    assert_eq!(j["connections_closed"], 1);
    assert_eq!(j["cps"].as_f64().unwrap(), 100.0 / d);
    let (rx, tx) = (
        j["bytes_rx"].as_u64().unwrap(),
        j["bytes_tx"].as_u64().unwrap(),
    );
    assert_eq!((rx, tx), (8_000_000, 800_000));
    assert_eq!(
        j["gbps"].as_f64().unwrap(),
        (rx + tx) as f64 * 8.0 / d / 1e9
    );
    assert_eq!(j["late_sends"], 2 * 2 * 4);
    let status_sum: u64 = StatusClass::ALL
        .iter()
        .map(|c| j["status"][c.name()].as_u64().unwrap())
        .sum();
    assert_eq!(status_sum, j["responses"].as_u64().unwrap());
    assert_eq!(j["status"]["4xx"], 2 * 4 * 4);
    let l = &j["latency_us"];
    let v = |k: &str| l[k].as_f64().unwrap();
    assert!(v("min") <= v("p50") && v("p50") <= v("p90") && v("p90") <= v("p99"));
    assert!(v("p99") <= v("p999") && v("p999") <= v("p9999") && v("p9999") <= v("max"));
    assert!(v("min") <= v("mean") && v("mean") <= v("max"));
    assert_eq!(l["count"], requests);

    let svg = std::fs::read_to_string(&plot_path).unwrap();
    check_svg(&svg, "µs");
}

#[test]
fn error_threshold_sets_the_outcome() {
    let dir = TempDir::new("report-threshold");
    let json_path = dir.file("run.json");
    // 2 cores x 3 s x 5 resets = 30 errors out of 6000 requests + 100
    // connections: 0.49 %.
    let strict = load_args(&["http", "--json", &json_path]);
    let (outcome, json) = simulated_run(&strict, 3, 5);
    assert_eq!(outcome, Outcome::TooManyErrors);
    assert_eq!(outcome.exit_code(), std::process::ExitCode::from(1));
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["errors"]["reset"], 30);
    assert_eq!(j["errors"]["total"], 30);
    for (threshold, expect) in [
        ("30", Outcome::Passed),
        ("29", Outcome::TooManyErrors),
        ("1%", Outcome::Passed),
        ("0.004", Outcome::TooManyErrors),
    ] {
        let args = load_args(&["http", "--error-threshold", threshold]);
        assert_eq!(
            simulated_run(&args, 3, 5).0,
            expect,
            "--error-threshold {threshold}"
        );
    }
}

/// A minimal well-formedness check: every tag closes in order, attributes
/// are quoted, the root is one <svg> element, and the parts a plot needs
/// are there.
fn check_svg(svg: &str, unit: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    let mut roots = 0;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        assert!(!text.contains('>'), "stray '>' in text: {text:?}");
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
                "bad entity {entity:?}"
            );
        }
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag:?}");
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in {tag:?}"
        );
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
        } else {
            let name: String = tag
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '/')
                .collect();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad tag {tag:?}"
            );
            if stack.is_empty() {
                roots += 1;
                assert_eq!(name, "svg", "root element");
            }
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[gt + 1..];
    }
    assert!(rest.trim().is_empty(), "text after the root: {rest:?}");
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert_eq!(roots, 1);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    for needle in [
        "<polyline",
        ">0%<",
        ">90%<",
        ">99%<",
        ">99.9%<",
        ">99.99%<",
        ">99.999%<",
        "percentile",
    ] {
        assert!(svg.contains(needle), "{needle} missing from the plot");
    }
    assert!(
        svg.contains(&format!("latency ({unit})")),
        "y axis not in {unit}"
    );
}

#[test]
fn merge_writes_a_plot_too() {
    use wirespeed_bench::hlog::{write_log_file, LogInterval};
    use wirespeed_bench::stats::latency_histogram;
    let dir = TempDir::new("report-merge-plot");
    let mut h = latency_histogram();
    for v in 1..=10_000u64 {
        h.record(v * 997).unwrap();
    }
    let log = dir.file("in.hlog");
    let start = Duration::from_secs(1_700_000_000);
    write_log_file(
        log.as_ref(),
        start,
        vec![LogInterval {
            start,
            length: Duration::from_secs(1),
            histogram: h,
        }],
    )
    .unwrap();
    let svg = dir.file("merged.svg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wirespeed"))
        .args(["report", "merge", &log, "--plot", &svg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let svg = std::fs::read_to_string(&svg).unwrap();
    check_svg(&svg, "ms");
}
