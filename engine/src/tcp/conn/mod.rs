//! The TCP connection state machine (RFC 9293), sans-IO.
//!
//! A [`Connection`] does no I/O and reads no clock. The driver owns it and,
//! quinn-style, alternates inputs and outputs:
//!
//! 1. create it: [`Connection::connect`] (active open), [`Connection::accept`]
//!    (a SYN arrived at a listener) or [`Connection::accept_cookie`] (a valid
//!    SYN-cookie ACK arrived);
//! 2. feed it: [`handle_segment`](Connection::handle_segment) for each
//!    segment of its 4-tuple, [`handle_timeout`](Connection::handle_timeout)
//!    when [`poll_timeout`](Connection::poll_timeout) has passed, and the
//!    application calls ([`send`](Connection::send), [`recv`](Connection::recv),
//!    [`shutdown`](Connection::shutdown), [`close`](Connection::close), ...);
//! 3. after any of those, drain the outputs: [`poll_transmit`](Connection::poll_transmit)
//!    until `None` (each call yields one segment), [`poll_event`](Connection::poll_event)
//!    until `None`, [`poll_recycle`](Connection::poll_recycle) until `None`,
//!    then re-file the connection on the timer wheel at
//!    [`poll_timeout`](Connection::poll_timeout);
//! 4. once [`state`](Connection::state) is [`State::Closed`] and the events
//!    are drained, drop it.
//!
//! The modules split by concern: [`input`] (segment arrival, RFC 9293
//! §3.10.7), [`loss`] (the sender's loss detection: RTT samples, RACK-TLP),
//! [`output`] (what to send and building it), [`timers`] (the timer
//! table's expiry). Nothing here panics on any segment: hostile input
//! is normal input (DESIGN.md principle 8), and every drop is counted in
//! [`ConnStats`].

use crate::buf::{BufAlloc, PacketBuf};
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpRepr, TcpSeqNumber};

use super::cc::{CongestionControl, CongestionController};
use super::config::{SharedConfig, ToSharedConfig};
use super::rtt::RttEstimator;
use super::send::{seq_le, seq_lt, seq_max, Scoreboard, SendQueue};
use super::timer::{Timer, TimerTable};
use super::FourTuple;

mod check;
mod fast;
mod input;
mod loss;
mod output;
mod timers;

#[doc(hidden)]
pub use check::SeqVars;

#[cfg(test)]
mod tests;

use super::recv::{Insert, RecvQueue, RecvStats};

/// Connection states, RFC 9293 §3.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection.
    Closed,
    /// Waiting for a SYN (listeners; a [`Connection`] never sits here).
    Listen,
    /// Our SYN is out, waiting for the peer's.
    SynSent,
    /// SYNs crossed or we answered one; waiting for the ACK of ours.
    SynReceived,
    /// Open: data flows both ways.
    Established,
    /// We sent FIN; waiting for its ACK (and the peer's FIN).
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's.
    FinWait2,
    /// The peer sent FIN; we may still send.
    CloseWait,
    /// Both sent FIN, ours not yet acknowledged (simultaneous close).
    Closing,
    /// The peer closed first and we sent FIN; waiting for its ACK.
    LastAck,
    /// Both FINs acknowledged; 2·MSL quiet time (RFC 9293 §3.6.1).
    TimeWait,
}

impl State {
    /// Number of states (for tables indexed by `state as usize`).
    pub const COUNT: usize = 11;

    /// Every state, in declaration order (`ALL[s as usize] == s`).
    pub const ALL: [State; State::COUNT] = [
        State::Closed,
        State::Listen,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ];

    /// The state's name as RFC 9293 writes it.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }

    /// Whether the handshake is over (RFC 9293 §3.3.2 "synchronized").
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            State::Closed | State::Listen | State::SynSent | State::SynReceived
        )
    }
}

/// Why a connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Orderly close: both FINs exchanged and acknowledged.
    Normal,
    /// The peer reset it.
    Reset,
    /// Retransmissions, SYN retries, keep-alive probes or the FIN-WAIT-2
    /// bound ran out.
    TimedOut,
    /// The peer answered our SYN with a RST (connection refused).
    Refused,
    /// The application aborted it (or closed with unread data).
    Aborted,
}

