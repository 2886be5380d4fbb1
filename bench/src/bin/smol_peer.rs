//! smoltcp's side of the comparison: two smoltcp 0.14 interfaces, a server
//! and a client, each in its own pinned thread, joined by an in-memory wire
//! of bounded lock-free rings, for `bench/compare.sh`.
//!
//! The wire: per direction, a ring of Ethernet frames (`data`) and a ring
//! that hands spent buffers back to the sender (`free`), both
//! `crossbeam_queue::ArrayQueue`. [`POOL`] buffers per direction are
//! allocated at start and only ever move between the two rings: no frame
//! allocates. A sender with no free buffer gets no transmit token, which
//! smoltcp treats as a full device queue; a reply built while receiving
//! (ARP, RST) with no free buffer is dropped and counted, as by a NIC with
//! a full transmit ring. Receiving never waits for a free transmit buffer:
//! with both pools in flight each side would wait for the other.
//! Checksums are computed and verified in software.
//!
//! Workloads (`--mode`), as in `epoll_peer client`:
//! - `echo`: `--connections` sockets, connected first, each sending a
//!   `--size`-byte request (default 64) and waiting for its echo (closed
//!   loop); echoed bytes are checked;
//! - `connect`: `--connections` slots, each connecting, sending one
//!   request, reading the `--size`-byte response and the server's FIN,
//!   closing, and connecting again from a fresh port: connections per
//!   second. The server closes first, so its sockets reach TIME-WAIT; they
//!   are put back to listening at once (smoltcp allows `listen` from
//!   TIME-WAIT), which cuts the 2 MSL wait of RFC 9293 §3.6 short. That is
//!   safe here: the wire neither loses nor delays, and client ports are
//!   reused in FIFO order, so no old segment can reach a new connection;
//! - `bulk`: `--connections` streams (default 1) of the client writing to a
//!   server that drops the bytes; at the end each stream is closed and the
//!   interval ends when the server has read every byte and the FIN.
//!
//! smoltcp has one socket per connection and no accept: the server holds
//! `--connections` listening sockets, the client as many connecting ones.
//! smoltcp finds a segment's socket by scanning the socket set, and its
//! egress pass visits every socket, so both sides cost O(sockets) per
//! turn. A turn uses smoltcp's lower-level calls: every waiting frame in
//! (`poll_ingress_single`), then the app looks at its sockets (only if
//! something came in), then one egress (`poll_egress` until it has nothing
//! more). So an answer leaves in the turn its request arrived, and ACKs
//! carry the window the app's reads opened. Egress is skipped when nothing
//! came in and the app queued nothing, except every [`IDLE_POLL`] for
//! smoltcp's timers. Latency (`--latency`) is taken per request with
//! `Instant::now()`, from queueing the request to reading its last byte.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use crossbeam_queue::ArrayQueue;
use hdrhistogram::Histogram;
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use wirespeed_bench::peer::{latency_histogram, parse_duration, pin_to_core, Latency, Report};

/// Bytes per frame buffer: an Ethernet frame of MTU 1500 fits.
const FRAME: usize = 1536;
/// Ethernet frame size smoltcp may build (MTU 1500 plus the header).
const MAX_FRAME: usize = 1514;
/// Frame buffers per direction.
const POOL: usize = 1024;
const SERVER_PORT: u16 = 7;
/// Longest a host goes without polling when idle (smoltcp's timers are
/// milliseconds).
const IDLE_POLL: Duration = Duration::from_micros(20);
/// How long connecting the pool, or finishing bulk streams, may take.
const GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Echo,
    Connect,
    Bulk,
}

