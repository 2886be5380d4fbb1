//! Segment arrival, RFC 9293 §3.10.7, with RFC 5961 (blind in-window
//! attacks), RFC 7323 (PAWS, TS.Recent), RFC 5681/6582 (duplicate ACKs,
//! NewReno), RFC 6675 (the SACK scoreboard) and RFC 8985 (RACK-TLP, in
//! [`loss`](super::loss)).

use super::*;
use crate::time::Duration;

impl<B: PacketBuf> Connection<B> {
    /// Processes one segment of this connection's 4-tuple (already
    /// checksummed and parsed). `payload` is the received buffer advanced to
    /// the TCP payload (its bytes are `seg.payload`); it is queued without a
    /// copy. Outputs follow through the `poll_*` calls.
    pub fn handle_segment(&mut self, now: Instant, seg: &TcpRepr<'_>, payload: Option<B>) {
        bump(&mut self.stats.segs_in);
        let mut payload = payload;
        if !self.fast_input(now, seg, &mut payload) {
            match self.state {
                State::Closed | State::Listen => bump(&mut self.stats.dropped),
                State::SynSent => self.input_syn_sent(now, seg),
                _ => self.input_synchronized(now, seg, &mut payload),
            }
        }
        // Whatever the receive queue did not keep goes back to its pool
        // through `poll_recycle` (a NIC's pool is fixed: a buffer dropped
        // here would be lost to it).
        if let Some(b) = payload {
            self.rxq.release(b);
        }
    }

    /// RFC 9293 §3.10.7.3: SYN-SENT.
    fn input_syn_sent(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        let rst = seg.flags.contains(TcpFlags::RST);
        let ack = seg.ack_number.map(|a| a.0);
        // First: the ACK must acknowledge our SYN and nothing beyond.
        if let Some(a) = ack {
            if seq_le(a, self.iss) || seq_lt(self.snd_max, a) {
                bump(&mut self.stats.bad_acks);
                if !rst {
                    self.queue_rst(a, None);
                }
                return;
            }
        }
        // Second: a RST is only believed with an acceptable ACK.
        if rst {
            if ack.is_some() {
                bump(&mut self.stats.resets_in);
                self.enter_closed(CloseReason::Refused);
            } else {
                bump(&mut self.stats.dropped);
            }
            return;
        }
        // Fourth: the SYN.
        if !seg.flags.contains(TcpFlags::SYN) {
            bump(&mut self.stats.dropped);
            return;
        }
        self.take_syn(seg, now);
        match ack {
            Some(a) => {
                self.rtt_on_syn_ack(now, a, seg.timestamp);
                self.snd_una = a;
                if seq_lt(self.snd_nxt, a) {
                    self.snd_nxt = a;
                }
                self.snd_wl1 = seg.seq_number.0;
                self.snd_wl2 = a;
                self.establish(now);
                // Acknowledge the SYN-ACK (data may ride along).
                self.flags |= F_ACK_NOW;
            }
            None => {
                // Simultaneous open (§3.5, figure 8): SYN-RECEIVED, and
                // our SYN goes again, now with an ACK.
                self.state = State::SynReceived;
                self.snd_nxt = self.iss;
            }
        }
    }

    /// Handshake complete: ESTABLISHED.
    fn establish(&mut self, now: Instant) {
        self.state = State::Established;
        self.events |= EV_CONNECTED;
        self.rtt
            .on_handshake_complete(self.flags & F_SYN_TIMED_OUT != 0);
        self.retries = 0;
        self.recover = self.snd_una;
        if self.snd_una == self.snd_max {
            self.timers.stop(Timer::Rto);
        }
        self.arm_keepalive(now);
    }

    /// RFC 9293 §3.10.7.4 acceptability test against RCV.WND.
    fn acceptable(&self, seq: u32, seg_len: u32, wnd: u32) -> bool {
        let rcv_nxt = self.rcv_nxt();
        let in_wnd = |s: u32| seq_le(rcv_nxt, s) && seq_lt(s, rcv_nxt.wrapping_add(wnd));
        match (seg_len, wnd) {
            (0, 0) => seq == rcv_nxt,
            (0, _) => in_wnd(seq),
            (_, 0) => false,
            (n, _) => in_wnd(seq) || in_wnd(seq.wrapping_add(n - 1)),
        }
    }

