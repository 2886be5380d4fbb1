//! TCP conformance: every script in `tests/scripts/tcp/` replayed against a
//! real [`TcpStack`] through [`StackEndpoint`], an adapter implementing
//! [`ScriptEndpoint`].
//!
//! # The adapter
//!
//! - Injected segments become an [`Ipv4Delivery`] (remote to local, the
//!   segment's bytes exactly as the script laid them out in a [`HeapBuf`])
//!   handed to [`TcpStack::handle_packet`].
//! - Transmitted segments are the header buffer from
//!   [`TcpStack::poll_transmit`] with its attached payload gathered behind it.
//! - Timers are the stack's ([`TcpStack::poll_timeout`] /
//!   [`TcpStack::handle_timeout`]).
//! - The stack is created on the first `listen`, `connect` or segment, with
//!   the configuration the `config` commands (and the `mss` directive) built
//!   up to then; `config` after that is an error.
//! - Timestamps: our timestamp clock runs at a keyed offset (RFC 7323 §5.4),
//!   unknowable to a script. The adapter knows the key, so it shifts every
//!   TSval we send back by that offset and the TSecr of every ACK the peer
//!   sends forward by it: in scripts our TSval reads as milliseconds of
//!   virtual time (`TS val 10` at 0.01 s), like packetdrill's relative
//!   timestamps. A segment whose TSval ran on another clock shows up as a
//!   wrong value.
//! - `syn_flood N` injects N SYNs from other ports of the remote address;
//!   segments to those other 4-tuples are counted and dropped, never
//!   matched against the script.
//!
//! # Commands
//!
//! See [`USAGE`].

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use wirespeed::buf::{HeapBuf, HeapPool, PacketBuf, DEFAULT_BUF_SIZE, DEFAULT_HEADROOM};
use wirespeed::net::Ipv4Delivery;
use wirespeed::tcp::script::{
    pattern, run_dir, run_script, Command, ScriptConfig, ScriptEndpoint, ScriptError,
};
use wirespeed::tcp::{
    CcAlgorithm, CloseReason, ConnId, Event, FourTuple, IsnGenerator, Keepalive, ListenConfig,
    State, TcpConfig, TcpStack,
};
use wirespeed::time::{Duration, Instant};
use wirespeed::wire::{
    ChecksumCaps, IpProtocol, Ipv4Repr, TcpFlags, TcpPacket, TcpRepr, TcpSeqNumber,
};

