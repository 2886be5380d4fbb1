//! Per-connection TCP tunables.
//!
//! Every knob carries its default and the RFC (or the Linux sysctl) it comes
//! from. Defaults follow Linux where Linux has one, so the engine behaves
//! like the stack it is measured against.
//!
//! Connections do not carry a copy: they share one [`SharedConfig`] per
//! profile (a pointer each), so a connection stays small (DESIGN.md
//! principle 6) and the configuration's cache lines are shared by all the
//! connections of a worker.

use std::sync::Arc;

use crate::time::Duration;
use crate::wire::ChecksumCaps;

use super::cc::CcAlgorithm;
use super::rtt::RttConfig;

/// Keep-alive probing (RFC 1122 §4.2.3.6). Linux defaults:
/// `tcp_keepalive_time` 7200 s, `tcp_keepalive_intvl` 75 s,
/// `tcp_keepalive_probes` 9.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (7200 s; RFC 1122: at least 2 h by
    /// default).
    pub idle: Duration,
    /// Time between unanswered probes (75 s).
    pub interval: Duration,
    /// Unanswered probes before the peer is declared dead (9).
    pub probes: u8,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            probes: 9,
        }
    }
}

/// Configuration shared by the connections of a listener or a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// MSS we announce and the most we send per segment: 1460 (an Ethernet
    /// MTU of 1500 less 40 bytes of IPv4 and TCP headers; RFC 9293 §3.7.1,
    /// RFC 6691). A peer that sends no MSS option is assumed to take 536.
    pub mss: u16,
    /// Receive buffer in bytes: the largest window we offer (256 KiB; Linux
    /// `tcp_rmem` default is 128 KiB growing by auto-tuning, which is not
    /// done here). Clamped to 65535·2¹⁴ (RFC 7323 §2.3).
    pub rcv_buf: u32,
    /// Send buffer in bytes: queued plus unacknowledged data accepted from
    /// the application (256 KiB).
    pub snd_buf: u32,
    /// Offer window scaling (RFC 7323 §2; on, like Linux `tcp_window_scaling`).
    pub window_scale: bool,
    /// Offer SACK (RFC 2018; on, like Linux `tcp_sack`).
    pub sack: bool,
    /// Offer timestamps (RFC 7323 §3; on, like Linux `tcp_timestamps`).
    pub timestamps: bool,
    /// Disable Nagle's algorithm (RFC 896, RFC 9293 §3.7.4; off, like
    /// Linux `TCP_NODELAY` unset).
    pub nodelay: bool,
    /// Delayed ACK timeout: 40 ms, Linux's `TCP_DELACK_MIN` (Linux starts
    /// there and grows towards 200 ms only for interactive flows; RFC 1122
    /// §4.2.3.2 and RFC 9293 §3.8.6.3 cap it at 500 ms). Zero disables
    /// delayed ACKs.
    pub delayed_ack: Duration,
    /// Congestion control algorithm (CUBIC, as Linux).
    pub cc: CcAlgorithm,
    /// RTO estimator bounds (RFC 6298; min 200 ms, max 120 s as Linux).
    pub rtt: RttConfig,
    /// SYN retransmissions before an active open gives up: 6 (Linux
    /// `tcp_syn_retries`; RFC 9293 §3.8.3 R2 for SYN at least 3 min is
    /// reached with backoff: 1+2+4+8+16+32+64 = 127 s).
    pub syn_retries: u8,
    /// SYN-ACK retransmissions in SYN-RECEIVED: 5 (Linux `tcp_synack_retries`).
    pub synack_retries: u8,
    /// Data retransmissions before the connection is dropped: 15 (Linux
    /// `tcp_retries2`; RFC 9293 §3.8.3 R2 ≥ 100 s).
    pub retries2: u8,
    /// FIN-WAIT-2 bound after `close()`: 60 s (Linux `tcp_fin_timeout`).
    pub fin_wait2_timeout: Duration,
    /// Maximum segment lifetime: 30 s, so TIME-WAIT lasts 2·MSL = 60 s, as
    /// Linux's `TCP_TIMEWAIT_LEN` (RFC 9293 §3.4.2 suggests MSL = 2 min).
    pub msl: Duration,
    /// Accept a new SYN on a TIME-WAIT connection when its timestamp or
    /// sequence number is newer (RFC 6191, RFC 9293 §3.10.7.4 note). Off.
    pub time_wait_reuse: bool,
    /// Keep-alive probing; `None` (off, as Linux without `SO_KEEPALIVE`).
    pub keepalive: Option<Keepalive>,
    /// Challenge ACKs sent per second at most (RFC 5961 §7; Linux
    /// `tcp_challenge_ack_limit` 1000).
    pub challenge_ack_limit: u32,
    /// Out-of-order pieces held for reassembly at most (each pins one
    /// buffer): 256.
    pub max_ooo_segments: u16,
    /// Persist (zero-window probe) interval cap: 60 s (RFC 9293 §3.8.6.1:
    /// exponential backoff; Linux caps at `TCP_RTO_MAX`).
    pub max_persist: Duration,
    /// Duplicate ACK threshold for fast retransmit: 3 (RFC 5681 §3.2,
    /// RFC 6675 `DupThresh`).
    pub dup_thresh: u8,
    /// Who computes the TCP checksum of transmitted segments.
    pub checksum: ChecksumCaps,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            rcv_buf: 256 * 1024,
            snd_buf: 256 * 1024,
            window_scale: true,
            sack: true,
            timestamps: true,
            nodelay: false,
            delayed_ack: Duration::from_millis(40),
            cc: CcAlgorithm::Cubic,
            rtt: RttConfig::default(),
            syn_retries: 6,
            synack_retries: 5,
            retries2: 15,
            fin_wait2_timeout: Duration::from_secs(60),
            msl: Duration::from_secs(30),
            time_wait_reuse: false,
            keepalive: None,
            challenge_ack_limit: 1000,
            max_ooo_segments: 256,
            max_persist: Duration::from_secs(60),
            dup_thresh: 3,
            checksum: ChecksumCaps::SOFTWARE,
        }
    }
}

