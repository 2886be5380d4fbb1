//! The engine's TCP against smoltcp, an implementation it shares no code
//! with: a wirespeed [`TcpHost`] and a smoltcp host on one [`MemWire`],
//! stepped together on one virtual clock by [`MixedSim`].
//!
//! Each transfer moves `len` bytes each way at once, the client closing
//! first once its data is queued and the server after the client's FIN.
//! Checked every time: the bytes (exactly), a FIN from each side and no RST
//! on the wire, the smoltcp socket in TIME-WAIT or CLOSED, and the wirespeed
//! connection in TIME-WAIT or closed normally. Our TCP takes the client
//! role and the server role; the wire is clean, or loses 1 % / 5 % of the
//! frames and reorders some.
//!
//! smoltcp 0.14 as a peer (see `support/smol.rs`): no SACK, a 1 s minimum
//! RTO with go-back-N, and a bug that leaves a socket whose only
//! unacknowledged byte is its FIN without a timer after three duplicate
//! ACKs. A stall is classified: [`Stalled::smoltcp_fin_bug`] says whether
//! the smoltcp end sits in that state; seeds are chosen, and said so, where
//! it bites.

#[path = "support/smol.rs"]
mod smol;

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use smol::{MixedSim, Participant, SmolHostConfig, SmolId, TcpState};
use smoltcp::iface::SocketHandle;
use wirespeed::net::{Interface, InterfaceConfig, Ipv4Cidr};
use wirespeed::port::{Impairment, MemDevice, MemPortConfig, MemWire, PortStats};
use wirespeed::rt::TcpHost;
use wirespeed::tcp::{
    CloseReason, ConnId, ConnStats, Event, ListenConfig, State, TcpConfig, TcpStack,
};
use wirespeed::wire::{ChecksumCaps, EthernetAddress};
use wirespeed::{Duration, Instant};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const SERVER_PORT: u16 = 5000;
const CLIENT_PORT: u16 = 49152;

/// Index 0 in [`Seen`]: the wirespeed host.
const WS: u8 = 1;
/// Index 1 in [`Seen`]: the smoltcp host.
const SMOL: u8 = 2;

fn mac(i: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, i])
}

fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, i)
}

fn cidr(i: u8) -> Ipv4Cidr {
    format!("198.18.0.{i}/24").parse().unwrap()
}

/// Bytes from a splitmix64 stream.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(len + 8);
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

/// TCP segments seen on the wire, per sender (before any impairment).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Flags {
    syn: u32,
    fin: u32,
    rst: u32,
    data: u32,
}

type Seen = Arc<Mutex<[Flags; 2]>>;

/// Counts TCP flags per sender (wirespeed index 0, smoltcp index 1).
fn watch_tcp(wire: &MemWire) -> Seen {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    wire.set_filter(Some(Box::new(move |f: &[u8]| {
        let who = match f.get(6..12) {
            Some(m) if m == mac(WS).0 => 0,
            Some(m) if m == mac(SMOL).0 => 1,
            _ => return false,
        };
        if f.get(12..14) != Some(&[0x08, 0x00][..]) || f.get(23) != Some(&6) {
            return false;
        }
        let ihl = usize::from(f[14] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
        let tcp = 14 + ihl;
        let (Some(&off), Some(&flags)) = (f.get(tcp + 12), f.get(tcp + 13)) else {
            return false;
        };
        let payload = total.saturating_sub(ihl + usize::from(off >> 4) * 4);
        let mut seen = sink.lock().unwrap();
        let s = &mut seen[who];
        s.syn += u32::from(flags & 0x02 != 0);
        s.fin += u32::from(flags & 0x01 != 0);
        s.rst += u32::from(flags & 0x04 != 0);
        s.data += u32::from(payload > 0);
        false
    })));
    seen
}

/// The wirespeed host: a [`TcpHost`] on a mem port, its events collected.
struct Ws {
    host: TcpHost<MemDevice>,
    events: Vec<(ConnId, Event)>,
}

impl Ws {
    fn new(wire: &MemWire, imp: Impairment, now: Instant) -> Ws {
        let dev = wire
            .add_port(MemPortConfig {
                impairment: imp,
                pool_limit: 1 << 14,
                ..MemPortConfig::new(mac(WS))
            })
            .expect("port")
            .pop()
            .expect("one queue");
        let iface = Interface::new(InterfaceConfig::new(mac(WS), cidr(WS)), now).expect("iface");
        let mut secret = [0u8; 48];
        for (i, b) in secret.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(29) ^ 0x5c;
        }
        let stack = TcpStack::new(TcpConfig::default(), ChecksumCaps::SOFTWARE, secret, now);
        Ws {
            host: TcpHost::new(iface, dev, stack),
            events: Vec::new(),
        }
    }

    fn collect(&mut self) {
        while let Some(e) = self.host.poll_event() {
            self.events.push(e);
        }
    }

    fn closed(&self, id: ConnId) -> Option<CloseReason> {
        self.events.iter().find_map(|&(c, e)| match e {
            Event::Closed(r) if c == id => Some(r),
            _ => None,
        })
    }
}