/// What the application learns from [`Connection::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// The handshake completed.
    Connected,
    /// In-order data is ready for [`Connection::recv`] / [`Connection::read`].
    Readable,
    /// Send buffer space opened after a refused [`Connection::send`].
    Writable,
    /// The peer sent FIN: no more data will arrive.
    PeerFin,
    /// The connection is closed; the last event.
    Closed(CloseReason),
}

/// Per-connection counters (saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Segments handed to [`Connection::handle_segment`].
    pub segs_in: u32,
    /// Segments built by [`Connection::poll_transmit`].
    pub segs_out: u32,
    /// Data segments (or FIN / SYN) sent again, for any reason.
    pub retransmits: u32,
    /// Retransmission timeouts.
    pub rto_timeouts: u32,
    /// Fast retransmits (loss recovery entered, RFC 5681 §3.2 / RFC 6675).
    pub fast_retransmits: u32,
    /// Segments RACK deemed lost (RFC 8985 §6.2), retransmissions
    /// included.
    pub rack_lost: u32,
    /// Tail loss probes sent (RFC 8985 §7).
    pub loss_probes: u32,
    /// Duplicate ACKs received (RFC 5681 §2 definition).
    pub dup_acks: u32,
    /// Bytes newly SACKed by the peer.
    pub sacked_bytes: u32,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u32,
    /// Challenge ACKs suppressed by the rate limit (RFC 5961 §7).
    pub challenge_acks_suppressed: u32,
    /// Segments dropped by PAWS (RFC 7323 §5).
    pub paws_drops: u32,
    /// Segments failing the acceptability test (RFC 9293 §3.10.7.4).
    pub out_of_window: u32,
    /// ACKs for data not yet sent, or too old (RFC 5961 §5.2).
    pub bad_acks: u32,
    /// Segments dropped for other reasons (no ACK bit, wrong state, no
    /// buffer for the payload, ...).
    pub dropped: u32,
    /// Segments with payload already received (duplicates, fully trimmed).
    pub duplicate_segments: u32,
    /// Segments stored out of order.
    pub ooo_segments: u32,
    /// RSTs received and acted on.
    pub resets_in: u32,
    /// RSTs sent.
    pub resets_out: u32,
    /// Zero-window probes sent.
    pub window_probes: u32,
    /// Keep-alive probes sent.
    pub keepalive_probes: u32,
    /// Pure ACKs sent.
    pub acks_out: u32,
    /// `poll_transmit` found no buffer in the pool.
    pub alloc_failures: u32,
}

#[inline]
pub(crate) fn bump(c: &mut u32) {
    *c = c.saturating_add(1);
}

// Connection flags.
const F_TS: u32 = 1 << 0;
const F_SACK: u32 = 1 << 1;
const F_FIN_QUEUED: u32 = 1 << 2;
const F_ACK_NOW: u32 = 1 << 3;
const F_PROBE: u32 = 1 << 4;
const F_KEEPALIVE: u32 = 1 << 5;
const F_APP_CLOSED: u32 = 1 << 6;
const F_RTT_TIMING: u32 = 1 << 7;
const F_SYN_TIMED_OUT: u32 = 1 << 8;
const F_RECOVERY: u32 = 1 << 9;
const F_PASSIVE: u32 = 1 << 10;
const F_REXMIT_HEAD: u32 = 1 << 11;
const F_WANT_WRITE: u32 = 1 << 12;
const F_RST_PENDING: u32 = 1 << 13;
const F_RST_HAS_ACK: u32 = 1 << 14;
const F_SYN_OPTS_PEER_WS: u32 = 1 << 15;
const F_TS_RECENT_VALID: u32 = 1 << 16;
const F_RECV_SHUT: u32 = 1 << 17;
const F_PEER_FIN: u32 = 1 << 18;
const F_FIN_ACKED: u32 = 1 << 19;
/// Recovery after a retransmission timeout, until SND.UNA reaches `recover`
/// (RFC 8985 §6.3, RFC 6675 §5.1).
const F_LOSS: u32 = 1 << 20;
/// RACK.reordering_seen (RFC 8985 §6.2 step 3).
const F_REORDER_SEEN: u32 = 1 << 21;
/// A tail loss probe is out: TLP.end_seq is set (RFC 8985 §7.4).
const F_TLP_OPEN: u32 = 1 << 22;
/// `Timer::Rack` holds the probe timeout, not a reordering timeout.
const F_TLP_PTO: u32 = 1 << 23;
/// The probe timeout fired: the next segment is a loss probe (§7.3).
const F_TLP_SEND: u32 = 1 << 24;
/// The rescue retransmission of this recovery went out (RFC 6675 §4).
const F_RESCUED: u32 = 1 << 25;
/// TLP.is_retrans: the probe out sent the last segment again.
const F_TLP_RXT: u32 = 1 << 26;
/// No RTT sample since the last probe: no other probe yet (§7.3).
const F_TLP_NO_RTT: u32 = 1 << 27;

