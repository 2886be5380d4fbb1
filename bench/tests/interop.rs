//! `wirespeed serve` and `wirespeed load` against real software over the
//! network-namespace lab of `deploy/lab.sh`: curl, wrk, nginx, ping and
//! the kernel's TCP.
//!
//! Each test brings up a lab of its own (prefix `wsi<pid><tag>`), and
//! `lab.sh down` removes it when the test ends, however it ends; every
//! process a test starts is stopped by PID. A [`Wire`] says how the engine
//! meets Linux:
//! - [`Wire::Tap`]: the engine on the lab's TAP, inside the Linux peer's
//!   namespace;
//! - [`Wire::Veth`]: the engine on the bare end of a veth pair (AF_XDP),
//!   the Linux peer on the other end in a second namespace.
//!
//! A scenario is a function of the wire and each `#[test]` names one; the
//! AF_XDP variants are the same scenarios with `Wire::Veth`. The veth
//! plumbing itself is checked Linux to Linux (nginx, curl, iperf3, the
//! loss rules) in `lab_veth_linux_to_linux`.
//!
//! Scenarios, the engine on one side:
//! - `serve http`: curl fetches 1 KiB, 1 MiB and 64 MiB bodies, checked by
//!   SHA-256; then wrk, 100 connections for 10 s, without socket errors or
//!   non-2xx answers;
//! - `load http` against nginx, keep-alive and a connection per request:
//!   no errors, as many requests as nginx logged, and no connection left
//!   half-closed on Linux after the run;
//! - 64 MiB of random bytes each way through `serve echo` from a Linux
//!   socket, checked by SHA-256, with 0 %, 1 % and 5 % random loss both
//!   ways;
//! - `ping -c 100 -i 0.01`: 100 replies.
//!
//! tcpdump records the Linux end during each; tshark must decode every
//! frame the engine sent without an expert error (IPv4 and TCP checksums
//! verified where whole frames were kept), and without loss the engine
//! sends no duplicate-ACK storm and advertises no zero window. Captures keep
//! whole frames for small transfers, headers for the large ones, and the
//! first frames only of the 10 s runs.
//!
//! Needs root, `/dev/net/tun` and the tools each test names; without them
//! a test skips with a message, except under `CI` or
//! `WIRESPEED_REQUIRE_ROOT_TESTS`, where it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

const WIRESPEED: &str = env!("CARGO_BIN_EXE_wirespeed");
const LAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/lab.sh");
/// Where `lab.sh` keeps a lab's nginx files.
const LAB_STATE: &str = "/run/wirespeed-lab";

/// The lab's addresses (RFC 2544 benchmarking range), /24.
const CLIENT_IP: &str = "198.18.0.1";
const SERVER_IP: &str = "198.18.0.2";
const PREFIX_LEN: u8 = 24;

/// Bytes each way in the bulk scenario.
const BULK: usize = 64 << 20;
/// Longest a bulk exchange may take, at any loss rate.
const BULK_LIMIT: Duration = Duration::from_secs(150);
/// Frames kept of a capture of a 10 s run: its opening.
const RUN_CAPTURE_FRAMES: &str = "20000";
/// Capture lengths: whole frames (the lab's MTU is 1500), or headers
/// (Ethernet, IPv4 and TCP with options).
const WHOLE: &str = "1600";
const HEADERS: &str = "128";

/// The tests share two CPUs and the kernel with everything else: one at a
/// time (nextest runs this binary in the `linux-peer` group too).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("WIRESPEED_REQUIRE_ROOT_TESTS").is_some()
}

/// Whether this machine can run a test needing root, `/dev/net/tun` and
/// `tools`: if not, a skip message, or a failure under CI.
fn can_run(tools: &[&str]) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut missing: Vec<&str> = ["bash", "ip", "nft", "tcpdump", "tshark"]
        .iter()
        .chain(tools)
        .copied()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if !root {
        missing.push("root");
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun");
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("needs root, /dev/net/tun and {tools:?} (missing: {missing:?})");
    assert!(!required(), "{why}");
    eprintln!("skipped: {why}");
    false
}

/// How the engine's port is driven on a veth end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XdpMode {
    /// The driver's own XDP hook (`mode=native`).
    Native,
    /// The generic, skb-based hook (`mode=generic`).
    Generic,
}

impl XdpMode {
    fn name(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }
}

/// How the engine meets the Linux peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// A TAP in the peer's namespace; its kernel side is the peer.
    Tap,
    /// A veth pair between two namespaces; the engine drives its end with
    /// AF_XDP.
    Veth { mode: XdpMode },
}

/// Which side of a client/server exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }

    fn other(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }

    fn ip(self) -> &'static str {
        match self {
            Role::Client => CLIENT_IP,
            Role::Server => SERVER_IP,
        }
    }
}