impl Participant for Ws {
    fn poll(&mut self, now: Instant) {
        self.host.poll(now);
        self.collect();
    }
    fn poll_at(&mut self, _now: Instant) -> Option<Instant> {
        self.host.poll_at()
    }
}

/// The wirespeed end's application: sends `out`, half-closes when all is
/// queued (the passive end only after the peer's FIN), reads everything.
struct WsEnd {
    id: Option<ConnId>,
    out: Vec<u8>,
    sent: usize,
    passive: bool,
    closed: bool,
    got: Vec<u8>,
    /// The connection's counters when last seen (it is dropped once closed).
    stats: Option<ConnStats>,
}

impl WsEnd {
    fn run(&mut self, ws: &mut Ws, now: Instant) {
        if self.id.is_none() {
            self.id = ws.host.tcp.accept(SERVER_PORT);
        }
        let Some(id) = self.id else {
            return;
        };
        let state = ws.host.tcp.conn(id).map(|c| c.state());
        if matches!(state, Some(State::Established | State::CloseWait)) {
            while self.sent < self.out.len() {
                let out = &self.out[self.sent..];
                let n = ws
                    .host
                    .with_conn(now, id, |c, alloc| c.send_slice(out, alloc))
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                self.sent += n;
            }
            let peer_closed = state == Some(State::CloseWait);
            if self.sent == self.out.len() && !self.closed && (!self.passive || peer_closed) {
                ws.host.with_conn(now, id, |c, _| c.shutdown(now));
                self.closed = true;
            }
        }
        let mut buf = [0u8; 16 * KIB];
        loop {
            let n = ws
                .host
                .with_conn(now, id, |c, _| c.read(&mut buf))
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            self.got.extend_from_slice(&buf[..n]);
        }
        // What the application queued goes out in this iteration.
        ws.host.flush(now);
        ws.collect();
        if let Some(c) = ws.host.tcp.conn(id) {
            self.stats = Some(*c.stats());
        }
    }

    /// Everything received, our FIN sent, and the connection in TIME-WAIT
    /// or closed normally (both FINs acknowledged).
    fn finished(&self, ws: &Ws, expect: usize) -> bool {
        let Some(id) = self.id else {
            return false;
        };
        let state = ws.host.tcp.conn(id).map(|c| c.state());
        self.got.len() == expect
            && self.closed
            && (state == Some(State::TimeWait) || ws.closed(id) == Some(CloseReason::Normal))
    }
}

/// The smoltcp end's application (as in `smoltcp_peer.rs`).
struct SmolEnd {
    host: SmolId,
    sock: SocketHandle,
    out: Vec<u8>,
    sent: usize,
    passive: bool,
    closed: bool,
    got: Vec<u8>,
}

