//! Round-trip time estimation and the retransmission timeout, RFC 6298.
//!
//! Values are kept in microseconds in `u32` fields (like Linux's
//! `srtt_us`): enough resolution for data-centre RTTs, room for 71 minutes,
//! and 28 bytes per connection.
//!
//! Choices where the RFC leaves room:
//! - Minimum RTO defaults to 200 ms (Linux's `TCP_RTO_MIN`), not the 1 s of
//!   RFC 6298 §2.4 ("SHOULD be rounded up to 1 second"). The 1 s floor
//!   dates from coarse clocks; with a fine clock and the `4·RTTVAR` term,
//!   200 ms has two decades of deployment behind it. Configurable.
//! - Maximum RTO 120 s (Linux's `TCP_RTO_MAX`); §2.5 allows any maximum of
//!   at least 60 s.
//! - Clock granularity `G` defaults to 1 ms, the timer wheel's tick.
//! - With timestamps (RFC 7323 §4.2) every ACK may give a sample; we do not
//!   scale alpha and beta by samples per RTT (neither does Linux).

use crate::time::Duration;

/// Tunables of the estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttConfig {
    /// RTO before any sample (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// Lower bound on the RTO (RFC 6298 §2.4; see the module docs).
    pub min_rto: Duration,
    /// Upper bound on the RTO, backoff included (RFC 6298 §2.5).
    pub max_rto: Duration,
    /// Clock granularity `G` (RFC 6298 §2.2, §2.3).
    pub granularity: Duration,
}

impl Default for RttConfig {
    fn default() -> Self {
        RttConfig {
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            granularity: Duration::from_millis(1),
        }
    }
}

/// RTO after a SYN timed out, once the connection is established
/// (RFC 6298 §5.7).
pub const SYN_TIMEOUT_FALLBACK_RTO: Duration = Duration::from_secs(3);

/// Whether an ACK may give an RTT sample (Karn's algorithm, RFC 6298 §3):
/// not for a retransmitted segment, whose ACK is ambiguous, unless the
/// timestamp option tells the transmissions apart (RFC 7323 §4).
#[inline]
pub fn karn_sample_allowed(retransmitted: bool, timestamps: bool) -> bool {
    !retransmitted || timestamps
}

/// The RFC 6298 estimator of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    srtt_us: u32,
    rttvar_us: u32,
    /// RTO before backoff, clamped.
    rto_us: u32,
    min_rto_us: u32,
    max_rto_us: u32,
    granularity_us: u32,
    /// Consecutive timeouts since the last sample (RFC 6298 §5.5).
    backoff: u8,
    has_sample: bool,
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new(RttConfig::default())
    }
}

impl RttEstimator {
    /// An estimator with no sample yet: RTO = `initial_rto` (§2.1).
    pub fn new(cfg: RttConfig) -> Self {
        let min_rto_us = us(cfg.min_rto);
        let max_rto_us = us(cfg.max_rto).max(min_rto_us);
        RttEstimator {
            srtt_us: 0,
            rttvar_us: 0,
            rto_us: us(cfg.initial_rto).clamp(min_rto_us, max_rto_us),
            min_rto_us,
            max_rto_us,
            granularity_us: us(cfg.granularity),
            backoff: 0,
            has_sample: false,
        }
    }

    /// Feeds a measured round-trip time (§2.2, §2.3) and clears the backoff:
    /// a fresh sample means the path answers again (Karn's algorithm keeps
    /// the backed-off RTO only until then).
    ///
    /// The caller applies Karn's rule first ([`karn_sample_allowed`]) and
    /// takes at least one sample per RTT (§3).
    pub fn on_sample(&mut self, rtt: Duration) {
        self.on_sample_us(us(rtt));
    }

    /// [`on_sample`](Self::on_sample) with the RTT in microseconds (the
    /// per-ACK path, spared the `Duration` conversions).
    pub fn on_sample_us(&mut self, rtt_us: u32) {
        let r = u64::from(rtt_us);
        if self.has_sample {
            let srtt = u64::from(self.srtt_us);
            let rttvar = u64::from(self.rttvar_us);
            // §2.3, in this order: RTTVAR uses the old SRTT.
            // RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, beta = 1/4
            let rttvar = (3 * rttvar + srtt.abs_diff(r)) / 4;
            // SRTT <- (1 - alpha) * SRTT + alpha * R', alpha = 1/8
            let srtt = (7 * srtt + r) / 8;
            self.srtt_us = srtt as u32;
            self.rttvar_us = rttvar as u32;
        } else {
            // §2.2: SRTT <- R, RTTVAR <- R/2.
            self.srtt_us = r as u32;
            self.rttvar_us = (r / 2) as u32;
            self.has_sample = true;
        }
        // §2.2/§2.3: RTO <- SRTT + max(G, K*RTTVAR), K = 4; §2.4, §2.5 bounds.
        let var = (4 * u64::from(self.rttvar_us)).max(u64::from(self.granularity_us));
        let rto = u64::from(self.srtt_us) + var;
        self.rto_us = rto.clamp(u64::from(self.min_rto_us), u64::from(self.max_rto_us)) as u32;
        self.backoff = 0;
    }

    /// The retransmission timer expired: back off (§5.5, RTO <- RTO * 2, up
    /// to the maximum). Returns the new RTO.
    pub fn on_timeout(&mut self) -> Duration {
        // 2^17 * 1 us already exceeds any u32 maximum: no need to count on.
        if self.backoff < 32 {
            self.backoff += 1;
        }
        self.rto()
    }

