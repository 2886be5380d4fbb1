//! smoltcp as an independent peer on the in-memory wire.
//!
//! The engine's TCP is tested against a second implementation it shares no
//! code with. This module puts smoltcp on a [`MemWire`] port and drives it on
//! the same virtual clock as wirespeed hosts:
//!
//! - [`SmolDevice`] implements smoltcp's `phy::Device` over a [`MemDevice`]:
//!   received frames are the device's own [`HeapBuf`]s, transmit tokens hold a
//!   buffer from the device's pool, checksums are computed and verified in
//!   software both ways (the mem port offloads nothing). Frames are taken
//!   one per `receive`, after the reply buffer, so any pool of two or more
//!   buffers makes progress.
//! - [`SmolHost`] is an `Interface`, a `SocketSet` and a `SmolDevice`, with
//!   small helpers for TCP (`listen`, `connect`, `send`, `recv`, `close`) and
//!   ICMP echo.
//! - [`MixedSim`] steps smoltcp hosts and any other [`Participant`] (a
//!   wirespeed [`Sim`], later a wirespeed TCP host) together: each step jumps
//!   the clock to the earliest wake-up anyone asked for and polls everyone
//!   once, in the order they were added.
//!
//! Time: wirespeed counts nanoseconds, smoltcp microseconds. wirespeed time
//! is truncated to whole microseconds on the way in; a smoltcp deadline of
//! `T` µs comes back as exactly `T` µs, at which the truncated clock reads
//! `T` and the timer fires, so rounding never makes the driver spin.
//!
//! What smoltcp 0.14 brings as a peer (see `tests/smoltcp_peer.rs`): no
//! SACK, a 1 s minimum RTO and go-back-N after a timeout, so a loss costs
//! seconds of virtual time; per-frame jitter larger than a frame's
//! serialisation time (which shuffles whole windows) leaves it almost
//! stuck; and a fast retransmit that finds only a FIN unacknowledged
//! leaves it without a timer, stuck in FIN-WAIT-1, CLOSING or LAST-ACK.
//! A test that sees a smoltcp end stall with nothing scheduled should
//! check for that last case before blaming the other end.
//!
//! Use from an integration test with `#[path = "support/smol.rs"] mod smol;`.

#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use wirespeed::buf::{HeapBuf, PacketBuf};
use wirespeed::net::Ipv4Cidr;
use wirespeed::port::{Device, MemConfigError, MemDevice, MemPortConfig, MemWire};
use wirespeed::sim::{Clock, Sim};
use wirespeed::wire::EthernetAddress;
use wirespeed::{Duration, Instant};

pub use smoltcp::socket::tcp::State as TcpState;

/// Ethernet header length: smoltcp's MTU counts it, the port's does not.
const ETH_HEADER: usize = 14;

/// Default socket buffer size, each way.
pub const DEFAULT_BUFFER: usize = 64 * 1024;

/// wirespeed time to smoltcp time (truncated to whole microseconds).
pub fn to_smol(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(t.as_nanos() / 1_000).unwrap_or(i64::MAX))
}

/// smoltcp time to wirespeed time (times before the origin become the origin).
pub fn from_smol(t: smoltcp::time::Instant) -> Instant {
    Instant::from_micros(u64::try_from(t.total_micros()).unwrap_or(0))
}

/// smoltcp's `phy::Device` over one queue of a mem port.
///
/// Call order per poll: [`set_now`](Self::set_now), then smoltcp's
/// `Interface::poll` (which calls `receive`/`transmit`), then
/// [`flush`](Self::flush), which sends the frames built during the poll in
/// one `tx_burst` and returns consumed receive buffers to the pool.
pub struct SmolDevice {
    dev: MemDevice,
    now: Instant,
    mtu: usize,
    burst: Vec<HeapBuf>,
    spent: Vec<HeapBuf>,
    tx: Vec<HeapBuf>,
    oversize: u64,
}

impl fmt::Debug for SmolDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolDevice")
            .field("dev", &self.dev)
            .field("now", &self.now)
            .field("tx", &self.tx.len())
            .finish()
    }
}