#[derive(Debug, Parser)]
#[command(
    about = "smoltcp client and server over in-memory rings: the smoltcp peer of bench/compare.sh"
)]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    /// Concurrent connections (bulk: streams).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Length of the measured interval.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Request size (echo, connect; default 64) or send size (bulk; default 65536).
    #[arg(long)]
    size: Option<usize>,
    /// Socket buffer size per direction (default: 4096 or 4 x size for
    /// echo and connect, 256 KiB for bulk).
    #[arg(long)]
    buffer: Option<usize>,
    /// Record per-request latency.
    #[arg(long)]
    latency: bool,
    /// Write the JSON report here instead of stdout.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Pin the server thread to this CPU.
    #[arg(long)]
    server_core: Option<usize>,
    /// Pin the client thread to this CPU.
    #[arg(long)]
    client_core: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.connections > usize::from(PORTS_END - PORTS_START) {
        bail!(
            "--connections must be 1 to {}",
            usize::from(PORTS_END - PORTS_START)
        );
    }
    let size = args.size.unwrap_or(match args.mode {
        Mode::Bulk => 64 * 1024,
        _ => 64,
    });
    if size == 0 {
        bail!("--size must be at least 1");
    }
    let buffer = args.buffer.unwrap_or(match args.mode {
        Mode::Bulk => 256 * 1024,
        _ => (4 * size).max(4096),
    });
    if args.mode != Mode::Bulk && buffer < size {
        bail!("--buffer must hold a whole response ({size} bytes)");
    }
    let report = run(&args, size, buffer)?;
    eprintln!("{}", report.summary());
    let json = serde_json::to_string_pretty(&report.to_json())?;
    match &args.json {
        Some(path) => std::fs::write(path, json + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}

// ---------------------------------------------------------------- wire

/// A frame buffer; `len` bytes of `buf` are the frame.
struct Frame {
    buf: Box<[u8; FRAME]>,
    len: usize,
}

impl Frame {
    fn new() -> Self {
        Frame {
            buf: Box::new([0; FRAME]),
            len: 0,
        }
    }
}

/// One direction of the wire.
struct Link {
    data: ArrayQueue<Frame>,
    /// Buffers the receiver has finished with, back to the sender.
    free: ArrayQueue<Frame>,
}

impl Link {
    fn new() -> Self {
        let link = Link {
            data: ArrayQueue::new(POOL),
            free: ArrayQueue::new(POOL),
        };
        for _ in 0..POOL {
            // Cannot fail: the ring holds POOL.
            let _ = link.free.push(Frame::new());
        }
        link
    }
}

/// Counters of one end of the wire (cells: both of a pair of tokens count).
#[derive(Debug, Default)]
struct WireStats {
    tx_frames: Cell<u64>,
    rx_frames: Cell<u64>,
    /// Frames built with no free buffer, dropped.
    dropped: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// One interface's device: receives from `rx`, transmits into `tx`.
struct RingDevice {
    rx: Arc<Link>,
    tx: Arc<Link>,
    stats: WireStats,
    /// Where a frame with no free buffer is built, then dropped.
    spare: Frame,
}

impl RingDevice {
    fn new(rx: Arc<Link>, tx: Arc<Link>) -> Self {
        RingDevice {
            rx,
            tx,
            stats: WireStats::default(),
            spare: Frame::new(),
        }
    }
}

struct RxTok<'a> {
    frame: Frame,
    link: &'a Link,
}

impl phy::RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.frame.buf[..self.frame.len]);
        // Cannot fail: the POOL buffers of a direction fit in either ring.
        let _ = self.link.free.push(self.frame);
        r
    }
}

struct TxTok<'a> {
    link: &'a Link,
    stats: &'a WireStats,
    spare: &'a mut Frame,
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(FRAME);
        let Some(mut frame) = self.link.free.pop() else {
            bump(&self.stats.dropped);
            return f(&mut self.spare.buf[..len]);
        };
        frame.len = len;
        let r = f(&mut frame.buf[..len]);
        bump(&self.stats.tx_frames);
        // Cannot fail, as for the free ring.
        let _ = self.link.data.push(frame);
        r
    }
}

