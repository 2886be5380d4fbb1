//! Application threads over rings (`api::threads`): an echo server whose
//! logic runs on its own thread, a slow application behind a tiny event
//! ring (nothing lost, the peer's window closes), full command rings that
//! hand the command back, and the backlog of sends a connection cannot take
//! yet.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use wirespeed::api::threads::{
    bridge, AppHandle, BridgeConfig, BridgeStats, Command, ConnectFailure, Event, RingBridge,
};
use wirespeed::api::{Context, Handler};
use wirespeed::buf::{HeapBuf, PacketBuf};
use wirespeed::net::{Interface, InterfaceConfig, Ipv4Cidr};
use wirespeed::port::link::{link_pair, LinkDevice, LinkPortConfig};
use wirespeed::port::mem::{MemDevice, MemPortConfig, MemWire};
use wirespeed::port::Device;
use wirespeed::rt::{CrossCore, Runtime, Worker, WorkerConfig, WorkerResult, WorkerSetup};
use wirespeed::tcp::{CloseReason, ConnId, ListenConfig, TcpConfig, TcpStack};
use wirespeed::time::{Duration, Instant};
use wirespeed::wire::EthernetAddress;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn mac(n: u8) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, 0, n])
}

fn iface(mac: EthernetAddress, addr: Ipv4Addr) -> InterfaceConfig {
    let mut config = InterfaceConfig::new(mac, Ipv4Cidr::new(addr, 24).unwrap());
    // All SYNs of the first burst wait on one ARP resolution.
    config.arp.queue_len = 256;
    config
}

fn tcp_config() -> TcpConfig {
    TcpConfig {
        msl: Duration::from_millis(50),
        ..TcpConfig::default()
    }
}

/// Byte `i` of a connection's stream: a pattern where a lost, repeated or
/// reordered segment shows.
fn pattern_byte(seed: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8) ^ seed
}

fn pattern(seed: u8, from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| pattern_byte(seed, i)).collect()
}

/// Listens on `port` through `app`; returns once the worker does (a client
/// starting earlier would be refused).
fn listen(app: &mut AppHandle<HeapBuf>, port: u16) {
    app.send(Command::Listen {
        port,
        config: ListenConfig::default(),
    })
    .expect("worker runs");
    loop {
        match app.recv_timeout(StdDuration::from_secs(10)) {
            Some(Event::Listening { port: p }) => {
                assert_eq!(p, port);
                return;
            }
            Some(Event::Buffers) => {}
            other => panic!("expected Listening, got {other:?}"),
        }
    }
}

/// Runs a bridge as the only worker on `server_q`, built on the worker's
/// thread from the one made here.
fn bridge_runtime(
    server_q: Vec<LinkDevice>,
    bridge: RingBridge<HeapBuf>,
    tcp: TcpConfig,
    deadline: Instant,
) -> Runtime<RingBridge<HeapBuf>> {
    let slot = Mutex::new(Some(bridge));
    Runtime::start(server_q, &[], Some(deadline), move |_, caps| {
        let handler = slot
            .lock()
            .map_err(|e| e.to_string())?
            .take()
            .ok_or("one worker only")?;
        Ok(WorkerSetup {
            iface: iface(caps.mac, SERVER),
            tcp,
            worker: WorkerConfig::default(),
            handler,
        })
    })
    .unwrap()
}

// ---------------------------------------------------------------------------
// Echo: the server's logic on an application thread.

struct ClientConn {
    sent: usize,
    got: usize,
    expect: Vec<u8>,
}

/// Opens `conns` connections; each sends `msgs` messages of `size` bytes,
/// checks each echo, then closes (the pattern of `tests/runtime.rs`).
struct EchoClient {
    conns: usize,
    msgs: usize,
    size: usize,
    open: HashMap<ConnId, ClientConn>,
    opened: usize,
    done: usize,
    failed: Vec<CloseReason>,
    mismatches: usize,
}

impl EchoClient {
    fn new(conns: usize, msgs: usize, size: usize) -> Self {
        EchoClient {
            conns,
            msgs,
            size,
            open: HashMap::new(),
            opened: 0,
            done: 0,
            failed: Vec::new(),
            mismatches: 0,
        }
    }

    fn send_next<D: Device>(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let c = self.open.get_mut(&id).unwrap();
        let seed = (format!("{id:?}").len() + c.sent) as u8;
        let msg = pattern(seed, 0, self.size);
        assert_eq!(cx.send_slice(id, &msg), msg.len());
        c.sent += 1;
        c.expect = msg;
        c.got = 0;
    }
}

