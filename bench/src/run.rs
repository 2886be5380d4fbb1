//! Entry points of the per-core runtime for `serve` and `load`.
//!
//! `load` on the `mem` port builds the threaded in-memory link
//! ([`wirespeed::port::link`]) with the load generator on one port and a
//! built-in server of the matching kind on the other, each side on its own
//! half of the cores: the whole test in one process, no privileges. On a
//! `tap:NAME` port it runs against whatever answers at `--target`.
//!
//! The main thread only collects: each worker sends one statistics
//! interval per second over a channel, the collector merges them (live
//! line, interval log) and, once every worker has stopped, the summary and
//! the reports are written.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use wirespeed::net::{InterfaceConfig, Ipv4Cidr as EngineCidr, Route};
use wirespeed::port::link::{link_pair, LinkDevice, LinkPortConfig};
use wirespeed::port::{AfXdpConfig, AfXdpDevice, AfXdpPort, Device, TapDevice};
use wirespeed::rt::{Runtime, WorkerConfig, WorkerSetup, WorkerSnapshot};
use wirespeed::tcp::TcpConfig;
use wirespeed::time::{Duration, Instant};
use wirespeed::wire::EthernetAddress;

use crate::args::{Ipv4Cidr, LoadArgs, LoadMode, PortSpec, ServeArgs, ServeMode};
use crate::collect::{conclude_load, Collector};
use crate::hlog::HlogSink;
use crate::load::{LoadClient, LoadPlan};
use crate::report::Live;
use crate::serve::Server;
use crate::stats::Interval;

/// Frames that may wait for one neighbour's ARP reply: a load generator
/// opens all its connections at once.
const ARP_QUEUE: usize = 65536;

/// How long outstanding operations may finish after the load stops.
const GRACE: Duration = Duration::from_secs(2);

const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0x77, 0x73, 0, 0, 0x01]);
const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0x77, 0x73, 0, 0, 0x02]);

/// The server a load mode runs against on the in-memory link.
pub fn server_for(mode: LoadMode) -> ServeMode {
    match mode {
        LoadMode::Http => ServeMode::Http,
        LoadMode::Echo | LoadMode::Connect => ServeMode::Echo,
        LoadMode::Bulk => ServeMode::Discard,
    }
}

fn engine_cidr(c: Ipv4Cidr) -> anyhow::Result<EngineCidr> {
    EngineCidr::new(c.addr, c.prefix_len).map_err(|_| anyhow::anyhow!("bad prefix in {c}"))
}

/// TCP settings of the load generator: no Nagle (requests go out at once),
/// TIME-WAIT reuse for connection churn, the rest Linux-like.
fn client_tcp() -> TcpConfig {
    TcpConfig {
        nodelay: true,
        time_wait_reuse: true,
        ..TcpConfig::default()
    }
}

/// TCP settings of the server emulator.
fn server_tcp() -> TcpConfig {
    TcpConfig {
        nodelay: true,
        time_wait_reuse: true,
        ..TcpConfig::default()
    }
}

/// Cores to pin `n` workers to, starting at `first`, wrapping over the
/// online cores.
fn pins(first: usize, n: usize) -> Vec<usize> {
    let online = core_affinity::get_core_ids().map_or(0, |v| v.len());
    if online == 0 {
        return Vec::new();
    }
    (0..n).map(|i| (first + i) % online).collect()
}

/// Splits `total` over `n` workers; worker `i` gets its share.
fn share(total: usize, n: usize, i: usize) -> usize {
    total / n + usize::from(i < total % n)
}

/// Opens an AF_XDP port for `cores` workers and says what it set up.
fn open_af_xdp(config: &AfXdpConfig, cores: usize) -> anyhow::Result<Vec<AfXdpDevice>> {
    let mut c = config.clone();
    if usize::from(c.queues) != cores {
        if c.queues != 1 {
            bail!(
                "--cores {cores}: the port has queues={} (accepted: --cores {})",
                c.queues,
                c.queues
            );
        }
        c.queues = u16::try_from(cores).context("--cores: too many for one port")?;
    }
    let port = AfXdpPort::open(&c)
        .with_context(|| format!("--port af_xdp:{}: opening the AF_XDP port", c.iface))?;
    eprintln!("{}", port.info);
    Ok(port.devices)
}

