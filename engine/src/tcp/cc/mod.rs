//! Congestion control: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438)
//! behind one small trait.
//!
//! Windows are in bytes and MSS-aware. The packet path calls through the
//! [`CongestionControl`] enum (a `match`, no dynamic dispatch: DESIGN.md
//! principle 10); [`CcAlgorithm`] picks the algorithm per connection.
//!
//! # Division of labour with the state machine
//!
//! The state machine owns sequence numbers, the SACK scoreboard and loss
//! detection; the controller only sizes the window:
//!
//! - every ACK of new data outside recovery: [`on_ack`](CongestionController::on_ack);
//! - loss detected by duplicate ACKs or SACK (RFC 5681 §3.2, RFC 6675 §5):
//!   [`on_congestion_event`](CongestionController::on_congestion_event).
//!   The state machine records `recover` (RFC 6582 §3.2 step 2); the
//!   controller enters recovery and ignores further events until
//!   [`on_recovery_exit`](CongestionController::on_recovery_exit), so the
//!   window is reduced once per window of data;
//! - ACKs below `recover`: [`on_partial_ack`](CongestionController::on_partial_ack)
//!   (RFC 6582 §3.2 step 5); the ACK reaching `recover`:
//!   [`on_recovery_exit`](CongestionController::on_recovery_exit) (step 6);
//! - retransmission timeout: [`on_rto`](CongestionController::on_rto).
//!
//! On entering recovery cwnd is set to the new ssthresh and is not inflated
//! by duplicate ACKs (RFC 5681 §3.2 steps 3–4): the state machine counts
//! SACKed and duplicate-ACKed segments out of its pipe estimate instead
//! (RFC 6675 §4, or PRR, RFC 6937), which lets the same number of segments
//! out without a cwnd that has to be deflated again. RFC 9438 §4.6 sets cwnd
//! the same way.
//!
//! Not done here: application-limited validation (RFC 7661; `in_flight` in
//! [`on_ack`](CongestionController::on_ack) is there for it), HyStart++
//! (RFC 9406), undo of spurious reductions (RFC 5682, RFC 3522).

use crate::time::{Duration, Instant};

pub mod cubic;
pub mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

/// What every congestion controller offers the state machine. Byte counts
/// are `u32` (windows are bounded by 2³⁰ with scaling, RFC 7323 §2.3).
pub trait CongestionController {
    /// `acked_bytes` of new data were cumulatively acknowledged outside
    /// recovery. `rtt` is the current smoothed RTT if known; `in_flight`
    /// the bytes outstanding before this ACK.
    fn on_ack(&mut self, now: Instant, acked_bytes: u32, rtt: Option<Duration>, in_flight: u32);

    /// Loss detected by duplicate ACKs / SACK, or an ECN echo: reduce the
    /// window and enter recovery, once per recovery episode.
    fn on_congestion_event(&mut self, now: Instant, in_flight: u32);

    /// A partial ACK during recovery (RFC 6582 §3.2 step 5). The window is
    /// left alone (see the module docs). Returns `true` for the first partial
    /// ACK of the episode, when the state machine also restarts the
    /// retransmission timer (the "Impatient" variant, RFC 6582 §4).
    fn on_partial_ack(&mut self, now: Instant, acked_bytes: u32) -> bool;

    /// The ACK covering `recover` arrived: recovery is over
    /// (RFC 6582 §3.2 step 6).
    fn on_recovery_exit(&mut self, now: Instant);

    /// The retransmission timer expired (RFC 5681 §3.1): cwnd becomes one
    /// segment (the loss window) and, on the first timeout of an episode,
    /// ssthresh is reduced from `in_flight` (FlightSize).
    fn on_rto(&mut self, now: Instant, in_flight: u32);

    /// Congestion window in bytes.
    fn cwnd(&self) -> u32;

    /// Slow-start threshold in bytes.
    fn ssthresh(&self) -> u32;

    /// Whether the sender is in slow start (RFC 5681 §3.1: cwnd < ssthresh).
    fn in_slow_start(&self) -> bool {
        self.cwnd() < self.ssthresh()
    }

    /// Whether a recovery episode is in progress.
    fn in_recovery(&self) -> bool;

    /// Sender MSS in bytes.
    fn mss(&self) -> u32;
}

