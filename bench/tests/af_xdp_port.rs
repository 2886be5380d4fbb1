//! The AF_XDP port's life cycle on a veth pair (root; the test creates two
//! network namespaces and removes them): the XDP program is attached in the
//! mode asked for and detached on a normal end, on SIGTERM, on SIGKILL and
//! on every error; each bad setup gets its message and a non-zero exit.
//!
//! Addresses (RFC 2544 range): the Linux end 198.18.6.1/24, the engine
//! 198.18.6.2/24.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_wirespeed")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Root and the tools: or a skip message (a failure in CI).
fn can_run(tools: &[&str]) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let missing: Vec<&&str> = tools.iter().filter(|t| !have(t)).collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = format!("needs root and {tools:?} (missing {missing:?})");
    if std::env::var_os("CI").is_some()
        || std::env::var_os("WIRESPEED_REQUIRE_ROOT_TESTS").is_some()
    {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// Two namespaces joined by a veth pair: `eng` (the engine's end, no
/// address) and `peer` (Linux, 198.18.6.1/24, transmit checksum offload
/// off). Removed on drop.
struct Pair {
    eng: String,
    peer: String,
    dev: String,
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let id = std::process::id();
        let p = Pair {
            eng: format!("wx{tag}e{id}"),
            peer: format!("wx{tag}p{id}"),
            dev: "wxe0".into(),
        };
        run(&["ip", "netns", "add", &p.eng]);
        run(&["ip", "netns", "add", &p.peer]);
        run(&[
            "ip", "link", "add", "wxe0", "netns", &p.eng, "type", "veth", "peer", "name", "wxp0",
            "netns", &p.peer,
        ]);
        for (ns, dev) in [(&p.eng, "wxe0"), (&p.peer, "wxp0")] {
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        run(&[
            "ip",
            "-n",
            &p.peer,
            "addr",
            "add",
            "198.18.6.1/24",
            "dev",
            "wxp0",
        ]);
        run(&[
            "ip", "netns", "exec", &p.peer, "ethtool", "-K", "wxp0", "tx", "off",
        ]);
        p
    }

    /// `wirespeed ARGS` in the engine's namespace.
    fn engine(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.eng, bin()]).args(args);
        c
    }

    /// The XDP attachment `ip link` reports on the engine's end: "xdp"
    /// (native), "xdpgeneric", or "" when none.
    fn xdp(&self) -> String {
        let out = run(&["ip", "-n", &self.eng, "-d", "link", "show", &self.dev]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let first = text.lines().next().unwrap_or("").to_owned();
        first
            .split_whitespace()
            .find(|w| w.starts_with("xdp"))
            .unwrap_or("")
            .to_owned()
    }

    fn wait_xdp(&self, want: &str) {
        let t0 = Instant::now();
        while self.xdp() != want {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "XDP attachment is {:?}, expected {want:?}",
                self.xdp()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.eng, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Kills a child by PID when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_args<'a>(port: &'a str, duration: &'a str) -> Vec<&'a str> {
    vec![
        "serve",
        "http",
        "--port",
        port,
        "--ip",
        "198.18.6.2/24",
        "--duration",
        duration,
    ]
}

fn start(p: &Pair, port: &str, duration: &str) -> Kill {
    Kill(
        p.engine(&serve_args(port, duration))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Runs a setup that must fail; returns its stderr.
fn fails(mut c: Command) -> String {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // 1 for a failed setup, 2 for a usage error; never a signal.
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "exit {:?}, stderr {err}",
        out.status
    );
    err
}

fn ping_ok(p: &Pair) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &p.peer,
            "ping",
            "-c",
            "3",
            "-i",
            "0.05",
            "-W",
            "1",
            "198.18.6.2",
        ])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn modes_attach_as_asked_and_detach_on_every_end() {
    if !can_run(&["ip", "ethtool", "ping"]) {
        return;
    }
    let p = Pair::new("m");
    assert_eq!(p.xdp(), "");
    // Native, to its end: the program goes when the run does.
    let mut k = start(&p, "af_xdp:wxe0,mode=native", "3s");
    p.wait_xdp("xdp");
    assert!(ping_ok(&p), "no echo replies in native mode");
    let out = k.0.wait().unwrap();
    assert!(out.success());
    let mut err = String::new();
    std::io::Read::read_to_string(k.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("XDP native mode, copy mode"),
        "start line: {err}"
    );
    assert_eq!(p.xdp(), "");
    // Generic, stopped by SIGTERM.
    let k = start(&p, "af_xdp:wxe0,mode=generic", "60s");
    p.wait_xdp("xdpgeneric");
    assert!(ping_ok(&p), "no echo replies in generic mode");
    let pid = k.0.id().to_string();
    run(&["kill", "-TERM", &pid]);
    let mut k = k;
    let status = k.0.wait().unwrap();
    assert!(status.success(), "SIGTERM ends the run cleanly: {status:?}");
    assert_eq!(p.xdp(), "");
    // SIGINT, then SIGKILL: the link dies with the process.
    for sig in ["-INT", "-KILL"] {
        let mut k = start(&p, "af_xdp:wxe0", "60s");
        p.wait_xdp("xdp");
        run(&["kill", sig, &k.0.id().to_string()]);
        let _ = k.0.wait();
        p.wait_xdp("");
    }
}

#[test]
fn bad_setups_say_why_and_leave_nothing_attached() {
    if !can_run(&["ip", "ethtool", "setpriv", "prlimit"]) {
        return;
    }
    let p = Pair::new("b");
    // No such interface.
    let err = fails(p.engine(&serve_args("af_xdp:nosuch0", "1s")));
    assert!(
        err.contains("af_xdp:nosuch0") && err.contains("no such interface"),
        "{err}"
    );
    // More queues than the interface has (a veth has one).
    let err = fails(p.engine(&serve_args("af_xdp:wxe0,queues=2", "1s")));
    assert!(err.contains("has 1 RX queue"), "{err}");
    assert_eq!(p.xdp(), "");
    // Not root: every capability dropped.
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &p.eng,
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        bin(),
    ])
    .args(serve_args("af_xdp:wxe0", "1s"));
    let err = fails(c);
    assert!(
        err.contains("permission denied") && err.contains("root"),
        "{err}"
    );
    assert_eq!(p.xdp(), "");
    // UMEM allocation failure: 2 GiB of frames under a 1 GiB address-space
    // limit.
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &p.eng, "prlimit", "--as=1073741824", bin()])
        .args(serve_args("af_xdp:wxe0,frames=1048576", "1s"));
    let err = fails(c);
    assert!(err.contains("cannot allocate a UMEM"), "{err}");
    assert_eq!(p.xdp(), "");
    // zc=on on veth, which has no zero copy.
    let err = fails(p.engine(&serve_args("af_xdp:wxe0,zc=on", "1s")));
    assert!(err.contains("zero-copy"), "{err}");
    assert_eq!(p.xdp(), "");
    // A bad option names itself and the accepted ones.
    let err = fails(p.engine(&serve_args("af_xdp:wxe0,mode=fast", "1s")));
    assert!(
        err.contains("mode=fast") && err.contains("native, generic or auto"),
        "{err}"
    );
    // Another program already attached (a first run holds the interface):
    // the second run fails, and the first one's program stays.
    let _first = start(&p, "af_xdp:wxe0", "30s");
    p.wait_xdp("xdp");
    let err = fails(p.engine(&serve_args("af_xdp:wxe0,mode=generic", "1s")));
    assert!(err.contains("already attached"), "{err}");
    let err = fails(p.engine(&serve_args("af_xdp:wxe0", "1s")));
    assert!(err.contains("already"), "{err}");
    assert_eq!(p.xdp(), "xdp");
    assert!(ping_ok(&p), "the first run still answers");
    drop(_first);
    p.wait_xdp("");
}
