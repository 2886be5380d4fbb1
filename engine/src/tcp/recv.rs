//! The receive queue: in-order data waiting for the application plus the
//! out-of-order reassembly set, holding buffer views, never copies
//! (DESIGN.md principle 4).
//!
//! Implements the data half of RFC 9293 §3.10.7.4 ("seventh, process the
//! segment text") and the receive sequence space of §3.4, SACK block
//! generation (RFC 2018 §4) and receiver-side window advertisement
//! (RFC 9293 §3.8.6.2.2, RFC 7323 §2.4).
//!
//! # Contract
//!
//! - The state machine calls [`RecvQueue::insert`] once per acceptable
//!   segment carrying data, with the buffer already advanced to the TCP
//!   payload (or any offset: `payload` is a range into `buf.as_slice()`).
//!   The queue keeps `(buffer, offset, len)` views. Buffers it does not keep
//!   come back in the [`Insert`] result; buffers it lets go later (covered by
//!   a newer segment, fully consumed, cleared) come out of
//!   [`poll_recycle`](RecvQueue::poll_recycle), which the driver drains
//!   after each batch.
//! - The application reads with [`peek`](RecvQueue::peek) /
//!   [`consume`](RecvQueue::consume), takes whole views with
//!   [`pop_segment`](RecvQueue::pop_segment) (zero copy), or copies with
//!   [`read_into`](RecvQueue::read_into).
//! - The state machine advertises [`advertise`](RecvQueue::advertise) and
//!   puts [`sack_blocks`](RecvQueue::sack_blocks) on each ACK.
//!
//! # Window and memory bound
//!
//! [`window`](RecvQueue::window) is `capacity - readable`: the receive
//! sequence space `[rcv_nxt, rcv_nxt + window)` (RFC 9293 §3.4, RCV.WND).
//! Out-of-order bytes are *not* subtracted again: they already lie inside
//! that space, so subtracting them would move the right edge left each time
//! an out-of-order segment is stored (shrinking a window already offered,
//! which RFC 9293 §3.8.6 SHLD-14 forbids) and would drop in-window data the
//! sender was allowed to send. Because stored views never overlap and all lie
//! inside `[rcv_nxt, rcv_nxt + window)`, `readable + out_of_order` never
//! exceeds `capacity`: the memory bound holds by construction, and bytes
//! beyond the right edge are trimmed and counted.
//! The right edge `rcv_nxt + window` never moves left: appending in-order
//! data advances `rcv_nxt` and `readable` together, reading moves it right.
//!
//! The number of out-of-order pieces is bounded by `max_ooo_segments`: each
//! piece pins one buffer, so this bounds the buffers a peer can pin with
//! tiny out-of-order segments. In-order data is never refused for this
//! reason, so the segment at `rcv_nxt` always gets in and the connection
//! always makes progress.
//!
//! # Overlaps
//!
//! Existing bytes win (RFC 9293 §3.10.7.4 lets either copy be kept): a new
//! segment's head and tail are trimmed where they overlap stored pieces.
//! [`PacketBuf`] cannot be shared (no reference count in the trait), so a
//! new segment that covers one or more stored pieces entirely is not split
//! into several views: it is kept whole and the covered pieces are released
//! to the recycle list. That loses no data (the newcomer holds those bytes),
//! never increases the piece count more than one, and keeps one view per
//! buffer.
//!
//! # Sequence numbers
//!
//! All arithmetic is modulo 2³² (RFC 9293 §3.4). Positions are handled as
//! signed offsets from `rcv_nxt`; the capacity is clamped to the largest
//! window TCP can advertise (65535 · 2¹⁴, RFC 7323 §2.3), so every stored
//! byte is less than 2³⁰ ahead of `rcv_nxt` and comparisons are unambiguous.
//!
//! Nothing here panics on any input; `unsafe` is forbidden.

use core::fmt;
use core::ops::Range;
use std::collections::VecDeque;

use crate::buf::PacketBuf;
use crate::wire::TcpSeqNumber;

/// Most SACK blocks that fit in the 40-byte option space (RFC 2018 §3).
pub const MAX_SACK_BLOCKS: usize = 4;

/// Largest window a peer can be offered: 65535 << 14 (RFC 7323 §2.3).
pub const MAX_WINDOW: u32 = 65_535 << 14;

/// Largest window scale shift (RFC 7323 §2.3).
const MAX_WINDOW_SCALE: u8 = 14;

/// Why a segment was dropped without storing any of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Storing it would exceed `max_ooo_segments` out-of-order pieces.
    TooManyOutOfOrder,
    /// The payload range does not lie inside the buffer (or is longer than
    /// 2³² − 1 bytes).
    InvalidRange,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::TooManyOutOfOrder => "too many out-of-order segments held",
            DropReason::InvalidRange => "payload range outside the buffer",
        })
    }
}

/// What [`RecvQueue::insert`] did with a segment. Variants that carry a
/// buffer did not keep it: the caller recycles it.
#[derive(Debug)]
#[must_use = "buffers that were not kept come back in the result"]
pub enum Insert<B> {
    /// New data at `rcv_nxt`: `advanced_by` bytes became readable (this
    /// segment's new bytes plus any out-of-order pieces it connected);
    /// `filled_hole` when out-of-order pieces moved in. RFC 9293 §3.10.7.4:
    /// acknowledge (delayed ACK allowed unless `filled_hole`, RFC 5681 §4.2).
    InOrder {
        /// Bytes that became readable.
        advanced_by: u32,
        /// Whether stored out-of-order data became in order.
        filled_hole: bool,
    },
    /// Stored in the reassembly set. RFC 5681 §4.2: send an immediate
    /// (duplicate) ACK, with SACK blocks.
    OutOfOrder,
    /// Every byte was already received (before `rcv_nxt` or already held
    /// out of order). RFC 9293 §3.10.7.4: send an ACK.
    Duplicate(B),
    /// No byte falls inside the window (or beyond a FIN). RFC 9293
    /// §3.10.7.4: send an ACK, drop the segment.
    OutOfWindow(B),
    /// Dropped before storing, for the reason given; counted.
    Dropped(DropReason, B),
    /// The payload range was empty: nothing to queue.
    Empty(B),
}

impl<B> Insert<B> {
    /// The buffer the queue did not keep, if any.
    pub fn into_buf(self) -> Option<B> {
        match self {
            Insert::InOrder { .. } | Insert::OutOfOrder => None,
            Insert::Duplicate(b)
            | Insert::OutOfWindow(b)
            | Insert::Dropped(_, b)
            | Insert::Empty(b) => Some(b),
        }
    }

    /// Whether the buffer was kept.
    pub fn kept(&self) -> bool {
        matches!(self, Insert::InOrder { .. } | Insert::OutOfOrder)
    }
}

/// Why [`RecvQueue::set_fin`] refused a FIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FinError {
    /// The FIN lies before `rcv_nxt` or beyond the window's right edge.
    OutOfWindow,
    /// A FIN at another sequence number was already seen, or data is held
    /// beyond this FIN.
    Conflicts,
}

impl fmt::Display for FinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FinError::OutOfWindow => "FIN outside the receive window",
            FinError::Conflicts => "FIN conflicts with an earlier FIN or held data",
        })
    }
}

