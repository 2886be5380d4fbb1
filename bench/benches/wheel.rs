//! The per-core timer wheel at scale: 10 million armed timers spread over
//! 0–120 s at 1 ms ticks, in nanoseconds per operation.
//!
//! The wheel is built once, outside the measurements, and stays at about
//! 10 M timers: each measured batch is undone (untimed) right after it.
//! Timers are picked at random from the whole population, so the figures
//! include the cache misses a real worker with millions of connections sees.
//!
//! - `insert`: arm a new timer at a random deadline (then cancelled, untimed).
//! - `cancel`: cancel a random armed timer (then re-armed, untimed).
//! - `reschedule`: move a random armed timer to a new random deadline.
//! - `expire_per_timer`: advance 1 ms at a time; time per timer fired,
//!   finding due slots included (fired timers are re-armed, untimed).
//! - `advance_1ms`: one `advance` of 1 ms, firing ~83 timers (10 M / 120 000
//!   ticks) on average, the batch a worker handles per millisecond. The
//!   wheel rounds far deadlines up to coarse slots, so timers fire in
//!   batches: a tick that reaches a slot fires all of it.
//!
//! After the measurements, 10 s of simulated time are advanced 1 ms at a
//! time (fired timers re-armed, untimed) and the longest single `advance`
//! is printed with the timers it fired: the stall a worker's loop iteration
//! would see if it drained everything due. Then 10 s more polling at most
//! 4 096 timers per iteration: the longest iteration, and the longest run
//! of iterations that hit the budget (the backlog a coarse slot leaves). The longest `advance` seen during the measurements and the
//! process's peak RSS are printed too.

use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use wirespeed::tcp::wheel::{TimerHandle, TimerWheel, DEFAULT_TICK};
use wirespeed::Instant;

const TIMERS: usize = 10_000_000;
const SPREAD_MS: u64 = 120_000;
/// Largest batch done before undoing it, so the wheel never drifts far
/// from `TIMERS` and its slab never reallocates during a measurement.
const CHUNK: u64 = 100_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

struct Setup {
    wheel: TimerWheel<u32>,
    /// `handles[i]` is the live timer carrying `i`.
    handles: Vec<TimerHandle>,
    now_ms: u64,
    rng: Rng,
    scratch: Vec<u32>,
    spare: Vec<TimerHandle>,
    /// Longest single `advance` seen and the timers it fired.
    worst_tick: (StdDuration, usize),
}

impl Setup {
    fn new() -> Self {
        let start = StdInstant::now();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut wheel =
            TimerWheel::with_capacity(Instant::ZERO, DEFAULT_TICK, TIMERS + CHUNK as usize + 1024);
        let mut handles = Vec::with_capacity(TIMERS);
        for i in 0..TIMERS as u32 {
            let at = Instant::from_millis(rng.below(SPREAD_MS + 1));
            handles.push(wheel.insert(at, i).expect("wheel has room"));
        }
        eprintln!(
            "wheel: {} timers armed in {:.2?}",
            wheel.len(),
            start.elapsed()
        );
        Setup {
            wheel,
            handles,
            now_ms: 0,
            rng,
            scratch: Vec::with_capacity(64 * 1024),
            spare: Vec::with_capacity(CHUNK as usize),
            worst_tick: (StdDuration::ZERO, 0),
        }
    }

    fn deadline(&mut self) -> Instant {
        Instant::from_millis(self.now_ms + self.rng.below(SPREAD_MS + 1))
    }

    fn random_timer(&mut self) -> usize {
        self.rng.below(TIMERS as u64) as usize
    }

    /// Re-arms the timers whose values sit in `scratch`.
    fn rearm_scratch(&mut self) {
        let fired = std::mem::take(&mut self.scratch);
        for &i in &fired {
            let at = self.deadline();
            self.handles[i as usize] = self.wheel.insert(at, i).expect("wheel has room");
        }
        self.scratch = fired;
        self.scratch.clear();
    }
}