/// Which algorithm a connection uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CcAlgorithm {
    /// RFC 5681 + RFC 6582.
    NewReno,
    /// RFC 9438; the default, as in Linux, Windows and Apple stacks.
    #[default]
    Cubic,
}

/// A connection's congestion controller.
#[derive(Clone, Debug)]
pub enum CongestionControl {
    /// NewReno.
    NewReno(NewReno),
    /// CUBIC.
    Cubic(Cubic),
}

impl CongestionControl {
    /// A controller of kind `algorithm` for a sender MSS of `mss` bytes.
    pub fn new(algorithm: CcAlgorithm, mss: u32) -> Self {
        match algorithm {
            CcAlgorithm::NewReno => CongestionControl::NewReno(NewReno::new(mss)),
            CcAlgorithm::Cubic => CongestionControl::Cubic(Cubic::new(mss)),
        }
    }

    /// The algorithm in use.
    pub fn algorithm(&self) -> CcAlgorithm {
        match self {
            CongestionControl::NewReno(_) => CcAlgorithm::NewReno,
            CongestionControl::Cubic(_) => CcAlgorithm::Cubic,
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            CongestionControl::NewReno($c) => $e,
            CongestionControl::Cubic($c) => $e,
        }
    };
}

impl CongestionController for CongestionControl {
    #[inline]
    fn on_ack(&mut self, now: Instant, acked_bytes: u32, rtt: Option<Duration>, in_flight: u32) {
        dispatch!(self, c => c.on_ack(now, acked_bytes, rtt, in_flight))
    }
    #[inline]
    fn on_congestion_event(&mut self, now: Instant, in_flight: u32) {
        dispatch!(self, c => c.on_congestion_event(now, in_flight))
    }
    #[inline]
    fn on_partial_ack(&mut self, now: Instant, acked_bytes: u32) -> bool {
        dispatch!(self, c => c.on_partial_ack(now, acked_bytes))
    }
    #[inline]
    fn on_recovery_exit(&mut self, now: Instant) {
        dispatch!(self, c => c.on_recovery_exit(now))
    }
    #[inline]
    fn on_rto(&mut self, now: Instant, in_flight: u32) {
        dispatch!(self, c => c.on_rto(now, in_flight))
    }
    #[inline]
    fn cwnd(&self) -> u32 {
        dispatch!(self, c => c.cwnd())
    }
    #[inline]
    fn ssthresh(&self) -> u32 {
        dispatch!(self, c => c.ssthresh())
    }
    #[inline]
    fn in_recovery(&self) -> bool {
        dispatch!(self, c => c.in_recovery())
    }
    #[inline]
    fn mss(&self) -> u32 {
        dispatch!(self, c => c.mss())
    }
}

/// Initial window, RFC 6928 §2: `min(10·MSS, max(2·MSS, 14600))`, which is
/// 10 segments for any MSS up to 1460 bytes.
pub fn initial_window(mss: u32) -> u32 {
    let mss = mss.max(1);
    mss.saturating_mul(10)
        .min(mss.saturating_mul(2).max(14_600))
}

/// Appropriate Byte Counting limit in slow start, RFC 3465 §2.2: L = 2.
const ABC_LIMIT_SEGMENTS: u32 = 2;

/// The state both algorithms share: the Reno window rules of RFC 5681 with
/// byte counting (RFC 3465) and the recovery bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) mss: u32,
    pub(crate) cwnd: u32,
    pub(crate) ssthresh: u32,
    /// Bytes acknowledged in congestion avoidance not yet turned into cwnd
    /// growth (RFC 3465 §2.1 `bytes_acked`).
    pub(crate) ca_acked: u32,
    pub(crate) in_recovery: bool,
    pub(crate) partial_ack_seen: bool,
    /// A timeout happened and no new data has been acknowledged since:
    /// further timeouts keep ssthresh (RFC 5681 §3.1).
    pub(crate) rto_pending: bool,
}

impl Window {
    pub(crate) fn new(mss: u32) -> Self {
        let mss = mss.max(1);
        Window {
            mss,
            cwnd: initial_window(mss),
            // RFC 5681 §3.1: "arbitrarily high".
            ssthresh: u32::MAX,
            ca_acked: 0,
            in_recovery: false,
            partial_ack_seen: false,
            rto_pending: false,
        }
    }

