//! The `wirespeed` binary's usage contract: every bad flag or value exits
//! with status 2 and a message that names the flag and the accepted form;
//! help and version exit 0.

use std::process::{Command, Output};

fn wirespeed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wirespeed"))
        .args(args)
        .output()
        .expect("the wirespeed binary runs")
}

/// Runs `args`, expects status 2 and a stderr that holds every `needles`.
fn rejects(args: &[&str], needles: &[&str]) {
    let out = wirespeed(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} exited {:?}\n{stderr}",
        out.status
    );
    assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: {n:?} missing from\n{stderr}");
    }
}

#[test]
fn help_and_version_exit_zero() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["load", "--help"],
        &["serve", "--help"],
        &["report", "merge", "--help"],
    ] {
        let out = wirespeed(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    let help = String::from_utf8(wirespeed(&["load", "--help"]).stdout).unwrap();
    for flag in [
        "--port",
        "--ip",
        "--gateway",
        "--target",
        "--path",
        "--connections",
        "--duration",
        "--rate",
        "--new-conn-per-request",
        "--size",
        "--pipeline",
        "--src-ips",
        "--cores",
        "--json",
        "--hlog",
        "--latency",
        "--plot",
        "--error-threshold",
    ] {
        assert!(help.contains(flag), "load --help lacks {flag}");
    }
    // Defaults are documented in the help.
    for default in [
        "[default: 10s]",
        "[default: 100, bulk 1]",
        "[default: 1]",
        "[default: mem]",
        "[default: all online cores; tap: 1; af_xdp and dpdk: their queues=]",
    ] {
        assert!(help.contains(default), "load --help lacks {default}");
    }
    let help = String::from_utf8(wirespeed(&["serve", "--help"]).stdout).unwrap();
    for flag in [
        "--port",
        "--ip",
        "--gateway",
        "--listen",
        "--cores",
        "--body-size",
        "--duration",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}");
    }
}

