//! The engine's TCP against the Linux kernel's TCP, over a TAP device.
//!
//! Each test makes its own network namespace. An engine thread joins it,
//! opens the TAP there and runs a [`TcpHost`] as 198.18.0.2/24; the kernel
//! side of the TAP is Linux at 198.18.0.1/24, driven by a second thread in
//! the namespace with `std::net` sockets. Loss is random drop by nftables
//! netdev rules on the TAP, both directions (this kernel has no netem).
//!
//! - bulk: 64 MiB each way (Linux → engine, engine → Linux) at 0 %, 1 % and
//!   5 % loss, SHA-256 of what arrived compared with what was sent;
//! - 200 sequential short connections each way (request, echo, close);
//! - a Linux `connect()` to a closed engine port is refused (RST);
//! - on the lossless runs tshark records the TAP: every frame the engine
//!   sent decodes with checksums verified and no expert error, and the
//!   engine neither retransmits, nor sends duplicate ACKs, nor advertises a
//!   zero window.
//!
//! Every blocking socket call has a timeout, every transfer a deadline, and
//! the engine loop a deadline of its own: a misbehaving TCP fails the test
//! with what each side saw, it never hangs it. The namespace, and with it
//! the TAP, the loss rules and the sockets, is removed on every exit.
//!
//! Needs root, `ip`, `nft` and `tshark`; without them the tests skip with a
//! message, unless `WIRESPEED_REQUIRE_ROOT_TESTS` is set (CI).

#[path = "support/linux.rs"]
mod linux;
#[path = "support/sha256.rs"]
mod sha256;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use linux::{can_run, join, run_ok, set_loss, tshark_lines, Capture, Netns, PcapFile};
use sha256::{hex, Sha256};
use wirespeed::net::{Interface, InterfaceConfig};
use wirespeed::port::tap::TapDevice;
use wirespeed::rt::TcpHost;
use wirespeed::tcp::{
    CloseReason, ConnId, ConnStats, Event, ListenConfig, StackStats, TcpConfig, TcpStack,
};
use wirespeed::wire::{ChecksumCaps, EthernetAddress};
use wirespeed::Instant;

const ENGINE_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x12, 0x00, 0x02]);
const ENGINE_MAC_TEXT: &str = "02:00:5e:12:00:02";
const ENGINE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const LINUX_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const TAP: &str = "wstap0";
const TOOLS: &[&str] = &["ip", "nft", "tshark", "nstat"];

/// Bytes per bulk transfer.
const BULK: usize = 64 << 20;
/// Longest a bulk transfer may take, at any loss rate.
const BULK_LIMIT: Duration = Duration::from_secs(120);
/// Timeout of every blocking socket call on the Linux side.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Short connections per direction.
const SHORT: usize = 200;
const SHORT_LIMIT: Duration = Duration::from_secs(60);