impl<D: Device> Handler<D> for EchoClient {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        for _ in 0..self.conns {
            let id = cx.connect((SERVER, 7)).expect("connect");
            self.opened += 1;
            self.open.insert(
                id,
                ClientConn {
                    sent: 0,
                    got: 0,
                    expect: Vec::new(),
                },
            );
        }
    }
    fn on_connected(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.send_next(cx, id);
    }
    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        while let Some(buf) = cx.recv(id) {
            let c = self.open.get_mut(&id).unwrap();
            let end = c.got + buf.len();
            if c.expect.get(c.got..end) != Some(buf.as_slice()) {
                self.mismatches += 1;
            }
            c.got = end;
            cx.release(buf);
        }
        let c = &self.open[&id];
        if c.got == self.size {
            if c.sent == self.msgs {
                cx.close(id);
            } else {
                self.send_next(cx, id);
            }
        }
    }
    fn on_closed(&mut self, _cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        let c = self.open.remove(&id).unwrap();
        if reason == CloseReason::Normal && c.sent == self.msgs && c.got == self.size {
            self.done += 1;
        } else {
            self.failed.push(reason);
        }
    }
    fn is_done(&self) -> bool {
        self.opened == self.conns && self.open.is_empty()
    }
}

#[derive(Debug, Default)]
struct EchoAppReport {
    accepted: usize,
    closed: usize,
    bytes: usize,
    data_events: usize,
}

/// The echo server's logic, on the application thread: every received
/// buffer goes back as is (zero copy), the peer's FIN closes.
fn echo_app(mut app: AppHandle<HeapBuf>, conns: usize) -> EchoAppReport {
    let mut r = EchoAppReport::default();
    let end = std::time::Instant::now() + StdDuration::from_secs(60);
    while r.closed < conns && std::time::Instant::now() < end {
        let Some(ev) = app.recv_timeout(StdDuration::from_millis(100)) else {
            continue;
        };
        let cmd = match ev {
            Event::Accepted { port, .. } => {
                assert_eq!(port, 7);
                r.accepted += 1;
                continue;
            }
            Event::Data { conn, buf } => {
                r.data_events += 1;
                r.bytes += buf.len();
                Command::Send(conn, buf)
            }
            Event::PeerFin(conn) => Command::Close(conn),
            Event::Closed { reason, .. } => {
                assert_eq!(reason, CloseReason::Normal);
                r.closed += 1;
                continue;
            }
            Event::Buffers | Event::Writable(_) | Event::SendBlocked(_) => continue,
            other => panic!("unexpected event {other:?}"),
        };
        app.send(cmd).expect("worker runs");
    }
    app.send(Command::Stop).expect("worker runs");
    r
}

#[test]
fn echo_server_logic_on_an_application_thread() {
    const CONNS: usize = 40;
    const MSGS: usize = 5;
    const SIZE: usize = 3000;
    let (client_q, server_q) = link_pair(
        &LinkPortConfig::new(mac(1), 1),
        &LinkPortConfig::new(mac(2), 1),
    )
    .unwrap();
    let deadline = Instant::now_monotonic() + Duration::from_secs(60);
    let (b, mut app) = bridge(&BridgeConfig::default());
    let server = bridge_runtime(server_q, b, tcp_config(), deadline);
    listen(&mut app, 7);
    let app = std::thread::spawn(move || echo_app(app, CONNS));
    let client = Runtime::start(client_q, &[], Some(deadline), |_, caps| {
        Ok(WorkerSetup {
            iface: iface(caps.mac, CLIENT),
            tcp: tcp_config(),
            worker: WorkerConfig::default(),
            handler: EchoClient::new(CONNS, MSGS, SIZE),
        })
    })
    .unwrap();
    let clients: Vec<WorkerResult<EchoClient>> =
        client.join().into_iter().map(Result::unwrap).collect();
    let report = app.join().unwrap();
    let servers: Vec<_> = server.join().into_iter().map(Result::unwrap).collect();

    let c = &clients[0].handler;
    assert!(c.failed.is_empty(), "failed: {:?}", c.failed);
    assert_eq!(c.done, CONNS);
    assert_eq!(c.mismatches, 0, "echoed data differed");
    assert_eq!(report.accepted, CONNS);
    assert_eq!(report.closed, CONNS);
    assert_eq!(report.bytes, CONNS * MSGS * SIZE);
    let s: &BridgeStats = servers[0].handler.stats();
    assert_eq!(s.data_bytes as usize, CONNS * MSGS * SIZE);
    assert_eq!(s.data_events as usize, report.data_events);
    assert_eq!(s.stale_commands, 0);
    assert_eq!(s.sends_after_close, 0);
    assert_eq!(s.unread_at_close, 0);
}