impl phy::Device for RingDevice {
    type RxToken<'a> = RxTok<'a>;
    type TxToken<'a> = TxTok<'a>;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.rx.data.pop()?;
        bump(&self.stats.rx_frames);
        Some((
            RxTok {
                frame,
                link: &self.rx,
            },
            TxTok {
                link: &self.tx,
                stats: &self.stats,
                spare: &mut self.spare,
            },
        ))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        if self.tx.free.is_empty() {
            return None;
        }
        Some(TxTok {
            link: &self.tx,
            stats: &self.stats,
            spare: &mut self.spare,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}

// ---------------------------------------------------------------- hosts

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORTS_START: u16 = 49152;
const PORTS_END: u16 = 65535;

struct Host {
    iface: Interface,
    sockets: SocketSet<'static>,
    handles: Vec<SocketHandle>,
    dev: RingDevice,
    /// Start of this host's clock, for smoltcp's timestamps.
    base: Instant,
    /// Frames came in, the app queued work, or the last egress ran out of
    /// transmit buffers: the next egress pass may have something to send.
    dirty: bool,
    last_egress: Instant,
}

impl Host {
    fn new(last: u8, ip: Ipv4Addr, dev: RingDevice, sockets: usize, buffer: usize) -> Self {
        let mut dev = dev;
        let mac = EthernetAddress([0x02, 0, 0, 0, 0, last]);
        let mut config = Config::new(HardwareAddress::Ethernet(mac));
        config.random_seed = u64::from(last);
        let base = Instant::now();
        let mut iface = Interface::new(config, &mut dev, smoltcp::time::Instant::ZERO);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(ip), 24))
                .expect("one address");
        });
        let mut set = SocketSet::new(Vec::with_capacity(sockets));
        let handles = (0..sockets)
            .map(|_| {
                let mut s = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; buffer]),
                    tcp::SocketBuffer::new(vec![0; buffer]),
                );
                // As TCP_NODELAY on the Linux side: requests go out at once.
                s.set_nagle_enabled(false);
                set.add(s)
            })
            .collect();
        Host {
            iface,
            sockets: set,
            handles,
            dev,
            base,
            dirty: true,
            last_egress: base,
        }
    }

    fn timestamp(&self, now: Instant) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(now.duration_since(self.base).as_micros() as i64)
    }

    /// Feeds smoltcp every frame waiting on the wire; true when a socket
    /// may have changed, so the app should look at its sockets before
    /// [`Host::egress`]: what it queues then leaves in the same turn, and
    /// the ACKs carry the window its reads opened.
    fn ingress(&mut self, now: Instant) -> bool {
        if self.dev.rx.data.is_empty() {
            return false;
        }
        let t = self.timestamp(now);
        let mut changed = false;
        loop {
            match self
                .iface
                .poll_ingress_single(t, &mut self.dev, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => changed = true,
            }
        }
        // ACKs, replies or the app's answers may be due.
        self.dirty = true;
        changed
    }

    /// Lets smoltcp send what its sockets have. Every egress pass visits
    /// every socket, so with nothing received and nothing new from the app
    /// it is skipped; one runs at least every [`IDLE_POLL`] for smoltcp's
    /// timers (delayed ACK, retransmission).
    fn egress(&mut self, now: Instant) {
        if !self.dirty && now.duration_since(self.last_egress) < IDLE_POLL {
            return;
        }
        let t = self.timestamp(now);
        while self.iface.poll_egress(t, &mut self.dev, &mut self.sockets)
            == PollResult::SocketStateChanged
        {}
        self.last_egress = now;
        // Out of transmit buffers: more may be waiting to go.
        self.dirty = self.dev.tx.free.is_empty();
    }

    fn socket(&mut self, i: usize) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.handles[i])
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// What the server thread hands back.
#[derive(Debug, Default)]
struct ServerResult {
    /// Bulk: bytes read over all streams, and when the last FIN was read.
    bulk_bytes: u64,
    bulk_end: Option<Instant>,
    wire: WireCounts,
}

/// A plain copy of [`WireStats`] to send across threads.
#[derive(Debug, Default, Clone, Copy)]
struct WireCounts {
    tx_frames: u64,
    rx_frames: u64,
    dropped: u64,
}

impl From<&WireStats> for WireCounts {
    fn from(s: &WireStats) -> Self {
        WireCounts {
            tx_frames: s.tx_frames.get(),
            rx_frames: s.rx_frames.get(),
            dropped: s.dropped.get(),
        }
    }
}

/// State shared by the two threads.
struct Shared {
    /// The client is finished: the server stops polling.
    stop: AtomicBool,
    /// Bulk streams the server has read to the end.
    streams_done: AtomicUsize,
}

