//! CUBIC, RFC 9438.
//!
//! The window follows `W_cubic(t) = C·(t − K)³ + W_max` (§4.2) in
//! segments, `t` in seconds since the current congestion-avoidance stage
//! began, with `K = ∛((W_max − cwnd_epoch) / C)`. The curve is concave
//! below `W_max` (§4.4) and convex above it (§4.5). Where standard Reno
//! would be faster (short RTTs, small windows) the Reno-friendly estimate
//! `W_est` takes over (§4.3). Slow start and recovery share NewReno's rules
//! (§4.10, and the parent module). Arithmetic is `f64`: this runs once per
//! ACK, and `f64` casts to integers saturate rather than panic.

use super::{CongestionController, Window};
use crate::time::{Duration, Instant};

/// `C` (§4.1.2: "C SHOULD be set to 0.4").
pub const C: f64 = 0.4;
/// `β_cubic` (§4.1.2, §4.6: "SHOULD be set to 0.7").
pub const BETA: f64 = 0.7;
/// `α_cubic = 3·(1 − β) / (1 + β)` (§4.3), about 0.529.
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// The CUBIC controller.
#[derive(Clone, Debug, PartialEq)]
pub struct Cubic {
    w: Window,
    /// `W_max` in segments: the window before the last reduction, as
    /// adjusted by fast convergence (§4.7).
    w_max: f64,
    /// `cwnd_prior` in segments: cwnd before the last reduction (§4.6),
    /// where `α_cubic` switches to 1 (§4.3).
    cwnd_prior: f64,
    /// `K` in seconds.
    k: f64,
    /// Start of the current congestion-avoidance stage, once `in_epoch`
    /// (from its first ACK on). Not an `Option`: that would take 16 bytes.
    epoch_start: Instant,
    /// `W_est` in segments (§4.3).
    w_est: f64,
    /// Fraction of a byte of growth not yet added to cwnd.
    carry: f64,
    /// Latest smoothed RTT handed in, in nanoseconds (8 bytes rather
    /// than a `Duration`'s 16; exact).
    srtt_ns: u64,
    /// The next stage follows a timeout: `K = 0`, `W_max = cwnd` (§4.8).
    after_timeout: bool,
    /// A congestion-avoidance stage is under way (`epoch_start` is set).
    in_epoch: bool,
}

impl Cubic {
    /// A controller with the RFC 6928 initial window for `mss`.
    pub fn new(mss: u32) -> Self {
        Cubic {
            w: Window::new(mss),
            w_max: 0.0,
            cwnd_prior: 0.0,
            k: 0.0,
            epoch_start: Instant::ZERO,
            w_est: 0.0,
            carry: 0.0,
            srtt_ns: 0,
            after_timeout: false,
            in_epoch: false,
        }
    }

    /// `W_max` in segments.
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// `K` in seconds for the current stage (0 before it starts).
    pub fn k(&self) -> f64 {
        self.k
    }