/// The commands the adapter understands, shown with every command error.
const USAGE: &str = "\
accepted commands:
  listen PORT [backlog N] [syn_backlog N] [cookies on|off]
  connect                      (from the script's local address and port to its remote)
  accept                       (take the connection from the listener's accept queue)
  write N | write \"text\"       (N bytes of the pattern at our next sequence number)
  read N | read all | read \"text\"
  shutdown | close | abort
  expect state NAME            (CLOSED LISTEN SYN_SENT SYN_RECEIVED ESTABLISHED FIN_WAIT_1
                                FIN_WAIT_2 CLOSE_WAIT CLOSING LAST_ACK TIME_WAIT)
  expect event NAME            (Connected Readable Writable PeerFin
                                Closed(Normal|Reset|TimedOut|Refused|Aborted))
  expect no event
  syn_flood N                  (N SYNs from other ports of the remote address)
  config nodelay|sack|timestamps|wscale|time_wait_reuse on|off
  config keepalive IDLE INTERVAL PROBES | config keepalive off
  config rcv_buf N | snd_buf N | mss N | syn_retries N | synack_retries N | retries2 N
  config challenge_ack_limit N | dup_thresh N
  config delayed_ack SECS | msl SECS | fin_wait2_timeout SECS | min_rto SECS | initial_rto SECS
  config cc newreno|cubic";

/// The stack's secret: fixed, so runs are reproducible.
const SECRET: [u8; 48] = {
    let mut s = [0u8; 48];
    let mut i = 0;
    while i < 48 {
        s[i] = (i as u8).wrapping_mul(37).wrapping_add(11);
        i += 1;
    }
    s
};

/// A [`TcpStack<HeapBuf>`] behind the script interface. See the module docs.
struct StackEndpoint {
    script: ScriptConfig,
    config: TcpConfig,
    stack: Option<TcpStack<HeapBuf>>,
    pool: HeapPool,
    /// Events of every connection, consecutive repeats folded.
    events: VecDeque<(ConnId, Event)>,
    /// The listening port, if any.
    listening: Option<u16>,
    /// Our timestamp clock's offset towards the remote address.
    ts_offset: u32,
    /// Payload bytes written so far (the next write starts at relative
    /// sequence number `1 + written`).
    written: u32,
    /// Segments to other 4-tuples (SYN flood replies), dropped.
    foreign_out: u64,
    flood_port: u16,
}

/// An argument error, with the accepted forms.
fn usage(msg: String) -> String {
    format!("{msg}\n{USAGE}")
}

fn on_off(cmd: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{cmd}` takes `on` or `off`, not `{v}`")),
    }
}

fn number<T: core::str::FromStr>(what: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("`{what}` needs a number, not `{v}`"))
}

fn secs(what: &str, v: &str) -> Result<Duration, String> {
    let bad = || format!("`{what}` needs seconds (like 0.2), not `{v}`");
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 9 || (int.is_empty() && frac.is_empty()) {
        return Err(bad());
    }
    let int: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac_ns: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Duration::from_nanos(int * 1_000_000_000 + frac_ns))
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Closed => "CLOSED",
        State::Listen => "LISTEN",
        State::SynSent => "SYN_SENT",
        State::SynReceived => "SYN_RECEIVED",
        State::Established => "ESTABLISHED",
        State::FinWait1 => "FIN_WAIT_1",
        State::FinWait2 => "FIN_WAIT_2",
        State::CloseWait => "CLOSE_WAIT",
        State::Closing => "CLOSING",
        State::LastAck => "LAST_ACK",
        State::TimeWait => "TIME_WAIT",
    }
}

fn event_name(e: Event) -> String {
    match e {
        Event::Connected => "Connected".into(),
        Event::Readable => "Readable".into(),
        Event::Writable => "Writable".into(),
        Event::PeerFin => "PeerFin".into(),
        Event::Closed(r) => format!("Closed({r:?})"),
    }
}

fn parse_event(name: &str) -> Option<Event> {
    Some(match name {
        "Connected" => Event::Connected,
        "Readable" => Event::Readable,
        "Writable" => Event::Writable,
        "PeerFin" => Event::PeerFin,
        "Closed(Normal)" => Event::Closed(CloseReason::Normal),
        "Closed(Reset)" => Event::Closed(CloseReason::Reset),
        "Closed(TimedOut)" => Event::Closed(CloseReason::TimedOut),
        "Closed(Refused)" => Event::Closed(CloseReason::Refused),
        "Closed(Aborted)" => Event::Closed(CloseReason::Aborted),
        _ => return None,
    })
}

/// Adds `delta` to the TSecr (`ecr`) or TSval (`!ecr`) of a TCP segment's
/// timestamp option, in place, and refills the checksum.
fn shift_timestamp(bytes: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, ecr: bool, delta: u32) {
    let Ok(mut pkt) = TcpPacket::new_checked(&mut bytes[..]) else {
        return;
    };
    if ecr && !pkt.ack() {
        // A SYN's TSecr is zero and means nothing (RFC 7323 §3.2).
        return;
    }
    let opts = pkt.options_mut();
    let mut i = 0;
    let mut changed = false;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > opts.len() {
                    break;
                }
                if kind == 8 && len == 10 {
                    let at = if ecr { i + 6 } else { i + 2 };
                    let field = &mut opts[at..at + 4];
                    let v = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                    field.copy_from_slice(&v.wrapping_add(delta).to_be_bytes());
                    changed = true;
                }
                i += len;
            }
        }
    }
    if changed {
        pkt.fill_checksum(src, dst);
    }
}

impl StackEndpoint {
    fn new() -> Self {
        StackEndpoint {
            script: ScriptConfig::default(),
            config: TcpConfig::default(),
            stack: None,
            pool: HeapPool::new(DEFAULT_BUF_SIZE, DEFAULT_HEADROOM, 1 << 16),
            events: VecDeque::new(),
            listening: None,
            ts_offset: 0,
            written: 0,
            foreign_out: 0,
            flood_port: 0,
        }
    }

    fn tuple(&self) -> FourTuple {
        FourTuple {
            local_addr: *self.script.local.ip(),
            local_port: self.script.local.port(),
            remote_addr: *self.script.remote.ip(),
            remote_port: self.script.remote.port(),
        }
    }

    fn stack(&mut self) -> &mut TcpStack<HeapBuf> {
        let config = self.config;
        self.stack.get_or_insert_with(|| {
            TcpStack::new(config, ChecksumCaps::SOFTWARE, SECRET, Instant::ZERO)
        })
    }

    /// The script's connection, if it exists.
    fn conn_id(&self) -> Option<ConnId> {
        self.stack.as_ref()?.lookup(&self.tuple())
    }

    fn need_conn(&self, cmd: &str) -> Result<ConnId, String> {
        self.conn_id()
            .ok_or_else(|| format!("`{cmd}`: there is no connection on the script's 4-tuple"))
    }

    /// Moves the stack's events and spare buffers out.
    fn collect(&mut self) {
        let Some(stack) = self.stack.as_mut() else {
            return;
        };
        while let Some(ev) = stack.poll_event() {
            if self.events.back() != Some(&ev) {
                self.events.push_back(ev);
            }
        }
        while let Some(b) = stack.poll_recycle() {
            self.pool.recycle(b);
        }
    }

    fn deliver(&mut self, now: Instant, src: SocketAddrV4, bytes: &[u8]) {
        let dst = *self.script.local.ip();
        let repr = Ipv4Repr {
            src_addr: *src.ip(),
            dst_addr: dst,
            protocol: IpProtocol::Tcp,
            payload_len: bytes.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
        };
        let buf = HeapBuf::from_slice(bytes, DEFAULT_HEADROOM);
        self.stack().handle_packet(now, Ipv4Delivery { repr, buf });
        self.collect();
    }

    fn configure(&mut self, args: &[&str]) -> Result<(), String> {
        if self.stack.is_some() {
            return Err("`config` must come before the first listen, connect or segment".into());
        }
        let c = &mut self.config;
        match args {
            ["nodelay", v] => c.nodelay = on_off("config nodelay", v)?,
            ["sack", v] => c.sack = on_off("config sack", v)?,
            ["timestamps", v] => c.timestamps = on_off("config timestamps", v)?,
            ["wscale", v] => c.window_scale = on_off("config wscale", v)?,
            ["time_wait_reuse", v] => c.time_wait_reuse = on_off("config time_wait_reuse", v)?,
            ["keepalive", "off"] => c.keepalive = None,
            ["keepalive", idle, interval, probes] => {
                c.keepalive = Some(Keepalive {
                    idle: secs("config keepalive IDLE", idle)?,
                    interval: secs("config keepalive INTERVAL", interval)?,
                    probes: number("config keepalive PROBES", probes)?,
                })
            }
            ["rcv_buf", n] => c.rcv_buf = number("config rcv_buf", n)?,
            ["snd_buf", n] => c.snd_buf = number("config snd_buf", n)?,
            ["mss", n] => c.mss = number("config mss", n)?,
            ["syn_retries", n] => c.syn_retries = number("config syn_retries", n)?,
            ["synack_retries", n] => c.synack_retries = number("config synack_retries", n)?,
            ["retries2", n] => c.retries2 = number("config retries2", n)?,
            ["challenge_ack_limit", n] => {
                c.challenge_ack_limit = number("config challenge_ack_limit", n)?
            }
            ["dup_thresh", n] => c.dup_thresh = number("config dup_thresh", n)?,
            ["delayed_ack", s] => c.delayed_ack = secs("config delayed_ack", s)?,
            ["msl", s] => c.msl = secs("config msl", s)?,
            ["fin_wait2_timeout", s] => c.fin_wait2_timeout = secs("config fin_wait2_timeout", s)?,
            ["min_rto", s] => c.rtt.min_rto = secs("config min_rto", s)?,
            ["initial_rto", s] => c.rtt.initial_rto = secs("config initial_rto", s)?,
            ["cc", "newreno"] => c.cc = CcAlgorithm::NewReno,
            ["cc", "cubic"] => c.cc = CcAlgorithm::Cubic,
            _ => return Err(format!("unknown or malformed `config {}`", args.join(" "))),
        }
        Ok(())
    }

    fn listen(&mut self, args: &[&str]) -> Result<(), String> {
        let [port, rest @ ..] = args else {
            return Err("`listen` needs a port".into());
        };
        let port: u16 = number("listen PORT", port)?;
        let mut lc = ListenConfig::default();
        let mut rest = rest;
        while let [key, value, tail @ ..] = rest {
            match *key {
                "backlog" => lc.backlog = number("listen backlog", value)?,
                "syn_backlog" => lc.syn_backlog = number("listen syn_backlog", value)?,
                "cookies" => lc.syn_cookies = on_off("listen cookies", value)?,
                other => return Err(format!("`listen`: unknown setting `{other}`")),
            }
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(format!("`listen`: `{}` has no value", rest[0]));
        }
        self.stack()
            .listen(port, lc)
            .map_err(|e| format!("listen: {e}"))?;
        self.listening = Some(port);
        Ok(())
    }

    fn write(&mut self, now: Instant, args: &[&str]) -> Result<(), String> {
        let data = match args {
            [n] => match n.parse::<usize>() {
                Ok(n) => pattern(self.written.wrapping_add(1), n),
                Err(_) => n.as_bytes().to_vec(),
            },
            _ => return Err("`write` takes a byte count or one quoted string".into()),
        };
        let id = self.need_conn("write")?;
        let pool = &mut self.pool;
        let stack = self.stack.as_mut().ok_or("no stack")?;
        let n = stack
            .with_conn(now, id, |c| c.send_slice(&data, pool))
            .unwrap_or(0);
        self.collect();
        self.written = self.written.wrapping_add(n as u32);
        if n < data.len() {
            return Err(format!(
                "write: the connection took {n} of {} bytes (send buffer full or send side closed)",
                data.len()
            ));
        }
        Ok(())
    }

    fn read(&mut self, now: Instant, args: &[&str]) -> Result<(), String> {
        let id = self.need_conn("read")?;
        let stack = self.stack.as_mut().ok_or("no stack")?;
        let avail = stack.conn(id).map_or(0, |c| c.recv_queued());
        let (want, text) = match args {
            ["all"] => (avail, None),
            [n] => match n.parse::<usize>() {
                Ok(n) => (n, None),
                Err(_) => (n.len(), Some(n.as_bytes())),
            },
            _ => return Err("`read` takes a byte count, `all` or one quoted string".into()),
        };
        if avail < want {
            return Err(format!("read: {avail} bytes readable, not {want}"));
        }
        let mut out = vec![0u8; want];
        let got = stack.with_conn(now, id, |c| c.read(&mut out)).unwrap_or(0);
        self.collect();
        if got != want {
            return Err(format!("read: got {got} bytes, not {want}"));
        }
        if let Some(t) = text {
            if t != out.as_slice() {
                return Err(format!(
                    "read: data is {:?}, not {:?}",
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(t)
                ));
            }
        }
        Ok(())
    }

    fn expect(&mut self, args: &[&str]) -> Result<(), String> {
        match args {
            ["state", name] => {
                let actual = match self.conn_id() {
                    Some(id) => self
                        .stack
                        .as_ref()
                        .and_then(|s| s.conn(id))
                        .map_or(State::Closed, |c| c.state()),
                    None if self.listening.is_some() && name.eq_ignore_ascii_case("LISTEN") => {
                        State::Listen
                    }
                    None => State::Closed,
                };
                let want = name.replace('-', "_").to_ascii_uppercase();
                if state_name(actual) != want {
                    return Err(format!("state is {}, not {want}", state_name(actual)));
                }
            }
            ["event", name] => {
                let want =
                    parse_event(name).ok_or_else(|| usage(format!("unknown event `{name}`")))?;
                match self.events.pop_front() {
                    Some((_, e)) if e == want => {}
                    Some((_, e)) => {
                        return Err(format!("next event is {}, not {name}", event_name(e)))
                    }
                    None => return Err(format!("no event pending, expected {name}")),
                }
            }
            ["no", "event"] => {
                if let Some((_, e)) = self.events.front() {
                    return Err(format!("event {} is pending", event_name(*e)));
                }
            }
            _ => return Err(usage("unknown `expect` form".into())),
        }
        Ok(())
    }

    fn syn_flood(&mut self, now: Instant, args: &[&str]) -> Result<(), String> {
        let [n] = args else {
            return Err("`syn_flood` takes a count".into());
        };
        let n: u16 = number("syn_flood N", n)?;
        let (src, dst) = (*self.script.remote.ip(), *self.script.local.ip());
        for _ in 0..n {
            self.flood_port = self.flood_port.wrapping_add(1);
            let port = self
                .script
                .remote
                .port()
                .wrapping_add(self.flood_port)
                .max(1);
            let syn = TcpRepr {
                src_port: port,
                dst_port: self.script.local.port(),
                seq_number: TcpSeqNumber(u32::from(port).wrapping_mul(7919)),
                ack_number: None,
                flags: TcpFlags::SYN,
                window_len: 65535,
                max_seg_size: Some(1460),
                window_scale: None,
                sack_permitted: false,
                sack_ranges: [None; 4],
                timestamp: None,
                payload: &[],
            };
            let mut bytes = vec![0u8; syn.buffer_len()];
            syn.emit_with_payload(&mut bytes, src, dst, &ChecksumCaps::SOFTWARE)
                .map_err(|e| format!("syn_flood: {e}"))?;
            self.deliver(now, SocketAddrV4::new(src, port), &bytes);
        }
        Ok(())
    }
}

impl ScriptEndpoint for StackEndpoint {
    fn start(&mut self, config: &ScriptConfig) -> Result<(), String> {
        self.script = *config;
        if let Some(m) = config.mss {
            self.config.mss = m;
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(&SECRET[..16]);
        self.ts_offset = IsnGenerator::new(key).ts_offset(*config.local.ip(), *config.remote.ip());
        Ok(())
    }

    fn inject(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        let mut bytes = vec![0u8; seg.buffer_len()];
        let (src, dst) = (*self.script.remote.ip(), *self.script.local.ip());
        if seg
            .emit_with_payload(&mut bytes, src, dst, &ChecksumCaps::SOFTWARE)
            .is_ok()
        {
            self.inject_bytes(now, &bytes.clone(), seg);
        }
    }

    fn inject_bytes(&mut self, now: Instant, bytes: &[u8], _seg: &TcpRepr<'_>) {
        let mut bytes = bytes.to_vec();
        let (src, dst) = (*self.script.remote.ip(), *self.script.local.ip());
        shift_timestamp(&mut bytes, src, dst, true, self.ts_offset);
        self.deliver(now, self.script.remote, &bytes);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        loop {
            let stack = self.stack.as_mut()?;
            let out = stack.poll_transmit(now, &mut self.pool);
            let Some((dst, buf)) = out else {
                self.collect();
                return None;
            };
            let mut bytes = buf.as_slice().to_vec();
            bytes.extend_from_slice(buf.attached());
            self.pool.recycle(buf);
            self.collect();
            let to_script = dst == *self.script.remote.ip()
                && TcpPacket::new_checked(&bytes[..])
                    .is_ok_and(|p| p.dst_port() == self.script.remote.port());
            if !to_script {
                self.foreign_out += 1;
                continue;
            }
            let (src, dst) = (*self.script.local.ip(), *self.script.remote.ip());
            shift_timestamp(&mut bytes, src, dst, false, self.ts_offset.wrapping_neg());
            return Some(bytes);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.stack.as_ref()?.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some(s) = self.stack.as_mut() {
            s.handle_timeout(now);
        }
        self.collect();
    }

    fn command(&mut self, now: Instant, cmd: &Command) -> Result<(), String> {
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        let r = match (cmd.name.as_str(), args.as_slice()) {
            ("config", rest) => self.configure(rest).map_err(usage),
            ("listen", rest) => self.listen(rest).map_err(usage),
            ("connect", []) => {
                let local = self.script.local;
                let remote = self.script.remote;
                self.stack()
                    .connect(
                        now,
                        *local.ip(),
                        Some(local.port()),
                        (*remote.ip(), remote.port()),
                    )
                    .map(|_| ())
                    .map_err(|e| format!("connect: {e}"))
            }
            ("accept", []) => {
                let port = self.listening.ok_or("`accept`: nothing is listening")?;
                match self.stack().accept(port) {
                    Some(_) => Ok(()),
                    None => Err("accept: the accept queue is empty".into()),
                }
            }
            ("write", rest) => self.write(now, rest),
            ("read", rest) => self.read(now, rest),
            ("shutdown" | "close" | "abort", []) => {
                let id = self.need_conn(&cmd.name)?;
                let name = cmd.name.clone();
                let stack = self.stack.as_mut().ok_or("no stack")?;
                stack.with_conn(now, id, |c| match name.as_str() {
                    "shutdown" => c.shutdown(now),
                    "close" => c.close(now),
                    _ => c.abort(now),
                });
                Ok(())
            }
            ("expect", rest) => self.expect(rest),
            ("syn_flood", rest) => self.syn_flood(now, rest),
            _ => Err(usage(format!("unknown command `{cmd}`"))),
        };
        self.collect();
        r
    }
}

#[test]
fn tcp_conformance_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/tcp");
    let report = run_dir(&dir, |_| StackEndpoint::new()).expect("list tests/scripts/tcp");
    eprintln!("{report}");
    assert!(
        report.all_passed(),
        "conformance scripts failed:\n{}",
        report
            .failures()
            .map(|(p, e)| format!("{}: {e}", p.display()))
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

fn run_text(text: &str) -> Result<(), String> {
    let mut ep = StackEndpoint::new();
    run_script(text, &mut ep)
        .map(|_| ())
        .map_err(|e: ScriptError| e.to_string())
}

#[test]
fn unknown_command_names_itself_and_the_accepted_forms() {
    let e = run_text("0 frobnicate 3\n").unwrap_err();
    assert!(e.contains("unknown command `frobnicate 3`"), "{e}");
    assert!(e.contains("accepted commands"), "{e}");
}

#[test]
fn bad_arguments_are_named() {
    let e = run_text("0 config nodelay maybe\n").unwrap_err();
    assert!(
        e.contains("`config nodelay` takes `on` or `off`, not `maybe`"),
        "{e}"
    );
    let e = run_text("0 listen 80 backlog lots\n").unwrap_err();
    assert!(
        e.contains("`listen backlog` needs a number, not `lots`"),
        "{e}"
    );
    let e = run_text("0 listen 80\n+0 config sack off\n").unwrap_err();
    assert!(e.contains("must come before"), "{e}");
    let e = run_text("0 expect event Exploded\n").unwrap_err();
    assert!(e.contains("unknown event `Exploded`"), "{e}");
    let e = run_text("0 write 10\n").unwrap_err();
    assert!(e.contains("no connection"), "{e}");
}

#[test]
fn timestamp_shift_round_trips() {
    let src = Ipv4Addr::new(198, 18, 0, 1);
    let dst = Ipv4Addr::new(198, 18, 0, 2);
    let seg = TcpRepr {
        src_port: 1,
        dst_port: 2,
        seq_number: TcpSeqNumber(5),
        ack_number: Some(TcpSeqNumber(9)),
        flags: TcpFlags::ACK,
        window_len: 100,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [None; 4],
        timestamp: Some((1000, 2000)),
        payload: b"xy",
    };
    let mut bytes = vec![0u8; seg.buffer_len()];
    seg.emit_with_payload(&mut bytes, src, dst, &ChecksumCaps::SOFTWARE)
        .unwrap();
    shift_timestamp(&mut bytes, src, dst, true, 5);
    shift_timestamp(&mut bytes, src, dst, false, 7);
    let pkt = TcpPacket::new_checked(&bytes[..]).unwrap();
    let r = TcpRepr::parse(&pkt, src, dst, &ChecksumCaps::SOFTWARE).unwrap();
    assert_eq!(r.timestamp, Some((1007, 2005)));
}
