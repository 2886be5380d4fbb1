//! What the example applications share: the in-process demo (a server and
//! its built-in client on the two ends of the threaded in-memory link),
//! serving on a Linux TAP device, and command-line flags.
//!
//! Included with `#[path]` by each example and by `tests/examples.rs`.
// Each example uses part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use wirespeed::api::Handler;
use wirespeed::net::{Interface, InterfaceConfig, Ipv4Cidr};
use wirespeed::port::link::{link_pair, LinkDevice, LinkPortConfig};
use wirespeed::port::tap::TapDevice;
use wirespeed::port::Device;
use wirespeed::rt::{
    random_secret, CrossCore, IdlePolicy, Runtime, Worker, WorkerConfig, WorkerResult, WorkerSetup,
    WorkerSnapshot,
};
use wirespeed::tcp::{TcpConfig, TcpStack};
use wirespeed::wire::EthernetAddress;
use wirespeed::{Duration, Instant};

/// The demo server's address (RFC 2544 benchmarking range).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The demo client's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// A locally administered MAC ending in `n`.
pub fn mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x53, n])
}

/// TCP settings of request/response servers: defaults without Nagle's
/// algorithm (RFC 9293 §3.7.4 lets an application turn it off), which
/// would hold an answer's last partial segment until the client's delayed
/// ACK of the ones before (40 ms per pipelined batch).
pub fn server_tcp() -> TcpConfig {
    TcpConfig {
        nodelay: true,
        ..TcpConfig::default()
    }
}

/// TCP settings of the demos: [`server_tcp`] with a short TIME-WAIT so a
/// run does not wait on it.
pub fn demo_tcp() -> TcpConfig {
    TcpConfig {
        msl: Duration::from_millis(50),
        ..server_tcp()
    }
}

/// Loop settings of the demos: spin a little when idle, then sleep in
/// short naps, so the two sides share a machine with fewer cores than
/// busy-polling threads.
pub fn demo_worker() -> WorkerConfig {
    WorkerConfig {
        idle: IdlePolicy::Backoff {
            spins: 256,
            max_sleep: Duration::from_micros(100),
        },
        ..WorkerConfig::default()
    }
}

/// What a demo run returns.
pub struct LinkRun<C, S> {
    /// The client side's handlers and counters, one per queue.
    pub clients: Vec<WorkerResult<C>>,
    /// The server side's.
    pub servers: Vec<WorkerResult<S>>,
    /// From the start of the runtimes to the end of the last client
    /// (TIME-WAIT included).
    pub elapsed: std::time::Duration,
}

/// Runs `server(queue)` handlers on one end of a threaded in-memory link
/// (198.18.0.2) and `client(queue)` handlers on the other (198.18.0.1),
/// `queues` queues each, until every client is done or `limit` passes;
/// then stops the servers. The servers run with `server_tcp`, the clients
/// with [`demo_tcp`]; the clients start once `server_ready` returns (at
/// once for servers that listen in `on_start`).
pub fn run_on_link<C, S>(
    queues: u16,
    limit: Duration,
    server_tcp: TcpConfig,
    server: impl Fn(usize) -> S + Send + Sync + 'static,
    server_ready: impl FnOnce() -> Result<(), String>,
    client: impl Fn(usize) -> C + Send + Sync + 'static,
) -> Result<LinkRun<C, S>, String>
where
    C: Handler<LinkDevice> + Send + 'static,
    S: Handler<LinkDevice> + Send + 'static,
{
    let (client_q, server_q) = link_pair(
        &LinkPortConfig::new(mac(1), queues),
        &LinkPortConfig::new(mac(2), queues),
    )
    .map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    let deadline = Instant::now_monotonic() + limit;
    let setup = |addr: Ipv4Addr| {
        move |mac: EthernetAddress| {
            let cidr = Ipv4Cidr::new(addr, 24).map_err(|e| e.to_string())?;
            let mut config = InterfaceConfig::new(mac, cidr);
            // Every SYN of the first burst waits on one ARP resolution;
            // beyond the default queue of 3 they would be dropped and
            // retried a second later (RFC 6298 initial RTO).
            config.arp.queue_len = 1024;
            Ok::<_, String>(config)
        }
    };
    let (server_iface, client_iface) = (setup(SERVER_IP), setup(CLIENT_IP));
    let servers = Runtime::start(server_q, &[], Some(deadline), move |i, caps| {
        Ok(WorkerSetup {
            iface: server_iface(caps.mac)?,
            tcp: server_tcp,
            worker: demo_worker(),
            handler: server(i),
        })
    })
    .map_err(|e| e.to_string())?;
    if let Err(e) = server_ready() {
        servers.stop();
        let _ = servers.join();
        return Err(e);
    }
    let clients = match Runtime::start(client_q, &[], Some(deadline), move |i, caps| {
        Ok(WorkerSetup {
            iface: client_iface(caps.mac)?,
            tcp: demo_tcp(),
            worker: demo_worker(),
            handler: client(i),
        })
    }) {
        Ok(c) => c,
        Err(e) => {
            servers.stop();
            let _ = servers.join();
            return Err(e.to_string());
        }
    };
    let clients = clients.join();
    let elapsed = start.elapsed();
    servers.stop();
    let servers = servers.join();
    Ok(LinkRun {
        clients: clients
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
        servers: servers
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
        elapsed,
    })
}

