//! The conformance-script format and runner, exercised against a scripted
//! fake endpoint (not a TCP: a handful of fixed reactions), and the example
//! scripts in `tests/scripts/format_*.pkt`.

use std::path::{Path, PathBuf};

use wirespeed::tcp::script::Command;
use wirespeed::tcp::script::{
    pattern, run_dir, run_script, ScriptConfig, ScriptEndpoint, ScriptError, DEFAULT_PEER_ISN,
};
use wirespeed::time::{Duration, Instant};
use wirespeed::wire::{ChecksumCaps, TcpFlags, TcpRepr, TcpSeqNumber};

/// Our ISN in the fake (absolute).
const ISN: u32 = 5000;
/// The fake's window.
const WIN: u16 = 64240;
/// Delay before the fake answers a SYN.
const SYNACK_DELAY: Duration = Duration::from_millis(10);
/// The fake's first SYN retransmission timeout (doubles each time).
const RTO: Duration = Duration::from_secs(1);

/// What the fake received, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    at: Instant,
    seq: u32,
    ack: Option<u32>,
    flags: TcpFlags,
    window: u16,
    mss: Option<u16>,
    timestamp: Option<(u32, u32)>,
    sack: Vec<(u32, u32)>,
    payload: Vec<u8>,
}

/// Answers a SYN with a fixed SYN-ACK after 10 ms, ACKs data and FIN at
/// once, sends a SYN on `connect` and retransmits it after 1 s, 2 s, ...
/// until a SYN-ACK comes.
#[derive(Debug, Default)]
struct Fake {
    cfg: ScriptConfig,
    state: &'static str,
    snd_nxt: u32,
    rcv_nxt: u32,
    /// Segments to send, each at its time.
    tx: Vec<(Instant, Vec<u8>)>,
    /// SYN retransmission: deadline and current timeout.
    rto: Option<(Instant, Duration)>,
    seen: Vec<Seen>,
    fired: Vec<Instant>,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            state: "CLOSED",
            ..Fake::default()
        }
    }

    fn send(&mut self, at: Instant, repr: TcpRepr<'_>) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit_with_payload(
            &mut buf,
            *self.cfg.local.ip(),
            *self.cfg.remote.ip(),
            &ChecksumCaps::SOFTWARE,
        )
        .unwrap();
        self.tx.push((at, buf));
        self.tx.sort_by_key(|(t, _)| *t);
    }

    fn segment(&self, flags: TcpFlags, seq: u32, ack: Option<u32>) -> TcpRepr<'static> {
        TcpRepr {
            src_port: self.cfg.local.port(),
            dst_port: self.cfg.remote.port(),
            seq_number: TcpSeqNumber(seq),
            ack_number: ack.map(TcpSeqNumber),
            flags,
            window_len: WIN,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamp: None,
            payload: &[],
        }
    }

    fn syn(&mut self, now: Instant) {
        let syn = TcpRepr {
            max_seg_size: Some(1460),
            ..self.segment(TcpFlags::SYN, ISN, None)
        };
        self.send(now, syn);
    }
}

impl ScriptEndpoint for Fake {
    fn start(&mut self, config: &ScriptConfig) -> Result<(), String> {
        self.cfg = *config;
        Ok(())
    }

