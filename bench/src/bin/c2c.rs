//! Core-to-core cache-line round trip: two threads pinned to two CPUs
//! (default 0 and 1) bounce a counter on one cache line, each waiting for
//! the other's increment. Prints the median round trip in nanoseconds on
//! stdout (one number), and the spread on stderr.
//!
//! The vCPUs of the project's machines land on different physical cores
//! from run to run; this round trip then swings between about 100 and
//! 500 ns and moves every cross-core figure with it, so `bench/compare.sh`
//! prints it next to each result.

use std::hint;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Parser;
use wirespeed_bench::peer::pin_to_core;

#[derive(Debug, Parser)]
#[command(about = "Median core-to-core cache-line round trip, in ns")]
struct Args {
    /// CPU of the first thread.
    #[arg(long, default_value_t = 0)]
    a: usize,
    /// CPU of the second thread.
    #[arg(long, default_value_t = 1)]
    b: usize,
    /// Timed samples; the median is printed.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Round trips per sample.
    #[arg(long, default_value_t = 1000)]
    trips: u64,
}

/// The counter alone on its cache line (128: adjacent-line prefetch pairs).
#[repr(align(128))]
struct Line(AtomicU64);

fn main() -> Result<()> {
    let args = Args::parse();
    if args.a == args.b {
        bail!("--a and --b must differ");
    }
    if args.samples == 0 || args.trips == 0 {
        bail!("--samples and --trips must be at least 1");
    }
    let line = Arc::new(Line(AtomicU64::new(0)));
    let total = (args.samples as u64 + 1) * args.trips;

    // The echo side: answers every odd value with the next even one. It
    // says whether it could pin before the timing starts.
    let (pinned_tx, pinned_rx) = mpsc::channel();
    let echo = {
        let line = Arc::clone(&line);
        let core = args.b;
        thread::spawn(move || {
            let pinned = pin_to_core(core);
            let ok = pinned.is_ok();
            let _ = pinned_tx.send(pinned);
            if !ok {
                return;
            }
            for i in 0..total {
                let odd = 2 * i + 1;
                while line.0.load(Ordering::Acquire) != odd {
                    hint::spin_loop();
                }
                line.0.store(odd + 1, Ordering::Release);
            }
        })
    };
    pinned_rx.recv()??;

    let pinned = pin_to_core(args.a);
    let mut per_trip = Vec::with_capacity(args.samples);
    if pinned.is_ok() {
        let mut value = 0u64;
        // The first batch warms both caches and is not kept.
        for sample in 0..=args.samples {
            let start = Instant::now();
            for _ in 0..args.trips {
                line.0.store(value + 1, Ordering::Release);
                value += 2;
                while line.0.load(Ordering::Acquire) != value {
                    hint::spin_loop();
                }
            }
            if sample > 0 {
                per_trip.push(start.elapsed().as_nanos() as f64 / args.trips as f64);
            }
        }
    }
    // If our pinning failed the echo thread is left spinning: exit
    // without joining it.
    pinned?;
    if echo.join().is_err() {
        bail!("echo thread panicked");
    }
    per_trip.sort_by(f64::total_cmp);
    let at = |q: f64| per_trip[((per_trip.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "c2c cpu{}<->cpu{}: round trip min {:.0} ns, p10 {:.0}, median {:.0}, p90 {:.0}, max {:.0} ({} samples of {} trips)",
        args.a,
        args.b,
        per_trip[0],
        at(0.1),
        at(0.5),
        at(0.9),
        per_trip[per_trip.len() - 1],
        args.samples,
        args.trips
    );
    println!("{:.0}", at(0.5));
    Ok(())
}