impl SmolDevice {
    /// Wraps a mem device (its layer 3 MTU becomes smoltcp's IP MTU).
    pub fn new(dev: MemDevice) -> Self {
        let mtu = dev.caps().mtu;
        SmolDevice {
            dev,
            now: Instant::ZERO,
            mtu,
            burst: Vec::with_capacity(1),
            spent: Vec::new(),
            tx: Vec::new(),
            oversize: 0,
        }
    }

    /// Sets the time frames are received and sent at until the next call.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// Sends the frames built since the last flush and recycles consumed
    /// receive buffers.
    pub fn flush(&mut self) {
        if !self.tx.is_empty() {
            self.dev.tx_burst(self.now, &mut self.tx);
        }
        for buf in self.spent.drain(..) {
            self.dev.recycle(buf);
        }
    }

    /// When a frame is (or will be) waiting to be received.
    pub fn poll_at(&self) -> Option<Instant> {
        self.dev.poll_at()
    }

    /// The mem device underneath (counters, port index).
    pub fn mem(&self) -> &MemDevice {
        &self.dev
    }

    /// Frames smoltcp built larger than the port's buffers (dropped).
    pub fn oversize(&self) -> u64 {
        self.oversize
    }
}

/// A received frame in a device buffer.
pub struct SmolRxToken<'a> {
    buf: Option<HeapBuf>,
    spent: &'a mut Vec<HeapBuf>,
}

impl phy::RxToken for SmolRxToken<'_> {
    fn consume<R, F>(mut self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let buf = self.buf.take();
        let r = f(buf.as_ref().map_or(&[][..], HeapBuf::as_slice));
        self.spent.extend(buf);
        r
    }
}

impl Drop for SmolRxToken<'_> {
    fn drop(&mut self) {
        // Not consumed: the buffer still goes back to the pool.
        self.spent.extend(self.buf.take());
    }
}

/// A transmit buffer taken from the device's pool.
pub struct SmolTxToken<'a> {
    buf: Option<HeapBuf>,
    dev: &'a mut MemDevice,
    tx: &'a mut Vec<HeapBuf>,
    oversize: &'a mut u64,
}

impl phy::TxToken for SmolTxToken<'_> {
    fn consume<R, F>(mut self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let Some(mut buf) = self.buf.take() else {
            return f(&mut vec![0; len]);
        };
        if buf.append(len).is_err() {
            // Larger than the port's buffers: build it, count it, drop it
            // (capabilities() keeps smoltcp under the MTU, so this is a bug).
            *self.oversize += 1;
            self.dev.recycle(buf);
            return f(&mut vec![0; len]);
        }
        let r = f(buf.as_mut_slice());
        self.tx.push(buf);
        r
    }
}

impl Drop for SmolTxToken<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.dev.recycle(buf);
        }
    }
}