impl SmolEnd {
    fn run(&mut self, sim: &mut MixedSim) {
        let host = sim.smol(self.host);
        while self.sent < self.out.len() {
            let n = host.send(self.sock, &self.out[self.sent..]);
            if n == 0 {
                break;
            }
            self.sent += n;
        }
        let peer_closed = host.state(self.sock) == TcpState::CloseWait;
        if self.sent == self.out.len()
            && !self.closed
            && host.tcp(self.sock).may_send()
            && (!self.passive || peer_closed)
        {
            host.close(self.sock);
            self.closed = true;
        }
        let mut buf = [0u8; 16 * KIB];
        loop {
            let n = host.recv(self.sock, &mut buf);
            if n == 0 {
                break;
            }
            self.got.extend_from_slice(&buf[..n]);
        }
    }

    fn finished(&self, sim: &mut MixedSim, expect: usize) -> bool {
        let state = sim.smol(self.host).state(self.sock);
        self.got.len() == expect
            && self.closed
            && matches!(state, TcpState::TimeWait | TcpState::Closed)
    }
}

/// Which end our TCP plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// What a finished transfer did (compared whole for determinism).
#[derive(Debug, PartialEq)]
struct Report {
    done_at: Instant,
    steps: u64,
    seen: [Flags; 2],
    ports: (PortStats, PortStats),
    ws_conn: Option<ConnStats>,
    smol_state: TcpState,
}

/// A transfer that did not finish in time.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Stalled {
    /// Bytes received by our TCP and by smoltcp.
    got: (usize, usize),
    ws_state: Option<State>,
    ws_closed: Option<CloseReason>,
    smol_state: TcpState,
    /// When each host wanted to run next, at the deadline.
    wakes: (Option<Instant>, Option<Instant>),
    seen: [Flags; 2],
    ws_conn: Option<ConnStats>,
}

impl Stalled {
    /// The smoltcp 0.14 bug of `support/smol.rs`: a smoltcp socket whose
    /// FIN is out and unacknowledged, all its data through, and nothing
    /// scheduled.
    fn smoltcp_fin_bug(&self) -> bool {
        matches!(
            self.smol_state,
            TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck
        ) && self.wakes.1.is_none()
            && self.seen[1].fin >= 1
    }
}

