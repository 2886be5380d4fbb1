//! End-to-end runs of the comparison peers, short: `epoll_peer` server and
//! client over loopback (127.0.0.1, ports picked by the kernel), and
//! `smol_peer` in process. Each checks the JSON report: the exchange
//! happened, no errors, and the byte counts agree with the requests.
//! Nothing here asserts a speed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const EPOLL: &str = env!("CARGO_BIN_EXE_epoll_peer");
const SMOL: &str = env!("CARGO_BIN_EXE_smol_peer");

/// A server process, killed by PID when the test ends however it ends.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `epoll_peer server` on an ephemeral loopback port and waits for
/// its `listening on ADDR` line.
fn server(mode: &str, extra: &[&str]) -> Server {
    let mut child = Command::new(EPOLL)
        .args([
            "server",
            "--mode",
            mode,
            "--listen",
            "127.0.0.1:0",
            "--lifetime",
            "60s",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start epoll_peer server");
    let stdout = child.stdout.take().expect("piped stdout");
    // Guard first, so a failed read still kills the child.
    let mut server = Server {
        child,
        addr: String::new(),
    };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the server's first line");
    server.addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    server
}

/// A JSON file path in a directory of its own, removed with the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("wirespeed-peers-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn json(&self) -> PathBuf {
        self.0.join("report.json")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a peer binary to completion and returns its JSON report.
fn run(bin: &str, args: &[&str], json: &Path) -> Value {
    let out = Command::new(bin)
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .expect("run peer");
    assert!(
        out.status.success(),
        "{bin} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(json).expect("report written");
    serde_json::from_str(&text).expect("report is JSON")
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing or not an integer in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

/// Fields every report carries, and a clean run's status.
fn assert_clean(v: &Value) {
    for key in [
        "requests",
        "connections_opened",
        "errors",
        "duration_s",
        "rps",
        "cps",
        "bytes_rx",
        "bytes_tx",
        "gbps",
        "latency_us",
        "status",
    ] {
        assert!(v.get(key).is_some(), "{key} missing from {v}");
    }
    assert_eq!(v["errors"]["total"], 0, "errors in {v}");
    assert_eq!(v["status"], "ok", "{v}");
    assert!(f(v, "duration_s") > 0.0, "{v}");
}

/// Closed-loop request/response accounting: every completed request
/// brought back exactly `size` bytes, and at most one request per
/// connection was still in flight at the end.
fn assert_exchanges(v: &Value, conns: u64, size: u64) {
    let (requests, rx, tx) = (u(v, "requests"), u(v, "bytes_rx"), u(v, "bytes_tx"));
    assert!(requests > 0, "no request completed: {v}");
    assert!(rx >= requests * size, "{v}");
    assert!(rx < (requests + conns) * size, "{v}");
    assert!(tx >= rx && tx <= (requests + conns) * size, "{v}");
    assert!(f(v, "rps") > 0.0, "{v}");
}

fn assert_latency(v: &Value) {
    let l = &v["latency_us"];
    let keys = ["p50", "p90", "p99", "p999", "p9999", "max", "mean"];
    for key in keys {
        assert!(f(l, key) > 0.0, "latency_us.{key} in {v}");
    }
    assert!(
        f(l, "p50") <= f(l, "p99") && f(l, "p99") <= f(l, "max"),
        "{v}"
    );
}

#[test]
fn epoll_echo_over_loopback() {
    let srv = server("echo", &[]);
    let dir = Scratch::new("epoll-echo");
    let v = run(
        EPOLL,
        &[
            "client",
            "--mode",
            "echo",
            "--server",
            &srv.addr,
            "--connections",
            "20",
            "--size",
            "100",
            "--duration",
            "400ms",
            "--latency",
        ],
        &dir.json(),
    );
    assert_clean(&v);
    assert_eq!(v["workload"], "echo");
    assert_eq!(u(&v, "connections_opened"), 20);
    assert_exchanges(&v, 20, 100);
    assert_latency(&v);
}

#[test]
fn epoll_connect_over_loopback() {
    let srv = server("connect", &["--size", "200"]);
    let dir = Scratch::new("epoll-connect");
    let v = run(
        EPOLL,
        &[
            "client",
            "--mode",
            "connect",
            "--server",
            &srv.addr,
            "--connections",
            "8",
            "--size",
            "200",
            "--duration",
            "400ms",
        ],
        &dir.json(),
    );
    assert_clean(&v);
    assert_eq!(v["workload"], "connect");
    assert_exchanges(&v, 8, 200);
    // One connection per request, each closed inside the interval.
    let (requests, opened) = (u(&v, "requests"), u(&v, "connections_opened"));
    assert!(opened >= requests && opened <= requests + 8, "{v}");
    assert_eq!(f(&v, "cps"), f(&v, "rps"), "{v}");
    assert!(
        v["latency_us"].is_null(),
        "latency recorded without --latency: {v}"
    );
}

#[test]
fn epoll_bulk_over_loopback() {
    let srv = server("discard", &[]);
    let dir = Scratch::new("epoll-bulk");
    let v = run(
        EPOLL,
        &[
            "client",
            "--mode",
            "bulk",
            "--server",
            &srv.addr,
            "--connections",
            "2",
            "--duration",
            "400ms",
        ],
        &dir.json(),
    );
    // A clean report means the server's byte count matched what was sent
    // on both streams (a difference is a `mismatch` error).
    assert_clean(&v);
    assert_eq!(v["workload"], "bulk");
    assert_eq!(u(&v, "connections_opened"), 2);
    assert!(u(&v, "bytes_tx") > 0, "{v}");
    assert_eq!(u(&v, "bytes_rx"), 16, "two 8-byte counts: {v}");
    let gbps = f(&v, "gbps");
    let expect = u(&v, "bytes_tx") as f64 * 8.0 / f(&v, "duration_s") / 1e9;
    assert!((gbps - expect).abs() <= expect * 1e-6, "{v}");
}

#[test]
fn epoll_client_counts_refused_connections() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dir = Scratch::new("epoll-refused");
    let v = run(
        EPOLL,
        &[
            "client",
            "--mode",
            "echo",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--connections",
            "3",
            "--duration",
            "200ms",
        ],
        &dir.json(),
    );
    assert_eq!(v["errors"]["connect"], 3, "{v}");
    assert_eq!(v["errors"]["total"], 3, "{v}");
    assert_eq!(v["status"], "errors");
    assert_eq!(u(&v, "requests"), 0);
    assert_eq!(u(&v, "connections_opened"), 0);
}

#[test]
fn epoll_client_detects_wrong_echo() {
    // A server that answers each request with bytes of its own.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let liar = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut req = [0u8; 64];
        s.read_exact(&mut req).expect("request");
        s.write_all(&[0xff; 64]).expect("reply");
        // Hold the connection until the client gives up on it.
        let _ = s.read(&mut req);
    });
    let dir = Scratch::new("epoll-liar");
    let v = run(
        EPOLL,
        &[
            "client",
            "--mode",
            "echo",
            "--server",
            &addr,
            "--connections",
            "1",
            "--duration",
            "300ms",
        ],
        &dir.json(),
    );
    liar.join().expect("server thread");
    assert_eq!(v["errors"]["mismatch"], 1, "{v}");
    assert_eq!(v["errors"]["total"], 1, "{v}");
    assert_eq!(v["status"], "errors");
    assert_eq!(u(&v, "requests"), 0, "{v}");
}

#[test]
fn smol_echo() {
    let dir = Scratch::new("smol-echo");
    let v = run(
        SMOL,
        &[
            "--mode",
            "echo",
            "--connections",
            "300",
            "--size",
            "64",
            "--duration",
            "400ms",
        ],
        &dir.json(),
    );
    assert_clean(&v);
    assert_eq!(v["workload"], "echo");
    assert_eq!(u(&v, "connections_opened"), 300);
    assert_exchanges(&v, 300, 64);
    assert!(v["latency_us"].is_null(), "{v}");
}

#[test]
fn smol_ping_pong_latency() {
    let dir = Scratch::new("smol-pingpong");
    let v = run(
        SMOL,
        &[
            "--mode",
            "echo",
            "--connections",
            "1",
            "--duration",
            "300ms",
            "--latency",
        ],
        &dir.json(),
    );
    assert_clean(&v);
    assert_exchanges(&v, 1, 64);
    assert_latency(&v);
}

#[test]
fn smol_connect() {
    let dir = Scratch::new("smol-connect");
    let v = run(
        SMOL,
        &[
            "--mode",
            "connect",
            "--connections",
            "50",
            "--size",
            "300",
            "--duration",
            "400ms",
            "--latency",
        ],
        &dir.json(),
    );
    assert_clean(&v);
    assert_eq!(v["workload"], "connect");
    assert_exchanges(&v, 50, 300);
    let (requests, opened) = (u(&v, "requests"), u(&v, "connections_opened"));
    assert!(opened >= requests && opened <= requests + 50, "{v}");
    // Connections are counted once closed: each is a completed request
    // (some requests may still wait for their final ACK at the end).
    let closed = (f(&v, "cps") * f(&v, "duration_s")).round() as u64;
    assert!(closed > 0 && closed <= requests, "{v}");
    assert_latency(&v);
}

#[test]
fn smol_bulk() {
    let dir = Scratch::new("smol-bulk");
    let v = run(
        SMOL,
        &["--mode", "bulk", "--duration", "400ms"],
        &dir.json(),
    );
    // Clean: the server read exactly the bytes sent, and the FIN.
    assert_clean(&v);
    assert_eq!(v["workload"], "bulk");
    assert_eq!(u(&v, "connections_opened"), 1);
    assert!(u(&v, "bytes_tx") > 0, "{v}");
    assert!(f(&v, "gbps") > 0.0, "{v}");
}
