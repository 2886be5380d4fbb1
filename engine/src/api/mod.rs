//! What applications see: handlers called on the worker's core, and the
//! context they act through.
//!
//! # Inline handlers
//!
//! A [`Handler`] lives on one worker and is called from that worker's loop
//! (run to completion, no locks): when a connection it opened is
//! established, when a listener hands it a new connection, when data is
//! readable or send space opens, when the peer finishes sending, when a
//! connection closes, when one of its timers fires, and once per loop
//! iteration. Every call gets a [`Context`] to act: connect, send, receive,
//! close, shut down, abort, set timers.
//!
//! Order per loop iteration: received frames are processed first (events
//! queue up), then each event is handed to the handler in order, then
//! [`Handler::on_poll`], then due application timers; what the handler sent
//! leaves in the same iteration's transmit burst.
//!
//! Received data is zero copy: [`Context::recv`] returns a view of the
//! port's receive buffer; give it back with [`Context::release`] when done
//! (dropping it instead is safe but leaves a heap-backed port's pool a
//! buffer short until the region is reclaimed).
//!
//! # Application threads
//!
//! An application that cannot run on the worker's core (it blocks, or
//! it is big) runs on a thread of its own and talks to the worker over
//! bounded lock-free rings: see [`threads`].

pub mod threads;

use std::net::Ipv4Addr;

use crate::port::Device;
use crate::rt::{ConnectError, WorkerCore};
use crate::tcp::{CloseReason, ConnId, Connection, ListenConfig, StackError};
use crate::time::Instant;

/// Callbacks of an application running inline on a worker. Every method
/// has a default that does nothing.
pub trait Handler<D: Device> {
    /// Once, before the first loop iteration.
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        let _ = cx;
    }
    /// A connection this handler opened is established.
    fn on_connected(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let _ = (cx, id);
    }
    /// A listener on `port` established a new connection.
    fn on_accepted(&mut self, cx: &mut Context<'_, D>, id: ConnId, port: u16) {
        let _ = (cx, id, port);
    }
    /// In-order data is waiting: [`Context::recv`] or [`Context::read`].
    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let _ = (cx, id);
    }
    /// Send space opened after a send was refused.
    fn on_writable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let _ = (cx, id);
    }
    /// The peer sent FIN: nothing more will arrive.
    fn on_peer_fin(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let _ = (cx, id);
    }
    /// The connection is gone; `id` is stale from here on.
    fn on_closed(&mut self, cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        let _ = (cx, id, reason);
    }
    /// A timer set with [`Context::set_timer`] is due.
    fn on_timer(&mut self, cx: &mut Context<'_, D>, token: u64) {
        let _ = (cx, token);
    }
    /// Once per loop iteration, after events.
    fn on_poll(&mut self, cx: &mut Context<'_, D>) {
        let _ = cx;
    }
    /// When `true`, the worker finishes its loop (after sending what is
    /// queued).
    fn is_done(&self) -> bool {
        false
    }
}

/// The handler's access to its worker: the stack, the port's pool, timers.
pub struct Context<'a, D: Device> {
    pub(crate) core: &'a mut WorkerCore<D>,
    pub(crate) now: Instant,
}

impl<D: Device> core::fmt::Debug for Context<'_, D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Context")
            .field("worker", &self.core.index)
            .field("now", &self.now)
            .finish()
    }
}

impl<'a, D: Device> Context<'a, D> {
    /// The loop iteration's time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// This worker's index (= its queue).
    pub fn worker(&self) -> usize {
        self.core.index
    }

    /// Opens a connection to `remote` from one of the worker's source
    /// addresses, with a source port whose replies reach this worker's
    /// queue (see [`crate::rt::rss_pick`]).
    pub fn connect(&mut self, remote: (Ipv4Addr, u16)) -> Result<ConnId, ConnectError> {
        self.core.connect(self.now, remote)
    }

    /// Listens on `port`.
    pub fn listen(&mut self, port: u16, config: ListenConfig) -> Result<(), StackError> {
        self.core.host.listen(port, config)
    }

    /// An empty buffer from the port's pool with headroom for headers; fill
    /// it and pass it to [`send`](Self::send). `None` when the pool is dry.
    pub fn alloc(&mut self) -> Option<D::Buf> {
        self.core.host.lp.dev.alloc_tx()
    }

    /// Queues `buf`'s bytes for sending without copying them; hands the
    /// buffer back when the connection cannot take it now (send buffer
    /// full: wait for [`Handler::on_writable`]) or is gone.
    pub fn send(&mut self, id: ConnId, buf: D::Buf) -> Result<(), D::Buf> {
        let mut slot = Some(buf);
        let r = self.core.host.with_conn(self.now, id, |c, _| {
            let b = slot.take().expect("taken once");
            c.send(b)
        });
        match (r, slot) {
            (Some(r), _) => r,
            (None, Some(b)) => Err(b),
            (None, None) => unreachable!("the closure ran only if the connection exists"),
        }
    }

    /// Copies `data` into pool buffers and queues them; returns how many
    /// bytes were taken (fewer when the send buffer is full, 0 if the
    /// connection is gone). For small writes, where a copy is cheaper than a
    /// buffer of one's own.
    pub fn send_slice(&mut self, id: ConnId, data: &[u8]) -> usize {
        self.core
            .host
            .with_conn(self.now, id, |c, alloc| c.send_slice(data, alloc))
            .unwrap_or(0)
    }

    /// The next in-order received payload, as a view of the receive buffer.
    pub fn recv(&mut self, id: ConnId) -> Option<D::Buf> {
        self.core
            .host
            .with_conn(self.now, id, |c, _| c.recv())
            .flatten()
    }

    /// Copies received bytes into `out`; returns how many.
    pub fn read(&mut self, id: ConnId, out: &mut [u8]) -> usize {
        self.core
            .host
            .with_conn(self.now, id, |c, _| c.read(out))
            .unwrap_or(0)
    }

    /// Gives a received buffer back to the port.
    pub fn release(&mut self, buf: D::Buf) {
        self.core.host.lp.recycle(buf);
    }

    /// Closes the connection after queued data (FIN; RFC 9293 §3.10.4).
    pub fn close(&mut self, id: ConnId) {
        let now = self.now;
        self.core.host.with_conn(now, id, |c, _| c.close(now));
    }

    /// Stops sending (FIN) but keeps receiving: a half-close.
    pub fn shutdown(&mut self, id: ConnId) {
        let now = self.now;
        self.core.host.with_conn(now, id, |c, _| c.shutdown(now));
    }

    /// Resets the connection (RST) and forgets it.
    pub fn abort(&mut self, id: ConnId) {
        let now = self.now;
        self.core.host.with_conn(now, id, |c, _| c.abort(now));
    }

    /// A connection's state and counters.
    pub fn conn(&self, id: ConnId) -> Option<&Connection<D::Buf>> {
        self.core.host.tcp.conn(id)
    }

    /// Calls [`Handler::on_timer`] with `token` at or after `at`.
    pub fn set_timer(&mut self, at: Instant, token: u64) {
        self.core.set_timer(at, token);
    }

    /// Connections open on this worker.
    pub fn connections(&self) -> usize {
        self.core.host.tcp.connections()
    }

    /// Asks the worker to finish its loop.
    pub fn stop(&mut self) {
        self.core.stop_requested = true;
    }
}