// Event bits, delivered in this order.
const EV_CONNECTED: u8 = 1 << 0;
const EV_WRITABLE: u8 = 1 << 1;
const EV_READABLE: u8 = 1 << 2;
const EV_PEER_FIN: u8 = 1 << 3;
const EV_CLOSED: u8 = 1 << 4;

/// One TCP connection. See the module docs for the call order.
///
/// Layout (`repr(C)` keeps the declared order, which the compiler would
/// otherwise sort by alignment): the sequence-space variables and flags
/// every segment touches first, with the configuration pointer and the
/// timer table, then the receive and send queues, the estimators, and the
/// cold state and counters last. Rarely used state (SACK scoreboard,
/// reassembly set, a receive backlog) is boxed and allocated only while in
/// use, so an idle connection holds no heap memory (DESIGN.md principle 6).
/// `size_of::<Connection<HeapBuf>>()` is pinned by a test in `tests.rs`.
#[repr(C)]
pub struct Connection<B: PacketBuf> {
    // --- hot: every segment ---
    state: State,
    events: u8,
    snd_wscale: u8,
    rcv_wscale: u8,
    flags: u32,
    snd_una: u32,
    snd_nxt: u32,
    /// Highest sequence number sent (SND.MAX; RFC 6675 HighData).
    snd_max: u32,
    snd_wnd: u32,
    snd_wl1: u32,
    snd_wl2: u32,
    max_snd_wnd: u32,
    /// Right edge of the window last advertised.
    rcv_adv: u32,
    /// RCV.NXT in the last ACK sent (RFC 7323 §4.3 Last.ACK.sent).
    last_ack_sent: u32,
    ts_recent: u32,
    ts_offset: u32,
    /// Sender payload size per segment (peer MSS, clamped, less the
    /// timestamp option).
    mss: u16,
    dup_acks: u8,
    /// Full-sized segments received since our last ACK (RFC 1122 §4.2.3.2).
    unacked_segs: u8,
    /// End of the last sub-MSS segment sent (Minshall's Nagle variant).
    snd_sml: u32,
    /// RFC 6582 `recover`: SND.MAX when recovery began.
    recover: u32,
    cfg: SharedConfig,
    timers: TimerTable,
    // --- queues ---
    rxq: RecvQueue<B>,
    sendq: SendQueue<B>,
    board: Scoreboard,
    // --- estimators (every ACK of new data) ---
    rtt: RttEstimator,
    /// Our SYN's sequence number + 1 and when it was last sent: the
    /// handshake's RTT sample (data segments are timed on the
    /// scoreboard).
    rtt_seq: u32,
    rtt_sent: Instant,
    cc: CongestionControl,
    // --- RACK-TLP (RFC 8985; the rest lives with the scoreboard) ---
    /// RACK.min_RTT, in microseconds (`u32::MAX`: none yet).
    min_rtt_us: u32,
    /// TLP.end_seq.
    tlp_end: u32,
    /// RACK.reo_wnd_mult and RACK.reo_wnd_persist.
    reo_wnd_mult: u8,
    reo_wnd_persist: u8,
    // --- cold ---
    /// Bytes counted out of the pipe for duplicate ACKs without SACK.
    dup_bytes: u32,
    iss: u32,
    irs: u32,
    /// Consecutive retransmission timeouts (SYN or data).
    retries: u8,
    persist_backoff: u8,
    keepalive_sent: u8,
    close_reason: CloseReason,
    rst_seq: u32,
    rst_ack: u32,
    challenge_count: u32,
    challenge_epoch: Instant,
    tuple: FourTuple,
    stats: ConnStats,
}

impl<B: PacketBuf> core::fmt::Debug for Connection<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("tuple", &self.tuple)
            .field("state", &self.state)
            .field("snd_una", &self.snd_una)
            .field("snd_nxt", &self.snd_nxt)
            .field("snd_max", &self.snd_max)
            .field("snd_wnd", &self.snd_wnd)
            .field("rcv_nxt", &self.rcv_nxt())
            .field("cwnd", &self.cc.cwnd())
            .field("timers", &self.timers)
            .finish()
    }
}

