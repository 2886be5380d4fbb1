//! A TCP proxy that splices two connections without copying payload, and
//! the demo's other end (client and upstream on one host).
//!
//! Included with `#[path]` by the `tcp_proxy` example and by
//! `tests/examples.rs` (next to `echo.rs`).
// Each includer uses part of it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use wirespeed::api::{Context, Handler};
use wirespeed::buf::{cow_copies, PacketBuf};
use wirespeed::port::Device;
use wirespeed::tcp::{CloseReason, ConnId, ListenConfig, TcpConfig};

use wirespeed::buf::HeapBuf;
use wirespeed::Duration;

use crate::common::{demo_tcp, run_on_link, CLIENT_IP, SERVER_IP};
use crate::echo::{EchoClient, EchoServer};

/// What the proxy counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub accepted: u64,
    /// Upstream connections established.
    pub upstream_connected: u64,
    /// Upstream connections that failed (refused, timed out, no port).
    pub upstream_failed: u64,
    /// Payload bytes passed on, both directions.
    pub bytes: u64,
    /// Received buffers passed on as they are.
    pub buffers: u64,
    /// Times a side's send buffer was full and reading from the other
    /// side stopped.
    pub blocked: u64,
    /// Buffers the worker's thread copied because a shared one was written
    /// to (copy-on-write); zero when splicing is zero copy.
    pub copies: u64,
}

/// Accepts on `listen`, opens a connection to `upstream` for each client,
/// and passes each side's received buffers to the other side as they are
/// ([`Context::send`]). When one side's send buffer is full, the refused
/// buffer waits and the other side is not read any more (its data stays in
/// its receive queue, so its window closes) until [`Handler::on_writable`].
/// A FIN is passed on after the data before it (half-close); a reset or
/// timeout on one side aborts the other.
pub struct Proxy<B> {
    listen: u16,
    upstream: (Ipv4Addr, u16),
    peer: HashMap<ConnId, ConnId>,
    /// Upstream connections still in their handshake.
    connecting: HashSet<ConnId>,
    /// A buffer from connection `k` that `peer[k]` refused.
    held: HashMap<ConnId, B>,
    /// Connections whose FIN waits for their data to be passed on.
    fin: HashSet<ConnId>,
    copies_at_start: u64,
    /// Counters.
    pub stats: ProxyStats,
}

impl<B> Proxy<B> {
    /// A proxy from port `listen` to `upstream`.
    pub fn new(listen: u16, upstream: (Ipv4Addr, u16)) -> Self {
        Proxy {
            listen,
            upstream,
            peer: HashMap::new(),
            connecting: HashSet::new(),
            held: HashMap::new(),
            fin: HashSet::new(),
            copies_at_start: 0,
            stats: ProxyStats::default(),
        }
    }

    /// Connection pairs open.
    pub fn pairs(&self) -> usize {
        self.peer.len() / 2
    }
}

impl<B: PacketBuf> Proxy<B> {
    /// Passes `from`'s data to its peer until either runs out of data or
    /// of send space.
    fn pump<D: Device<Buf = B>>(&mut self, cx: &mut Context<'_, D>, from: ConnId) {
        let Some(&to) = self.peer.get(&from) else {
            return;
        };
        if self.connecting.contains(&to) {
            // The upstream is not open yet: data waits in the receive queue.
            return;
        }
        if let Some(b) = self.held.remove(&from) {
            let n = b.len() as u64;
            if let Err(b) = cx.send(to, b) {
                self.held.insert(from, b);
                return;
            }
            self.stats.bytes += n;
            self.stats.buffers += 1;
        }
        while let Some(b) = cx.recv(from) {
            let n = b.len() as u64;
            if let Err(b) = cx.send(to, b) {
                self.stats.blocked += 1;
                self.held.insert(from, b);
                return;
            }
            self.stats.bytes += n;
            self.stats.buffers += 1;
        }
        if self.fin.remove(&from) {
            cx.shutdown(to);
        }
    }
}

