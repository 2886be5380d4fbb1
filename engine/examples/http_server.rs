//! An HTTP/1.1 server on the engine: keep-alive, pipelining, requests
//! parsed as they arrive across segments, `GET` answered with a fixed body
//! of `--body` bytes (its `Content-Length` given), 400 for a malformed
//! request. Bodies are pool buffers shared by every answer (zero copy).
//!
//! By default it runs in-process on the threaded in-memory link against a
//! built-in client that pipelines requests and checks every answer, and
//! prints one result line:
//!
//! ```text
//! cargo run --release -p wirespeed --example http_server -- [--conns N] [--requests N] [--depth N] [--body BYTES]
//! ```
//!
//! With `--tap` it serves a Linux TAP device for `--duration` seconds, for
//! curl or any other client in the TAP's namespace (root):
//!
//! ```text
//! ip netns add wsdemo
//! ip netns exec wsdemo cargo run --release -p wirespeed --example http_server -- \
//!     --tap wsdemo0 --ip 198.18.0.2/24 --port 80 --duration 30 &
//! ip -n wsdemo addr add 198.18.0.1/24 dev wsdemo0; ip -n wsdemo link set wsdemo0 up
//! ip netns exec wsdemo curl -v http://198.18.0.2/ http://198.18.0.2/again
//! ```

#[path = "apps/common.rs"]
mod common;
#[path = "apps/http.rs"]
mod http;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use common::{mbytes_per_s, serve_tap, Flags, TapOptions};

const USAGE: &str = "usage: http_server [--conns N] [--requests N] [--depth N] [--body BYTES] [--port P]\n       \
     http_server --tap NAME --ip ADDR/LEN [--port P] [--body BYTES] [--duration SECONDS] [--mac MAC] [--gateway ADDR]";

fn main() -> ExitCode {
    let flags = match Flags::parse(
        std::env::args().skip(1),
        USAGE,
        &[
            "--conns",
            "--requests",
            "--depth",
            "--body",
            "--port",
            "--tap",
            "--ip",
            "--mac",
            "--gateway",
            "--duration",
        ],
        &[],
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
            eprintln!("http_server: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(flags: &Flags) -> Result<bool, String> {
    let port = flags.get("--port", 80u16, "a port, 1-65535", |&p| p > 0)?;
    let body = flags.get("--body", 1024usize, "bytes, 0-16777216", |&n| n <= 16 << 20)?;
    if let Some(tap) = TapOptions::from_flags(flags)? {
        let stop = AtomicBool::new(false);
        let (h, stats) = serve_tap(&tap, http::HttpServer::new(port, body), &stop, || {
            println!(
                "http_server: http://{}:{port}/ on TAP {} ({body}-byte body) for {} s",
                tap.ip.addr,
                tap.tap,
                tap.duration.as_secs()
            )
        })?;
        let s = h.stats;
        println!(
            "http_server: {} connections, {} answered 200, {} errors, {} body bytes; {} TCP segments in",
            s.connections, s.ok, s.errors, s.body_bytes, stats.tcp.segments_in
        );
        return Ok(true);
    }
    let conns = flags.get("--conns", 50usize, "1-10000", |n| (1..=10_000).contains(n))?;
    let requests = flags.get("--requests", 2000usize, "1-1000000", |n| {
        (1..=1_000_000).contains(n)
    })?;
    let depth = flags.get("--depth", 4usize, "1-64", |n| (1..=64).contains(n))?;
    let d = http::demo(port, body, conns, requests, depth)?;
    let c = &d.client.stats;
    let secs = d.elapsed.as_secs_f64();
    println!(
        "http_server: {} of {} requests on {conns} keep-alive connections ({depth} pipelined) answered 200 \
         with the {body}-byte body verified; malformed request answered {}; {:.0} requests/s, {:.1} MB/s \
         of bodies, in {secs:.3} s on the in-memory link",
        c.ok,
        conns * requests,
        c.malformed_status.map_or("nothing".to_owned(), |s| s.to_string()),
        c.ok as f64 / secs.max(1e-9),
        mbytes_per_s(c.ok * body as u64, d.elapsed),
    );
    if c.bad + c.failed > 0 {
        println!(
            "http_server: {} wrong answers, {} connections ended early",
            c.bad, c.failed
        );
    }
    Ok(d.client.all_ok() && d.server.ok == c.ok)
}