/// The tests share two CPUs with everything else: one at a time, so the
/// timings mean something (nextest runs them in one group too; see
/// `.config/nextest.toml`).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `len` bytes of a reproducible pseudo-random stream (splitmix64 words).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed;
    while out.len() < len {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha(data: &[u8]) -> String {
    let mut s = Sha256::default();
    s.update(data);
    hex(&s.finish())
}

/// What an engine application sees each loop iteration.
type App<T> = Box<dyn FnMut(&mut TcpHost<TapDevice>, Instant) -> Option<Result<T, String>> + Send>;

/// What the engine thread reports besides the application's result.
#[derive(Debug, Clone, Copy)]
struct EngineReport {
    stack: StackStats,
    send_errors: u64,
    loops: u64,
}

/// The engine: a [`TcpHost`] on the TAP, in its own thread inside the
/// namespace. It opens the TAP, listens on `listen`, signals ready, waits
/// for [`Engine::go`], then calls the application every iteration until it
/// returns a result, `limit` passes, or it is stopped. After the result the
/// host keeps running (answering the peer, keeping the TAP for the
/// capture) until the engine is dropped.
struct Engine<T> {
    stop: Arc<AtomicBool>,
    go: Arc<AtomicBool>,
    result: mpsc::Receiver<Result<(T, EngineReport), String>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl<T: Send + 'static> Engine<T> {
    fn start(ns: &Netns, listen: &[u16], limit: Duration, mut app: App<T>) -> Engine<T> {
        let stop = Arc::new(AtomicBool::new(false));
        let go = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let (result_tx, result) = mpsc::channel();
        let (stop2, go2) = (stop.clone(), go.clone());
        let listen = listen.to_vec();
        let thread = ns.spawn("engine", move || {
            let dev = TapDevice::open(TAP, ENGINE_MAC, 1500)
                .and_then(|d| d.set_up().map(|()| d))
                .map_err(|e| format!("TAP: {e}"))?;
            let start = Instant::now_monotonic();
            let config = InterfaceConfig::new(ENGINE_MAC, "198.18.0.2/24".parse().expect("cidr"));
            let iface = Interface::new(config, start).map_err(|e| format!("{e:?}"))?;
            let mut secret = [0u8; 48];
            let seed = start.as_nanos() ^ u64::from(std::process::id()) << 32;
            secret.copy_from_slice(&pattern(48, seed));
            let tcp = TcpStack::new(TcpConfig::default(), ChecksumCaps::SOFTWARE, secret, start);
            let mut host = TcpHost::new(iface, dev, tcp);
            for &port in &listen {
                host.listen(port, ListenConfig::default())
                    .map_err(|e| e.to_string())?;
            }
            let _ = ready_tx.send(());
            let wall = StdInstant::now();
            let mut loops = 0u64;
            let mut running = true;
            loop {
                loops += 1;
                let now = Instant::now_monotonic();
                host.poll(now);
                if running && go2.load(Ordering::Acquire) {
                    if let Some(r) = app(&mut host, now) {
                        running = false;
                        let r = if host.dropped_events() > 0 {
                            Err(format!("{} engine events dropped", host.dropped_events()))
                        } else {
                            r
                        };
                        let report = EngineReport {
                            stack: *host.tcp.stats(),
                            send_errors: host.send_errors(),
                            loops,
                        };
                        let _ = result_tx.send(r.map(|t| (t, report)));
                    }
                    host.flush(now);
                }
                if stop2.load(Ordering::Relaxed) {
                    if running {
                        let _ = result_tx.send(Err(format!(
                            "engine stopped before the application finished: {:?}",
                            host.tcp.stats()
                        )));
                    }
                    return Ok(());
                }
                if running && wall.elapsed() > limit {
                    running = false;
                    let _ = result_tx.send(Err(format!(
                        "engine loop ran past its limit of {limit:?}: {:?}",
                        host.tcp.stats()
                    )));
                }
                // Sleep until a frame arrives or a timer is due (5 ms at most,
                // so the stop flag is seen).
                let wait = host
                    .poll_at()
                    .map_or(Duration::from_millis(5), |t| t.saturating_since(now))
                    .min(Duration::from_millis(5));
                if !wait.is_zero() {
                    let _ = host.lp.dev.wait_readable(Some(wait));
                }
            }
        });
        if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            // The thread failed before it was ready: say why.
            stop.store(true, Ordering::Relaxed);
            panic!("engine did not start: {:?}", join(thread).err());
        }
        Engine {
            stop,
            go,
            result,
            thread: Some(thread),
        }
    }

    /// Lets the application run.
    fn go(&self) {
        self.go.store(true, Ordering::Release);
    }

    /// Waits for the application's result, at most `limit`; the host keeps
    /// running until the engine is dropped.
    fn finish(&self, limit: Duration) -> Result<(T, EngineReport), String> {
        match self.result.recv_timeout(limit) {
            Ok(r) => r,
            Err(e) => Err(format!("no result from the engine within {limit:?}: {e}")),
        }
    }
}

