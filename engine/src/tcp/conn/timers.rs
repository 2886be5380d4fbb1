//! Timer expiry: [`Connection::handle_timeout`] walks the due timers of the
//! table (RTO, delayed ACK, persist, keep-alive, FIN-WAIT-2, TIME-WAIT,
//! and RACK's reordering or probe timeout, handled in [`loss`](super::loss)).

use super::*;

impl<B: PacketBuf> Connection<B> {
    /// Handles every timer due at `now`. Call when
    /// [`poll_timeout`](Self::poll_timeout) has passed, then drain
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn handle_timeout(&mut self, now: Instant) {
        for t in self.timers.expired(now) {
            if self.state == State::Closed {
                break;
            }
            // An earlier handler may have stopped or moved it.
            if !self.timers.is_expired(t, now) {
                continue;
            }
            self.timers.stop(t);
            match t {
                Timer::Rto => self.on_rto(now),
                Timer::DelayedAck => self.flags |= F_ACK_NOW,
                Timer::Persist => self.on_persist(now),
                Timer::Keepalive => self.on_keepalive(now),
                Timer::FinWait2 => {
                    if self.state == State::FinWait2 {
                        self.enter_closed(CloseReason::TimedOut);
                    }
                }
                Timer::TimeWait => self.enter_closed(CloseReason::Normal),
                Timer::Rack => self.on_rack_timer(now),
            }
        }
    }

    /// Retransmission timeout (RFC 6298 §5.4–5.7, RFC 5681 §3.1): back off,
    /// collapse cwnd; with SACK mark what is lost and keep what was SACKed
    /// (RFC 8985 §6.3, RFC 6675 §5.1), without it go back to SND.UNA;
    /// give up past `syn_retries`, `synack_retries` or `retries2` (RFC 9293
    /// §3.8.3 R2).
    fn on_rto(&mut self, now: Instant) {
        let handshake = matches!(self.state, State::SynSent | State::SynReceived);
        if !handshake && self.snd_una == self.snd_max {
            return;
        }
        bump(&mut self.stats.rto_timeouts);
        self.retries = self.retries.saturating_add(1);
        let limit = match self.state {
            State::SynSent => self.cfg.syn_retries,
            State::SynReceived => self.cfg.synack_retries,
            _ => self.cfg.retries2,
        };
        if self.retries > limit {
            self.enter_closed(CloseReason::TimedOut);
            return;
        }
        self.rtt.on_timeout();
        self.flags &= !F_RTT_TIMING;
        if handshake {
            self.flags |= F_SYN_TIMED_OUT;
            self.snd_nxt = self.iss;
        } else {
            let flight = self.snd_max.wrapping_sub(self.snd_una);
            self.cc.on_rto(now, flight);
            // RFC 6582 §3.2 step 7 (after a timeout, `recover` = HighData;
            // RFC 6675 §5.1: no new recovery before it).
            self.recover = self.snd_max;
            self.flags &=
                !(F_RECOVERY | F_REXMIT_HEAD | F_RESCUED | F_TLP_OPEN | F_TLP_PTO | F_TLP_SEND);
            self.timers.stop(Timer::Rack);
            self.dup_acks = 0;
            self.dup_bytes = 0;
            if self.flags & F_SACK != 0 {
                self.flags |= F_LOSS;
                self.rack_mark_losses_on_rto(now);
            } else {
                self.snd_nxt = self.snd_una;
            }
        }
        self.arm_rto(now);
    }

    /// Persist timer (RFC 9293 §3.8.6.1): probe, back off exponentially.
    fn on_persist(&mut self, now: Instant) {
        if !self.state.is_synchronized() || self.state == State::TimeWait {
            return;
        }
        self.flags |= F_PROBE;
        self.persist_backoff = self.persist_backoff.saturating_add(1);
        self.arm_persist(now);
    }

    /// Keep-alive (RFC 1122 §4.2.3.6): probe when idle; after `probes`
    /// unanswered probes the peer is dead: RST and `Closed(TimedOut)`.
    fn on_keepalive(&mut self, now: Instant) {
        let Some(k) = self.cfg.keepalive else { return };
        if !matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait2
        ) {
            return;
        }
        if self.snd_una != self.snd_max {
            // Data in flight: the RTO watches the peer.
            self.timers.set(Timer::Keepalive, now + k.idle);
            return;
        }
        if self.keepalive_sent >= k.probes {
            self.queue_rst(self.snd_nxt, Some(self.rcv_nxt()));
            self.enter_closed(CloseReason::TimedOut);
            return;
        }
        self.keepalive_sent += 1;
        self.flags |= F_KEEPALIVE;
        self.timers.set(Timer::Keepalive, now + k.interval);
    }
}