/// A lab from `deploy/lab.sh up`, taken down on drop.
#[derive(Debug)]
struct Lab {
    prefix: String,
    wire: Wire,
    /// The engine's side.
    engine: Role,
}

impl Lab {
    /// `lab.sh up` with the engine as `engine`; `loss` in percent.
    fn up(tag: &str, wire: Wire, engine: Role, loss: &str, body_size: usize) -> Lab {
        // The guard first: a failed `up` is taken down too.
        let lab = Lab {
            prefix: format!("wsi{}{tag}", std::process::id()),
            wire,
            engine,
        };
        lab.rerun_up(loss, body_size);
        lab
    }

    /// `lab.sh up` again on this lab's prefix (it replaces the lab).
    fn rerun_up(&self, loss: &str, body_size: usize) {
        let wire = match self.wire {
            Wire::Tap => "tap",
            Wire::Veth { .. } => "veth",
        };
        let body = body_size.to_string();
        run_ok(Command::new("bash").arg(LAB).args([
            "up",
            "--wire",
            wire,
            "--engine",
            self.engine.name(),
            "--loss",
            loss,
            "--body-size",
            &body,
            "--prefix",
            &self.prefix,
        ]));
    }

    fn ns(&self, role: Role) -> String {
        match self.wire {
            // One namespace, the peer's, holds the TAP.
            Wire::Tap => format!("{}-{}", self.prefix, self.engine.other().name()),
            Wire::Veth { .. } => format!("{}-{}", self.prefix, role.name()),
        }
    }

    fn engine_ns(&self) -> String {
        self.ns(self.engine)
    }

    fn linux_ns(&self) -> String {
        self.ns(self.engine.other())
    }

