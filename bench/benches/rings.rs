//! The rings between a worker and an application thread, against
//! `crossbeam_queue::ArrayQueue` (a general-purpose bounded MPMC queue), with
//! the two threads pinned to different cores where there are two.
//!
//! - `round_trip/*`: the worker thread pushes an [`Event`] (`Timer`), the
//!   application thread pops it and answers with a [`Command`]
//!   (`SetTimer`), the worker pops that: one event and one command through
//!   the rings, nanoseconds per round trip. Both sides spin. Two cache-line
//!   transfers each way at least, so this is also the cross-core round
//!   trip this machine's placement gives (compare like with like: it moves
//!   2-3x from run to run on shared machines).
//! - `throughput/*`: one thread pushes `u64`s as fast as it can, the other
//!   pops them; elements per second through a 1024-slot queue.
//! - `same_thread/*`: 512 pushes then 512 pops on one thread: the cost of
//!   the operations themselves, which a busy shared machine barely moves
//!   (the two-thread figures above move with every other process there).
//!
//! The engine keeps its purpose-built SPSC ring only if it is measurably
//! faster; run both groups a few times, interleaved, and compare ratios:
//!
//! ```text
//! cargo bench -p wirespeed-bench --bench rings
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use wirespeed::api::threads::{Command, Event};
use wirespeed::buf::HeapBuf;
use wirespeed::rt::ring;
use wirespeed::Duration;

const SLOTS: usize = 1024;

/// The cores the process may use, read once: `get_core_ids` answers for
/// the calling thread, and once the main thread is pinned, the threads it
/// spawns would see its one core only (and both sides would share it).
fn cores() -> &'static [core_affinity::CoreId] {
    static CORES: OnceLock<Vec<core_affinity::CoreId>> = OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// Pins the calling thread to the `n`th core, when there is one.
fn pin(n: usize) {
    let ids = cores();
    if let Some(id) = ids.get(n % ids.len().max(1)) {
        let _ = core_affinity::set_for_current(*id);
    }
}

fn event(i: u64) -> Event<HeapBuf> {
    Event::Timer(i)
}

fn command(i: u64) -> Command<HeapBuf> {
    Command::SetTimer {
        after: Duration::from_nanos(i),
        token: i,
    }
}

fn token(c: Command<HeapBuf>) -> u64 {
    match c {
        Command::SetTimer { token, .. } => token,
        _ => u64::MAX,
    }
}

/// Round trips through the engine's rings: `iters` of them, timed.
fn round_trip_ring(iters: u64) -> StdDuration {
    let (mut ev_tx, mut ev_rx) = ring::channel::<Event<HeapBuf>>(SLOTS);
    let (mut cmd_tx, mut cmd_rx) = ring::channel::<Command<HeapBuf>>(SLOTS);
    let app = std::thread::spawn(move || {
        pin(1);
        loop {
            match ev_rx.pop() {
                Some(Event::Timer(i)) => {
                    let mut c = command(i);
                    while let Err(back) = cmd_tx.push(c) {
                        c = back;
                        std::hint::spin_loop();
                    }
                }
                Some(_) => return,
                None => std::hint::spin_loop(),
            }
        }
    });
    pin(0);
    // Let the application thread start spinning before timing.
    for i in 0..1000 {
        one_ring_trip(&mut ev_tx, &mut cmd_rx, i);
    }
    let start = StdInstant::now();
    for i in 0..iters {
        one_ring_trip(&mut ev_tx, &mut cmd_rx, i);
    }
    let took = start.elapsed();
    let _ = ev_tx.push(Event::Buffers);
    app.join().expect("application thread");
    took
}

#[inline]
fn one_ring_trip(
    ev_tx: &mut ring::Producer<Event<HeapBuf>>,
    cmd_rx: &mut ring::Consumer<Command<HeapBuf>>,
    i: u64,
) {
    let mut e = event(i);
    while let Err(back) = ev_tx.push(e) {
        e = back;
        std::hint::spin_loop();
    }
    loop {
        if let Some(c) = cmd_rx.pop() {
            assert_eq!(token(c), i);
            return;
        }
        std::hint::spin_loop();
    }
}

