//! `wirespeed load` end to end on the in-memory wire: every mode against
//! its built-in server, the JSON report's fields present and consistent,
//! the interval log equal to the run's histogram once merged, the exit
//! status.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_wirespeed")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ws-e2e-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `wirespeed load ARGS --json F`; returns (exit code, report, stdout).
fn load(dir: &TempDir, tag: &str, args: &[&str]) -> (i32, Value, String) {
    let json = dir.file(&format!("{tag}.json"));
    let out = Command::new(bin())
        .arg("load")
        .args(args)
        .args(["--cores", "2", "--json"])
        .arg(&json)
        .output()
        .expect("run wirespeed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("{tag}: no JSON ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    (out.status.code().unwrap_or(-1), v, stdout)
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{} missing or not a number in {v}", path.join(".")))
}

/// Fields every report has, and how they relate.
fn check_consistent(tag: &str, v: &Value) {
    for f in [
        "requests",
        "connections_opened",
        "duration_s",
        "rps",
        "cps",
        "bytes_rx",
        "bytes_tx",
        "gbps",
    ] {
        num(v, &[f]);
    }
    for p in ["p50", "p90", "p99", "p999", "p9999", "max", "mean"] {
        num(v, &["latency_us", p]);
    }
    for c in ["1xx", "2xx", "3xx", "4xx", "5xx", "other"] {
        num(v, &["status", c]);
    }
    assert!(v["errors"].is_object(), "{tag}: errors");
    let d = num(v, &["duration_s"]);
    assert!(d > 0.0);
    let rps = num(v, &["requests"]) / d;
    assert!(
        (num(v, &["rps"]) - rps).abs() <= 1e-6 * rps.max(1.0),
        "{tag}: rps"
    );
    let cps = num(v, &["connections_opened"]) / d;
    assert!(
        (num(v, &["cps"]) - cps).abs() <= 1e-6 * cps.max(1.0),
        "{tag}: cps"
    );
    let bits = (num(v, &["bytes_rx"]) + num(v, &["bytes_tx"])) * 8.0 / d / 1e9;
    assert!(
        (num(v, &["gbps"]) - bits).abs() <= 1e-9 + 1e-6 * bits,
        "{tag}: gbps"
    );
    let l = |p| num(v, &["latency_us", p]);
    assert!(l("p50") <= l("p90") && l("p90") <= l("p99") && l("p99") <= l("max"));
    assert_eq!(
        num(v, &["errors", "total"]),
        0.0,
        "{tag}: errors {}",
        v["errors"]
    );
}

#[test]
fn every_mode_against_the_built_in_server() {
    let dir = TempDir::new("modes");
    let cases: &[(&str, &[&str])] = &[
        ("echo", &["echo", "--connections", "20", "--duration", "1s"]),
        ("http", &["http", "--connections", "20", "--duration", "1s"]),
        (
            "http-pipelined",
            &[
                "http",
                "--connections",
                "5",
                "--pipeline",
                "4",
                "--duration",
                "1s",
            ],
        ),
        (
            "http-close",
            &[
                "http",
                "--new-conn-per-request",
                "--connections",
                "20",
                "--duration",
                "1s",
            ],
        ),
        (
            "connect",
            &["connect", "--connections", "20", "--duration", "1s"],
        ),
        ("bulk", &["bulk", "--duration", "1s"]),
        (
            "echo-open-loop",
            &[
                "echo",
                "--rate",
                "500",
                "--connections",
                "10",
                "--duration",
                "1s",
            ],
        ),
        (
            "echo-src-ips",
            &[
                "echo",
                "--connections",
                "30",
                "--src-ips",
                "198.18.0.10-198.18.0.12",
                "--duration",
                "1s",
            ],
        ),
    ];
    for (tag, args) in cases {
        let (code, v, stdout) = load(&dir, tag, args);
        assert_eq!(code, 0, "{tag}: exit {code}\n{stdout}");
        check_consistent(tag, &v);
        match *tag {
            "bulk" => {
                assert!(num(&v, &["bytes_tx"]) > 1e6, "{tag}: {v}");
                assert_eq!(num(&v, &["connections_opened"]), 1.0);
            }
            _ => {
                assert!(num(&v, &["requests"]) > 0.0, "{tag}: {v}");
                assert_eq!(
                    num(&v, &["responses"]),
                    num(&v, &["requests"]),
                    "{tag}: every request answered"
                );
                assert!(num(&v, &["latency_us", "p50"]) > 0.0);
            }
        }
        if tag.starts_with("http") {
            assert_eq!(
                num(&v, &["status", "2xx"]),
                num(&v, &["responses"]),
                "{tag}"
            );
        }
        if *tag == "http-close" || *tag == "connect" {
            // One connection per request.
            assert_eq!(
                num(&v, &["connections_opened"]),
                num(&v, &["requests"]),
                "{tag}"
            );
        }
        if *tag == "echo-open-loop" {
            let r = num(&v, &["requests"]);
            assert!(
                (400.0..=600.0).contains(&r),
                "open loop at 500/s for 1 s sent {r}"
            );
        }
        if *tag != "bulk" {
            assert!(stdout.contains("p99.99"), "{tag}: summary\n{stdout}");
        }
        if *tag != "echo-open-loop" {
            // Closed loop: a request goes out when its turn comes, never late.
            assert_eq!(num(&v, &["late_sends"]), 0.0, "{tag}: {v}");
        }
    }
}

/// The interval log of a run, merged, holds exactly the run's samples.
#[test]
fn hlog_merges_to_the_run_histogram() {
    let dir = TempDir::new("hlog");
    let hlog = dir.file("run.hlog");
    let (code, v, _) = load(
        &dir,
        "hlog",
        &[
            "echo",
            "--connections",
            "8",
            "--duration",
            "2s",
            "--hlog",
            hlog.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    let merged = dir.file("merged.json");
    let out = Command::new(bin())
        .args(["report", "merge"])
        .arg(&hlog)
        .arg("--json")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert_eq!(
        num(&m, &["latency_us", "count"]),
        num(&v, &["latency_us", "count"])
    );
    assert_eq!(num(&m, &["latency_us", "count"]), num(&v, &["responses"]));
    for p in ["p50", "p99", "max"] {
        assert_eq!(
            num(&m, &["latency_us", p]),
            num(&v, &["latency_us", p]),
            "{p}"
        );
    }
}