    fn inject(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        self.seen.push(Seen {
            at: now,
            seq: seg.seq_number.0,
            ack: seg.ack_number.map(|a| a.0),
            flags: seg.flags,
            window: seg.window_len,
            mss: seg.max_seg_size,
            timestamp: seg.timestamp,
            sack: seg.sack_ranges.iter().flatten().copied().collect(),
            payload: seg.payload.to_vec(),
        });
        let f = seg.flags;
        if f.contains(TcpFlags::RST) {
            self.state = "CLOSED";
            return;
        }
        if f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::ACK) && self.state == "LISTEN" {
            self.rcv_nxt = seg.seq_number.0.wrapping_add(1);
            self.snd_nxt = ISN.wrapping_add(1);
            self.state = "SYN_RCVD";
            let at = now + SYNACK_DELAY;
            let synack = TcpRepr {
                max_seg_size: Some(1460),
                sack_permitted: true,
                window_scale: Some(7),
                timestamp: seg.timestamp.map(|(val, _)| (at.as_millis() as u32, val)),
                ..self.segment(TcpFlags::SYN | TcpFlags::ACK, ISN, Some(self.rcv_nxt))
            };
            self.send(at, synack);
            return;
        }
        if f.contains(TcpFlags::SYN | TcpFlags::ACK) && self.state == "SYN_SENT" {
            self.rto = None;
            self.rcv_nxt = seg.seq_number.0.wrapping_add(1);
            self.snd_nxt = ISN.wrapping_add(1);
            self.state = "ESTABLISHED";
            let ack = self.segment(TcpFlags::ACK, self.snd_nxt, Some(self.rcv_nxt));
            self.send(now, ack);
            return;
        }
        if self.state == "SYN_RCVD" && seg.ack_number == Some(TcpSeqNumber(self.snd_nxt)) {
            self.state = "ESTABLISHED";
        }
        let len = seg.payload.len() as u32 + u32::from(f.contains(TcpFlags::FIN));
        if len > 0 {
            self.rcv_nxt = seg.seq_number.0.wrapping_add(len);
            let ack = self.segment(TcpFlags::ACK, self.snd_nxt, Some(self.rcv_nxt));
            self.send(now, ack);
        }
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        match self.tx.first() {
            Some((at, _)) if *at <= now => Some(self.tx.remove(0).1),
            _ => None,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.tx.first().map(|(t, _)| *t);
        let rto = self.rto.map(|(t, _)| t);
        match (tx, rto) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.fired.push(now);
        if let Some((deadline, rto)) = self.rto {
            if deadline <= now {
                self.syn(now);
                self.rto = Some((now + rto * 2, rto * 2));
            }
        }
    }

    fn command(&mut self, now: Instant, cmd: &Command) -> Result<(), String> {
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        match (cmd.name.as_str(), args.as_slice()) {
            ("listen", [port]) => {
                if port.parse() != Ok(self.cfg.local.port()) {
                    return Err(format!("can only listen on {}", self.cfg.local.port()));
                }
                self.state = "LISTEN";
            }
            ("connect", []) => {
                self.state = "SYN_SENT";
                self.syn(now);
                self.rto = Some((now + RTO, RTO));
            }
            ("write", [n]) => {
                let n: u32 = n.parse().map_err(|_| format!("bad length `{n}`"))?;
                let data = pattern(self.snd_nxt.wrapping_sub(ISN), n as usize);
                let seg = TcpRepr {
                    payload: &data,
                    ..self.segment(
                        TcpFlags::PSH | TcpFlags::ACK,
                        self.snd_nxt,
                        Some(self.rcv_nxt),
                    )
                };
                self.send(now, seg);
                self.snd_nxt = self.snd_nxt.wrapping_add(n);
            }
            ("close", []) => {
                let fin = self.segment(
                    TcpFlags::FIN | TcpFlags::ACK,
                    self.snd_nxt,
                    Some(self.rcv_nxt),
                );
                self.send(now, fin);
                self.snd_nxt = self.snd_nxt.wrapping_add(1);
            }
            ("expect", ["state", s]) => {
                if *s != self.state {
                    return Err(format!("state is {}, not {s}", self.state));
                }
            }
            _ => return Err("unknown command".to_string()),
        }
        Ok(())
    }
}

fn run(text: &str) -> (Fake, Result<wirespeed::tcp::script::Report, ScriptError>) {
    let mut fake = Fake::new();
    let r = run_script(text, &mut fake);
    (fake, r)
}

/// Runs a script that must fail while running; returns (line, message).
fn run_err(text: &str) -> (usize, String) {
    match run(text).1 {
        Err(ScriptError::Run(e)) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("<script>:{}: ", e.line)),
                "{shown}"
            );
            (e.line, shown)
        }
        other => panic!("expected a run error, got {other:?}"),
    }
}

const HANDSHAKE: &str = "\
0     listen 80
+0    < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
+0.01 > S. 0:0(0) ack 1 win * <mss 1460,sackOK,TS val * ecr 100,nop,wscale 7>
+0    < . 1:1(0) ack 1 win 65535
+0    expect state ESTABLISHED
";