// ---------------------------------------------------------------------------
// A slow application behind a tiny event ring.

/// Sends `total` bytes of pattern on one connection as fast as the peer's
/// window lets it, then closes.
struct BulkSender {
    total: usize,
    queued: usize,
    conn: Option<ConnId>,
    refusals: u64,
    /// Zero-window probes sent, shared with the test's application thread.
    window_probes: Arc<AtomicU32>,
    closed: Option<CloseReason>,
}

impl BulkSender {
    fn pump<D: Device>(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        while self.queued < self.total {
            let n = (self.total - self.queued).min(16 * 1024);
            let took = cx.send_slice(id, &pattern(7, self.queued, n));
            self.queued += took;
            if took < n {
                self.refusals += 1;
                return;
            }
        }
        cx.close(id);
    }
}

impl<D: Device> Handler<D> for BulkSender {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        self.conn = Some(cx.connect((SERVER, 9)).expect("connect"));
    }
    fn on_connected(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.pump(cx, id);
    }
    fn on_writable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.pump(cx, id);
    }
    fn on_poll(&mut self, cx: &mut Context<'_, D>) {
        if let Some(c) = self.conn.and_then(|id| cx.conn(id)) {
            self.window_probes
                .fetch_max(c.stats().window_probes, Ordering::Relaxed);
        }
    }
    fn on_closed(&mut self, _cx: &mut Context<'_, D>, _id: ConnId, reason: CloseReason) {
        self.closed = Some(reason);
    }
    fn is_done(&self) -> bool {
        self.closed.is_some()
    }
}

#[test]
fn slow_application_closes_the_window_and_loses_nothing() {
    const TOTAL: usize = 1 << 20;
    const MSS: usize = 1460;
    let rcv_buf = 16 * MSS;
    let (client_q, server_q) = link_pair(
        &LinkPortConfig::new(mac(1), 1),
        &LinkPortConfig::new(mac(2), 1),
    )
    .unwrap();
    let deadline = Instant::now_monotonic() + Duration::from_secs(60);
    let config = BridgeConfig {
        events: 2,
        ..BridgeConfig::default()
    };
    let (b, mut app) = bridge(&config);
    let server_tcp = TcpConfig {
        rcv_buf: rcv_buf as u32,
        ..tcp_config()
    };
    let server = bridge_runtime(server_q, b, server_tcp, deadline);
    let window_probes = Arc::new(AtomicU32::new(0));
    let probes = window_probes.clone();
    listen(&mut app, 9);
    let app = std::thread::spawn(move || {
        let (mut got, mut wrong, mut closed, mut paused) = (0usize, 0usize, false, false);
        let mut fin_at = None;
        let end = std::time::Instant::now() + StdDuration::from_secs(60);
        while !closed && std::time::Instant::now() < end {
            let Some(ev) = app.recv_timeout(StdDuration::from_millis(100)) else {
                continue;
            };
            match ev {
                Event::Data { buf, .. } => {
                    if buf.as_slice() != pattern(7, got, buf.len()).as_slice() {
                        wrong += 1;
                    }
                    got += buf.len();
                    app.send(Command::Release(buf)).unwrap();
                    if !paused {
                        // Stall until the sender has filled the whole
                        // window and probes it (bounded: if the window
                        // never closes, the assertions below fail).
                        paused = true;
                        let until = std::time::Instant::now() + StdDuration::from_secs(10);
                        while probes.load(Ordering::Relaxed) == 0
                            && std::time::Instant::now() < until
                        {
                            std::thread::sleep(StdDuration::from_millis(5));
                        }
                    } else {
                        std::thread::sleep(StdDuration::from_micros(50));
                    }
                }
                Event::PeerFin(conn) => {
                    fin_at = Some(got);
                    app.send(Command::Close(conn)).unwrap();
                }
                Event::Closed { reason, .. } => {
                    assert_eq!(reason, CloseReason::Normal);
                    closed = true;
                }
                _ => {}
            }
        }
        app.send(Command::Stop).unwrap();
        (got, wrong, fin_at)
    });
    let client = Runtime::start(client_q, &[], Some(deadline), move |_, caps| {
        Ok(WorkerSetup {
            iface: iface(caps.mac, CLIENT),
            tcp: tcp_config(),
            worker: WorkerConfig::default(),
            handler: BulkSender {
                total: TOTAL,
                queued: 0,
                conn: None,
                refusals: 0,
                window_probes: window_probes.clone(),
                closed: None,
            },
        })
    })
    .unwrap();
    let sender = client.join().remove(0).unwrap();
    let (got, wrong, fin_at) = app.join().unwrap();
    let srv = server.join().remove(0).unwrap();
    let s = srv.handler.stats();
    eprintln!(
        "bridge {s:?}\nsender: refusals {} probes {}",
        sender.handler.refusals,
        sender.handler.window_probes.load(Ordering::Relaxed)
    );

    // Nothing lost, nothing reordered, the FIN after the last byte.
    assert_eq!(sender.handler.closed, Some(CloseReason::Normal));
    assert_eq!(got, TOTAL);
    assert_eq!(wrong, 0);
    assert_eq!(fin_at, Some(TOTAL));
    assert_eq!(s.data_bytes as usize, TOTAL);
    assert_eq!(srv.stats.tcp.rst_sent, 0);
    // The data waited in the receive queue, which filled to within a
    // segment of the whole buffer: the window the peer saw closed...
    assert!(s.data_held > 0);
    assert!(
        s.held_bytes_max as usize > rcv_buf - MSS,
        "receive queue held at most {} of {rcv_buf} bytes",
        s.held_bytes_max
    );
    // ... so the sender stalled: its sends were refused and it probed the
    // zero window (RFC 9293 §3.8.6.1).
    assert!(sender.handler.refusals > 0);
    assert!(sender.handler.window_probes.load(Ordering::Relaxed) > 0);
}