    fn engine_ip(&self) -> &'static str {
        self.engine.ip()
    }

    fn linux_ip(&self) -> &'static str {
        self.engine.other().ip()
    }

    /// The Linux end of the wire: where loss applies and captures record.
    fn linux_dev(&self) -> String {
        match self.wire {
            Wire::Tap => format!("tap-{}", self.engine.name()),
            Wire::Veth { .. } => format!("veth-{}", self.engine.other().name()),
        }
    }

    /// `--port` for the engine.
    fn port(&self) -> String {
        match self.wire {
            Wire::Tap => format!("tap:tap-{}", self.engine.name()),
            Wire::Veth { mode } => {
                format!("af_xdp:veth-{},mode={}", self.engine.name(), mode.name())
            }
        }
    }

    /// `args` run in the Linux peer's namespace.
    fn linux(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.linux_ns()]).args(args);
        c
    }

    /// `wirespeed <command> <mode>` on the engine's side of the wire, its
    /// port and address given, then `extra`.
    fn wirespeed(&self, command: &str, mode: &str, extra: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.engine_ns(), WIRESPEED, command, mode])
            .args(["--port", &self.port(), "--cores", "1"])
            .args(["--ip", &format!("{}/{PREFIX_LEN}", self.engine_ip())])
            .args(extra);
        c
    }

    /// The MAC address of the Linux end: every other source is the engine.
    fn linux_mac(&self) -> String {
        let dev = self.linux_dev();
        let out = run_ok(&mut self.linux(&["cat", &format!("/sys/class/net/{dev}/address")]));
        out.trim().to_owned()
    }

    /// Lines in nginx's access log: one per request served.
    fn nginx_requests(&self) -> usize {
        let log = Path::new(LAB_STATE).join(&self.prefix).join("access.log");
        let text = std::fs::read(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        text.iter().filter(|&&b| b == b'\n').count()
    }

    /// Waits until the engine answers ping (its port is up and its loop
    /// runs); fails early with the engine's output if it exited.
    fn wait_engine(&self, engine: &mut Proc) {
        let t0 = Instant::now();
        loop {
            let ok = self
                .linux(&["ping", "-c", "1", "-W", "1", "-q", self.engine_ip()])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            if let Some(out) = engine.exited() {
                panic!("the engine exited early: {out}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the engine never answered ping at {}",
                self.engine_ip()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(LAB)
            .args(["down", "--prefix", &self.prefix])
            .stdout(Stdio::null())
            .status();
    }
}

/// Runs `cmd`, panics unless it succeeds; returns its standard output.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A process this test started; stopped by PID on drop: SIGINT first
/// (wirespeed and tcpdump finish cleanly on it), SIGKILL after 5 s. Its
/// output is read as it runs, so a full pipe never stalls it.
#[derive(Debug)]
struct Proc {
    child: Child,
    what: String,
    output: Option<(JoinHandle<String>, JoinHandle<String>)>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        Proc::spawn_watching(cmd, "").0
    }

    /// Starts `cmd`; the receiver hears once per line of its standard
    /// error that contains `watch` (when not empty).
    fn spawn_watching(cmd: &mut Command, watch: &'static str) -> (Proc, mpsc::Receiver<()>) {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !watch.is_empty() && line.contains(watch) {
                    let _ = tx.send(());
                }
                text += &line;
                text.push('\n');
            }
            text
        });
        let proc = Proc {
            child,
            what,
            output: Some((out, err)),
        };
        (proc, rx)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn interrupt(&mut self) {
        if self.running() {
            // SAFETY: kill(2) with a valid signal on our own child, which
            // has not been reaped (try_wait just saw it running).
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
            }
        }
    }

    /// Waits up to `limit` for the process to exit.
    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if t0.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Standard output and error; call once the process has exited.
    fn collect(&mut self) -> (String, String) {
        match self.output.take() {
            Some((out, err)) => (
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default(),
            ),
            None => Default::default(),
        }
    }

    /// Its status and output, if it has exited.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        let (out, err) = self.collect();
        Some(format!("{}: {status}\n{out}\n{err}", self.what))
    }

    /// Waits up to `limit` for an exit, then interrupts (and kills after
    /// 5 s); panics unless the process exited with success. Returns its
    /// standard output.
    fn stop_within(&mut self, limit: Duration) -> String {
        let mut status = self.wait_for(limit);
        if status.is_none() {
            self.interrupt();
            status = self.wait_for(Duration::from_secs(5));
            if status.is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        let (out, err) = self.collect();
        assert!(
            status.is_some_and(|s| s.success()),
            "{} ended with {status:?}:\n{out}\n{err}",
            self.what
        );
        out
    }

    /// Interrupts the process and returns its standard output; panics
    /// unless it exits with success.
    fn finish(mut self) -> String {
        self.interrupt();
        self.stop_within(Duration::from_secs(10))
    }

    /// Lets the process end by itself within `limit`; panics unless it
    /// exits with success. Returns its standard output.
    fn join(mut self, limit: Duration) -> String {
        self.stop_within(limit)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            self.interrupt();
            if self.wait_for(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// A scratch directory for captures and reports: removed on drop, kept
/// (and named) when the test fails.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("wirespeed-interop-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for inspection: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// tcpdump recording the Linux end of the lab's wire, both directions.
#[derive(Debug)]
struct Capture {
    proc: Proc,
    file: PathBuf,
}

impl Capture {
    /// Starts recording into `file`: `snaplen` bytes of each frame
    /// ([`WHOLE`] or [`HEADERS`]), the first `count` frames only if given.
    /// Returns once tcpdump listens.
    fn start(lab: &Lab, file: PathBuf, snaplen: &str, count: Option<&str>) -> Capture {
        let dev = lab.linux_dev();
        let path = file.to_str().expect("UTF-8 path").to_owned();
        // -Z root: keep the privileges to write in our scratch directory;
        // --immediate-mode: frames reach tcpdump at once, so a stop loses
        // none (the last ring block would wait for its timeout); 64 MiB of
        // kernel buffer, so a burst on two busy CPUs drops none either.
        let mut args = vec![
            "tcpdump",
            "-Z",
            "root",
            "-i",
            &dev,
            "-n",
            "--immediate-mode",
            "-B",
            "65536",
            "-s",
            snaplen,
            "-w",
            &path,
        ];
        if let Some(c) = count {
            args.extend(["-c", c]);
        }
        let (mut proc, listening) = Proc::spawn_watching(&mut lab.linux(&args), "listening on");
        if listening.recv_timeout(Duration::from_secs(20)).is_err() {
            panic!("tcpdump never started: {:?}", proc.exited());
        }
        Capture { proc, file }
    }

    /// Stops recording and returns the file.
    fn stop(mut self) -> PathBuf {
        // Let the last frames reach the file.
        std::thread::sleep(Duration::from_millis(300));
        self.proc.interrupt();
        let _ = self.proc.wait_for(Duration::from_secs(10));
        let (_, stats) = self.proc.collect();
        eprintln!(
            "{}: {}",
            self.file.display(),
            stats.trim().replace('\n', "; ")
        );
        self.file.clone()
    }
}

/// Frames of `pcap` matching `filter`, as tshark prints them, with IPv4
/// and TCP checksums verified; `extra` adds tshark options.
fn tshark(pcap: &Path, filter: &str, extra: &[&str]) -> Vec<String> {
    let out = run_ok(
        Command::new("tshark")
            .arg("-n")
            .arg("-r")
            .arg(pcap)
            .args([
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "tcp.check_checksum:TRUE",
            ])
            .args(extra)
            .args(["-Y", filter]),
    );
    out.lines().map(str::to_owned).collect()
}

/// What a capture's engine frames may show besides clean decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No loss: no duplicate-ACK storm, no zero window.
    Lossless,
    /// No loss, but the application stops reading while it cannot send
    /// (echo): a zero window is flow control doing its job.
    LosslessBackpressure,
    /// Random loss: duplicate ACKs are expected.
    Lossy,
}

/// Checks the engine's frames in `pcap`: none malformed or with an expert
/// error, and what `link` rules out. `extra` adds tshark options
/// (decode-as). Returns how many frames the engine sent.
fn check_capture(pcap: &Path, lab: &Lab, link: Link, extra: &[&str]) -> usize {
    let engine = format!("eth.src != {}", lab.linux_mac());
    let mut checks = vec![(
        "malformed or expert error",
        "_ws.malformed || _ws.expert.severity >= error",
    )];
    if link != Link::Lossy {
        // A lone duplicate ACK is the right answer to a duplicate segment
        // (RFC 9293 section 3.10.7.4; Linux's tail loss probe re-sends a
        // FIN the engine had no time to ACK yet). A third one in a row is
        // what makes the peer retransmit (RFC 5681 section 3.2): a storm.
        checks.push(("duplicate ACK storm", "tcp.analysis.duplicate_ack_num >= 3"));
    }
    if link == Link::Lossless {
        checks.push(("zero window", "tcp.analysis.zero_window"));
    }
    let any = checks
        .iter()
        .map(|(_, f)| format!("({f})"))
        .collect::<Vec<_>>()
        .join(" || ");
    // One pass for the clean case; one per check to explain a failure.
    if !tshark(pcap, &format!("{engine} && ({any})"), extra).is_empty() {
        let mut why = String::new();
        for (name, f) in &checks {
            let lines = tshark(pcap, &format!("{engine} && ({f})"), extra);
            if !lines.is_empty() {
                why += &format!(
                    "\n{} engine frames with {name}, the first:\n{}",
                    lines.len(),
                    lines[..lines.len().min(20)].join("\n")
                );
            }
        }
        panic!(
            "{}: tshark found problems in the engine's frames:{why}",
            pcap.display()
        );
    }
    let sent = tshark(pcap, &engine, extra).len();
    assert!(sent > 0, "{}: no frame from the engine", pcap.display());
    let dup = tshark(
        pcap,
        &format!("{engine} && tcp.analysis.duplicate_ack"),
        extra,
    )
    .len();
    let zero = tshark(
        pcap,
        &format!("{engine} && tcp.analysis.zero_window"),
        extra,
    )
    .len();
    if dup + zero > 0 {
        eprintln!(
            "{}: {dup} duplicate ACKs, {zero} zero windows from the engine",
            pcap.display()
        );
    }
    sent
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `serve http`'s body of `len` bytes: `a` to `z`, repeated.
fn page_sha256(len: usize) -> String {
    let alphabet: Vec<u8> = (b'a'..=b'z').collect();
    let block: Vec<u8> = alphabet.iter().copied().cycle().take(26 * 1024).collect();
    let mut h = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        h.update(&block[..n]);
        left -= n;
    }
    hex(&h.finalize())
}

fn num(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {v}"))
}

// ---------------------------------------------------------------------------
// Scenarios

/// curl and wrk against `wirespeed serve http`.
fn serve_http(wire: Wire) {
    let lab = Lab::up("http", wire, Role::Server, "0", 0);
    let scratch = Scratch::new("serve-http");
    let url = format!("http://{}/", lab.engine_ip());
    // Whole frames (checksums checked) for the small bodies, headers for
    // the large one.
    for (size, snaplen) in [(1024usize, WHOLE), (1 << 20, WHOLE), (64 << 20, HEADERS)] {
        let body = size.to_string();
        let mut engine = Proc::spawn(&mut lab.wirespeed(
            "serve",
            "http",
            &["--body-size", &body, "--duration", "120s"],
        ));
        lab.wait_engine(&mut engine);
        let cap = Capture::start(
            &lab,
            scratch.file(&format!("curl-{size}.pcap")),
            snaplen,
            None,
        );
        let out = lab
            .linux(&["curl", "-sS", "--fail", "-m", "60", "-o", "-", &url])
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "curl {url} ({size}-byte body): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout.len(), size, "body length");
        assert_eq!(
            hex(&Sha256::digest(&out.stdout)),
            page_sha256(size),
            "{size}-byte body"
        );
        let pcap = cap.stop();
        // Headers only: HTTP is not reassembled from truncated frames.
        let decode: &[&str] = if snaplen == WHOLE {
            &[]
        } else {
            &["-d", "tcp.port==80,data"]
        };
        let frames = check_capture(&pcap, &lab, Link::Lossless, decode);
        eprintln!("curl {size} bytes: {frames} engine frames checked");

        if size == 1024 {
            let cap = Capture::start(
                &lab,
                scratch.file("wrk.pcap"),
                WHOLE,
                Some(RUN_CAPTURE_FRAMES),
            );
            let text = run_ok(&mut lab.linux(&["wrk", "-t1", "-c100", "-d10s", &url]));
            assert!(!text.contains("Socket errors"), "{text}");
            assert!(!text.contains("Non-2xx"), "{text}");
            let requests: u64 = text
                .lines()
                .find_map(|l| {
                    l.trim()
                        .split_once(" requests in")
                        .map(|(n, _)| n.trim().to_owned())
                })
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("wrk said: {text}"));
            assert!(requests > 0, "{text}");
            let frames = check_capture(&cap.stop(), &lab, Link::Lossless, &[]);
            eprintln!("wrk: {requests} requests; {frames} engine frames checked");
        }
        let served = engine.finish();
        eprintln!("{}", served.lines().last().unwrap_or_default());
    }
}

/// `wirespeed load http` against nginx, keep-alive and a connection per
/// request: no errors, every request in nginx's log.
fn load_http(wire: Wire) {
    let lab = Lab::up("load", wire, Role::Client, "0", 1024);
    let scratch = Scratch::new("load-http");
    let target = format!("{}:80", lab.linux_ip());
    for (tag, extra) in [
        ("keepalive", &[][..]),
        ("per-request", &["--new-conn-per-request"][..]),
    ] {
        let logged_before = lab.nginx_requests();
        let json = scratch.file(&format!("{tag}.json"));
        let json_arg = json.to_str().expect("UTF-8 path");
        let cap = Capture::start(
            &lab,
            scratch.file(&format!("{tag}.pcap")),
            WHOLE,
            Some(RUN_CAPTURE_FRAMES),
        );
        let mut args = vec![
            "--target",
            &target,
            "--connections",
            "100",
            "--duration",
            "10s",
            "--json",
            json_arg,
        ];
        args.extend(extra.iter().copied());
        let stdout =
            Proc::spawn(&mut lab.wirespeed("load", "http", &args)).join(Duration::from_secs(60));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON report"))
            .expect("JSON report parses");
        let requests = num(&v, &["requests"]);
        assert!(requests > 0, "{tag}: {stdout}");
        assert_eq!(num(&v, &["errors", "total"]), 0, "{tag}: {stdout}");
        assert_eq!(num(&v, &["responses"]), requests, "{tag}: {stdout}");
        assert_eq!(num(&v, &["status", "2xx"]), requests, "{tag}: {stdout}");
        assert_eq!(num(&v, &["late_sends"]), 0, "{tag}: closed loop, {stdout}");
        if tag == "per-request" {
            assert_eq!(
                num(&v, &["connections_opened"]),
                requests,
                "{tag}: {stdout}"
            );
        }
        let logged = lab.nginx_requests() - logged_before;
        assert_eq!(
            logged as u64, requests,
            "{tag}: nginx logged {logged}, wirespeed reports {requests}"
        );
        // wirespeed finished every close before it exited: Linux holds no
        // connection of it half-closed (TIME-WAIT on Linux's side is fine:
        // nginx closes first after `Connection: close`).
        let unfinished = run_ok(&mut lab.linux(&[
            "ss",
            "-H",
            "-tan",
            "state",
            "last-ack",
            "state",
            "close-wait",
            "state",
            "fin-wait-1",
            "state",
            "fin-wait-2",
            "state",
            "closing",
        ]));
        assert_eq!(unfinished.trim(), "", "{tag}: connections left on Linux");
        let frames = check_capture(&cap.stop(), &lab, Link::Lossless, &[]);
        eprintln!("load http {tag}: {requests} requests, all in nginx's log; {frames} engine frames checked");
    }
}

/// Moves the calling thread into network namespace `ns` (sockets it opens
/// from then on live there).
fn enter_netns(ns: &str) -> Result<(), String> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    // SAFETY: the descriptor is an open network namespace file; setns
    // moves only the calling thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `len` reproducible pseudo-random bytes (splitmix64).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
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

/// What came back of a bulk exchange.
#[derive(Debug)]
struct Echoed {
    bytes: usize,
    sha256: String,
    elapsed: Duration,
}

/// A Linux socket in the peer's namespace: connect to `addr`, write all of
/// `data` then half-close, while reading everything back to EOF.
fn linux_echo_client(
    ns: String,
    addr: String,
    data: Vec<u8>,
) -> JoinHandle<Result<Echoed, String>> {
    std::thread::spawn(move || {
        enter_netns(&ns)?;
        let t0 = Instant::now();
        let mut stream = TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
        let timeout = Some(Duration::from_secs(30));
        stream
            .set_read_timeout(timeout)
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(timeout)
            .map_err(|e| e.to_string())?;
        let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
        let sender = std::thread::spawn(move || -> Result<(), String> {
            for chunk in data.chunks(64 << 10) {
                writer.write_all(chunk).map_err(|e| format!("write: {e}"))?;
            }
            writer
                .shutdown(Shutdown::Write)
                .map_err(|e| format!("shutdown: {e}"))
        });
        let mut h = Sha256::new();
        let mut bytes = 0;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if t0.elapsed() > BULK_LIMIT {
                return Err(format!("{bytes} bytes back after {BULK_LIMIT:?}"));
            }
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    h.update(&buf[..n]);
                    bytes += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read after {bytes} bytes: {e}")),
            }
        }
        sender
            .join()
            .map_err(|_| "the writer panicked".to_owned())??;
        Ok(Echoed {
            bytes,
            sha256: hex(&h.finalize()),
            elapsed: t0.elapsed(),
        })
    })
}