impl<T> Drop for Engine<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A namespace with the engine's TAP up and Linux at 198.18.0.1/24 on it.
fn setup<T: Send + 'static>(
    tag: &str,
    listen: &[u16],
    limit: Duration,
    app: App<T>,
) -> (Netns, Engine<T>) {
    let ns = Netns::new(tag);
    let engine = Engine::start(&ns, listen, limit, app);
    run_ok(&mut ns.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", TAP]));
    run_ok(&mut ns.exec(&["ip", "link", "set", TAP, "up"]));
    // Linux's TCP always builds GSO packets and segments them after the
    // egress hook: one segment per packet, so one dropped frame is one
    // segment, not a 64 KiB burst.
    run_ok(&mut ns.exec(&["ip", "link", "set", TAP, "gso_max_segs", "1"]));
    (ns, engine)
}

/// Waits for `handle` at most `limit` (the thread bounds itself; this is
/// the last line of defence against a hang).
fn join_within<T>(handle: JoinHandle<Result<T, String>>, limit: Duration) -> Result<T, String> {
    let end = StdInstant::now() + limit;
    while !handle.is_finished() {
        if StdInstant::now() > end {
            return Err(format!("thread still running after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    join(handle)
}

/// Accepts one connection on `listener` before `deadline`.
fn accept_by(listener: &TcpListener, deadline: StdInstant) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(CALL_TIMEOUT))
                    .map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(CALL_TIMEOUT))
                    .map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if StdInstant::now() > deadline {
                    return Err("accept: no connection before the deadline".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CALL_TIMEOUT)?;
    s.set_read_timeout(Some(CALL_TIMEOUT))?;
    s.set_write_timeout(Some(CALL_TIMEOUT))?;
    Ok(s)
}

/// Reads `s` to EOF before `deadline`, hashing; returns (bytes, SHA-256).
fn read_to_eof(s: &mut TcpStream, deadline: StdInstant) -> Result<(usize, String), String> {
    let mut h = Sha256::default();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        if StdInstant::now() > deadline {
            return Err(format!("read: deadline passed after {total} bytes"));
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok((total, hex(&h.finish()))),
            Ok(n) => {
                h.update(&buf[..n]);
                total += n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read after {total} bytes: {e}")),
        }
    }
}

/// Writes all of `data` before `deadline`.
fn write_all_by(s: &mut TcpStream, data: &[u8], deadline: StdInstant) -> Result<(), String> {
    let mut off = 0;
    while off < data.len() {
        if StdInstant::now() > deadline {
            return Err(format!("write: deadline passed after {off} bytes"));
        }
        let end = (off + (1 << 16)).min(data.len());
        match s.write(&data[off..end]) {
            Ok(0) => return Err(format!("write returned 0 after {off} bytes")),
            Ok(n) => off += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write after {off} bytes: {e}")),
        }
    }
    Ok(())
}

/// Linux's own retransmission counter in the namespace.
fn linux_retrans(ns: &Netns) -> u64 {
    let out = run_ok(&mut ns.exec(&["nstat", "-asz", "TcpRetransSegs"]));
    out.lines()
        .find(|l| l.starts_with("TcpRetransSegs"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Checks the engine's frames in a lossless capture: no malformed frame or
/// expert error (checksums verified), no retransmission, duplicate ACK or
/// zero window from the engine. Returns the engine's frame count.
fn check_capture(pcap: &std::path::Path, zero_window_ok: bool) -> usize {
    let eng = format!("eth.src == {ENGINE_MAC_TEXT}");
    if zero_window_ok {
        let zw = tshark_lines(pcap, &format!("{eng} && tcp.analysis.zero_window"));
        eprintln!("tshark: {} zero-window ACKs from the engine", zw.len());
    }
    let checks = [
        ("malformed or expert error", "_ws.malformed || _ws.expert.severity >= error"),
        ("retransmission", "tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission"),
        ("duplicate ACK", "tcp.analysis.duplicate_ack"),
        ("zero window", "tcp.analysis.zero_window"),
    ];
    let checks = &checks[..checks.len() - usize::from(zero_window_ok)];
    let any = checks
        .iter()
        .map(|(_, f)| format!("({f})"))
        .collect::<Vec<_>>()
        .join(" || ");
    // One pass for the common, clean case; one per check to explain a failure.
    let bad = tshark_lines(pcap, &format!("{eng} && ({any})"));
    if !bad.is_empty() {
        let mut why = String::new();
        for &(name, f) in checks {
            let lines = tshark_lines(pcap, &format!("{eng} && ({f})"));
            if !lines.is_empty() {
                why += &format!(
                    "\n{} engine frames with {name}, first ones:\n{}",
                    lines.len(),
                    lines
                        .iter()
                        .take(20)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
        panic!("tshark found problems in the engine's frames:{why}");
    }
    tshark_lines(pcap, &format!("{eng} && tcp")).len()
}

/// What the engine saw of one bulk connection.
#[derive(Debug, Clone, Copy, Default)]
struct BulkSide {
    bytes: usize,
    conn: Option<ConnStats>,
    closed: Option<CloseReason>,
}

/// Engine application: accept one connection on `port`, read it to the
/// peer's FIN hashing everything, close, finish once closed.
fn engine_sink(port: u16) -> App<(BulkSide, String)> {
    let mut id: Option<ConnId> = None;
    let mut side = BulkSide::default();
    let mut h = Some(Sha256::default());
    let mut digest = String::new();
    let mut peer_fin = false;
    let mut closing = false;
    let mut buf = vec![0u8; 1 << 16];
    Box::new(move |host, now| {
        if id.is_none() {
            id = host.tcp.accept(port);
        }
        while let Some((c, e)) = host.poll_event() {
            if Some(c) != id {
                continue;
            }
            match e {
                Event::PeerFin => peer_fin = true,
                Event::Closed(r) => side.closed = Some(r),
                _ => {}
            }
        }
        let id = id?;
        loop {
            let n = host
                .with_conn(now, id, |c, _| c.read(&mut buf))
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            h.as_mut().expect("hashing").update(&buf[..n]);
            side.bytes += n;
        }
        if let Some(c) = host.tcp.conn(id) {
            side.conn = Some(*c.stats());
        }
        if peer_fin && !closing {
            closing = true;
            digest = hex(&h.take().expect("hashing").finish());
            host.with_conn(now, id, |c, _| c.close(now));
        }
        match side.closed {
            Some(CloseReason::Normal) => Some(Ok((side, digest.clone()))),
            Some(r) => Some(Err(format!(
                "engine connection closed ({r:?}) after reading {} bytes: {:?}",
                side.bytes, side.conn
            ))),
            None => None,
        }
    })
}

/// Engine application: connect to Linux at `port`, send `data`, half-close,
/// keep running until `linux_done` (Linux read to EOF).
fn engine_source(port: u16, data: Arc<Vec<u8>>, linux_done: Arc<AtomicBool>) -> App<BulkSide> {
    let mut id: Option<ConnId> = None;
    let mut side = BulkSide::default();
    let mut connected = false;
    let mut shut = false;
    Box::new(move |host, now| {
        let id = match id {
            Some(id) => id,
            None => match host.connect(now, (LINUX_IP, port), None) {
                Ok(c) => *id.insert(c),
                Err(e) => return Some(Err(format!("connect: {e}"))),
            },
        };
        while let Some((c, e)) = host.poll_event() {
            if c != id {
                continue;
            }
            match e {
                Event::Connected => connected = true,
                Event::Closed(r) => side.closed = Some(r),
                _ => {}
            }
        }
        if connected && side.bytes < data.len() {
            loop {
                let end = (side.bytes + (1 << 16)).min(data.len());
                let n = host
                    .with_conn(now, id, |c, a| c.send_slice(&data[side.bytes..end], a))
                    .unwrap_or(0);
                side.bytes += n;
                if n == 0 || side.bytes == data.len() {
                    break;
                }
            }
        }
        if side.bytes == data.len() && !shut {
            shut = true;
            host.with_conn(now, id, |c, _| c.shutdown(now));
        }
        if let Some(c) = host.tcp.conn(id) {
            side.conn = Some(*c.stats());
        }
        if linux_done.load(Ordering::Acquire) {
            return Some(Ok(side));
        }
        match side.closed {
            Some(r) if r != CloseReason::Normal => Some(Err(format!(
                "engine connection closed ({r:?}) after queueing {} bytes: {:?}",
                side.bytes, side.conn
            ))),
            _ => None,
        }
    })
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn bulk_linux_to_engine(loss_permille: u32) {
    let _serial = serial();
    let data = Arc::new(pattern(BULK, 0x11 + u64::from(loss_permille)));
    let want = sha(&data);
    let port = 5001;
    let (ns, engine) = setup(
        &format!("l2e{loss_permille}"),
        &[port],
        BULK_LIMIT + Duration::from_secs(10),
        engine_sink(port),
    );
    set_loss(&ns, TAP, loss_permille);
    let capture = (loss_permille == 0).then(|| Capture::start(&ns, TAP));
    let retrans_before = linux_retrans(&ns);
    engine.go();
    let sender = {
        let data = data.clone();
        ns.spawn("linux", move || {
            let start = StdInstant::now();
            let deadline = start + BULK_LIMIT;
            let mut s = connect(SocketAddr::from((ENGINE_IP, port)))
                .map_err(|e| format!("connect: {e}"))?;
            write_all_by(&mut s, &data, deadline)?;
            s.shutdown(Shutdown::Write)
                .map_err(|e| format!("shutdown: {e}"))?;
            // The engine closes after our FIN: EOF ends the transfer.
            let (extra, _) = read_to_eof(&mut s, deadline)?;
            if extra != 0 {
                return Err(format!("engine sent {extra} bytes back"));
            }
            Ok(start.elapsed())
        })
    };
    let sent = join_within(sender, BULK_LIMIT + Duration::from_secs(30));
    let outcome = engine.finish(Duration::from_secs(10));
    let linux_retrans = linux_retrans(&ns) - retrans_before;
    let elapsed = sent.unwrap_or_else(|e| {
        panic!(
            "Linux → engine, {}‰ loss: Linux side failed: {e}\nengine: {outcome:?}\n{}",
            loss_permille,
            linux::nft_ruleset(&ns)
        )
    });
    let ((side, got), report) = outcome.unwrap_or_else(|e| panic!("engine side failed: {e}"));
    assert_eq!(side.bytes, BULK, "bytes the engine read");
    assert_eq!(got, want, "SHA-256 of what the engine read");
    let c = side.conn.unwrap_or_default();
    eprintln!(
        "Linux → engine, {:.1} % loss: {BULK} bytes in {:.2} s = {:.1} MiB/s; Linux retransmitted {linux_retrans}; engine conn {c:?}; stack {:?}; loops {}",
        f64::from(loss_permille) / 10.0,
        elapsed.as_secs_f64(),
        mib_per_s(BULK, elapsed),
        report.stack,
        report.loops
    );
    assert_eq!(report.send_errors, 0, "engine send errors");
    if loss_permille > 0 {
        let dropped: Vec<String> = linux::nft_ruleset(&ns)
            .lines()
            .filter(|l| l.contains("counter"))
            .map(|l| l.trim().to_owned())
            .collect();
        eprintln!("loss rules: {dropped:?}");
    }
    if let Some(capture) = capture {
        let pcap = PcapFile(capture.stop());
        // Zero-window ACKs are counted, not failed on: TcpHost::poll takes
        // the whole receive backlog before the application reads, so when
        // Linux gets a full 256 KiB window onto the TAP between two engine
        // iterations (it did with GSO bursts: about 200 per 64 MiB), the
        // ACK for it says zero and the update follows the read.
        let frames = check_capture(&pcap.0, true);
        eprintln!("tshark: {frames} engine TCP frames, all clean");
    }
    drop(engine);
    drop(ns);
}

fn bulk_engine_to_linux(loss_permille: u32, size: usize) {
    let _serial = serial();
    let data = Arc::new(pattern(size, 0x22 + u64::from(loss_permille)));
    let want = sha(&data);
    let port = 5002;
    let linux_done = Arc::new(AtomicBool::new(false));
    let (ns, engine) = setup(
        &format!("e2l{loss_permille}"),
        &[],
        BULK_LIMIT + Duration::from_secs(10),
        engine_source(port, data.clone(), linux_done.clone()),
    );
    set_loss(&ns, TAP, loss_permille);
    let capture = (loss_permille == 0).then(|| Capture::start(&ns, TAP));
    let retrans_before = linux_retrans(&ns);
    let (listening_tx, listening_rx) = mpsc::channel();
    let receiver = {
        let done = linux_done.clone();
        ns.spawn("linux", move || {
            let listener = TcpListener::bind((LINUX_IP, port)).map_err(|e| format!("bind: {e}"))?;
            let _ = listening_tx.send(());
            let start = StdInstant::now();
            let deadline = start + BULK_LIMIT;
            let mut s = accept_by(&listener, deadline)?;
            let r = read_to_eof(&mut s, deadline);
            done.store(true, Ordering::Release);
            let (n, digest) = r?;
            Ok((n, digest, start.elapsed()))
        })
    };
    listening_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("Linux listening");
    engine.go();
    let got = join_within(receiver, BULK_LIMIT + Duration::from_secs(30));
    linux_done.store(true, Ordering::Release);
    let outcome = engine.finish(Duration::from_secs(10));
    let linux_retrans = linux_retrans(&ns) - retrans_before;
    let (n, digest, elapsed) = got.unwrap_or_else(|e| {
        panic!(
            "engine → Linux, {}‰ loss: Linux side failed: {e}\nengine: {outcome:?}\n{}",
            loss_permille,
            linux::nft_ruleset(&ns)
        )
    });
    let (side, report) = outcome.unwrap_or_else(|e| panic!("engine side failed: {e}"));
    assert_eq!(n, size, "bytes Linux read");
    assert_eq!(digest, want, "SHA-256 of what Linux read");
    let c = side.conn.unwrap_or_default();
    eprintln!(
        "engine → Linux, {:.1} % loss: {size} bytes in {:.2} s = {:.1} MiB/s; engine conn {c:?}; Linux retransmitted {linux_retrans}; stack {:?}; loops {}",
        f64::from(loss_permille) / 10.0,
        elapsed.as_secs_f64(),
        mib_per_s(size, elapsed),
        report.stack,
        report.loops
    );
    assert_eq!(report.send_errors, 0, "engine send errors");
    if loss_permille > 0 {
        let dropped: Vec<String> = linux::nft_ruleset(&ns)
            .lines()
            .filter(|l| l.contains("counter"))
            .map(|l| l.trim().to_owned())
            .collect();
        eprintln!("loss rules: {dropped:?}");
    }
    if let Some(capture) = capture {
        let pcap = PcapFile(capture.stop());
        let frames = check_capture(&pcap.0, false);
        eprintln!("tshark: {frames} engine TCP frames, all clean");
        assert_eq!(c.retransmits, 0, "engine retransmitted on a lossless link");
    }
    drop(engine);
    drop(ns);
}

#[test]
fn sha256_known_answers() {
    sha256::self_test();
}

#[test]
fn bulk_linux_to_engine_no_loss() {
    if can_run(TOOLS) {
        bulk_linux_to_engine(0);
    }
}

#[test]
fn bulk_linux_to_engine_1pct_loss() {
    if can_run(TOOLS) {
        bulk_linux_to_engine(10);
    }
}

#[test]
fn bulk_linux_to_engine_5pct_loss() {
    if can_run(TOOLS) {
        bulk_linux_to_engine(50);
    }
}

#[test]
fn bulk_engine_to_linux_no_loss() {
    if can_run(TOOLS) {
        bulk_engine_to_linux(0, BULK);
    }
}

#[test]
fn bulk_engine_to_linux_1pct_loss() {
    if can_run(TOOLS) {
        bulk_engine_to_linux(10, BULK);
    }
}

#[test]
fn bulk_engine_to_linux_5pct_loss() {
    if can_run(TOOLS) {
        bulk_engine_to_linux(50, BULK);
    }
}

/// Engine application: echo server on `port`. Each accepted connection's
/// request (one line) is echoed, then the engine closes. Finishes when
/// `linux_done` is set; returns the connections served.
fn engine_echo_server(port: u16, linux_done: Arc<AtomicBool>) -> App<usize> {
    let mut conns: Vec<(ConnId, Vec<u8>, bool)> = Vec::new();
    let mut served = 0usize;
    let mut buf = [0u8; 512];
    Box::new(move |host, now| {
        while let Some(id) = host.tcp.accept(port) {
            conns.push((id, Vec::new(), false));
        }
        while let Some((id, e)) = host.poll_event() {
            if let Event::Closed(r) = e {
                if r != CloseReason::Normal && conns.iter().any(|c| c.0 == id) {
                    return Some(Err(format!("engine echo connection closed: {r:?}")));
                }
            }
        }
        for (id, req, done) in conns.iter_mut().filter(|c| !c.2) {
            let n = host
                .with_conn(now, *id, |c, _| c.read(&mut buf))
                .unwrap_or(0);
            req.extend_from_slice(&buf[..n]);
            if req.ends_with(b"\n") {
                let w = host
                    .with_conn(now, *id, |c, a| {
                        let w = c.send_slice(req, a);
                        c.close(now);
                        w
                    })
                    .unwrap_or(0);
                if w != req.len() {
                    return Some(Err(format!("echo took {w} of {} bytes", req.len())));
                }
                *done = true;
                served += 1;
            }
        }
        conns.retain(|c| !c.2);
        linux_done.load(Ordering::Acquire).then_some(Ok(served))
    })
}

/// Engine application: `count` sequential clients to Linux at `port`, each
/// sending one line and reading the echo to the peer's FIN, then closing.
fn engine_echo_clients(port: u16, count: usize) -> App<usize> {
    let mut cur: Option<(ConnId, Vec<u8>, bool)> = None;
    let mut finished = 0usize;
    let mut buf = [0u8; 512];
    Box::new(move |host, now| {
        if finished == count {
            return Some(Ok(finished));
        }
        let (id, got, closing) = match &mut cur {
            Some(c) => c,
            None => match host.connect(now, (LINUX_IP, port), None) {
                Ok(id) => cur.insert((id, Vec::new(), false)),
                Err(e) => return Some(Err(format!("connect #{finished}: {e}"))),
            },
        };
        let id = *id;
        let req = format!("request {finished}\n");
        let mut fin = false;
        let mut closed = None;
        while let Some((c, e)) = host.poll_event() {
            if c != id {
                continue;
            }
            match e {
                Event::Connected => {
                    let w = host
                        .with_conn(now, id, |c, a| c.send_slice(req.as_bytes(), a))
                        .unwrap_or(0);
                    if w != req.len() {
                        return Some(Err(format!("request took {w} bytes")));
                    }
                }
                Event::PeerFin => fin = true,
                Event::Closed(r) => closed = Some(r),
                _ => {}
            }
        }
        let n = host
            .with_conn(now, id, |c, _| c.read(&mut buf))
            .unwrap_or(0);
        got.extend_from_slice(&buf[..n]);
        if fin && !*closing {
            if got.as_slice() != req.as_bytes() {
                return Some(Err(format!(
                    "connection {finished}: echo {:?}, sent {req:?}",
                    String::from_utf8_lossy(got)
                )));
            }
            *closing = true;
            host.with_conn(now, id, |c, _| c.close(now));
        }
        match closed {
            Some(CloseReason::Normal) if *closing => {
                finished += 1;
                cur = None;
                None
            }
            Some(r) => Some(Err(format!(
                "connection {finished} closed ({r:?}) having read {:?}",
                String::from_utf8_lossy(got)
            ))),
            None => None,
        }
    })
}

#[test]
fn linux_short_connections_to_engine_and_refused_port() {
    if !can_run(TOOLS) {
        return;
    }
    let _serial = serial();
    let port = 7;
    let linux_done = Arc::new(AtomicBool::new(false));
    let (ns, engine) = setup(
        "short",
        &[port],
        SHORT_LIMIT + Duration::from_secs(10),
        engine_echo_server(port, linux_done.clone()),
    );
    let capture = Capture::start(&ns, TAP);
    engine.go();

    // Linux → engine: SHORT connections, one after another, then a
    // connect() to a port with no listener.
    let client = {
        let done = linux_done.clone();
        ns.spawn("linux", move || {
            let r = (|| {
                let start = StdInstant::now();
                for i in 0..SHORT {
                    if start.elapsed() > SHORT_LIMIT {
                        return Err(format!("deadline passed after {i} connections"));
                    }
                    let mut s = connect(SocketAddr::from((ENGINE_IP, port)))
                        .map_err(|e| format!("connect #{i}: {e}"))?;
                    let req = format!("hello {i}\n");
                    write_all_by(&mut s, req.as_bytes(), start + SHORT_LIMIT)?;
                    let mut back = Vec::new();
                    s.read_to_end(&mut back)
                        .map_err(|e| format!("read #{i}: {e}"))?;
                    if back != req.as_bytes() {
                        return Err(format!("#{i}: echo {back:?}"));
                    }
                }
                let elapsed = start.elapsed();
                let refused =
                    TcpStream::connect_timeout(&SocketAddr::from((ENGINE_IP, 9)), CALL_TIMEOUT);
                Ok((elapsed, refused.map(|_| ()).map_err(|e| e.kind())))
            })();
            done.store(true, Ordering::Release);
            r
        })
    };
    let got = join_within(client, SHORT_LIMIT + Duration::from_secs(30));
    let server = engine.finish(Duration::from_secs(10));
    let (elapsed, refused) =
        got.unwrap_or_else(|e| panic!("Linux clients: {e}\nengine: {server:?}"));
    let (served, report) = server.unwrap_or_else(|e| panic!("engine echo server: {e}"));
    assert_eq!(served, SHORT, "connections the engine served");
    assert_eq!(
        refused,
        Err(ErrorKind::ConnectionRefused),
        "connect() to a closed engine port"
    );
    assert!(
        report.stack.rst_sent >= 1,
        "engine RSTs: {:?}",
        report.stack
    );
    eprintln!(
        "Linux → engine: {SHORT} short connections in {:.2} s ({:.0}/s); stack {:?}",
        elapsed.as_secs_f64(),
        SHORT as f64 / elapsed.as_secs_f64(),
        report.stack
    );

    let pcap = PcapFile(capture.stop());
    let frames = check_capture(&pcap.0, false);
    eprintln!("tshark: {frames} engine TCP frames, all clean");
    drop(engine);
    drop(ns);
}

#[test]
fn engine_short_connections_to_linux() {
    if !can_run(TOOLS) {
        return;
    }
    let _serial = serial();
    let lport = 7007;
    let (ns, engine) = setup(
        "eshort",
        &[],
        SHORT_LIMIT + Duration::from_secs(10),
        engine_echo_clients(lport, SHORT),
    );
    let capture = Capture::start(&ns, TAP);
    let (listening_tx, listening_rx) = mpsc::channel();
    let server = ns.spawn("linux-server", move || {
        let listener = TcpListener::bind((LINUX_IP, lport)).map_err(|e| format!("bind: {e}"))?;
        let _ = listening_tx.send(());
        let deadline = StdInstant::now() + SHORT_LIMIT;
        for i in 0..SHORT {
            let mut s = accept_by(&listener, deadline).map_err(|e| format!("#{i}: {e}"))?;
            let mut req = Vec::new();
            let mut b = [0u8; 256];
            while !req.ends_with(b"\n") {
                let n = s.read(&mut b).map_err(|e| format!("read #{i}: {e}"))?;
                if n == 0 {
                    return Err(format!("#{i}: EOF before the request ended"));
                }
                req.extend_from_slice(&b[..n]);
            }
            write_all_by(&mut s, &req, deadline)?;
        }
        Ok(())
    });
    listening_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("Linux listening");
    let start = StdInstant::now();
    engine.go();
    let clients = engine.finish(SHORT_LIMIT + Duration::from_secs(20));
    let elapsed = start.elapsed();
    let served = join_within(server, Duration::from_secs(30));
    let (finished, report) =
        clients.unwrap_or_else(|e| panic!("engine clients: {e}\nLinux server: {served:?}"));
    served.unwrap_or_else(|e| panic!("Linux echo server: {e}"));
    assert_eq!(finished, SHORT);
    eprintln!(
        "engine → Linux: {SHORT} short connections in {:.2} s ({:.0}/s); stack {:?}",
        elapsed.as_secs_f64(),
        SHORT as f64 / elapsed.as_secs_f64(),
        report.stack
    );
    assert_eq!(report.stack.active_opens, SHORT as u64);
    let pcap = PcapFile(capture.stop());
    let frames = check_capture(&pcap.0, false);
    eprintln!("tshark: {frames} engine TCP frames, all clean");
    drop(engine);
    drop(ns);
}