impl<B: PacketBuf> Connection<B> {
    fn new(cfg: SharedConfig, tuple: FourTuple, iss: u32, state: State) -> Self {
        let mss = cfg.mss.max(64);
        Connection {
            state,
            events: 0,
            snd_wscale: 0,
            rcv_wscale: 0,
            flags: 0,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: 0,
            snd_wl2: iss,
            max_snd_wnd: 0,
            rcv_adv: 0,
            mss,
            dup_acks: 0,
            unacked_segs: 0,
            recover: iss,
            snd_sml: iss,
            dup_bytes: 0,
            ts_recent: 0,
            ts_offset: ts_offset(iss),
            last_ack_sent: 0,
            rtt_seq: iss,
            rtt_sent: Instant::ZERO,
            iss,
            irs: 0,
            timers: TimerTable::new(),
            rtt: RttEstimator::new(cfg.rtt),
            cc: CongestionControl::new(cfg.cc, u32::from(mss)),
            retries: 0,
            persist_backoff: 0,
            keepalive_sent: 0,
            close_reason: CloseReason::Normal,
            rst_seq: 0,
            rst_ack: 0,
            challenge_count: 0,
            challenge_epoch: Instant::ZERO,
            min_rtt_us: u32::MAX,
            tlp_end: iss,
            reo_wnd_mult: 1,
            reo_wnd_persist: 0,
            sendq: SendQueue::new(),
            board: Scoreboard::new(),
            rxq: RecvQueue::new(TcpSeqNumber(0), cfg.rcv_buf as usize, 0),
            tuple,
            cfg,
            stats: ConnStats::default(),
        }
    }

    /// Active open (RFC 9293 §3.5): the SYN goes out on the next
    /// [`poll_transmit`](Self::poll_transmit). State: SYN-SENT. `cfg`: a
    /// [`SharedConfig`] to share or a [`TcpConfig`](super::TcpConfig) to copy.
    pub fn connect(cfg: &impl ToSharedConfig, tuple: FourTuple, iss: u32, now: Instant) -> Self {
        let mut c = Self::new(cfg.to_shared(), tuple, iss, State::SynSent);
        if c.cfg.timestamps {
            c.flags |= F_TS;
        }
        if c.cfg.sack {
            c.flags |= F_SACK;
        }
        c.arm_rto(now);
        c
    }

    /// Passive open from a SYN the listener accepted (RFC 9293 §3.10.7.2):
    /// options negotiated from it, the SYN-ACK goes out on the next
    /// [`poll_transmit`](Self::poll_transmit). State: SYN-RECEIVED.
    pub fn accept(
        cfg: &impl ToSharedConfig,
        tuple: FourTuple,
        iss: u32,
        syn: &TcpRepr<'_>,
        now: Instant,
    ) -> Self {
        let mut c = Self::new(cfg.to_shared(), tuple, iss, State::SynReceived);
        c.flags |= F_PASSIVE;
        c.take_syn(syn, now);
        c.arm_rto(now);
        c
    }

    /// A connection from a valid SYN-cookie ACK (RFC 4987 §3.6): the
    /// listener decoded `mss`, `wscale` (the peer's shift, if it offered
    /// scaling) and `sack` from the cookie; `iss` is our ISN (the ACK's
    /// acknowledgment number − 1). State: ESTABLISHED. The driver then
    /// passes the same segment to [`handle_segment`](Self::handle_segment)
    /// so any data it carries is queued.
    #[allow(clippy::too_many_arguments)]
    pub fn accept_cookie(
        cfg: &impl ToSharedConfig,
        tuple: FourTuple,
        iss: u32,
        ack: &TcpRepr<'_>,
        mss: u16,
        wscale: Option<u8>,
        sack: bool,
        now: Instant,
    ) -> Self {
        let mut c = Self::new(cfg.to_shared(), tuple, iss, State::Established);
        c.flags |= F_PASSIVE;
        let irs = ack.seq_number.0.wrapping_sub(1);
        c.irs = irs;
        c.rxq = RecvQueue::new(
            TcpSeqNumber(irs.wrapping_add(1)),
            c.cfg.rcv_buf as usize,
            usize::from(c.cfg.max_ooo_segments),
        );
        c.rcv_adv = irs.wrapping_add(1);
        c.last_ack_sent = irs.wrapping_add(1);
        if let (Some(peer), Some(ours)) = (wscale, c.cfg.wscale_shift()) {
            c.snd_wscale = peer.min(14);
            c.rcv_wscale = ours;
        }
        if sack && c.cfg.sack {
            c.flags |= F_SACK;
        }
        if c.cfg.timestamps {
            if let Some((tsval, _)) = ack.timestamp {
                c.flags |= F_TS | F_TS_RECENT_VALID;
                c.ts_recent = tsval;
            }
        }
        c.set_mss(Some(mss));
        c.snd_una = iss.wrapping_add(1);
        c.snd_nxt = c.snd_una;
        c.snd_max = c.snd_una;
        c.recover = c.snd_una;
        c.snd_sml = c.snd_una;
        c.snd_wnd = u32::from(ack.window_len) << c.snd_wscale;
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = ack.seq_number.0;
        c.snd_wl2 = ack.ack_number.map_or(c.snd_una, |a| a.0);
        c.events |= EV_CONNECTED;
        c.arm_keepalive(now);
        c
    }

