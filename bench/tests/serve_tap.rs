//! `wirespeed serve` on a TAP device answers the Linux kernel: curl and
//! wrk, run in the same network namespace, fetch pages from it, and
//! `wirespeed load` runs against it from a second TAP (root; the test
//! creates its namespace and everything in it goes away with it).
//!
//! Addresses (RFC 2544 range): the kernel side 198.18.5.1/24, the engine
//! server 198.18.5.2/24.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_wirespeed")
}

/// Root, `ip`, `curl`: or a skip message (a failure in CI).
fn can_run(tools: &[&str]) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let missing: Vec<&&str> = tools
        .iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if root && missing.is_empty() && std::path::Path::new("/dev/net/tun").exists() {
        return true;
    }
    let why = format!("needs root, /dev/net/tun and {tools:?} (missing {missing:?})");
    if std::env::var_os("CI").is_some()
        || std::env::var_os("WIRESPEED_REQUIRE_ROOT_TESTS").is_some()
    {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("ws-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add {name}");
        let ns = Netns(name);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }
    fn exec(&self, args: &[&str]) -> std::process::Output {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Kills a child process by PID when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `tap` exists in `ns`, then gives it the kernel's address.
fn configure_tap(ns: &Netns, tap: &str, addr: &str) {
    let t0 = Instant::now();
    while !ns
        .cmd(&["ip", "link", "show", tap])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{tap} never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ns.exec(&["ip", "addr", "add", addr, "dev", tap]);
    ns.exec(&["ip", "link", "set", tap, "up"]);
}

#[test]
fn serve_http_answers_curl_and_wrk() {
    if !can_run(&["ip", "curl", "wrk"]) {
        return;
    }
    let ns = Netns::new("serve");
    let server = Kill(
        ns.cmd(&[
            bin(),
            "serve",
            "http",
            "--port",
            "tap:wsserve0",
            "--ip",
            "198.18.5.2/24",
            "--cores",
            "1",
            "--body-size",
            "1000",
            "--duration",
            "20s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    configure_tap(&ns, "wsserve0", "198.18.5.1/24");
    // curl: one page, body and status checked.
    let mut page = None;
    for _ in 0..50 {
        let out = ns
            .cmd(&[
                "curl",
                "-s",
                "-m",
                "2",
                "-w",
                "\n%{http_code}",
                "http://198.18.5.2/",
            ])
            .output()
            .unwrap();
        if out.status.success() {
            page = Some(String::from_utf8_lossy(&out.stdout).into_owned());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let page = page.expect("curl never got an answer");
    let (body, code) = page.rsplit_once('\n').unwrap();
    assert_eq!(code, "200");
    assert_eq!(body.len(), 1000);
    assert!(body.bytes().all(|b| b.is_ascii_lowercase()));
    // wrk: two seconds of keep-alive load, no socket errors, no non-2xx.
    let out = ns.exec(&["wrk", "-t1", "-c10", "-d2s", "http://198.18.5.2/"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Socket errors"), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
    let requests: u64 = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split(" requests in")
                .next()
                .filter(|_| l.contains(" requests in"))
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk output: {text}"));
    assert!(requests > 100, "{text}");
    drop(server);
}

#[test]
fn load_http_from_one_tap_to_serve_on_another() {
    if !can_run(&["ip"]) {
        return;
    }
    // Two TAPs in one namespace, bridged by the kernel: the engine server
    // on one, the engine load generator on the other.
    let ns = Netns::new("load");
    ns.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    ns.exec(&["ip", "link", "set", "br0", "up"]);
    let _server = Kill(
        ns.cmd(&[
            bin(),
            "serve",
            "http",
            "--port",
            "tap:wss0",
            "--ip",
            "198.18.6.2/24",
            "--cores",
            "1",
            "--duration",
            "20s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    for tap in ["wss0"] {
        let t0 = Instant::now();
        while !ns
            .cmd(&["ip", "link", "show", tap])
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(t0.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
        ns.exec(&["ip", "link", "set", tap, "master", "br0"]);
        ns.exec(&["ip", "link", "set", tap, "up"]);
    }
    let dir = std::env::temp_dir().join(format!("ws-loadtap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    // The load generator's TAP joins the bridge once it exists.
    let ns_name = ns.0.clone();
    let joiner = std::thread::spawn(move || {
        let t0 = Instant::now();
        loop {
            let ok = Command::new("ip")
                .args([
                    "netns", "exec", &ns_name, "ip", "link", "set", "wsl0", "master", "br0",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                let _ = Command::new("ip")
                    .args(["netns", "exec", &ns_name, "ip", "link", "set", "wsl0", "up"])
                    .status();
                return true;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let out = ns
        .cmd(&[
            bin(),
            "load",
            "http",
            "--port",
            "tap:wsl0",
            "--ip",
            "198.18.6.3/24",
            "--target",
            "198.18.6.2:80",
            "--connections",
            "10",
            "--duration",
            "3s",
            "--cores",
            "1",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert!(joiner.join().unwrap(), "wsl0 never appeared");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(v["requests"].as_u64().unwrap() > 100, "{v}");
    assert_eq!(v["errors"]["total"].as_u64(), Some(0), "{v}");
    assert_eq!(v["status"]["2xx"], v["responses"]);
}
