//! A whole host on one device queue: the layer 2/3 interface and a TCP
//! stack above it, in one worker's loop.
//!
//! Call order per loop iteration: [`TcpHost::poll`] with the iteration's
//! `now` (receive, IPv4 to TCP, timers, transmit); application calls through
//! [`TcpHost::tcp`] / [`TcpHost::with_conn`]; then [`TcpHost::flush`] so what
//! they queued goes out in the same iteration. [`TcpHost::poll_at`] tells an
//! idle loop (or a simulator) when to come back.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use super::{DeviceAlloc, HostLoop};
use crate::net::{Interface, NetEvent};
use crate::port::Device;
use crate::tcp::{ConnId, Connection, Event, ListenConfig, StackError, TcpStack};
use crate::time::Instant;
use crate::wire::IpProtocol;

/// Most events kept for [`TcpHost::poll_event`]; older ones are dropped and
/// counted when the application does not collect them.
pub const EVENT_QUEUE_LEN: usize = 1 << 16;

/// An interface and a TCP stack on one device queue.
#[derive(Debug)]
pub struct TcpHost<D: Device> {
    /// The layer 2/3 host and its device.
    pub lp: HostLoop<D>,
    /// The TCP layer.
    pub tcp: TcpStack<D::Buf>,
    events: VecDeque<(ConnId, Event)>,
    net_events: VecDeque<NetEvent>,
    dropped_events: u64,
    send_errors: u64,
}

impl<D: Device> TcpHost<D> {
    /// Joins `iface` on `dev` with `tcp` above it.
    pub fn new(iface: Interface<D::Buf>, dev: D, tcp: TcpStack<D::Buf>) -> Self {
        TcpHost {
            lp: HostLoop::new(iface, dev),
            tcp,
            events: VecDeque::new(),
            net_events: VecDeque::new(),
            dropped_events: 0,
            send_errors: 0,
        }
    }

    /// One loop iteration at `now`.
    pub fn poll(&mut self, now: Instant) {
        let TcpHost {
            lp,
            tcp,
            net_events,
            ..
        } = self;
        let mut other = Vec::new();
        lp.poll(
            now,
            |d| {
                if d.repr.protocol == IpProtocol::Tcp {
                    tcp.handle_packet(now, d);
                } else {
                    other.push(d.buf);
                }
            },
            |e| net_events.push_back(e),
        );
        for b in other {
            self.lp.recycle(b);
        }
        self.tcp.handle_timeout(now);
        self.flush(now);
    }

    /// Sends what the TCP layer has queued (after application calls) and
    /// collects events and released buffers.
    pub fn flush(&mut self, now: Instant) {
        self.flush_with(now, true);
    }

    /// [`flush`](Self::flush), handing frames to the device only when
    /// `to_device` (else they wait in the interface's queue, up to its
    /// length, for a later, fuller burst).
    pub fn flush_with(&mut self, now: Instant, to_device: bool) {
        loop {
            if self.lp.iface.tx_queue_full() {
                // Hand the queue to the device before taking more from
                // TCP; if the device is full too, the rest stays in TCP
                // (its connections remain due) for the next iteration.
                self.lp.flush(now);
                if self.lp.iface.tx_queue_full() {
                    break;
                }
            }
            let Some((src, dst, seg)) = self
                .tcp
                .poll_transmit_from(now, &mut DeviceAlloc(&mut self.lp.dev))
            else {
                break;
            };
            // A failed send (no route, ARP queue full) is a lost segment to
            // TCP, which retransmits; the interface has counted why.
            if self
                .lp
                .iface
                .send_ipv4_from(
                    now,
                    Some(src),
                    dst,
                    IpProtocol::Tcp,
                    seg,
                    &mut DeviceAlloc(&mut self.lp.dev),
                )
                .is_err()
            {
                self.send_errors += 1;
            }
        }
        if to_device {
            self.lp.flush(now);
        }
        while let Some(b) = self.tcp.poll_recycle() {
            self.lp.recycle(b);
        }
        while let Some(e) = self.tcp.poll_event() {
            if self.events.len() >= EVENT_QUEUE_LEN {
                self.events.pop_front();
                self.dropped_events += 1;
            }
            self.events.push_back(e);
        }
    }

    /// The earliest time the host has work without new frames.
    pub fn poll_at(&self) -> Option<Instant> {
        [self.lp.poll_at(), self.tcp.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next connection event.
    pub fn poll_event(&mut self) -> Option<(ConnId, Event)> {
        self.events.pop_front()
    }

    /// The next interface event (ICMP, ARP failures).
    pub fn poll_net_event(&mut self) -> Option<NetEvent> {
        self.net_events.pop_front()
    }

    /// Events dropped because nobody collected them.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Segments the interface refused (no route, ARP queue full, ...).
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    /// Listens on `port`.
    pub fn listen(&mut self, port: u16, config: ListenConfig) -> Result<(), StackError> {
        self.tcp.listen(port, config)
    }

    /// Opens a connection from our first address to `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: (Ipv4Addr, u16),
        local_port: Option<u16>,
    ) -> Result<ConnId, StackError> {
        let local = self
            .lp
            .iface
            .config()
            .addrs
            .first()
            .map_or(Ipv4Addr::UNSPECIFIED, |c| c.addr);
        self.tcp.connect(now, local, local_port, remote)
    }

    /// Runs `f` on a connection with the device's pool at hand (for
    /// `send_slice`), then brings the stack up to date.
    pub fn with_conn<R>(
        &mut self,
        now: Instant,
        id: ConnId,
        f: impl FnOnce(&mut Connection<D::Buf>, &mut DeviceAlloc<'_, D>) -> R,
    ) -> Option<R> {
        let TcpHost { lp, tcp, .. } = self;
        tcp.with_conn(now, id, |c| f(c, &mut DeviceAlloc(&mut lp.dev)))
    }
}
