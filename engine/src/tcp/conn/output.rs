//! What to send next and building it: [`Connection::poll_transmit`].
//!
//! Order of precedence for the one segment each call yields: a pending RST;
//! SYN / SYN-ACK; a tail loss probe (RFC 8985 §7.3); a loss-recovery
//! retransmission (RFC 6675 NextSeg rule 1 over the segments RACK or a
//! timeout marked lost, or the NewReno head); new data, or without SACK
//! data again after a timeout (go-back-N from SND.UNA), under the send
//! window, cwnd less the pipe (with SACK) or the flight (without, plus
//! limited transmit, RFC 3042), Nagle and sender SWS avoidance; the FIN;
//! the rescue retransmission (RFC 6675 NextSeg rule 4); a zero-window or
//! keep-alive probe; a pure ACK. Deciding is side-effect free apart from
//! arming the persist timer; state moves only once a buffer was obtained.

use super::*;
use crate::tcp::send::SEG_RXT;
/// IANA protocol number of TCP, for the pseudo-header.
const PROTOCOL_TCP: u8 = 6;
use crate::wire::checksum;

/// What kind of segment a plan is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rst,
    Syn,
    Rexmit,
    /// RFC 6675 NextSeg rule 4: once per recovery.
    Rescue,
    /// RFC 8985 §7.3: new data at SND.MAX, or the last segment again.
    Tlp,
    Data,
    Probe,
    Keepalive,
    Ack,
}

/// One segment to send.
#[derive(Clone, Copy, Debug)]
struct Plan {
    kind: Kind,
    seq: u32,
    /// Payload bytes (from the send queue at `seq`).
    len: u32,
    fin: bool,
    psh: bool,
}

impl<B: PacketBuf> Connection<B> {
    /// One ready segment, or `None` when nothing is due. The header (with
    /// options and checksum) is in a buffer from `alloc`, with the headroom
    /// `alloc` left for IPv4 and Ethernet; the payload is attached as a
    /// shared view of the send queue's buffer (no copy). Call until `None`.
    #[inline]
    pub fn poll_transmit(&mut self, now: Instant, alloc: &mut impl BufAlloc<Buf = B>) -> Option<B> {
        if self.nothing_to_send() {
            debug_assert!(
                self.plan(now).is_none(),
                "nothing_to_send() missed a segment"
            );
            return None;
        }
        self.transmit(now, alloc)
    }

    /// [`poll_transmit`](Self::poll_transmit) past the quick check.
    fn transmit(&mut self, now: Instant, alloc: &mut impl BufAlloc<Buf = B>) -> Option<B> {
        let plan = if self.at_most_ack() {
            // The pure ACK owed (a receiver's common case).
            let ack = Plan {
                kind: Kind::Ack,
                seq: self.snd_max,
                len: 0,
                fin: false,
                psh: false,
            };
            debug_assert_eq!(
                self.plan(now).map(|p| (p.kind, p.seq)),
                Some((ack.kind, ack.seq))
            );
            ack
        } else {
            self.plan(now)?
        };
        let payload = if plan.len > 0 {
            let off = plan.seq.wrapping_sub(self.data_base());
            Some(self.sendq.segment(off, plan.len)?)
        } else {
            None
        };
        let Some(mut out) = alloc.alloc() else {
            bump(&mut self.stats.alloc_failures);
            return None;
        };
        let repr = self.header_for(&plan, now);
        let hlen = repr.header_len();
        let plen = payload.as_ref().map_or(0, |p| p.len());
        let ph = checksum::pseudo_header(
            self.tuple.local_addr,
            self.tuple.remote_addr,
            PROTOCOL_TCP,
            (hlen + plen) as u32,
        );
        {
            let Ok(hdr) = out.append(hlen) else {
                bump(&mut self.stats.alloc_failures);
                return None;
            };
            repr.emit_header(hdr);
            // The checksum over header and payload (a view kept apart for
            // scatter-gather), or the pseudo-header sum an offloading NIC
            // starts from.
            let csum = if self.cfg.checksum.tcp.compute_tx() {
                let ps = payload.as_ref().map_or(0, |p| checksum::sum(p.as_slice()));
                checksum::finish(checksum::combine(&[ph, checksum::sum(hdr), ps]))
            } else {
                ph
            };
            hdr[16..18].copy_from_slice(&csum.to_be_bytes());
        }
        if let Some(p) = payload {
            if out.attach(p).is_err() {
                bump(&mut self.stats.alloc_failures);
                return None;
            }
        }
        self.commit(&plan, &repr, now);
        Some(out)
    }