/// Per-connection receive counters (saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvStats {
    /// Segments with no new byte.
    pub duplicate_segments: u32,
    /// Segments with no byte inside the window.
    pub out_of_window_segments: u32,
    /// Segments dropped because `max_ooo_segments` pieces were held.
    pub dropped_ooo_limit: u32,
    /// Segments with a payload range outside their buffer.
    pub invalid_range: u32,
    /// Bytes trimmed off accepted segments: before `rcv_nxt`, beyond the
    /// right edge, or overlapping held data.
    pub trimmed_bytes: u32,
}

/// A view `[off, off + len)` into a buffer's `as_slice()`.
struct Chunk<B> {
    buf: B,
    off: u32,
    len: u32,
}

impl<B: PacketBuf> Chunk<B> {
    fn bytes(&self) -> &[u8] {
        let start = self.off as usize;
        let end = start + self.len as usize;
        self.buf.as_slice().get(start..end).unwrap_or(&[])
    }

    fn range(&self) -> Range<usize> {
        self.off as usize..self.off as usize + self.len as usize
    }
}

/// An out-of-order piece: a view starting at `seq`.
struct OooPiece<B> {
    seq: TcpSeqNumber,
    chunk: Chunk<B>,
}

/// The reassembly set: out-of-order views and the SACK recency list. Boxed
/// in the queue and only while it holds something: most connections never
/// see a hole (DESIGN.md principle 6).
struct Reassembly<B> {
    /// Out-of-order views, sorted by sequence, never overlapping, never
    /// starting at or before `rcv_nxt`.
    ooo: Vec<OooPiece<B>>,
    /// Bytes in `ooo`.
    ooo_bytes: u32,
    /// A sequence number inside each recently received out-of-order
    /// segment, most recent first (RFC 2018 §4).
    recent: [TcpSeqNumber; MAX_SACK_BLOCKS],
    recent_len: u8,
}

impl<B> Default for Reassembly<B> {
    fn default() -> Self {
        Reassembly {
            ooo: Vec::new(),
            ooo_bytes: 0,
            recent: [TcpSeqNumber(0); MAX_SACK_BLOCKS],
            recent_len: 0,
        }
    }
}

/// What the empty reassembly set reads as.
const NO_RECENT: [TcpSeqNumber; 0] = [];

// `fin_flags` bits.
const FIN_KNOWN: u8 = 1 << 0;
const FIN_REACHED: u8 = 1 << 1;

/// Receive queue and reassembly set for one connection. See the module docs.
pub struct RecvQueue<B> {
    /// The oldest in-order view, inline: a queue read as fast as data
    /// arrives (the common case) never allocates.
    head: Option<Chunk<B>>,
    /// In-order views after `head`, oldest first (none while `head` is
    /// empty); allocated only for an application that lets data pile up.
    /// Boxed: 8 bytes in every connection rather than a `VecDeque`'s 32.
    #[allow(clippy::box_collection)]
    more: Option<Box<VecDeque<Chunk<B>>>>,
    /// Out-of-order data, allocated only while some is held.
    reasm: Option<Box<Reassembly<B>>>,
    /// Buffers released, waiting for the driver.
    recycle: Vec<B>,
    rcv_nxt: TcpSeqNumber,
    capacity: u32,
    max_ooo: u32,
    /// Bytes in `head` and `more`.
    readable: u32,
    /// The peer's FIN, when `FIN_KNOWN` is set.
    fin: TcpSeqNumber,
    fin_flags: u8,
    stats: RecvStats,
}

impl<B> fmt::Debug for RecvQueue<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pieces, bytes) = self
            .reasm
            .as_ref()
            .map_or((0, 0), |r| (r.ooo.len(), r.ooo_bytes));
        f.debug_struct("RecvQueue")
            .field("rcv_nxt", &self.rcv_nxt)
            .field("capacity", &self.capacity)
            .field("readable", &self.readable)
            .field("ooo_pieces", &pieces)
            .field("ooo_bytes", &bytes)
            .field(
                "fin",
                &(self.fin_flags & FIN_KNOWN != 0).then_some(self.fin),
            )
            .field("fin_reached", &(self.fin_flags & FIN_REACHED != 0))
            .finish()
    }
}

impl<B: PacketBuf> RecvQueue<B> {
    /// An empty queue expecting `irs` next (the peer's ISN + 1, after its
    /// SYN), holding at most `capacity` bytes (clamped to [`MAX_WINDOW`])
    /// and at most `max_ooo_segments` out-of-order pieces. Allocates
    /// nothing.
    pub fn new(irs: TcpSeqNumber, capacity: usize, max_ooo_segments: usize) -> Self {
        RecvQueue {
            head: None,
            more: None,
            reasm: None,
            recycle: Vec::new(),
            rcv_nxt: irs,
            capacity: capacity.min(MAX_WINDOW as usize) as u32,
            max_ooo: max_ooo_segments.min(u32::MAX as usize) as u32,
            readable: 0,
            fin: TcpSeqNumber(0),
            fin_flags: 0,
            stats: RecvStats::default(),
        }
    }

    /// RCV.NXT: the next sequence number expected (including the FIN once
    /// [`fin_reached`](Self::fin_reached)).
    #[inline]
    pub fn rcv_nxt(&self) -> TcpSeqNumber {
        self.rcv_nxt
    }

    /// RCV.WND before scaling and SWS avoidance: `capacity - readable`.
    /// See the module docs for why out-of-order bytes are not subtracted.
    #[inline]
    pub fn window(&self) -> u32 {
        self.capacity.saturating_sub(self.readable)
    }

    /// In-order bytes waiting for the application.
    #[inline]
    pub fn readable(&self) -> usize {
        self.readable as usize
    }

    /// Bytes held out of order.
    pub fn out_of_order_bytes(&self) -> usize {
        self.reasm.as_ref().map_or(0, |r| r.ooo_bytes as usize)
    }

    /// Out-of-order pieces held (one buffer each).
    pub fn out_of_order_segments(&self) -> usize {
        self.ooo().len()
    }

    /// All payload bytes held: never more than [`capacity`](Self::capacity).
    pub fn buffered(&self) -> usize {
        self.readable as usize + self.out_of_order_bytes()
    }

    /// The receive buffer size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Whether out-of-order data is held (there are holes before it).
    #[inline]
    pub fn has_gaps(&self) -> bool {
        self.reasm.as_ref().is_some_and(|r| !r.ooo.is_empty())
    }

    /// Whether the next in-order segment of `len` bytes at `rcv_nxt` can
    /// simply be appended: nothing held out of order, no FIN known, and
    /// all of it inside the window. [`insert`](Self::insert) then takes
    /// it as `InOrder { advanced_by: len, filled_hole: false }`.
    #[inline]
    pub fn takes_in_order(&self, len: u32) -> bool {
        self.reasm.is_none() && self.fin_flags == 0 && len > 0 && len <= self.window()
    }

    /// Counters.
    pub fn stats(&self) -> RecvStats {
        self.stats
    }

    /// Appends `buf.as_slice()[..len]`, the next in-order bytes, which
    /// [`takes_in_order`](Self::takes_in_order) accepted and `buf` holds:
    /// what [`insert`](Self::insert) does then, without its checks. Returns
    /// the buffer when it is shorter than `len` (nothing queued).
    #[inline]
    pub fn push_in_order(&mut self, buf: B, len: u32) -> Result<(), B> {
        if buf.len() < len as usize {
            bump(&mut self.stats.invalid_range);
            return Err(buf);
        }
        debug_assert!(self.takes_in_order(len));
        self.append_in_order(Chunk { buf, off: 0, len });
        Ok(())
    }