/// Sets the flag when dropped, so the server stops however the client ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn run(args: &Args, size: usize, buffer: usize) -> Result<Report> {
    let to_server = Arc::new(Link::new());
    let to_client = Arc::new(Link::new());
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        streams_done: AtomicUsize::new(0),
    });
    // Both threads build their sockets before either starts the clock.
    let ready = Arc::new(Barrier::new(2));
    let n = args.connections;
    let mode = args.mode;

    let server = {
        let (rx, tx) = (Arc::clone(&to_server), Arc::clone(&to_client));
        let (shared, ready, core) = (Arc::clone(&shared), Arc::clone(&ready), args.server_core);
        thread::Builder::new().name("smol-server".into()).spawn(
            move || -> Result<ServerResult> {
                let pinned = core.map(pin_to_core).transpose();
                let dev = RingDevice::new(rx, tx);
                let mut host = Host::new(1, SERVER_IP, dev, n, buffer);
                for i in 0..n {
                    host.socket(i).listen(SERVER_PORT).context("listen")?;
                }
                // Wait for the client even when pinning failed, so it
                // does not wait forever; it then stops us at once.
                ready.wait();
                pinned?;
                Ok(serve(&mut host, mode, size, &shared))
            },
        )?
    };
    let client = {
        let (rx, tx) = (Arc::clone(&to_client), Arc::clone(&to_server));
        let (shared, ready, core) = (Arc::clone(&shared), Arc::clone(&ready), args.client_core);
        let (duration, latency) = (args.duration, args.latency);
        thread::Builder::new().name("smol-client".into()).spawn(
            move || -> Result<(Report, WireCounts, Instant)> {
                let _stop = StopOnDrop(&shared.stop);
                let pinned = core.map(pin_to_core).transpose();
                let dev = RingDevice::new(rx, tx);
                let mut host = Host::new(2, CLIENT_IP, dev, n, buffer);
                ready.wait();
                pinned?;
                let mut c = Client {
                    payload: pattern(size),
                    latency: latency.then(latency_histogram),
                    report: Report::new(match mode {
                        Mode::Echo => "echo",
                        Mode::Connect => "connect",
                        Mode::Bulk => "bulk",
                    }),
                    ports: (PORTS_START..PORTS_END).collect(),
                    start: Instant::now(),
                };
                match mode {
                    Mode::Echo => c.echo(&mut host, duration),
                    Mode::Connect => c.connect(&mut host, duration),
                    Mode::Bulk => c.bulk(&mut host, duration, &shared),
                }
                let mut report = c.report;
                report.latency = c.latency.as_ref().and_then(Latency::from_ns);
                Ok((report, WireCounts::from(&host.dev.stats), c.start))
            },
        )?
    };
    let client = client
        .join()
        .map_err(|_| anyhow::anyhow!("client thread panicked"));
    let server = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"));
    let (mut report, client_wire, start) = client??;
    let server = server??;
    if mode == Mode::Bulk {
        report.bytes_delivered = server.bulk_bytes;
        if server.bulk_bytes != report.bytes_tx {
            report.errors.mismatch += 1;
        }
        // The interval ends when the server has read the last FIN.
        report.duration = match server.bulk_end {
            Some(end) => end.saturating_duration_since(start),
            None => start.elapsed(),
        };
    }
    eprintln!(
        "wire: client sent {} frames, received {}; server sent {}, received {}; \
         dropped for want of a buffer {}",
        client_wire.tx_frames,
        client_wire.rx_frames,
        server.wire.tx_frames,
        server.wire.rx_frames,
        client_wire.dropped + server.wire.dropped,
    );
    Ok(report)
}

// ---------------------------------------------------------------- server

/// Per-socket progress of the server in `connect` mode.
#[derive(Debug, Default, Clone, Copy)]
struct ServerSock {
    received: usize,
    replied: bool,
    /// Bulk: this stream's end was counted.
    finished: bool,
    /// Connect: queued to listen again.
    listen_due: bool,
}

/// The server's app state.
struct Server {
    mode: Mode,
    state: Vec<ServerSock>,
    response: Vec<u8>,
    scratch: Vec<u8>,
    /// Sockets done with a connection, to listen again after the next
    /// egress: a socket entering TIME-WAIT still owes the peer the ACK of
    /// its FIN, and `listen` would forget it.
    relisten: Vec<usize>,
    result: ServerResult,
}