    /// Whether [`plan`](Self::plan) would find nothing to send, decided
    /// from the flags and the send queue alone (the common call, after a
    /// segment that needs no answer).
    #[inline]
    fn nothing_to_send(&self) -> bool {
        self.flags & F_ACK_NOW == 0 && self.at_most_ack()
    }

    /// Whether `plan` could yield nothing but a pure ACK: established, no
    /// flag that asks for another segment, no recovery or FIN, no loss
    /// probe due, nothing marked lost, everything queued already sent.
    /// Every flag that makes `plan` send something else must be in the
    /// mask.
    #[inline]
    fn at_most_ack(&self) -> bool {
        const WANTS_OTHER: u32 = F_RST_PENDING
            | F_PROBE
            | F_KEEPALIVE
            | F_REXMIT_HEAD
            | F_RECOVERY
            | F_LOSS
            | F_TLP_SEND
            | F_FIN_QUEUED;
        self.state == State::Established
            && self.flags & WANTS_OTHER == 0
            && self.snd_nxt.wrapping_sub(self.snd_una) == self.sendq.len()
            && self.board.pending_bytes() == 0
    }

    /// Payload bytes per segment: the MSS less SACK blocks riding along.
    fn payload_mss(&self) -> u32 {
        let mut m = u32::from(self.mss);
        if self.flags & F_SACK != 0 && self.rxq.has_gaps() {
            let blocks = if self.flags & F_TS != 0 { 3 } else { 4 };
            let n = self.rxq.out_of_order_segments().min(blocks) as u32;
            m = m.saturating_sub(4 + 8 * n).max(1);
        }
        m
    }

    /// RFC 6675 SetPipe: bytes in flight, with SACKed bytes and bytes deemed
    /// lost counted out and retransmissions in flight counted in (the
    /// scoreboard keeps the three sums); without SACK, duplicate ACKs count
    /// one segment each out (RFC 5681 §3.2 step 4's inflation, applied to
    /// the pipe rather than to cwnd).
    pub(super) fn pipe(&self) -> u32 {
        let outstanding = self.snd_max.wrapping_sub(self.snd_una);
        if self.flags & F_SACK == 0 {
            return outstanding.saturating_sub(self.dup_bytes);
        }
        outstanding
            .saturating_sub(self.board.sacked_bytes())
            .saturating_sub(self.board.lost_bytes())
            .saturating_add(self.board.rxt_bytes())
    }

    /// A segment starting at `seq` of at most `max` payload bytes, with the
    /// FIN when it reaches a queued FIN.
    fn segment_at(&mut self, kind: Kind, seq: u32, max: u32) -> Option<Plan> {
        let off = seq.wrapping_sub(self.data_base());
        let qlen = self.sendq.len();
        // A retransmission carries the FIN only once it was sent.
        let fin_sent = seq_lt(self.data_base().wrapping_add(qlen), self.snd_max);
        let again = match kind {
            Kind::Rexmit | Kind::Rescue => true,
            Kind::Tlp => seq_lt(seq, self.snd_max),
            _ => false,
        };
        let fin_open =
            self.flags & (F_FIN_QUEUED | F_FIN_ACKED) == F_FIN_QUEUED && (!again || fin_sent);
        if off < qlen {
            let len = max
                .min(self.payload_mss())
                .min(self.sendq.contiguous_at(off));
            if len == 0 {
                return None;
            }
            let last = off + len == qlen;
            Some(Plan {
                kind,
                seq,
                len,
                fin: last && fin_open,
                psh: last,
            })
        } else if off == qlen && fin_open {
            Some(Plan {
                kind,
                seq,
                len: 0,
                fin: true,
                psh: false,
            })
        } else {
            None
        }
    }

