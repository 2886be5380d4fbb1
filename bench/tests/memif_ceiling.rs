//! `bench/memif_ceiling.sh`: its usage contract, and one short real run of
//! two dpdk-testpmd processes over net_memif (root and DPDK's testpmd; no
//! hugepages, no PCI) that ends with its one parseable line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("memif_ceiling.sh")
}

fn ceiling(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("bash runs bench/memif_ceiling.sh")
}

/// Root and dpdk-testpmd: or a skip message (a failure in CI).
fn can_run() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let testpmd = Command::new("sh")
        .args(["-c", "command -v dpdk-testpmd"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if root && testpmd {
        return true;
    }
    let why = format!("needs root and dpdk-testpmd (root {root}, dpdk-testpmd {testpmd})");
    if std::env::var_os("CI").is_some()
        || std::env::var_os("WIRESPEED_REQUIRE_ROOT_TESTS").is_some()
    {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

#[test]
fn bad_flags_exit_2_naming_the_accepted_values() {
    for (args, needle) in [
        (
            &["--bogus"][..],
            "unknown flag '--bogus' (accepted: --frame-size, --seconds, --cpus, --hugepages)",
        ),
        (
            &["--frame-size", "63"],
            "--frame-size '63': accepted 64 to 1514 bytes",
        ),
        (&["--frame-size", "1515"], "accepted 64 to 1514 bytes"),
        (&["--seconds", "0"], "--seconds '0': accepted 1 to 60"),
        (&["--seconds"], "--seconds: missing value"),
        (
            &["--cpus", "1,1"],
            "accepted two different CPU numbers, A,B",
        ),
        (&["--cpus", "0"], "accepted two different CPU numbers, A,B"),
    ] {
        let out = ceiling(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} missing from\n{stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    }
}

#[test]
fn one_second_run_prints_the_received_rate() {
    if !can_run() {
        return;
    }
    let out = ceiling(&["--seconds", "1", "--frame-size", "128"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let line = stdout.trim_end();
    assert_eq!(line.lines().count(), 1, "one line on stdout:\n{stdout}");
    let mpps: f64 = line
        .strip_prefix("memif testpmd ceiling: ")
        .and_then(|r| r.strip_suffix(" Mpps (128-byte frames)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    // The server counted frames; how many depends on the host.
    assert!(mpps > 0.0, "{line}\n{stderr}");
}
