//! The example applications (`examples/echo_server.rs`, `http_server.rs`,
//! `tcp_proxy.rs`): each one's built-in demo run in-process, the HTTP
//! server fed requests cut into separate segments on the simulated wire,
//! and, as root, the HTTP server on a TAP device answering curl in a
//! network namespace of the test's own.
//!
//! The examples' logic lives in `examples/apps/`, included here as it is
//! in the examples (the HTTP parser's unit tests come with it).

#[path = "../examples/apps/common.rs"]
mod common;
#[path = "../examples/apps/echo.rs"]
mod echo;
#[path = "../examples/apps/http.rs"]
mod http;
#[path = "support/linux.rs"]
mod linux;
#[path = "../examples/apps/proxy.rs"]
mod proxy;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration as StdDuration;

use wirespeed::api::{Context, Handler};
use wirespeed::buf::PacketBuf;
use wirespeed::net::{Interface, InterfaceConfig, Ipv4Cidr};
use wirespeed::port::mem::{MemDevice, MemPortConfig, MemWire};
use wirespeed::port::Device;
use wirespeed::rt::{CrossCore, Worker, WorkerConfig};
use wirespeed::tcp::{CloseReason, ConnId, TcpConfig, TcpStack};
use wirespeed::{Duration, Instant};

#[test]
fn echo_demo_inline() {
    let d = echo::demo(20, 10, 3000, false).unwrap();
    let c = &d.client;
    assert!(
        c.all_ok(),
        "done {} failed {:?} mismatches {}",
        c.done,
        c.failed,
        c.mismatches
    );
    assert_eq!(c.bytes, 20 * 10 * 3000);
    assert_eq!(d.echoed, c.bytes);
    assert_eq!(d.accepted, 20);
}

#[test]
fn echo_demo_with_the_server_logic_on_an_application_thread() {
    let d = echo::demo(20, 10, 3000, true).unwrap();
    let c = &d.client;
    assert!(
        c.all_ok(),
        "done {} failed {:?} mismatches {}",
        c.done,
        c.failed,
        c.mismatches
    );
    assert_eq!(d.echoed, c.bytes);
    assert_eq!(d.accepted, 20);
}

#[test]
fn http_demo_keep_alive_pipelined_and_malformed() {
    const BODY: usize = 5000;
    let d = http::demo(80, BODY, 8, 50, 8).unwrap();
    let c = &d.client.stats;
    assert!(d.client.all_ok(), "{c:?}");
    assert_eq!(c.ok, 400);
    assert_eq!(c.malformed_status, Some(400));
    // Keep-alive: one connection per client connection, plus the
    // malformed request's.
    assert_eq!(d.server.connections, 9);
    assert_eq!(d.server.ok, 400);
    assert_eq!(d.server.errors, 1);
    assert_eq!(d.server.body_bytes, 400 * BODY as u64);
}

#[test]
fn proxy_demo_splices_without_copying() {
    // Messages far larger than the proxy's send buffers: a burst from one
    // side does not fit the other side's send buffer, so sends refuse.
    const SIZE: usize = 1 << 20;
    let d = proxy::demo(8080, 4, 2, SIZE, 16 * 1024).unwrap();
    let c = &d.client;
    assert!(
        c.all_ok(),
        "done {} failed {:?} mismatches {}",
        c.done,
        c.failed,
        c.mismatches
    );
    assert_eq!(c.bytes, 4 * 2 * SIZE as u64);
    assert_eq!(d.upstream.bytes, c.bytes);
    let p = &d.proxy;
    assert_eq!(p.accepted, 4);
    assert_eq!(p.upstream_connected, 4);
    assert_eq!(p.upstream_failed, 0);
    assert_eq!(p.bytes, 2 * c.bytes, "both directions through the proxy");
    assert_eq!(p.copies, 0, "payload buffers were copied");
    assert!(p.blocked > 0, "a full send buffer stopped reading: {p:?}");
}