impl phy::Device for SmolDevice {
    type RxToken<'a> = SmolRxToken<'a>;
    type TxToken<'a> = SmolTxToken<'a>;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(SmolRxToken<'_>, SmolTxToken<'_>)> {
        // Buffers consumed earlier in this poll go back first.
        for buf in self.spent.drain(..) {
            self.dev.recycle(buf);
        }
        // The reply buffer is taken before the frame, and frames are taken
        // one at a time, so a pool of two buffers is enough to make
        // progress: the adapter never sits on received frames it cannot
        // answer.
        let out = self.dev.alloc_tx()?;
        self.dev.rx_burst(self.now, &mut self.burst, 1);
        let Some(frame) = self.burst.pop() else {
            self.dev.recycle(out);
            return None;
        };
        Some((
            SmolRxToken {
                buf: Some(frame),
                spent: &mut self.spent,
            },
            SmolTxToken {
                buf: Some(out),
                dev: &mut self.dev,
                tx: &mut self.tx,
                oversize: &mut self.oversize,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<SmolTxToken<'_>> {
        let buf = self.dev.alloc_tx()?;
        Some(SmolTxToken {
            buf: Some(buf),
            dev: &mut self.dev,
            tx: &mut self.tx,
            oversize: &mut self.oversize,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETH_HEADER;
        caps.max_burst_size = None;
        // Both ways in software: the mem wire offloads nothing.
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}

/// How to build a [`SmolHost`].
#[derive(Debug, Clone)]
pub struct SmolHostConfig {
    /// The port's MAC address.
    pub mac: EthernetAddress,
    /// Interface address and subnet.
    pub cidr: Ipv4Cidr,
    /// Default gateway, if any.
    pub gateway: Option<Ipv4Addr>,
    /// The mem port (impairments, MTU); its `mac` is replaced by `mac`.
    pub port: MemPortConfig,
    /// TCP receive buffer per socket, bytes.
    pub rx_buffer: usize,
    /// TCP send buffer per socket, bytes.
    pub tx_buffer: usize,
    /// Seed of smoltcp's PRNG (ISNs, IPv4 ids, ephemeral choices).
    pub seed: u64,
}

impl SmolHostConfig {
    /// A host with a default mem port, 64 KiB buffers and a seed from `mac`.
    pub fn new(mac: EthernetAddress, cidr: Ipv4Cidr) -> Self {
        SmolHostConfig {
            mac,
            cidr,
            gateway: None,
            port: MemPortConfig::new(mac),
            rx_buffer: DEFAULT_BUFFER,
            tx_buffer: DEFAULT_BUFFER,
            seed: u64::from_be_bytes([
                0, 0, mac.0[0], mac.0[1], mac.0[2], mac.0[3], mac.0[4], mac.0[5],
            ]),
        }
    }
}

/// A smoltcp host on a mem port.
pub struct SmolHost {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: SmolDevice,
    rx_buffer: usize,
    tx_buffer: usize,
    mac: EthernetAddress,
    ip: Ipv4Addr,
}

impl fmt::Debug for SmolHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolHost")
            .field("mac", &self.mac)
            .field("ip", &self.ip)
            .field("dev", &self.dev)
            .finish()
    }
}

impl SmolHost {
    /// A host with default buffers on a new, unimpaired port of `wire`.
    /// Panics if the wire refuses the port (a test bug: duplicate MAC).
    pub fn new(
        wire: &MemWire,
        mac: EthernetAddress,
        cidr: Ipv4Cidr,
        gateway: Option<Ipv4Addr>,
        now: Instant,
    ) -> Self {
        let config = SmolHostConfig {
            gateway,
            ..SmolHostConfig::new(mac, cidr)
        };
        match Self::with_config(wire, config, now) {
            Ok(host) => host,
            Err(e) => panic!("smoltcp host {mac}: {e}"),
        }
    }

    /// A host as `config` says, on a new port of `wire`.
    pub fn with_config(
        wire: &MemWire,
        config: SmolHostConfig,
        now: Instant,
    ) -> Result<Self, MemConfigError> {
        let port = MemPortConfig {
            mac: config.mac,
            queues: 1,
            ..config.port
        };
        let dev = wire
            .add_port(port)?
            .pop()
            .ok_or(MemConfigError::MacNotUnicast(config.mac))?;
        let mut dev = SmolDevice::new(dev);
        dev.set_now(now);
        let mut iface_config = Config::new(HardwareAddress::Ethernet(
            smoltcp::wire::EthernetAddress(config.mac.0),
        ));
        iface_config.random_seed = config.seed;
        let mut iface = Interface::new(iface_config, &mut dev, to_smol(now));
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(
                    IpAddress::Ipv4(config.cidr.addr),
                    config.cidr.prefix_len,
                ))
                .expect("one address fits");
        });
        if let Some(gw) = config.gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(gw)
                .expect("one route fits");
        }
        Ok(SmolHost {
            iface,
            sockets: SocketSet::new(Vec::new()),
            dev,
            rx_buffer: config.rx_buffer,
            tx_buffer: config.tx_buffer,
            mac: config.mac,
            ip: config.cidr.addr,
        })
    }

