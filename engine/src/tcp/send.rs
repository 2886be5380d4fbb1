//! The send side's data structures: the send queue (application buffers
//! from SND.UNA on, sent or not) and the SACK scoreboard (RFC 6675 §3).
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

/// The smaller of two sequence numbers.
#[inline]
pub(crate) fn seq_min(a: u32, b: u32) -> u32 {
    if seq_lt(a, b) {
        a
    } else {
        b
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

/// Most SACKed ranges remembered; more are ignored (counted by the caller).
pub const MAX_SACK_RANGES: usize = 64;

/// The SACK scoreboard (RFC 6675 §3): SACKed ranges above SND.UNA, sorted,
/// merged, as absolute sequence numbers. Boxed, and only while it holds a
/// range: most connections never see a loss (DESIGN.md principle 6).
#[derive(Debug, Default)]
pub struct Scoreboard {
    board: Option<Box<Board>>,
}

#[derive(Debug, Default)]
struct Board {
    ranges: Vec<(u32, u32)>,
    sacked: u32,
}

impl Scoreboard {
    /// An empty scoreboard; allocates nothing.
    pub const fn new() -> Self {
        Scoreboard { board: None }
    }

    /// Bytes SACKed above SND.UNA.
    #[inline]
    pub fn sacked_bytes(&self) -> u32 {
        self.board.as_ref().map_or(0, |b| b.sacked)
    }

    /// Whether nothing is SACKed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.board.is_none()
    }

    /// The ranges, lowest first.
    #[inline]
    pub fn ranges(&self) -> &[(u32, u32)] {
        self.board.as_ref().map_or(&[], |b| &b.ranges)
    }

    /// Highest SACKed sequence number (right edge), if any.
    pub fn high_sacked(&self) -> Option<u32> {
        self.ranges().last().map(|r| r.1)
    }

    /// Forgets everything (RTO, RFC 6675 §5.1; reneging, RFC 2018 §8).
    pub fn clear(&mut self) {
        self.board = None;
    }

    /// Records a SACK block `[l, r)`. Blocks not inside `(una, max]` are
    /// ignored (RFC 6675 §3: D-SACKs and bogus blocks). Returns the bytes
    /// newly SACKed, or `None` for an ignored block.
    pub fn add(&mut self, l: u32, r: u32, una: u32, max: u32) -> Option<u32> {
        if !seq_lt(l, r) || !seq_le(r, max) || !seq_lt(una, r) {
            return None;
        }
        Some(
            self.board
                .get_or_insert_with(Box::default)
                .add(seq_max(l, una), r),
        )
    }

    /// SND.UNA moved to `una`: forget what lies below it.
    #[inline]
    pub fn ack(&mut self, una: u32) {
        if let Some(b) = self.board.as_mut() {
            b.ack(una);
            if b.ranges.is_empty() {
                self.board = None;
            }
        }
    }

    /// Whether `seq` is SACKed, and if so where its range ends.
    pub fn sacked_end(&self, seq: u32) -> Option<u32> {
        self.ranges()
            .iter()
            .find(|&&(a, b)| seq_le(a, seq) && seq_lt(seq, b))
            .map(|r| r.1)
    }

    /// The first SACKed range starting above `seq`.
    pub fn next_above(&self, seq: u32) -> Option<(u32, u32)> {
        self.ranges().iter().copied().find(|&(a, _)| seq_lt(seq, a))
    }

    /// RFC 6675 `IsLost` as one edge: every un-SACKed byte below the
    /// returned sequence number has more than `thresh` bytes SACKed above
    /// it, so it is deemed lost. `None` when no byte is.
    pub fn lost_edge(&self, thresh: u32) -> Option<u32> {
        let mut above = 0u32;
        for &(a, b) in self.ranges().iter().rev() {
            above = above.saturating_add(b.wrapping_sub(a));
            if above > thresh {
                return Some(a);
            }
        }
        None
    }

    /// SACKed bytes inside `[from, to)`.
    pub fn sacked_in(&self, from: u32, to: u32) -> u32 {
        let mut n = 0u32;
        for &(a, b) in self.ranges() {
            let lo = seq_max(a, from);
            let hi = seq_min(b, to);
            if seq_lt(lo, hi) {
                n += hi.wrapping_sub(lo);
            }
        }
        n
    }
}

impl Board {
    /// [`Scoreboard::add`] of a checked block `[l, r)`.
    fn add(&mut self, l: u32, r: u32) -> u32 {
        let before = self.sacked;
        // Find the insertion point and merge with overlapping/adjacent ranges.
        let mut nl = l;
        let mut nr = r;
        let mut i = 0;
        while i < self.ranges.len() {
            let (a, b) = self.ranges[i];
            if seq_lt(b, nl) {
                i += 1;
                continue;
            }
            if seq_lt(nr, a) {
                break;
            }
            // Overlapping or adjacent: absorb.
            nl = seq_min(nl, a);
            nr = seq_max(nr, b);
            self.sacked -= b.wrapping_sub(a);
            self.ranges.remove(i);
        }
        if self.ranges.len() >= MAX_SACK_RANGES {
            // Keep the memory bound; put the absorbed bytes back as far as
            // they were known is not possible, so drop the highest range.
            if let Some((a, b)) = self.ranges.pop() {
                self.sacked -= b.wrapping_sub(a);
            }
            i = i.min(self.ranges.len());
        }
        self.ranges.insert(i, (nl, nr));
        self.sacked += nr.wrapping_sub(nl);
        self.sacked.saturating_sub(before)
    }

    fn ack(&mut self, una: u32) {
        while let Some(&(a, b)) = self.ranges.first() {
            if seq_le(b, una) {
                self.sacked -= b.wrapping_sub(a);
                self.ranges.remove(0);
            } else {
                if seq_lt(a, una) {
                    self.sacked -= una.wrapping_sub(a);
                    self.ranges[0].0 = una;
                }
                break;
            }
        }
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

    #[test]
    fn scoreboard_merges_and_finds_lost() {
        let mut s = Scoreboard::new();
        assert_eq!(s.add(200, 300, 100, 1000), Some(100));
        assert_eq!(s.add(400, 500, 100, 1000), Some(100));
        assert_eq!(s.add(250, 420, 100, 1000), Some(100));
        assert_eq!(s.ranges(), &[(200, 500)]);
        assert_eq!(s.add(50, 90, 100, 1000), None);
        assert_eq!(s.add(600, 2000, 100, 1000), None);
        assert_eq!(s.lost_edge(250), Some(200));
        assert_eq!(s.lost_edge(300), None);
        assert_eq!(s.sacked_in(0, 300), 100);
        s.ack(300);
        assert_eq!((s.ranges(), s.sacked_bytes()), (&[(300, 500)][..], 200));
        s.ack(600);
        assert!(s.is_empty());
    }
}