/// The same round trips through two `ArrayQueue`s.
fn round_trip_crossbeam(iters: u64) -> StdDuration {
    let events = Arc::new(ArrayQueue::<Event<HeapBuf>>::new(SLOTS));
    let commands = Arc::new(ArrayQueue::<Command<HeapBuf>>::new(SLOTS));
    let (ev_rx, cmd_tx) = (events.clone(), commands.clone());
    let app = std::thread::spawn(move || {
        pin(1);
        loop {
            match ev_rx.pop() {
                Some(Event::Timer(i)) => {
                    let mut c = command(i);
                    while let Err(back) = cmd_tx.push(c) {
                        c = back;
                        std::hint::spin_loop();
                    }
                }
                Some(_) => return,
                None => std::hint::spin_loop(),
            }
        }
    });
    pin(0);
    let trip = |i: u64| {
        let mut e = event(i);
        while let Err(back) = events.push(e) {
            e = back;
            std::hint::spin_loop();
        }
        loop {
            if let Some(c) = commands.pop() {
                assert_eq!(token(c), i);
                return;
            }
            std::hint::spin_loop();
        }
    };
    for i in 0..1000 {
        trip(i);
    }
    let start = StdInstant::now();
    for i in 0..iters {
        trip(i);
    }
    let took = start.elapsed();
    let _ = events.push(Event::Buffers);
    app.join().expect("application thread");
    took
}

/// `iters` values from a producer thread to this one through the engine's
/// ring, timed from the producer's start signal to the last pop.
fn throughput_ring(iters: u64) -> StdDuration {
    let (mut tx, mut rx) = ring::channel::<u64>(SLOTS);
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    let producer = std::thread::spawn(move || {
        pin(1);
        while !go2.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        for i in 0..iters {
            let mut v = i;
            while let Err(back) = tx.push(v) {
                v = back;
                std::hint::spin_loop();
            }
        }
    });
    pin(0);
    let start = StdInstant::now();
    go.store(true, Ordering::Release);
    let mut sum = 0u64;
    let mut n = 0;
    while n < iters {
        if let Some(v) = rx.pop() {
            sum = sum.wrapping_add(v);
            n += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    let took = start.elapsed();
    black_box(sum);
    producer.join().expect("producer");
    took
}

/// The same through an `ArrayQueue`.
fn throughput_crossbeam(iters: u64) -> StdDuration {
    let q = Arc::new(ArrayQueue::<u64>::new(SLOTS));
    let tx = q.clone();
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    let producer = std::thread::spawn(move || {
        pin(1);
        while !go2.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        for i in 0..iters {
            let mut v = i;
            while let Err(back) = tx.push(v) {
                v = back;
                std::hint::spin_loop();
            }
        }
    });
    pin(0);
    let start = StdInstant::now();
    go.store(true, Ordering::Release);
    let mut sum = 0u64;
    let mut n = 0;
    while n < iters {
        if let Some(v) = q.pop() {
            sum = sum.wrapping_add(v);
            n += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    let took = start.elapsed();
    black_box(sum);
    producer.join().expect("producer");
    took
}

fn round_trip(c: &mut Criterion) {
    // Read before any thread is pinned.
    let _ = cores();
    let mut g = c.benchmark_group("round_trip");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(StdDuration::from_secs(3));
    g.bench_function("wirespeed_ring", |b| b.iter_custom(round_trip_ring));
    g.bench_function("crossbeam_array_queue", |b| {
        b.iter_custom(round_trip_crossbeam)
    });
    g.finish();
}

fn throughput(c: &mut Criterion) {
    // Read before any thread is pinned.
    let _ = cores();
    let mut g = c.benchmark_group("throughput");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(StdDuration::from_secs(3));
    g.bench_function("wirespeed_ring", |b| b.iter_custom(throughput_ring));
    g.bench_function("crossbeam_array_queue", |b| {
        b.iter_custom(throughput_crossbeam)
    });
    g.finish();
}

/// Values per batch in `same_thread`.
const BATCH: u64 = 512;

/// Push then pop a batch on one thread: the instructions of each queue's
/// operations without a cache line crossing cores, so the figure barely
/// moves with core placement or a busy machine.
fn same_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("same_thread");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("wirespeed_ring", |b| {
        let (mut tx, mut rx) = ring::channel::<u64>(SLOTS);
        b.iter(|| {
            for i in 0..BATCH {
                let _ = tx.push(black_box(i));
            }
            for _ in 0..BATCH {
                black_box(rx.pop());
            }
        })
    });
    g.bench_function("crossbeam_array_queue", |b| {
        let q = ArrayQueue::<u64>::new(SLOTS);
        b.iter(|| {
            for i in 0..BATCH {
                let _ = q.push(black_box(i));
            }
            for _ in 0..BATCH {
                black_box(q.pop());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, same_thread, round_trip, throughput);
criterion_main!(benches);