    fn new_tcp(&self) -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; self.rx_buffer]),
            tcp::SocketBuffer::new(vec![0; self.tx_buffer]),
        )
    }

    /// A TCP socket listening on `port` (one connection per socket).
    pub fn listen(&mut self, port: u16) -> SocketHandle {
        let mut socket = self.new_tcp();
        socket.listen(port).expect("listen on a fresh socket");
        self.sockets.add(socket)
    }

    /// A TCP socket connecting from `local_port` to `remote`; the SYN goes
    /// out at the next poll.
    pub fn connect(&mut self, remote: SocketAddrV4, local_port: u16) -> SocketHandle {
        let mut socket = self.new_tcp();
        socket
            .connect(self.iface.context(), remote, local_port)
            .expect("connect a fresh socket");
        self.sockets.add(socket)
    }

    /// The TCP socket behind `handle`, for settings and queries the helpers
    /// do not cover.
    pub fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut(handle)
    }

    /// Queues up to `data.len()` bytes; returns how many were taken (0 when
    /// the socket cannot send or its buffer is full).
    pub fn send(&mut self, handle: SocketHandle, data: &[u8]) -> usize {
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        if !socket.may_send() {
            return 0;
        }
        socket.send_slice(data).unwrap_or(0)
    }

    /// Takes up to `buf.len()` received bytes; returns how many (0 when
    /// nothing is waiting or the socket cannot receive).
    pub fn recv(&mut self, handle: SocketHandle, buf: &mut [u8]) -> usize {
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        if !socket.can_recv() {
            return 0;
        }
        socket.recv_slice(buf).unwrap_or(0)
    }

    /// Closes the sending half (FIN after the queued data).
    pub fn close(&mut self, handle: SocketHandle) {
        self.sockets.get_mut::<tcp::Socket>(handle).close();
    }

    /// Resets the connection.
    pub fn abort(&mut self, handle: SocketHandle) {
        self.sockets.get_mut::<tcp::Socket>(handle).abort();
    }

    /// The TCP state of `handle`.
    pub fn state(&self, handle: SocketHandle) -> TcpState {
        self.sockets.get::<tcp::Socket>(handle).state()
    }

    /// An ICMP socket bound to echo identifier `ident`, holding `packets`
    /// packets of up to 2 KiB each way.
    pub fn icmp_socket(&mut self, ident: u16, packets: usize) -> SocketHandle {
        let buffer = || {
            icmp::PacketBuffer::new(
                vec![icmp::PacketMetadata::EMPTY; packets],
                vec![0; packets * 2048],
            )
        };
        let mut socket = icmp::Socket::new(buffer(), buffer());
        socket
            .bind(icmp::Endpoint::Ident(ident))
            .expect("bind a fresh ICMP socket");
        self.sockets.add(socket)
    }

    /// Queues an ICMP echo request to `dst` on an ICMP socket; false when
    /// its buffer is full.
    pub fn ping(
        &mut self,
        handle: SocketHandle,
        dst: Ipv4Addr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) -> bool {
        let repr = smoltcp::wire::Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(
            &mut smoltcp::wire::Icmpv4Packet::new_unchecked(&mut bytes[..]),
            &ChecksumCapabilities::default(),
        );
        self.sockets
            .get_mut::<icmp::Socket>(handle)
            .send_slice(&bytes, IpAddress::Ipv4(dst))
            .is_ok()
    }

    /// The next echo reply on an ICMP socket, checksum verified: (source,
    /// ident, seq_no, data). Other ICMP messages are skipped.
    pub fn recv_echo_reply(
        &mut self,
        handle: SocketHandle,
    ) -> Option<(Ipv4Addr, u16, u16, Vec<u8>)> {
        let socket = self.sockets.get_mut::<icmp::Socket>(handle);
        while let Ok((bytes, from)) = socket.recv() {
            #[allow(unreachable_patterns)] // IPv6 only when another crate enables it
            let from = match from {
                IpAddress::Ipv4(a) => a,
                _ => continue,
            };
            let Ok(packet) = smoltcp::wire::Icmpv4Packet::new_checked(bytes) else {
                continue;
            };
            if let Ok(smoltcp::wire::Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            }) = smoltcp::wire::Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
            {
                return Some((from, ident, seq_no, data.to_vec()));
            }
        }
        None
    }

    /// Runs smoltcp once at `now`: receives what is due, fires timers,
    /// sends. Returns whether a socket's state may have changed.
    pub fn poll(&mut self, now: Instant) -> bool {
        self.dev.set_now(now);
        let changed = self
            .iface
            .poll(to_smol(now), &mut self.dev, &mut self.sockets);
        self.dev.flush();
        changed == smoltcp::iface::PollResult::SocketStateChanged
    }

    /// The earliest time the host wants to be polled: a smoltcp timer or
    /// pending transmission (smoltcp's `poll_at`; "now" comes back as a time
    /// at or before `now`), or a frame due on its port.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let smol = self
            .iface
            .poll_at(to_smol(now), &self.sockets)
            .map(from_smol);
        [smol, self.dev.poll_at()].into_iter().flatten().min()
    }

    /// The host's IPv4 address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The host's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// The adapter (and through it the mem device and its counters).
    pub fn device(&self) -> &SmolDevice {
        &self.dev
    }
}