/// 64 MiB each way through `wirespeed serve echo`, with `loss` percent
/// random loss both ways.
fn bulk_echo(wire: Wire, loss: &str) {
    let tag = format!("bulk{}", loss.replace('.', "p"));
    let lab = Lab::up(&tag, wire, Role::Server, loss, 0);
    let scratch = Scratch::new(&tag);
    let lossless = loss == "0";
    let mut engine = Proc::spawn(&mut lab.wirespeed("serve", "echo", &["--duration", "300s"]));
    lab.wait_engine(&mut engine);
    let data = random_bytes(BULK, 0x5eed);
    let sent = hex(&Sha256::digest(&data));
    // Headers: sequence, acknowledgement and window analysis need no
    // payload. With loss, the rules drop frames past the capture point, so
    // only decoding is checked.
    let cap = Capture::start(&lab, scratch.file("bulk.pcap"), HEADERS, None);
    let addr = format!("{}:7", lab.engine_ip());
    let back = linux_echo_client(lab.linux_ns(), addr, data)
        .join()
        .expect("client thread")
        .unwrap_or_else(|e| panic!("{loss} % loss: {e}"));
    let pcap = cap.stop();
    let served = engine.finish();
    assert_eq!(back.bytes, BULK, "{loss} % loss: bytes echoed");
    assert_eq!(back.sha256, sent, "{loss} % loss: echoed data differs");
    // The echo stops reading while its send buffer is full, so its window
    // may close while Linux sends faster than the echo drains.
    let link = if lossless {
        Link::LosslessBackpressure
    } else {
        Link::Lossy
    };
    let frames = check_capture(&pcap, &lab, link, &["-d", "tcp.port==7,data"]);
    if !lossless {
        let rules = run_ok(&mut lab.linux(&["nft", "list", "table", "netdev", "lab_loss"]));
        assert!(rules.contains("drop"), "no loss rules:\n{rules}");
    }
    eprintln!(
        "bulk echo, {loss} % loss: 2 x {BULK} bytes in {:?}; {frames} engine frames checked; {}",
        back.elapsed,
        served.lines().last().unwrap_or_default()
    );
}

