//! Real peer: the Linux kernel stack talks to the engine over a TAP device.
//!
//! Each test makes its own network namespace (`ip netns add`), creates the
//! TAP inside it from an engine thread that has joined the namespace, gives
//! the kernel side 198.18.0.1/24 and runs the engine as 198.18.0.2/24. Linux
//! then pings and ARPs the engine while tshark records the link; every frame
//! the engine sent must decode with no expert warning or error. Everything is
//! removed at the end, also when an assertion fails.
//!
//! Needs root, `ip`, `ping`, `arping` and `tshark`. Without them the tests
//! skip with a message, unless `WIRESPEED_REQUIRE_ROOT_TESTS` is set (CI),
//! where they fail.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use wirespeed::net::{Interface, InterfaceConfig, NetStats};
use wirespeed::port::tap::TapDevice;
use wirespeed::rt::HostLoop;
use wirespeed::wire::EthernetAddress;
use wirespeed::Instant;

const ENGINE_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x12, 0x00, 0x02]);
const ENGINE_MAC_TEXT: &str = "02:00:5e:12:00:02";
const ENGINE_IP: &str = "198.18.0.2";
const TAP: &str = "wstap0";

/// Whether the environment can run these tests; panics under CI when not.
fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut missing: Vec<&str> = ["ip", "ping", "arping", "tshark"]
        .into_iter()
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
    if !std::path::Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun");
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "needs {} (missing: {})",
        "root, ip, ping, arping, tshark, /dev/net/tun",
        missing.join(", ")
    );
    assert!(
        std::env::var_os("WIRESPEED_REQUIRE_ROOT_TESTS").is_none(),
        "this test {why}, and WIRESPEED_REQUIRE_ROOT_TESTS is set"
    );
    eprintln!("skipped: this test {why}");
    false
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    out
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace that is deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("ws{tag}{}", std::process::id());
        let _ = run(Command::new("ip").args(["netns", "del", &name]));
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        Netns(name)
    }

    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.0]));
    }
}

/// The engine on a TAP inside a namespace, in its own thread; stopped and
/// joined when dropped.
struct Engine {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<NetStats>>,
}

