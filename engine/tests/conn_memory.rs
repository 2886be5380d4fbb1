//! Memory per idle established connection in a [`TcpStack`], measured:
//! two stacks (client and server) open `N` connections to each other,
//! segments handed across directly (no wire), and a counting global
//! allocator reports the heap growth. Everything a connection costs its
//! stack is in the figure: the connection itself in the slot table, its
//! flow-table entry, its timer-wheel entry (with keep-alive on), and any
//! heap it keeps while idle, plus the tables' spare capacity (they grow by
//! doubling), so the figure is an upper bound for `N` connections.
//!
//! DESIGN.md principle 6: ten million concurrent connections on one
//! server means at most about 1 KiB per idle connection, all included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicIsize, Ordering};

use wirespeed::buf::{HeapBuf, HeapPool, PacketBuf};
use wirespeed::net::Ipv4Delivery;
use wirespeed::tcp::{Connection, Keepalive, ListenConfig, State, TcpConfig, TcpStack};
use wirespeed::wire::{ChecksumCaps, IpProtocol, Ipv4Repr};
use wirespeed::{Duration, Instant};

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

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PORT: u16 = 80;
/// Connections opened per round of segment exchange.
const BATCH: usize = 1000;

fn stack(cfg: TcpConfig, seed: u8, now: Instant) -> TcpStack<HeapBuf> {
    let mut secret = [0u8; 48];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ seed;
    }
    TcpStack::new(cfg, ChecksumCaps::SOFTWARE, secret, now)
}

/// Moves every segment `from` has to `to`; returns how many.
fn pump(
    from: &mut TcpStack<HeapBuf>,
    to: &mut TcpStack<HeapBuf>,
    now: Instant,
    pool: &mut HeapPool,
) -> usize {
    let mut n = 0;
    while let Some((dst, seg)) = from.poll_transmit(now, pool) {
        // Header and attached payload in one buffer, as a wire delivers.
        let seg = if seg.attached().is_empty() {
            seg
        } else {
            let flat = HeapBuf::from_slice(&[seg.as_slice(), seg.attached()].concat(), 0);
            pool.recycle(seg);
            flat
        };
        // The source address is the one the peer's connection knows us by;
        // the server has one, the client's come from the segment's tuple.
        let src = if dst == SERVER {
            client_addr_for(&seg)
        } else {
            SERVER
        };
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: IpProtocol::Tcp,
            payload_len: seg.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
        };
        to.handle_packet(now, Ipv4Delivery { repr, buf: seg });
        n += 1;
    }
    while let Some(b) = from.poll_recycle() {
        pool.recycle(b);
    }
    while let Some(b) = to.poll_recycle() {
        pool.recycle(b);
    }
    while from.poll_event().is_some() {}
    n
}

/// Segments both ways until both stacks are quiet.
fn converse(
    client: &mut TcpStack<HeapBuf>,
    server: &mut TcpStack<HeapBuf>,
    now: Instant,
    pool: &mut HeapPool,
) {
    for _ in 0..8 {
        let a = pump(client, server, now, pool);
        let b = pump(server, client, now, pool);
        if a + b == 0 {
            return;
        }
    }
}

/// Reads everything received (zero copy) and returns the bytes.
fn read_all(c: &mut Connection<HeapBuf>, pool: &mut HeapPool) -> usize {
    let mut n = 0;
    while let Some(b) = c.recv() {
        n += b.len();
        pool.recycle(b);
    }
    n
}

/// Connections per client address (and server port): explicit client
/// ports 1024 and up, so the server port a segment goes to names the
/// client address it came from.
const PER_ADDR: usize = 50_000;

fn client_addr(j: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, j as u8 + 1)
}

/// The client address of a segment to the server, from its destination
/// port (bytes 2 and 3 of the TCP header).
fn client_addr_for(seg: &HeapBuf) -> Ipv4Addr {
    let port = u16::from_be_bytes([seg.as_slice()[2], seg.as_slice()[3]]);
    client_addr(usize::from(port - PORT))
}

