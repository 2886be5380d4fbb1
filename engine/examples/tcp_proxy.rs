//! A TCP proxy on the engine: accepts on one port, connects to an upstream
//! for each client, and splices the two connections both ways without
//! copying payload (received buffers are sent on as they are), with
//! backpressure (a full send buffer on one side stops reading the other,
//! whose window then closes) and half-close passed through.
//!
//! By default it runs in-process on the threaded in-memory link: the
//! client host runs an echo client and the upstream echo server, the proxy
//! host sits between them; every byte is checked after its round trip
//! through the proxy, and one result line is printed:
//!
//! ```text
//! cargo run --release -p wirespeed --example tcp_proxy -- [--conns N] [--msgs N] [--size BYTES] [--sndbuf BYTES]
//! ```
//!
//! With `--tap` it proxies on a Linux TAP device for `--duration` seconds
//! (root), to an upstream the kernel side reaches:
//!
//! ```text
//! ip netns add wsdemo
//! ip netns exec wsdemo cargo run --release -p wirespeed --example tcp_proxy -- \
//!     --tap wsdemo0 --ip 198.18.0.2/24 --port 8080 --upstream 198.18.0.1:8000 --duration 30 &
//! ip -n wsdemo addr add 198.18.0.1/24 dev wsdemo0; ip -n wsdemo link set wsdemo0 up
//! ip netns exec wsdemo python3 -m http.server --bind 198.18.0.1 8000 &
//! ip netns exec wsdemo curl http://198.18.0.2:8080/
//! ```

#[path = "apps/common.rs"]
mod common;
#[path = "apps/echo.rs"]
mod echo;
#[path = "apps/proxy.rs"]
mod proxy;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use common::{mbytes_per_s, serve_tap, Flags, TapOptions};

const USAGE: &str = "usage: tcp_proxy [--conns N] [--msgs N] [--size BYTES] [--sndbuf BYTES] [--port P]\n       \
     tcp_proxy --tap NAME --ip ADDR/LEN --upstream ADDR:PORT [--port P] [--duration SECONDS] [--mac MAC] [--gateway ADDR]";

fn main() -> ExitCode {
    let flags = match Flags::parse(
        std::env::args().skip(1),
        USAGE,
        &[
            "--conns",
            "--msgs",
            "--size",
            "--port",
            "--upstream",
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
            eprintln!("tcp_proxy: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(flags: &Flags) -> Result<bool, String> {
    let port = flags.get("--port", 8080u16, "a port, 1-65535", |&p| p > 0)?;
    if let Some(tap) = TapOptions::from_flags(flags)? {
        let up: SocketAddrV4 = flags
            .str("--upstream")
            .ok_or("--tap needs --upstream ADDR:PORT")?
            .parse()
            .map_err(|_| "--upstream: expected ADDR:PORT")?;
        let upstream: (Ipv4Addr, u16) = (*up.ip(), up.port());
        let stop = AtomicBool::new(false);
        let (h, _) = serve_tap(&tap, proxy::Proxy::new(port, upstream), &stop, || {
            println!(
                "tcp_proxy: {}:{port} -> {up} on TAP {} for {} s",
                tap.ip.addr,
                tap.tap,
                tap.duration.as_secs()
            )
        })?;
        println!("tcp_proxy: {:?}", h.stats);
        return Ok(true);
    }
    let conns = flags.get("--conns", 16usize, "1-10000", |n| (1..=10_000).contains(n))?;
    let msgs = flags.get("--msgs", 64usize, "1-100000", |n| (1..=100_000).contains(n))?;
    let size = flags.get("--size", 64 * 1024usize, "bytes, 1-16777216", |n| {
        (1..=16 << 20).contains(n)
    })?;
    let snd_buf = flags.get("--sndbuf", 256 * 1024u32, "bytes, 4096-16777216", |n| {
        (4096..=16 << 20).contains(n)
    })?;
    let d = proxy::demo(port, conns, msgs, size, snd_buf)?;
    let (c, p) = (&d.client, &d.proxy);
    println!(
        "tcp_proxy: {} of {conns} connections echoed {msgs} × {size} bytes through the proxy and back, \
         {} mismatched; {:.1} MB/s each way in {:.3} s; the proxy passed {} bytes in {} received buffers \
         as they were ({} copies, {} stalls on a full send buffer) on the in-memory link",
        c.done,
        c.mismatches,
        mbytes_per_s(c.bytes, d.elapsed),
        d.elapsed.as_secs_f64(),
        p.bytes,
        p.buffers,
        p.copies,
        p.blocked,
    );
    if !c.failed.is_empty() {
        println!("tcp_proxy: failed connections: {:?}", c.failed);
    }
    Ok(c.all_ok() && p.bytes == 2 * c.bytes && d.upstream.bytes == c.bytes)
}