// ---------------------------------------------------------------------------
// Deterministic runs: the bridge and an inline peer on the simulated wire,
// the application driven from the same thread between loop iterations.

/// Echoes on port 7 (zero copy); on port 9 keeps what arrives.
#[derive(Default)]
struct InlinePeer {
    sunk: HashMap<ConnId, Vec<u8>>,
    sink_fin: Vec<usize>,
}

impl Handler<MemDevice> for InlinePeer {
    fn on_start(&mut self, cx: &mut Context<'_, MemDevice>) {
        cx.listen(7, ListenConfig::default()).unwrap();
        cx.listen(9, ListenConfig::default()).unwrap();
    }
    fn on_accepted(&mut self, _cx: &mut Context<'_, MemDevice>, id: ConnId, port: u16) {
        if port == 9 {
            self.sunk.insert(id, Vec::new());
        }
    }
    fn on_readable(&mut self, cx: &mut Context<'_, MemDevice>, id: ConnId) {
        while let Some(buf) = cx.recv(id) {
            match self.sunk.get_mut(&id) {
                Some(v) => {
                    v.extend_from_slice(buf.as_slice());
                    cx.release(buf);
                }
                None => {
                    if let Err(b) = cx.send(id, buf) {
                        cx.release(b);
                        panic!("echo refused");
                    }
                }
            }
        }
    }
    fn on_peer_fin(&mut self, cx: &mut Context<'_, MemDevice>, id: ConnId) {
        if let Some(v) = self.sunk.get(&id) {
            self.sink_fin.push(v.len());
        }
        cx.close(id);
    }
}

struct Sim {
    wire: MemWire,
    app_side: Worker<MemDevice, RingBridge<HeapBuf>>,
    peer: Worker<MemDevice, InlinePeer>,
    now: Instant,
}

impl Sim {
    fn new(config: &BridgeConfig) -> (Sim, AppHandle<HeapBuf>) {
        let wire = MemWire::new(11);
        let da = wire.add_port(MemPortConfig::new(mac(1))).unwrap().remove(0);
        let dp = wire.add_port(MemPortConfig::new(mac(2))).unwrap().remove(0);
        let now = Instant::ZERO;
        let (b, app) = bridge(config);
        let worker = |dev: MemDevice, addr| {
            let caps = dev.caps().clone();
            (
                Interface::new(iface(caps.mac, addr), now).unwrap(),
                TcpStack::new(tcp_config(), caps.checksum, [5; 48], now),
                dev,
            )
        };
        let (ia, ta, da) = worker(da, CLIENT);
        let (ip, tp, dp) = worker(dp, SERVER);
        let sim = Sim {
            app_side: Worker::new(ia, da, ta, b, WorkerConfig::default(), CrossCore::default()),
            peer: Worker::new(
                ip,
                dp,
                tp,
                InlinePeer::default(),
                WorkerConfig::default(),
                CrossCore::default(),
            ),
            wire,
            now,
        };
        (sim, app)
    }

