//! Two engine hosts on the in-memory wire, one pinging the other through
//! seeded loss, delay and jitter, in virtual time: ARP resolution, ICMP echo
//! and the counters of both hosts, in well under a second of real time.
//!
//! ```text
//! cargo run --release -p wirespeed --example mem_ping -- [--count N] [--interval MS]
//!     [--size BYTES] [--loss P] [--delay MS] [--jitter MS] [--seed S]
//! ```

use std::net::Ipv4Addr;
use std::process::ExitCode;

use wirespeed::net::{InterfaceConfig, NetEvent, NetStats};
use wirespeed::port::mem::{Impairment, MemPortConfig};
use wirespeed::sim::Sim;
use wirespeed::wire::EthernetAddress;
use wirespeed::{Duration, Instant};

struct Options {
    count: u16,
    interval_ms: u64,
    size: usize,
    loss: f64,
    delay_ms: u64,
    jitter_ms: u64,
    seed: u64,
}

const USAGE: &str =
    "usage: mem_ping [--count N (1-65535)] [--interval MS] [--size BYTES (0-1472)] \
                     [--loss P (0-1)] [--delay MS] [--jitter MS] [--seed S]";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        count: 20,
        interval_ms: 100,
        size: 56,
        loss: 0.05,
        delay_ms: 10,
        jitter_ms: 2,
        seed: 1,
    };
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
            "--count" => o.count = value.parse().ok().filter(|&n| n > 0).ok_or_else(|| bad("1-65535"))?,
            "--interval" => o.interval_ms = value.parse().ok().filter(|&n| n > 0).ok_or_else(|| bad("milliseconds > 0"))?,
            "--size" => o.size = value.parse().ok().filter(|&n| n <= 1472).ok_or_else(|| bad("bytes, 0-1472"))?,
            "--loss" => o.loss = value.parse().ok().filter(|p| (0.0..=1.0).contains(p)).ok_or_else(|| bad("a probability, 0-1"))?,
            "--delay" => o.delay_ms = value.parse().map_err(|_| bad("milliseconds"))?,
            "--jitter" => o.jitter_ms = value.parse().map_err(|_| bad("milliseconds"))?,
            "--seed" => o.seed = value.parse().map_err(|_| bad("an unsigned integer"))?,
            _ => {
                return Err(format!(
                    "unknown flag {flag:?}: accepted --count, --interval, --size, --loss, --delay, --jitter, --seed\n{USAGE}"
                ))
            }
        }
    }
    Ok(o)
}

fn host(sim: &mut Sim, last: u8, impairment: Impairment) -> Result<usize, String> {
    let mac = EthernetAddress([0x02, 0, 0x5e, 0, 0, last]);
    let cidr = format!("198.18.0.{last}/24")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let port = MemPortConfig {
        impairment,
        ..MemPortConfig::new(mac)
    };
    sim.add_host(InterfaceConfig::new(mac, cidr), port)
        .map_err(|e| e.to_string())
}

fn print_counters(name: &str, stats: &NetStats) {
    let nonzero: Vec<String> = stats
        .iter()
        .filter(|&(_, v)| v != 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("  {name}: {}", nonzero.join(" "));
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let impairment = Impairment {
        loss: o.loss,
        delay: Duration::from_millis(o.delay_ms),
        jitter: Duration::from_millis(o.jitter_ms),
        ..Impairment::NONE
    };
    let mut sim = Sim::new(o.seed);
    let (a, b) =
        match host(&mut sim, 1, impairment).and_then(|a| Ok((a, host(&mut sim, 2, impairment)?))) {
            Ok(ids) => ids,
            Err(e) => {
                eprintln!("mem_ping: {e}");
                return ExitCode::from(2);
            }
        };
    let target = Ipv4Addr::new(198, 18, 0, 2);
    println!(
        "PING {target} from 198.18.0.1 on the in-memory wire: {} data bytes, loss {:.1} %, delay {} ms ± {} ms, seed {}",
        o.size,
        o.loss * 100.0,
        o.delay_ms,
        o.jitter_ms,
        o.seed
    );

    let data: Vec<u8> = (0..o.size).map(|i| i as u8).collect();
    let ident = 0x5753;
    let interval = Duration::from_millis(o.interval_ms);
    let mut sent_at: Vec<Option<Instant>> = vec![None; usize::from(o.count) + 1];
    let mut rtts: Vec<Duration> = Vec::new();
    let end_of = |sim: &Sim, seq: u16| {
        if seq == o.count {
            sim.now() + Duration::from_secs(2).max(interval)
        } else {
            sim.now() + interval
        }
    };
    for seq in 1..=o.count {
        match sim.ping(a, target, ident, seq, &data) {
            Ok(()) => sent_at[usize::from(seq)] = Some(sim.now()),
            Err(e) => println!("icmp_seq={seq}: not sent: {e}"),
        }
        let until = end_of(&sim, seq);
        // Step through every wake-up until the next send, reporting replies
        // at the virtual time they arrive.
        for _ in 0..100_000 {
            for e in std::mem::take(&mut sim.host_mut(a).events) {
                match e {
                    NetEvent::EchoReply {
                        from,
                        ident: id,
                        seq_no,
                        len,
                    } if id == ident => {
                        let rtt = sent_at
                            .get(usize::from(seq_no))
                            .copied()
                            .flatten()
                            .map(|t| sim.now() - t);
                        if let Some(rtt) = rtt {
                            rtts.push(rtt);
                            println!(
                                "{} bytes from {from}: icmp_seq={seq_no} time={:.3} ms",
                                len + 8,
                                rtt.as_secs_f64() * 1e3
                            );
                        }
                    }
                    other => println!("event: {other:?}"),
                }
            }
            match sim.next_wake() {
                Some(t) if t <= until && t > sim.now() => {
                    sim.step();
                }
                Some(t) if t <= sim.now() => sim.poll_all(),
                _ => {
                    sim.advance(until - sim.now());
                    sim.poll_all();
                    break;
                }
            }
        }
    }

    let sent = sent_at.iter().flatten().count();
    let received = rtts.len();
    println!("\n--- {target} ping statistics ---");
    println!(
        "{sent} packets transmitted, {received} received, {:.1}% packet loss, {:.3} s of virtual time",
        if sent == 0 { 0.0 } else { 100.0 * (sent - received) as f64 / sent as f64 },
        sim.now().as_nanos() as f64 / 1e9
    );
    if !rtts.is_empty() {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        let min = rtts.iter().map(ms).fold(f64::MAX, f64::min);
        let max = rtts.iter().map(ms).fold(0.0, f64::max);
        let avg = rtts.iter().map(ms).sum::<f64>() / received as f64;
        println!("rtt min/avg/max = {min:.3}/{avg:.3}/{max:.3} ms");
    }
    println!("counters:");
    print_counters("198.18.0.1", sim.host(a).stats());
    print_counters("198.18.0.2", sim.host(b).stats());
    if received == 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
