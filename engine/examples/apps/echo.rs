//! Echo: the server (inline on the worker, or on an application thread
//! over rings) and the demo's client.
//!
//! Included with `#[path]` by the `echo_server` and `tcp_proxy` examples and
//! by `tests/examples.rs`.
// Each includer uses part of it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use wirespeed::api::threads::{bridge, AppHandle, BridgeConfig, Command, Event};
use wirespeed::api::{Context, Handler};
use wirespeed::buf::{HeapBuf, PacketBuf};
use wirespeed::port::Device;
use wirespeed::rt::WorkerSnapshot;
use wirespeed::tcp::{CloseReason, ConnId, ListenConfig};
use wirespeed::{Duration, Instant};

use crate::common::{demo_tcp, once, pattern, run_on_link, SERVER_IP};

/// Echoes every byte back without copying: each received buffer is sent as
/// is. When the connection's send buffer is full, the refused buffer waits
/// and reading stops, so the rest stays in the receive queue and the
/// client's window closes, until send space opens ([`Handler::on_writable`]).
pub struct EchoServer<B> {
    port: u16,
    /// A buffer the send buffer refused, per connection.
    held: HashMap<ConnId, B>,
    /// Connections whose peer finished, to close once echoed.
    fin: HashSet<ConnId>,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed normally.
    pub closed: u64,
    /// Bytes echoed.
    pub bytes: u64,
    /// Times a send was refused (send buffer full).
    pub blocked: u64,
}

impl<B> EchoServer<B> {
    /// An echo server on `port`.
    pub fn new(port: u16) -> Self {
        EchoServer {
            port,
            held: HashMap::new(),
            fin: HashSet::new(),
            accepted: 0,
            closed: 0,
            bytes: 0,
            blocked: 0,
        }
    }
}

impl<B: PacketBuf> EchoServer<B> {
    fn pump<D: Device<Buf = B>>(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        if let Some(b) = self.held.remove(&id) {
            let n = b.len() as u64;
            if let Err(b) = cx.send(id, b) {
                self.held.insert(id, b);
                return;
            }
            self.bytes += n;
        }
        while let Some(b) = cx.recv(id) {
            let n = b.len() as u64;
            match cx.send(id, b) {
                Ok(()) => self.bytes += n,
                Err(b) => {
                    self.blocked += 1;
                    self.held.insert(id, b);
                    return;
                }
            }
        }
        if self.fin.remove(&id) {
            cx.close(id);
        }
    }
}

impl<D: Device> Handler<D> for EchoServer<D::Buf> {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        if let Err(e) = cx.listen(self.port, ListenConfig::default()) {
            eprintln!("echo: cannot listen on {}: {e}", self.port);
            cx.stop();
        }
    }
    fn on_accepted(&mut self, _cx: &mut Context<'_, D>, _id: ConnId, _port: u16) {
        self.accepted += 1;
    }
    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.pump(cx, id);
    }
    fn on_writable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.pump(cx, id);
    }
    fn on_peer_fin(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.fin.insert(id);
        self.pump(cx, id);
    }
    fn on_closed(&mut self, cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        if let Some(b) = self.held.remove(&id) {
            cx.release(b);
        }
        self.fin.remove(&id);
        if reason == CloseReason::Normal {
            self.closed += 1;
        }
    }
}

/// What [`echo_app`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoAppReport {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed.
    pub closed: u64,
    /// Bytes echoed.
    pub bytes: u64,
    /// Times the worker reported a connection's sends backlogged.
    pub blocked: u64,
}