#[test]
fn wildcards_match() {
    let (_, r) = run(HANDSHAKE);
    let report = r.unwrap();
    assert_eq!(
        (
            report.events,
            report.injected,
            report.matched,
            report.commands
        ),
        (5, 2, 1, 2)
    );
    assert_eq!(report.end, Instant::from_millis(10));
    // Every wildcard form at once.
    let text = HANDSHAKE.replace(
        "+0.01 > S. 0:0(0) ack 1 win * <mss 1460,sackOK,TS val * ecr 100,nop,wscale 7>",
        "+0.01 > S. * ack * <mss *,sackOK,TS val * ecr *,nop,wscale *>",
    );
    run(&text).1.unwrap();
    run(&HANDSHAKE.replace("<mss 1460,sackOK,TS val * ecr 100,nop,wscale 7>", "<...>"))
        .1
        .unwrap();
}

#[test]
fn relative_sequence_numbers() {
    let (fake, r) = run(&format!(
        "{HANDSHAKE}+0 < P. 1:6(5) ack 1\n+0 > . 1:1(0) ack 6\n"
    ));
    r.unwrap();
    // The peer's numbers count from its ISN, ours from the ISN we sent.
    let p = DEFAULT_PEER_ISN;
    assert_eq!(fake.seen[0].seq, p);
    assert_eq!(fake.seen[1].seq, p + 1);
    assert_eq!(fake.seen[1].ack, Some(ISN + 1));
    // A pattern-filled payload: the byte at relative sequence s is 'a' + s % 26.
    assert_eq!(fake.seen[2].payload, b"bcdef");

    // Absolute mode: the script writes the real numbers.
    let abs = "seq absolute\n\
               0 listen 80\n\
               +0 < S 7:7(0) win 1000\n\
               +0.01 > S. 5000:5000(0) ack 8 win 64240 <mss 1460,nop,nop,sackOK,nop,wscale 7>\n\
               +0 < . 8:8(0) ack 5001\n";
    let (fake, r) = run(abs);
    r.unwrap();
    assert_eq!((fake.seen[0].seq, fake.seen[1].ack), (7, Some(5001)));

    // peer_isn near the wrap: relative numbers still start at 0.
    let wrap =
        format!("peer_isn 4294967295\n{HANDSHAKE}+0 < P. 1:3(2) ack 1\n+0 > . 1:1(0) ack 3\n");
    let (fake, r) = run(&wrap);
    r.unwrap();
    assert_eq!((fake.seen[0].seq, fake.seen[2].seq), (u32::MAX, 0));
}

#[test]
fn injected_segments_are_what_the_script_says() {
    let text = "0 listen 80\n\
                +0.5 < S 0:0(0) win 1234 <mss 1000,nop,nop,TS val 7 ecr 9>\n\
                +0.01 > S. 0:0(0) ack 1 <...>\n\
                +0 < . 1:1(0) ack 1 win 99 <nop,nop,sack 1:2 3:4>\n\
                +0 < P. 1:4(3) ack 1 \"x\\0y\"\n\
                +0 > . 1:1(0) ack 4\n";
    let (fake, r) = run(text);
    r.unwrap();
    let s = &fake.seen;
    assert_eq!(s[0].at, Instant::from_millis(500));
    assert_eq!(
        (s[0].flags, s[0].window, s[0].mss),
        (TcpFlags::SYN, 1234, Some(1000))
    );
    assert_eq!(s[0].timestamp, Some((7, 9)));
    // SACK blocks are in our sequence space.
    assert_eq!(s[1].sack, vec![(ISN + 1, ISN + 2), (ISN + 3, ISN + 4)]);
    assert_eq!((s[1].window, s[1].flags), (99, TcpFlags::ACK));
    assert_eq!(s[2].payload, b"x\0y");
    assert_eq!(s[2].flags, TcpFlags::PSH | TcpFlags::ACK);
}