    /// Records the peer's SYN: IRS, RCV.NXT, options (RFC 9293 §3.10.7.2/3,
    /// RFC 7323 §2.2/§3.2, RFC 2018 §2).
    fn take_syn(&mut self, syn: &TcpRepr<'_>, _now: Instant) {
        self.irs = syn.seq_number.0;
        let rcv_nxt = self.irs.wrapping_add(1);
        self.rxq = RecvQueue::new(
            TcpSeqNumber(rcv_nxt),
            self.cfg.rcv_buf as usize,
            usize::from(self.cfg.max_ooo_segments),
        );
        self.rcv_adv = rcv_nxt;
        self.last_ack_sent = rcv_nxt;
        // Window scaling only when both sides send the option (§2.2).
        match (syn.window_scale, self.cfg.wscale_shift()) {
            (Some(peer), Some(ours)) => {
                self.snd_wscale = peer.min(14);
                self.rcv_wscale = ours;
                self.flags |= F_SYN_OPTS_PEER_WS;
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
                self.flags &= !F_SYN_OPTS_PEER_WS;
            }
        }
        if self.cfg.sack && syn.sack_permitted {
            self.flags |= F_SACK;
        } else {
            self.flags &= !F_SACK;
        }
        match (self.cfg.timestamps, syn.timestamp) {
            (true, Some((tsval, _))) => {
                self.flags |= F_TS | F_TS_RECENT_VALID;
                self.ts_recent = tsval;
            }
            _ => self.flags &= !(F_TS | F_TS_RECENT_VALID),
        }
        self.set_mss(syn.max_seg_size);
        // The SYN's window is never scaled (RFC 7323 §2.2).
        self.snd_wnd = u32::from(syn.window_len);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = self.irs;
    }

    /// Sender MSS: the peer's (536 without the option, RFC 9293 §3.7.1)
    /// clamped to ours, less the timestamp option (RFC 6691).
    fn set_mss(&mut self, peer: Option<u16>) {
        let peer = peer.unwrap_or(536).max(64);
        let mut mss = peer.min(self.cfg.mss.max(64));
        if self.flags & F_TS != 0 {
            mss -= 12;
        }
        self.mss = mss;
        self.cc = CongestionControl::new(self.cfg.cc, u32::from(mss));
    }

    /// The state (RFC 9293 §3.3.2).
    pub fn state(&self) -> State {
        self.state
    }

    /// The 4-tuple.
    pub fn tuple(&self) -> FourTuple {
        self.tuple
    }

    /// The configuration this connection runs with.
    pub fn config(&self) -> &SharedConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &ConnStats {
        &self.stats
    }

    /// Receive-queue counters.
    pub fn recv_stats(&self) -> RecvStats {
        self.rxq.stats()
    }

    /// Sender MSS in use (payload bytes per full segment).
    pub fn mss(&self) -> u16 {
        self.mss
    }

