//! smoltcp baseline for the TCP receive path, in process.
//!
//! Two smoltcp interfaces with an established connection (timestamps on,
//! so full-sized segments carry 1448 bytes as with Linux), joined by a
//! pipe device: frames are plain `Vec<u8>`s moved from one side's transmit
//! queue to the other's receive queue, buffers recycled, no wire.
//!
//! - `smoltcp_tcp/rx_segment/*`: the established-connection receive fast
//!   path, one in-order full-sized segment per `Interface::poll` (ingress,
//!   ACK state, the ACK smoltcp decides to send: one per two segments),
//!   then the socket drained in place (`recv` with a closure: no copy out,
//!   as a zero-copy reader would). Reported per segment. The sender's work and
//!   the ACKs' trip back run outside the timed section. `sw_checksum`
//!   verifies IPv4 and TCP checksums in software (as on the mem port);
//!   `offload` tells smoltcp the device did.
//! - `smoltcp_tcp/bulk`: one connection moving 4 MiB per iteration, both
//!   ends' work in one thread, software checksums; criterion reports
//!   decimal bytes/s (GB/s × 8 = Gbit/s).
//!
//! The comparison with the engine's own receive path is made as a ratio
//! measured in the same run, not against figures from another machine.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

/// Payload of a full-sized segment with the timestamp option.
const SEGMENT: usize = 1448;
/// Segments per timed batch (even: every segment gets acknowledged).
const BATCH: usize = 32;
const BUFFER: usize = 256 * 1024;

/// A device whose frames are moved by hand between two interfaces.
#[derive(Debug, Default)]
struct Pipe {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    /// Empty buffers for transmit.
    free: Vec<Vec<u8>>,
    /// Received buffers consumed since the last `receive`.
    spent: Vec<Vec<u8>>,
    checksum_offload: bool,
}

struct PipeRx<'a> {
    buf: Vec<u8>,
    spent: &'a mut Vec<Vec<u8>>,
}

impl phy::RxToken for PipeRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.buf);
        self.spent.push(self.buf);
        r
    }
}

struct PipeTx<'a> {
    free: &'a mut Vec<Vec<u8>>,
    tx: &'a mut VecDeque<Vec<u8>>,
}

impl phy::TxToken for PipeTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = self.free.pop().unwrap_or_default();
        buf.resize(len, 0);
        let r = f(&mut buf);
        self.tx.push_back(buf);
        r
    }
}

impl phy::Device for Pipe {
    type RxToken<'a> = PipeRx<'a>;
    type TxToken<'a> = PipeTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(PipeRx<'_>, PipeTx<'_>)> {
        self.free.append(&mut self.spent);
        let buf = self.rx.pop_front()?;
        Some((
            PipeRx {
                buf,
                spent: &mut self.spent,
            },
            PipeTx {
                free: &mut self.free,
                tx: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<PipeTx<'_>> {
        Some(PipeTx {
            free: &mut self.free,
            tx: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps.checksum = if self.checksum_offload {
            ChecksumCapabilities::ignored()
        } else {
            ChecksumCapabilities::default()
        };
        caps
    }
}

struct Host {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: Pipe,
    sock: SocketHandle,
}

impl Host {
    fn new(last: u8, checksum_offload: bool) -> Self {
        let mut dev = Pipe {
            checksum_offload,
            ..Pipe::default()
        };
        let mac = EthernetAddress([0x02, 0, 0, 0, 0, last]);
        let mut config = Config::new(HardwareAddress::Ethernet(mac));
        config.random_seed = u64::from(last);
        let mut iface = Interface::new(config, &mut dev, Instant::ZERO);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(
                IpAddress::Ipv4(Ipv4Addr::new(198, 18, 0, last)),
                24,
            ))
            .expect("one address");
        });
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; BUFFER]),
            tcp::SocketBuffer::new(vec![0; BUFFER]),
        );
        socket.set_tsval_generator(Some(tsval));
        let mut sockets = SocketSet::new(Vec::new());
        let sock = sockets.add(socket);
        Host {
            iface,
            sockets,
            dev,
            sock,
        }
    }

    fn poll(&mut self, now: Instant) {
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
    }

    fn tcp(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut(self.sock)
    }

    /// Drains the receive buffer; returns the bytes taken.
    fn drain(&mut self) -> usize {
        let socket = self.sockets.get_mut::<tcp::Socket>(self.sock);
        let mut n = 0;
        while let Ok(k) = socket.recv(|b| (b.len(), b.len())) {
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    }
}

