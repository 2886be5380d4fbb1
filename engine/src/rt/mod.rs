//! The runtime: the loops that join a [`Device`] to the sans-IO stack.
//!
//! [`HostLoop`] is one worker's loop over one queue, as DESIGN.md draws it:
//! receive a burst, hand each frame to the interface, run due timers, send
//! what the stack produced in one burst, give dropped buffers back to the
//! device. The caller reads the clock once per iteration and passes it in.
//! [`TcpHost`] adds a TCP stack above it.

pub mod ring;
pub mod rss_pick;
mod runtime;
pub mod stats;
mod tcp_host;
mod worker;

pub use runtime::{host_secret, random_secret, Runtime, RuntimeError, WorkerResult, WorkerSetup};
pub use stats::WorkerSnapshot;
pub use tcp_host::{TcpHost, EVENT_QUEUE_LEN};
pub use worker::{
    cross_core_mesh, ConnectError, CrossCore, Forward, IdlePolicy, LoopStats, Worker, WorkerConfig,
    WorkerCore,
};

use crate::buf::BufAlloc;
use crate::net::{Interface, Ipv4Delivery, NetEvent};
use crate::port::Device;
use crate::time::Instant;

/// Frames received or sent per burst.
pub const BURST: usize = 32;

/// Lends a device's own buffer pool to the stack as a [`BufAlloc`].
#[derive(Debug)]
pub struct DeviceAlloc<'a, D>(pub &'a mut D);

impl<D: Device> BufAlloc for DeviceAlloc<'_, D> {
    type Buf = D::Buf;
    fn alloc(&mut self) -> Option<D::Buf> {
        self.0.alloc_tx()
    }
}

/// What one iteration of a [`HostLoop`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Frames received.
    pub rx: usize,
    /// Frames sent.
    pub tx: usize,
}

impl Progress {
    /// Whether the iteration moved any frame.
    pub fn is_idle(&self) -> bool {
        self.rx == 0 && self.tx == 0
    }
}

/// One interface on one device queue, driven by the caller's loop.
#[derive(Debug)]
pub struct HostLoop<D: Device> {
    /// The layer 2/3 host.
    pub iface: Interface<D::Buf>,
    /// The device queue it owns.
    pub dev: D,
    rx: Vec<D::Buf>,
    tx: Vec<D::Buf>,
}

impl<D: Device> HostLoop<D> {
    /// Joins `iface` to `dev`.
    pub fn new(iface: Interface<D::Buf>, dev: D) -> Self {
        HostLoop {
            iface,
            dev,
            rx: Vec::with_capacity(BURST),
            tx: Vec::with_capacity(BURST),
        }
    }

    /// Runs one iteration at `now`. IPv4 packets for the transport layer go
    /// to `deliver`, interface events to `event`.
    pub fn poll(
        &mut self,
        now: Instant,
        mut deliver: impl FnMut(Ipv4Delivery<D::Buf>),
        mut event: impl FnMut(NetEvent),
    ) -> Progress {
        let mut progress = Progress::default();
        loop {
            let n = self.dev.rx_burst(now, &mut self.rx, BURST);
            progress.rx += n;
            for frame in self.rx.drain(..) {
                if let Some(d) = self
                    .iface
                    .receive(now, frame, &mut DeviceAlloc(&mut self.dev))
                {
                    deliver(d);
                }
            }
            if n < BURST {
                break;
            }
        }
        if self.iface.poll_at().is_some_and(|t| t <= now) {
            self.iface
                .handle_timeout(now, &mut DeviceAlloc(&mut self.dev));
        }
        progress.tx += self.flush(now);
        while let Some(e) = self.iface.poll_event() {
            event(e);
        }
        progress
    }

    /// Sends what the interface has queued; returns how many frames went.
    pub fn flush(&mut self, now: Instant) -> usize {
        self.iface.drain_transmit(&mut self.tx);
        let sent = self.dev.tx_burst(now, &mut self.tx);
        while let Some(b) = self.iface.poll_recycle() {
            self.dev.recycle(b);
        }
        sent
    }

    /// Gives a buffer (a delivered packet's, say) back to the device.
    pub fn recycle(&mut self, buf: D::Buf) {
        self.dev.recycle(buf);
    }

    /// The earliest time the loop has work without new frames: the
    /// interface's next timer or the device's next delivery.
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.iface.poll_at(), self.dev.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Frames waiting to go out (device ring was full).
    pub fn pending_tx(&self) -> usize {
        self.tx.len()
    }

    /// Runs `f` with the interface, the time and the device's pool, then
    /// sends what it queued.
    pub fn with_iface<R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Interface<D::Buf>, &mut DeviceAlloc<'_, D>) -> R,
    ) -> R {
        let r = f(&mut self.iface, &mut DeviceAlloc(&mut self.dev));
        self.flush(now);
        r
    }
}