/// Hands a value built before the runtime to the one worker that takes it
/// (a factory is `Fn`, the value is not `Clone`).
pub fn once<T>(value: T) -> impl Fn(usize) -> T + Send + Sync
where
    T: Send,
{
    let slot = Mutex::new(Some(value));
    move |_| {
        slot.lock()
            .ok()
            .and_then(|mut s| s.take())
            .expect("one worker takes the value")
    }
}

/// Where and how long to serve on a TAP device.
#[derive(Debug, Clone)]
pub struct TapOptions {
    /// The TAP interface to create.
    pub tap: String,
    /// The engine's address on it.
    pub ip: Ipv4Cidr,
    /// The engine's MAC.
    pub mac: EthernetAddress,
    /// Default gateway, if any.
    pub gateway: Option<Ipv4Addr>,
    /// How long to serve.
    pub duration: Duration,
}

impl TapOptions {
    /// `--tap`, `--ip`, `--mac`, `--gateway`, `--duration` from `flags`;
    /// `None` when `--tap` is not given.
    pub fn from_flags(flags: &Flags) -> Result<Option<TapOptions>, String> {
        let Some(tap) = flags.str("--tap") else {
            return Ok(None);
        };
        let ip = flags
            .str("--ip")
            .ok_or("--tap needs --ip ADDR/LEN")?
            .parse::<Ipv4Cidr>()
            .map_err(|e| format!("--ip: {e}"))?;
        let mac = match flags.str("--mac") {
            Some(m) => parse_mac(m).ok_or("--mac: expected a unicast MAC, xx:xx:xx:xx:xx:xx")?,
            None => mac(2),
        };
        let gateway = match flags.str("--gateway") {
            Some(g) => Some(
                g.parse()
                    .map_err(|_| "--gateway: expected an IPv4 address")?,
            ),
            None => None,
        };
        let secs: u64 = flags.get("--duration", 60, "seconds, 1-3600", |s| {
            (1..=3600).contains(s)
        })?;
        Ok(Some(TapOptions {
            tap: tap.to_owned(),
            ip,
            mac,
            gateway,
            duration: Duration::from_secs(secs),
        }))
    }
}

fn parse_mac(s: &str) -> Option<EthernetAddress> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2))
        .collect::<Option<_>>()?;
    let mac = EthernetAddress(parts.try_into().ok()?);
    mac.is_unicast().then_some(mac)
}

/// Serves `handler` on a new TAP device for `o.duration` or until `stop`
/// is set, in the calling thread (which must be in the namespace the TAP
/// is to live in); calls `ready` once the TAP is up. Returns the handler
/// and the worker's counters.
pub fn serve_tap<H: Handler<TapDevice>>(
    o: &TapOptions,
    handler: H,
    stop: &AtomicBool,
    ready: impl FnOnce(),
) -> Result<(H, WorkerSnapshot), String> {
    let dev = TapDevice::open(&o.tap, o.mac, 1500)
        .and_then(|d| d.set_up().map(|()| d))
        .map_err(|e| format!("TAP {:?}: {e}", o.tap))?;
    let now = Instant::now_monotonic();
    let mut config = InterfaceConfig::new(o.mac, o.ip);
    config.gateway = o.gateway;
    let iface = Interface::new(config, now).map_err(|e| e.to_string())?;
    let tcp = TcpStack::new(server_tcp(), dev.caps().checksum, random_secret(), now);
    let mut w = Worker::new(
        iface,
        dev,
        tcp,
        handler,
        WorkerConfig::throughput(),
        CrossCore::default(),
    );
    ready();
    w.run(stop, Some(now + o.duration));
    let stats = WorkerSnapshot::of(&w.core);
    Ok((w.handler, stats))
}

/// Command-line flags: `--name value` pairs and `--name` switches.
#[derive(Debug, Default)]
pub struct Flags {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Flags {
    /// Parses `args`: flags in `with_value` take the next argument, those
    /// in `switches` none; anything else is an error naming the accepted
    /// flags, and `--help` returns `usage`.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        usage: &str,
        with_value: &[&str],
        switches: &[&str],
    ) -> Result<Flags, String> {
        let mut f = Flags::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Err(usage.to_owned());
            }
            if switches.contains(&flag.as_str()) {
                f.switches.push(flag);
            } else if with_value.contains(&flag.as_str()) {
                let v = args
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value\n{usage}"))?;
                f.values.insert(flag, v);
            } else {
                let mut all: Vec<&str> = with_value.to_vec();
                all.extend_from_slice(switches);
                return Err(format!(
                    "unknown flag {flag:?}: accepted {}\n{usage}",
                    all.join(", ")
                ));
            }
        }
        Ok(f)
    }

    /// The value of `name`, if given.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether switch `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// The value of `name` parsed and checked by `ok`, or `default`.
    pub fn get<T: FromStr>(
        &self,
        name: &str,
        default: T,
        accepted: &str,
        ok: impl Fn(&T) -> bool,
    ) -> Result<T, String> {
        match self.str(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .ok()
                .filter(|x| ok(x))
                .ok_or_else(|| format!("{name} {v:?} is invalid: expected {accepted}")),
        }
    }
}

/// Byte `i` of the demo clients' data on connection seed `seed`: a
/// pattern in which a lost, repeated or reordered byte shows.
pub fn pattern_byte(seed: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8) ^ seed
}

/// `len` bytes of the pattern from offset `from`.
pub fn pattern(seed: u8, from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| pattern_byte(seed, i)).collect()
}

/// Megabytes (10⁶ bytes) per second.
pub fn mbytes_per_s(bytes: u64, took: std::time::Duration) -> f64 {
    bytes as f64 / took.as_secs_f64().max(1e-9) / 1e6
}