/// The echo server's logic on an application thread: the worker runs a
/// [`RingBridge`](wirespeed::api::threads::RingBridge), this thread gets
/// its events and sends each received buffer back as is (zero copy: the
/// buffer crosses the rings twice, its bytes never move). Calls
/// `listening` once the worker listens; runs until `stop` is set or the
/// worker is gone, then stops the worker.
pub fn echo_app<B: PacketBuf + Send>(
    mut app: AppHandle<B>,
    port: u16,
    stop: &AtomicBool,
    listening: impl FnOnce(),
) -> EchoAppReport {
    let mut listening = Some(listening);
    let mut r = EchoAppReport::default();
    let listen = Command::Listen {
        port,
        config: ListenConfig::default(),
    };
    if app.send(listen).is_err() {
        return r;
    }
    while !stop.load(Ordering::Relaxed) {
        let Some(ev) = app.recv_timeout(std::time::Duration::from_millis(50)) else {
            if app.is_worker_gone() {
                return r;
            }
            continue;
        };
        let cmd = match ev {
            Event::Accepted { .. } => {
                r.accepted += 1;
                continue;
            }
            Event::Data { conn, buf } => {
                r.bytes += buf.len() as u64;
                Command::Send(conn, buf)
            }
            Event::PeerFin(conn) => Command::Close(conn),
            Event::Closed { .. } => {
                r.closed += 1;
                continue;
            }
            Event::SendBlocked(_) => {
                r.blocked += 1;
                continue;
            }
            Event::Listening { .. } => {
                if let Some(f) = listening.take() {
                    f();
                }
                continue;
            }
            Event::ListenFailed { port, error } => {
                eprintln!("echo: cannot listen on {port}: {error}");
                break;
            }
            _ => continue,
        };
        if app.send(cmd).is_err() {
            return r;
        }
    }
    let _ = app.send(Command::Stop);
    r
}

struct ClientConn {
    seed: u8,
    sent: usize,
    got: usize,
}

/// The demo's echo client: opens `conns` connections to `target`; on each
/// sends `msgs` messages of `size` bytes (one at a time, each after the
/// last one's echo), checks every echoed byte, then closes.
pub struct EchoClient {
    target: (Ipv4Addr, u16),
    conns: usize,
    msgs: usize,
    size: usize,
    open: HashMap<ConnId, ClientConn>,
    opened: usize,
    /// Connections that echoed everything and closed normally.
    pub done: usize,
    /// Connections that failed, and why.
    pub failed: Vec<CloseReason>,
    /// Echoed chunks that differed from what was sent.
    pub mismatches: usize,
    /// Bytes echoed back.
    pub bytes: u64,
    started: Option<Instant>,
    finished: Option<Instant>,
}

impl EchoClient {
    /// A client of `conns` connections to `target`.
    pub fn new(target: (Ipv4Addr, u16), conns: usize, msgs: usize, size: usize) -> Self {
        EchoClient {
            target,
            conns,
            msgs,
            size,
            open: HashMap::new(),
            opened: 0,
            done: 0,
            failed: Vec::new(),
            mismatches: 0,
            bytes: 0,
            started: None,
            finished: None,
        }
    }

    /// From the first connect to the last byte echoed (the closes after it
    /// not included).
    pub fn busy(&self) -> Option<Duration> {
        Some(self.finished?.saturating_since(self.started?))
    }

    /// Whether `id` is one of this client's connections.
    pub fn owns(&self, id: ConnId) -> bool {
        self.open.contains_key(&id)
    }

    /// Whether every connection echoed everything, with no difference.
    pub fn all_ok(&self) -> bool {
        self.done == self.conns && self.failed.is_empty() && self.mismatches == 0
    }

    /// Queues as much of the current message as the send buffer takes.
    fn push<D: Device>(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let size = self.size;
        let Some(c) = self.open.get_mut(&id) else {
            return;
        };
        let msg_start = (c.sent / size.max(1)) * size;
        let msg_end = (msg_start + size).min(self.msgs * size);
        // A message goes out only after the previous one came back.
        if c.got < msg_start || c.sent >= msg_end {
            return;
        }
        let data = pattern(c.seed, c.sent, msg_end - c.sent);
        c.sent += cx.send_slice(id, &data);
    }
}