    fn plan(&mut self, now: Instant) -> Option<Plan> {
        if self.flags & F_RST_PENDING != 0 {
            return Some(Plan {
                kind: Kind::Rst,
                seq: self.rst_seq,
                len: 0,
                fin: false,
                psh: false,
            });
        }
        // A pure ACK carries SND.MAX, not a SND.NXT pulled back by a
        // timeout: the peer has seen everything up to SND.MAX and would
        // find an older number unacceptable (as BSD does).
        let ack_plan = |seq| Plan {
            kind: Kind::Ack,
            seq,
            len: 0,
            fin: false,
            psh: false,
        };
        match self.state {
            State::Closed | State::Listen => return None,
            State::SynSent | State::SynReceived => {
                if self.snd_nxt == self.iss {
                    return Some(Plan {
                        kind: Kind::Syn,
                        seq: self.iss,
                        len: 0,
                        fin: false,
                        psh: false,
                    });
                }
                return (self.state == State::SynReceived && self.flags & F_ACK_NOW != 0)
                    .then(|| ack_plan(self.snd_max));
            }
            State::TimeWait => {
                return (self.flags & F_ACK_NOW != 0).then(|| ack_plan(self.snd_max));
            }
            _ => {}
        }
        if self.flags & F_TLP_SEND != 0 {
            if let Some(p) = self.plan_tlp() {
                return Some(p);
            }
            // Nothing to probe with (all of it SACKed meanwhile).
            self.flags &= !F_TLP_SEND;
        }
        if let Some(p) = self.plan_rexmit() {
            return Some(p);
        }
        if let Some(p) = self.plan_new(now) {
            return Some(p);
        }
        if let Some(p) = self.plan_rescue() {
            return Some(p);
        }
        if self.flags & F_PROBE != 0 {
            // RFC 9293 §3.8.6.1: probe the zero (or too small) window. With
            // some window open, send what fits (the SWS override);
            // otherwise an old sequence number draws an ACK with the
            // current window (as Linux does).
            let usable = self
                .snd_una
                .wrapping_add(self.snd_wnd)
                .wrapping_sub(self.snd_nxt);
            if (usable as i32) > 0 {
                if let Some(p) = self.segment_at(Kind::Data, self.snd_nxt, usable) {
                    return Some(p);
                }
            }
            return Some(Plan {
                kind: Kind::Probe,
                seq: self.snd_una.wrapping_sub(1),
                len: 0,
                fin: false,
                psh: false,
            });
        }
        if self.flags & F_KEEPALIVE != 0 {
            // RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT − 1, no data.
            return Some(Plan {
                kind: Kind::Keepalive,
                seq: self.snd_una.wrapping_sub(1),
                len: 0,
                fin: false,
                psh: false,
            });
        }
        (self.flags & F_ACK_NOW != 0).then(|| ack_plan(self.snd_max))
    }

    /// Loss recovery: the head (the first fast retransmit, a NewReno
    /// partial ACK), or with SACK RFC 6675 NextSeg rule 1 over the segments
    /// marked lost, within the pipe (the first one at once, RFC 5681 §3.2
    /// step 4). A retransmission repeats its segment's bounds.
    fn plan_rexmit(&mut self) -> Option<Plan> {
        let head = self.flags & F_REXMIT_HEAD != 0;
        if self.flags & F_SACK == 0 {
            if !head {
                return None;
            }
            // Only what was sent: bytes queued behind SND.MAX are new data.
            let sent = self.snd_max.wrapping_sub(self.snd_una);
            let rec = self
                .board
                .record_end(self.snd_una)
                .map_or(sent, |e| e.wrapping_sub(self.snd_una));
            if let Some(p) = self.segment_at(Kind::Rexmit, self.snd_una, sent.min(rec)) {
                return Some(p);
            }
            self.flags &= !F_REXMIT_HEAD;
            return None;
        }
        if self.board.pending_bytes() == 0 {
            // Nothing marked lost (the common call).
            if head {
                self.flags &= !F_REXMIT_HEAD;
            }
            return None;
        }
        let Some((seq, end)) = self.board.first_pending() else {
            self.flags &= !F_REXMIT_HEAD;
            return None;
        };
        if !head && self.pipe().saturating_add(u32::from(self.mss)) > self.cc.cwnd() {
            return None;
        }
        self.segment_at(Kind::Rexmit, seq, end.wrapping_sub(seq))
    }

