//! NewReno: RFC 5681 slow start and congestion avoidance with Appropriate
//! Byte Counting (RFC 3465, L = 2), and RFC 6582 fast recovery (see the
//! parent module for how recovery is split with the state machine).

use super::{CongestionController, Window};
use crate::time::{Duration, Instant};

/// The NewReno controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReno {
    w: Window,
}

impl NewReno {
    /// A controller with the RFC 6928 initial window for `mss`.
    pub fn new(mss: u32) -> Self {
        NewReno {
            w: Window::new(mss),
        }
    }
}

impl CongestionController for NewReno {
    fn on_ack(&mut self, _now: Instant, acked: u32, _rtt: Option<Duration>, _in_flight: u32) {
        // RFC 6582 §3.2: no window growth during fast recovery.
        if self.w.in_recovery {
            return;
        }
        self.w.rto_pending = false;
        if self.w.cwnd < self.w.ssthresh {
            self.w.slow_start(acked);
        } else {
            self.w.reno_avoidance(acked);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, in_flight: u32) {
        if !self.w.enter_recovery() {
            return;
        }
        // RFC 5681 §3.2 step 2 (eq. 4) and RFC 6582 §3.2 step 3.
        self.w.ssthresh = self.w.half_flight(in_flight);
        self.w.cwnd = self.w.ssthresh;
    }

    fn on_partial_ack(&mut self, _now: Instant, _acked: u32) -> bool {
        self.w.partial_ack()
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        self.w.exit_recovery();
    }

    fn on_rto(&mut self, _now: Instant, in_flight: u32) {
        let ssthresh = self.w.half_flight(in_flight);
        self.w.timeout(ssthresh);
    }

    fn cwnd(&self) -> u32 {
        self.w.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.w.ssthresh
    }

    fn in_recovery(&self) -> bool {
        self.w.in_recovery
    }

    fn mss(&self) -> u32 {
        self.w.mss
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{one_rtt, MSS};
    use super::*;
    use proptest::prelude::*;

    const T0: Instant = Instant::ZERO;
    const RTT: Duration = Duration::from_millis(50);

    #[test]
    fn slow_start_doubles_per_rtt() {
        // RFC 5681 §3.1: one SMSS per ACK of one SMSS doubles cwnd per RTT.
        let mut c = NewReno::new(MSS);
        for round in 0..5 {
            assert_eq!(c.cwnd(), (10 << round) * MSS);
            one_rtt(&mut c, T0, RTT);
        }
    }

    #[test]
    fn abc_limits_stretch_acks_to_two_segments() {
        // RFC 3465 §2.2, L = 2.
        let mut c = NewReno::new(MSS);
        c.on_ack(T0, 8 * MSS, None, 10 * MSS);
        assert_eq!(c.cwnd(), 12 * MSS);
        c.on_ack(T0, 100, None, 10 * MSS);
        assert_eq!(c.cwnd(), 12 * MSS + 100);
    }

    #[test]
    fn congestion_avoidance_grows_one_segment_per_rtt() {
        let mut c = NewReno::new(MSS);
        one_rtt(&mut c, T0, RTT); // 20 MSS
        c.on_congestion_event(T0, 40 * MSS);
        c.on_recovery_exit(T0);
        assert_eq!(c.cwnd(), 20 * MSS);
        assert!(!c.in_slow_start());
        for round in 0..10 {
            assert_eq!(c.cwnd(), (20 + round) * MSS);
            one_rtt(&mut c, T0, RTT);
        }
        // Byte counting: half a window of ACKs earns nothing yet.
        let cwnd = c.cwnd();
        c.on_ack(T0, cwnd / 2, None, cwnd);
        assert_eq!(c.cwnd(), cwnd);
        c.on_ack(T0, cwnd / 2, None, cwnd);
        assert_eq!(c.cwnd(), cwnd + MSS);
    }

    #[test]
    fn loss_halves_once_per_recovery() {
        let mut c = NewReno::new(MSS);
        one_rtt(&mut c, T0, RTT);
        one_rtt(&mut c, T0, RTT); // 40 MSS
        c.on_congestion_event(T0, 40 * MSS);
        // RFC 5681 eq. 4: max(FlightSize/2, 2 SMSS).
        assert_eq!(c.ssthresh(), 20 * MSS);
        assert_eq!(c.cwnd(), 20 * MSS);
        assert!(c.in_recovery());
        // More losses in the same window: no further reduction.
        c.on_congestion_event(T0, 20 * MSS);
        assert_eq!(c.cwnd(), 20 * MSS);
        // RFC 6582 step 5: only the first partial ACK restarts the timer.
        assert!(c.on_partial_ack(T0, MSS));
        assert!(!c.on_partial_ack(T0, MSS));
        // No growth during recovery.
        c.on_ack(T0, 10 * MSS, Some(RTT), 20 * MSS);
        assert_eq!(c.cwnd(), 20 * MSS);
        c.on_recovery_exit(T0);
        assert!(!c.in_recovery());
        assert_eq!(c.cwnd(), c.ssthresh());
        // A later window's loss reduces again.
        c.on_congestion_event(T0, 20 * MSS);
        assert_eq!(c.cwnd(), 10 * MSS);
    }

    #[test]
    fn ssthresh_floor_is_two_segments() {
        let mut c = NewReno::new(MSS);
        c.on_congestion_event(T0, MSS);
        assert_eq!(c.ssthresh(), 2 * MSS);
    }

    #[test]
    fn rto_collapses_to_loss_window() {
        let mut c = NewReno::new(MSS);
        one_rtt(&mut c, T0, RTT); // 20 MSS
        c.on_congestion_event(T0, 20 * MSS);
        c.on_rto(T0, 20 * MSS);
        // RFC 5681 §3.1: cwnd = LW = 1 SMSS, ssthresh = FlightSize / 2.
        assert_eq!(c.cwnd(), MSS);
        assert_eq!(c.ssthresh(), 10 * MSS);
        assert!(!c.in_recovery());
        // Backed-off timeout of the same segment: ssthresh held.
        c.on_rto(T0, 2 * MSS);
        assert_eq!(c.ssthresh(), 10 * MSS);
        // Slow start again up to ssthresh.
        c.on_ack(T0, MSS, Some(RTT), MSS);
        assert_eq!(c.cwnd(), 2 * MSS);
        assert!(c.in_slow_start());
        // New data acknowledged: the next timeout lowers ssthresh again.
        c.on_rto(T0, 4 * MSS);
        assert_eq!(c.ssthresh(), 2 * MSS);
    }

    proptest! {
        /// Any call sequence: no panic, cwnd at least one segment, ssthresh
        /// at least two once set.
        #[test]
        fn invariants(mss in 0u32..20_000, ops in proptest::collection::vec((0u8..5, any::<u32>()), 0..300)) {
            let mut c = NewReno::new(mss);
            for (op, n) in ops {
                match op {
                    0 => c.on_ack(T0, n, Some(RTT), n),
                    1 => c.on_congestion_event(T0, n),
                    2 => { c.on_partial_ack(T0, n); }
                    3 => c.on_recovery_exit(T0),
                    _ => c.on_rto(T0, n),
                }
                prop_assert!(c.cwnd() >= c.mss());
                prop_assert!(c.ssthresh() >= 2 * c.mss());
            }
        }
    }
}
