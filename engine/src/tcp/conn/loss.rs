//! The sender's loss detection, on the per-segment scoreboard:
//!
//! - RTT samples (RFC 6298 §3): from the send time of the most recently
//!   sent segment this ACK delivered (cumulatively or in a SACK block). An
//!   older one would measure how long the ACKs for it were lost or held
//!   back, not the path (a sample of seconds on a 1 ms path, once the ACKs
//!   of a window were lost and a timeout's retransmission drew the next
//!   one). A retransmitted segment gives a sample only when the timestamp
//!   echo shows the ACK is for its last transmission (Karn's algorithm;
//!   RFC 7323 §4) and the sample is not below the minimum RTT (RFC 8985
//!   §6.2 step 2);
//! - RACK (RFC 8985 §6): a segment is lost once a segment sent after it
//!   was delivered and RACK.rtt + RACK.reo_wnd has passed since it was
//!   sent; retransmissions included, so a lost retransmission is found
//!   without waiting for the RTO;
//! - the tail loss probe (RFC 8985 §7): after 2·SRTT without an ACK, one
//!   segment (new data, else the last one again) draws the SACK that lets
//!   RACK find a tail loss;
//! - the marks a retransmission timeout leaves (RFC 8985 §6.3).
//!
//! RACK and TLP need SACK: without it, loss detection stays with
//! duplicate ACKs (RFC 5681, RFC 6582, RFC 3042 limited transmit).

use super::*;
use crate::tcp::send::{Delivered, Rack};
use crate::time::Duration;

/// WCDelAckT (RFC 8985 §7.2): the worst-case delayed-ACK wait added to
/// the probe timeout when one segment is in flight.
const WC_DEL_ACK: Duration = Duration::from_millis(200);
/// Added to 2·SRTT when more than one segment is in flight: Linux's
/// `TCP_TIMEOUT_MIN` (the receiver's timer granularity).
const PTO_SLACK: Duration = Duration::from_millis(2);
/// RFC 8985 §7.2: the probe timeout before any RTT sample.
const PTO_NO_RTT: Duration = Duration::from_secs(1);
/// RFC 8985 §6.2 step 4: recoveries a raised reordering window lasts.
const REO_WND_PERSIST: u8 = 16;

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Microseconds from `earlier` to `now` (zero if later), saturated: the
/// per-ACK arithmetic stays on integers.
#[inline]
fn us_since(now: Instant, earlier: Instant) -> u32 {
    u32::try_from(now.as_nanos().saturating_sub(earlier.as_nanos()) / 1000).unwrap_or(u32::MAX)
}

/// RFC 8985 `RACK_sent_after`: whether (t1, seq1) was sent after
/// (t2, seq2); ties in time go by sequence number.
fn sent_after(t1: Instant, seq1: u32, t2: Instant, seq2: u32) -> bool {
    t1 > t2 || (t1 == t2 && seq_lt(seq2, seq1))
}

/// What one ACK delivered, gathered while the scoreboard walks it.
pub(super) struct AckWalk {
    now: Instant,
    /// The ACK's TS.Ecr, when timestamps are in use.
    tsecr: Option<u32>,
    ts_offset: u32,
    /// RACK.min_RTT in microseconds (`u32::MAX`: none yet).
    min_rtt_us: u32,
    /// The most recently sent segment delivered whose delivery is not
    /// ambiguous (RFC 8985 §6.2 step 2): send time, end, RTT in
    /// microseconds.
    rack: Option<(Instant, u32, u32)>,
    /// The most recently sent segment delivered: send time, end, whether
    /// that delivery is ambiguous.
    newest: Option<(Instant, u32, bool)>,
    /// RACK.fack and RACK.reordering_seen as of this ACK (§6.2 step 3).
    fack: u32,
    reordered: bool,
}