    /// One iteration of both workers, then time moves to the next wake-up
    /// (at least 10 µs, so the application's commands are taken soon).
    fn step(&mut self) {
        self.app_side.poll(self.now);
        self.peer.poll(self.now);
        let next = [
            self.app_side.poll_at(),
            self.peer.poll_at(),
            self.wire.next_delivery(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.now + Duration::from_millis(1));
        self.now = next.clamp(
            self.now + Duration::from_micros(1),
            self.now + Duration::from_micros(10),
        );
    }

    /// Steps until `app` has an event (at most 10 s of virtual time).
    fn next_event(&mut self, app: &mut AppHandle<HeapBuf>) -> Event<HeapBuf> {
        let end = self.now + Duration::from_secs(10);
        loop {
            if let Some(ev) = app.try_recv() {
                return ev;
            }
            assert!(self.now < end, "no event within 10 s of virtual time");
            self.step();
        }
    }
}

#[test]
fn full_command_ring_hands_the_command_back() {
    let config = BridgeConfig {
        commands: 2,
        ..BridgeConfig::default()
    };
    let (mut sim, mut app) = Sim::new(&config);
    let timer = |token| Command::SetTimer {
        after: Duration::from_millis(token),
        token,
    };
    app.try_send(timer(1)).unwrap();
    app.try_send(timer(2)).unwrap();
    match app.try_send(timer(3)) {
        Err(Command::SetTimer { token: 3, after }) => {
            assert_eq!(after, Duration::from_millis(3));
        }
        other => panic!("a full ring must hand the command back, got {other:?}"),
    }
    // One iteration takes both commands: there is room again.
    sim.step();
    app.try_send(timer(3)).unwrap();
    for want in 1..=3 {
        match sim.next_event(&mut app) {
            Event::Timer(t) => assert_eq!(t, want),
            other => panic!("expected timer {want}, got {other:?}"),
        }
    }
    assert_eq!(sim.app_side.handler.stats().commands, 3);
    // Once the worker is gone, commands come back as well.
    drop(sim);
    assert!(app.is_worker_gone());
    assert!(matches!(app.try_send(Command::Stop), Err(Command::Stop)));
}

#[test]
fn connect_write_send_lent_buffer_and_close_from_the_application() {
    let (mut sim, mut app) = Sim::new(&BridgeConfig::default());
    app.try_send(Command::Connect {
        remote: (SERVER, 7),
        token: 42,
    })
    .unwrap();
    app.try_send(Command::Connect {
        remote: (SERVER, 8),
        token: 43,
    })
    .unwrap();
    let mut conn = None;
    let mut refused = false;
    while conn.is_none() || !refused {
        match sim.next_event(&mut app) {
            Event::Connected { conn: c, token } => {
                assert_eq!(token, 42);
                conn = Some(c);
            }
            Event::ConnectFailed { token, error } => {
                assert_eq!(token, 43);
                assert_eq!(error, ConnectFailure::Closed(CloseReason::Refused));
                refused = true;
            }
            Event::Buffers => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let conn = conn.unwrap();
    // A small copy, then a payload built in a lent buffer.
    app.try_send(Command::Write(conn, b"hello, ".to_vec()))
        .unwrap();
    let mut buf = app.alloc().expect("the lending ring is filled at start");
    buf.append(5).unwrap().copy_from_slice(b"world");
    app.try_send(Command::Send(conn, buf)).unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < 12 {
        match sim.next_event(&mut app) {
            Event::Data { conn: c, buf } => {
                assert_eq!(c, conn);
                echoed.extend_from_slice(buf.as_slice());
                app.try_send(Command::Release(buf)).unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, b"hello, world");
    app.try_send(Command::Close(conn)).unwrap();
    let mut fin = false;
    loop {
        match sim.next_event(&mut app) {
            Event::PeerFin(c) => {
                assert_eq!(c, conn);
                fin = true;
            }
            Event::Closed { conn: c, reason } => {
                assert_eq!(c, conn);
                assert_eq!(reason, CloseReason::Normal);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(fin, "PeerFin comes before Closed");
    // A command for the closed connection is counted, its buffer released.
    app.try_send(Command::Write(conn, vec![1])).unwrap();
    sim.step();
    let s = sim.app_side.handler.stats();
    assert_eq!(s.stale_commands, 1);
    assert!(s.lent >= 1);
}

#[test]
fn sends_beyond_the_send_buffer_wait_in_order_and_close_after() {
    const TOTAL: usize = 1 << 20;
    let (mut sim, mut app) = Sim::new(&BridgeConfig::default());
    app.try_send(Command::Connect {
        remote: (SERVER, 9),
        token: 1,
    })
    .unwrap();
    let conn = loop {
        match sim.next_event(&mut app) {
            Event::Connected { conn, .. } => break conn,
            Event::Buffers => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    // Four times the send buffer in 64 KiB writes, then close: the close
    // waits behind the backlog.
    for off in (0..TOTAL).step_by(64 * 1024) {
        app.try_send(Command::Write(conn, pattern(3, off, 64 * 1024)))
            .unwrap();
    }
    app.try_send(Command::Close(conn)).unwrap();
    let (mut blocked, mut writable) = (0, 0);
    loop {
        match sim.next_event(&mut app) {
            Event::SendBlocked(c) => {
                assert_eq!(c, conn);
                assert_eq!(blocked, writable, "one SendBlocked per Writable");
                blocked += 1;
            }
            Event::Writable(c) => {
                assert_eq!(c, conn);
                writable += 1;
            }
            Event::PeerFin(_) => {}
            Event::Closed { reason, .. } => {
                assert_eq!(reason, CloseReason::Normal);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(blocked, 1);
    assert_eq!(writable, 1);
    let peer = &sim.peer.handler;
    let got = peer.sunk.values().next().expect("one connection");
    assert_eq!(got.len(), TOTAL);
    assert!(*got == pattern(3, 0, TOTAL), "bytes arrived out of order");
    assert_eq!(peer.sink_fin, vec![TOTAL], "the FIN came after the backlog");
    assert!(sim.app_side.handler.stats().sends_blocked > 0);
}

#[test]
fn waiting_events_hold_back_data_and_commands() {
    let config = BridgeConfig {
        events: 2,
        ..BridgeConfig::default()
    };
    let (mut sim, mut app) = Sim::new(&config);
    app.try_send(Command::Connect {
        remote: (SERVER, 7),
        token: 0,
    })
    .unwrap();
    let conn = loop {
        match sim.next_event(&mut app) {
            Event::Connected { conn, .. } => break conn,
            Event::Buffers => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    // Six timers due at once and an echo, while the application does not
    // read: two timers fill the ring, four wait in the local queue, and the
    // echoed bytes stay in the receive queue.
    for token in 1..=6 {
        app.try_send(Command::SetTimer {
            after: Duration::ZERO,
            token,
        })
        .unwrap();
    }
    app.try_send(Command::Write(conn, vec![9; 100])).unwrap();
    let end = sim.now + Duration::from_millis(20);
    while sim.now < end {
        sim.step();
    }
    let unread = |sim: &Sim| {
        let tcp = &sim.app_side.core.host.tcp;
        tcp.conn(conn).map_or(0, |c| c.recv_queued())
    };
    assert_eq!(app.pending_events(), 2);
    assert_eq!(sim.app_side.handler.deferred(), 4);
    assert_eq!(unread(&sim), 100, "data waits in the receive queue");
    assert!(sim.app_side.handler.stats().data_held > 0);
    // The local queue is as long as the ring: no more commands are taken.
    let taken = sim.app_side.handler.stats().commands;
    app.try_send(Command::SetTimer {
        after: Duration::ZERO,
        token: 7,
    })
    .unwrap();
    sim.step();
    assert_eq!(sim.app_side.handler.stats().commands, taken);
    assert!(sim.app_side.handler.stats().commands_held > 0);
    // Reading lets everything through: events in the order they arose,
    // the timer set last among them (it fired while events still waited),
    // and the data once no event waits any more.
    let mut seen = Vec::new();
    while seen.len() < 8 {
        match sim.next_event(&mut app) {
            Event::Timer(t) => seen.push(format!("timer {t}")),
            Event::Data { buf, .. } => {
                seen.push(format!("data {}", buf.len()));
                app.try_send(Command::Release(buf)).unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        ["timer 1", "timer 2", "timer 3", "timer 4", "timer 5", "timer 6", "timer 7", "data 100"]
    );
    assert_eq!(unread(&sim), 0);
}