    /// Congestion window in bytes.
    pub fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }

    /// Bytes queued to send or awaiting acknowledgment.
    pub fn send_queued(&self) -> usize {
        self.sendq.len() as usize
    }

    /// In-order bytes waiting to be read.
    pub fn recv_queued(&self) -> usize {
        self.rxq.readable()
    }

    /// The earliest timer deadline; re-file the connection on the wheel here.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next().map(|(_, t)| t)
    }

    /// The next application event.
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events == 0 {
            return None;
        }
        // The bits' order is the delivery order: lowest first.
        let bit = self.events & self.events.wrapping_neg();
        self.events &= !bit;
        Some(match bit {
            EV_CONNECTED => Event::Connected,
            EV_WRITABLE => Event::Writable,
            EV_READABLE => Event::Readable,
            EV_PEER_FIN => Event::PeerFin,
            _ => Event::Closed(self.close_reason),
        })
    }

    /// A buffer the connection let go of (acknowledged data, duplicate or
    /// consumed received data), for the driver's pool.
    pub fn poll_recycle(&mut self) -> Option<B> {
        if let Some(b) = self.sendq.poll_recycle() {
            return Some(b);
        }
        if let Some(b) = self.rxq.poll_recycle() {
            return Some(b);
        }
        None
    }

    /// Frees the queues' spare capacity when they are empty, so an idle
    /// connection holds no heap memory (DESIGN.md principle 6). Not done on
    /// every drain: a request/response connection empties its queues after
    /// every exchange and would allocate them again for the next one. The
    /// stack calls this for connections in turn, a few per timer pass.
    pub fn shrink_if_idle(&mut self) {
        if self.sendq.is_empty() && self.rxq.buffered() == 0 {
            self.sendq.shrink_if_idle();
            self.board.shrink_if_idle();
            self.rxq.shrink_to_fit();
        }
    }

    /// Send buffer space left, in bytes: what [`send`](Self::send) and
    /// [`send_slice`](Self::send_slice) take now.
    pub fn send_space(&self) -> usize {
        (self.cfg.snd_buf as usize).saturating_sub(self.sendq.len() as usize)
    }

    /// Whether the application may still queue data.
    fn can_send(&self) -> bool {
        matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        ) && self.flags & F_FIN_QUEUED == 0
    }

    /// Queues an application buffer, zero copy: its bytes are the data and
    /// segments are views of it. Given back when the send side is closed or
    /// the buffer does not fit in the send buffer (an
    /// [`Event::Writable`] follows once space opens).
    pub fn send(&mut self, buf: B) -> Result<(), B> {
        if !self.can_send() {
            return Err(buf);
        }
        if buf.len() > self.send_space() {
            self.flags |= F_WANT_WRITE;
            return Err(buf);
        }
        self.sendq.push(buf);
        Ok(())
    }

    /// Copies `data` in (for small writes): appended to the last queued
    /// buffer's tailroom while it is not shared, else into buffers from
    /// `alloc`. Returns the bytes taken (fewer when the send buffer fills).
    pub fn send_slice(&mut self, data: &[u8], alloc: &mut impl BufAlloc<Buf = B>) -> usize {
        if !self.can_send() {
            return 0;
        }
        let space = self.send_space();
        let n = self
            .sendq
            .append_slice(data, space, usize::from(self.mss), alloc);
        if n < data.len() {
            self.flags |= F_WANT_WRITE;
        }
        n
    }

    /// The next in-order chunk of received data, zero copy: the received
    /// buffer itself, trimmed to the unread payload. Taking data opens the
    /// window (a window update goes out when it grew enough, RFC 9293
    /// §3.8.6.2.2).
    pub fn recv(&mut self) -> Option<B> {
        let (mut b, range) = self.rxq.pop_segment()?;
        b.truncate(range.end);
        let _ = b.advance(range.start);
        self.after_read();
        Some(b)
    }

    /// Copies received in-order data into `out`; returns the bytes copied.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = self.rxq.read_into(out);
        if n > 0 {
            self.after_read();
        }
        n
    }

    /// Sends a window update when reading opened the window by at least
    /// `min(rcv_buf / 2, 2·MSS)` beyond the advertised edge (receiver SWS
    /// avoidance, RFC 9293 §3.8.6.2.2; RFC 1122 §4.2.3.3).
    fn after_read(&mut self) {
        if !matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            return;
        }
        let rcv_nxt = self.rcv_nxt();
        // Only what the window field can carry counts: a buffer larger than
        // 65535 << RCV.WSCALE is no news to the peer.
        let max_field = 65_535u32 << self.rcv_wscale;
        let potential = rcv_nxt.wrapping_add(self.rxq.window().min(max_field));
        let grow = potential.wrapping_sub(self.rcv_adv) as i32;
        let threshold = (self.cfg.rcv_buf / 2).min(2 * u32::from(self.cfg.mss)) as i32;
        if grow >= threshold {
            self.flags |= F_ACK_NOW;
        }
    }

    /// Half-close (RFC 9293 §3.10.4): a FIN follows the queued data; data
    /// still arrives. ESTABLISHED → FIN-WAIT-1, CLOSE-WAIT → LAST-ACK. In
    /// SYN-SENT the connection is simply closed.
    pub fn shutdown(&mut self, now: Instant) {
        match self.state {
            State::SynSent => self.enter_closed(CloseReason::Normal),
            State::SynReceived | State::Established => {
                self.flags |= F_FIN_QUEUED;
                if self.state == State::Established {
                    self.state = State::FinWait1;
                }
            }
            State::CloseWait => {
                self.flags |= F_FIN_QUEUED;
                self.state = State::LastAck;
            }
            _ => {}
        }
        let _ = now;
    }

    /// Full close: no more sending or receiving. With unread data (or data
    /// arriving later) the connection is reset (RFC 9293 §3.10.4, RFC 2525
    /// §2.17); otherwise a half-close whose FIN-WAIT-2 wait is bounded by
    /// `fin_wait2_timeout`.
    pub fn close(&mut self, now: Instant) {
        self.flags |= F_APP_CLOSED | F_RECV_SHUT;
        if self.rxq.readable() > 0 && self.state.is_synchronized() {
            self.abort(now);
            return;
        }
        self.shutdown(now);
        if self.state == State::FinWait2 {
            self.timers
                .set(Timer::FinWait2, now + self.cfg.fin_wait2_timeout);
        }
    }

    /// Reset now (RFC 9293 §3.10.5): a RST goes out (except from SYN-SENT,
    /// where none is needed), queues are released, state CLOSED.
    pub fn abort(&mut self, now: Instant) {
        let _ = now;
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        ) {
            self.queue_rst(self.snd_nxt, None);
        }
        self.enter_closed(CloseReason::Aborted);
    }

    /// Sets the offset of this connection's timestamp clock (RFC 7323
    /// §5.4). The stack sets one per pair of addresses
    /// ([`IsnGenerator::ts_offset`](crate::tcp::IsnGenerator::ts_offset)) before
    /// the first segment goes out, so every incarnation of a 4-tuple sends
    /// newer timestamps than the last (RFC 6191).
    pub fn set_timestamp_offset(&mut self, offset: u32) {
        self.ts_offset = offset;
    }

    /// Whether this TIME-WAIT connection may be replaced by a new one
    /// from `syn` (RFC 6191 §2, RFC 9293 §3.6.1 note): with
    /// `time_wait_reuse` on, a SYN whose timestamp is newer than TS.Recent,
    /// or, without timestamps on both, whose sequence number lies above
    /// RCV.NXT. The stack then drops this connection and accepts anew.
    pub fn time_wait_accepts_syn(&self, syn: &TcpRepr<'_>) -> bool {
        if !self.cfg.time_wait_reuse
            || self.state != State::TimeWait
            || !syn.flags.contains(TcpFlags::SYN)
            || syn.flags.contains(TcpFlags::ACK)
            || syn.flags.contains(TcpFlags::RST)
        {
            return false;
        }
        match (self.flags & F_TS != 0, syn.timestamp) {
            (true, Some((tsval, _))) => seq_lt(self.ts_recent, tsval),
            // RFC 6191 §2: without timestamps on both, the sequence number
            // rule of RFC 1122 §4.2.2.13.
            (true, None) => false,
            (false, _) => seq_lt(self.rcv_nxt(), syn.seq_number.0),
        }
    }

    // --- shared helpers ---

    pub(crate) fn rcv_nxt(&self) -> u32 {
        self.rxq.rcv_nxt().0
    }

    /// First sequence number of queued data (after our SYN).
    fn data_base(&self) -> u32 {
        if matches!(self.state, State::SynSent | State::SynReceived) {
            self.iss.wrapping_add(1)
        } else {
            self.snd_una
        }
    }

    /// Sequence number of our FIN (after all queued data), if queued.
    fn fin_seq(&self) -> Option<u32> {
        (self.flags & F_FIN_QUEUED != 0).then(|| self.data_base().wrapping_add(self.sendq.len()))
    }

    fn arm_rto(&mut self, now: Instant) {
        self.timers.set(Timer::Rto, now + self.rtt.rto());
    }

    /// The persist timer: the RTO backed off by the probes sent so far, at
    /// most `max_persist` (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17).
    fn arm_persist(&mut self, now: Instant) {
        let shift = u32::from(self.persist_backoff.min(16));
        let d = self
            .rtt
            .rto()
            .checked_mul(1 << shift)
            .unwrap_or(self.cfg.max_persist)
            .min(self.cfg.max_persist);
        self.timers.set(Timer::Persist, now + d);
    }

    #[inline]
    fn arm_keepalive(&mut self, now: Instant) {
        if let Some(k) = self.cfg.keepalive {
            if self.state.is_synchronized() && self.state != State::TimeWait {
                self.timers.set(Timer::Keepalive, now + k.idle);
                self.keepalive_sent = 0;
            }
        }
    }

    fn queue_rst(&mut self, seq: u32, ack: Option<u32>) {
        self.flags |= F_RST_PENDING;
        self.rst_seq = seq;
        match ack {
            Some(a) => {
                self.flags |= F_RST_HAS_ACK;
                self.rst_ack = a;
            }
            None => self.flags &= !F_RST_HAS_ACK,
        }
    }

    /// Enters CLOSED: timers stopped, queues released, `Closed` event.
    fn enter_closed(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.close_reason = reason;
        self.events |= EV_CLOSED;
        self.timers.stop_all();
        self.sendq.clear();
        self.board.clear();
        self.rxq.clear();
        self.flags &= !(F_ACK_NOW
            | F_PROBE
            | F_KEEPALIVE
            | F_REXMIT_HEAD
            | F_TLP_OPEN
            | F_TLP_PTO
            | F_TLP_SEND);
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        let keep = self.timers.get(Timer::DelayedAck);
        self.timers.stop_all();
        if let Some(t) = keep {
            self.timers.set(Timer::DelayedAck, t);
        }
        self.timers.set(Timer::TimeWait, now + 2 * self.cfg.msl);
        self.sendq.clear();
        self.board.clear();
        self.flags &= !(F_TLP_OPEN | F_TLP_PTO | F_TLP_SEND);
    }

    /// RFC 5961 §7: at most `challenge_ack_limit` challenge ACKs per second.
    fn challenge_ack(&mut self, now: Instant) {
        if now.saturating_since(self.challenge_epoch) >= crate::time::Duration::from_secs(1) {
            self.challenge_epoch = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < self.cfg.challenge_ack_limit {
            self.challenge_count += 1;
            bump(&mut self.stats.challenge_acks);
            self.flags |= F_ACK_NOW;
        } else {
            bump(&mut self.stats.challenge_acks_suppressed);
        }
    }

    fn ts_now(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }
}