/// Linux pings the engine 100 times, 10 ms apart.
fn ping(wire: Wire) {
    let lab = Lab::up("ping", wire, Role::Server, "0", 0);
    let scratch = Scratch::new("ping");
    let mut engine = Proc::spawn(&mut lab.wirespeed("serve", "discard", &["--duration", "60s"]));
    lab.wait_engine(&mut engine);
    let cap = Capture::start(&lab, scratch.file("ping.pcap"), WHOLE, None);
    let out = run_ok(&mut lab.linux(&[
        "ping",
        "-c",
        "100",
        "-i",
        "0.01",
        "-W",
        "2",
        "-q",
        lab.engine_ip(),
    ]));
    assert!(
        out.contains("100 packets transmitted, 100 received"),
        "{out}"
    );
    let pcap = cap.stop();
    let frames = check_capture(&pcap, &lab, Link::Lossless, &[]);
    let from_engine = format!("eth.src != {} && icmp.type == 0", lab.linux_mac());
    assert_eq!(
        tshark(&pcap, &from_engine, &[]).len(),
        100,
        "echo replies captured"
    );
    engine.finish();
    eprintln!("ping: 100 of 100 answered; {frames} engine frames checked");
}

// ---------------------------------------------------------------------------
// The engine on a TAP

const TAP_TOOLS: &[&str] = &["curl", "wrk", "nginx", "ping"];

