//! The engine as a host on a Linux TAP device: it answers ARP and ping for
//! its address, for a bounded time, then prints its counters.
//!
//! ```text
//! # as root, in a namespace of your own:
//! ip netns add wsdemo
//! ip netns exec wsdemo cargo run --release -p wirespeed --example tap_host -- \
//!     --tap wsdemo0 --ip 198.18.0.2/24 --duration 30 --pcap /tmp/engine.pcap &
//! ip -n wsdemo addr add 198.18.0.1/24 dev wsdemo0; ip -n wsdemo link set wsdemo0 up
//! ip netns exec wsdemo ping -c 5 198.18.0.2
//! ```
//!
//! The TAP's kernel side (given 198.18.0.1 above) is the Linux peer; the
//! engine owns 198.18.0.2 and its own MAC.

use std::process::ExitCode;
use std::time::Duration;

use wirespeed::net::{Interface, InterfaceConfig, Ipv4Cidr};
use wirespeed::port::pcap::{PcapDevice, PcapWriter};
use wirespeed::port::tap::TapDevice;
use wirespeed::port::Device;
use wirespeed::rt::HostLoop;
use wirespeed::wire::EthernetAddress;
use wirespeed::Instant;

const USAGE: &str =
    "usage: tap_host --tap NAME --ip ADDR/LEN [--gateway ADDR] [--mac xx:xx:xx:xx:xx:xx] \
                     [--mtu BYTES] [--duration SECONDS (1-3600)] [--pcap FILE]";

struct Options {
    tap: String,
    ip: Ipv4Cidr,
    gateway: Option<std::net::Ipv4Addr>,
    mac: EthernetAddress,
    mtu: usize,
    duration: u64,
    pcap: Option<String>,
}

fn parse_mac(s: &str) -> Option<EthernetAddress> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2))
        .collect::<Option<_>>()?;
    let bytes: [u8; 6] = parts.try_into().ok()?;
    let mac = EthernetAddress(bytes);
    mac.is_unicast().then_some(mac)
}

fn parse_args() -> Result<Options, String> {
    let (mut tap, mut ip, mut gateway, mut pcap) = (None, None, None, None);
    let mut mac = EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x53, 0x02]);
    let (mut mtu, mut duration) = (1500usize, 30u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |accepted: &str| format!("{flag} {value:?} is invalid: expected {accepted}");
        match flag.as_str() {
            "--tap" => tap = Some(value.clone()),
            "--ip" => ip = Some(value.parse::<Ipv4Cidr>().map_err(|e| format!("--ip: {e}"))?),
            "--gateway" => gateway = Some(value.parse().map_err(|_| bad("an IPv4 address"))?),
            "--mac" => mac = parse_mac(&value).ok_or_else(|| bad("a unicast MAC, xx:xx:xx:xx:xx:xx"))?,
            "--mtu" => mtu = value.parse().ok().filter(|m| (68..=9000).contains(m)).ok_or_else(|| bad("68-9000"))?,
            "--duration" => {
                duration = value
                    .parse()
                    .ok()
                    .filter(|d| (1..=3600).contains(d))
                    .ok_or_else(|| bad("seconds, 1-3600"))?
            }
            "--pcap" => pcap = Some(value.clone()),
            _ => {
                return Err(format!(
                    "unknown flag {flag:?}: accepted --tap, --ip, --gateway, --mac, --mtu, --duration, --pcap\n{USAGE}"
                ))
            }
        }
    }
    Ok(Options {
        tap: tap.ok_or_else(|| format!("--tap is required\n{USAGE}"))?,
        ip: ip.ok_or_else(|| format!("--ip is required\n{USAGE}"))?,
        gateway,
        mac,
        mtu,
        duration,
        pcap,
    })
}

/// Runs the host loop on `dev` until `deadline`, sleeping in `wait` when idle.
fn serve<D: Device>(mut host: HostLoop<D>, deadline: Instant, wait: impl Fn(&D)) -> HostLoop<D> {
    let mut delivered = Vec::new();
    loop {
        let now = Instant::now_monotonic();
        if now >= deadline {
            return host;
        }
        let progress = host.poll(now, |d| delivered.push(d.buf), |e| println!("event: {e:?}"));
        for b in delivered.drain(..) {
            host.recycle(b);
        }
        if progress.is_idle() {
            wait(&host.dev);
        }
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let dev = match TapDevice::open(&o.tap, o.mac, o.mtu).and_then(|d| d.set_up().map(|()| d)) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tap_host: cannot open TAP {:?}: {e}", o.tap);
            return ExitCode::FAILURE;
        }
    };
    let mut config = InterfaceConfig::new(o.mac, o.ip);
    config.gateway = o.gateway;
    config.mtu = o.mtu;
    let now = Instant::now_monotonic();
    let iface = match Interface::new(config, now) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("tap_host: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "engine {} ({}) on TAP {} for {} s",
        o.ip, o.mac, o.tap, o.duration
    );
    let deadline = now + Duration::from_secs(o.duration);
    let idle = Duration::from_millis(5);
    let stats = match &o.pcap {
        None => {
            let host = serve(HostLoop::new(iface, dev), deadline, |d| {
                let _ = d.wait_readable(Some(idle));
            });
            *host.iface.stats()
        }
        Some(path) => {
            let file = match std::fs::File::create(path).map(std::io::BufWriter::new) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("tap_host: cannot create {path}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let writer = match PcapWriter::new(file) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("tap_host: cannot write {path}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let host = serve(
                HostLoop::new(iface, PcapDevice::new(dev, writer)),
                deadline,
                |d| {
                    let _ = d.inner().wait_readable(Some(idle));
                },
            );
            let stats = *host.iface.stats();
            let mut dev = host.dev;
            match dev.take_error().map_or_else(|| dev.flush(), Err) {
                Ok(()) => println!("frames recorded in {path}"),
                Err(e) => eprintln!("tap_host: recording to {path} failed: {e}"),
            }
            stats
        }
    };
    for (name, value) in stats.iter().filter(|&(_, v)| v != 0) {
        println!("{name:>28} {value}");
    }
    ExitCode::SUCCESS
}
