//! The send side's data structures: the send queue (application buffers
//! from SND.UNA on, sent or not) and the scoreboard (RFC 6675 §3): one
//! record per transmitted segment, with its send time for RACK (RFC 8985).
//!
//! Zero copy (DESIGN.md principle 4): the queue holds the application's
//! buffers themselves. A segment's payload is a shared handle on one of
//! them ([`PacketBuf::share`], then `advance`/`truncate` on the handle), so
//! the same bytes serve the first transmission and every retransmission.
//! A segment never spans two buffers: the device gathers exactly one
//! attached payload per frame.
//!
//! Positions in the queue are byte offsets from SND.UNA; the connection
//! maps them to sequence numbers. Nothing here panics on any input.

use std::collections::VecDeque;

use crate::buf::{BufAlloc, PacketBuf};
use crate::time::{Duration, Instant};

/// `a < b` in sequence space (RFC 9293 §3.4).
#[inline]
pub(crate) fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a <= b` in sequence space.
#[inline]
pub(crate) fn seq_le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// The larger of two sequence numbers.
#[inline]
pub(crate) fn seq_max(a: u32, b: u32) -> u32 {
    if seq_lt(a, b) {
        b
    } else {
        a
    }
}

/// Application data from SND.UNA on: acknowledged buffers leave from the
/// front, new ones join at the back.
pub struct SendQueue<B> {
    bufs: VecDeque<B>,
    /// Bytes held (the sum of the buffers' lengths).
    len: u32,
    /// Lookup hint: index of a buffer and the offset it starts at.
    hint_idx: u32,
    hint_off: u32,
    /// Buffers fully acknowledged, for the driver's pool.
    recycle: Vec<B>,
}

impl<B> core::fmt::Debug for SendQueue<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SendQueue")
            .field("bufs", &self.bufs.len())
            .field("len", &self.len)
            .field("recycle", &self.recycle.len())
            .finish()
    }
}

impl<B> Default for SendQueue<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> SendQueue<B> {
    /// An empty queue; allocates nothing.
    pub const fn new() -> Self {
        SendQueue {
            bufs: VecDeque::new(),
            len: 0,
            hint_idx: 0,
            hint_off: 0,
            recycle: Vec::new(),
        }
    }

    /// Bytes held: unacknowledged plus unsent.
    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether no byte is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A buffer let go of (fully acknowledged), for the driver's pool.
    pub fn poll_recycle(&mut self) -> Option<B> {
        self.recycle.pop()
    }

    /// Drops every buffer to the recycle list (abort, reset).
    pub fn clear(&mut self) {
        self.recycle.extend(self.bufs.drain(..));
        self.len = 0;
        self.hint_idx = 0;
        self.hint_off = 0;
    }

    /// Frees spare capacity: an idle connection holds no heap memory
    /// (DESIGN.md principle 6).
    pub fn shrink_if_idle(&mut self) {
        if self.bufs.is_empty() && self.bufs.capacity() > 0 {
            self.bufs = VecDeque::new();
        }
        if self.recycle.is_empty() && self.recycle.capacity() > 0 {
            self.recycle = Vec::new();
        }
    }
}

impl<B: PacketBuf> SendQueue<B> {
    /// Queues an application buffer (its bytes are the data). Empty buffers
    /// go straight to the recycle list.
    pub fn push(&mut self, buf: B) {
        let n = buf.len() as u32;
        if n == 0 {
            self.recycle.push(buf);
            return;
        }
        self.len = self.len.saturating_add(n);
        self.bufs.push_back(buf);
    }

    /// Copies up to `limit` bytes of `data` in: into the last buffer's
    /// tailroom while nobody shares it (a shared one would be copied on
    /// write), else into new buffers from `alloc`. Each buffer is filled to
    /// a multiple of `seg` bytes (the sender's MSS) when it holds at least
    /// one: a segment is a view of one buffer, so a buffer boundary inside
    /// a segment would cut it short mid-stream. Returns bytes taken.
    pub fn append_slice(
        &mut self,
        mut data: &[u8],
        limit: usize,
        seg: usize,
        alloc: &mut impl BufAlloc<Buf = B>,
    ) -> usize {
        data = &data[..data.len().min(limit)];
        // Bytes a buffer of `len` bytes with `room` free may take.
        let fill = |len: usize, room: usize| {
            let cap = len + room;
            let aligned = if seg > 0 && cap >= seg {
                cap / seg * seg
            } else {
                cap
            };
            aligned.saturating_sub(len)
        };
        let mut taken = 0;
        if let Some(tail) = self.bufs.back_mut() {
            if !tail.is_shared() {
                let k = fill(tail.len(), tail.tailroom()).min(data.len());
                if k > 0 {
                    if let Ok(dst) = tail.append(k) {
                        dst.copy_from_slice(&data[..k]);
                        taken += k;
                        data = &data[k..];
                    }
                }
            }
        }
        while !data.is_empty() {
            let Some(mut b) = alloc.alloc() else { break };
            let k = fill(b.len(), b.tailroom()).min(data.len());
            if k == 0 {
                self.recycle.push(b);
                break;
            }
            match b.append(k) {
                Ok(dst) => dst.copy_from_slice(&data[..k]),
                Err(_) => {
                    self.recycle.push(b);
                    break;
                }
            }
            taken += k;
            data = &data[k..];
            self.bufs.push_back(b);
        }
        self.len = self.len.saturating_add(taken as u32);
        taken
    }

    /// `n` bytes from the front were acknowledged: whole buffers go to the
    /// recycle list, a partly acknowledged one is advanced (its window
    /// only: no copy).
    pub fn ack(&mut self, n: u32) {
        let mut left = n.min(self.len);
        self.len -= left;
        while left > 0 {
            let Some(front) = self.bufs.front_mut() else {
                break;
            };
            let fl = front.len() as u32;
            if fl <= left {
                left -= fl;
                if let Some(b) = self.bufs.pop_front() {
                    self.recycle.push(b);
                }
                if self.hint_idx > 0 {
                    self.hint_idx -= 1;
                    self.hint_off = self.hint_off.saturating_sub(fl);
                } else {
                    self.hint_off = 0;
                }
            } else {
                // Cannot fail: left < fl.
                let _ = front.advance(left as usize);
                self.hint_off = self.hint_off.saturating_sub(left);
                left = 0;
            }
        }
        if self.bufs.is_empty() {
            self.hint_idx = 0;
            self.hint_off = 0;
        }
    }

    /// Index and start offset of the buffer holding byte `off`.
    fn find(&mut self, off: u32) -> Option<(usize, u32)> {
        if off >= self.len {
            return None;
        }
        let (mut i, mut start) =
            if (self.hint_idx as usize) < self.bufs.len() && self.hint_off <= off {
                (self.hint_idx as usize, self.hint_off)
            } else {
                (0, 0)
            };
        while let Some(b) = self.bufs.get(i) {
            let l = b.len() as u32;
            if off < start + l {
                self.hint_idx = i as u32;
                self.hint_off = start;
                return Some((i, start));
            }
            start += l;
            i += 1;
        }
        None
    }

    /// A shared view of at most `max` bytes from offset `off`, not crossing
    /// a buffer boundary; `None` past the end. No byte is copied.
    pub fn segment(&mut self, off: u32, max: u32) -> Option<B> {
        let (i, start) = self.find(off)?;
        let b = self.bufs.get(i)?;
        let skip = (off - start) as usize;
        let len = (b.len() - skip).min(max as usize);
        if len == 0 {
            return None;
        }
        let mut view = b.share();
        view.advance(skip).ok()?;
        view.truncate(len);
        Some(view)
    }

    /// Bytes available in one segment from `off` (to the end of the buffer
    /// holding it).
    pub fn contiguous_at(&mut self, off: u32) -> u32 {
        match self.find(off) {
            Some((i, start)) => self
                .bufs
                .get(i)
                .map_or(0, |b| (b.len() as u32).saturating_sub(off - start)),
            None => 0,
        }
    }
}

/// The record is SACKed whole (RFC 6675 §3: its bytes are at the
/// receiver).
pub const SEG_SACKED: u8 = 1 << 0;
/// Deemed lost (RACK, RFC 8985 §6.2; a timeout, §6.3; the head at a fast
/// retransmit) and not SACKed since.
pub const SEG_LOST: u8 = 1 << 1;
/// Retransmitted, and that retransmission not deemed lost: it counts in
/// the pipe (RFC 6675 §4, SetPipe).
pub const SEG_RXT: u8 = 1 << 2;
/// Sent more than once, ever: its ACK is ambiguous (Karn's algorithm,
/// RFC 6298 §3; RFC 8985 §6.2 step 2).
pub const SEG_EVER_RXT: u8 = 1 << 3;

/// One transmitted segment: the unit of the scoreboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentSeg {
    /// The sequence number after it (a FIN counts); it starts where the
    /// record before it ends, the first one at SND.UNA.
    pub end: u32,
    /// `SEG_*` bits.
    pub flags: u8,
    /// When it was last sent (RFC 8985 §5.2 `Segment.xmit_ts`).
    pub xmit: Instant,
}

/// A record an ACK delivered for the first time (cumulatively or in a SACK
/// block), handed to the caller for RTT sampling and RACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Its end (for a partly acknowledged record, the ACK).
    pub end: u32,
    /// When it was last sent.
    pub xmit: Instant,
    /// Sent more than once: the ACK may be for any of the transmissions.
    pub retransmitted: bool,
    /// Delivered by a SACK block rather than by the cumulative ACK.
    pub sacked: bool,
}

/// The SACK scoreboard (RFC 6675 §3), kept per transmitted segment: one
/// record per segment from SND.UNA to SND.MAX with its send time (RACK,
/// RFC 8985 §5.2) and what is known of it, plus byte counters for the pipe.
///
/// Records split where a SACK block or a retransmission starts or ends
/// inside one, as long as fewer than the caller's `cap` records exist; a
/// peer's odd SACK blocks cannot grow it further (what does not split is
/// then simply not marked). Boxed, and only while something is in flight:
/// an idle connection holds no memory for it (DESIGN.md principle 6).
#[derive(Debug, Default)]
pub struct Scoreboard {
    board: Option<Box<Board>>,
}

/// RACK's state (RFC 8985 §6.1) for what is in flight: it lives with the
/// scoreboard, and goes with it once everything is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rack {
    /// RACK.xmit_ts and RACK.end_seq: the most recently sent segment
    /// delivered, once one was.
    pub seg: Option<(Instant, u32)>,
    /// RACK.rtt: that segment's RTT, in microseconds.
    pub rtt_us: u32,
    /// RACK.fack: the highest sequence number delivered.
    pub fack: Option<u32>,
    /// RACK.dsack_round: SND.NXT when the reordering window last grew
    /// for a D-SACK.
    pub dsack_round: Option<u32>,
}

/// The scoreboard's records and sums.
#[derive(Debug, Default)]
struct Board {
    segs: VecDeque<SentSeg>,
    rack: Rack,
    /// Where the first record starts: SND.UNA.
    una: u32,
    /// Bytes and records SACKed.
    sacked: u32,
    sacked_segs: u32,
    /// Bytes deemed lost (not SACKed).
    lost: u32,
    /// Bytes retransmitted and not deemed lost again (not SACKed).
    rxt: u32,
    /// Bytes deemed lost and not yet retransmitted.
    pending: u32,
}

impl Scoreboard {
    /// An empty scoreboard; allocates nothing.
    pub const fn new() -> Self {
        Scoreboard { board: None }
    }

    /// Records held.
    #[inline]
    pub fn len(&self) -> usize {
        self.board.as_ref().map_or(0, |b| b.segs.len())
    }

    /// Whether no record is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the first record starts (SND.UNA as last told); meaningful
    /// while a record is held.
    #[inline]
    pub fn una(&self) -> u32 {
        self.board.as_ref().map_or(0, |b| b.una)
    }

    /// Where the last record ends (SND.MAX as recorded); meaningful while a
    /// record is held.
    #[inline]
    pub fn high(&self) -> u32 {
        self.board.as_ref().map_or(0, |b| b.high())
    }

    /// Bytes SACKed above SND.UNA.
    #[inline]
    pub fn sacked_bytes(&self) -> u32 {
        self.board.as_ref().map_or(0, |b| b.sacked)
    }

    /// Records SACKed (RFC 8985 `RACK.segs_sacked`).
    #[inline]
    pub fn sacked_segs(&self) -> u32 {
        self.board.as_ref().map_or(0, |b| b.sacked_segs)
    }

    /// Bytes deemed lost, retransmitted or not.
    #[inline]
    pub fn lost_bytes(&self) -> u32 {
        self.board.as_ref().map_or(0, |b| b.lost)
    }

    /// Bytes retransmitted whose retransmission is presumed in flight.
    #[inline]
    pub fn rxt_bytes(&self) -> u32 {
        self.board.as_ref().map_or(0, |b| b.rxt)
    }

    /// Bytes deemed lost and waiting for their retransmission.
    #[inline]
    pub fn pending_bytes(&self) -> u32 {
        self.board.as_ref().map_or(0, |b| b.pending)
    }

    /// The records with their start, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, SentSeg)> + '_ {
        self.board.iter().flat_map(|b| b.iter())
    }

    /// RACK's state, while something is (or just was) in flight.
    #[inline]
    pub fn rack(&self) -> Option<&Rack> {
        self.board.as_ref().map(|b| &b.rack)
    }

    /// RACK's state, to update.
    #[inline]
    pub fn rack_mut(&mut self) -> Option<&mut Rack> {
        self.board.as_mut().map(|b| &mut b.rack)
    }

    /// Forgets every record (connection closed, TIME-WAIT).
    pub fn clear(&mut self) {
        self.board = None;
    }

    /// Frees the memory once nothing is in flight.
    pub fn shrink_if_idle(&mut self) {
        if self.board.as_ref().is_some_and(|b| b.segs.is_empty()) {
            self.board = None;
        }
    }

    /// New data `[start, end)` went out at `now`. `start` must be where
    /// the last record ends (or anything, when there is none); other
    /// calls are ignored.
    #[inline]
    pub fn push(&mut self, start: u32, end: u32, now: Instant) {
        match self.board.as_mut() {
            Some(b) => b.push(start, end, now),
            None => self.board.insert(Box::default()).push(start, end, now),
        }
    }

    /// `[seq, end)` was sent again at `now`: its records are marked
    /// retransmitted (split first where `seq` and `end` fall inside one,
    /// within `cap` records).
    pub fn retransmitted(&mut self, seq: u32, end: u32, now: Instant, cap: usize) {
        if let Some(b) = self.board.as_mut() {
            b.retransmitted(seq, end, now, cap);
        }
    }

    /// SND.UNA moved to `una`: the records below it leave; each one not
    /// SACKed before is handed to `delivered`, lowest first.
    #[inline]
    pub fn ack(&mut self, una: u32, delivered: impl FnMut(Delivered)) {
        if let Some(b) = self.board.as_mut() {
            b.ack(una, delivered);
        }
    }

    /// A SACK block `[l, r)` (RFC 2018 §3): the records it covers whole
    /// become SACKED (split first where an edge falls inside one, within
    /// `cap` records), each newly SACKed one handed to `delivered`. Returns
    /// the bytes newly SACKed, or `None` for a block not inside
    /// (SND.UNA, SND.MAX] (RFC 6675 §3: D-SACKs and bogus blocks).
    pub fn sack(
        &mut self,
        l: u32,
        r: u32,
        cap: usize,
        delivered: impl FnMut(Delivered),
    ) -> Option<u32> {
        self.board.as_mut()?.sack(l, r, cap, delivered)
    }

    /// RFC 8985 §6.2 step 5 (RACK_detect_loss): a record neither SACKed nor
    /// already waiting for its retransmission that was sent before the
    /// RACK segment (`rack_xmit`, `rack_end`) is lost once `wait`
    /// (RACK.rtt + RACK.reo_wnd) has passed since it was sent. Returns the
    /// records newly marked and, if some are not due yet, the longest time
    /// left (the reordering timeout, as the RFC's pseudocode has it).
    pub fn rack_detect(
        &mut self,
        now: Instant,
        rack_xmit: Instant,
        rack_end: u32,
        wait: Duration,
    ) -> (u32, Option<Duration>) {
        self.board
            .as_mut()
            .map_or((0, None), |b| b.rack_detect(now, rack_xmit, rack_end, wait))
    }

    /// RFC 8985 §6.3 (RACK_mark_losses_on_RTO): after a timeout the head
    /// and every record sent `wait` or longer ago are lost; SACKed ones
    /// stay SACKed and are not sent again (RFC 6675 §5.1), unless the head
    /// itself is SACKed: then the receiver dropped what it had SACKed
    /// (reneging, RFC 2018 §8) and every mark goes. Returns the records
    /// newly marked.
    pub fn mark_lost_on_rto(&mut self, now: Instant, wait: Duration) -> u32 {
        self.board
            .as_mut()
            .map_or(0, |b| b.mark_lost_on_rto(now, wait))
    }

    /// Marks the first record not SACKed lost (the fast retransmit of
    /// RFC 5681 §3.2 when no record was deemed lost yet).
    pub fn mark_head_lost(&mut self) -> bool {
        self.board.as_mut().is_some_and(|b| b.mark_head_lost())
    }

    /// Whether [`rack_detect`](Self::rack_detect) may find a record to
    /// judge: not when the first record was sent once, after the RACK
    /// segment (`rack_xmit`, `rack_end`), as every later one then was too.
    #[inline]
    pub fn may_have_rack_candidates(&self, rack_xmit: Instant, rack_end: u32) -> bool {
        let Some(s) = self.board.as_ref().and_then(|b| b.segs.front()) else {
            return false;
        };
        s.flags & (SEG_EVER_RXT | SEG_SACKED) != 0
            || !(s.xmit > rack_xmit || (s.xmit == rack_xmit && seq_lt(rack_end, s.end)))
    }

    /// The first record deemed lost and not retransmitted since: RFC 6675
    /// NextSeg rule 1 with RACK's marks.
    pub fn first_pending(&self) -> Option<(u32, u32)> {
        self.board.as_ref()?.first_pending()
    }

    /// The highest record not SACKed (the tail loss probe, RFC 8985 §7.3).
    pub fn last_unsacked(&self) -> Option<(u32, u32)> {
        let b = self.board.as_ref()?;
        b.last_unsacked_below(b.high())
            .map(|(start, s)| (start, s.end))
    }

    /// The highest record not SACKed that ends at or below `seq`, with its
    /// start (RFC 6675 NextSeg rule 4, the rescue retransmission).
    pub fn last_unsacked_below(&self, seq: u32) -> Option<(u32, SentSeg)> {
        self.board.as_ref()?.last_unsacked_below(seq)
    }

    /// The end of the record holding `seq`.
    pub fn record_end(&self, seq: u32) -> Option<u32> {
        self.board.as_ref()?.record_end(seq)
    }

    /// Checks the counters and the record order against a walk. For
    /// invariant checks.
    pub fn check(&self) -> Result<(), &'static str> {
        self.board.as_ref().map_or(Ok(()), |b| b.check())
    }
}

impl Board {
    /// Where the last record ends (SND.MAX as recorded).
    #[inline]
    fn high(&self) -> u32 {
        self.segs.back().map_or(self.una, |s| s.end)
    }

    /// The records with their start, lowest first.
    fn iter(&self) -> impl Iterator<Item = (u32, SentSeg)> + '_ {
        let mut start = self.una;
        self.segs.iter().map(move |s| {
            let st = start;
            start = s.end;
            (st, *s)
        })
    }

    /// Counts (`add`) or uncounts `bytes` of a record with `flags`;
    /// `whole` when the record itself comes or goes.
    fn account(&mut self, flags: u8, bytes: u32, whole: bool, add: bool) {
        let f = |c: &mut u32, n: u32| {
            *c = if add {
                c.wrapping_add(n)
            } else {
                c.wrapping_sub(n)
            }
        };
        if flags & SEG_SACKED != 0 {
            f(&mut self.sacked, bytes);
            if whole {
                f(&mut self.sacked_segs, 1);
            }
            return;
        }
        if flags & SEG_LOST != 0 {
            f(&mut self.lost, bytes);
            if flags & SEG_RXT == 0 {
                f(&mut self.pending, bytes);
            }
        }
        if flags & SEG_RXT != 0 {
            f(&mut self.rxt, bytes);
        }
    }

    /// Replaces the flags of record `i` (which starts at `start`).
    fn set_flags(&mut self, i: usize, start: u32, flags: u8) {
        let Some(s) = self.segs.get(i).copied() else {
            return;
        };
        let len = s.end.wrapping_sub(start);
        self.account(s.flags, len, true, false);
        self.account(flags, len, true, true);
        if let Some(s) = self.segs.get_mut(i) {
            s.flags = flags;
        }
    }

    fn start_of(&self, i: usize) -> u32 {
        match i.checked_sub(1).and_then(|j| self.segs.get(j)) {
            Some(s) => s.end,
            None => self.una,
        }
    }

    /// Index of the record holding `seq`.
    fn index_of(&self, seq: u32) -> Option<usize> {
        let off = seq.wrapping_sub(self.una);
        if off >= self.high().wrapping_sub(self.una) {
            return None;
        }
        let una = self.una;
        let i = self
            .segs
            .partition_point(|s| s.end.wrapping_sub(una) <= off);
        (i < self.segs.len()).then_some(i)
    }

    /// Makes `seq` a record boundary by splitting the record holding it,
    /// unless `cap` records exist already.
    fn split_at(&mut self, seq: u32, cap: usize) {
        let Some(i) = self.index_of(seq) else {
            return;
        };
        if self.start_of(i) == seq || self.segs.len() >= cap {
            return;
        }
        let s = self.segs[i];
        // The bytes only move between two records of the same flags.
        self.segs.insert(i, SentSeg { end: seq, ..s });
        if s.flags & SEG_SACKED != 0 {
            self.sacked_segs += 1;
        }
    }

    /// New data `[start, end)` went out at `now`. `start` must be where
    /// the last record ends (or anything, when there is none); other
    /// calls are ignored.
    #[inline]
    fn push(&mut self, start: u32, end: u32, now: Instant) {
        match self.segs.back() {
            None => self.una = start,
            Some(last) if last.end != start => return,
            Some(_) => {}
        }
        if seq_lt(start, end) {
            self.segs.push_back(SentSeg {
                end,
                flags: 0,
                xmit: now,
            });
        }
    }

    /// `[seq, end)` was sent again at `now`: its records are marked
    /// retransmitted (split first where `seq` and `end` fall inside one,
    /// within `cap` records).
    fn retransmitted(&mut self, seq: u32, end: u32, now: Instant, cap: usize) {
        self.split_at(seq, cap);
        self.split_at(end, cap);
        let Some(mut i) = self.index_of(seq) else {
            return;
        };
        let mut start = self.start_of(i);
        while let Some(s) = self.segs.get(i).copied() {
            if !seq_lt(start, end) {
                break;
            }
            let flags = if s.flags & SEG_SACKED != 0 {
                s.flags | SEG_EVER_RXT
            } else {
                s.flags | SEG_RXT | SEG_EVER_RXT
            };
            self.set_flags(i, start, flags);
            if let Some(r) = self.segs.get_mut(i) {
                r.xmit = now;
            }
            start = s.end;
            i += 1;
        }
    }

    /// SND.UNA moved to `una`: the records below it leave; each one not
    /// SACKed before is handed to `delivered`, lowest first.
    fn ack(&mut self, una: u32, mut delivered: impl FnMut(Delivered)) {
        if self.segs.is_empty() {
            self.una = una;
            return;
        }
        if !seq_lt(self.una, una) {
            return;
        }
        while let Some(s) = self.segs.front().copied() {
            let start = self.una;
            let whole = seq_le(s.end, una);
            let end = if whole { s.end } else { una };
            if !seq_lt(start, end) {
                break;
            }
            self.account(s.flags, end.wrapping_sub(start), whole, false);
            if s.flags & SEG_SACKED == 0 {
                delivered(Delivered {
                    end,
                    xmit: s.xmit,
                    retransmitted: s.flags & SEG_EVER_RXT != 0,
                    sacked: false,
                });
            }
            self.una = end;
            if !whole {
                break;
            }
            self.segs.pop_front();
        }
        self.una = una;
    }

    /// A SACK block `[l, r)` (RFC 2018 §3): the records it covers whole
    /// become SACKED (split first where an edge falls inside one, within
    /// `cap` records), each newly SACKed one handed to `delivered`. Returns
    /// the bytes newly SACKed, or `None` for a block not inside
    /// (SND.UNA, SND.MAX] (RFC 6675 §3: D-SACKs and bogus blocks).
    fn sack(
        &mut self,
        l: u32,
        r: u32,
        cap: usize,
        mut delivered: impl FnMut(Delivered),
    ) -> Option<u32> {
        if !seq_lt(l, r) || !seq_le(r, self.high()) || !seq_lt(self.una, r) {
            return None;
        }
        let l = seq_max(l, self.una);
        self.split_at(l, cap);
        self.split_at(r, cap);
        let mut i = self.index_of(l)?;
        let mut start = self.start_of(i);
        let mut n = 0u32;
        while let Some(s) = self.segs.get(i).copied() {
            if seq_lt(r, s.end) {
                break;
            }
            if seq_le(l, start) && s.flags & SEG_SACKED == 0 {
                let flags = (s.flags & !(SEG_LOST | SEG_RXT)) | SEG_SACKED;
                self.set_flags(i, start, flags);
                n = n.wrapping_add(s.end.wrapping_sub(start));
                delivered(Delivered {
                    end: s.end,
                    xmit: s.xmit,
                    retransmitted: s.flags & SEG_EVER_RXT != 0,
                    sacked: true,
                });
            }
            start = s.end;
            i += 1;
        }
        Some(n)
    }

    /// Marks record `i` lost (its retransmission, if any, with it);
    /// returns whether that is news.
    fn mark_lost(&mut self, i: usize, start: u32) -> bool {
        let Some(s) = self.segs.get(i).copied() else {
            return false;
        };
        if s.flags & SEG_SACKED != 0 || s.flags & (SEG_LOST | SEG_RXT) == SEG_LOST {
            return false;
        }
        self.set_flags(i, start, (s.flags | SEG_LOST) & !SEG_RXT);
        true
    }

    /// RFC 8985 §6.2 step 5 (RACK_detect_loss): a record neither SACKed nor
    /// already waiting for its retransmission that was sent before the
    /// RACK segment (`rack_xmit`, `rack_end`) is lost once `wait`
    /// (RACK.rtt + RACK.reo_wnd) has passed since it was sent. Returns the
    /// records newly marked and, if some are not due yet, the longest time
    /// left (the reordering timeout, as the RFC's pseudocode has it).
    fn rack_detect(
        &mut self,
        now: Instant,
        rack_xmit: Instant,
        rack_end: u32,
        wait: Duration,
    ) -> (u32, Option<Duration>) {
        let mut marked = 0;
        let mut timeout: Option<Duration> = None;
        let mut start = self.una;
        let mut i = 0;
        while let Some(s) = self.segs.get(i).copied() {
            let st = start;
            start = s.end;
            i += 1;
            let after = s.xmit > rack_xmit || (s.xmit == rack_xmit && seq_lt(rack_end, s.end));
            if after {
                // New data goes out in sequence order: past a segment
                // first sent after the RACK segment, every one was.
                if s.flags & SEG_EVER_RXT == 0 {
                    break;
                }
                continue;
            }
            if s.flags & SEG_SACKED != 0 || s.flags & (SEG_LOST | SEG_RXT) == SEG_LOST {
                continue;
            }
            let due = s.xmit + wait;
            if due <= now {
                if self.mark_lost(i - 1, st) {
                    marked += 1;
                }
            } else {
                let left = due - now;
                timeout = Some(timeout.map_or(left, |t| t.max(left)));
            }
        }
        (marked, timeout)
    }

    /// RFC 8985 §6.3 (RACK_mark_losses_on_RTO): after a timeout the head
    /// and every record sent `wait` or longer ago are lost; SACKed ones
    /// stay SACKed and are not sent again (RFC 6675 §5.1), unless the head
    /// itself is SACKed: then the receiver dropped what it had SACKed
    /// (reneging, RFC 2018 §8) and every mark goes. Returns the records
    /// newly marked.
    fn mark_lost_on_rto(&mut self, now: Instant, wait: Duration) -> u32 {
        if self.segs.front().is_some_and(|s| s.flags & SEG_SACKED != 0) {
            let mut start = self.una;
            for i in 0..self.segs.len() {
                let s = self.segs[i];
                if s.flags & SEG_SACKED != 0 {
                    self.set_flags(i, start, s.flags & !SEG_SACKED);
                }
                start = s.end;
            }
        }
        let mut marked = 0;
        let mut start = self.una;
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if (i == 0 || s.xmit + wait <= now) && self.mark_lost(i, start) {
                marked += 1;
            }
            start = s.end;
        }
        marked
    }

    /// Marks the first record not SACKed lost (the fast retransmit of
    /// RFC 5681 §3.2 when no record was deemed lost yet).
    fn mark_head_lost(&mut self) -> bool {
        let mut start = self.una;
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.flags & SEG_SACKED == 0 {
                return self.mark_lost(i, start);
            }
            start = s.end;
        }
        false
    }

    /// The first record deemed lost and not retransmitted since: RFC 6675
    /// NextSeg rule 1 with RACK's marks.
    fn first_pending(&self) -> Option<(u32, u32)> {
        if self.pending == 0 {
            return None;
        }
        self.iter()
            .find(|(_, s)| s.flags & (SEG_SACKED | SEG_LOST | SEG_RXT) == SEG_LOST)
            .map(|(st, s)| (st, s.end))
    }

    /// The highest record not SACKed that ends at or below `seq`, with its
    /// start (RFC 6675 NextSeg rule 4, the rescue retransmission).
    fn last_unsacked_below(&self, seq: u32) -> Option<(u32, SentSeg)> {
        let una = self.una;
        let lim = seq.wrapping_sub(una);
        let i = self
            .segs
            .iter()
            .rposition(|s| s.flags & SEG_SACKED == 0 && s.end.wrapping_sub(una) <= lim)?;
        Some((self.start_of(i), self.segs[i]))
    }

    /// The end of the record holding `seq`.
    fn record_end(&self, seq: u32) -> Option<u32> {
        self.index_of(seq).map(|i| self.segs[i].end)
    }

    /// Checks the counters and the record order against a walk. For
    /// invariant checks.
    fn check(&self) -> Result<(), &'static str> {
        let mut t = Board::default();
        let mut start = self.una;
        for s in &self.segs {
            if !seq_lt(start, s.end) {
                return Err("scoreboard records out of order or empty");
            }
            if s.flags & SEG_SACKED != 0 && s.flags & (SEG_LOST | SEG_RXT) != 0 {
                return Err("SACKed record marked lost or retransmitted");
            }
            if s.flags & SEG_RXT != 0 && s.flags & SEG_EVER_RXT == 0 {
                return Err("retransmitted record not marked as ever retransmitted");
            }
            t.account(s.flags, s.end.wrapping_sub(start), true, true);
            start = s.end;
        }
        let counters = |b: &Board| (b.sacked, b.sacked_segs, b.lost, b.rxt, b.pending);
        if counters(&t) != counters(self) {
            return Err("scoreboard counters differ from its records");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{HeapBuf, HeapPool};

    fn buf(data: &[u8]) -> HeapBuf {
        HeapBuf::from_slice(data, 0)
    }

    #[test]
    fn segments_are_shared_views() {
        let mut q = SendQueue::new();
        q.push(buf(b"hello"));
        q.push(buf(b"world!"));
        assert_eq!(q.len(), 11);
        let before = crate::buf::cow_copies();
        let s = q.segment(3, 100).unwrap();
        assert_eq!(s.as_slice(), b"lo");
        let s = q.segment(5, 4).unwrap();
        assert_eq!(s.as_slice(), b"worl");
        assert!(q.segment(11, 4).is_none());
        assert_eq!(q.contiguous_at(6), 5);
        q.ack(7);
        assert_eq!(q.len(), 4);
        assert_eq!(q.segment(0, 10).unwrap().as_slice(), b"rld!");
        assert_eq!(crate::buf::cow_copies(), before);
        assert!(q.poll_recycle().is_some());
        q.ack(100);
        assert!(q.is_empty());
    }

    #[test]
    fn append_slice_never_writes_a_shared_tail() {
        let mut pool = HeapPool::new(64, 0, 16);
        let mut q = SendQueue::new();
        assert_eq!(q.append_slice(b"abc", 100, 0, &mut pool), 3);
        let view = q.segment(0, 3).unwrap();
        let before = crate::buf::cow_copies();
        assert_eq!(q.append_slice(b"def", 100, 0, &mut pool), 3);
        assert_eq!(crate::buf::cow_copies(), before);
        assert_eq!(view.as_slice(), b"abc");
        assert_eq!(q.segment(3, 10).unwrap().as_slice(), b"def");
        assert_eq!(q.append_slice(&[0; 200], 100, 0, &mut pool), 100);
    }

    #[test]
    fn append_slice_fills_buffers_to_whole_segments() {
        // 1920 bytes of room per buffer, MSS 1460: a buffer boundary at
        // 1920 would cut the second segment to 460 bytes.
        let mut pool = HeapPool::new(2048, 128, 16);
        let mut q = SendQueue::new();
        assert_eq!(q.append_slice(&[7; 3000], 10_000, 1460, &mut pool), 3000);
        assert_eq!(q.contiguous_at(0), 1460);
        assert_eq!(q.contiguous_at(1460), 1460);
        assert_eq!(q.contiguous_at(2920), 80);
        // Later writes top the tail buffer up to a whole segment first.
        assert_eq!(q.append_slice(&[8; 1500], 10_000, 1460, &mut pool), 1500);
        assert_eq!(q.contiguous_at(2920), 1460);
        assert_eq!(q.contiguous_at(4380), 120);
    }

    fn t(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    /// Ten 100-byte records from sequence number 1000, sent 1 µs apart.
    fn board() -> Scoreboard {
        let mut b = Scoreboard::new();
        for i in 0..10u32 {
            b.push(1000 + 100 * i, 1100 + 100 * i, t(u64::from(i)));
        }
        b
    }

    fn ends(b: &Scoreboard) -> Vec<(u32, u32)> {
        b.iter().map(|(s, r)| (s, r.end)).collect()
    }

    #[test]
    fn scoreboard_sacks_whole_records_and_splits_at_edges() {
        let mut b = board();
        let mut got = Vec::new();
        assert_eq!(b.sack(1200, 1400, 64, |d| got.push(d.end)), Some(200));
        assert_eq!(got, vec![1300, 1400]);
        assert_eq!((b.sacked_bytes(), b.sacked_segs()), (200, 2));
        // Again: nothing new. Outside (SND.UNA, SND.MAX]: ignored.
        assert_eq!(b.sack(1200, 1400, 64, |_| {}), Some(0));
        assert_eq!(b.sack(900, 1000, 64, |_| {}), None);
        assert_eq!(b.sack(1900, 2100, 64, |_| {}), None);
        // An edge inside a record splits it.
        assert_eq!(b.sack(1450, 1500, 64, |_| {}), Some(50));
        assert!(ends(&b).contains(&(1400, 1450)));
        // At the cap, no split: the partly covered record is not marked.
        let mut c = board();
        assert_eq!(c.sack(1450, 1600, 10, |_| {}), Some(100));
        assert_eq!(c.len(), 10);
        b.check().unwrap();
        c.check().unwrap();
    }

    #[test]
    fn scoreboard_ack_delivers_only_what_was_not_sacked() {
        let mut b = board();
        b.sack(1100, 1200, 64, |_| {});
        let mut got = Vec::new();
        b.ack(1250, |d| got.push((d.end, d.sacked)));
        // 1000..1100 delivered now, 1100..1200 was SACKed, 1200..1250 in part.
        assert_eq!(got, vec![(1100, false), (1250, false)]);
        assert_eq!(b.una(), 1250);
        assert_eq!(b.sacked_bytes(), 0);
        assert_eq!(ends(&b)[0], (1250, 1300));
        b.ack(2000, |_| {});
        assert!(b.is_empty());
        b.check().unwrap();
    }

    #[test]
    fn scoreboard_rack_marks_what_was_sent_before_the_delivered_segment() {
        let mut b = board();
        // Records 3 and 4 (sent at 3 and 4 µs) SACKed; 0..=2 were sent
        // before them.
        b.sack(1300, 1500, 64, |_| {});
        let wait = Duration::from_micros(10);
        // At 12 µs only what was sent at 0, 1 and 2 µs has waited 10 µs.
        let (n, left) = b.rack_detect(t(12), t(4), 1500, wait);
        assert_eq!((n, left), (3, None));
        assert_eq!(b.pending_bytes(), 300);
        assert_eq!(b.first_pending(), Some((1000, 1100)));
        // Retransmitting takes it out of the pending set, into the pipe.
        b.retransmitted(1000, 1100, t(20), 64);
        assert_eq!(
            (b.pending_bytes(), b.rxt_bytes(), b.lost_bytes()),
            (200, 100, 300)
        );
        // Record 6 is SACKed later; its delivery makes 5 (sent at 5 µs)
        // a candidate, and the retransmission at 20 µs is not.
        b.sack(1600, 1700, 64, |_| {});
        let (n, left) = b.rack_detect(t(13), t(6), 1700, wait);
        assert_eq!((n, left), (0, Some(Duration::from_micros(2))));
        let (n, _) = b.rack_detect(t(15), t(6), 1700, wait);
        assert_eq!(n, 1);
        // A lost retransmission: a segment sent after it (record 2, again
        // at 30 µs) was delivered and it was not. Records 7 to 9, first
        // sent at 7 to 9 µs, go too.
        b.retransmitted(1200, 1300, t(30), 64);
        b.sack(1200, 1300, 64, |_| {});
        let (n, _) = b.rack_detect(t(45), t(30), 1300, wait);
        assert_eq!(n, 4);
        assert_eq!(b.first_pending(), Some((1000, 1100)), "lost again");
        b.check().unwrap();
    }

    #[test]
    fn scoreboard_timeout_keeps_sacks_unless_reneged() {
        let mut b = board();
        b.sack(1500, 1700, 64, |_| {});
        let n = b.mark_lost_on_rto(t(1000), Duration::from_micros(100));
        assert_eq!(n, 8);
        assert_eq!((b.sacked_bytes(), b.pending_bytes()), (200, 800));
        // SACKed data is never pending.
        assert!(b
            .iter()
            .all(|(_, s)| s.flags & SEG_SACKED == 0 || s.flags & SEG_LOST == 0));
        // The head SACKed: the receiver reneged, every mark goes.
        let mut c = board();
        c.sack(1000, 1100, 64, |_| {});
        c.mark_lost_on_rto(t(1000), Duration::ZERO);
        assert_eq!((c.sacked_bytes(), c.pending_bytes()), (0, 1000));
        b.check().unwrap();
        c.check().unwrap();
    }

    #[test]
    fn scoreboard_retransmission_splits_and_marks() {
        let mut b = board();
        b.retransmitted(1050, 1150, t(50), 64);
        assert!(ends(&b).contains(&(1050, 1100)));
        assert!(ends(&b).contains(&(1100, 1150)));
        assert_eq!(b.rxt_bytes(), 100);
        assert_eq!(b.last_unsacked(), Some((1900, 2000)));
        assert_eq!(b.record_end(1120), Some(1150));
        b.check().unwrap();
    }
}