#[test]
fn tap_serve_http_to_curl_and_wrk() {
    let _serial = serial();
    if can_run(TAP_TOOLS) {
        serve_http(Wire::Tap);
    }
}

#[test]
fn tap_load_http_against_nginx() {
    let _serial = serial();
    if can_run(TAP_TOOLS) {
        load_http(Wire::Tap);
    }
}

#[test]
fn tap_bulk_echo_lossless() {
    let _serial = serial();
    if can_run(TAP_TOOLS) {
        bulk_echo(Wire::Tap, "0");
    }
}

#[test]
fn tap_bulk_echo_1_percent_loss() {
    let _serial = serial();
    if can_run(TAP_TOOLS) {
        bulk_echo(Wire::Tap, "1");
    }
}

#[test]
fn tap_bulk_echo_5_percent_loss() {
    let _serial = serial();
    if can_run(TAP_TOOLS) {
        bulk_echo(Wire::Tap, "5");
    }
}

#[test]
fn tap_ping() {
    let _serial = serial();
    if can_run(TAP_TOOLS) {
        ping(Wire::Tap);
    }
}

// ---------------------------------------------------------------------------
// The engine on a veth end through AF_XDP, native and generic XDP

const XDP_TOOLS: &[&str] = &["curl", "wrk", "nginx", "ping", "ethtool"];