    /// Slow start with ABC: cwnd += min(N, L·SMSS) (RFC 5681 §3.1 eq. 2,
    /// RFC 3465 §2.2 with L = 2).
    pub(crate) fn slow_start(&mut self, acked: u32) {
        let inc = acked.min(self.mss.saturating_mul(ABC_LIMIT_SEGMENTS));
        self.cwnd = self.cwnd.saturating_add(inc);
    }

    /// Congestion avoidance with byte counting: one SMSS per cwnd of
    /// acknowledged bytes (RFC 5681 §3.1, RFC 3465 §2.1).
    pub(crate) fn reno_avoidance(&mut self, acked: u32) {
        self.ca_acked = self.ca_acked.saturating_add(acked);
        if self.ca_acked >= self.cwnd {
            self.ca_acked -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(self.mss);
            // A stretch ACK earns one SMSS per ACK, not a burst.
            self.ca_acked = self.ca_acked.min(self.cwnd);
        }
    }

    /// ssthresh = max(FlightSize / 2, 2·SMSS), RFC 5681 §3.1 eq. 4.
    pub(crate) fn half_flight(&self, in_flight: u32) -> u32 {
        (in_flight / 2).max(self.mss.saturating_mul(2))
    }

    /// Enters recovery; `false` if already in it.
    pub(crate) fn enter_recovery(&mut self) -> bool {
        if self.in_recovery {
            return false;
        }
        self.in_recovery = true;
        self.partial_ack_seen = false;
        self.ca_acked = 0;
        true
    }

    pub(crate) fn partial_ack(&mut self) -> bool {
        let first = self.in_recovery && !self.partial_ack_seen;
        self.partial_ack_seen = true;
        first
    }

    /// RFC 6582 §3.2 step 6, option 2: cwnd = ssthresh.
    pub(crate) fn exit_recovery(&mut self) {
        if self.in_recovery {
            self.in_recovery = false;
            self.cwnd = self.ssthresh;
        }
    }

    /// RFC 5681 §3.1: loss window of one segment; ssthresh from `ssthresh`
    /// only on the first timeout of the episode. Recovery ends (RFC 6582
    /// §3.2 note on timeouts).
    pub(crate) fn timeout(&mut self, ssthresh: u32) {
        if !self.rto_pending {
            self.ssthresh = ssthresh;
        }
        self.rto_pending = true;
        self.cwnd = self.mss;
        self.ca_acked = 0;
        self.in_recovery = false;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MSS: u32 = 1000;

    /// One round trip at full window: `cwnd` bytes acknowledged in MSS-sized
    /// ACKs.
    pub(crate) fn one_rtt<C: CongestionController>(c: &mut C, now: Instant, rtt: Duration) {
        let mut left = c.cwnd();
        let flight = c.cwnd();
        while left > 0 {
            let n = left.min(c.mss());
            c.on_ack(now, n, Some(rtt), flight);
            left -= n;
        }
    }

    #[test]
    fn initial_window_rfc6928() {
        assert_eq!(initial_window(1460), 14_600);
        assert_eq!(initial_window(536), 5_360);
        assert_eq!(initial_window(1000), 10_000);
        assert_eq!(initial_window(9000), 18_000);
        assert_eq!(initial_window(0), 10);
        assert_eq!(initial_window(u32::MAX), u32::MAX); // 2·MSS, saturated
    }

    #[test]
    fn enum_dispatch_matches_algorithm() {
        for alg in [CcAlgorithm::NewReno, CcAlgorithm::Cubic] {
            let mut c = CongestionControl::new(alg, MSS);
            assert_eq!(c.algorithm(), alg);
            assert_eq!(c.cwnd(), 10 * MSS);
            assert!(c.in_slow_start());
            one_rtt(&mut c, Instant::ZERO, Duration::from_millis(10));
            assert_eq!(c.cwnd(), 20 * MSS);
            c.on_congestion_event(Instant::ZERO, 20 * MSS);
            assert!(c.in_recovery());
            c.on_recovery_exit(Instant::ZERO);
            c.on_rto(Instant::ZERO, 10 * MSS);
            assert_eq!(c.cwnd(), MSS);
        }
    }
}