    /// Every state from SYN-RECEIVED on: RFC 9293 §3.10.7.4.
    fn input_synchronized(&mut self, now: Instant, seg: &TcpRepr<'_>, payload: &mut Option<B>) {
        let seq = seg.seq_number.0;
        let rst = seg.flags.contains(TcpFlags::RST);
        let syn = seg.flags.contains(TcpFlags::SYN);
        let mut fin = seg.flags.contains(TcpFlags::FIN);
        let mut plen = seg.payload.len() as u32;

        // TIME-WAIT: a retransmitted FIN is acknowledged and restarts the
        // 2·MSL wait (§3.10.7.4, eighth step).
        if self.state == State::TimeWait
            && fin
            && !rst
            && !syn
            && seq.wrapping_add(plen).wrapping_add(1) == self.rcv_nxt()
        {
            self.flags |= F_ACK_NOW;
            self.timers.set(Timer::TimeWait, now + 2 * self.cfg.msl);
            return;
        }

        // SYN-RECEIVED: a retransmission of the peer's SYN means our
        // SYN-ACK was lost; send it again (RFC 9293 §3.8.1, as Linux does).
        // The acceptability test below would only draw a bare ACK, which a
        // peer in SYN-SENT drops.
        if self.state == State::SynReceived
            && syn
            && !rst
            && seg.ack_number.is_none()
            && seq == self.irs
        {
            // RFC 7323 §4.3: SEG.SEQ <= Last.ACK.sent, so TS.Recent takes
            // its TSval; the SYN-ACK sent again echoes this SYN, not the
            // first (whose echo would time the lost exchange too).
            if let Some((tsval, _)) = seg.timestamp {
                if self.flags & F_TS != 0
                    && (self.flags & F_TS_RECENT_VALID == 0 || seq_le(self.ts_recent, tsval))
                {
                    self.ts_recent = tsval;
                    self.flags |= F_TS_RECENT_VALID;
                }
            }
            self.snd_nxt = self.iss;
            return;
        }

        // PAWS, RFC 7323 §5.3: an older TSval marks an old duplicate. RSTs
        // are exempt (R1 note); the drop is answered with an ACK.
        if self.flags & F_TS != 0 && !rst {
            if let Some((tsval, _)) = seg.timestamp {
                if self.flags & F_TS_RECENT_VALID != 0 && seq_lt(tsval, self.ts_recent) {
                    bump(&mut self.stats.paws_drops);
                    self.flags |= F_ACK_NOW;
                    return;
                }
            }
        }

        // First: sequence number acceptable?
        let wnd = self.rxq.window();
        let seg_len = plen + u32::from(syn) + u32::from(fin);
        if !self.acceptable(seq, seg_len, wnd) {
            // A zero window still takes valid ACKs (and RSTs) at RCV.NXT
            // (§3.10.7.4): keep the control part, drop the text.
            if wnd == 0 && seq == self.rcv_nxt() && seg.ack_number.is_some() && !syn {
                if plen > 0 || fin {
                    bump(&mut self.stats.out_of_window);
                    self.flags |= F_ACK_NOW;
                }
                plen = 0;
                fin = false;
            } else {
                bump(&mut self.stats.out_of_window);
                if !rst {
                    self.flags |= F_ACK_NOW;
                }
                return;
            }
        }

        // Second: RST, RFC 5961 §3.2: only an exact match resets; any other
        // in-window RST draws a challenge ACK.
        if rst {
            if seq == self.rcv_nxt() {
                bump(&mut self.stats.resets_in);
                let reason = match self.state {
                    State::SynReceived if self.flags & F_PASSIVE == 0 => CloseReason::Refused,
                    State::TimeWait => CloseReason::Normal,
                    _ => CloseReason::Reset,
                };
                self.enter_closed(reason);
            } else {
                self.challenge_ack(now);
            }
            return;
        }

        // Fourth: SYN in a synchronized state, RFC 5961 §4 (RFC 9293
        // §3.10.7.4): challenge ACK. A retransmission of the peer's SYN in
        // SYN-RECEIVED gets our SYN-ACK again.
        if syn {
            if self.state == State::SynReceived && seq == self.irs {
                self.snd_nxt = self.iss;
            } else {
                self.challenge_ack(now);
            }
            return;
        }

        // TS.Recent, RFC 7323 §4.3: from a segment covering the last ACK
        // we sent, when not older.
        if let Some((tsval, _)) = seg.timestamp {
            if self.flags & F_TS != 0
                && seq_le(seq, self.last_ack_sent)
                && (self.flags & F_TS_RECENT_VALID == 0 || seq_le(self.ts_recent, tsval))
            {
                self.ts_recent = tsval;
                self.flags |= F_TS_RECENT_VALID;
            }
        }

        // Fifth: the ACK field.
        let Some(ack) = seg.ack_number.map(|a| a.0) else {
            bump(&mut self.stats.dropped);
            return;
        };
        if self.state == State::SynReceived {
            if seq_lt(self.snd_una, ack) && seq_le(ack, self.snd_max) {
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.snd_wnd = u32::from(seg.window_len) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.establish(now);
            } else {
                bump(&mut self.stats.bad_acks);
                self.queue_rst(ack, None);
                return;
            }
        }
        if seq_lt(self.snd_max, ack) {
            // Acknowledges data never sent: ACK and drop (§3.10.7.4).
            bump(&mut self.stats.bad_acks);
            self.flags |= F_ACK_NOW;
            return;
        }
        // RFC 5961 §5.2: too old an ACK is a blind injection.
        let oldest = self.snd_una.wrapping_sub(self.max_snd_wnd.max(1));
        if seq_lt(ack, oldest) {
            bump(&mut self.stats.bad_acks);
            self.challenge_ack(now);
            return;
        }
        self.arm_keepalive(now);
        self.process_ack(now, seg, ack, plen == 0 && !fin);
        if self.state == State::Closed {
            return;
        }

        // Seventh: the text.
        if plen > 0 {
            self.input_data(now, seq, plen, payload.take());
        }
        if self.state == State::Closed {
            return;
        }

        // Eighth: FIN.
        if fin
            && matches!(
                self.state,
                State::Established | State::FinWait1 | State::FinWait2
            )
        {
            let _ = self.rxq.set_fin(TcpSeqNumber(seq.wrapping_add(plen)));
            self.flags |= F_ACK_NOW;
        }
        self.check_peer_fin(now);
    }