    /// `W_cubic(t)` in segments, Figure 1 of §4.2.
    pub fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.k;
        C * d * d * d + self.w_max
    }

    fn segments(&self, bytes: u32) -> f64 {
        f64::from(bytes) / f64::from(self.w.mss)
    }

    fn avoidance(&mut self, now: Instant, acked: u32) {
        let cwnd = self.segments(self.w.cwnd);
        if !self.in_epoch {
            // A new congestion-avoidance stage (§4.2).
            if self.after_timeout || self.w_max <= cwnd {
                // §4.8 after a timeout; also when the window is already
                // past W_max (no loss yet, or W_max lowered): the curve
                // starts at cwnd and is convex from here.
                self.k = 0.0;
                self.w_max = cwnd;
            } else {
                // §4.2 eq. 2: K = cbrt((W_max - cwnd_epoch) / C).
                self.k = ((self.w_max - cwnd) / C).cbrt();
            }
            self.after_timeout = false;
            // §4.3: W_est starts at cwnd_epoch.
            self.w_est = cwnd;
            self.epoch_start = now;
            self.in_epoch = true;
        }
        let start = self.epoch_start;
        let t = now.saturating_since(start).as_secs_f64();
        let rtt = Duration::from_nanos(self.srtt_ns).as_secs_f64();
        let acked_segments = self.segments(acked);

        // §4.3: Reno-friendly estimate; alpha becomes 1 once W_est reaches
        // cwnd_prior.
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * acked_segments / cwnd;

        let new_cwnd = if self.w_cubic(t) < self.w_est {
            // §4.3: Reno-friendly region, cwnd = W_est.
            self.w_est.max(cwnd)
        } else {
            // §4.4/§4.5: aim at W_cubic one RTT ahead, bounded to
            // [cwnd, 1.5·cwnd] (§4.2), growing (target − cwnd)/cwnd per
            // acknowledged segment.
            let target = self.w_cubic(t + rtt).clamp(cwnd, 1.5 * cwnd);
            cwnd + (target - cwnd) / cwnd * acked_segments
        };
        let grow = (new_cwnd - cwnd) * f64::from(self.w.mss) + self.carry;
        if grow > 0.0 {
            let whole = grow.floor();
            self.carry = grow - whole;
            self.w.cwnd = self.w.cwnd.saturating_add(whole as u32);
        }
    }

    /// ssthresh = max(flight_size·β, 2·SMSS), §4.6.
    fn reduced(&self, in_flight: u32) -> u32 {
        ((f64::from(in_flight) * BETA) as u32).max(self.w.mss.saturating_mul(2))
    }
}