#[test]
fn timing_tolerance() {
    let at = |t: &str, tol: &str| {
        format!(
            "tolerance {tol}\n0 listen 80\n+0 < S 0:0(0)\n{t} > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 7>\n"
        )
    };
    // The SYN-ACK comes at exactly 10 ms.
    run(&at("+0.01", "0")).1.unwrap();
    run(&at("+0.012", "0.004")).1.unwrap();
    run(&at("+0.008", "0.004")).1.unwrap();
    run(&at("0.014", "0.004")).1.unwrap();
    run(&at("*", "0")).1.unwrap();
    run(&at("+0~+0.2", "0")).1.unwrap();
    run(&at("~+0.01", "0")).1.unwrap();
    // Expected later than it comes: it came too early.
    let (line, msg) = run_err(&at("+0.02", "0.004"));
    assert_eq!(line, 4);
    assert!(
        msg.contains("segment came too early: sent at 0.01, expected at 0.02 ± 0.004"),
        "{msg}"
    );
    assert!(
        msg.contains("actual:   0.01 > S. 0:0(0) ack 1 win 64240"),
        "{msg}"
    );
    // Expected earlier than it comes: it was not there in time.
    let (line, msg) = run_err(&at("+0.005", "0.004"));
    assert_eq!(line, 4);
    assert!(msg.contains("expected segment was not sent (expected at 0.005 ± 0.004; waited until 0.009, next timer at 0.01)"), "{msg}");
    let (_, msg) = run_err(&at("+0.011", "0"));
    assert!(
        msg.contains("too early: sent at 0.01, expected at 0.011 ± 0"),
        "{msg}"
    );
    let (_, msg) = run_err(&at("+0.009", "0"));
    assert!(
        msg.contains("not sent (expected at 0.009 ± 0; waited until 0.009"),
        "{msg}"
    );
    let (_, msg) = run_err(&at("+0.02~+0.03", "0"));
    assert!(
        msg.contains("too early") && msg.contains("between 0.02 and 0.03"),
        "{msg}"
    );
}

#[test]
fn missing_expected_segment_fails() {
    let (line, msg) = run_err(&format!("{HANDSHAKE}+0.1 > . 1:1(0) ack 1\n"));
    assert_eq!(line, 6);
    assert!(msg.contains("expected segment was not sent"), "{msg}");
    assert!(msg.contains("no timer armed"), "{msg}");
    assert!(
        msg.contains("expected: +0.1 > . 1:1(0) ack 1 win *"),
        "{msg}"
    );
}

#[test]
fn unexpected_extra_segment_fails() {
    // The fake ACKs the data at once; no `>` line expects that ACK.
    let text = format!("{HANDSHAKE}+0 < P. 1:11(10) ack 1\n+0.1 < P. 11:21(10) ack 1\n");
    let (line, msg) = run_err(&text);
    assert_eq!(line, 7);
    assert!(msg.contains("unexpected segment sent at 0.01"), "{msg}");
    assert!(
        msg.contains("actual:   0.01 > . 1:1(0) ack 11 win 64240"),
        "{msg}"
    );
    // Also after the last line.
    let (line, msg) = run_err(&format!("{HANDSHAKE}+0 < P. 1:11(10) ack 1\n"));
    assert_eq!(line, 6);
    assert!(
        msg.contains("unexpected segment sent at 0.01 after the last line"),
        "{msg}"
    );
    // And a segment where a different one is expected is a diff.
    let (line, msg) = run_err(&format!(
        "{HANDSHAKE}+0 < P. 1:11(10) ack 1\n+0 > F. 1:1(0) ack 11\n"
    ));
    assert_eq!(line, 7);
    assert!(msg.contains("segment differs in flags"), "{msg}");
}

#[test]
fn wrong_field_names_the_field() {
    const OPTS: &str = "<mss 1460,nop,nop,sackOK,nop,wscale 7>";
    let cases = [
        (format!("win 100 {OPTS}"), "win"),
        (format!("ack 2 {OPTS}"), "ack"),
        ("<mss 1460>".to_string(), "options"),
        (format!("win 100 ack 9 {OPTS}"), "ack, win"),
    ];
    for (rest, fields) in cases {
        let text = format!("0 listen 80\n+0 < S 0:0(0)\n+0.01 > S. 0:0(0) {rest}\n");
        let (line, msg) = run_err(&text);
        assert_eq!(line, 3, "{msg}");
        assert!(
            msg.contains(&format!("segment differs in {fields}\n")),
            "{rest}: {msg}"
        );
        assert!(msg.contains("  expected: +0.01 > S. 0:0(0)"), "{msg}");
        assert!(
            msg.contains(&format!(
                "  actual:   0.01 > S. 0:0(0) ack 1 win 64240 {OPTS}"
            )),
            "{msg}"
        );
    }
    // Sequence number, length and payload.
    let base = format!("{HANDSHAKE}+0 write 5\n");
    run(&format!("{base}+0 > P. 1:6(5) ack 1 \"bcdef\"\n"))
        .1
        .unwrap();
    let (_, msg) = run_err(&format!("{base}+0 > P. 2:7(5) ack 1\n"));
    assert!(msg.contains("segment differs in seq\n"), "{msg}");
    let (_, msg) = run_err(&format!("{base}+0 > P. 1:5(4) ack 1\n"));
    assert!(msg.contains("segment differs in length\n"), "{msg}");
    let (_, msg) = run_err(&format!("{base}+0 > P. 1:6(5) ack 1 \"bcdeX\"\n"));
    assert!(msg.contains("segment differs in payload\n"), "{msg}");
    assert!(
        msg.contains("actual:   0.01 > P. 1:6(5) ack 1 win 64240 \"bcdef\""),
        "{msg}"
    );
}