fn serve(host: &mut Host, mode: Mode, size: usize, shared: &Shared) -> ServerResult {
    let n = host.handles.len();
    let mut server = Server {
        mode,
        state: vec![ServerSock::default(); n],
        response: pattern(size),
        scratch: vec![0u8; 64 * 1024],
        relisten: Vec::new(),
        result: ServerResult::default(),
    };
    while !shared.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if host.ingress(now) {
            server.serve_sockets(host, shared);
        }
        host.egress(now);
        for i in server.relisten.drain(..) {
            // See the module doc on TIME-WAIT.
            let _ = host.socket(i).listen(SERVER_PORT);
            server.state[i] = ServerSock::default();
        }
    }
    server.result.wire = WireCounts::from(&host.dev.stats);
    server.result
}

impl Server {
    /// Answers, closes, and marks for listening every socket that needs it.
    fn serve_sockets(&mut self, host: &mut Host, shared: &Shared) {
        for i in 0..self.state.len() {
            let st = &mut self.state[i];
            let s = host.socket(i);
            match self.mode {
                Mode::Echo => {
                    // Echo what fits in the send buffer; the rest waits in
                    // the receive buffer (and the window closes).
                    while s.can_recv() && s.can_send() {
                        let room = (s.send_capacity() - s.send_queue()).min(self.scratch.len());
                        let Ok(k) = s.recv_slice(&mut self.scratch[..room]) else {
                            break;
                        };
                        if k == 0 {
                            break;
                        }
                        // Cannot fall short: `room` bytes are free.
                        let _ = s.send_slice(&self.scratch[..k]);
                    }
                    if s.state() == tcp::State::CloseWait && !s.can_recv() {
                        s.close();
                    }
                }
                Mode::Connect => {
                    while let Ok(k) = s.recv(|b| (b.len(), b.len())) {
                        if k == 0 {
                            break;
                        }
                        st.received += k;
                    }
                    if !st.replied && st.received >= self.response.len() {
                        let _ = s.send_slice(&self.response);
                        // FIN after the response: the server closes first.
                        s.close();
                        st.replied = true;
                    }
                    // Finished (TIME-WAIT) or reset: listen again, after the
                    // egress has sent what the socket still owes.
                    if !st.listen_due
                        && matches!(s.state(), tcp::State::TimeWait | tcp::State::Closed)
                    {
                        st.listen_due = true;
                        self.relisten.push(i);
                    }
                }
                Mode::Bulk => {
                    while let Ok(k) = s.recv(|b| (b.len(), b.len())) {
                        if k == 0 {
                            break;
                        }
                        self.result.bulk_bytes += k as u64;
                    }
                    if !st.finished && s.state() == tcp::State::CloseWait && !s.can_recv() {
                        st.finished = true;
                        s.close();
                        self.result.bulk_end = Some(Instant::now());
                        shared.streams_done.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- client

/// Where one client socket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Never opened, or finished and not reopened.
    Idle,
    Connecting,
    /// Request sent, response being read.
    Exchanging,
    /// `connect` mode: our FIN sent after the server's, waiting for its ACK.
    Closing,
    /// Failed (echo, bulk): left alone.
    Dead,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    phase: Phase,
    port: u16,
    received: usize,
    started: Option<Instant>,
}

struct Client {
    payload: Vec<u8>,
    latency: Option<Histogram<u64>>,
    report: Report,
    /// Free local ports, reused oldest first.
    ports: VecDeque<u16>,
    /// Start of the measured interval.
    start: Instant,
}

impl Client {
    fn open(&mut self, host: &mut Host, i: usize, slot: &mut Slot) {
        let Some(port) = self.ports.pop_front() else {
            self.report.errors.connect += 1;
            slot.phase = Phase::Idle;
            return;
        };
        let cx = host.iface.context();
        let s = host.sockets.get_mut::<tcp::Socket>(host.handles[i]);
        match s.connect(cx, (IpAddress::Ipv4(SERVER_IP), SERVER_PORT), port) {
            Ok(()) => {
                slot.phase = Phase::Connecting;
                slot.port = port;
                slot.received = 0;
                slot.started = self.latency.as_ref().map(|_| Instant::now());
            }
            Err(_) => {
                self.ports.push_back(port);
                self.report.errors.connect += 1;
                slot.phase = Phase::Idle;
            }
        }
    }

    fn release(&mut self, slot: &mut Slot) {
        self.ports.push_back(slot.port);
        slot.phase = Phase::Idle;
    }

    /// Connects every socket; false for those that failed (counted).
    fn open_all(&mut self, host: &mut Host) -> Vec<Slot> {
        let n = host.handles.len();
        let mut slots = vec![
            Slot {
                phase: Phase::Idle,
                port: 0,
                received: 0,
                started: None,
            };
            n
        ];
        for (i, slot) in slots.iter_mut().enumerate() {
            self.open(host, i, slot);
        }
        let give_up = Instant::now() + GRACE;
        let mut pending = slots
            .iter()
            .filter(|s| s.phase == Phase::Connecting)
            .count();
        while pending > 0 {
            let now = Instant::now();
            if now >= give_up {
                break;
            }
            if host.ingress(now) {
                for (i, slot) in slots.iter_mut().enumerate() {
                    if slot.phase != Phase::Connecting {
                        continue;
                    }
                    match host.socket(i).state() {
                        tcp::State::Established => {
                            slot.phase = Phase::Exchanging;
                            self.report.connections_opened += 1;
                            pending -= 1;
                        }
                        tcp::State::Closed => {
                            slot.phase = Phase::Dead;
                            self.report.errors.connect += 1;
                            pending -= 1;
                        }
                        _ => {}
                    }
                }
            }
            host.egress(now);
        }
        for slot in &mut slots {
            if slot.phase == Phase::Connecting {
                slot.phase = Phase::Dead;
                self.report.errors.connect += 1;
            }
        }
        slots
    }

    /// Sends a request on an established socket.
    fn send_request(&mut self, s: &mut tcp::Socket<'static>, slot: &mut Slot) -> bool {
        slot.received = 0;
        match s.send_slice(&self.payload) {
            Ok(k) if k == self.payload.len() => {
                self.report.bytes_tx += k as u64;
                true
            }
            _ => false,
        }
    }

    /// Reads response bytes, checking them; Err(()) on a mismatch.
    fn read_response(&mut self, s: &mut tcp::Socket<'static>, slot: &mut Slot) -> Result<(), ()> {
        while s.can_recv() && slot.received < self.payload.len() {
            let expect = &self.payload[slot.received..];
            let got = s.recv(|b| {
                let k = b.len().min(expect.len());
                (k, (k, b[..k] == expect[..k]))
            });
            match got {
                Ok((k, true)) => {
                    slot.received += k;
                    self.report.bytes_rx += k as u64;
                }
                _ => return Err(()),
            }
        }
        // Bytes beyond the response: the peer sent more than asked.
        if slot.received == self.payload.len() && s.can_recv() {
            return Err(());
        }
        Ok(())
    }

    fn record_latency(&mut self, slot: &Slot) {
        if let (Some(h), Some(t)) = (self.latency.as_mut(), slot.started) {
            h.saturating_record(t.elapsed().as_nanos() as u64);
        }
    }

    fn echo(&mut self, host: &mut Host, duration: Duration) {
        let mut slots = self.open_all(host);
        self.start = Instant::now();
        let deadline = self.start + duration;
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.phase == Phase::Exchanging {
                slot.started = self.latency.as_ref().map(|_| Instant::now());
                let s = host.sockets.get_mut::<tcp::Socket>(host.handles[i]);
                if !self.send_request(s, slot) {
                    slot.phase = Phase::Dead;
                    self.report.errors.io += 1;
                }
            }
        }
        host.dirty = true;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if host.ingress(now) {
                for (i, slot) in slots.iter_mut().enumerate() {
                    if slot.phase != Phase::Exchanging {
                        continue;
                    }
                    let s = host.sockets.get_mut::<tcp::Socket>(host.handles[i]);
                    if self.read_response(s, slot).is_err() {
                        slot.phase = Phase::Dead;
                        self.report.errors.mismatch += 1;
                        continue;
                    }
                    if slot.received == self.payload.len() {
                        self.report.requests += 1;
                        self.record_latency(slot);
                        slot.started = self.latency.as_ref().map(|_| Instant::now());
                        if !self.send_request(s, slot) {
                            slot.phase = Phase::Dead;
                            self.report.errors.io += 1;
                        }
                    } else if s.state() != tcp::State::Established {
                        slot.phase = Phase::Dead;
                        if s.state() == tcp::State::Closed {
                            self.report.errors.reset += 1;
                        } else {
                            self.report.errors.eof += 1;
                        }
                    }
                }
            }
            host.egress(now);
        }
        self.report.duration = self.start.elapsed();
        self.report.bytes_delivered = self.report.bytes_rx;
    }

    fn connect(&mut self, host: &mut Host, duration: Duration) {
        let n = host.handles.len();
        let mut slots = vec![
            Slot {
                phase: Phase::Idle,
                port: 0,
                received: 0,
                started: None,
            };
            n
        ];
        self.start = Instant::now();
        let deadline = self.start + duration;
        for (i, slot) in slots.iter_mut().enumerate() {
            self.open(host, i, slot);
        }
        host.dirty = true;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if host.ingress(now) {
                for (i, slot) in slots.iter_mut().enumerate() {
                    self.step_connect(host, i, slot);
                }
            }
            host.egress(now);
        }
        self.report.duration = self.start.elapsed();
        self.report.bytes_delivered = self.report.bytes_rx;
    }

    /// Moves one `connect` slot along: connect, request, response and FIN,
    /// close, reopen.
    fn step_connect(&mut self, host: &mut Host, i: usize, slot: &mut Slot) {
        let s = host.sockets.get_mut::<tcp::Socket>(host.handles[i]);
        let state = s.state();
        match slot.phase {
            Phase::Connecting => match state {
                tcp::State::Established | tcp::State::CloseWait => {
                    self.report.connections_opened += 1;
                    slot.phase = Phase::Exchanging;
                    if !self.send_request(s, slot) {
                        s.abort();
                        self.report.errors.io += 1;
                        self.release(slot);
                    }
                }
                tcp::State::Closed => {
                    self.report.errors.connect += 1;
                    self.release(slot);
                }
                _ => return,
            },
            Phase::Exchanging => {
                if self.read_response(s, slot).is_err() {
                    s.abort();
                    self.report.errors.mismatch += 1;
                    self.release(slot);
                } else if slot.received == self.payload.len() && state == tcp::State::CloseWait {
                    // Response and the server's FIN are in: close our half.
                    self.report.requests += 1;
                    s.close();
                    slot.phase = Phase::Closing;
                } else if state == tcp::State::Closed {
                    self.report.errors.reset += 1;
                    self.release(slot);
                } else if state == tcp::State::CloseWait {
                    self.report.errors.eof += 1;
                    s.abort();
                    self.release(slot);
                }
            }
            Phase::Closing => {
                if state != tcp::State::Closed {
                    return;
                }
                self.report.connections_closed += 1;
                self.record_latency(slot);
                self.release(slot);
            }
            Phase::Idle | Phase::Dead => {}
        }
        if slot.phase == Phase::Idle {
            self.open(host, i, slot);
        }
    }

    fn bulk(&mut self, host: &mut Host, duration: Duration, shared: &Shared) {
        let mut slots = self.open_all(host);
        let streams = slots
            .iter()
            .filter(|s| s.phase == Phase::Exchanging)
            .count();
        self.start = Instant::now();
        let deadline = self.start + duration;
        let mut now = self.start;
        while now < deadline {
            // Nothing to read on the sending side: fill the send buffers
            // every turn, ACKs or not.
            host.ingress(now);
            let mut queued = false;
            for (i, slot) in slots.iter().enumerate() {
                if slot.phase != Phase::Exchanging {
                    continue;
                }
                let s = host.socket(i);
                while s.can_send() {
                    match s.send_slice(&self.payload) {
                        Ok(k) if k > 0 => {
                            self.report.bytes_tx += k as u64;
                            queued = true;
                        }
                        _ => break,
                    }
                }
            }
            host.dirty |= queued;
            host.egress(now);
            now = Instant::now();
        }
        // FIN after the queued data; keep the connection moving until the
        // server has read every stream to its end.
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.phase == Phase::Exchanging {
                host.socket(i).close();
                slot.phase = Phase::Closing;
            }
        }
        host.dirty = true;
        let give_up = Instant::now() + GRACE;
        while shared.streams_done.load(Ordering::Acquire) < streams {
            let now = Instant::now();
            if now >= give_up {
                self.report.errors.timeout +=
                    (streams - shared.streams_done.load(Ordering::Acquire)) as u64;
                break;
            }
            host.ingress(now);
            host.egress(now);
        }
    }
}