#[test]
fn af_xdp_native_serve_http_to_curl_and_wrk() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Native,
        };
        serve_http(w);
    }
}

#[test]
fn af_xdp_native_load_http_against_nginx() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Native,
        };
        load_http(w);
    }
}

#[test]
fn af_xdp_native_bulk_echo_lossless() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Native,
        };
        bulk_echo(w, "0");
    }
}

#[test]
fn af_xdp_native_bulk_echo_1_percent_loss() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Native,
        };
        bulk_echo(w, "1");
    }
}

#[test]
fn af_xdp_native_bulk_echo_5_percent_loss() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Native,
        };
        bulk_echo(w, "5");
    }
}

#[test]
fn af_xdp_native_ping() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Native,
        };
        ping(w);
    }
}

#[test]
fn af_xdp_generic_serve_http_to_curl_and_wrk() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Generic,
        };
        serve_http(w);
    }
}

#[test]
fn af_xdp_generic_load_http_against_nginx() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Generic,
        };
        load_http(w);
    }
}

#[test]
fn af_xdp_generic_bulk_echo_lossless() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Generic,
        };
        bulk_echo(w, "0");
    }
}

#[test]
fn af_xdp_generic_bulk_echo_1_percent_loss() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Generic,
        };
        bulk_echo(w, "1");
    }
}

#[test]
fn af_xdp_generic_bulk_echo_5_percent_loss() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Generic,
        };
        bulk_echo(w, "5");
    }
}

#[test]
fn af_xdp_generic_ping() {
    let _serial = serial();
    if can_run(XDP_TOOLS) {
        let w = Wire::Veth {
            mode: XdpMode::Generic,
        };
        ping(w);
    }
}

// ---------------------------------------------------------------------------
// The lab itself

/// Bad flags are refused with status 2 and a usage naming the accepted
/// values, before anything needs root.
#[test]
fn lab_refuses_bad_flags() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "accepted: up, down"),
        (&["sideways"], "accepted: up, down"),
        (&["up", "--engine", "proxy"], "client, server"),
        (&["up", "--wire", "fibre"], "veth, tap"),
        (&["up", "--loss", "101"], "from 0 to 100"),
        (&["up", "--loss", "1.005"], "two decimals"),
        (&["up", "--loss", "-1"], "from 0 to 100"),
        (&["up", "--body-size", "1k"], "byte counts"),
        (&["up", "--prefix", "a/b"], "--prefix"),
        (&["up", "--prefix"], "missing value"),
        (&["up", "--colour", "blue"], "accepted: --wire, --engine"),
        (&["down", "--loss", "1"], "down takes only --prefix"),
    ];
    for (args, expect) in cases {
        let out = Command::new("bash")
            .arg(LAB)
            .args(*args)
            .output()
            .expect("bash runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(expect),
            "{args:?}: wanted {expect:?} in:\n{err}"
        );
        assert!(
            err.contains("usage: deploy/lab.sh up"),
            "{args:?}: no usage in:\n{err}"
        );
    }
}