impl AckWalk {
    pub(super) fn note(&mut self, d: Delivered) {
        // RFC 8985 §6.2 step 3: a segment sent once and delivered below the
        // highest delivered one arrived out of order.
        if seq_lt(self.fack, d.end) {
            self.fack = d.end;
        } else if seq_lt(d.end, self.fack) && !d.retransmitted {
            self.reordered = true;
        }
        // RFC 8985 §6.2 step 2: a retransmitted segment counts only when
        // the echo (if any) is not older than this transmission and the RTT
        // is not implausibly short for it.
        let rtt = us_since(self.now, d.xmit);
        let ambiguous = d.retransmitted
            && (self
                .tsecr
                .is_some_and(|ecr| seq_lt(ecr, timestamp_value(self.ts_offset, d.xmit)))
                || rtt < self.min_rtt_us);
        if self
            .newest
            .is_none_or(|(t, e, _)| sent_after(d.xmit, d.end, t, e))
        {
            // Karn: without timestamps, no proof either way.
            let unproven = d.retransmitted && self.tsecr.is_none();
            self.newest = Some((d.xmit, d.end, ambiguous || unproven));
        }
        if ambiguous {
            return;
        }
        if self
            .rack
            .is_none_or(|(t, e, _)| sent_after(d.xmit, d.end, t, e))
        {
            self.rack = Some((d.xmit, d.end, rtt));
        }
    }
}

impl<B: PacketBuf> Connection<B> {
    /// Records the scoreboard may hold: twice a full send buffer of
    /// full-sized segments, and some.
    pub(super) fn seg_cap(&self) -> usize {
        (self.cfg.snd_buf / u32::from(self.mss.max(1))) as usize * 2 + 64
    }

    /// Feeds an RTT sample to the RTO estimator and RACK.min_RTT.
    pub(super) fn rtt_sample(&mut self, r: Duration) {
        self.rtt_sample_us(us(r));
    }

    /// [`rtt_sample`](Self::rtt_sample) in microseconds.
    fn rtt_sample_us(&mut self, r: u32) {
        self.flags &= !F_TLP_NO_RTT;
        self.rtt.on_sample_us(r);
        self.min_rtt_us = self.min_rtt_us.min(r);
    }

    /// Whether a timestamp echo is older than our last SYN (or SYN-ACK):
    /// the ACK may then answer an earlier one, sent before a loss, and
    /// timing it would count the lost exchange (Karn's algorithm, RFC 6298
    /// §3, with the timestamp as the proof, RFC 7323 §4).
    pub(super) fn echo_predates_syn(&self, ecr: u32) -> bool {
        seq_lt(ecr, timestamp_value(self.ts_offset, self.rtt_sent))
    }

    /// A walk for the ACK carrying `ts`, to hand to the scoreboard.
    pub(super) fn ack_walk(&self, now: Instant, ts: Option<(u32, u32)>) -> AckWalk {
        AckWalk {
            now,
            tsecr: ts.filter(|_| self.flags & F_TS != 0).map(|(_, ecr)| ecr),
            ts_offset: self.ts_offset,
            min_rtt_us: self.min_rtt_us,
            rack: None,
            newest: None,
            fack: self
                .board
                .rack()
                .and_then(|r| r.fack)
                .map_or(self.snd_una, |f| seq_max(f, self.snd_una)),
            reordered: false,
        }
    }

    /// Takes the RTT sample and updates RACK from what an ACK delivered.
    /// `advanced`: the ACK moved SND.UNA (to `ack`).
    pub(super) fn ack_walk_done(&mut self, now: Instant, w: &AckWalk, ack: u32, advanced: bool) {
        // RFC 6298 §3: see the module docs.
        let mut sample = match w.newest {
            Some((t, _, false)) => Some(us_since(now, t)),
            _ => None,
        };
        if self.flags & F_RTT_TIMING != 0 && advanced && seq_le(self.rtt_seq, ack) {
            // The handshake (our SYN or SYN-ACK), no retransmission of it.
            self.flags &= !F_RTT_TIMING;
            sample = sample.or(Some(us_since(now, self.rtt_sent)));
        } else if advanced && w.newest.is_none() && self.snd_una == self.iss {
            // Our SYN-ACK, retransmitted: only the timestamp echo tells,
            // if it is of the last one.
            if let Some(ecr) = w.tsecr.filter(|&e| e != 0 && !self.echo_predates_syn(e)) {
                let d = self.ts_now(now).wrapping_sub(ecr);
                if d < 1 << 31 {
                    sample = Some(d.saturating_mul(1000));
                }
            }
        }
        if let Some(r) = sample {
            self.rtt_sample_us(r);
        }
        // RFC 8985 §6.2 step 2: RACK.rtt from this ACK's most recently sent
        // segment; RACK.xmit_ts only moves forward.
        if let Some(rack) = self.board.rack_mut() {
            if let Some((t, e, rtt)) = w.rack {
                rack.rtt_us = rtt;
                if rack.seg.is_none_or(|(rt, re)| sent_after(t, e, rt, re)) {
                    rack.seg = Some((t, e));
                }
                self.min_rtt_us = self.min_rtt_us.min(rack.rtt_us);
            }
            rack.fack = Some(w.fack);
        }
        if w.reordered {
            self.flags |= F_REORDER_SEEN;
        }
    }