/// `len` bytes each way between our TCP in `role` and smoltcp, both ports
/// applying `imp`, within `max` virtual time.
fn try_transfer(
    role: Role,
    seed: u64,
    imp: Impairment,
    len: usize,
    max: Duration,
) -> Result<Report, Box<Stalled>> {
    let mut sim = MixedSim::new(seed);
    let seen = watch_tcp(sim.wire());
    let s = sim
        .add_smol_with(SmolHostConfig {
            port: MemPortConfig {
                impairment: imp,
                ..MemPortConfig::new(mac(SMOL))
            },
            seed: seed ^ 0x5eed,
            ..SmolHostConfig::new(mac(SMOL), cidr(SMOL))
        })
        .unwrap();
    let ws = Rc::new(RefCell::new(Ws::new(sim.wire(), imp, sim.now())));
    sim.add_participant(Box::new(Rc::clone(&ws)));

    let now = sim.now();
    let (ws_id, sock) = match role {
        Role::Client => {
            let sock = sim.smol(s).listen(SERVER_PORT);
            let id = ws
                .borrow_mut()
                .host
                .connect(now, (ip(SMOL), SERVER_PORT), Some(CLIENT_PORT))
                .expect("connect");
            (Some(id), sock)
        }
        Role::Server => {
            ws.borrow_mut()
                .host
                .listen(SERVER_PORT, ListenConfig::default())
                .expect("listen");
            let sock = sim
                .smol(s)
                .connect(SocketAddrV4::new(ip(WS), SERVER_PORT), CLIENT_PORT);
            (None, sock)
        }
    };
    ws.borrow_mut().host.flush(now);
    let mut we = WsEnd {
        id: ws_id,
        out: pattern(seed ^ 0xa, len),
        sent: 0,
        passive: role == Role::Server,
        closed: false,
        got: Vec::new(),
        stats: None,
    };
    let mut se = SmolEnd {
        host: s,
        sock,
        out: pattern(seed ^ 0xb, len),
        sent: 0,
        passive: role == Role::Client,
        closed: false,
        got: Vec::new(),
    };

    let done_at = sim.run_until(
        |sim| {
            let now = sim.now();
            we.run(&mut ws.borrow_mut(), now);
            se.run(sim);
            we.finished(&ws.borrow(), len) && se.finished(sim, len)
        },
        max,
    );
    let ws_conn = we.stats;
    let smol_state = sim.smol(s).state(sock);
    let Some(done_at) = done_at else {
        let now = sim.now();
        let w = ws.borrow();
        return Err(Box::new(Stalled {
            got: (we.got.len(), se.got.len()),
            ws_state: we.id.and_then(|id| w.host.tcp.conn(id).map(|c| c.state())),
            ws_closed: we.id.and_then(|id| w.closed(id)),
            smol_state,
            wakes: (w.host.poll_at(), sim.smol(s).poll_at(now)),
            seen: *seen.lock().unwrap(),
            ws_conn,
        }));
    };

    // The data, exactly.
    assert!(we.got == se.out, "smoltcp to wirespeed corrupted");
    assert!(se.got == we.out, "wirespeed to smoltcp corrupted");
    // An orderly close: a FIN each way, no RST anywhere.
    let seen = *seen.lock().unwrap();
    for f in &seen {
        assert!(f.syn >= 1 && f.fin >= 1 && f.rst == 0, "{seen:?}");
    }
    assert_eq!(sim.smol(s).device().oversize(), 0);
    let w = ws.borrow();
    assert_eq!(w.host.tcp.stats().rst_sent, 0);
    assert_eq!(w.host.send_errors(), 0);
    assert_eq!(w.host.dropped_events(), 0);
    let ports = (w.host.lp.dev.stats(), sim.smol(s).device().mem().stats());
    Ok(Report {
        done_at,
        steps: sim.steps(),
        seen,
        ports,
        ws_conn,
        smol_state,
    })
}

fn transfer(role: Role, seed: u64, imp: Impairment, len: usize, max: Duration) -> Report {
    match try_transfer(role, seed, imp, len, max) {
        Ok(r) => r,
        Err(e) => panic!(
            "{role:?}, seed {seed}: {len} bytes each way not done within {max:?} \
             (smoltcp FIN bug: {}): {e:?}",
            e.smoltcp_fin_bug()
        ),
    }
}

/// A 100 Mbit/s link with 1 ms delay; jitter below a frame's serialisation
/// time (121 µs), reordering from `reorder` (see `smoltcp_peer.rs`: larger
/// jitter shuffles whole windows and smoltcp barely progresses).
fn lossy(loss: f64, reorder: f64, jitter_us: u64) -> Impairment {
    Impairment {
        loss,
        reorder,
        delay: Duration::from_millis(1),
        jitter: Duration::from_micros(jitter_us),
        rate_bps: Some(100_000_000),
        ..Impairment::NONE
    }
}

const SIZES: [usize; 3] = [1, 64 * KIB, MIB];

fn clean_both_roles(role: Role) {
    for len in SIZES {
        let r = transfer(role, 1, Impairment::NONE, len, Duration::from_secs(10));
        for p in [r.ports.0, r.ports.1] {
            assert_eq!(p.drop_loss + p.drop_too_big + p.drop_rx_full, 0, "{p:?}");
        }
        let c = r.ws_conn.expect("connection seen");
        assert_eq!(c.retransmits, 0, "{len}: {r:?}");
        // No loss, no delay: delayed-ACK timers are all that take time.
        assert!(r.done_at <= Instant::from_millis(500), "{len}: {r:?}");
    }
}

#[test]
fn clean_wire_wirespeed_client() {
    clean_both_roles(Role::Client);
}

#[test]
fn clean_wire_wirespeed_server() {
    clean_both_roles(Role::Server);
}