    /// Offers one segment's payload, `buf.as_slice()[payload]`, starting at
    /// sequence number `seq`. See [`Insert`] for the outcomes.
    pub fn insert(&mut self, seq: TcpSeqNumber, buf: B, payload: Range<usize>) -> Insert<B> {
        if payload.start > payload.end || payload.end > buf.len() || payload.end > u32::MAX as usize
        {
            bump(&mut self.stats.invalid_range);
            return Insert::Dropped(DropReason::InvalidRange, buf);
        }
        let len = (payload.end - payload.start) as i64;
        if len == 0 {
            return Insert::Empty(buf);
        }
        if seq == self.rcv_nxt && self.takes_in_order(len as u32) {
            // The common case: the next bytes, nothing to trim or merge.
            let len = len as u32;
            self.append_in_order(Chunk {
                buf,
                off: payload.start as u32,
                len,
            });
            return Insert::InOrder {
                advanced_by: len,
                filled_hole: false,
            };
        }
        // Offsets relative to rcv_nxt (RFC 9293 §3.4, modulo 2^32).
        let start = i64::from(seq - self.rcv_nxt);
        let end = start + len;
        if end <= 0 {
            // RFC 9293 §3.10.7.4: old duplicate; acknowledge it.
            bump(&mut self.stats.duplicate_segments);
            return Insert::Duplicate(buf);
        }
        let right = i64::from(self.right_edge());
        if start >= right || right == 0 {
            // RFC 9293 §3.10.7.4: nothing inside RCV.WND (a zero window
            // accepts no data).
            bump(&mut self.stats.out_of_window_segments);
            return Insert::OutOfWindow(buf);
        }
        // Trim what lies before rcv_nxt and beyond the right edge.
        let mut s = start.max(0);
        let mut e = end.min(right);

        // Trim against held out-of-order pieces: existing bytes win.
        let ooo = self.ooo();
        let first = ooo.partition_point(|p| self.rel_end(p) <= s);
        let mut covered = first..first;
        let mut i = first;
        while let Some(p) = ooo.get(i) {
            let (ps, pe) = (self.rel(p.seq), self.rel_end(p));
            if ps >= e {
                break;
            }
            if ps <= s {
                s = s.max(pe); // head overlap
            } else if pe >= e {
                e = ps; // tail overlap
                break;
            } else {
                // Entirely inside the newcomer: released below.
                if covered.is_empty() {
                    covered.start = i;
                }
                covered.end = i + 1;
            }
            if s >= e {
                break;
            }
            i += 1;
        }
        if s >= e {
            // Held out of order already: report its block first
            // (RFC 2018 §4).
            bump(&mut self.stats.duplicate_segments);
            self.note_recent(self.rcv_nxt + start.max(0) as u32);
            return Insert::Duplicate(buf);
        }
        if s > 0 {
            let after = ooo.len() - covered.len() + 1;
            if after > self.max_ooo as usize {
                bump(&mut self.stats.dropped_ooo_limit);
                return Insert::Dropped(DropReason::TooManyOutOfOrder, buf);
            }
        }
        // An in-order newcomer that replaces held pieces fills a hole too.
        let replaced_held = s == 0 && !covered.is_empty();
        let trimmed = (len - (e - s)) as u32;
        self.stats.trimmed_bytes = self.stats.trimmed_bytes.saturating_add(trimmed);
        if let Some(r) = self.reasm.as_mut() {
            for p in r.ooo.drain(covered) {
                r.ooo_bytes -= p.chunk.len;
                self.recycle.push(p.chunk.buf);
            }
        }
        let chunk = Chunk {
            off: (payload.start as i64 + (s - start)) as u32,
            len: (e - s) as u32,
            buf,
        };
        if s > 0 {
            let seq = self.rcv_nxt + s as u32;
            let at = self.ooo().partition_point(|p| self.rel(p.seq) < s);
            let r = self.reasm.get_or_insert_with(Box::default);
            r.ooo_bytes += chunk.len;
            r.ooo.insert(at, OooPiece { seq, chunk });
            self.note_recent(seq);
            return Insert::OutOfOrder;
        }
        let mut advanced_by = chunk.len;
        self.append_in_order(chunk);
        let mut filled_hole = replaced_held;
        // Hole fill: move pieces that now start at rcv_nxt.
        while self.ooo().first().is_some_and(|p| self.rel(p.seq) <= 0) {
            let Some(r) = self.reasm.as_mut() else { break };
            let p = r.ooo.remove(0);
            r.ooo_bytes -= p.chunk.len;
            let skip = (-self.rel(p.seq)) as u32;
            let mut chunk = p.chunk;
            if skip >= chunk.len {
                self.recycle.push(chunk.buf);
                continue;
            }
            chunk.off += skip;
            chunk.len -= skip;
            advanced_by += chunk.len;
            self.append_in_order(chunk);
            filled_hole = true;
        }
        self.check_fin();
        // Blocks at or below rcv_nxt are never reported (RFC 2018 §4).
        self.forget_delivered_recent();
        self.free_reassembly_if_empty();
        Insert::InOrder {
            advanced_by,
            filled_hole,
        }
    }

    /// Records the peer's FIN at sequence number `fin` (the sequence number
    /// after its last data byte). Once every byte before it is in order,
    /// `rcv_nxt` steps over it and [`fin_reached`](Self::fin_reached) turns
    /// true (RFC 9293 §3.10.7.4, eighth step); data beyond it is refused.
    /// Repeating the same FIN is accepted.
    pub fn set_fin(&mut self, fin: TcpSeqNumber) -> Result<(), FinError> {
        if let Some(old) = self.fin_seq() {
            return if old == fin {
                Ok(())
            } else {
                Err(FinError::Conflicts)
            };
        }
        let rel = i64::from(fin - self.rcv_nxt);
        if rel < 0 || rel > i64::from(self.right_edge()) {
            return Err(FinError::OutOfWindow);
        }
        if self.ooo().last().is_some_and(|p| self.rel_end(p) > rel) {
            return Err(FinError::Conflicts);
        }
        self.fin = fin;
        self.fin_flags |= FIN_KNOWN;
        self.check_fin();
        Ok(())
    }

    /// Whether the FIN has been reached: all data before it is in order and
    /// `rcv_nxt` includes it.
    #[inline]
    pub fn fin_reached(&self) -> bool {
        self.fin_flags & FIN_REACHED != 0
    }

    /// The peer's FIN, once known.
    fn fin_seq(&self) -> Option<TcpSeqNumber> {
        (self.fin_flags & FIN_KNOWN != 0).then_some(self.fin)
    }

    /// The front contiguous chunk of readable bytes, if any.
    pub fn peek(&self) -> Option<&[u8]> {
        self.head.as_ref().map(Chunk::bytes)
    }

    /// Marks up to `n` readable bytes as read; returns how many. Buffers
    /// read to the end go to the recycle list.
    pub fn consume(&mut self, n: usize) -> usize {
        let total = n.min(self.readable as usize) as u32;
        let mut left = total;
        while left > 0 {
            let Some(front) = self.head.as_mut() else {
                break;
            };
            if front.len <= left {
                left -= front.len;
                if let Some(c) = self.pop_ready() {
                    self.recycle.push(c.buf);
                }
            } else {
                front.off += left;
                front.len -= left;
                left = 0;
            }
        }
        let done = total - left;
        self.readable -= done;
        done as usize
    }