/// Anything the mixed simulation polls besides its smoltcp hosts.
///
/// `poll_at` takes `&mut self` and `now` because smoltcp's does; a sans-IO
/// host answers from its timers and its device's next delivery.
pub trait Participant {
    /// Runs the participant's loop once at `now`.
    fn poll(&mut self, now: Instant);
    /// The earliest time it wants to run again (a time at or before `now`
    /// means at once); `None` when it waits for input only.
    fn poll_at(&mut self, now: Instant) -> Option<Instant>;
}

impl Participant for SmolHost {
    fn poll(&mut self, now: Instant) {
        SmolHost::poll(self, now);
    }
    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        SmolHost::poll_at(self, now)
    }
}

/// A wirespeed layer 2/3 simulation on the same wire: its clock follows.
impl Participant for Sim {
    fn poll(&mut self, now: Instant) {
        let behind = now.saturating_since(self.now());
        self.advance(behind);
        self.poll_all();
    }
    fn poll_at(&mut self, _now: Instant) -> Option<Instant> {
        self.next_wake()
    }
}

/// Shared participants: the test keeps a handle to use between steps.
impl<P: Participant> Participant for Rc<RefCell<P>> {
    fn poll(&mut self, now: Instant) {
        self.borrow_mut().poll(now);
    }
    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.borrow_mut().poll_at(now)
    }
}

/// Index of a smoltcp host in a [`MixedSim`].
pub type SmolId = usize;

/// Steps at one instant after which [`MixedSim`] reports a livelock.
pub const MAX_STEPS_AT_ONE_INSTANT: u64 = 1_000_000;

/// smoltcp hosts and other participants on one mem wire, one virtual clock.
///
/// Everyone's device is on the same wire; each participant reports its own
/// port's next delivery through `poll_at`. The wire-wide
/// [`MemWire::next_delivery`] is not used for scheduling: a frame for a port
/// nobody drains (a raw test port) would keep it in the past forever.
pub struct MixedSim {
    wire: MemWire,
    clock: Clock,
    smol: Vec<SmolHost>,
    others: Vec<Box<dyn Participant>>,
    steps: u64,
    steps_now: u64,
}

impl fmt::Debug for MixedSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MixedSim")
            .field("now", &self.clock.now())
            .field("smol", &self.smol)
            .field("others", &self.others.len())
            .field("steps", &self.steps)
            .finish()
    }
}