    /// RFC 8985 §6.2 step 4, the D-SACK part: widen the reordering window
    /// once per round trip with a D-SACK, back to the base after 16
    /// recoveries without one.
    pub(super) fn rack_update_reo_wnd(&mut self, dsack: bool, exiting_recovery: bool) {
        let (una, max) = (self.snd_una, self.snd_max);
        let mut grow = false;
        if dsack {
            if let Some(rack) = self.board.rack_mut() {
                // A round ends once SND.UNA passes it.
                if rack.dsack_round.is_none_or(|r| seq_le(r, una)) {
                    rack.dsack_round = Some(max);
                    grow = true;
                }
            }
        }
        if grow {
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1);
            self.reo_wnd_persist = REO_WND_PERSIST;
        } else if exiting_recovery {
            self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    /// RACK.reo_wnd (RFC 8985 §6.2 step 4): none in recovery or once
    /// DupThresh segments are SACKed, until reordering was seen; else a
    /// quarter of the minimum RTT (times the D-SACK multiplier), at most
    /// SRTT.
    fn rack_reo_wnd_us(&self) -> u64 {
        if self.flags & F_REORDER_SEEN == 0
            && (self.flags & (F_RECOVERY | F_LOSS) != 0
                || self.board.sacked_segs() >= u32::from(self.cfg.dup_thresh.max(1)))
            || self.min_rtt_us == u32::MAX
        {
            return 0;
        }
        let w = u64::from(self.min_rtt_us) * u64::from(self.reo_wnd_mult) / 4;
        self.rtt.srtt_us().map_or(w, |s| w.min(u64::from(s)))
    }

    /// RACK.rtt + RACK.reo_wnd: how long a segment sent before the RACK
    /// segment may stay undelivered.
    fn rack_wait(&self) -> Duration {
        let rtt = self.board.rack().map_or(0, |r: &Rack| r.rtt_us);
        Duration::from_micros(u64::from(rtt) + self.rack_reo_wnd_us())
    }

    /// RFC 8985 §6.2 step 5: marks lost what RACK deems lost and arms the
    /// reordering timer for the rest. Returns whether anything was marked.
    pub(super) fn rack_detect_loss(&mut self, now: Instant) -> bool {
        let Some((xmit, end)) = self.board.rack().and_then(|r| r.seg) else {
            return false;
        };
        if self.flags & F_SACK == 0 {
            return false;
        }
        if !self.board.may_have_rack_candidates(xmit, end) {
            // The common case: the oldest segment outstanding went after
            // the RACK segment, so none is to be judged.
            if self.flags & F_TLP_PTO == 0 {
                self.timers.stop(Timer::Rack);
            }
            return false;
        }
        let wait = self.rack_wait();
        let (n, timeout) = self.board.rack_detect(now, xmit, end, wait);
        self.stats.rack_lost = self.stats.rack_lost.saturating_add(n);
        match timeout {
            Some(t) => {
                self.timers.set(Timer::Rack, now + t);
                self.flags &= !F_TLP_PTO;
            }
            None if self.flags & F_TLP_PTO == 0 => self.timers.stop(Timer::Rack),
            None => {}
        }
        n > 0
    }

    /// RFC 8985 §6.3: the marks of a retransmission timeout.
    pub(super) fn rack_mark_losses_on_rto(&mut self, now: Instant) {
        let wait = self.rack_wait();
        let n = self.board.mark_lost_on_rto(now, wait);
        self.stats.rack_lost = self.stats.rack_lost.saturating_add(n);
    }

    /// RFC 8985 §7.2: (re)arms the probe timeout after new data went out
    /// or an ACK advanced SND.UNA, when a probe may be due: SACK in use,
    /// data in flight, not in recovery, nothing SACKed, no probe episode
    /// open; PTO = 2·SRTT (+ WCDelAckT with one segment in flight), never
    /// past the RTO.
    pub(super) fn arm_pto(&mut self, now: Instant) {
        let flight = self.snd_max.wrapping_sub(self.snd_una);
        let eligible = self.flags & (F_SACK | F_RECOVERY | F_LOSS | F_TLP_OPEN) == F_SACK
            && flight > 0
            && self.board.sacked_bytes() == 0
            && self.state.is_synchronized()
            && self.state != State::TimeWait;
        // In nanoseconds: this runs for every segment sent.
        let deadline = eligible.then(|| {
            let ns = |d: Duration| d.as_nanos() as u64;
            let pto = match self.rtt.srtt_us() {
                Some(srtt) => {
                    let slack = if flight <= u32::from(self.mss) {
                        ns(WC_DEL_ACK)
                    } else {
                        ns(PTO_SLACK)
                    };
                    u64::from(srtt) * 2000 + slack
                }
                None => ns(PTO_NO_RTT),
            };
            Instant::from_nanos(now.as_nanos().saturating_add(pto))
        });
        match (deadline, self.timers.get(Timer::Rto)) {
            (Some(d), Some(rto)) if d < rto => {
                self.timers.set(Timer::Rack, d);
                self.flags |= F_TLP_PTO;
            }
            _ if self.flags & F_TLP_PTO != 0 => {
                self.timers.stop(Timer::Rack);
                self.flags &= !F_TLP_PTO;
            }
            _ => {}
        }
    }

    /// `Timer::Rack` fired: a probe is due (RFC 8985 §7.3: unless one is
    /// still out or no RTT sample came since the last; then the RTO, still
    /// armed, takes over), or the reordering window ran out (§6.2 step 5).
    pub(super) fn on_rack_timer(&mut self, now: Instant) {
        if self.snd_una == self.snd_max {
            self.flags &= !F_TLP_PTO;
            return;
        }
        if self.flags & F_TLP_PTO != 0 {
            self.flags &= !F_TLP_PTO;
            if self.flags & (F_RECOVERY | F_LOSS | F_TLP_OPEN | F_TLP_NO_RTT) == 0
                && self.board.sacked_bytes() == 0
            {
                self.flags |= F_TLP_SEND;
            }
            return;
        }
        if self.rack_detect_loss(now) {
            self.enter_recovery(now);
        }
    }

    /// RFC 8985 §7.4.2 (as Linux's `tcp_process_tlp_ack`): the episode
    /// ends once TLP.end_seq is acknowledged; for a retransmitted probe,
    /// whether it repaired a loss. A D-SACK for it, or a pure duplicate ACK
    /// at TLP.end_seq, means the original arrived too; an ACK beyond it
    /// means only the probe did: the window is reduced as for a loss.
    pub(super) fn tlp_on_ack(&mut self, now: Instant, ack: u32, dsack: bool, dup: bool) {
        if self.flags & F_TLP_OPEN == 0 || seq_lt(ack, self.tlp_end) {
            return;
        }
        if self.flags & F_TLP_RXT == 0 || dsack || dup {
            self.flags &= !F_TLP_OPEN;
        } else if seq_lt(self.tlp_end, ack) {
            self.flags &= !F_TLP_OPEN;
            if self.flags & (F_RECOVERY | F_LOSS) == 0 {
                let flight = self.snd_max.wrapping_sub(self.snd_una);
                self.cc.on_congestion_event(now, flight);
                self.cc.on_recovery_exit(now);
            }
        }
    }
}

/// Whether the first SACK block of `seg` is a D-SACK (RFC 2883 §4): below
/// the cumulative ACK `ack`, or inside the second block.
pub(super) fn is_dsack(seg: &TcpRepr<'_>, ack: u32) -> bool {
    let Some((l, r)) = seg.sack_ranges[0] else {
        return false;
    };
    seq_lt(l, r)
        && (seq_le(r, ack)
            || seg.sack_ranges[1].is_some_and(|(l2, r2)| seq_le(l2, l) && seq_le(r, r2)))
}