    /// Hands the front readable view to the application, zero copy: the
    /// buffer as inserted and the range of `as_slice()` that is unread
    /// payload. The application returns the buffer to the pool itself.
    #[inline]
    pub fn pop_segment(&mut self) -> Option<(B, Range<usize>)> {
        let c = self.pop_ready()?;
        self.readable -= c.len;
        let range = c.range();
        Some((c.buf, range))
    }

    /// Copies readable bytes into `out` and consumes them; returns how many.
    pub fn read_into(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(chunk) = self.peek() else {
                break;
            };
            let k = chunk.len().min(out.len() - n);
            if k == 0 {
                break;
            }
            out[n..n + k].copy_from_slice(&chunk[..k]);
            self.consume(k);
            n += k;
        }
        n
    }

    /// Hands a buffer the caller will not keep (a segment `insert` refused,
    /// data that arrived too late) to the recycle list, so it goes back to
    /// its pool with the queue's own leftovers.
    pub fn release(&mut self, buf: B) {
        self.recycle.push(buf);
    }

    /// A buffer the queue has let go of, for the driver to recycle.
    #[inline]
    pub fn poll_recycle(&mut self) -> Option<B> {
        self.recycle.pop()
    }

    /// Releases every held buffer to the recycle list (on abort or reset).
    /// `rcv_nxt` and the FIN state are kept.
    pub fn clear(&mut self) {
        self.recycle.extend(self.head.take().map(|c| c.buf));
        if let Some(more) = self.more.take() {
            self.recycle.extend(more.into_iter().map(|c| c.buf));
        }
        if let Some(r) = self.reasm.take() {
            self.recycle.extend(r.ooo.into_iter().map(|p| p.chunk.buf));
        }
        self.readable = 0;
    }

    /// Frees spare capacity of the internal lists, for a connection going
    /// idle (DESIGN.md principle 6: idle connections hold no memory). A
    /// queue read as data arrives holds its one view inline and never
    /// allocated any.
    pub fn shrink_to_fit(&mut self) {
        if self.more.as_ref().is_some_and(|m| m.is_empty()) {
            self.more = None;
        }
        self.recycle.shrink_to_fit();
    }

    /// SACK blocks for the next ACK, at most `max_blocks` (at most
    /// [`MAX_SACK_BLOCKS`]; 3 when timestamps share the option space).
    ///
    /// RFC 2018 §4: the first block holds the most recently received
    /// segment (unless that segment advanced `rcv_nxt`); then the blocks of
    /// the other most recently received segments, most recent first; each
    /// block is a maximal run of contiguous held data; no block lies at or
    /// below `rcv_nxt`. Slots left after the recent blocks are filled with
    /// the remaining held blocks in sequence order, so the sender learns of
    /// every block when they fit.
    pub fn sack_blocks(
        &self,
        max_blocks: usize,
    ) -> [Option<(TcpSeqNumber, TcpSeqNumber)>; MAX_SACK_BLOCKS] {
        let ooo = self.ooo();
        let max = max_blocks.min(MAX_SACK_BLOCKS);
        let mut out = [None; MAX_SACK_BLOCKS];
        let mut n = 0;
        let mut push = |out: &mut [Option<_>; MAX_SACK_BLOCKS], b: (TcpSeqNumber, TcpSeqNumber)| {
            if n < max && !out[..n].contains(&Some(b)) {
                out[n] = Some(b);
                n += 1;
            }
        };
        for &seq in self.recent() {
            if let Some(b) = self.block_containing(seq) {
                push(&mut out, b);
            }
        }
        let mut i = 0;
        while i < ooo.len() {
            let (start, j) = self.block_from(i);
            push(&mut out, (start, self.end_seq(j)));
            i = j + 1;
        }
        out
    }

    /// The advertised window field for the next segment, scaled by
    /// `window_scale` (clamped to 14), given the right edge last advertised
    /// (pass `rcv_nxt` when nothing was).
    ///
    /// - Receiver SWS avoidance, RFC 9293 §3.8.6.2.2: the right edge moves
    ///   only once the window would grow by at least
    ///   `min(capacity / 2, mss)`; until then the last edge is kept.
    /// - The right edge never moves left (RFC 9293 §3.8.6, SHLD-14;
    ///   RFC 7323 §2.4): when scaling rounds a window down below the last
    ///   edge it is rounded up instead. That can offer up to
    ///   `2^window_scale - 1` bytes beyond the buffer; such bytes are
    ///   trimmed on arrival and the sender retransmits them (the rounding
    ///   case RFC 7323 Appendix F describes).
    pub fn advertise(
        &self,
        window_scale: u8,
        mss: u16,
        last_advertised_right_edge: TcpSeqNumber,
    ) -> u16 {
        let shift = u32::from(window_scale.min(MAX_WINDOW_SCALE));
        let avail = u64::from(self.window());
        let last = u64::try_from(last_advertised_right_edge - self.rcv_nxt).unwrap_or(0);
        let threshold = u64::from((self.capacity / 2).min(u32::from(mss)));
        let wnd = if avail >= last + threshold && avail > last {
            avail
        } else {
            last
        };
        let mut field = wnd >> shift;
        if field << shift < last {
            field = (last + (1 << shift) - 1) >> shift;
        }
        field.min(u64::from(u16::MAX)) as u16
    }

    // --- internals ---

    /// The out-of-order views (none while nothing is held).
    #[inline]
    fn ooo(&self) -> &[OooPiece<B>] {
        self.reasm.as_ref().map_or(&[], |r| &r.ooo)
    }

    /// The SACK recency list.
    fn recent(&self) -> &[TcpSeqNumber] {
        self.reasm
            .as_ref()
            .map_or(&NO_RECENT, |r| &r.recent[..r.recent_len as usize])
    }

    /// Frees the reassembly set once it holds nothing: its recency entries
    /// all lie at or below `rcv_nxt` then, and are never reported.
    fn free_reassembly_if_empty(&mut self) {
        if self.reasm.as_ref().is_some_and(|r| r.ooo.is_empty()) {
            self.reasm = None;
        }
    }

    /// Takes the oldest in-order view.
    #[inline]
    fn pop_ready(&mut self) -> Option<Chunk<B>> {
        let c = self.head.take()?;
        self.head = self.more.as_mut().and_then(|m| m.pop_front());
        Some(c)
    }

    /// Offset of `seq` from `rcv_nxt`, signed.
    fn rel(&self, seq: TcpSeqNumber) -> i64 {
        i64::from(seq - self.rcv_nxt)
    }

    fn rel_end(&self, p: &OooPiece<B>) -> i64 {
        self.rel(p.seq) + i64::from(p.chunk.len)
    }

    fn end_seq(&self, i: usize) -> TcpSeqNumber {
        self.ooo()
            .get(i)
            .map_or(self.rcv_nxt, |p| p.seq + p.chunk.len)
    }

    /// Offset of the right window edge from `rcv_nxt`, capped at a known
    /// FIN (no data after a FIN, RFC 9293 §3.10.7.4).
    fn right_edge(&self) -> u32 {
        let mut r = self.window();
        if self.fin_reached() {
            r = 0;
        } else if let Some(fin) = self.fin_seq() {
            r = r.min(u32::try_from(fin - self.rcv_nxt).unwrap_or(0));
        }
        r
    }

    #[inline]
    fn append_in_order(&mut self, chunk: Chunk<B>) {
        self.rcv_nxt += chunk.len;
        self.readable += chunk.len;
        if self.head.is_none() {
            self.head = Some(chunk);
        } else {
            self.more.get_or_insert_with(Box::default).push_back(chunk);
        }
    }

    fn check_fin(&mut self) {
        if self.fin_flags == FIN_KNOWN && self.fin == self.rcv_nxt {
            // The FIN occupies one sequence number (RFC 9293 §3.4).
            self.rcv_nxt += 1u32;
            self.fin_flags |= FIN_REACHED;
        }
    }

    /// The run of contiguous pieces starting at index `i`: its start and the
    /// index of its last piece.
    fn block_from(&self, i: usize) -> (TcpSeqNumber, usize) {
        let ooo = self.ooo();
        let start = ooo.get(i).map_or(self.rcv_nxt, |p| p.seq);
        let mut j = i;
        while j + 1 < ooo.len() && self.end_seq(j) == ooo[j + 1].seq {
            j += 1;
        }
        (start, j)
    }

    /// The maximal contiguous held block containing `seq`, if any.
    fn block_containing(&self, seq: TcpSeqNumber) -> Option<(TcpSeqNumber, TcpSeqNumber)> {
        let ooo = self.ooo();
        let r = self.rel(seq);
        let k = ooo.partition_point(|p| self.rel_end(p) <= r);
        let p = ooo.get(k)?;
        if self.rel(p.seq) > r {
            return None;
        }
        let mut i = k;
        while i > 0 && self.end_seq(i - 1) == ooo[i].seq {
            i -= 1;
        }
        let (start, j) = self.block_from(i);
        Some((start, self.end_seq(j)))
    }

    /// Puts `seq` first in the recency list, dropping entries for the same
    /// block (they would repeat it) and the oldest beyond four.
    fn note_recent(&mut self, seq: TcpSeqNumber) {
        if self.reasm.is_none() {
            // Only held data is reported; with none there is no block.
            return;
        }
        let block = self.block_containing(seq);
        let mut kept = [TcpSeqNumber(0); MAX_SACK_BLOCKS];
        kept[0] = seq;
        let mut n = 1;
        for &old in self.recent() {
            if n == MAX_SACK_BLOCKS {
                break;
            }
            if block.is_some() && self.block_containing(old) == block {
                continue;
            }
            kept[n] = old;
            n += 1;
        }
        if let Some(r) = self.reasm.as_mut() {
            r.recent = kept;
            r.recent_len = n as u8;
        }
    }

    fn forget_delivered_recent(&mut self) {
        let mut kept = [TcpSeqNumber(0); MAX_SACK_BLOCKS];
        let mut n = 0;
        for &old in self.recent() {
            if self.rel(old) > 0 {
                kept[n] = old;
                n += 1;
            }
        }
        if let Some(r) = self.reasm.as_mut() {
            r.recent = kept;
            r.recent_len = n as u8;
        }
    }
}

