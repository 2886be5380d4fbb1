//! An echo server on the engine: every received buffer goes back as is
//! (zero copy), with backpressure (a full send buffer stops reading, so
//! the client's window closes).
//!
//! By default it runs in-process on the threaded in-memory link against a
//! built-in client that checks every echoed byte, and prints one result
//! line; `--app-thread` runs the server's logic on an application thread
//! that talks to the worker over rings (`api::threads`):
//!
//! ```text
//! cargo run --release -p wirespeed --example echo_server -- [--conns N] [--msgs N] [--size BYTES] [--app-thread]
//! ```
//!
//! With `--tap` it serves a Linux TAP device for `--duration` seconds
//! (root; the engine owns `--ip`, give the kernel side another address):
//!
//! ```text
//! ip netns add wsdemo
//! ip netns exec wsdemo cargo run --release -p wirespeed --example echo_server -- \
//!     --tap wsdemo0 --ip 198.18.0.2/24 --port 7 --duration 30 &
//! ip -n wsdemo addr add 198.18.0.1/24 dev wsdemo0; ip -n wsdemo link set wsdemo0 up
//! echo hello | ip netns exec wsdemo nc -q 1 198.18.0.2 7
//! ```

#[path = "apps/common.rs"]
mod common;
#[path = "apps/echo.rs"]
mod echo;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{mbytes_per_s, serve_tap, Flags, TapOptions};
use wirespeed::api::threads::{bridge, BridgeConfig};
use wirespeed::buf::HeapBuf;

const USAGE: &str = "usage: echo_server [--conns N] [--msgs N] [--size BYTES] [--app-thread]\n       \
     echo_server --tap NAME --ip ADDR/LEN [--port P] [--duration SECONDS] [--mac MAC] [--gateway ADDR] [--app-thread]";

fn main() -> ExitCode {
    let flags = match Flags::parse(
        std::env::args().skip(1),
        USAGE,
        &[
            "--conns",
            "--msgs",
            "--size",
            "--port",
            "--tap",
            "--ip",
            "--mac",
            "--gateway",
            "--duration",
        ],
        &["--app-thread"],
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&flags) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("echo_server: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(flags: &Flags) -> Result<bool, String> {
    let app_thread = flags.has("--app-thread");
    if let Some(tap) = TapOptions::from_flags(flags)? {
        let port = flags.get("--port", 7u16, "a port, 1-65535", |&p| p > 0)?;
        return serve(&tap, port, app_thread);
    }
    let conns = flags.get("--conns", 100usize, "1-10000", |n| (1..=10_000).contains(n))?;
    let msgs = flags.get("--msgs", 500usize, "1-100000", |n| {
        (1..=100_000).contains(n)
    })?;
    let size = flags.get("--size", 1000usize, "bytes, 1-1048576", |n| {
        (1..=1 << 20).contains(n)
    })?;
    let d = echo::demo(conns, msgs, size, app_thread)?;
    let c = &d.client;
    let bytes = c.bytes;
    let secs = d.elapsed.as_secs_f64().max(1e-9);
    println!(
        "echo_server: {} of {conns} connections echoed {msgs} messages of {size} bytes one at a time: \
         {bytes} bytes verified, {} chunks differed; {:.0} round trips/s, {:.1} MB/s each way, \
         {secs:.3} s{} on the in-memory link",
        c.done,
        c.mismatches,
        (conns * msgs) as f64 / secs,
        mbytes_per_s(bytes, d.elapsed),
        if app_thread {
            ", server logic on an application thread over rings,"
        } else {
            ""
        },
    );
    if !c.failed.is_empty() {
        println!("echo_server: failed connections: {:?}", c.failed);
    }
    Ok(c.all_ok() && d.echoed == bytes && d.accepted == conns as u64)
}

fn serve(tap: &TapOptions, port: u16, app_thread: bool) -> Result<bool, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let ready = || {
        println!(
            "echo_server: {} on TAP {}, port {port}, for {} s",
            tap.ip,
            tap.tap,
            tap.duration.as_secs()
        )
    };
    if !app_thread {
        let (h, stats) = serve_tap(tap, echo::EchoServer::new(port), &stop, ready)?;
        println!(
            "echo_server: {} connections, {} bytes echoed, {} closed normally; {} TCP segments in",
            h.accepted, h.bytes, h.closed, stats.tcp.segments_in
        );
        return Ok(true);
    }
    let (b, app) = bridge::<HeapBuf>(&BridgeConfig::default());
    let flag = stop.clone();
    let app = std::thread::spawn(move || echo::echo_app(app, port, &flag, || {}));
    let served = serve_tap(tap, b, &stop, ready);
    stop.store(true, Ordering::Relaxed);
    let report = app.join().map_err(|_| "application thread panicked")?;
    let (b, _) = served?;
    println!(
        "echo_server: {} connections, {} bytes echoed on the application thread; bridge {:?}",
        report.accepted,
        report.bytes,
        b.stats()
    );
    Ok(true)
}
