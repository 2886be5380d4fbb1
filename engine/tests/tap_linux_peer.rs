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

#[path = "support/linux.rs"]
mod linux;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use linux::{can_run, join, run, run_ok, tshark_lines, Capture, Netns};
use wirespeed::net::{Interface, InterfaceConfig, NetStats};
use wirespeed::port::tap::TapDevice;
use wirespeed::rt::HostLoop;
use wirespeed::wire::EthernetAddress;
use wirespeed::Instant;

const ENGINE_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x12, 0x00, 0x02]);
const ENGINE_MAC_TEXT: &str = "02:00:5e:12:00:02";
const ENGINE_IP: &str = "198.18.0.2";
const TAP: &str = "wstap0";
const TOOLS: &[&str] = &["ip", "ping", "arping", "tshark"];

/// The engine on a TAP inside a namespace, in its own thread; stopped and
/// joined when dropped.
struct Engine {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<NetStats, String>>>,
}

impl Engine {
    fn start(ns: &Netns) -> Engine {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let flag = stop.clone();
        let thread = ns.spawn("engine", move || {
            let dev =
                match TapDevice::open(TAP, ENGINE_MAC, 1500).and_then(|d| d.set_up().map(|()| d)) {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return Err(e.to_string());
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
            Ok(*host.iface.stats())
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("engine failed to start: {e}"),
            Err(e) => panic!("engine did not start: {e} ({:?})", join(thread).err()),
        }
        Engine {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> NetStats {
        self.stop.store(true, Ordering::Relaxed);
        join(self.thread.take().expect("joined once")).expect("engine thread")
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

#[test]
fn linux_pings_and_arps_the_engine_over_tap() {
    if !can_run(TOOLS) {
        return;
    }
    let ns = Netns::new("tap");
    let engine = Engine::start(&ns);
    run_ok(&mut ns.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", TAP]));
    run_ok(&mut ns.exec(&["ip", "link", "set", TAP, "up"]));
    let capture = Capture::start(&ns, TAP);

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
    if !can_run(TOOLS) {
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