    /// The peer's FIN became in order: CLOSE-WAIT, CLOSING or TIME-WAIT.
    fn check_peer_fin(&mut self, now: Instant) {
        if self.flags & F_PEER_FIN != 0 || !self.rxq.fin_reached() {
            return;
        }
        self.flags |= F_PEER_FIN | F_ACK_NOW;
        self.events |= EV_PEER_FIN;
        match self.state {
            State::Established => self.state = State::CloseWait,
            State::FinWait1 => {
                if self.flags & F_FIN_ACKED != 0 {
                    self.enter_time_wait(now);
                } else {
                    self.state = State::Closing;
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    /// Queues payload (§3.10.7.4, seventh step) and decides the ACK:
    /// immediately for out-of-order data, hole fills and duplicates, at
    /// least every second full-sized segment, else after the delayed-ACK
    /// timeout (RFC 5681 §4.2, RFC 1122 §4.2.3.2).
    fn input_data(&mut self, now: Instant, seq: u32, plen: u32, payload: Option<B>) {
        if !matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            // Data after the peer's FIN: ignore (§3.10.7.4).
            bump(&mut self.stats.dropped);
            if let Some(b) = payload {
                self.rxq.release(b);
            }
            return;
        }
        if self.flags & F_RECV_SHUT != 0 && seq_le(self.rcv_nxt(), seq.wrapping_add(plen)) {
            // New data after close(): nobody will read it, reset
            // (RFC 9293 §3.10.4, RFC 2525 §2.17).
            if let Some(b) = payload {
                self.rxq.release(b);
            }
            self.abort(now);
            return;
        }
        let Some(buf) = payload else {
            bump(&mut self.stats.dropped);
            self.flags |= F_ACK_NOW;
            return;
        };
        match self.rxq.insert(TcpSeqNumber(seq), buf, 0..plen as usize) {
            Insert::InOrder { filled_hole, .. } => self.in_order_data(now, filled_hole),
            Insert::OutOfOrder => {
                bump(&mut self.stats.ooo_segments);
                self.flags |= F_ACK_NOW;
            }
            // Every refused buffer goes back to its pool through
            // `poll_recycle`, never silently dropped: a NIC's pool is fixed.
            Insert::Duplicate(b) => {
                bump(&mut self.stats.duplicate_segments);
                self.flags |= F_ACK_NOW;
                self.rxq.release(b);
            }
            Insert::OutOfWindow(b) => {
                bump(&mut self.stats.out_of_window);
                self.flags |= F_ACK_NOW;
                self.rxq.release(b);
            }
            Insert::Dropped(_, b) => {
                bump(&mut self.stats.dropped);
                self.flags |= F_ACK_NOW;
                self.rxq.release(b);
            }
            Insert::Empty(b) => self.rxq.release(b),
        }
    }

    /// In-order data was queued: readable, and the ACK it owes.
    #[inline]
    pub(super) fn in_order_data(&mut self, now: Instant, filled_hole: bool) {
        self.events |= EV_READABLE;
        self.unacked_segs = self.unacked_segs.saturating_add(1);
        if filled_hole || self.unacked_segs >= 2 || self.cfg.delayed_ack == Duration::ZERO {
            self.flags |= F_ACK_NOW;
        } else if !self.timers.is_set(Timer::DelayedAck) {
            self.timers
                .set(Timer::DelayedAck, now + self.cfg.delayed_ack);
        }
    }

    /// RTT sample from the SYN-ACK: the timestamp echo (RFC 7323 §4) unless
    /// it is of a SYN sent before the last one, else the SYN's send time
    /// unless it was retransmitted (Karn's algorithm, RFC 6298 §3). Data is
    /// timed on the scoreboard ([`loss`](super::loss)).
    fn rtt_on_syn_ack(&mut self, now: Instant, ack: u32, ts: Option<(u32, u32)>) {
        if self.flags & F_TS != 0 {
            if let Some((_, tsecr)) = ts {
                let d = self.ts_now(now).wrapping_sub(tsecr);
                if tsecr != 0 && d < 1 << 31 && !self.echo_predates_syn(tsecr) {
                    self.rtt_sample(Duration::from_millis(u64::from(d)));
                    self.flags &= !F_RTT_TIMING;
                    return;
                }
            }
        }
        if self.flags & F_RTT_TIMING != 0 && seq_le(self.rtt_seq, ack) {
            self.flags &= !F_RTT_TIMING;
            self.rtt_sample(now.saturating_since(self.rtt_sent));
        }
    }

    /// ACK processing (§3.10.7.4 fifth step) with congestion control and
    /// loss recovery. `pure` when the segment carries no data and no FIN.
    pub(super) fn process_ack(&mut self, now: Instant, seg: &TcpRepr<'_>, ack: u32, pure: bool) {
        let seq = seg.seq_number.0;
        let new_wnd = u32::from(seg.window_len) << self.snd_wscale;
        let mss = u32::from(self.mss);
        let fin_before = self.fin_seq();
        let in_flight = self.snd_max.wrapping_sub(self.snd_una);
        let advanced = seq_lt(self.snd_una, ack);

        // The scoreboard (RFC 6675 §5: updated on every ACK): the
        // cumulative part first, then the SACK blocks lowest first, so what
        // this ACK delivered is seen in sequence order (RFC 8985 §6.2 step
        // 3).
        let mut walk = self.ack_walk(now, seg.timestamp);
        if advanced {
            self.board.ack(ack, |d| walk.note(d));
        }
        let mut sack_news = false;
        let mut dsack = false;
        if self.flags & F_SACK != 0 && seg.sack_ranges.iter().any(Option::is_some) {
            dsack = loss::is_dsack(seg, ack);
            let mut blocks = seg.sack_ranges;
            blocks.sort_unstable_by_key(|b| b.map_or(u32::MAX, |(l, _)| l.wrapping_sub(ack)));
            let cap = self.seg_cap();
            for (l, r) in blocks.into_iter().flatten() {
                if let Some(n) = self.board.sack(l, r, cap, |d| walk.note(d)) {
                    if n > 0 {
                        sack_news = true;
                        self.stats.sacked_bytes = self.stats.sacked_bytes.saturating_add(n);
                    }
                }
            }
        }
        self.ack_walk_done(now, &walk, ack, advanced);

        let mut exiting_recovery = false;
        // For the loss probe (RFC 8985 §7.4.2): an ACK that tells nothing new.
        let dup = !advanced && ack == self.snd_una && pure && new_wnd == self.snd_wnd && !sack_news;
        if advanced {
            let acked = ack.wrapping_sub(self.snd_una);
            let syn_adj = u32::from(self.snd_una == self.iss);
            let data_acked = acked.saturating_sub(syn_adj).min(self.sendq.len());
            if let Some(f) = fin_before {
                if seq_lt(f, ack) && seq_lt(f, self.snd_max) {
                    self.flags |= F_FIN_ACKED;
                }
            }
            self.sendq.ack(data_acked);
            self.snd_una = ack;
            if seq_lt(self.snd_nxt, ack) {
                self.snd_nxt = ack;
            }
            self.retries = 0;
            self.persist_backoff = 0;
            let mut restart_rto = true;
            if self.flags & F_RECOVERY != 0 {
                if seq_le(self.recover, ack) {
                    // Full ACK: recovery ends (RFC 6582 §3.2 step 6).
                    self.cc.on_recovery_exit(now);
                    self.flags &= !(F_RECOVERY | F_REXMIT_HEAD);
                    self.dup_bytes = 0;
                    exiting_recovery = true;
                } else {
                    // Partial ACK (RFC 6582 §3.2 step 5): without SACK the
                    // next hole is the new head; retransmit it. Only the
                    // first restarts the RTO then ("Impatient", §4); with
                    // SACK every one does (RFC 6675 §5 leaves the timer to
                    // RFC 6298 §5.3), as RACK repairs a window's losses
                    // while the ACKs keep coming.
                    let first = self.cc.on_partial_ack(now, data_acked);
                    restart_rto = first || self.flags & F_SACK != 0;
                    if self.flags & F_SACK == 0 {
                        self.flags |= F_REXMIT_HEAD;
                        let k = acked.saturating_sub(mss).min(self.dup_bytes);
                        self.dup_bytes -= k;
                    }
                }
            } else {
                self.cc.on_ack(now, data_acked, self.rtt.srtt(), in_flight);
                if self.flags & F_LOSS != 0 && seq_le(self.recover, ack) {
                    // Everything outstanding at the timeout is delivered.
                    self.flags &= !F_LOSS;
                    exiting_recovery = true;
                }
            }
            self.dup_acks = 0;
            if self.snd_una == self.snd_max {
                self.timers.stop(Timer::Rto);
            } else if restart_rto {
                self.arm_rto(now);
            }
            if self.flags & F_WANT_WRITE != 0 && self.send_space() > 0 {
                self.flags &= !F_WANT_WRITE;
                self.events |= EV_WRITABLE;
            }
        } else if ack == self.snd_una
            && pure
            && self.snd_max != self.snd_una
            && (new_wnd == self.snd_wnd || sack_news)
        {
            // Duplicate ACK (RFC 5681 §2; RFC 6675 §2 counts ACKs with new
            // SACK information).
            bump(&mut self.stats.dup_acks);
            self.dup_acks = self.dup_acks.saturating_add(1);
            if self.flags & F_RECOVERY != 0 {
                if self.flags & F_SACK == 0 {
                    self.dup_bytes = self.dup_bytes.saturating_add(mss);
                }
            } else if self.dup_acks >= self.cfg.dup_thresh.max(1)
                && self.flags & F_REORDER_SEEN == 0
            {
                // With SACK, RACK decides once reordering was seen (as
                // Linux); DupThresh would undo its reordering window.
                self.enter_recovery(now);
            }
        }

        // RACK (RFC 8985 §6.2 steps 4, 5): whatever was sent before the
        // most recently delivered segment and is overdue is lost; loss
        // starts recovery.
        self.rack_update_reo_wnd(dsack, exiting_recovery);
        if self.rack_detect_loss(now) {
            self.enter_recovery(now);
        }
        // TLP (§7.4): did a probe repair a loss; a fresh probe timeout
        // (§7.2) after an ACK that advanced SND.UNA.
        self.tlp_on_ack(now, ack, dsack, dup);
        if self.snd_una == self.snd_max {
            self.timers.stop(Timer::Rack);
            self.flags &= !F_TLP_PTO;
        } else if advanced {
            self.arm_pto(now);
        }

        self.update_send_window(seq, ack, new_wnd);

        // Our FIN acknowledged.
        if self.flags & F_FIN_ACKED != 0 {
            match self.state {
                State::FinWait1 => {
                    self.state = State::FinWait2;
                    if self.flags & F_APP_CLOSED != 0 {
                        self.timers
                            .set(Timer::FinWait2, now + self.cfg.fin_wait2_timeout);
                    }
                }
                State::Closing => self.enter_time_wait(now),
                State::LastAck => self.enter_closed(CloseReason::Normal),
                _ => {}
            }
        }
    }

    /// Window update (§3.10.7.4): only from a newer segment.
    #[inline]
    pub(super) fn update_send_window(&mut self, seq: u32, ack: u32, new_wnd: u32) {
        if seq_lt(self.snd_wl1, seq) || (self.snd_wl1 == seq && seq_le(self.snd_wl2, ack)) {
            self.snd_wnd = new_wnd;
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(new_wnd);
            if new_wnd > 0 {
                self.timers.stop(Timer::Persist);
                self.persist_backoff = 0;
            }
        }
    }

    /// Fast retransmit and the start of loss recovery (RFC 5681 §3.2 steps
    /// 2–4, RFC 6582 §3.2 step 2, RFC 6675 §5 step 4), on DupThresh
    /// duplicate ACKs or a loss RACK found (RFC 8985 §6.2).
    pub(super) fn enter_recovery(&mut self, now: Instant) {
        // RFC 6582 §3.2 step 2: not again for losses from the same window
        // (which also keeps recovery after a timeout going to its end).
        // (`>=` rather than `>`: a loss of the first segment after a
        // recovery must not have to wait for the RTO.)
        if seq_lt(self.snd_una, self.recover)
            || self.snd_una == self.snd_max
            || self.flags & F_LOSS != 0
        {
            return;
        }
        let flight = self.snd_max.wrapping_sub(self.snd_una);
        self.cc.on_congestion_event(now, flight);
        self.recover = self.snd_max;
        self.flags |= F_RECOVERY | F_REXMIT_HEAD;
        if self.flags & F_TLP_PTO != 0 {
            self.timers.stop(Timer::Rack);
        }
        // RFC 8985 §7.1: a recovery ends any probe episode.
        self.flags &= !(F_RESCUED | F_TLP_PTO | F_TLP_SEND | F_TLP_OPEN);
        if self.flags & F_SACK != 0 && self.board.pending_bytes() == 0 {
            // DupThresh duplicate ACKs without a loss RACK could name: the
            // head is presumed lost (RFC 5681 §3.2 step 4).
            self.board.mark_head_lost();
        }
        self.dup_bytes = u32::from(self.dup_acks) * u32::from(self.mss);
        bump(&mut self.stats.fast_retransmits);
    }
}