#[test]
fn timers_fire_at_their_deadlines() {
    let text = "0 connect\n\
                +0 > S 0:0(0) <mss 1460>\n\
                +1 > S 0:0(0) <mss 1460>\n\
                +2 > S 0:0(0) <mss 1460>\n\
                +0.5 < S. 0:0(0) ack 1 win 1000\n\
                +0 > . 1:1(0) ack 1 win 64240\n\
                +10 expect state ESTABLISHED\n";
    let (fake, r) = run(text);
    let report = r.unwrap();
    assert_eq!(
        fake.fired,
        [Instant::from_millis(1000), Instant::from_millis(3000)]
    );
    assert_eq!(report.end, Instant::from_millis(13_500));
    // A retransmission nobody expects is caught at the next line.
    let (line, msg) = run_err("0 connect\n+0 > S 0:0(0) <mss 1460>\n+1.5 expect state SYN_SENT\n");
    assert_eq!(line, 3);
    assert!(msg.contains("unexpected segment sent at 1 "), "{msg}");
}

#[test]
fn commands_reach_the_endpoint() {
    let (line, msg) = run_err("0 listen 80\n+1 frobnicate 3\n");
    assert_eq!(line, 2);
    assert!(
        msg.contains("command `frobnicate 3` failed: unknown command"),
        "{msg}"
    );
    let (line, msg) = run_err(&HANDSHAKE.replace("ESTABLISHED", "CLOSED"));
    assert_eq!(line, 5);
    assert!(msg.contains("state is ESTABLISHED, not CLOSED"), "{msg}");
    // Parse errors come back as such, with the position.
    match run("0 listen 80\n+0 < S 0:0(0) win x\n").1 {
        Err(ScriptError::Parse(e)) => assert_eq!((e.line, e.column), (2, 19)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn time_never_goes_back() {
    let (line, msg) = run_err("1 listen 80\n0.5 listen 80\n");
    assert_eq!(line, 2);
    assert!(
        msg.contains("line is at 0.5, but virtual time is already 1"),
        "{msg}"
    );
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts")
}

#[test]
fn example_scripts_pass() {
    let report = run_dir(&scripts_dir(), |_| Fake::new()).unwrap();
    assert!(report.results.len() >= 3, "{report}");
    assert!(report.all_passed(), "{report}");
}

#[test]
fn folder_report_lists_each_failure() {
    let dir = std::env::temp_dir().join(format!("wirespeed-script-format-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a_good.pkt"), HANDSHAKE).unwrap();
    std::fs::write(
        dir.join("b_bad.pkt"),
        "0 listen 80\n+0 < S 0:0(0)\n+0.01 > S 0:0(0)\n",
    )
    .unwrap();
    std::fs::write(dir.join("c_broken.pkt"), "0 < Q\n").unwrap();
    std::fs::write(dir.join("ignored.txt"), "not a script").unwrap();
    let report = run_dir(&dir, |_| Fake::new()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let shown = report.to_string();
    assert!(!report.all_passed());
    assert_eq!(report.failures().count(), 2, "{shown}");
    assert!(
        shown.contains("ok   ") && shown.contains("a_good.pkt"),
        "{shown}"
    );
    assert!(
        shown.contains("FAIL ") && shown.contains("b_bad.pkt:3: segment differs in flags"),
        "{shown}"
    );
    assert!(
        shown.contains("c_broken.pkt:1:5: expected TCP flags"),
        "{shown}"
    );
    assert!(shown.ends_with("3 scripts, 2 failed"), "{shown}");
}

/// Sends whatever bytes it was given, on `emit`; optionally keeps sending
/// forever or keeps a timer armed in the past.
#[derive(Debug, Default)]
struct Canned {
    cfg: ScriptConfig,
    queue: Vec<Vec<u8>>,
    ready: usize,
    endless: bool,
    stuck_timer: bool,
}

impl ScriptEndpoint for Canned {
    fn start(&mut self, config: &ScriptConfig) -> Result<(), String> {
        self.cfg = *config;
        Ok(())
    }
    fn inject(&mut self, _: Instant, _: &TcpRepr<'_>) {}
    fn poll_transmit(&mut self, _: Instant) -> Option<Vec<u8>> {
        if self.endless {
            return Some(vec![0; 20]);
        }
        if self.ready > 0 && !self.queue.is_empty() {
            self.ready -= 1;
            return Some(self.queue.remove(0));
        }
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.stuck_timer.then_some(Instant::ZERO)
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn command(&mut self, _: Instant, _: &Command) -> Result<(), String> {
        self.ready += 1;
        Ok(())
    }
}

fn canned_err(canned: &mut Canned, text: &str) -> String {
    match run_script(text, canned) {
        Err(ScriptError::Run(e)) => e.to_string(),
        other => panic!("expected a run error, got {other:?}"),
    }
}

#[test]
fn bad_segments_from_the_endpoint_are_errors() {
    let cfg = ScriptConfig::default();
    let good = |src_port: u16| {
        let repr = TcpRepr {
            src_port,
            dst_port: cfg.remote.port(),
            seq_number: TcpSeqNumber(1),
            ack_number: None,
            flags: TcpFlags::RST,
            window_len: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamp: None,
            payload: &[],
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit_with_payload(
            &mut buf,
            *cfg.local.ip(),
            *cfg.remote.ip(),
            &ChecksumCaps::SOFTWARE,
        )
        .unwrap();
        buf
    };
    let script = "0 emit\n+0 > R 1:1(0)\n";
    // The right segment passes (absolute numbers: no SYN seen yet).
    let mut c = Canned {
        queue: vec![good(80)],
        ..Canned::default()
    };
    run_script(script, &mut c).unwrap();
    // Wrong source port.
    let mut c = Canned {
        queue: vec![good(81)],
        ..Canned::default()
    };
    let msg = canned_err(&mut c, script);
    assert!(msg.contains("segment differs in ports"), "{msg}");
    assert!(
        msg.contains("ports: expected 80 > 40000, got 81 > 40000"),
        "{msg}"
    );
    // Bad checksum.
    let mut bad = good(80);
    bad[16] ^= 0xff;
    let mut c = Canned {
        queue: vec![bad],
        ..Canned::default()
    };
    let msg = canned_err(&mut c, script);
    assert!(
        msg.contains(
            "does not parse as TCP from 198.18.0.2:80 to 198.18.0.1:40000: checksum mismatch"
        ),
        "{msg}"
    );
    // Garbage, and garbage nobody expects.
    let mut c = Canned {
        queue: vec![vec![1, 2, 3]],
        ..Canned::default()
    };
    let msg = canned_err(&mut c, script);
    assert!(msg.contains("does not parse as TCP"), "{msg}");
    let mut c = Canned {
        queue: vec![vec![1, 2, 3]],
        ..Canned::default()
    };
    let msg = canned_err(&mut c, "0 emit\n");
    assert!(
        msg.contains("unexpected segment sent at 0 after the last line"),
        "{msg}"
    );
    assert!(msg.contains("3 bytes that do not parse as TCP"), "{msg}");
}

#[test]
fn a_stuck_endpoint_is_an_error_not_a_hang() {
    let mut c = Canned {
        endless: true,
        ..Canned::default()
    };
    let msg = canned_err(&mut c, "0 emit\n");
    assert!(msg.contains("kept transmitting"), "{msg}");
    let mut c = Canned {
        stuck_timer: true,
        ..Canned::default()
    };
    let msg = canned_err(&mut c, "1 emit\n");
    assert!(msg.contains("stays armed after firing"), "{msg}");
}
