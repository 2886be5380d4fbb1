//! The `wirespeed` tool on DPDK ports (feature `dpdk`, root): two
//! processes over `net_memif`, one core each (`load` against `serve` for
//! http, echo with every echoed byte compared, and bulk into discard);
//! `serve http` on `net_tap` in a namespace of its own against Linux curl
//! and wrk; bad EAL arguments and a missing device refused with their
//! reason and no crash.
//!
//! Addresses (RFC 2544 range): memif 198.18.8.0/24, TAP 198.18.9.0/24.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_wirespeed")
}

/// EAL memory flags without hugepages (ENVIRONMENT.md).
const MEM: &str = "--no-huge -m 512 --no-shconf --no-pci";

fn can_run(tools: &[&str]) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let missing: Vec<&&str> = tools
        .iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = format!("needs root and {tools:?} (missing {missing:?})");
    if std::env::var_os("CI").is_some()
        || std::env::var_os("WIRESPEED_REQUIRE_ROOT_TESTS").is_some()
    {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// Removes the EAL runtime directories (`/var/run/dpdk/PREFIX`) of the
/// file prefixes this test process used, when dropped.
struct EalDirs(Vec<String>);

impl Drop for EalDirs {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{p}"));
        }
    }
}

/// Kills a child by PID when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The memif port spec of one side (`server` or `client`) on `core`.
fn memif(role: &str, core: u32, tag: &str) -> String {
    let id = std::process::id();
    format!(
        "dpdk:-l {core} {MEM} --file-prefix wsd{id}{tag}{role} \
         --vdev=net_memif0,role={role},socket=wsd{id}{tag}"
    )
}