/// The veth lab Linux to Linux, Linux standing in for the engine on its
/// end: nginx's page by curl (checked by SHA-256, logged), iperf3 through
/// the loss rules (which drop, and Linux retransmits), the addressing and
/// offloads of both layouts, and `up`/`down` rerun.
#[test]
fn lab_veth_linux_to_linux() {
    let _serial = serial();
    if !can_run(&["curl", "nginx", "iperf3", "ethtool"]) {
        return;
    }
    let wire = Wire::Veth {
        mode: XdpMode::Generic,
    };
    let body = 100_000;
    let lab = Lab::up("veth", wire, Role::Client, "0", 1);
    // `up` over a lab that is up replaces it.
    lab.rerun_up("2.5", body);
    let (engine_ns, linux_ns) = (lab.engine_ns(), lab.linux_ns());
    assert_eq!(engine_ns, format!("{}-client", lab.prefix));
    let show = |ns: &str, dev: &str| {
        run_ok(Command::new("ip").args(["-n", ns, "-4", "-o", "addr", "show", "dev", dev]))
    };
    assert_eq!(
        show(&engine_ns, "veth-client").trim(),
        "",
        "the engine's end has no address"
    );
    assert!(show(&linux_ns, "veth-server").contains(&format!("{SERVER_IP}/{PREFIX_LEN}")));
    let features = run_ok(&mut lab.linux(&["ethtool", "-k", "veth-server"]));
    assert!(features.contains("tx-checksumming: off"), "{features}");
    assert!(
        lab.port().starts_with("af_xdp:veth-client"),
        "{}",
        lab.port()
    );

    // Linux on the engine's end.
    let client = |args: &[&str]| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &engine_ns]).args(args);
        c
    };
    run_ok(Command::new("ip").args([
        "-n",
        &engine_ns,
        "addr",
        "add",
        &format!("{CLIENT_IP}/{PREFIX_LEN}"),
        "dev",
        "veth-client",
    ]));
    let page = client(&[
        "curl",
        "-sS",
        "--fail",
        "-m",
        "20",
        "-o",
        "-",
        &format!("http://{SERVER_IP}/"),
    ])
    .output()
    .expect("curl runs");
    assert!(
        page.status.success(),
        "{}",
        String::from_utf8_lossy(&page.stderr)
    );
    assert_eq!(hex(&Sha256::digest(&page.stdout)), page_sha256(body));
    assert_eq!(lab.nginx_requests(), 1);

    let _server = Proc::spawn(&mut lab.linux(&["iperf3", "-s", "-1", "-B", SERVER_IP]));
    // A run counts once its JSON holds a sender summary: iperf3 can exit 0
    // with only an "error" field when its control connection is cut (by
    // the loss rules) before the test starts. The one-off server is
    // started again for each try.
    let mut report = None;
    let mut last = String::new();
    let mut server = _server;
    for _ in 0..10 {
        let out = client(&["iperf3", "-c", SERVER_IP, "-t", "2", "-J"])
            .output()
            .expect("iperf3 runs");
        let v: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if out.status.success() && v.as_ref().is_some_and(|v| v["end"]["sum_sent"].is_object()) {
            report = v;
            break;
        }
        last = String::from_utf8_lossy(&out.stdout)
            .chars()
            .take(2000)
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        drop(server);
        server = Proc::spawn(&mut lab.linux(&["iperf3", "-s", "-1", "-B", SERVER_IP]));
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(server);
    let report: Value = report.unwrap_or_else(|| panic!("iperf3 never completed a run: {last}"));
    let sent = &report["end"]["sum_sent"];
    assert!(sent["bytes"].as_u64().unwrap_or(0) > 1 << 20, "{sent}");
    assert!(
        sent["retransmits"].as_u64().unwrap_or(0) > 0,
        "2.5 % loss, no retransmission: {sent}"
    );
    let rules = run_ok(&mut lab.linux(&["nft", "list", "table", "netdev", "lab_loss"]));
    assert!(rules.contains("mod 10000 < 250"), "{rules}");
    let dropped: u64 = rules
        .split("counter packets ")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(dropped > 0, "nothing dropped:\n{rules}");
    eprintln!(
        "iperf3 across the lab at 2.5 % loss: {:.2} Gbit/s, {} retransmits, {dropped} frames dropped",
        sent["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9,
        sent["retransmits"]
    );

    // The engine as the server: the client end is Linux's, the server end bare.
    let server = Lab::up("vethsrv", wire, Role::Server, "0", 0);
    assert_eq!(server.linux_ns(), format!("{}-client", server.prefix));
    assert_eq!(show(&server.engine_ns(), "veth-server").trim(), "");
    assert!(show(&server.linux_ns(), "veth-client").contains(&format!("{CLIENT_IP}/{PREFIX_LEN}")));
    let features = run_ok(&mut server.linux(&["ethtool", "-k", "veth-client"]));
    assert!(features.contains("tx-checksumming: off"), "{features}");

    // Down, twice: nothing left.
    let nginx_pid =
        std::fs::read_to_string(Path::new(LAB_STATE).join(&lab.prefix).join("nginx.pid"))
            .expect("nginx pid file");
    let prefix = lab.prefix.clone();
    drop(lab);
    let down = run_ok(
        Command::new("bash")
            .arg(LAB)
            .args(["down", "--prefix", &prefix]),
    );
    assert!(down.contains("down"), "{down}");
    let namespaces = run_ok(Command::new("ip").args(["netns", "list"]));
    assert!(!namespaces.contains(&format!("{prefix}-")), "{namespaces}");
    assert!(!Path::new(LAB_STATE).join(&prefix).exists());
    assert!(
        !Path::new(&format!("/proc/{}", nginx_pid.trim())).exists(),
        "nginx still runs"
    );
}
