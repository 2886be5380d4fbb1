//! Sans-IO TCP: the self-contained building blocks of the TCP layer.
//!
//! Nothing here does I/O, reads a clock or draws randomness: time comes in
//! as `now: Instant`, secrets come in at construction. Sequence numbers are
//! plain `u32` with wrapping arithmetic.
//!
//! | module | what | reference |
//! |---|---|---|
//! | [`timer`] | per-connection timer table: [`Timer`] indexes [`TimerTable`] | RFC 9293 §3.8, RFC 1122 §4.2.3 |
//! | [`wheel`] | per-core non-cascading [`TimerWheel`]: O(1) insert/cancel/reschedule, amortised O(1) per fired timer; never early, exact to the tick up to 32 768 ticks ahead, beyond late by under 8/63 of the delay | Linux `kernel/time/timer.c` (since 4.8) |
//! | [`rtt`] | [`RttEstimator`]: SRTT, RTTVAR, RTO with backoff, Karn's rule | RFC 6298, RFC 7323 §4 |
//! | [`cc`] | [`CongestionControl`]: NewReno and CUBIC behind [`CongestionController`] | RFC 5681, 3465, 6582, 6928, 9438 |
//! | [`siphash`] | SipHash-2-4 | Aumasson & Bernstein 2012 |
//! | [`isn`] | [`IsnGenerator`]: clock plus keyed hash of the 4-tuple | RFC 6528 |
//! | [`syncookie`] | [`SynCookies`]: stateless SYN-ACK under SYN floods | RFC 4987 §3.6 |
//!
//! # How the connection state machine uses them
//!
//! - Each connection holds a [`TimerTable`] (48 bytes), an [`RttEstimator`]
//!   and a [`CongestionControl`] chosen by [`CcAlgorithm`]. It arms timers
//!   in its table (RTO from [`RttEstimator::rto`], delayed ACK, persist,
//!   keep-alive, FIN-WAIT-2, TIME-WAIT).
//! - The worker's single [`TimerWheel`] holds one entry per connection with
//!   timers, at [`TimerTable::next`], carrying the connection's index. After
//!   changing its table a connection calls
//!   [`reschedule`](TimerWheel::reschedule) (or
//!   [`insert`](TimerWheel::insert) / [`cancel`](TimerWheel::cancel)) when
//!   the minimum moved; most changes (re-arming the RTO later on every ACK)
//!   only move a deadline later, and the state machine may leave the wheel
//!   entry early and re-file it when it fires (lazy re-arm).
//! - Each loop iteration the worker drains
//!   [`poll_expired(now)`](TimerWheel::poll_expired); each call touches the
//!   timer it returns plus, at most, timers due within 512 ticks that it
//!   re-files into finer slots (at most three times each), so a worker may
//!   also stop after a budget and go on next iteration. The wheel never
//!   fires an entry early, and fires it on the tick up to 32 768 ticks
//!   (~32.8 s at 1 ms) ahead: RTO up to 32 s, SYN retransmission, delayed
//!   ACK, persist and zero-window probes keep RFC timing. Beyond, it
//!   rounds up to coarse slots as Linux does, late by less than 8/63 of the
//!   delay (a 60 s TIME-WAIT by at most 4.1 s, a 2 h keep-alive by at most
//!   4.4 min). For each
//!   connection it runs `handle_timeout(now)`, which walks
//!   [`TimerTable::expired`] and re-files the connection at the new
//!   [`TimerTable::next`].
//! - On an ACK: RTT sample through [`rtt::karn_sample_allowed`] into
//!   [`RttEstimator::on_sample`]; window through
//!   [`CongestionController::on_ack`], or the recovery hooks (see [`cc`]).
//!   On RTO expiry: [`RttEstimator::on_timeout`] and
//!   [`CongestionController::on_rto`].
//! - Active open: the ISN from [`IsnGenerator::isn`]. Passive open under
//!   SYN pressure: [`SynCookies::generate`] for the SYN-ACK's ISN (plus
//!   [`syncookie::encode_ts_opts`] when the SYN carried timestamps), and
//!   [`SynCookies::validate`] / [`syncookie::decode_ts_opts`] on the ACK
//!   for which no half-open state exists.
//!
//! Nothing in this module panics on any input; `unsafe` is forbidden.
#![forbid(unsafe_code)]

use core::net::Ipv4Addr;

pub mod cc;
pub mod config;
pub mod conn;
pub mod flow;
pub mod isn;
pub mod recv;
pub mod rtt;
pub mod script;
pub mod send;
pub mod siphash;
pub mod stack;
pub mod syncookie;
pub mod timer;
pub mod wheel;

pub use cc::{CcAlgorithm, CongestionControl, CongestionController};
pub use config::{Keepalive, SharedConfig, TcpConfig, ToSharedConfig};
pub use conn::{rst_for, CloseReason, ConnStats, Connection, Event, State};
pub use isn::IsnGenerator;
pub use recv::{Insert, RecvQueue};
pub use rtt::{RttConfig, RttEstimator};
pub use stack::{ConnId, ListenConfig, StackError, StackStats, TcpStack};
pub use syncookie::{CookieInfo, SynCookies};
pub use timer::{Timer, TimerTable};
pub use wheel::{TimerHandle, TimerWheel};

/// A connection's addresses and ports, from our side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FourTuple {
    /// Our address.
    pub local_addr: Ipv4Addr,
    /// Our port.
    pub local_port: u16,
    /// The peer's address.
    pub remote_addr: Ipv4Addr,
    /// The peer's port.
    pub remote_port: u16,
}

impl FourTuple {
    /// Network-order bytes: local address, local port, remote address,
    /// remote port (the argument order of RFC 6528 §3's `F`).
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.local_addr.octets());
        b[4..6].copy_from_slice(&self.local_port.to_be_bytes());
        b[6..10].copy_from_slice(&self.remote_addr.octets());
        b[10..].copy_from_slice(&self.remote_port.to_be_bytes());
        b
    }
}
