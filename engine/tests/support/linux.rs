//! The Linux kernel as a peer: pieces shared by the tests that run the engine
//! on a TAP device inside a network namespace of their own.
//!
//! - [`can_run`]: root, `/dev/net/tun` and the tools a test drives, or a
//!   skip message (a failure when `WIRESPEED_REQUIRE_ROOT_TESTS` is set);
//! - [`Netns`]: a namespace (`ip netns add`) deleted on drop, with
//!   [`Netns::exec`] for commands inside it and [`Netns::spawn`] for threads
//!   that join it (sockets such a thread opens live in the namespace);
//! - [`Capture`]: tshark recording an interface inside the namespace;
//!   [`tshark_lines`] reads the capture back through a display filter;
//! - [`set_loss`]: random loss on an interface with nftables netdev hooks
//!   (this kernel has no netem); the rules go away with the namespace.
//!
//! Addresses: the engine is 198.18.0.2/24, the kernel side of the TAP
//! 198.18.0.1/24 (RFC 2544 benchmarking range).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Whether the environment can run a test needing root, `/dev/net/tun` and
/// `tools` on `PATH`; panics when not and `WIRESPEED_REQUIRE_ROOT_TESTS` is
/// set (CI), else prints why the test is skipped.
pub fn can_run(tools: &[&str]) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut missing: Vec<&str> = tools
        .iter()
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
    let why = format!(
        "needs root, /dev/net/tun, {} (missing: {})",
        tools.join(", "),
        missing.join(", ")
    );
    assert!(
        std::env::var_os("WIRESPEED_REQUIRE_ROOT_TESTS").is_none(),
        "this test {why}, and WIRESPEED_REQUIRE_ROOT_TESTS is set"
    );
    eprintln!("skipped: this test {why}");
    false
}

/// Runs `cmd` to completion.
pub fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Runs `cmd`, panics unless it succeeds; returns its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
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
#[derive(Debug)]
pub struct Netns(pub String);

impl Netns {
    /// Creates namespace `ws<tag><pid>` (replacing a stale one of that name)
    /// with its loopback up.
    pub fn new(tag: &str) -> Netns {
        let name = format!("ws{tag}{}", std::process::id());
        let _ = run(Command::new("ip").args(["netns", "del", &name]));
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns(name);
        run_ok(&mut ns.exec(&["ip", "link", "set", "lo", "up"]));
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// `args` as a command run inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }

    /// Moves the calling thread into the namespace.
    pub fn enter(&self) -> Result<(), String> {
        let path = format!("/var/run/netns/{}", self.0);
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        // SAFETY: the descriptor is a valid, open network namespace file;
        // setns moves only the calling thread into it.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Runs `f` in a new thread inside the namespace; a failure to join it
    /// comes back as `Err`.
    pub fn spawn<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> JoinHandle<Result<T, String>> {
        let ns = Netns(self.0.clone());
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let entered = ns.enter();
                // Only borrowed: the thread must not delete the namespace.
                std::mem::forget(ns);
                entered?;
                f()
            })
            .expect("spawn thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.0]));
    }
}

/// Joins `handle`, turning a panic into an `Err` with its message.
pub fn join<T>(handle: JoinHandle<Result<T, String>>) -> Result<T, String> {
    match handle.join() {
        Ok(r) => r,
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "thread panicked".to_owned())),
    }
}

/// Drops a random `permille` of the TCP frames in both directions on `dev`
/// (nftables netdev ingress and egress hooks inside the namespace).
pub fn set_loss(ns: &Netns, dev: &str, permille: u32) {
    if permille == 0 {
        return;
    }
    let rules = format!(
        "table netdev lossy {{\n\
         chain in  {{ type filter hook ingress device \"{dev}\" priority 0; meta l4proto tcp numgen random mod 1000 < {permille} counter drop; }}\n\
         chain out {{ type filter hook egress  device \"{dev}\" priority 0; meta l4proto tcp numgen random mod 1000 < {permille} counter drop; }}\n\
         }}\n"
    );
    let mut child = ns
        .exec(&["nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin piped");
        stdin.write_all(rules.as_bytes()).expect("rules to nft");
    }
    let out = child.wait_with_output().expect("nft finishes");
    assert!(
        out.status.success(),
        "nft failed: {}\n{rules}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace's nftables ruleset, as `nft list ruleset` prints it.
pub fn nft_ruleset(ns: &Netns) -> String {
    String::from_utf8_lossy(&run(&mut ns.exec(&["nft", "list", "ruleset"])).stdout).into_owned()
}

/// tshark recording an interface inside a namespace; killed on drop.
#[derive(Debug)]
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Starts recording `dev` in `ns` and waits until tshark captures.
    pub fn start(ns: &Netns, dev: &str) -> Capture {
        let file = std::env::temp_dir().join(format!("{}.pcap", ns.0));
        let _ = std::fs::remove_file(&file);
        let child = ns
            .exec(&["tshark", "-n", "-q", "-B", "64", "-i", dev, "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tshark starts");
        let mut capture = Capture { child, file };
        // tshark says "Capturing on '<dev>'" once the capture runs.
        let stderr = capture.child.stderr.take().expect("stderr piped");
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
        // The message comes a little before frames are recorded.
        std::thread::sleep(Duration::from_secs(1));
        capture
    }

    /// Stops the capture (as Ctrl-C would) and returns the file.
    pub fn stop(mut self) -> PathBuf {
        // Let the last frames reach the file.
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

/// A capture file removed when dropped, kept for inspection when the
/// test is failing.
#[derive(Debug)]
pub struct PcapFile(pub PathBuf);

impl Drop for PcapFile {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("capture kept: {}", self.0.display());
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Frames in `pcap` matching the display filter `filter`, as tshark prints
/// them, with IPv4 and TCP checksums verified. TCP payloads are decoded as
/// plain data: the tests send random bytes, which tshark's heuristic
/// dissectors would otherwise take for some protocol (THRIFT, say) and call
/// malformed; what is checked here is the engine's own framing.
pub fn tshark_lines(pcap: &Path, filter: &str) -> Vec<String> {
    let out = run_ok(Command::new("tshark").arg("-n").arg("-r").arg(pcap).args([
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-d",
        "tcp.port==1-65535,data",
        "-Y",
        filter,
    ]));
    out.lines().map(str::to_owned).collect()
}