fn bump(c: &mut u32) {
    *c = c.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use proptest::prelude::*;

    type Q = RecvQueue<HeapBuf>;
    const HDR: usize = 40;

    fn sq(n: u32) -> TcpSeqNumber {
        TcpSeqNumber(n)
    }

    /// A buffer holding a fake 40-byte header then `payload`, and the
    /// payload's range.
    fn seg(payload: &[u8]) -> (HeapBuf, Range<usize>) {
        let mut frame = vec![0xee; HDR];
        frame.extend_from_slice(payload);
        (HeapBuf::from_slice(&frame, 16), HDR..HDR + payload.len())
    }

    fn put(q: &mut Q, seq: u32, payload: &[u8]) -> Insert<HeapBuf> {
        let (b, r) = seg(payload);
        q.insert(sq(seq), b, r)
    }

    fn read_all(q: &mut Q) -> Vec<u8> {
        let mut out = vec![0; q.readable()];
        let n = q.read_into(&mut out);
        out.truncate(n);
        out
    }

    fn drain_recycle(q: &mut Q) -> usize {
        let mut n = 0;
        while q.poll_recycle().is_some() {
            n += 1;
        }
        n
    }

    fn blocks(q: &Q, max: usize) -> Vec<(u32, u32)> {
        q.sack_blocks(max)
            .iter()
            .flatten()
            .map(|(a, b)| (a.0, b.0))
            .collect()
    }

    #[test]
    fn state_is_small_and_new_queue_allocates_nothing() {
        // One inline view (a HeapBuf and its range, 56), a Vec 24, two
        // boxes 16, scalars and counters.
        assert!(
            core::mem::size_of::<Q>() <= 144,
            "{}",
            core::mem::size_of::<Q>()
        );
        let q = Q::new(sq(1), 65_535, 8);
        assert!(q.head.is_none() && q.more.is_none() && q.reasm.is_none());
        assert_eq!(q.recycle.capacity(), 0);
    }

    #[test]
    fn read_as_it_arrives_never_allocates_and_idle_holds_no_heap() {
        let mut q = Q::new(sq(1000), 100_000, 8);
        for i in 0..32u32 {
            assert!(put(&mut q, 1000 + 4 * i, b"abcd").kept());
            assert!(q.more.is_none(), "one view stays inline");
            assert_eq!(read_all(&mut q), b"abcd");
        }
        // Data left unread spills over, and the spill goes once drained.
        for i in 32..40u32 {
            assert!(put(&mut q, 1000 + 4 * i, b"efgh").kept());
        }
        assert!(q.more.is_some());
        assert_eq!(read_all(&mut q).len(), 32);
        drain_recycle(&mut q);
        q.shrink_to_fit();
        assert!(q.head.is_none() && q.more.is_none());
        assert_eq!(q.recycle.capacity(), 0);
        // Out-of-order data allocates the reassembly set; filling the hole
        // frees it.
        assert!(matches!(put(&mut q, 1164, b"ijkl"), Insert::OutOfOrder));
        assert!(q.reasm.is_some());
        assert!(put(&mut q, 1160, b"mnop").kept());
        assert!(q.reasm.is_none());
        assert_eq!(read_all(&mut q), b"mnopijkl");
    }

    #[test]
    fn in_order_segments_append_and_advance_rcv_nxt() {
        let mut q = Q::new(sq(1000), 10_000, 8);
        assert!(matches!(
            put(&mut q, 1000, b"hello "),
            Insert::InOrder {
                advanced_by: 6,
                filled_hole: false
            }
        ));
        assert!(put(&mut q, 1006, b"world").kept());
        assert_eq!(q.rcv_nxt(), sq(1011));
        assert_eq!(q.readable(), 11);
        assert_eq!(q.window(), 10_000 - 11);
        assert!(!q.has_gaps());
        assert_eq!(q.peek(), Some(&b"hello "[..]));
        assert_eq!(read_all(&mut q), b"hello world");
        assert_eq!(q.window(), 10_000);
        assert_eq!(drain_recycle(&mut q), 2);
    }

    #[test]
    fn old_duplicate_segment_is_returned_and_counted() {
        let mut q = Q::new(sq(1000), 10_000, 8);
        let _ = put(&mut q, 1000, b"abcdef");
        let r = put(&mut q, 1000, b"abc");
        assert!(matches!(r, Insert::Duplicate(_)));
        assert!(r.into_buf().is_some());
        // Ending exactly at rcv_nxt is still entirely old.
        assert!(matches!(put(&mut q, 1003, b"def"), Insert::Duplicate(_)));
        assert_eq!(q.stats().duplicate_segments, 2);
        assert_eq!(q.rcv_nxt(), sq(1006));
        assert_eq!(read_all(&mut q), b"abcdef");
    }

    #[test]
    fn partial_overlap_at_left_edge_keeps_only_new_bytes() {
        let mut q = Q::new(sq(1000), 10_000, 8);
        let _ = put(&mut q, 1000, b"abcd");
        assert!(matches!(
            put(&mut q, 1002, b"cdefg"),
            Insert::InOrder { advanced_by: 3, .. }
        ));
        assert_eq!(q.stats().trimmed_bytes, 2);
        assert_eq!(read_all(&mut q), b"abcdefg");
    }

    #[test]
    fn bytes_past_right_window_edge_are_trimmed() {
        let mut q = Q::new(sq(0), 8, 8);
        assert!(matches!(
            put(&mut q, 0, b"0123456789"),
            Insert::InOrder { advanced_by: 8, .. }
        ));
        assert_eq!(q.window(), 0);
        // A zero window accepts no data (RFC 9293 §3.10.7.4).
        assert!(matches!(put(&mut q, 8, b"89"), Insert::OutOfWindow(_)));
        assert_eq!(q.stats().out_of_window_segments, 1);
        assert_eq!(q.stats().trimmed_bytes, 2);
        assert_eq!(read_all(&mut q), b"01234567");
        // Far beyond the edge.
        assert!(matches!(
            put(&mut q, 1_000_000, b"x"),
            Insert::OutOfWindow(_)
        ));
    }

    #[test]
    fn out_of_order_then_hole_fill_delivers_in_order() {
        let mut q = Q::new(sq(100), 1000, 8);
        assert!(matches!(put(&mut q, 110, b"klmno"), Insert::OutOfOrder));
        assert!(matches!(put(&mut q, 105, b"fghij"), Insert::OutOfOrder));
        assert!(q.has_gaps());
        assert_eq!(q.readable(), 0);
        assert_eq!(q.out_of_order_bytes(), 10);
        // Out-of-order bytes lie inside the window: it does not shrink.
        assert_eq!(q.window(), 1000);
        assert!(matches!(
            put(&mut q, 100, b"abcde"),
            Insert::InOrder {
                advanced_by: 15,
                filled_hole: true
            }
        ));
        assert!(!q.has_gaps());
        assert_eq!(q.rcv_nxt(), sq(115));
        assert_eq!(read_all(&mut q), b"abcdefghijklmno");
    }

    #[test]
    fn overlapping_newcomer_is_trimmed_and_existing_bytes_win() {
        let mut q = Q::new(sq(0), 1000, 8);
        let _ = put(&mut q, 10, b"AAAAA"); // [10, 15)

        // [12, 18): its head overlaps the held piece and is trimmed.
        assert!(matches!(put(&mut q, 12, b"BBBccc"), Insert::OutOfOrder));
        // [6, 12): its tail overlaps the held piece and is trimmed.
        assert!(matches!(put(&mut q, 6, b"ddddBB"), Insert::OutOfOrder));
        assert_eq!(q.out_of_order_bytes(), 4 + 5 + 3);
        assert_eq!(q.stats().trimmed_bytes, 3 + 2);
        assert!(matches!(put(&mut q, 0, b"012345"), Insert::InOrder { .. }));
        assert_eq!(read_all(&mut q), b"012345ddddAAAAAccc");
        assert_eq!(q.rcv_nxt(), sq(18));
    }

    #[test]
    fn newcomer_covering_pieces_is_kept_whole_and_covered_pieces_recycled() {
        let mut q = Q::new(sq(0), 1000, 8);
        let _ = put(&mut q, 10, b"AA"); // [10, 12)
        let _ = put(&mut q, 14, b"BB"); // [14, 16)
        let _ = put(&mut q, 20, b"CCCC"); // [20, 24)
        assert_eq!(q.out_of_order_segments(), 3);
        // [9, 22) covers the first two pieces and overlaps the third's head.
        assert!(matches!(
            put(&mut q, 9, b"xyyzzzzzzzzzz"),
            Insert::OutOfOrder
        ));
        assert_eq!(q.out_of_order_segments(), 2);
        assert_eq!(q.out_of_order_bytes(), 11 + 4);
        assert_eq!(drain_recycle(&mut q), 2);
        let _ = put(&mut q, 0, b"012345678");
        assert_eq!(read_all(&mut q), b"012345678xyyzzzzzzzzCCCC");
    }

    #[test]
    fn in_order_segment_covering_held_pieces_fills_the_hole() {
        let mut q = Q::new(sq(0), 1000, 8);
        let _ = put(&mut q, 5, b"fg");
        assert!(matches!(
            put(&mut q, 0, b"abcdefghij"),
            Insert::InOrder {
                advanced_by: 10,
                filled_hole: true
            }
        ));
        assert!(!q.has_gaps());
        assert_eq!(drain_recycle(&mut q), 1);
        assert_eq!(read_all(&mut q), b"abcdefghij");
    }

    #[test]
    fn segment_inside_held_data_is_duplicate() {
        let mut q = Q::new(sq(0), 1000, 8);
        let _ = put(&mut q, 10, b"abcd");
        let _ = put(&mut q, 14, b"efgh");
        assert!(matches!(put(&mut q, 12, b"cdef"), Insert::Duplicate(_)));
        assert_eq!(q.out_of_order_segments(), 2);
    }

    #[test]
    fn max_ooo_segments_bound_drops_and_counts() {
        let mut q = Q::new(sq(0), 1000, 2);
        assert!(matches!(put(&mut q, 10, b"a"), Insert::OutOfOrder));
        assert!(matches!(put(&mut q, 20, b"b"), Insert::OutOfOrder));
        let r = put(&mut q, 30, b"c");
        assert!(matches!(
            r,
            Insert::Dropped(DropReason::TooManyOutOfOrder, _)
        ));
        assert_eq!(q.stats().dropped_ooo_limit, 1);
        assert_eq!(q.out_of_order_segments(), 2);
        // A newcomer replacing covered pieces does not grow the count.
        assert!(matches!(put(&mut q, 5, &[b'z'; 20]), Insert::OutOfOrder));
        assert_eq!(q.out_of_order_segments(), 1);
        // In-order data is never refused for this bound.
        let mut q = Q::new(sq(0), 1000, 0);
        assert!(matches!(put(&mut q, 1, b"a"), Insert::Dropped(..)));
        assert!(matches!(put(&mut q, 0, b"ab"), Insert::InOrder { .. }));
    }

    #[test]
    fn memory_bound_holds_with_out_of_order_data() {
        let mut q = Q::new(sq(0), 10, 8);
        let _ = put(&mut q, 0, b"012"); // readable 3: edge at 10
        assert!(matches!(put(&mut q, 5, b"56789abc"), Insert::OutOfOrder));
        // Trimmed at the edge: 5 bytes held out of order.
        assert_eq!(q.out_of_order_bytes(), 5);
        assert_eq!(q.stats().trimmed_bytes, 3);
        assert!(q.buffered() <= q.capacity());
        // Filling the hole fills the buffer exactly.
        let _ = put(&mut q, 3, b"34");
        assert_eq!(q.buffered(), 10);
        assert_eq!(q.window(), 0);
        assert!(matches!(put(&mut q, 10, b"a"), Insert::OutOfWindow(_)));
        assert_eq!(read_all(&mut q), b"0123456789");
    }

    #[test]
    fn wraps_around_2_pow_32() {
        let irs = u32::MAX - 5;
        let mut q = Q::new(sq(irs), 1000, 8);
        // Out of order across the wrap: [irs+4, irs+10) = [MAX-1, 4).
        assert!(matches!(
            put(&mut q, irs.wrapping_add(4), b"efghij"),
            Insert::OutOfOrder
        ));
        assert_eq!(blocks(&q, 4), vec![(u32::MAX - 1, 4)]);
        assert!(matches!(
            put(&mut q, irs, b"abcd"),
            Insert::InOrder {
                advanced_by: 10,
                filled_hole: true
            }
        ));
        assert_eq!(q.rcv_nxt(), sq(4));
        // Old data from before the wrap is a duplicate.
        assert!(matches!(put(&mut q, irs, b"ab"), Insert::Duplicate(_)));
        assert_eq!(read_all(&mut q), b"abcdefghij");
    }

    #[test]
    fn fin_after_out_of_order_data_is_reached_once_hole_fills() {
        let mut q = Q::new(sq(0), 1000, 8);
        let _ = put(&mut q, 5, b"fghij");
        assert_eq!(q.set_fin(sq(10)), Ok(()));
        assert!(!q.fin_reached());
        let _ = put(&mut q, 0, b"abcde");
        assert!(q.fin_reached());
        assert_eq!(q.rcv_nxt(), sq(11)); // includes the FIN

        // Data after the FIN is refused; retransmitted data is old.
        assert!(matches!(put(&mut q, 10, b"zz"), Insert::OutOfWindow(_)));
        assert!(matches!(put(&mut q, 5, b"fghij"), Insert::Duplicate(_)));
        assert_eq!(q.set_fin(sq(10)), Ok(()));
        assert_eq!(read_all(&mut q), b"abcdefghij");
    }

    #[test]
    fn fin_conflicting_with_held_data_or_earlier_fin_is_refused() {
        let mut q = Q::new(sq(0), 1000, 8);
        let _ = put(&mut q, 5, b"fghij");
        assert_eq!(q.set_fin(sq(8)), Err(FinError::Conflicts));
        assert_eq!(q.set_fin(sq(5000)), Err(FinError::OutOfWindow));
        assert_eq!(q.set_fin(sq(u32::MAX)), Err(FinError::OutOfWindow));
        assert_eq!(q.set_fin(sq(12)), Ok(()));
        assert_eq!(q.set_fin(sq(13)), Err(FinError::Conflicts));
        // Data beyond the FIN is trimmed at it.
        assert!(matches!(put(&mut q, 10, b"klmn"), Insert::OutOfOrder));
        assert_eq!(q.out_of_order_bytes(), 7);
    }

    #[test]
    fn fin_at_rcv_nxt_is_reached_immediately() {
        let mut q = Q::new(sq(7), 1000, 8);
        assert_eq!(q.set_fin(sq(7)), Ok(()));
        assert!(q.fin_reached());
        assert_eq!(q.rcv_nxt(), sq(8));
    }

    #[test]
    fn pop_segment_hands_back_the_very_buffer_inserted() {
        let mut q = Q::new(sq(0), 1000, 8);
        let (b, r) = seg(b"payload");
        let ptr = b.as_slice().as_ptr();
        let _ = q.insert(sq(0), b, r.clone());
        let (got, range) = q.pop_segment().unwrap();
        assert_eq!(got.as_slice().as_ptr(), ptr);
        assert_eq!(range, r);
        assert_eq!(&got.as_slice()[range], b"payload");
        assert_eq!(q.readable(), 0);
        assert!(q.pop_segment().is_none());
    }

    #[test]
    fn peek_points_into_the_inserted_buffer_and_consume_recycles() {
        let mut q = Q::new(sq(0), 1000, 8);
        let (b, r) = seg(b"abcdef");
        let ptr = b.as_slice()[HDR..].as_ptr();
        let _ = q.insert(sq(0), b, r);
        let _ = put(&mut q, 6, b"gh");
        assert_eq!(q.peek().unwrap().as_ptr(), ptr);
        assert_eq!(q.consume(4), 4);
        assert_eq!(q.peek(), Some(&b"ef"[..]));
        assert_eq!(drain_recycle(&mut q), 0);
        assert_eq!(q.consume(3), 3);
        assert_eq!(drain_recycle(&mut q), 1);
        assert_eq!(q.peek(), Some(&b"h"[..]));
        // The range after a partial consume is the unread part.
        let (_, range) = q.pop_segment().unwrap();
        assert_eq!(range, HDR + 1..HDR + 2);
        assert_eq!(q.consume(10), 0);
    }

    #[test]
    fn invalid_payload_ranges_are_dropped_not_panicking() {
        let mut q = Q::new(sq(0), 1000, 8);
        let (b, _) = seg(b"abc");
        #[allow(clippy::reversed_empty_ranges)]
        let r = q.insert(sq(0), b, 5..2);
        assert!(matches!(r, Insert::Dropped(DropReason::InvalidRange, _)));
        let (b, _) = seg(b"abc");
        let r = q.insert(sq(0), b, 0..1000);
        assert!(matches!(r, Insert::Dropped(DropReason::InvalidRange, _)));
        let (b, _) = seg(b"abc");
        assert!(matches!(q.insert(sq(0), b, 3..3), Insert::Empty(_)));
        assert_eq!(q.stats().invalid_range, 2);
    }

    #[test]
    fn hostile_sequence_numbers_never_panic() {
        let mut q = Q::new(sq(0x8000_0000), 1 << 20, 4);
        for seq in [
            0,
            1,
            0x7fff_ffff,
            0x8000_0000,
            0x8000_0001,
            u32::MAX,
            0x4000_0000,
        ] {
            let _ = put(&mut q, seq, &[1; 100]);
            let _ = q.set_fin(sq(seq));
            let _ = q.sack_blocks(4);
            let _ = q.advertise(14, 1460, sq(seq));
        }
        let mut q = Q::new(sq(0), usize::MAX, usize::MAX);
        assert_eq!(q.capacity(), MAX_WINDOW as usize);
        let _ = put(&mut q, 0x3fff_0000, b"x");
    }

    // --- SACK (RFC 2018 §4, with the example sequences of RFC 2018 §7) ---

    /// RFC 2018 §7 case 2: the first of eight 500-byte segments is lost.
    #[test]
    fn sack_rfc2018_case2_first_segment_lost() {
        let mut q = Q::new(sq(5000), 65_535, 8);
        for k in 1..8u32 {
            let start = 5000 + 500 * k;
            assert!(matches!(put(&mut q, start, &[0; 500]), Insert::OutOfOrder));
            assert_eq!(q.rcv_nxt(), sq(5000));
            assert_eq!(blocks(&q, 4), vec![(5500, start + 500)]);
        }
    }

    /// RFC 2018 §7 case 3: the 2nd, 4th, 6th and 8th segments are lost,
    /// then the 4th and the 2nd arrive.
    #[test]
    fn sack_rfc2018_case3_alternate_segments_lost() {
        let mut q = Q::new(sq(5000), 65_535, 8);
        let _ = put(&mut q, 5000, &[0; 500]);
        assert_eq!(q.rcv_nxt(), sq(5500));
        assert!(blocks(&q, 4).is_empty());
        let _ = put(&mut q, 6000, &[0; 500]);
        assert_eq!(blocks(&q, 4), vec![(6000, 6500)]);
        let _ = put(&mut q, 7000, &[0; 500]);
        assert_eq!(blocks(&q, 4), vec![(7000, 7500), (6000, 6500)]);
        let _ = put(&mut q, 8000, &[0; 500]);
        assert_eq!(
            blocks(&q, 4),
            vec![(8000, 8500), (7000, 7500), (6000, 6500)]
        );
        // The 4th segment arrives: it merges two blocks into one, first.
        let _ = put(&mut q, 6500, &[0; 500]);
        assert_eq!(blocks(&q, 4), vec![(6000, 7500), (8000, 8500)]);
        // The 2nd arrives: the ACK advances; delivered blocks vanish.
        assert!(matches!(
            put(&mut q, 5500, &[0; 500]),
            Insert::InOrder {
                advanced_by: 2000,
                filled_hole: true
            }
        ));
        assert_eq!(q.rcv_nxt(), sq(7500));
        assert_eq!(blocks(&q, 4), vec![(8000, 8500)]);
    }

    #[test]
    fn sack_reports_most_recent_first_and_at_most_n() {
        let mut q = Q::new(sq(0), 65_535, 16);
        for start in [100u32, 300, 500, 700, 900] {
            let _ = put(&mut q, start, &[0; 10]);
        }
        assert_eq!(blocks(&q, 3), vec![(900, 910), (700, 710), (500, 510)]);
        assert_eq!(blocks(&q, 4).len(), 4);
        assert_eq!(blocks(&q, 9).len(), 4);
        assert!(blocks(&q, 0).is_empty());
        // A retransmission inside an old block makes it the first block.
        let _ = put(&mut q, 100, &[0; 5]);
        assert_eq!(blocks(&q, 2), vec![(100, 110), (900, 910)]);
        // Extending a block reports the merged block once.
        let _ = put(&mut q, 710, &[0; 10]);
        assert_eq!(
            blocks(&q, 4),
            vec![(700, 720), (100, 110), (900, 910), (500, 510)]
        );
    }

    // --- Window advertisement (RFC 9293 §3.8.6.2.2, RFC 7323 §2.4) ---

    #[test]
    fn advertise_holds_window_until_sws_threshold() {
        let mut q = Q::new(sq(0), 10_000, 8);
        let _ = put(&mut q, 0, &[0; 10_000]);
        assert_eq!(q.advertise(0, 1000, sq(10_000)), 0);
        // Reading 999 bytes: below min(capacity / 2, mss): stay closed.
        q.consume(999);
        assert_eq!(q.advertise(0, 1000, sq(10_000)), 0);
        // One more byte reaches the MSS: open fully.
        q.consume(1);
        assert_eq!(q.advertise(0, 1000, sq(10_000)), 1000);
        // Small MSS is capped by half the buffer.
        let mut q = Q::new(sq(0), 100, 8);
        let _ = put(&mut q, 0, &[0; 100]);
        q.consume(49);
        assert_eq!(q.advertise(0, 1460, sq(100)), 0);
        q.consume(1);
        assert_eq!(q.advertise(0, 1460, sq(100)), 50);
    }

    #[test]
    fn advertise_never_moves_right_edge_left() {
        let mut q = Q::new(sq(0), 100_000, 8);
        // Nothing advertised yet (edge at rcv_nxt): full window, scaled down.
        assert_eq!(q.advertise(7, 1460, sq(0)), (100_000 >> 7) as u16);
        // Advertised edge: 99_968. Then 100 bytes arrive and stay unread:
        // the edge stays, 99_868 bytes from rcv_nxt = 100, not a multiple
        // of 128: round up, not down.
        let edge = (100_000 >> 7) << 7;
        let _ = put(&mut q, 0, &[0; 100]);
        let f = q.advertise(7, 1460, sq(edge));
        assert!(100 + (u32::from(f) << 7) >= edge);
        assert_eq!(f, (99_868u32).div_ceil(128) as u16);
        // A stale edge behind rcv_nxt counts as zero; unscaled, 99_900
        // bytes clamp to the 16-bit field.
        assert_eq!(q.advertise(0, 1460, sq(50)), u16::MAX);
        // Scale beyond 14 is clamped.
        assert_eq!(q.advertise(30, 1460, sq(0)), (99_900u32 >> 14) as u16);
    }

    // --- Properties ---

    /// Cut `data` into segments at the given points (positions modulo the
    /// length), then add random overlapping ranges.
    fn segments(data: &[u8], cuts: &[usize], extra: &[(usize, usize)]) -> Vec<Range<usize>> {
        let n = data.len();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (n + 1)).collect();
        points.push(0);
        points.push(n);
        points.sort_unstable();
        points.dedup();
        let mut segs: Vec<Range<usize>> = points.windows(2).map(|w| w[0]..w[1]).collect();
        for &(a, l) in extra {
            let a = a % (n + 1);
            segs.push(a..(a + l).min(n));
        }
        segs
    }

    fn shuffle<T>(v: &mut [T], seed: u64) {
        let mut x = seed | 1;
        for i in (1..v.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.swap(i, (x % (i as u64 + 1)) as usize);
        }
    }

    fn insert_range(q: &mut Q, irs: u32, data: &[u8], r: &Range<usize>) -> Insert<HeapBuf> {
        let (b, pr) = seg(&data[r.clone()]);
        q.insert(sq(irs.wrapping_add(r.start as u32)), b, pr)
    }

    fn check_invariants(q: &Q, max_ooo: usize) {
        assert!(q.buffered() <= q.capacity());
        assert!(q.out_of_order_segments() <= max_ooo);
        for b in q.sack_blocks(4).iter().flatten() {
            assert!(b.0 > q.rcv_nxt() && b.1 > b.0);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random segmentation, random order, duplicates and overlaps:
        /// reading returns exactly the original bytes.
        #[test]
        fn reassembles_any_segmentation(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
            extra in proptest::collection::vec((any::<usize>(), 1usize..600), 0..20),
            seed in any::<u64>(),
            irs in any::<u32>(),
        ) {
            let mut segs = segments(&data, &cuts, &extra);
            let dup: Vec<_> = segs.iter().step_by(3).cloned().collect();
            segs.extend(dup);
            shuffle(&mut segs, seed);
            let mut q = Q::new(sq(irs), 4096, 256);
            for r in &segs {
                let _ = insert_range(&mut q, irs, &data, r);
                check_invariants(&q, 256);
            }
            prop_assert!(!q.has_gaps());
            prop_assert_eq!(q.rcv_nxt(), sq(irs.wrapping_add(data.len() as u32)));
            prop_assert_eq!(read_all(&mut q), data);
        }

        /// With tight bounds some segments are dropped: what is read is
        /// always a prefix of the original, and retransmitting the rest
        /// round after round completes the transfer.
        #[test]
        fn tight_bounds_read_a_prefix_and_retransmission_completes(
            data in proptest::collection::vec(any::<u8>(), 1..2000),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
            extra in proptest::collection::vec((any::<usize>(), 1usize..300), 0..10),
            seed in any::<u64>(),
            irs in any::<u32>(),
            capacity in 1usize..600,
            max_ooo in 0usize..4,
        ) {
            let mut segs = segments(&data, &cuts, &extra);
            let mut q = Q::new(sq(irs), capacity, max_ooo);
            let mut got = Vec::new();
            for round in 0..=segs.len() + data.len() {
                shuffle(&mut segs, seed.wrapping_add(round as u64));
                for r in &segs {
                    let _ = insert_range(&mut q, irs, &data, r);
                    check_invariants(&q, max_ooo);
                    if round % 2 == 1 {
                        got.extend(read_all(&mut q));
                        prop_assert!(data.starts_with(&got));
                    }
                }
                got.extend(read_all(&mut q));
                prop_assert!(data.starts_with(&got));
                while q.poll_recycle().is_some() {}
                if got.len() == data.len() {
                    break;
                }
            }
            prop_assert_eq!(got, data);
        }
    }
}