fn bench_wheel(c: &mut Criterion) {
    let mut s = Setup::new();
    let mut group = c.benchmark_group("wheel_10M");

    group.bench_function("insert", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let deadlines: Vec<Instant> = (0..n).map(|_| s.deadline()).collect();
                let t = StdInstant::now();
                for &at in &deadlines {
                    let h = s.wheel.insert(at, u32::MAX).expect("wheel has room");
                    s.spare.push(h);
                }
                total += t.elapsed();
                for h in s.spare.drain(..) {
                    s.wheel.cancel(h);
                }
                left -= n;
            }
            total
        })
    });

    group.bench_function("cancel", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                s.scratch.clear();
                for _ in 0..n {
                    let i = s.random_timer() as u32;
                    s.scratch.push(i);
                }
                let t = StdInstant::now();
                for &i in &s.scratch {
                    black_box(s.wheel.cancel(s.handles[i as usize]));
                }
                total += t.elapsed();
                // Duplicated picks were cancelled once; re-arm each once.
                s.scratch.sort_unstable();
                s.scratch.dedup();
                s.rearm_scratch();
                left -= n;
            }
            total
        })
    });

    group.bench_function("reschedule", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let moves: Vec<(TimerHandle, Instant)> = (0..n)
                    .map(|_| {
                        let i = s.random_timer();
                        (s.handles[i], s.deadline())
                    })
                    .collect();
                let t = StdInstant::now();
                for &(h, at) in &moves {
                    black_box(s.wheel.reschedule(h, at));
                }
                total += t.elapsed();
                left -= n;
            }
            total
        })
    });

    group.bench_function("expire_per_timer", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut fired = 0u64;
            while fired < iters {
                s.now_ms += 1;
                let now = Instant::from_millis(s.now_ms);
                let scratch = &mut s.scratch;
                let t = StdInstant::now();
                let n = s.wheel.advance(now, |v| scratch.push(v));
                let dt = t.elapsed();
                total += dt;
                s.worst_tick = s.worst_tick.max((dt, n));
                fired += n as u64;
                s.rearm_scratch();
            }
            // Scale to exactly `iters` timers (the last tick overshoots).
            total.mul_f64(iters as f64 / fired.max(1) as f64)
        })
    });

    group.bench_function("advance_1ms", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            for _ in 0..iters {
                s.now_ms += 1;
                let now = Instant::from_millis(s.now_ms);
                let scratch = &mut s.scratch;
                let t = StdInstant::now();
                let n = s.wheel.advance(now, |v| scratch.push(v));
                let dt = t.elapsed();
                total += dt;
                s.worst_tick = s.worst_tick.max((dt, n));
                s.rearm_scratch();
            }
            total
        })
    });

    group.finish();

    // Worst 1 ms advance over 10 s of simulated time.
    const SIM_TICKS: u64 = 10_000;
    let mut worst = (StdDuration::ZERO, 0usize);
    let mut total = StdDuration::ZERO;
    let mut fired = 0usize;
    for _ in 0..SIM_TICKS {
        s.now_ms += 1;
        let now = Instant::from_millis(s.now_ms);
        let scratch = &mut s.scratch;
        let t = StdInstant::now();
        let n = s.wheel.advance(now, |v| scratch.push(v));
        let dt = t.elapsed();
        total += dt;
        fired += n;
        worst = worst.max((dt, n));
        s.rearm_scratch();
    }
    eprintln!(
        "wheel: over {} s simulated, 1 ms advances: mean {:.2?}, worst {:.2?} ({} fired), {} fired in all",
        SIM_TICKS / 1_000,
        total / SIM_TICKS as u32,
        worst.0,
        worst.1,
        fired
    );

    // The same with a budget: a worker polling at most `BUDGET` timers per
    // 1 ms iteration, carrying the rest over.
    const BUDGET: usize = 4_096;
    let mut worst = (StdDuration::ZERO, 0usize);
    let mut behind = 0u64;
    let mut most_behind = 0u64;
    for _ in 0..SIM_TICKS {
        s.now_ms += 1;
        let now = Instant::from_millis(s.now_ms);
        let t = StdInstant::now();
        let mut n = 0;
        while n < BUDGET {
            match s.wheel.poll_expired(now) {
                Some(v) => s.scratch.push(v),
                None => break,
            }
            n += 1;
        }
        let dt = t.elapsed();
        worst = worst.max((dt, n));
        behind = if n == BUDGET { behind + 1 } else { 0 };
        most_behind = most_behind.max(behind);
        s.rearm_scratch();
    }
    eprintln!(
        "wheel: polling at most {BUDGET} per 1 ms iteration over {} s: worst iteration {:.2?} ({} fired), longest backlog {} iterations",
        SIM_TICKS / 1_000,
        worst.0,
        worst.1,
        most_behind
    );
    eprintln!(
        "wheel: {} timers pending, slab {} entries, virtual time {} ms",
        s.wheel.len(),
        s.wheel.slab_len(),
        s.now_ms
    );
    eprintln!(
        "wheel: longest single 1 ms advance during the measurements {:.2?} ({} fired)",
        s.worst_tick.0, s.worst_tick.1
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            if line.starts_with("VmHWM") || line.starts_with("VmRSS") {
                eprintln!("wheel: {line}");
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(3));
    targets = bench_wheel
}
criterion_main!(benches);