impl Engine {
    fn start(ns: &Netns) -> Engine {
        let path = format!("/var/run/netns/{}", ns.0);
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let nsfile = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{path}: {e}")));
                    return NetStats::default();
                }
            };
            // SAFETY: the descriptor is a valid, open network namespace file;
            // setns moves only this thread into it.
            if unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let _ = ready_tx.send(Err(format!("setns: {}", std::io::Error::last_os_error())));
                return NetStats::default();
            }
            let dev =
                match TapDevice::open(TAP, ENGINE_MAC, 1500).and_then(|d| d.set_up().map(|()| d)) {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return NetStats::default();
                    }
                };
            let config = InterfaceConfig::new(ENGINE_MAC, "198.18.0.2/24".parse().expect("cidr"));
            let iface = Interface::new(config, Instant::now_monotonic()).expect("interface config");
            let mut host = HostLoop::new(iface, dev);
            let _ = ready_tx.send(Ok(()));
            let mut delivered = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let now = Instant::now_monotonic();
                let progress = host.poll(now, |d| delivered.push(d.buf), |_| {});
                for b in delivered.drain(..) {
                    host.recycle(b);
                }
                if progress.is_idle() {
                    let _ = host.dev.wait_readable(Some(Duration::from_millis(5)));
                }
            }
            *host.iface.stats()
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("engine failed to start: {e}"),
            Err(e) => panic!("engine did not start: {e}"),
        }
        Engine {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> NetStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("engine thread")
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// tshark recording the TAP inside the namespace.
struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(ns: &Netns) -> Capture {
        let file = std::env::temp_dir().join(format!("{}.pcap", ns.0));
        let _ = std::fs::remove_file(&file);
        let mut child = ns
            .exec(&["tshark", "-n", "-i", TAP, "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tshark starts");
        // tshark says "Capturing on 'wstap0'" once the capture runs.
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Capturing on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("tshark capture started");
        Capture { child, file }
    }

    fn stop(mut self) -> std::path::PathBuf {
        // Let the last frames reach the file, then stop tshark as Ctrl-C would.
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: kill with a valid signal on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.child.wait();
        self.file.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Frames in `pcap` that match the display filter, as tshark prints them.
fn tshark_lines(pcap: &std::path::Path, filter: &str) -> Vec<String> {
    let out = run_ok(Command::new("tshark").arg("-n").arg("-r").arg(pcap).args([
        "-o",
        "ip.check_checksum:TRUE",
        "-Y",
        filter,
    ]));
    out.lines().map(str::to_owned).collect()
}

#[test]
fn linux_pings_and_arps_the_engine_over_tap() {
    if !can_run() {
        return;
    }
    let ns = Netns::new("tap");
    run_ok(&mut ns.exec(&["ip", "link", "set", "lo", "up"]));
    let engine = Engine::start(&ns);
    run_ok(&mut ns.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", TAP]));
    run_ok(&mut ns.exec(&["ip", "link", "set", TAP, "up"]));
    let capture = Capture::start(&ns);

    // ARP via arping (iputils): three requests, three replies.
    let arping = run_ok(&mut ns.exec(&["arping", "-c", "3", "-w", "10", "-I", TAP, ENGINE_IP]));
    assert!(
        arping.contains("Received 3 response"),
        "arping did not get 3 replies:\n{arping}"
    );
    assert!(
        arping.to_ascii_lowercase().contains(ENGINE_MAC_TEXT),
        "arping saw another MAC:\n{arping}"
    );

    // ping -c 100: a hundred replies, none lost.
    let ping = run_ok(&mut ns.exec(&[
        "ping", "-n", "-c", "100", "-i", "0.01", "-W", "2", "-s", "200", ENGINE_IP,
    ]));
    assert!(
        ping.contains("100 packets transmitted, 100 received"),
        "ping lost replies:\n{ping}"
    );

    let pcap = capture.stop();
    let stats = engine.finish();
    assert!(
        stats.icmp_rx_echo_requests >= 100,
        "engine saw {} echo requests",
        stats.icmp_rx_echo_requests
    );
    assert_eq!(
        stats.icmp_rx_echo_requests, stats.icmp_tx_echo_replies,
        "every echo request answered: {stats:?}"
    );

    let from_engine = format!("eth.src == {ENGINE_MAC_TEXT}");
    let replies = tshark_lines(&pcap, &format!("{from_engine} && icmp.type == 0"));
    assert_eq!(
        replies.len(),
        100,
        "echo replies on the wire:\n{}",
        replies.join("\n")
    );
    let arp_replies = tshark_lines(&pcap, &format!("{from_engine} && arp.opcode == 2"));
    assert!(
        arp_replies.len() >= 3,
        "ARP replies on the wire:\n{}",
        arp_replies.join("\n")
    );
    // Every frame the engine sent decodes cleanly: no malformed packet, no
    // expert warning or error (bad checksums included: IP checking is on,
    // ICMP's is always checked).
    let bad = tshark_lines(
        &pcap,
        &format!("{from_engine} && (_ws.malformed || _ws.expert.severity >= warning)"),
    );
    assert!(
        bad.is_empty(),
        "frames with expert warnings or errors:\n{}",
        bad.join("\n")
    );
    let all = tshark_lines(&pcap, &from_engine);
    assert!(all.len() >= 103, "engine frames: {}", all.len());
    let _ = std::fs::remove_file(&pcap);
}

#[test]
fn linux_sees_no_answer_for_other_addresses() {
    if !can_run() {
        return;
    }
    let ns = Netns::new("tapx");
    let engine = Engine::start(&ns);
    run_ok(&mut ns.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", TAP]));
    run_ok(&mut ns.exec(&["ip", "link", "set", TAP, "up"]));
    // 198.18.0.3 is nobody's: the engine must not answer ARP for it.
    let out = run(&mut ns.exec(&["arping", "-c", "2", "-w", "3", "-I", TAP, "198.18.0.3"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Received 0 response"),
        "someone answered for 198.18.0.3:\n{text}"
    );
    let stats = engine.finish();
    assert!(
        stats.arp_not_for_us >= 2,
        "ARP for another host counted: {stats:?}"
    );
}