#[test]
fn rate_limited_wire_wirespeed_client() {
    // 1 MiB each way at 100 Mbit/s takes at least 87 ms of serialisation.
    let r = transfer(
        Role::Client,
        1,
        lossy(0.0, 0.0, 0),
        MIB,
        Duration::from_secs(10),
    );
    assert!(r.done_at >= Instant::from_millis(87), "{r:?}");
}

fn lossy_both_roles(role: Role, imp: Impairment, seeds: &[u64], max: Duration) {
    for &seed in seeds {
        for len in SIZES {
            let r = transfer(role, seed, imp, len, max);
            let c = r.ws_conn.unwrap_or_default();
            eprintln!(
                "{role:?} seed {seed} {len} B: done at {:?}, ours: {} retransmits \
                 ({} fast, {} RTO), smoltcp ends {:?}",
                r.done_at, c.retransmits, c.fast_retransmits, c.rto_timeouts, r.smol_state
            );
            if len == MIB {
                assert!(r.ports.0.drop_loss > 0 && r.ports.1.drop_loss > 0, "{r:?}");
                assert!(r.ports.0.reordered + r.ports.1.reordered > 0, "{r:?}");
            }
        }
    }
}

#[test]
fn loss_1pct_reorder_wirespeed_client() {
    lossy_both_roles(
        Role::Client,
        lossy(0.01, 0.01, 50),
        &[1, 2, 3],
        Duration::from_secs(120),
    );
}

#[test]
fn loss_1pct_reorder_wirespeed_server() {
    lossy_both_roles(
        Role::Server,
        lossy(0.01, 0.01, 50),
        &[1, 2, 3],
        Duration::from_secs(120),
    );
}

#[test]
fn loss_5pct_reorder_wirespeed_client() {
    lossy_both_roles(
        Role::Client,
        lossy(0.05, 0.02, 100),
        &[1, 2, 3],
        Duration::from_secs(300),
    );
}

#[test]
fn loss_5pct_reorder_wirespeed_server() {
    lossy_both_roles(
        Role::Server,
        lossy(0.05, 0.02, 100),
        &[1, 2, 3],
        Duration::from_secs(300),
    );
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        transfer(
            Role::Client,
            seed,
            lossy(0.05, 0.02, 100),
            MIB / 4,
            Duration::from_secs(300),
        )
    };
    let one = run(2);
    assert_eq!(one, run(2));
    assert_ne!(one.done_at, run(3).done_at);
}

/// Many seeds at once, every failure classified (run by hand:
/// `INTEROP_SEEDS=40 cargo test --test smoltcp_interop -- --ignored
/// --nocapture seed_sweep`). The fixed seeds above were not picked from
/// it: they are 1, 2 and 3.
#[test]
#[ignore = "a 320-run seed sweep, run by hand: INTEROP_SEEDS=40"]
fn seed_sweep() {
    let n: u64 = std::env::var("INTEROP_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let cases = [
        ("1%", lossy(0.01, 0.01, 50), Duration::from_secs(120)),
        ("5%", lossy(0.05, 0.02, 100), Duration::from_secs(300)),
    ];
    let (mut runs, mut ok, mut smol_bug, mut other) = (0, 0, 0, Vec::new());
    for (name, imp, max) in cases {
        for role in [Role::Client, Role::Server] {
            for seed in 1..=n {
                for len in [64 * KIB, MIB] {
                    runs += 1;
                    match try_transfer(role, seed, imp, len, max) {
                        Ok(_) => ok += 1,
                        Err(e) if e.smoltcp_fin_bug() => smol_bug += 1,
                        Err(e) => other.push(format!("{name} {role:?} seed {seed} {len}: {e:?}")),
                    }
                }
            }
        }
    }
    eprintln!(
        "{runs} runs: {ok} ok, {smol_bug} smoltcp FIN bug, {} other",
        other.len()
    );
    for o in &other {
        eprintln!("{o}");
    }
    assert!(other.is_empty());
}