    /// RFC 6675 NextSeg rule 4, once per recovery: with nothing lost to
    /// repair and no new data to send, the highest segment not SACKed goes
    /// again (unless it already did), so a loss at the tail needs no RTO.
    /// Only data outstanding when recovery began (below RecoveryPoint):
    /// what went out since is not overdue.
    fn plan_rescue(&mut self) -> Option<Plan> {
        if self.flags & (F_SACK | F_RECOVERY | F_RESCUED) != F_SACK | F_RECOVERY
            || self.board.pending_bytes() > 0
            || self.pipe().saturating_add(u32::from(self.mss)) > self.cc.cwnd()
        {
            return None;
        }
        let (seq, rec) = self.board.last_unsacked_below(self.recover)?;
        if rec.flags & SEG_RXT != 0 {
            return None;
        }
        self.segment_at(Kind::Rescue, seq, rec.end.wrapping_sub(seq))
    }

    /// The tail loss probe (RFC 8985 §7.3): one segment of new data if any
    /// and the receive window allows (cwnd does not apply), else the last
    /// segment sent, again.
    fn plan_tlp(&mut self) -> Option<Plan> {
        let off = self.snd_nxt.wrapping_sub(self.data_base());
        let rwnd_room = self
            .snd_una
            .wrapping_add(self.snd_wnd)
            .wrapping_sub(self.snd_nxt) as i32;
        if off < self.sendq.len() && rwnd_room > 0 && self.snd_nxt == self.snd_max {
            if let Some(p) = self.segment_at(Kind::Tlp, self.snd_nxt, rwnd_room as u32) {
                return Some(p);
            }
        }
        let (seq, end) = self.board.last_unsacked()?;
        self.segment_at(Kind::Tlp, seq, end.wrapping_sub(seq))
    }

    /// New data at SND.NXT (or data again after a timeout), or the FIN.
    fn plan_new(&mut self, now: Instant) -> Option<Plan> {
        let base = self.data_base();
        let off = self.snd_nxt.wrapping_sub(base);
        let qlen = self.sendq.len();
        let fin_open = self.flags & (F_FIN_QUEUED | F_FIN_ACKED) == F_FIN_QUEUED;
        if off > qlen || (off == qlen && !fin_open) {
            return None;
        }
        let rwnd_room = self
            .snd_una
            .wrapping_add(self.snd_wnd)
            .wrapping_sub(self.snd_nxt) as i32;
        let rwnd_room = rwnd_room.max(0) as u32;
        let cwnd_room = if self.flags & (F_SACK | F_RECOVERY) != 0 {
            self.cc.cwnd().saturating_sub(self.pipe())
        } else {
            let flight = self.snd_nxt.wrapping_sub(self.snd_una);
            // Limited transmit (RFC 3042 §2): a new segment for each of
            // the first two duplicate ACKs, beyond cwnd. (With SACK the
            // pipe counts the SACKed segments out, to the same effect.)
            let lt = if self.snd_nxt == self.snd_max && self.dup_acks < self.cfg.dup_thresh {
                u32::from(self.dup_acks.min(2)) * u32::from(self.mss)
            } else {
                0
            };
            self.cc.cwnd().saturating_add(lt).saturating_sub(flight)
        };
        let room = cwnd_room.min(rwnd_room);
        let avail = qlen - off;
        if avail == 0 {
            // Only the FIN is left; it needs no window.
            return self.segment_at(Kind::Data, self.snd_nxt, 0);
        }
        let mss = self.payload_mss();
        let cont = self.sendq.contiguous_at(off);
        let len = room.min(mss).min(cont);
        let idle = self.snd_max == self.snd_una;
        let rexmit = seq_lt(self.snd_nxt, self.snd_max);
        let ok = len > 0
            && (rexmit
                // A full segment, or a whole buffer with more behind it.
                || len == mss
                || (len == cont && cont < avail)
                // Nagle (RFC 896, RFC 9293 §3.7.4) with Minshall's
                // refinement, as Linux: the tail goes unless an earlier
                // sub-MSS segment is still unacknowledged (or with NODELAY
                // or a FIN).
                || (len == avail
                    && (idle
                        || self.cfg.nodelay
                        || fin_open
                        || !(seq_lt(self.snd_una, self.snd_sml)
                            && seq_le(self.snd_sml, self.snd_max))))
                // Sender SWS avoidance (§3.8.6.2.1): half the largest
                // window the peer offered.
                || (self.max_snd_wnd > 0 && len >= self.max_snd_wnd / 2));
        if !ok {
            // Blocked by the peer's window with nothing in flight: the
            // persist timer probes it (§3.8.6.1).
            if idle && room < mss.min(avail) && !self.timers.is_set(Timer::Persist) {
                self.arm_persist(now);
            }
            return None;
        }
        self.segment_at(Kind::Data, self.snd_nxt, len)
    }