fn tsval() -> u32 {
    1
}

/// Moves `from`'s transmitted frames to `to`'s receive queue.
fn carry(from: &mut Host, to: &mut Host) {
    to.dev.rx.extend(from.dev.tx.drain(..));
}

/// Client (sender) and server (receiver), connected.
fn connected(checksum_offload: bool) -> (Host, Host, Instant) {
    let mut a = Host::new(1, checksum_offload);
    let mut b = Host::new(2, checksum_offload);
    b.tcp().listen(5000).expect("listen");
    let remote = (Ipv4Addr::new(198, 18, 0, 2), 5000);
    let cx = a.iface.context();
    a.sockets
        .get_mut::<tcp::Socket>(a.sock)
        .connect(cx, remote, 49152)
        .expect("connect");
    let mut now = Instant::ZERO;
    for _ in 0..100 {
        a.poll(now);
        carry(&mut a, &mut b);
        b.poll(now);
        carry(&mut b, &mut a);
        now += smoltcp::time::Duration::from_micros(10);
        if a.tcp().state() == tcp::State::Established && b.tcp().state() == tcp::State::Established
        {
            return (a, b, now);
        }
    }
    panic!("no connection: {} / {}", a.tcp().state(), b.tcp().state());
}

/// Queues `data` on `a` and polls it: the data segments for `b` wait in
/// `a`'s transmit queue. Returns the bytes queued.
fn produce(a: &mut Host, now: Instant, data: &[u8]) -> usize {
    let queued = a.tcp().send_slice(data).unwrap_or(0);
    a.poll(now);
    queued
}

fn bench_rx_segment(c: &mut Criterion) {
    let mut group = c.benchmark_group("smoltcp_tcp/rx_segment");
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for (name, offload) in [("sw_checksum", false), ("offload", true)] {
        let (mut a, mut b, mut now) = connected(offload);
        let payload = vec![0x5au8; SEGMENT * BATCH];
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    // Untimed: the sender builds a batch of data segments.
                    let queued = produce(&mut a, now, &payload);
                    assert_eq!(queued, payload.len(), "send buffer full");
                    batch.extend(a.dev.tx.drain(..));
                    assert_eq!(batch.len(), BATCH, "window too small for a batch");
                    // Timed: one segment per poll, socket drained each time.
                    let start = std::time::Instant::now();
                    let mut got = 0;
                    for frame in batch.drain(..) {
                        b.dev.rx.push_back(frame);
                        b.iface.poll(now, &mut b.dev, &mut b.sockets);
                        got += b.drain();
                    }
                    timed += start.elapsed();
                    assert_eq!(got, payload.len());
                    // What was measured: smoltcp acknowledges every
                    // second full-sized segment.
                    assert_eq!(b.dev.tx.len(), BATCH / 2, "ACKs per batch");
                    // Untimed: ACKs back to the sender, buffers recycled.
                    carry(&mut b, &mut a);
                    a.poll(now);
                    // The receiver gets two frames per ACK it sends: keep
                    // its spare buffers bounded.
                    b.dev.free.truncate(4 * BATCH);
                    now += smoltcp::time::Duration::from_micros(1);
                    done += BATCH as u64;
                }
                // Per segment: criterion divides by `iters`.
                timed.mul_f64(iters as f64 / done as f64)
            });
        });
    }
    group.finish();
}

fn bench_bulk(c: &mut Criterion) {
    const PER_ITER: usize = 4 << 20;
    let mut group = c.benchmark_group("smoltcp_tcp");
    group.measurement_time(Duration::from_secs(8));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(20);
    group.throughput(Throughput::BytesDecimal(PER_ITER as u64));
    let (mut a, mut b, mut now) = connected(false);
    let payload = vec![0xa5u8; 64 * 1024];
    group.bench_function("bulk", |bench| {
        bench.iter(|| {
            let (mut sent, mut got) = (0, 0);
            while got < PER_ITER {
                if sent < PER_ITER {
                    let n = (PER_ITER - sent).min(payload.len());
                    sent += a.tcp().send_slice(&payload[..n]).unwrap_or(0);
                }
                a.poll(now);
                carry(&mut a, &mut b);
                b.poll(now);
                got += b.drain();
                carry(&mut b, &mut a);
                b.dev.free.truncate(4 * BATCH);
                now += smoltcp::time::Duration::from_micros(1);
            }
            assert_eq!(got, PER_ITER);
        });
    });
    group.finish();
}

criterion_group!(benches, bench_rx_segment, bench_bulk);
criterion_main!(benches);