impl<D: Device> Handler<D> for EchoClient {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        self.started = Some(cx.now());
        for i in 0..self.conns {
            match cx.connect(self.target) {
                Ok(id) => {
                    self.opened += 1;
                    let c = ClientConn {
                        seed: i as u8,
                        sent: 0,
                        got: 0,
                    };
                    self.open.insert(id, c);
                }
                Err(e) => {
                    eprintln!("echo client: connect: {e}");
                    self.failed.push(CloseReason::Aborted);
                }
            }
        }
        self.conns = self.opened;
    }
    fn on_connected(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.push(cx, id);
    }
    fn on_writable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.push(cx, id);
    }
    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let Some(c) = self.open.get_mut(&id) else {
            return;
        };
        while let Some(buf) = cx.recv(id) {
            let s = buf.as_slice();
            if s.len() > c.sent - c.got || s != pattern(c.seed, c.got, s.len()).as_slice() {
                self.mismatches += 1;
            }
            c.got += s.len();
            self.bytes += s.len() as u64;
            cx.release(buf);
        }
        let total = self.msgs * self.size;
        if c.got >= total {
            self.finished = Some(cx.now());
            cx.close(id);
        } else {
            self.push(cx, id);
        }
    }
    fn on_closed(&mut self, _cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        if let Some(c) = self.open.remove(&id) {
            if reason == CloseReason::Normal && c.got == self.msgs * self.size {
                self.done += 1;
            } else {
                self.failed.push(reason);
            }
        }
    }
    fn is_done(&self) -> bool {
        self.opened == self.conns && self.open.is_empty()
    }
}

/// What a demo run gave.
pub struct EchoDemo {
    /// The client's view.
    pub client: EchoClient,
    /// Connections the server accepted.
    pub accepted: u64,
    /// Bytes the server echoed.
    pub echoed: u64,
    /// The server's worker's counters.
    pub server: WorkerSnapshot,
    /// From the client's first connect to its last verified byte.
    pub elapsed: std::time::Duration,
}

/// The demo: the echo server on 198.18.0.2 port 7 (inline, or its logic on
/// an application thread when `app_thread`), the client on 198.18.0.1,
/// joined by the in-memory link.
pub fn demo(conns: usize, msgs: usize, size: usize, app_thread: bool) -> Result<EchoDemo, String> {
    let client = move |_| EchoClient::new((SERVER_IP, 7), conns, msgs, size);
    let limit = Duration::from_secs(120);
    if !app_thread {
        let run = run_on_link(
            1,
            limit,
            demo_tcp(),
            |_| EchoServer::new(7),
            || Ok(()),
            client,
        )?;
        let c = run.clients.into_iter().next().ok_or("no client worker")?;
        let s = run.servers.into_iter().next().ok_or("no server worker")?;
        return Ok(EchoDemo {
            elapsed: c.handler.busy().unwrap_or(run.elapsed),
            client: c.handler,
            accepted: s.handler.accepted,
            echoed: s.handler.bytes,
            server: s.stats,
        });
    }
    let (bridge, app) = bridge::<HeapBuf>(&BridgeConfig::default());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let app = std::thread::Builder::new()
        .name("echo-app".into())
        .spawn(move || {
            echo_app(app, 7, &flag, move || {
                let _ = ready_tx.send(());
            })
        })
        .map_err(|e| e.to_string())?;
    let ready = move || {
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .map_err(|_| "the application thread's listener did not open".to_owned())
    };
    let run = run_on_link(1, limit, demo_tcp(), once(bridge), ready, client);
    stop.store(true, Ordering::Relaxed);
    let report = app.join().map_err(|_| "application thread panicked")?;
    let run = run?;
    let c = run.clients.into_iter().next().ok_or("no client worker")?;
    let s = run.servers.into_iter().next().ok_or("no server worker")?;
    Ok(EchoDemo {
        elapsed: c.handler.busy().unwrap_or(run.elapsed),
        client: c.handler,
        accepted: report.accepted,
        echoed: report.bytes,
        server: s.stats,
    })
}