#[test]
fn bad_values_name_their_flag() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["load", "http", "--duration", "5x"],
            &["--duration", "\"5x\" is not a duration", "10s, 500ms, 2m"],
        ),
        (
            &["load", "http", "--duration", "0"],
            &["--duration", "zero"],
        ),
        (
            &["serve", "http", "--duration", "soon"],
            &["--duration", "not a duration"],
        ),
        (
            &["load", "echo", "--size", "4kb"],
            &["--size", "not a size", "4KiB"],
        ),
        (&["load", "echo", "--size", "0"], &["--size", "from 1 byte"]),
        (
            &["serve", "http", "--body-size", "lots"],
            &["--body-size", "not a size"],
        ),
        (
            &["load", "http", "--rate", "fast"],
            &["--rate", "not a rate", "10k"],
        ),
        (&["load", "http", "--rate", "0"], &["--rate", "above zero"]),
        (
            &["load", "http", "--connections", "0"],
            &["--connections", "a connection count"],
        ),
        (
            &["load", "http", "--connections", "many"],
            &["--connections", "whole number"],
        ),
        (
            &["load", "http", "--pipeline", "0"],
            &["--pipeline", "a pipeline depth"],
        ),
        (
            &["load", "http", "--cores", "0"],
            &["--cores", "a core count"],
        ),
        (
            &["serve", "echo", "--cores", "-1"],
            &["--cores", "\"-1\" is not a core count"],
        ),
        (
            &["load", "http", "--duration", "-5s"],
            &["--duration", "\"-5s\" is not a duration"],
        ),
        (
            &["load", "http", "--rate", "-10"],
            &["--rate", "\"-10\" is not a rate"],
        ),
        (
            &["serve", "http", "--listen", "0"],
            &["--listen", "a TCP port"],
        ),
        (
            &["serve", "http", "--listen", "65536"],
            &["--listen", "a TCP port"],
        ),
        (
            &["load", "http", "--port", "eth0"],
            &["--port", "mem, tap:NAME, af_xdp:IFACE or dpdk:ARGS"],
        ),
        (
            &["load", "http", "--port", "tap:"],
            &["--port", "interface name"],
        ),
        (
            &["serve", "http", "--port", "dpdk:"],
            &["--port", "EAL arguments"],
        ),
        (
            &["load", "http", "--ip", "198.18.0.2"],
            &["--ip", "198.18.0.1/24"],
        ),
        (
            &["load", "http", "--ip", "198.18.0.2/40"],
            &["--ip", "prefix length"],
        ),
        (
            &["serve", "http", "--gateway", "gw"],
            &["--gateway", "not an IPv4 address"],
        ),
        (
            &["serve", "http", "--gateway", "10.0.0.1"],
            &["--gateway", "--ip subnet"],
        ),
        (
            &["load", "http", "--target", "198.18.0.1:http"],
            &["--target", "198.18.0.2:80"],
        ),
        (
            &["load", "http", "--target", "10.0.0.1:80"],
            &["--target", "--gateway"],
        ),
        (
            &["load", "http", "--path", "index.html"],
            &["--path", "request path"],
        ),
        (
            &["load", "http", "--path", "/a b"],
            &["--path", "no spaces"],
        ),
        (
            &["load", "http", "--src-ips", "198.18.1.200-198.18.1.1"],
            &["--src-ips", "starts after it ends"],
        ),
        (
            &["load", "http", "--src-ips", "198.18.1.1..198.18.1.9"],
            &["--src-ips", "198.18.1.1-198.18.1.200"],
        ),
        (
            &["load", "http", "--error-threshold", "lots"],
            &["--error-threshold", "1%"],
        ),
        (
            &["load", "http", "--error-threshold", "150%"],
            &["--error-threshold"],
        ),
        (
            &[
                "load",
                "http",
                "--json",
                "/nonexistent-wirespeed-dir/r.json",
            ],
            &["--json", "does not exist"],
        ),
        (
            &[
                "load",
                "http",
                "--hlog",
                "/nonexistent-wirespeed-dir/r.hlog",
            ],
            &["--hlog", "does not exist"],
        ),
        (
            &["load", "http", "--plot", "/nonexistent-wirespeed-dir/r.svg"],
            &["--plot", "does not exist"],
        ),
        (&["load", "ftp"], &["<MODE>", "http, echo, connect, bulk"]),
        (&["serve", "smtp"], &["<MODE>", "http, echo, discard"]),
        (&["load", "http", "--bogus"], &["--bogus"]),
        (&["load", "http", "--duration"], &["--duration"]),
        (&["load"], &["<MODE>"]),
        (&["report", "merge"], &["<FILE.hlog>"]),
        (
            &["report", "merge", "/nonexistent-wirespeed-dir/a.hlog"],
            &["<FILE.hlog>", "not a file that exists"],
        ),
        // Flags that do not apply to the mode.
        (
            &["load", "echo", "--path", "/"],
            &["--path", "only load http"],
        ),
        (
            &["load", "http", "--size", "64"],
            &["--size", "echo, connect and bulk"],
        ),
        (
            &["load", "connect", "--pipeline", "4"],
            &["--pipeline", "http and echo"],
        ),
        (
            &["load", "http", "--pipeline", "4", "--new-conn-per-request"],
            &["--pipeline", "--new-conn-per-request"],
        ),
        (
            &["load", "bulk", "--new-conn-per-request"],
            &["--new-conn-per-request", "http and echo"],
        ),
        (&["load", "bulk", "--rate", "10"], &["--rate", "bulk"]),
        (
            &["serve", "echo", "--body-size", "10"],
            &["--body-size", "only serve http"],
        ),
        (
            &["load", "http", "--connections", "100000"],
            &["--connections", "source addresses", "--src-ips"],
        ),
    ];
    for (args, needles) in cases {
        rejects(args, needles);
    }
}

#[test]
fn report_merge_of_a_non_log_fails_with_status_one() {
    let dir = std::env::temp_dir().join(format!("ws-cli-usage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("not.hlog");
    std::fs::write(&bad, "this is not an interval log\n").unwrap();
    let out = wirespeed(&["report", "merge", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not.hlog") && stderr.contains("not an HdrHistogram interval log"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
