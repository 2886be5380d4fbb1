//! One million idle connections on the in-memory wire, through the runtime:
//! a client worker opens them (from 40 source addresses, as a load
//! generator would), a server worker accepts them, and a counting global
//! allocator reports the heap each established idle connection costs, all
//! included: the connection in its stack's slot table, its flow-table
//! entry, its timer-wheel entry, the runtime's and the handlers' own
//! per-connection bookkeeping, and the tables' spare capacity.
//!
//! `WIRESPEED_IDLE_CONNS` changes the count (default 1 000 000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicIsize, Ordering};

use wirespeed::api::{Context, Handler};
use wirespeed::net::{Interface, InterfaceConfig, Ipv4Cidr};
use wirespeed::port::mem::{MemDevice, MemPortConfig, MemWire};
use wirespeed::port::Device;
use wirespeed::rt::{CrossCore, Worker, WorkerConfig, WorkerSnapshot};
use wirespeed::tcp::{CloseReason, ConnId, ListenConfig, State, TcpConfig, TcpStack};
use wirespeed::time::{Duration, Instant};
use wirespeed::wire::EthernetAddress;

/// Counts live heap bytes (allocated less freed) over the whole process.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments
// unchanged; the counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SOURCES: u32 = 40;
/// Connections opened per loop iteration (the ARP queue and the SYN
/// backlog see a steady trickle, not a million at once).
const BATCH: usize = 2000;

/// Opens `target` connections and counts them established; keeps nothing
/// per connection.
struct Opener {
    target: usize,
    opened: usize,
    established: usize,
    failed: usize,
    reasons: std::collections::HashMap<CloseReason, usize>,
}

impl<D: Device> Handler<D> for Opener {
    fn on_connected(&mut self, _cx: &mut Context<'_, D>, _id: ConnId) {
        self.established += 1;
    }
    fn on_closed(&mut self, _cx: &mut Context<'_, D>, _id: ConnId, r: CloseReason) {
        self.failed += 1;
        *self.reasons.entry(r).or_default() += 1;
    }
    fn on_poll(&mut self, cx: &mut Context<'_, D>) {
        let end = (self.opened + BATCH).min(self.target);
        while self.opened < end {
            cx.connect((SERVER, 80)).expect("connect");
            self.opened += 1;
        }
    }
}

/// Accepts and counts.
struct Acceptor {
    accepted: usize,
}

impl<D: Device> Handler<D> for Acceptor {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        let cfg = ListenConfig {
            backlog: 1 << 20,
            syn_backlog: 1 << 20,
            syn_cookies: true,
        };
        cx.listen(80, cfg).unwrap();
    }
    fn on_accepted(&mut self, _cx: &mut Context<'_, D>, _id: ConnId, _port: u16) {
        self.accepted += 1;
    }
}

fn host(
    dev: &MemDevice,
    addr: Ipv4Addr,
    extra: u32,
    now: Instant,
) -> (
    Interface<wirespeed::buf::HeapBuf>,
    TcpStack<wirespeed::buf::HeapBuf>,
) {
    let caps = dev.caps().clone();
    let mut cfg = InterfaceConfig::new(caps.mac, Ipv4Cidr::new(addr, 16).unwrap());
    for i in 0..extra {
        cfg.addrs
            .push(Ipv4Cidr::new(Ipv4Addr::from(u32::from(CLIENT) + 256 + i), 16).unwrap());
    }
    cfg.arp.queue_len = 1 << 16;
    let tcp = TcpConfig {
        // Idle: no timers but the stack's own bookkeeping.
        ..TcpConfig::default()
    };
    (
        Interface::new(cfg, now).unwrap(),
        TcpStack::new(tcp, caps.checksum, [9; 48], now),
    )
}

#[test]
fn a_million_idle_connections() {
    let n: usize = std::env::var("WIRESPEED_IDLE_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let wire = MemWire::new(11);
    let mk = |mac| {
        let mut c = MemPortConfig::new(mac);
        c.rx_queue_limit = 1 << 16;
        c
    };
    let dc = wire
        .add_port(mk(EthernetAddress([2, 0, 0, 0, 0, 1])))
        .unwrap()
        .remove(0);
    let ds = wire
        .add_port(mk(EthernetAddress([2, 0, 0, 0, 0, 2])))
        .unwrap()
        .remove(0);
    let now = Instant::ZERO;
    let (ic, tc) = host(&dc, CLIENT, SOURCES, now);
    let (is, ts) = host(&ds, SERVER, 0, now);
    let sources = (0..SOURCES)
        .map(|i| Ipv4Addr::from(u32::from(CLIENT) + 256 + i))
        .collect();
    let wc = WorkerConfig {
        rx_bursts: 64,
        source_addrs: sources,
        ..WorkerConfig::default()
    };
    let mut client = Worker::new(
        ic,
        dc,
        tc,
        Opener {
            target: n,
            opened: 0,
            established: 0,
            failed: 0,
            reasons: Default::default(),
        },
        wc,
        CrossCore::default(),
    );
    let mut server = Worker::new(
        is,
        ds,
        ts,
        Acceptor { accepted: 0 },
        WorkerConfig {
            rx_bursts: 64,
            ..WorkerConfig::default()
        },
        CrossCore::default(),
    );
    // Warm up: ARP resolved, tables allocated for a first connection.
    let mut t = now;
    let step = Duration::from_micros(50);
    let before = LIVE.load(Ordering::Relaxed);
    while client.handler.established < n && t < now + Duration::from_secs(600) {
        client.poll(t);
        server.poll(t);
        t += step;
    }
    // Let delayed ACKs and every timer but the idle ones run out.
    for _ in 0..200 {
        t += Duration::from_millis(5);
        client.poll(t);
        server.poll(t);
    }
    let after = LIVE.load(Ordering::Relaxed);
    let c = &client.handler;
    assert_eq!(
        c.failed,
        0,
        "{:?}; client {:?} server {:?}",
        c.reasons,
        WorkerSnapshot::of(&client.core).tcp,
        WorkerSnapshot::of(&server.core).tcp
    );
    assert_eq!(c.established, n, "established");
    assert_eq!(server.handler.accepted, n, "accepted");
    let cs = WorkerSnapshot::of(&client.core);
    let ss = WorkerSnapshot::of(&server.core);
    assert_eq!(cs.states[State::Established as usize], n as u64);
    assert_eq!(ss.states[State::Established as usize], n as u64);
    // Idle connections hold no buffers: only the pools' own spares remain.
    let per_side = (after - before) as f64 / (2 * n) as f64;
    println!(
        "{n} idle connections: {:.0} bytes of heap per connection per side \
         (client + server heap growth {} MiB over {} connections each); \
         buffers in use: client {:?}, server {:?}",
        per_side,
        (after - before) >> 20,
        n,
        cs.buffers_in_use,
        ss.buffers_in_use
    );
    assert!(
        per_side <= 2048.0,
        "{per_side:.0} bytes per idle connection: DESIGN.md principle 6 wants about 1 KiB"
    );
}