/// Opens `n` connections between two fresh stacks, with one small request
/// and response on each when `exchange`, lets them go idle and returns the
/// heap bytes per connection (both stacks' growth over `2·n`).
fn per_connection(cfg: TcpConfig, n: usize, exchange: bool) -> f64 {
    let mut now = Instant::from_millis(1);
    let mut pool = HeapPool::new(2048, 128, 1 << 20);
    let mut client = stack(cfg, 1, now);
    let mut server = stack(cfg, 2, now);
    let ports = n.div_ceil(PER_ADDR);
    for j in 0..ports {
        let listen = ListenConfig {
            backlog: n,
            syn_backlog: n,
            syn_cookies: false,
        };
        server.listen(PORT + j as u16, listen).expect("listen");
    }
    // The test's own id list is allocated before the measurement starts.
    let mut ids = Vec::with_capacity(n);
    let mut batch = Vec::with_capacity(BATCH);
    let before = live();
    let mut opened = 0;
    while opened < n {
        let k = BATCH.min(n - opened);
        for i in opened..opened + k {
            let j = i / PER_ADDR;
            let port = 1024 + (i % PER_ADDR) as u16;
            let id = client
                .connect(now, client_addr(j), Some(port), (SERVER, PORT + j as u16))
                .expect("connect");
            ids.push(id);
        }
        opened += k;
        // SYN, SYN-ACK, ACK.
        converse(&mut client, &mut server, now, &mut pool);
        for j in 0..ports {
            while let Some(id) = server.accept(PORT + j as u16) {
                batch.push(id);
            }
        }
        while server.poll_event().is_some() {}
        if exchange {
            for &id in &ids[opened - k..] {
                client.with_conn(now, id, |c| c.send(HeapBuf::from_slice(&[1; 100], 0)));
            }
            converse(&mut client, &mut server, now, &mut pool);
            for &id in &batch {
                let got = server.with_conn(now, id, |c| read_all(c, &mut pool));
                assert_eq!(got, Some(100));
                server.with_conn(now, id, |c| c.send(HeapBuf::from_slice(&[2; 100], 0)));
            }
            converse(&mut client, &mut server, now, &mut pool);
            for &id in &ids[opened - k..] {
                let got = client.with_conn(now, id, |c| read_all(c, &mut pool));
                assert_eq!(got, Some(100));
            }
        }
        batch.clear();
        now += Duration::from_micros(100);
    }
    // Let delayed ACKs and other short timers run out: idle means no
    // timer but keep-alive.
    for _ in 0..3 {
        now += Duration::from_millis(500);
        client.handle_timeout(now);
        server.handle_timeout(now);
        pump(&mut client, &mut server, now, &mut pool);
        pump(&mut server, &mut client, now, &mut pool);
    }
    for &id in &ids {
        let c: &Connection<HeapBuf> = client.conn(id).expect("client connection");
        assert_eq!(c.state(), State::Established);
        assert_eq!(c.recv_queued() + c.send_queued(), 0);
    }
    assert_eq!(client.connections(), n);
    assert_eq!(server.connections(), n);
    // The buffers in the pool are the test's, not the stacks'.
    drop(pool);
    let grown = live() - before;
    let per = grown as f64 / (2 * n) as f64;
    drop(client);
    drop(server);
    per
}

#[test]
fn idle_established_connection_memory() {
    const N: usize = 100_000;
    println!(
        "size_of::<Connection<HeapBuf>>() = {} bytes",
        std::mem::size_of::<Connection<HeapBuf>>()
    );
    let plain = per_connection(TcpConfig::default(), N, false);
    println!("idle established connection, default config: {plain:.0} bytes (N = {N})");
    let ka = TcpConfig {
        keepalive: Some(Keepalive::default()),
        ..TcpConfig::default()
    };
    let with_ka = per_connection(ka, N, false);
    println!(
        "idle established connection, keep-alive on (one timer-wheel entry): {with_ka:.0} bytes"
    );
    let used = per_connection(ka, N, true);
    println!("idle after 100 bytes each way, keep-alive on: {used:.0} bytes");
    // Everything included, tables' slack too: at most 1 KiB each.
    for per in [plain, with_ka, used] {
        assert!(per <= 1024.0, "{per:.0} bytes per idle connection");
    }
}