impl<D: Device> Handler<D> for Proxy<D::Buf> {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        self.copies_at_start = cow_copies();
        if let Err(e) = cx.listen(self.listen, ListenConfig::default()) {
            eprintln!("proxy: cannot listen on {}: {e}", self.listen);
            cx.stop();
        }
    }
    fn on_accepted(&mut self, cx: &mut Context<'_, D>, id: ConnId, _port: u16) {
        self.stats.accepted += 1;
        match cx.connect(self.upstream) {
            Ok(up) => {
                self.peer.insert(id, up);
                self.peer.insert(up, id);
                self.connecting.insert(up);
            }
            Err(e) => {
                eprintln!("proxy: upstream connect: {e}");
                self.stats.upstream_failed += 1;
                cx.abort(id);
            }
        }
    }
    fn on_connected(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.connecting.remove(&id);
        self.stats.upstream_connected += 1;
        if let Some(&client) = self.peer.get(&id) {
            self.pump(cx, client);
        }
    }
    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.pump(cx, id);
    }
    fn on_writable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        if let Some(&from) = self.peer.get(&id) {
            self.pump(cx, from);
        }
    }
    fn on_peer_fin(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.fin.insert(id);
        self.pump(cx, id);
    }
    fn on_closed(&mut self, cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        if self.connecting.remove(&id) {
            self.stats.upstream_failed += 1;
        }
        self.fin.remove(&id);
        if let Some(b) = self.held.remove(&id) {
            cx.release(b);
        }
        if let Some(other) = self.peer.remove(&id) {
            self.peer.remove(&other);
            // What the other side sent toward this one can go nowhere now.
            if let Some(b) = self.held.remove(&other) {
                cx.release(b);
            }
            if reason != CloseReason::Normal {
                cx.abort(other);
            }
        }
        self.stats.copies = cow_copies() - self.copies_at_start;
    }
}

/// The demo's client host: the echo client connecting through the proxy,
/// and the upstream echo server the proxy connects back to, on one worker.
pub struct ClientAndUpstream<B> {
    /// The client (through the proxy).
    pub client: EchoClient,
    /// The upstream server.
    pub upstream: EchoServer<B>,
}

impl<D: Device> Handler<D> for ClientAndUpstream<D::Buf> {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        self.upstream.on_start(cx);
        self.client.on_start(cx);
    }
    fn on_connected(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.client.on_connected(cx, id);
    }
    fn on_accepted(&mut self, cx: &mut Context<'_, D>, id: ConnId, port: u16) {
        self.upstream.on_accepted(cx, id, port);
    }
    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        if self.client.owns(id) {
            self.client.on_readable(cx, id);
        } else {
            self.upstream.on_readable(cx, id);
        }
    }
    fn on_writable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        if self.client.owns(id) {
            self.client.on_writable(cx, id);
        } else {
            self.upstream.on_writable(cx, id);
        }
    }
    fn on_peer_fin(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        if self.client.owns(id) {
            self.client.on_peer_fin(cx, id);
        } else {
            self.upstream.on_peer_fin(cx, id);
        }
    }
    fn on_closed(&mut self, cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        if self.client.owns(id) {
            self.client.on_closed(cx, id, reason);
        } else {
            self.upstream.on_closed(cx, id, reason);
        }
    }
    fn is_done(&self) -> bool {
        Handler::<D>::is_done(&self.client)
    }
}

/// What a demo run gave.
pub struct ProxyDemo {
    /// The client's view.
    pub client: EchoClient,
    /// The upstream's view.
    pub upstream: EchoServer<HeapBuf>,
    /// The proxy's counters.
    pub proxy: ProxyStats,
    /// From the client's first connect to its last verified byte.
    pub elapsed: std::time::Duration,
}

/// The demo: on the in-memory link, the client host (198.18.0.1) runs the
/// echo client and the upstream echo server (port 7); the proxy host
/// (198.18.0.2) listens on `port` and connects back to the upstream. Each
/// of `conns` connections echoes `msgs` messages of `size` bytes through
/// the proxy both ways. The proxy's connections have `snd_buf`-byte send
/// buffers (smaller than the peers' windows, they fill: backpressure).
pub fn demo(
    port: u16,
    conns: usize,
    msgs: usize,
    size: usize,
    snd_buf: u32,
) -> Result<ProxyDemo, String> {
    let tcp = TcpConfig {
        snd_buf,
        ..demo_tcp()
    };
    let run = run_on_link(
        1,
        Duration::from_secs(120),
        tcp,
        move |_| Proxy::new(port, (CLIENT_IP, 7)),
        || Ok(()),
        move |_| ClientAndUpstream {
            client: EchoClient::new((SERVER_IP, port), conns, msgs, size),
            upstream: EchoServer::new(7),
        },
    )?;
    let c = run.clients.into_iter().next().ok_or("no client worker")?;
    let s = run.servers.into_iter().next().ok_or("no proxy worker")?;
    Ok(ProxyDemo {
        elapsed: c.handler.client.busy().unwrap_or(run.elapsed),
        client: c.handler.client,
        upstream: c.handler.upstream,
        proxy: s.handler.stats,
    })
}