impl CongestionController for Cubic {
    fn on_ack(&mut self, now: Instant, acked: u32, rtt: Option<Duration>, _in_flight: u32) {
        if let Some(rtt) = rtt {
            self.srtt_ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        }
        if self.w.in_recovery {
            return;
        }
        self.w.rto_pending = false;
        if self.w.cwnd < self.w.ssthresh {
            // §4.10: standard slow start (with ABC).
            self.w.slow_start(acked);
        } else {
            self.avoidance(now, acked);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, in_flight: u32) {
        if !self.w.enter_recovery() {
            return;
        }
        let cwnd = self.segments(self.w.cwnd);
        // §4.7 fast convergence: a flow losing below its previous W_max
        // releases bandwidth sooner.
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        // §4.6 multiplicative decrease.
        self.cwnd_prior = cwnd;
        self.w.ssthresh = self.reduced(in_flight);
        self.w.cwnd = self.w.ssthresh;
        self.in_epoch = false;
        self.carry = 0.0;
    }

    fn on_partial_ack(&mut self, _now: Instant, _acked: u32) -> bool {
        self.w.partial_ack()
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        self.w.exit_recovery();
        // The congestion-avoidance stage starts with the next ACK.
        self.in_epoch = false;
    }

    fn on_rto(&mut self, _now: Instant, in_flight: u32) {
        // §4.8: Reno's reaction (cwnd = 1 segment) with ssthresh from
        // β_cubic; the next stage starts with K = 0, W_max = cwnd.
        if !self.w.rto_pending {
            self.cwnd_prior = self.segments(self.w.cwnd);
        }
        let ssthresh = self.reduced(in_flight);
        self.w.timeout(ssthresh);
        self.after_timeout = true;
        self.in_epoch = false;
        self.carry = 0.0;
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
    use super::super::tests::MSS;
    use super::*;
    use proptest::prelude::*;

    const T0: Instant = Instant::ZERO;

    /// A sender whose window is `segs` segments, just after a loss at that
    /// window, out of recovery.
    fn after_loss(segs: u32) -> Cubic {
        let mut c = Cubic::new(MSS);
        c.w.cwnd = segs * MSS;
        c.on_congestion_event(T0, segs * MSS);
        c.on_recovery_exit(T0);
        c
    }

    /// Fluid model of a full-window sender: every `step`, a `step / rtt`
    /// share of cwnd is acknowledged, in MSS-sized ACKs. Runs from `from`
    /// for `dur` and returns the final time.
    fn run(
        c: &mut Cubic,
        from: Instant,
        dur: Duration,
        rtt: Duration,
        mut sample: impl FnMut(Instant, &Cubic),
    ) -> Instant {
        let step = Duration::from_micros(100);
        let mut now = from;
        let end = from + dur;
        let mut credit = 0.0f64;
        while now < end {
            now += step;
            credit += f64::from(c.cwnd()) * step.as_secs_f64() / rtt.as_secs_f64();
            while credit >= f64::from(MSS) {
                let flight = c.cwnd();
                c.on_ack(now, MSS, Some(rtt), flight);
                credit -= f64::from(MSS);
            }
            sample(now, c);
        }
        now
    }

    #[test]
    fn constants() {
        assert!((ALPHA - 0.529_411).abs() < 1e-5);
    }

    #[test]
    fn loss_reduces_to_beta() {
        let c = after_loss(1000);
        assert_eq!(c.cwnd(), 700 * MSS);
        assert_eq!(c.ssthresh(), 700 * MSS);
        assert_eq!(c.w_max(), 1000.0);
    }

    #[test]
    fn follows_w_cubic() {
        // W_max = 1000, cwnd_epoch = 700: K = cbrt(300 / 0.4) ~ 9.09 s.
        let rtt = Duration::from_millis(100);
        let mut c = after_loss(1000);
        let mut checked = 0;
        run(&mut c, T0, Duration::from_secs(14), rtt, |now, c| {
            let ns = now.as_nanos();
            if ns % 1_000_000_000 == 0 && ns >= 1_000_000_000 {
                let t = (now - T0).as_secs_f64();
                let want = c.w_cubic(t);
                let got = f64::from(c.cwnd()) / f64::from(MSS);
                // Within 1% (the window trails the curve by part of an RTT).
                assert!(
                    (got - want).abs() <= want * 0.01,
                    "t={t} cwnd={got} W_cubic={want}"
                );
                checked += 1;
            }
        });
        assert_eq!(checked, 14);
        assert!((c.k() - 9.0856).abs() < 1e-3, "K = {}", c.k());
    }

    #[test]
    fn concave_then_convex() {
        let rtt = Duration::from_millis(100);
        let mut c = after_loss(1000);
        let mut per_second = Vec::new();
        let mut last = c.cwnd();
        run(&mut c, T0, Duration::from_secs(16), rtt, |now, c| {
            if now.as_nanos() % 1_000_000_000 == 0 {
                per_second.push(i64::from(c.cwnd()) - i64::from(last));
                last = c.cwnd();
            }
        });
        // K ~ 9.09 s: growth shrinks up to the plateau, then grows.
        for w in per_second[..8].windows(2) {
            assert!(w[1] < w[0], "not concave: {per_second:?}");
        }
        for w in per_second[10..].windows(2) {
            assert!(w[1] > w[0], "not convex: {per_second:?}");
        }
        // Near K the window sits at W_max.
        assert!(per_second[9] < 2 * MSS as i64, "{per_second:?}");
    }

    #[test]
    fn growth_per_ack_bounded_by_half_window() {
        // §4.2: target at most 1.5·cwnd, so one window of ACKs grows cwnd by
        // at most 50% even far into the convex region.
        let rtt = Duration::from_millis(100);
        let mut c = after_loss(100);
        let now = run(&mut c, T0, Duration::from_secs(30), rtt, |_, _| {});
        let before = c.cwnd();
        let _ = run(&mut c, now, rtt, rtt, |_, _| {});
        assert!(
            c.cwnd() <= before + before / 2 + MSS,
            "{before} -> {}",
            c.cwnd()
        );
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mut c = after_loss(1000);
        // Second loss at 800 < W_max = 1000: W_max = 800 * (1 + 0.7) / 2.
        c.w.cwnd = 800 * MSS;
        c.on_congestion_event(T0, 800 * MSS);
        assert!((c.w_max() - 680.0).abs() < 1e-9);
        assert_eq!(c.cwnd(), 560 * MSS);
        // A loss above W_max just records it.
        c.on_recovery_exit(T0);
        c.w.cwnd = 900 * MSS;
        c.on_congestion_event(T0, 900 * MSS);
        assert_eq!(c.w_max(), 900.0);
    }

    #[test]
    fn reno_friendly_region_at_small_rtt() {
        // 1 ms RTT, W_max 20: the cubic curve needs seconds to recover,
        // Reno needs milliseconds. §4.3: cwnd follows W_est.
        let rtt = Duration::from_millis(1);
        let mut c = after_loss(20);
        assert_eq!(c.cwnd(), 14 * MSS);
        let now = run(&mut c, T0, Duration::from_millis(100), rtt, |_, _| {});
        let cwnd = f64::from(c.cwnd()) / f64::from(MSS);
        let t = (now - T0).as_secs_f64();
        assert!(c.w_cubic(t) < 15.0);
        // 100 RTTs: ~11 RTTs at alpha 0.53 up to cwnd_prior (20), then one
        // segment per RTT.
        assert!(cwnd > 80.0 && cwnd < 120.0, "cwnd {cwnd}");
        assert!((c.w_est - cwnd).abs() < 1.0);
    }

    #[test]
    fn no_growth_during_recovery_and_once_per_window() {
        let mut c = after_loss(100);
        c.on_congestion_event(T0, 70 * MSS);
        assert!(c.in_recovery());
        c.on_congestion_event(T0, 70 * MSS);
        assert_eq!(c.cwnd(), 49 * MSS);
        c.on_ack(T0, 10 * MSS, Some(Duration::from_millis(10)), 49 * MSS);
        assert_eq!(c.cwnd(), 49 * MSS);
        assert!(c.on_partial_ack(T0, MSS));
        assert!(!c.on_partial_ack(T0, MSS));
    }

    #[test]
    fn timeout_then_convex_from_new_epoch() {
        let rtt = Duration::from_millis(100);
        let mut c = after_loss(100); // cwnd 70
        c.on_rto(T0, 70 * MSS);
        // §4.8: cwnd = 1 segment, ssthresh = flight * beta.
        assert_eq!(c.cwnd(), MSS);
        assert_eq!(c.ssthresh(), 49 * MSS);
        c.on_rto(T0, MSS);
        assert_eq!(c.ssthresh(), 49 * MSS, "held across backed-off timeouts");
        // Slow start up to ssthresh, then a stage with K = 0 and
        // W_max = cwnd at its start.
        let mut epoch = None;
        run(&mut c, T0, Duration::from_secs(3), rtt, |now, c| {
            if epoch.is_none() && c.in_epoch {
                epoch = Some((now, c.w_max()));
            }
        });
        let (_, w_max) = epoch.expect("congestion avoidance reached");
        assert_eq!(c.k(), 0.0);
        assert!((49.0..52.0).contains(&w_max), "W_max {w_max}");
    }

    proptest! {
        #[test]
        fn invariants(mss in 0u32..20_000, ops in proptest::collection::vec((0u8..5, any::<u32>(), 0u64..10_000_000_000), 0..300)) {
            let mut c = Cubic::new(mss);
            let mut now = T0;
            for (op, n, dt) in ops {
                now += Duration::from_nanos(dt);
                match op {
                    0 => c.on_ack(now, n, Some(Duration::from_nanos(dt)), n),
                    1 => c.on_congestion_event(now, n),
                    2 => { c.on_partial_ack(now, n); }
                    3 => c.on_recovery_exit(now),
                    _ => c.on_rto(now, n),
                }
                prop_assert!(c.cwnd() >= c.mss());
                prop_assert!(c.ssthresh() >= 2 * c.mss());
                prop_assert!(c.w_max().is_finite() && c.k().is_finite());
            }
        }
    }
}