impl TcpConfig {
    /// The window scale shift we offer: the smallest that lets `rcv_buf`
    /// be advertised (RFC 7323 §2.3, at most 14), or `None` when scaling is
    /// off.
    pub fn wscale_shift(&self) -> Option<u8> {
        if !self.window_scale {
            return None;
        }
        let mut s = 0u8;
        while s < 14 && (self.rcv_buf >> s) > 65_535 {
            s += 1;
        }
        Some(s)
    }
}

/// A [`TcpConfig`] shared by every connection that uses it: one allocation
/// per profile, one pointer per connection. Cloning it shares it (a
/// reference count, touched when a connection is created or dropped, never
/// per segment). Each worker's stack holds its own, so no cache line is
/// shared between cores.
///
/// Constructors of [`Connection`](super::Connection) take either (see
/// [`ToSharedConfig`]): a `&SharedConfig` is shared; a `&TcpConfig`
/// (standalone connections, tests) is copied into a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedConfig(Arc<TcpConfig>);

impl SharedConfig {
    /// `config` in shared storage.
    pub fn new(config: TcpConfig) -> Self {
        SharedConfig(Arc::new(config))
    }

    /// Whether both share one allocation.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Default for SharedConfig {
    fn default() -> Self {
        Self::new(TcpConfig::default())
    }
}

impl core::ops::Deref for SharedConfig {
    type Target = TcpConfig;

    #[inline]
    fn deref(&self) -> &TcpConfig {
        &self.0
    }
}

impl From<TcpConfig> for SharedConfig {
    fn from(config: TcpConfig) -> Self {
        Self::new(config)
    }
}

/// Where a connection takes its configuration from: a [`SharedConfig`]
/// (shared: a reference count) or a [`TcpConfig`] (copied into a new
/// [`SharedConfig`] of its own).
pub trait ToSharedConfig {
    /// The shared configuration.
    fn to_shared(&self) -> SharedConfig;
}

impl ToSharedConfig for SharedConfig {
    fn to_shared(&self) -> SharedConfig {
        self.clone()
    }
}

impl ToSharedConfig for TcpConfig {
    fn to_shared(&self) -> SharedConfig {
        SharedConfig::new(*self)
    }
}