    /// The handshake completed. If a SYN or SYN-ACK had timed out and no
    /// RTT sample was taken, the RTO restarts at 3 s (§5.7); the backoff is
    /// cleared either way.
    pub fn on_handshake_complete(&mut self, syn_timed_out: bool) {
        if syn_timed_out && !self.has_sample {
            self.rto_us = us(SYN_TIMEOUT_FALLBACK_RTO).clamp(self.min_rto_us, self.max_rto_us);
        }
        self.backoff = 0;
    }

    /// The current RTO, backoff included.
    pub fn rto(&self) -> Duration {
        let rto = u64::from(self.rto_us)
            .checked_shl(u32::from(self.backoff))
            .unwrap_or(u64::MAX)
            .min(u64::from(self.max_rto_us));
        Duration::from_micros(rto)
    }

    /// Smoothed RTT, if any sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_us().map(|s| Duration::from_micros(u64::from(s)))
    }

    /// Smoothed RTT in microseconds, if any sample was taken.
    #[inline]
    pub fn srtt_us(&self) -> Option<u32> {
        self.has_sample.then_some(self.srtt_us)
    }

    /// RTT variation, if any sample was taken.
    pub fn rttvar(&self) -> Option<Duration> {
        self.has_sample
            .then(|| Duration::from_micros(u64::from(self.rttvar_us)))
    }

    /// Consecutive timeouts since the last sample; the state machine gives
    /// up on the connection past its limit (RFC 9293 §3.8.3, R2).
    pub fn backoff(&self) -> u8 {
        self.backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn size() {
        assert_eq!(core::mem::size_of::<RttEstimator>(), 28);
    }

    #[test]
    fn initial_rto_is_one_second() {
        let e = RttEstimator::default();
        assert_eq!(e.rto(), ms(1_000));
        assert_eq!(e.srtt(), None);
    }

    #[test]
    fn worked_example() {
        let mut e = RttEstimator::default();
        // First sample 100 ms: SRTT 100, RTTVAR 50, RTO 100 + 4*50 = 300.
        e.on_sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), Some(ms(50)));
        assert_eq!(e.rto(), ms(300));
        // Second sample 200 ms: RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5,
        // SRTT = 7/8*100 + 1/8*200 = 112.5, RTO = 112.5 + 250 = 362.5.
        e.on_sample(ms(200));
        assert_eq!(e.rttvar(), Some(Duration::from_micros(62_500)));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(362_500));
        // Third sample 112.5 ms: RTTVAR = 3/4*62.5 = 46.875, SRTT unchanged,
        // RTO = 112.5 + 187.5 = 300.
        e.on_sample(Duration::from_micros(112_500));
        assert_eq!(e.rttvar(), Some(Duration::from_micros(46_875)));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn min_and_granularity() {
        let mut e = RttEstimator::default();
        // 10 ms: 10 + 20 = 30 ms, raised to the 200 ms floor.
        e.on_sample(ms(10));
        assert_eq!(e.rto(), ms(200));
        // RFC 6298 §2.4's 1 s floor, and G dominating a zero variance.
        let mut e = RttEstimator::new(RttConfig {
            min_rto: ms(1_000),
            ..RttConfig::default()
        });
        e.on_sample(ms(10));
        assert_eq!(e.rto(), ms(1_000));
        let mut e = RttEstimator::new(RttConfig {
            min_rto: Duration::ZERO,
            granularity: ms(5),
            ..RttConfig::default()
        });
        for _ in 0..200 {
            e.on_sample(ms(40));
        }
        // RTTVAR decays to 0; RTO = SRTT + G.
        assert_eq!(e.rto(), ms(45));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut e = RttEstimator::default();
        e.on_sample(ms(100)); // RTO 300 ms
        assert_eq!(e.on_timeout(), ms(600));
        assert_eq!(e.on_timeout(), ms(1_200));
        assert_eq!(e.backoff(), 2);
        for _ in 0..100 {
            e.on_timeout();
        }
        assert_eq!(e.rto(), ms(120_000));
        // A new sample recomputes the RTO and clears the backoff.
        e.on_sample(ms(100));
        assert_eq!(e.backoff(), 0);
        assert!(e.rto() < ms(400));
    }

    #[test]
    fn huge_samples_saturate() {
        let mut e = RttEstimator::default();
        e.on_sample(Duration::from_secs(1_000_000));
        assert_eq!(e.rto(), ms(120_000));
        e.on_sample(Duration::MAX);
        assert_eq!(e.rto(), ms(120_000));
    }

    #[test]
    fn syn_timeout_falls_back_to_three_seconds() {
        let mut e = RttEstimator::default();
        e.on_timeout(); // SYN retransmitted, RTO 2 s
        e.on_handshake_complete(true);
        assert_eq!(e.rto(), ms(3_000));
        // With a sample (timestamps), the measured RTO stands.
        let mut e = RttEstimator::default();
        e.on_timeout();
        e.on_sample(ms(100));
        e.on_handshake_complete(true);
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn karn() {
        assert!(karn_sample_allowed(false, false));
        assert!(!karn_sample_allowed(true, false));
        assert!(karn_sample_allowed(true, true));
    }
}