/// The offset of our timestamp clock until the stack sets one with
/// [`Connection::set_timestamp_offset`]: derived from our ISN (itself a keyed
/// hash, RFC 6528), so TSvals do not reveal uptime (RFC 7323 §5.4).
fn ts_offset(iss: u32) -> u32 {
    iss.rotate_left(13) ^ 0x5a5a_5a5a
}

/// The TSval sent at `now` by a connection whose timestamp clock runs at
/// `offset`: for a SYN-ACK built without a connection (a SYN cookie), so the
/// connection the cookie later creates continues the same clock and the
/// peer's PAWS check (RFC 7323 §5) never sees it go backwards.
pub fn timestamp_value(offset: u32, now: Instant) -> u32 {
    (now.as_millis() as u32).wrapping_add(offset)
}

/// The RST answering `seg` when no connection exists for it
/// (RFC 9293 §3.10.7.1): none for a RST; `<SEQ=SEG.ACK><CTL=RST>` when it
/// carries an ACK, else `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
pub fn rst_for(seg: &TcpRepr<'_>) -> Option<TcpRepr<'static>> {
    if seg.flags.contains(TcpFlags::RST) {
        return None;
    }
    let (seq, ack, flags) = match seg.ack_number {
        Some(a) => (a, None, TcpFlags::RST),
        None => (
            TcpSeqNumber(0),
            Some(seg.seq_number + seg.segment_len()),
            TcpFlags::RST | TcpFlags::ACK,
        ),
    };
    Some(TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq_number: seq,
        ack_number: ack,
        flags,
        window_len: 0,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [None; 4],
        timestamp: None,
        payload: &[],
    })
}
