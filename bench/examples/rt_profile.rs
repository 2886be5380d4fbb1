//! The load generator and its server in one thread, for profilers: both
//! workers on the threaded in-memory link, polled in turn, so
//! `valgrind --tool=callgrind` (which serialises threads anyway) sees the
//! whole request path of one mode without scheduler noise.
//!
//! ```sh
//! cargo build --release -p wirespeed-bench --example rt_profile
//! valgrind --tool=callgrind target/release/examples/rt_profile echo 100 200000
//! ```
//! Arguments: mode (`echo`, `http`, `connect`), connections, requests to
//! complete. Time is virtual (2 µs per turn of both workers), so the run
//! is the same under a profiler as natively; instructions per request are
//! the total over the requests printed.

use std::net::Ipv4Addr;

use wirespeed::net::{Interface, InterfaceConfig, Ipv4Cidr};
use wirespeed::port::link::{link_pair, LinkPortConfig};
use wirespeed::port::Device;
use wirespeed::rt::{CrossCore, Worker, WorkerConfig};
use wirespeed::tcp::{TcpConfig, TcpStack};
use wirespeed::time::{Duration, Instant};
use wirespeed::wire::EthernetAddress;
use wirespeed_bench::args::{LoadMode, ServeMode};
use wirespeed_bench::load::{LoadClient, LoadPlan};
use wirespeed_bench::serve::Server;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = match args.get(1).map(String::as_str).unwrap_or("echo") {
        "http" => LoadMode::Http,
        "connect" => LoadMode::Connect,
        _ => LoadMode::Echo,
    };
    let conns: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let want: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let a = LinkPortConfig::new(EthernetAddress([2, 0, 0, 0, 0, 1]), 1);
    let b = LinkPortConfig::new(EthernetAddress([2, 0, 0, 0, 0, 2]), 1);
    let (mut cq, mut sq) = link_pair(&a, &b).expect("link");
    let (cdev, sdev) = (cq.remove(0), sq.remove(0));
    let now = Instant::now_monotonic();
    let tcp = TcpConfig {
        nodelay: true,
        time_wait_reuse: true,
        ..TcpConfig::default()
    };
    let server_ip = Ipv4Addr::new(198, 18, 0, 1);
    let mk = |dev: &wirespeed::port::link::LinkDevice, ip| {
        let caps = dev.caps().clone();
        let mut cfg = InterfaceConfig::new(caps.mac, Ipv4Cidr::new(ip, 24).expect("cidr"));
        cfg.arp.queue_len = 1 << 16;
        cfg.checksum = caps.checksum;
        (
            Interface::new(cfg, now).expect("iface"),
            TcpStack::new(tcp, caps.checksum, [5; 48], now),
        )
    };
    let (ic, tc) = mk(&cdev, Ipv4Addr::new(198, 18, 0, 2));
    let (is, ts) = mk(&sdev, server_ip);
    let port = if mode == LoadMode::Http { 80 } else { 7 };
    let serve = if mode == LoadMode::Http {
        ServeMode::Http
    } else {
        ServeMode::Echo
    };
    let plan = LoadPlan {
        mode,
        target: (server_ip, port),
        connections: conns,
        rate: None,
        per_request_conn: mode == LoadMode::Connect,
        size: 64,
        pipeline: 1,
        path: "/".into(),
        start: now,
        end: now + Duration::from_secs(3600),
        grace: Duration::from_secs(1),
    };
    let mut client = Worker::new(
        ic,
        cdev,
        tc,
        LoadClient::new(plan, None),
        WorkerConfig::default(),
        CrossCore::default(),
    );
    let mut server = Worker::new(
        is,
        sdev,
        ts,
        Server::new(serve, port, 64, None, now, None),
        WorkerConfig::default(),
        CrossCore::default(),
    );
    // Virtual time, 2 µs per turn: a profiler's slowdown must not fire
    // retransmission timers that a native run never sees.
    let mut t = now;
    let mut turns = 0u64;
    while client.handler.stats.counters.responses < want {
        t += Duration::from_micros(2);
        client.poll(t);
        server.poll(t);
        turns += 1;
    }
    let c = wirespeed::rt::WorkerSnapshot::of(&client.core);
    println!(
        "{turns} turns, client retransmits {}, frames in {} out {}",
        c.retransmits, c.net.eth_rx_frames, c.net.eth_tx_frames
    );
    println!(
        "{:?}: {} requests over {conns} connections",
        mode, client.handler.stats.counters.responses
    );
}