impl MixedSim {
    /// An empty simulation on a new wire seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self::on_wire(MemWire::new(seed))
    }

    /// An empty simulation on an existing wire (a wirespeed [`Sim`]'s),
    /// clock at the origin.
    pub fn on_wire(wire: MemWire) -> Self {
        MixedSim {
            wire,
            clock: Clock::new(),
            smol: Vec::new(),
            others: Vec::new(),
            steps: 0,
            steps_now: 0,
        }
    }

    /// The wire.
    pub fn wire(&self) -> &MemWire {
        &self.wire
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Adds a smoltcp host with default buffers on a new unimpaired port.
    pub fn add_smol(
        &mut self,
        mac: EthernetAddress,
        cidr: Ipv4Cidr,
        gateway: Option<Ipv4Addr>,
    ) -> SmolId {
        let host = SmolHost::new(&self.wire, mac, cidr, gateway, self.clock.now());
        self.smol.push(host);
        self.smol.len() - 1
    }

    /// Adds a smoltcp host as `config` says.
    pub fn add_smol_with(&mut self, config: SmolHostConfig) -> Result<SmolId, MemConfigError> {
        let host = SmolHost::with_config(&self.wire, config, self.clock.now())?;
        self.smol.push(host);
        Ok(self.smol.len() - 1)
    }

    /// A smoltcp host. Panics on an id `add_smol` did not return.
    pub fn smol(&mut self, id: SmolId) -> &mut SmolHost {
        &mut self.smol[id]
    }

    /// Adds another participant, polled after the smoltcp hosts in the
    /// order added.
    pub fn add_participant(&mut self, p: Box<dyn Participant>) {
        self.others.push(p);
    }

    /// The earliest wake-up of anyone.
    pub fn next_wake(&mut self) -> Option<Instant> {
        let now = self.clock.now();
        let smol = self.smol.iter_mut().filter_map(|h| h.poll_at(now));
        let others = self.others.iter_mut().filter_map(|p| p.poll_at(now));
        smol.chain(others).min()
    }

    /// Polls everyone once at the current time.
    pub fn poll_all(&mut self) {
        let now = self.clock.now();
        for h in &mut self.smol {
            h.poll(now);
        }
        for p in &mut self.others {
            p.poll(now);
        }
    }

    /// Jumps to the earliest wake-up (never backwards) and polls everyone.
    /// Returns the time it ran at, or `None` when nobody had anything
    /// scheduled (everyone was still polled at the current time).
    ///
    /// Panics after [`MAX_STEPS_AT_ONE_INSTANT`] steps without the clock
    /// moving: someone keeps asking to run now and does nothing.
    pub fn step(&mut self) -> Option<Instant> {
        let next = self.next_wake();
        if let Some(t) = next {
            self.advance_to(t);
        }
        self.poll_all();
        self.count_step();
        next.map(|_| self.clock.now())
    }

    fn advance_to(&mut self, t: Instant) {
        if t > self.clock.now() {
            self.clock.advance_to(t);
            self.steps_now = 0;
        }
    }

    fn count_step(&mut self) {
        self.steps += 1;
        self.steps_now += 1;
        assert!(
            self.steps_now < MAX_STEPS_AT_ONE_INSTANT,
            "livelock: {} steps at {} without the clock moving",
            self.steps_now,
            self.clock.now()
        );
    }

    /// Steps until `done` returns true, for at most `max` of virtual time.
    /// `done` runs after every step at the step's time (and once before the
    /// first); it may act as the hosts' applications (send, receive, close).
    /// Returns the virtual time at which `done` returned true, or `None` if
    /// it did not within `max` (the clock is then at the deadline).
    pub fn run_until(
        &mut self,
        mut done: impl FnMut(&mut MixedSim) -> bool,
        max: Duration,
    ) -> Option<Instant> {
        let deadline = self.clock.now() + max;
        self.poll_all();
        loop {
            if done(self) {
                return Some(self.clock.now());
            }
            match self.next_wake() {
                Some(t) if t <= deadline => {
                    self.advance_to(t);
                    self.poll_all();
                    self.count_step();
                }
                _ if self.clock.now() < deadline => {
                    self.advance_to(deadline);
                    self.poll_all();
                    self.count_step();
                }
                _ => return None,
            }
        }
    }
}
