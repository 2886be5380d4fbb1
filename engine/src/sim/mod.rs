//! Deterministic simulation: a virtual clock and hosts on the in-memory wire.
//!
//! A [`Sim`] owns a [`MemWire`] and several [`Host`]s, each an
//! [`Interface`] with the [`MemDevice`] of its own port. Nothing reads a real
//! clock: [`Sim::step`] jumps the virtual [`Clock`] to the earliest wake-up
//! of any host ([`Interface::poll_at`]) or device ([`Device::poll_at`],
//! a frame due for delivery) and runs every host's loop once, the same loop a
//! worker runs:
//!
//! 1. `rx_burst` → an optional per-host hook → [`Interface::receive`]
//!    (IPv4 deliveries are kept on the host for the test to take);
//! 2. [`Interface::handle_timeout`] when due;
//! 3. [`Interface::drain_transmit`] → `tx_burst`; dropped buffers go back to
//!    the device's pool ([`Interface::poll_recycle`]); events are kept on
//!    the host.
//!
//! For a given wire seed and the same calls, a run is identical: the wire's
//! impairments draw from seeded PRNGs, hosts run in the order they were
//! added, and the ARP cache walks entries in address order.
//!
//! This is the base for the transport tests: a TCP test adds its sockets on
//! top of the hosts' deliveries and [`Interface::send_ipv4`], and drives
//! everything with [`Sim::step`] / [`Sim::run_until_idle`].

use core::fmt;

use crate::buf::{HeapBuf, PacketBuf};
use crate::net::{ConfigError, Interface, InterfaceConfig, Ipv4Delivery, NetEvent, NetStats};
use crate::port::{Device, MemConfigError, MemDevice, MemPortConfig, MemWire};
use crate::time::{Duration, Instant};

/// Frames taken from a device per `rx_burst` call.
pub const BURST: usize = 32;

/// IPv4 deliveries kept per host before further ones are recycled.
pub const MAX_KEPT_DELIVERIES: usize = 256;

/// Steps [`Sim::run_until_idle`] takes at most, against a livelock.
pub const MAX_STEPS: usize = 1_000_000;

/// A virtual clock: starts at [`Instant::ZERO`], moves only when told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    now: Instant,
}