/// `serve MODE` on the memif server side, then `load MODE EXTRA` on the
/// client side; returns the load's JSON report and the server's output.
fn memif_run(tag: &str, serve: &str, load: &str, port: u16, extra: &[&str]) -> (Value, String) {
    let dir = std::env::temp_dir().join(format!("wsd-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("load.json");
    let id = std::process::id();
    let _dirs = EalDirs(vec![
        format!("wsd{id}{tag}server"),
        format!("wsd{id}{tag}client"),
    ]);
    let server = Kill(
        Command::new(bin())
            .args(["serve", serve, "--port", &memif("server", 1, tag)])
            .args(["--ip", "198.18.8.2/24", "--duration", "14s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The client connects to the server's socket: give it time to listen.
    std::thread::sleep(Duration::from_millis(1500));
    let out = Command::new(bin())
        .args(["load", load, "--port", &memif("client", 0, tag)])
        .args(["--ip", "198.18.8.1/24"])
        .args(["--target", &format!("198.18.8.2:{port}")])
        .args(["--duration", "3s", "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "load {load}: {err}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let mut server = server;
    let _ = server.0.kill();
    let o = std::mem::replace(&mut server.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (report, String::from_utf8_lossy(&o.stderr).into_owned())
}

fn num(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .or_else(|| x.as_f64().map(|f| f as u64))
        .unwrap_or_else(|| panic!("{path:?} in {v}"))
}

fn no_errors(tag: &str, v: &Value) {
    assert_eq!(num(v, &["errors", "total"]), 0, "{tag}: {}", v["errors"]);
}

#[test]
fn memif_http_load_against_serve() {
    if !can_run(&[]) {
        return;
    }
    let (v, server) = memif_run("h", "http", "http", 80, &["--connections", "50"]);
    no_errors("http", &v);
    assert!(num(&v, &["responses"]) > 1000, "{v}");
    assert_eq!(num(&v, &["responses"]), num(&v, &["requests"]));
    assert!(server.contains("driver net_memif"), "{server}");
}

#[test]
fn memif_echo_small_and_one_mib_messages_byte_checked() {
    if !can_run(&[]) {
        return;
    }
    // 64-byte messages, then 1 MiB ones: the load generator compares every
    // echoed byte with what it sent (a mismatch is an error in the report).
    let (v, _) = memif_run(
        "e",
        "echo",
        "echo",
        7,
        &["--connections", "50", "--size", "64"],
    );
    no_errors("echo 64", &v);
    assert!(num(&v, &["responses"]) > 1000, "{v}");
    let (v, _) = memif_run(
        "m",
        "echo",
        "echo",
        7,
        &["--connections", "4", "--size", "1MiB"],
    );
    no_errors("echo 1 MiB", &v);
    assert!(num(&v, &["responses"]) >= 8, "{v}");
    assert!(num(&v, &["bytes_rx"]) >= 8 << 20, "{v}");
}

#[test]
fn memif_bulk_into_discard() {
    if !can_run(&[]) {
        return;
    }
    let (v, _) = memif_run("b", "discard", "bulk", 9, &["--connections", "1"]);
    no_errors("bulk", &v);
    assert!(num(&v, &["bytes_tx"]) > 64 << 20, "{v}");
}

/// A namespace of its own, removed on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("wsdt{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success());
        Netns(name)
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn tap_serve_http_to_curl_and_wrk() {
    if !can_run(&["ip", "curl", "wrk"]) {
        return;
    }
    let ns = Netns::new();
    let _dirs = EalDirs(vec![format!("wsdt{}", std::process::id())]);
    ns.ok(&["ip", "link", "set", "lo", "up"]);
    let port = format!(
        "dpdk:-l 0 {MEM} --file-prefix wsdt{} --vdev=net_tap0,iface=wsdtap0",
        std::process::id()
    );
    let _server = Kill(
        ns.cmd(&[bin(), "serve", "http", "--port", &port])
            .args([
                "--ip",
                "198.18.9.2/24",
                "--body-size",
                "1MiB",
                "--duration",
                "40s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while !ns
        .cmd(&["ip", "link", "show", "wsdtap0"])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the TAP never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ns.ok(&["ip", "addr", "add", "198.18.9.1/24", "dev", "wsdtap0"]);
    ns.ok(&["ip", "link", "set", "wsdtap0", "up"]);
    let mut body = None;
    for _ in 0..50 {
        let out = ns
            .cmd(&["curl", "-s", "-f", "-m", "10", "http://198.18.9.2/"])
            .output()
            .unwrap();
        if out.status.success() {
            body = Some(out.stdout);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let body = body.expect("curl never got the page");
    let want: Vec<u8> = (0..1usize << 20).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(body.len(), want.len());
    assert_eq!(
        Sha256::digest(&body),
        Sha256::digest(&want),
        "SHA-256 of the body"
    );
    let out = ns.ok(&["wrk", "-t1", "-c100", "-d10s", "http://198.18.9.2/"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Socket errors"), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
    assert!(text.contains(" requests in "), "{text}");
}

#[test]
fn bad_eal_arguments_and_no_device_are_refused_without_a_crash() {
    if !can_run(&[]) {
        return;
    }
    let id = std::process::id();
    let _dirs = EalDirs(
        ["wsdb", "wsdn", "wsdq"]
            .iter()
            .map(|p| format!("{p}{id}"))
            .collect(),
    );
    for (spec, want) in [
        (
            format!("dpdk:{MEM} --file-prefix wsdb{id} --no-such-flag"),
            "EAL",
        ),
        (format!("dpdk:{MEM} --file-prefix wsdn{id}"), "no"),
        (
            format!("dpdk:{MEM} --file-prefix wsdq{id} --vdev=net_ring0;queues=2"),
            "RSS",
        ),
    ] {
        let out = Command::new(bin())
            .args(["serve", "http", "--port", &spec, "--duration", "1s"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{spec}: {err}");
        assert!(
            err.contains("opening the DPDK port") && err.contains(want),
            "{spec}: {err}"
        );
    }
    // An option the port does not know is a usage error.
    let out = Command::new(bin())
        .args(["serve", "http", "--port", "dpdk:--no-pci;colour=red"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option"));
}