/// Opens a DPDK port for `cores` workers, pinned to the EAL's `-l` cores
/// when it names them, and says what it set up.
#[cfg(feature = "dpdk")]
fn open_dpdk(
    spec: &str,
    cores: usize,
) -> anyhow::Result<(Vec<wirespeed::port::dpdk::DpdkDevice>, Vec<usize>)> {
    use wirespeed::port::dpdk::{DpdkConfig, DpdkPort};
    let mut c = DpdkConfig::parse(spec).map_err(|e| anyhow::anyhow!("--port dpdk:{spec}: {e}"))?;
    if usize::from(c.queues) != cores {
        if c.queues != 1 {
            bail!(
                "--cores {cores}: the port has queues={} (accepted: --cores {})",
                c.queues,
                c.queues
            );
        }
        c.queues = u16::try_from(cores).context("--cores: too many for one port")?;
    }
    let pinned = match crate::units::eal_cores(&c.eal_args)
        .map_err(|e| anyhow::anyhow!("--port dpdk:{spec}: -l {e}"))?
    {
        Some(list) if list.len() < cores => bail!(
            "--port dpdk:{spec}: -l names {} core(s) for {cores} worker(s) (accepted: at least one core per worker)",
            list.len()
        ),
        Some(list) => list[..cores].to_vec(),
        None => pins(0, cores),
    };
    let port =
        DpdkPort::open(&c).with_context(|| format!("--port dpdk:{spec}: opening the DPDK port"))?;
    eprintln!("{}", port.info);
    Ok((port.devices, pinned))
}

#[cfg(not(feature = "dpdk"))]
fn open_dpdk(spec: &str, _cores: usize) -> anyhow::Result<(Vec<TapDevice>, Vec<usize>)> {
    bail!(
        "--port dpdk:{spec}: this build has no DPDK port; build with \
         `cargo build --release -p wirespeed-bench --features dpdk` (needs the system's DPDK, \
         which deploy/test.sh installs)"
    )
}

/// Waits (at most 10 s) for the port's link to come up before a load
/// starts: frames sent while it is down are lost (a memif client's link
/// comes up once the server side answers), and the first SYNs would wait
/// out a retransmission timeout. A server does not wait: its link comes up
/// when its peers arrive.
fn wait_link_up<D: Device>(devices: &[D]) {
    let Some(first) = devices.first() else {
        return;
    };
    let link_up = |d: &D| {
        let mut c = Vec::new();
        d.counters(&mut c);
        c.iter().find(|(k, _)| k == "link_up").map(|(_, v)| *v != 0)
    };
    let t0 = std::time::Instant::now();
    while link_up(first) == Some(false) {
        if t0.elapsed() > std::time::Duration::from_secs(10) {
            eprintln!("warning: the link is still down after 10 s; starting anyway");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs `wirespeed serve`.
pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    match &args.port {
        PortSpec::Tap { name } => {
            if args.cores > 1 {
                bail!(
                    "--cores {}: a tap port has one queue (accepted: 1 with tap)",
                    args.cores
                );
            }
            let dev = TapDevice::open(name, SERVER_MAC, 1500)
                .with_context(|| format!("--port tap:{name}: opening the TAP device"))?;
            serve_on(args, vec![dev], &pins(0, 1))
        }
        PortSpec::AfXdp(c) => serve_on(args, open_af_xdp(c, args.cores)?, &pins(0, args.cores)),
        PortSpec::Dpdk { spec, .. } => {
            let (devices, cores) = open_dpdk(spec, args.cores)?;
            serve_on(args, devices, &cores)
        }
        PortSpec::Mem => bail!(
            "--port mem: serve needs a port other programs reach (accepted: tap:NAME, af_xdp:IFACE); \
             `wirespeed load` runs its own server on the in-memory wire"
        ),

    }
}

fn serve_on<D>(args: &ServeArgs, queues: Vec<D>, cores: &[usize]) -> anyhow::Result<ExitCode>
where
    D: Device + Send + 'static,
    D::Buf: Send,
{
    let start = Instant::now_monotonic();
    let end = args
        .duration
        .map(|d| start + Duration::from_nanos(d.as_nanos() as u64));
    let (tx, rx) = mpsc::channel::<Interval>();
    let ip = engine_cidr(args.ip)?;
    let gateway = args.gateway;
    let (mode, listen, body) = (args.mode, args.listen, args.body_size);
    let workers = queues.len();
    let rt = Runtime::start(queues, cores, end, move |_, caps| {
        let mut iface = InterfaceConfig::new(caps.mac, ip);
        iface.gateway = gateway;
        Ok(WorkerSetup {
            iface,
            tcp: server_tcp(),
            worker: WorkerConfig::default(),
            handler: Server::new(mode, listen, body, Some(tx.clone()), start, end),
        })
    })?;
    let stop = rt.stop_flag();
    ctrlc_stop(stop);
    let mut collector: Collector = Collector::new(
        workers,
        SystemTime::now(),
        std::time::Duration::from_secs(1),
        Some(Live::stderr(args.duration)),
        None,
    );
    drain(&rx, &mut collector, || rt.is_finished())?;
    let mut engine = Vec::new();
    for r in rt.join() {
        let mut r = r?;
        r.handler.finish();
        engine.push(r.stats);
    }
    while let Ok(iv) = rx.try_recv() {
        collector.push(iv)?;
    }
    let totals = collector.finish()?;
    println!(
        "served {} requests on {} connections; {}",
        totals.counters.requests,
        totals.counters.connections_opened,
        engine_line(&WorkerSnapshot::total(&engine))
    );
    Ok(ExitCode::SUCCESS)
}

/// Stops the workers on SIGINT/SIGTERM.
fn ctrlc_stop(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let _ = ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::Relaxed));
}