    /// The header for `plan`.
    fn header_for(&self, plan: &Plan, now: Instant) -> TcpRepr<'static> {
        let rcv_nxt = self.rcv_nxt();
        let mut flags = TcpFlags::empty();
        let mut ack = Some(TcpSeqNumber(rcv_nxt));
        let mut repr = TcpRepr {
            src_port: self.tuple.local_port,
            dst_port: self.tuple.remote_port,
            seq_number: TcpSeqNumber(plan.seq),
            ack_number: None,
            flags,
            window_len: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamp: None,
            payload: &[],
        };
        match plan.kind {
            Kind::Rst => {
                flags |= TcpFlags::RST;
                ack = (self.flags & F_RST_HAS_ACK != 0).then_some(TcpSeqNumber(self.rst_ack));
            }
            Kind::Syn => {
                flags |= TcpFlags::SYN;
                repr.max_seg_size = Some(self.cfg.mss);
                // The SYN's window is not scaled (RFC 7323 §2.2).
                repr.window_len = self.cfg.rcv_buf.min(65_535) as u16;
                if self.state == State::SynSent {
                    ack = None;
                    repr.window_scale = self.cfg.wscale_shift();
                    repr.sack_permitted = self.cfg.sack;
                } else {
                    repr.window_scale =
                        (self.flags & F_SYN_OPTS_PEER_WS != 0).then_some(self.rcv_wscale);
                    repr.sack_permitted = self.flags & F_SACK != 0;
                }
                if self.flags & F_TS != 0 {
                    let ecr = if ack.is_some() { self.ts_recent } else { 0 };
                    repr.timestamp = Some((self.ts_now(now), ecr));
                }
            }
            _ => {}
        }
        if plan.fin {
            flags |= TcpFlags::FIN;
        }
        if plan.psh && plan.len > 0 {
            flags |= TcpFlags::PSH;
        }
        repr.flags = flags;
        repr.ack_number = ack;
        if plan.kind != Kind::Rst && plan.kind != Kind::Syn {
            repr.window_len =
                self.rxq
                    .advertise(self.rcv_wscale, self.cfg.mss, TcpSeqNumber(self.rcv_adv));
            if self.flags & F_TS != 0 {
                repr.timestamp = Some((self.ts_now(now), self.ts_recent));
            }
            if self.flags & F_SACK != 0 && self.rxq.has_gaps() {
                let max = if self.flags & F_TS != 0 { 3 } else { 4 };
                for (slot, b) in repr
                    .sack_ranges
                    .iter_mut()
                    .zip(self.rxq.sack_blocks(max).iter())
                {
                    *slot = b.map(|(l, r)| (l.0, r.0));
                }
            }
        }
        repr
    }

    /// Moves the state for a segment that was built.
    fn commit(&mut self, plan: &Plan, repr: &TcpRepr<'_>, now: Instant) {
        bump(&mut self.stats.segs_out);
        let end = plan
            .seq
            .wrapping_add(plan.len)
            .wrapping_add(u32::from(plan.fin));
        // A probe is new data or a retransmission, with extras below.
        let probe = plan.kind == Kind::Tlp;
        let kind = match plan.kind {
            Kind::Tlp if seq_lt(plan.seq, self.snd_max) => Kind::Rexmit,
            Kind::Tlp => Kind::Data,
            k => k,
        };
        match kind {
            Kind::Rst => {
                self.flags &= !(F_RST_PENDING | F_RST_HAS_ACK);
                bump(&mut self.stats.resets_out);
            }
            Kind::Syn => {
                let first = self.snd_max == self.iss;
                if first {
                    self.flags |= F_RTT_TIMING;
                    self.rtt_seq = self.iss.wrapping_add(1);
                } else {
                    // Karn: an ACK of a SYN sent twice is ambiguous.
                    self.flags &= !F_RTT_TIMING;
                    bump(&mut self.stats.retransmits);
                }
                self.rtt_sent = now;
                self.snd_nxt = self.iss.wrapping_add(1);
                self.snd_max = seq_max(self.snd_max, self.snd_nxt);
                if !self.timers.is_set(Timer::Rto) {
                    self.arm_rto(now);
                }
            }
            Kind::Rexmit | Kind::Rescue | Kind::Tlp => {
                bump(&mut self.stats.retransmits);
                self.flags &= !F_REXMIT_HEAD;
                if kind == Kind::Rescue {
                    self.flags |= F_RESCUED;
                }
                let cap = self.seg_cap();
                self.board.retransmitted(plan.seq, end, now, cap);
                if !self.timers.is_set(Timer::Rto) {
                    self.arm_rto(now);
                }
            }
            Kind::Data => {
                if seq_lt(plan.seq, self.snd_max) {
                    // Go-back-N after a timeout (without SACK); its last
                    // segment may carry a FIN never sent before.
                    bump(&mut self.stats.retransmits);
                    let cap = self.seg_cap();
                    let old = if seq_lt(self.snd_max, end) {
                        self.snd_max
                    } else {
                        end
                    };
                    self.board.retransmitted(plan.seq, old, now, cap);
                    self.board.push(old, end, now);
                } else {
                    self.board.push(plan.seq, end, now);
                }
                if plan.len < self.payload_mss() {
                    self.snd_sml = end;
                }
                self.snd_nxt = end;
                self.snd_max = seq_max(self.snd_max, end);
                if !self.timers.is_set(Timer::Rto) {
                    self.arm_rto(now);
                }
                self.flags &= !F_PROBE;
                self.timers.stop(Timer::Persist);
                if !probe {
                    // RFC 8985 §7.2: new data restarts the probe timeout.
                    self.arm_pto(now);
                }
            }
            Kind::Probe => {
                self.flags &= !F_PROBE;
                bump(&mut self.stats.window_probes);
            }
            Kind::Keepalive => {
                self.flags &= !F_KEEPALIVE;
                bump(&mut self.stats.keepalive_probes);
            }
            Kind::Ack => bump(&mut self.stats.acks_out),
        }
        if probe {
            // RFC 8985 §7.3: the probe's episode ends at TLP.end_seq (§7.4);
            // the RTO restarts from the probe.
            bump(&mut self.stats.loss_probes);
            self.flags &= !(F_TLP_SEND | F_TLP_RXT);
            self.flags |= F_TLP_OPEN | F_TLP_NO_RTT;
            if kind == Kind::Rexmit {
                self.flags |= F_TLP_RXT;
            }
            self.tlp_end = self.snd_max;
            self.arm_rto(now);
        }
        if let Some(a) = repr.ack_number {
            if plan.kind != Kind::Rst {
                self.flags &= !F_ACK_NOW;
                self.timers.stop(Timer::DelayedAck);
                self.unacked_segs = 0;
                self.last_ack_sent = a.0;
                let shift = if plan.kind == Kind::Syn {
                    0
                } else {
                    self.rcv_wscale
                };
                let edge = a.0.wrapping_add(u32::from(repr.window_len) << shift);
                self.rcv_adv = seq_max(self.rcv_adv, edge);
            }
        }
    }
}