// ---------------------------------------------------------------------------
// The HTTP server, fed one piece of the request stream per segment.

/// Sends `pieces`, one per loop iteration (each its own segment: Nagle
/// is off), and keeps what comes back.
struct Pieces {
    pieces: Vec<&'static [u8]>,
    next: usize,
    conn: Option<ConnId>,
    connected: bool,
    got: Vec<u8>,
    closed: Option<CloseReason>,
    segments_out: u32,
}

impl Handler<MemDevice> for Pieces {
    fn on_start(&mut self, cx: &mut Context<'_, MemDevice>) {
        self.conn = Some(cx.connect((common::SERVER_IP, 80)).unwrap());
    }
    fn on_connected(&mut self, _cx: &mut Context<'_, MemDevice>, _id: ConnId) {
        self.connected = true;
    }
    fn on_poll(&mut self, cx: &mut Context<'_, MemDevice>) {
        let Some(id) = self.conn else { return };
        if self.connected && self.next < self.pieces.len() {
            let p = self.pieces[self.next];
            assert_eq!(cx.send_slice(id, p), p.len());
            self.next += 1;
        }
        if let Some(c) = cx.conn(id) {
            self.segments_out = c.stats().segs_out;
        }
    }
    fn on_readable(&mut self, cx: &mut Context<'_, MemDevice>, id: ConnId) {
        while let Some(b) = cx.recv(id) {
            self.got.extend_from_slice(b.as_slice());
            cx.release(b);
        }
    }
    fn on_peer_fin(&mut self, cx: &mut Context<'_, MemDevice>, id: ConnId) {
        cx.close(id);
    }
    fn on_closed(&mut self, _cx: &mut Context<'_, MemDevice>, _id: ConnId, r: CloseReason) {
        self.closed = Some(r);
    }
}

#[test]
fn http_requests_cut_across_segments_are_answered_in_order() {
    const BODY: usize = 300;
    let pieces: Vec<&'static [u8]> = vec![
        b"GE",
        b"T /a HTTP/1.1\r",
        b"\nHost: 198.18.0.2\r\n",
        b"\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHo",
        b"st: x\r\nContent-Length: 10\r\n\r\n01234",
        b"56789GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r",
        b"\n",
    ];
    let n_pieces = pieces.len() as u32;
    let wire = MemWire::new(3);
    let dc = wire
        .add_port(MemPortConfig::new(common::mac(1)))
        .unwrap()
        .remove(0);
    let ds = wire
        .add_port(MemPortConfig::new(common::mac(2)))
        .unwrap()
        .remove(0);
    let now = Instant::ZERO;
    let host = |dev: &MemDevice, addr: Ipv4Addr| {
        let caps = dev.caps().clone();
        let cidr = Ipv4Cidr::new(addr, 24).unwrap();
        let tcp = TcpConfig {
            nodelay: true,
            ..common::demo_tcp()
        };
        (
            Interface::new(InterfaceConfig::new(caps.mac, cidr), now).unwrap(),
            TcpStack::new(tcp, caps.checksum, [9; 48], now),
        )
    };
    let (ic, tc) = host(&dc, common::CLIENT_IP);
    let (is, ts) = host(&ds, common::SERVER_IP);
    let client = Pieces {
        pieces,
        next: 0,
        conn: None,
        connected: false,
        got: Vec::new(),
        closed: None,
        segments_out: 0,
    };
    let wc = WorkerConfig::default();
    let mut client = Worker::new(ic, dc, tc, client, wc.clone(), CrossCore::default());
    let server = http::HttpServer::new(80, BODY);
    let mut server = Worker::new(is, ds, ts, server, wc, CrossCore::default());
    let mut t = now;
    let end = now + Duration::from_secs(10);
    while client.handler.closed.is_none() && t < end {
        client.poll(t);
        server.poll(t);
        // A millisecond per step: each piece is sent, carried and taken
        // before the next one.
        t += Duration::from_millis(1);
    }
    let c = &client.handler;
    assert_eq!(c.closed, Some(CloseReason::Normal));
    // SYN, final ACK and at least one segment per piece.
    assert!(
        c.segments_out >= n_pieces + 2,
        "{} segments",
        c.segments_out
    );
    // In request order: GET (head and body), HEAD (the same head alone),
    // POST (405; its body skipped), and the GET that asked to close.
    let body: Vec<u8> = (0..BODY).map(http::body_byte).collect();
    let want = [
        http::response_head(200, "OK", BODY, false, false),
        body.clone(),
        http::response_head(200, "OK", BODY, false, false),
        http::response_head(405, "Method Not Allowed", 0, false, false),
        http::response_head(200, "OK", BODY, true, false),
        body,
    ]
    .concat();
    assert!(
        c.got == want,
        "answers differ:\n{}",
        String::from_utf8_lossy(&c.got)
    );
    let s = &server.handler.stats;
    assert_eq!((s.ok, s.errors, s.connections), (3, 1, 1));
    assert_eq!(s.body_bytes, 2 * BODY as u64);
}