/// Feeds intervals to the collector until `finished` says the workers are
/// done.
fn drain(
    rx: &mpsc::Receiver<Interval>,
    collector: &mut Collector,
    finished: impl Fn() -> bool,
) -> anyhow::Result<()> {
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(iv) => collector.push(iv)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if finished() {
                    return Ok(());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

fn engine_line(t: &WorkerSnapshot) -> String {
    let mut line = format!(
        "engine: {} frames in, {} out, {} retransmits, {} RSTs sent, {} segments steered",
        t.net.eth_rx_frames, t.net.eth_tx_frames, t.retransmits, t.tcp.rst_sent, t.run.steered_out
    );
    // The port driver's counters (AF_XDP, DPDK), the non-zero ones.
    let device: Vec<String> = t
        .device
        .iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !device.is_empty() {
        line.push_str("\ndevice: ");
        line.push_str(&device.join(", "));
    }
    line
}

/// Runs `wirespeed load`.
pub fn load(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    match &args.port {
        PortSpec::Mem => {
            let clients = (args.cores / 2).max(1);
            let servers = (args.cores - clients.min(args.cores)).max(1);
            let a = LinkPortConfig::new(CLIENT_MAC, clients as u16);
            let b = LinkPortConfig::new(SERVER_MAC, servers as u16);
            let (cq, sq) = link_pair(&a, &b).context("building the in-memory link")?;
            let server = start_builtin_server(args, sq, clients)?;
            let result = run_load(args, cq, &pins(0, clients));
            server.stop();
            for r in server.join() {
                r?;
            }
            result
        }
        PortSpec::Tap { name } => {
            if args.cores > 1 {
                bail!(
                    "--cores {}: a tap port has one queue (accepted: 1 with tap)",
                    args.cores
                );
            }
            let dev = TapDevice::open(name, CLIENT_MAC, 1500)
                .with_context(|| format!("--port tap:{name}: opening the TAP device"))?;
            run_load(args, vec![dev], &pins(0, 1))
        }
        PortSpec::AfXdp(c) => run_load(args, open_af_xdp(c, args.cores)?, &pins(0, args.cores)),
        PortSpec::Dpdk { spec, .. } => {
            let (devices, cores) = open_dpdk(spec, args.cores)?;
            wait_link_up(&devices);
            run_load(args, devices, &cores)
        }
    }
}

/// The server the in-memory run loads: at `--target`, on the other half of
/// the cores, with a route back to the load generator's source addresses.
fn start_builtin_server(
    args: &LoadArgs,
    queues: Vec<LinkDevice>,
    first_core: usize,
) -> anyhow::Result<Runtime<Server<LinkDevice>>> {
    let target = *args.target.ip();
    let client_net = engine_cidr(args.ip)?;
    let server_ip = EngineCidr::new(target, client_net.prefix_len)
        .map_err(|_| anyhow::anyhow!("--target {}: bad address", args.target))?;
    if server_ip.network() != client_net.network() {
        bail!(
            "--target {}: on the mem port the built-in server must be on --ip's subnet {}",
            args.target,
            client_net.network()
        );
    }
    if target == client_net.addr {
        bail!("--target {}: the same address as --ip", args.target);
    }
    let src = args.src_ips;
    // Source addresses outside the shared subnet are reached through the
    // load generator's main address.
    let via = client_net.addr;
    let extra: Vec<Route> = if src.start == client_net.addr && src.end == client_net.addr {
        Vec::new()
    } else {
        covering(src.start, src.end)
            .into_iter()
            .filter(|c| c.network() != client_net.network() || c.prefix_len < client_net.prefix_len)
            .map(|dest| Route {
                dest,
                via: Some(via),
            })
            .collect()
    };
    let mode = server_for(args.mode);
    let port = args.target.port();
    let workers = queues.len();
    let start = Instant::now_monotonic();
    let rt = Runtime::start(queues, &pins(first_core, workers), None, move |_, caps| {
        let mut iface = InterfaceConfig::new(caps.mac, server_ip);
        iface.routes = extra.clone();
        iface.arp.queue_len = ARP_QUEUE;
        Ok(WorkerSetup {
            iface,
            tcp: server_tcp(),
            worker: WorkerConfig::default(),
            handler: Server::new(mode, port, 64, None, start, None),
        })
    })?;
    Ok(rt)
}

/// The fewest CIDR blocks covering `start..=end`.
fn covering(start: Ipv4Addr, end: Ipv4Addr) -> Vec<EngineCidr> {
    let (mut lo, hi) = (u64::from(u32::from(start)), u64::from(u32::from(end)));
    let mut out = Vec::new();
    while lo <= hi {
        let mut size = if lo == 0 {
            1u64 << 32
        } else {
            lo & lo.wrapping_neg()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        let prefix = 32 - size.trailing_zeros() as u8;
        if let Ok(c) = EngineCidr::new(Ipv4Addr::from(lo as u32), prefix) {
            out.push(c);
        }
        lo += size;
    }
    out
}

fn run_load<D>(args: &LoadArgs, queues: Vec<D>, cores: &[usize]) -> anyhow::Result<ExitCode>
where
    D: Device + Send + 'static,
    D::Buf: Send,
{
    let workers = queues.len();
    let (tx, rx) = mpsc::channel::<Interval>();
    let client_net = engine_cidr(args.ip)?;
    let gateway = args.gateway;
    let sources: Vec<Ipv4Addr> = (u32::from(args.src_ips.start)..=u32::from(args.src_ips.end))
        .map(Ipv4Addr::from)
        .collect();
    let start = Instant::now_monotonic() + Duration::from_millis(20);
    let duration = Duration::from_nanos(args.duration.as_nanos() as u64);
    let end = start + duration;
    let base = LoadPlan {
        mode: args.mode,
        target: (*args.target.ip(), args.target.port()),
        connections: args.connections,
        rate: args.rate,
        per_request_conn: args.new_conn_per_request || args.mode == LoadMode::Connect,
        size: args.size,
        pipeline: args.pipeline.max(1),
        path: args.path.clone(),
        start,
        end,
        grace: GRACE,
    };
    let wall_start = SystemTime::now();
    let rt = Runtime::start(
        queues,
        cores,
        Some(end + GRACE + Duration::from_secs(1)),
        move |i, caps| {
            let mut iface = InterfaceConfig::new(caps.mac, client_net);
            iface.gateway = gateway;
            // Every connection's SYN may wait for the first ARP reply.
            iface.arp.queue_len = ARP_QUEUE;
            for &a in &sources {
                if a != client_net.addr {
                    iface
                        .addrs
                        .push(EngineCidr::new(a, 32).map_err(|e| format!("{a}: {e:?}"))?);
                }
            }
            let mut plan = base.clone();
            plan.connections = share(base.connections, workers, i);
            plan.rate = base.rate.map(|r| r / workers as f64);
            let worker = WorkerConfig {
                source_addrs: sources.clone(),
                ..WorkerConfig::default()
            };
            Ok(WorkerSetup {
                iface,
                tcp: client_tcp(),
                worker,
                handler: LoadClient::new(plan, Some(tx.clone())),
            })
        },
    )?;
    ctrlc_stop(rt.stop_flag());
    let hlog = match &args.hlog {
        Some(p) => Some(
            HlogSink::create(p, wall_start)
                .with_context(|| format!("--hlog {}: creating the log", p.display()))?,
        ),
        None => None,
    };
    let mut collector: Collector = Collector::new(
        workers,
        wall_start,
        std::time::Duration::from_secs(1),
        Some(Live::stderr(Some(args.duration))),
        hlog,
    );
    drain(&rx, &mut collector, || rt.is_finished())?;
    let mut engine = Vec::new();
    let mut local_errors = 0;
    for r in rt.join() {
        let mut r = r?;
        r.handler.finish();
        local_errors += r.handler.local_connect_errors;
        engine.push(r.stats);
    }
    while let Ok(iv) = rx.try_recv() {
        collector.push(iv)?;
    }
    let elapsed = Instant::now_monotonic().saturating_since(start);
    let totals = collector.finish()?;
    let measured = elapsed.min(duration);
    let mut out = std::io::stdout().lock();
    let (_report, outcome) = conclude_load(args, &totals, measured, &mut out)?;
    let total = WorkerSnapshot::total(&engine);
    use std::io::Write as _;
    let _ = writeln!(out, "{}", engine_line(&total));
    if local_errors > 0 {
        let _ = writeln!(
            out,
            "{local_errors} connection attempts found no free source port (add --src-ips)"
        );
    }
    Ok(outcome.exit_code())
}