impl Clock {
    /// A clock at the origin.
    pub fn new() -> Self {
        Clock::default()
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves forward by `d`.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Moves to `t`; never backwards.
    pub fn advance_to(&mut self, t: Instant) {
        self.now = self.now.max(t);
    }
}

pub use crate::rt::DeviceAlloc;

/// What a host's receive hook decided about a frame.
#[derive(Debug)]
pub enum Hook {
    /// Hand the frame to the interface.
    Pass(HeapBuf),
    /// The hook consumed the frame (the buffer is recycled).
    Consume(HeapBuf),
    /// Send the frame, as rewritten by the hook, out of host `HostId`'s port.
    Forward(HostId, HeapBuf),
}

/// A per-host receive hook: sees every frame before the interface does.
pub type RxHook = Box<dyn FnMut(Instant, HeapBuf) -> Hook>;

/// Index of a host in its [`Sim`].
pub type HostId = usize;

/// One simulated host: an interface and its port's device.
pub struct Host {
    /// The layer 2/3 host.
    pub iface: Interface<HeapBuf>,
    /// Its port on the wire.
    pub dev: MemDevice,
    /// Events raised by the interface, oldest first.
    pub events: Vec<NetEvent>,
    /// IPv4 packets delivered for the transport layer, oldest first (at
    /// most [`MAX_KEPT_DELIVERIES`]; take them to keep receiving).
    pub delivered: Vec<Ipv4Delivery<HeapBuf>>,
    hook: Option<RxHook>,
    tx: Vec<HeapBuf>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("mac", &self.iface.mac())
            .field("events", &self.events.len())
            .field("delivered", &self.delivered.len())
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Host {
    /// The interface's counters.
    pub fn stats(&self) -> &NetStats {
        self.iface.stats()
    }

    /// Takes the events raised so far.
    pub fn take_events(&mut self) -> Vec<NetEvent> {
        core::mem::take(&mut self.events)
    }

    /// Takes the IPv4 deliveries kept so far.
    pub fn take_delivered(&mut self) -> Vec<Ipv4Delivery<HeapBuf>> {
        core::mem::take(&mut self.delivered)
    }
}

/// Why a host could not be added.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SimError {
    /// The interface configuration was refused.
    Interface(ConfigError),
    /// The wire refused the port.
    Port(MemConfigError),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Interface(e) => write!(f, "interface: {e}"),
            SimError::Port(e) => write!(f, "port: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

/// Hosts on one in-memory wire under a virtual clock. See the module
/// documentation.
pub struct Sim {
    clock: Clock,
    wire: MemWire,
    hosts: Vec<Host>,
    rx: Vec<HeapBuf>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.clock.now())
            .field("hosts", &self.hosts)
            .finish()
    }
}

impl Sim {
    /// An empty simulation on a wire seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Sim {
            clock: Clock::new(),
            wire: MemWire::new(seed),
            hosts: Vec::new(),
            rx: Vec::with_capacity(BURST),
        }
    }

    /// Adds a host: a port on the wire (MAC and MTU taken from `config`;
    /// other port settings, impairments included, from `port`) and its
    /// interface, created at the current virtual time.
    pub fn add_host(
        &mut self,
        config: InterfaceConfig,
        port: MemPortConfig,
    ) -> Result<HostId, SimError> {
        let iface = Interface::new(config, self.clock.now()).map_err(SimError::Interface)?;
        let port = MemPortConfig {
            mac: iface.mac(),
            mtu: iface.config().mtu,
            queues: 1,
            ..port
        };
        let dev = self
            .wire
            .add_port(port)
            .map_err(SimError::Port)?
            .pop()
            .ok_or(SimError::Port(MemConfigError::MacNotUnicast(iface.mac())))?;
        self.hosts.push(Host {
            iface,
            dev,
            events: Vec::new(),
            delivered: Vec::new(),
            hook: None,
            tx: Vec::new(),
        });
        Ok(self.hosts.len() - 1)
    }

    /// Installs (or removes) a receive hook on a host.
    pub fn set_hook(&mut self, host: HostId, hook: Option<RxHook>) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.hook = hook;
        }
    }

    /// The wire (to add raw ports, install a filter, read counters).
    pub fn wire(&self) -> &MemWire {
        &self.wire
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Moves the virtual clock forward by `d` without running anything.
    pub fn advance(&mut self, d: Duration) {
        self.clock.advance(d);
    }

    /// A host. Panics on an id `add_host` did not return (a test bug).
    pub fn host(&self, id: HostId) -> &Host {
        &self.hosts[id]
    }

    /// A host, mutably. Panics on an id `add_host` did not return.
    pub fn host_mut(&mut self, id: HostId) -> &mut Host {
        &mut self.hosts[id]
    }

    /// Number of hosts.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Runs `f` on a host's interface with the host's device as allocator,
    /// at the current time (to send from a test), then flushes its transmit
    /// queue to the wire.
    pub fn with_iface<R>(
        &mut self,
        id: HostId,
        f: impl FnOnce(&mut Interface<HeapBuf>, Instant, &mut DeviceAlloc<'_, MemDevice>) -> R,
    ) -> R {
        let now = self.clock.now();
        let host = &mut self.hosts[id];
        let r = f(&mut host.iface, now, &mut DeviceAlloc(&mut host.dev));
        Self::flush(host, now);
        r
    }

    /// Sends an ICMP echo request from host `from` now.
    pub fn ping(
        &mut self,
        from: HostId,
        dst: core::net::Ipv4Addr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) -> Result<(), crate::net::SendError> {
        self.with_iface(from, |iface, now, alloc| {
            iface.send_ping(now, dst, ident, seq_no, data, alloc)
        })
    }

    /// The earliest wake-up of any host or host device.
    pub fn next_wake(&self) -> Option<Instant> {
        self.hosts
            .iter()
            .flat_map(|h| [h.iface.poll_at(), h.dev.poll_at()])
            .flatten()
            .min()
    }

    /// Whether nothing is in progress: no frame due on a host's port, no
    /// frame waiting to be sent, no neighbour being resolved. Routine timers
    /// (ARP expiry and refresh) do not count.
    pub fn is_idle(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| h.dev.poll_at().is_none() && !h.iface.is_busy() && h.tx.is_empty())
    }

    /// Jumps the clock to the next wake-up (if later than now) and runs every
    /// host's loop once. Returns the time it ran at, or `None` when nothing
    /// was scheduled (the loops still ran at the current time).
    pub fn step(&mut self) -> Option<Instant> {
        let next = self.next_wake();
        if let Some(t) = next {
            self.clock.advance_to(t);
        }
        self.poll_all();
        next.map(|_| self.clock.now())
    }

    /// Steps until [`is_idle`](Self::is_idle), for at most `max_time` of
    /// virtual time (and [`MAX_STEPS`] steps). Returns whether it went idle.
    pub fn run_until_idle(&mut self, max_time: Duration) -> bool {
        let deadline = self.clock.now() + max_time;
        self.poll_all();
        for _ in 0..MAX_STEPS {
            if self.is_idle() {
                return true;
            }
            match self.next_wake() {
                Some(t) if t <= deadline => {
                    self.clock.advance_to(t);
                    self.poll_all();
                }
                _ => {
                    self.clock.advance_to(deadline);
                    self.poll_all();
                    return self.is_idle();
                }
            }
        }
        false
    }

    /// Runs every wake-up up to `now + d`, then leaves the clock there.
    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.clock.now() + d;
        self.poll_all();
        for _ in 0..MAX_STEPS {
            match self.next_wake() {
                Some(t) if t <= deadline => {
                    self.clock.advance_to(t);
                    self.poll_all();
                }
                _ => break,
            }
        }
        self.clock.advance_to(deadline);
        self.poll_all();
    }

    /// Runs every host's loop once at the current time.
    pub fn poll_all(&mut self) {
        let now = self.clock.now();
        for i in 0..self.hosts.len() {
            self.poll_host(i, now);
        }
    }

    fn poll_host(&mut self, id: HostId, now: Instant) {
        let mut rx = core::mem::take(&mut self.rx);
        // Forwarded frames are copied into the other port's buffers so each
        // device's pool keeps its own count.
        let mut forwards: Vec<(HostId, Vec<u8>)> = Vec::new();
        if let Some(host) = self.hosts.get_mut(id) {
            loop {
                let n = host.dev.rx_burst(now, &mut rx, BURST);
                for frame in rx.drain(..) {
                    let frame = match host.hook.as_mut() {
                        None => frame,
                        Some(hook) => match hook(now, frame) {
                            Hook::Pass(f) => f,
                            Hook::Consume(f) => {
                                host.dev.recycle(f);
                                continue;
                            }
                            Hook::Forward(to, f) => {
                                forwards.push((to, f.as_slice().to_vec()));
                                host.dev.recycle(f);
                                continue;
                            }
                        },
                    };
                    let mut alloc = DeviceAlloc(&mut host.dev);
                    if let Some(d) = host.iface.receive(now, frame, &mut alloc) {
                        if host.delivered.len() < MAX_KEPT_DELIVERIES {
                            host.delivered.push(d);
                        } else {
                            host.dev.recycle(d.buf);
                        }
                    }
                }
                if n < BURST {
                    break;
                }
            }
            if host.iface.poll_at().is_some_and(|t| t <= now) {
                host.iface
                    .handle_timeout(now, &mut DeviceAlloc(&mut host.dev));
            }
            Self::flush(host, now);
        }
        self.rx = rx;
        for (to, frame) in forwards {
            let Some(out) = self.hosts.get_mut(to) else {
                continue;
            };
            let Some(mut buf) = out.dev.alloc_tx() else {
                continue;
            };
            match buf.append(frame.len()) {
                Ok(room) => {
                    room.copy_from_slice(&frame);
                    out.tx.push(buf);
                    Self::flush(out, now);
                }
                Err(_) => out.dev.recycle(buf),
            }
        }
    }

    fn flush(host: &mut Host, now: Instant) {
        host.iface.drain_transmit(&mut host.tx);
        host.dev.tx_burst(now, &mut host.tx);
        while let Some(b) = host.iface.poll_recycle() {
            host.dev.recycle(b);
        }
        while let Some(e) = host.iface.poll_event() {
            host.events.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_moves_forward_only() {
        let mut c = Clock::new();
        c.advance(Duration::from_millis(5));
        c.advance_to(Instant::from_millis(3));
        assert_eq!(c.now(), Instant::from_millis(5));
        c.advance_to(Instant::from_millis(9));
        assert_eq!(c.now(), Instant::from_millis(9));
    }
}