// ---------------------------------------------------------------------------
// As root: the HTTP server on a TAP device, curl from the namespace.

const TAP: &str = "wshttp0";

/// Sets the engine's stop flag when dropped, so a failing assertion does
/// not leave the engine serving until its deadline.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn http_server_on_a_tap_answers_curl() {
    if !linux::can_run(&["ip", "curl"]) {
        return;
    }
    const BODY: usize = 3000;
    let ns = linux::Netns::new("http");
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let flag = stop.clone();
    let engine = ns.spawn("engine", move || {
        let o = common::TapOptions {
            tap: TAP.to_owned(),
            ip: "198.18.0.2/24".parse().expect("cidr"),
            mac: common::mac(2),
            gateway: None,
            duration: Duration::from_secs(60),
        };
        let served = common::serve_tap(&o, http::HttpServer::new(80, BODY), &flag, || {
            let _ = ready_tx.send(());
        });
        served.map(|(h, _)| h.stats)
    });
    let _stop_guard = StopOnDrop(stop.clone());
    if ready_rx.recv_timeout(StdDuration::from_secs(10)).is_err() {
        panic!("engine did not start: {:?}", linux::join(engine).err());
    }
    linux::run_ok(&mut ns.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", TAP]));
    linux::run_ok(&mut ns.exec(&["ip", "link", "set", TAP, "up"]));
    let curl = |args: &[&str]| {
        let mut all = vec!["curl", "-s", "--max-time", "10"];
        all.extend_from_slice(args);
        linux::run_ok(&mut ns.exec(&all))
    };

    // A page, byte for byte.
    let page = curl(&["http://198.18.0.2/index.html"]);
    let want: String = (0..BODY).map(|i| http::body_byte(i) as char).collect();
    assert_eq!(page.len(), BODY);
    assert!(page == want, "the body differs");
    // Two pages on one kept-alive connection: the second needs no connect.
    let codes = curl(&[
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download} %{num_connects}\n",
        "http://198.18.0.2/a",
        "http://198.18.0.2/b",
    ]);
    assert_eq!(codes, format!("200 {BODY} 1\n200 {BODY} 0\n"));
    // HEAD: the head alone.
    let head = curl(&["-I", "http://198.18.0.2/"]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {BODY}\r\n")),
        "{head}"
    );
    // A header name with a space in it: 400.
    let bad = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Bad Name: x",
        "http://198.18.0.2/",
    ]);
    assert_eq!(bad, "400");

    stop.store(true, Ordering::Relaxed);
    let stats = linux::join(engine).expect("engine");
    assert_eq!(stats.ok, 4, "{stats:?}");
    assert_eq!(stats.errors, 1, "{stats:?}");
    assert_eq!(stats.connections, 4, "{stats:?}");
    drop(ns);
}
