//! Internal consistency checks, for fuzz targets and tests: the sequence
//! variables a harness needs to build in-window segments
//! ([`Connection::debug_seq`]) and the invariants every reachable state
//! keeps ([`Connection::debug_invariants`]). Not a stable interface.

use super::*;

/// A connection's sequence-space variables (RFC 9293 §3.3.1), as of the
/// call. For fuzz targets and tests only.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqVars {
    /// Our initial sequence number.
    pub iss: u32,
    /// The peer's initial sequence number (0 until its SYN arrived).
    pub irs: u32,
    /// SND.UNA.
    pub snd_una: u32,
    /// SND.NXT.
    pub snd_nxt: u32,
    /// SND.MAX: the highest sequence number sent.
    pub snd_max: u32,
    /// SND.WND, scaled.
    pub snd_wnd: u32,
    /// RCV.NXT.
    pub rcv_nxt: u32,
    /// Right edge of the window last advertised.
    pub rcv_adv: u32,
    /// Shift applied to the peer's window field.
    pub snd_wscale: u8,
    /// Shift applied to our window field (not to SYNs).
    pub rcv_wscale: u8,
    /// TS.Recent, when timestamps are in use and one was recorded.
    pub ts_recent: Option<u32>,
}

impl<B: PacketBuf> Connection<B> {
    /// The sequence-space variables. For fuzz targets and tests.
    #[doc(hidden)]
    pub fn debug_seq(&self) -> SeqVars {
        SeqVars {
            iss: self.iss,
            irs: self.irs,
            snd_una: self.snd_una,
            snd_nxt: self.snd_nxt,
            snd_max: self.snd_max,
            snd_wnd: self.snd_wnd,
            rcv_nxt: self.rcv_nxt(),
            rcv_adv: self.rcv_adv,
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            ts_recent: (self.flags & (F_TS | F_TS_RECENT_VALID) == F_TS | F_TS_RECENT_VALID)
                .then_some(self.ts_recent),
        }
    }

    /// Checks the invariants every state reachable through the public
    /// interface keeps; the first broken one is named. For fuzz targets and
    /// tests (cheap: no allocation, no walk longer than the SACK
    /// scoreboard).
    #[doc(hidden)]
    pub fn debug_invariants(&self) -> Result<(), &'static str> {
        if !seq_le(self.snd_una, self.snd_nxt) {
            return Err("SND.UNA is above SND.NXT");
        }
        if !seq_le(self.snd_nxt, self.snd_max) {
            return Err("SND.NXT is above SND.MAX");
        }
        if self.sendq.len() > self.cfg.snd_buf {
            return Err("send queue holds more than snd_buf");
        }
        if self.rxq.capacity() > self.cfg.rcv_buf as usize {
            return Err("receive queue larger than rcv_buf");
        }
        if self.rxq.buffered() > self.rxq.capacity() {
            return Err("receive queue holds more than its capacity");
        }
        if self.cc.cwnd() == 0 {
            return Err("congestion window is zero");
        }
        if self.state == State::Closed {
            if self.timers.next().is_some() {
                return Err("timer armed in CLOSED");
            }
            if !self.sendq.is_empty() || self.rxq.buffered() != 0 {
                return Err("data held in CLOSED");
            }
            return Ok(());
        }
        // What is in flight was queued: the SYN, the data, the FIN.
        let flight = self.snd_max.wrapping_sub(self.snd_una);
        let syn = u32::from(self.snd_una == self.iss);
        let fin = u32::from(self.flags & F_FIN_QUEUED != 0);
        if u64::from(flight) > u64::from(self.sendq.len()) + u64::from(syn + fin) {
            return Err("more in flight than was queued");
        }
        // The scoreboard holds every segment in flight, one record each,
        // with counters that match its records.
        self.board.check()?;
        if self.board.len() > self.seg_cap() {
            return Err("scoreboard holds more records than its cap");
        }
        if self.state.is_synchronized() {
            if self.board.is_empty() {
                if self.snd_una != self.snd_max {
                    return Err("data in flight without scoreboard records");
                }
            } else if self.board.una() != self.snd_una || self.board.high() != self.snd_max {
                return Err("scoreboard does not span SND.UNA..SND.MAX");
            }
        } else if !self.board.is_empty() {
            return Err("scoreboard records before the handshake completed");
        }
        if self.flags & F_SACK == 0 && self.board.sacked_bytes() + self.board.lost_bytes() > 0 {
            return Err("SACK or RACK marks without SACK");
        }
        if self.flags & F_TLP_OPEN != 0
            && !(seq_le(self.snd_una, self.tlp_end) && seq_le(self.tlp_end, self.snd_max))
        {
            return Err("TLP.end_seq outside SND.UNA..SND.MAX");
        }
        if self.timers.is_set(Timer::Rack) && self.snd_una == self.snd_max {
            return Err("RACK or probe timer armed with nothing in flight");
        }
        if self.flags & F_RECOVERY != 0 && self.flags & F_LOSS != 0 {
            return Err("fast recovery and timeout recovery at once");
        }
        match self.state {
            State::SynSent | State::SynReceived => {
                if !self.timers.is_set(Timer::Rto) {
                    return Err("handshake without a retransmission timer");
                }
            }
            State::TimeWait => {
                if !self.timers.is_set(Timer::TimeWait) {
                    return Err("TIME-WAIT without its timer");
                }
            }
            _ => {
                if self.snd_una != self.snd_max && !self.timers.is_set(Timer::Rto) {
                    return Err("unacknowledged data without a retransmission timer");
                }
            }
        }
        Ok(())
    }
}
