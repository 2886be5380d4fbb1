//! Packet buffers with headroom, and pools that hand them out.
//!
//! A buffer holds one frame. Its bytes live in a fixed region; the frame is a
//! window `[start, end)` inside it, so headers can be prepended into the
//! headroom and stripped off the front without moving payload. Drivers provide
//! their own buffer type (a DPDK mbuf, an AF_XDP UMEM frame); [`HeapBuf`] is
//! the heap-backed one used by the in-memory wire, TAP and tests.
//!
//! Contract: no method panics. Operations that would leave the region return
//! [`BufError`] and leave the buffer unchanged.
//!
//! Zero-copy transmit and retransmit rest on two more operations:
//! - [`PacketBuf::share`] gives another handle on the same bytes (a reference
//!   count, no copy): the TCP retransmit queue keeps one handle while another
//!   travels to the device. Writing through a shared handle first gives that
//!   handle a private copy (copy on write), so sharing is never unsafe; such
//!   copies are counted ([`cow_copies`]) so tests can prove they do not happen
//!   on the fast path.
//! - [`PacketBuf::attach`] hangs a shared payload after a frame's own bytes
//!   (scatter-gather): headers are built in a small buffer of their own and
//!   the payload stays where the application put it. Devices send the frame's
//!   bytes followed by [`PacketBuf::attached`] (a DPDK mbuf chain, `writev` on
//!   a TAP, a gather copy on the in-memory wire). Received frames never carry
//!   an attachment.

use std::cell::Cell;
use std::sync::Arc;

/// Why a buffer operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BufError {
    /// Not enough headroom for the bytes to prepend.
    NoHeadroom,
    /// Not enough tailroom for the bytes to append.
    NoTailroom,
    /// Asked to remove more bytes than the frame holds.
    TooShort,
    /// The frame already carries an attached payload, or the payload to
    /// attach carries one itself (one level of chaining only).
    AlreadyChained,
}

impl core::fmt::Display for BufError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BufError::NoHeadroom => "not enough headroom in the packet buffer",
            BufError::NoTailroom => "not enough tailroom in the packet buffer",
            BufError::TooShort => "packet buffer holds fewer bytes than asked for",
            BufError::AlreadyChained => "packet buffer already carries an attached payload",
        })
    }
}

/// One frame's worth of bytes with room before and after it.
pub trait PacketBuf {
    /// The frame's bytes.
    fn as_slice(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn as_mut_slice(&mut self) -> &mut [u8];
    /// Bytes free before the frame.
    fn headroom(&self) -> usize;
    /// Bytes free after the frame.
    fn tailroom(&self) -> usize;
    /// Extends the frame at the front by `n` bytes of headroom and returns them.
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError>;
    /// Extends the frame at the end by `n` bytes of tailroom and returns them
    /// (their contents are unspecified).
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError>;
    /// Removes `n` bytes from the front of the frame (they become headroom).
    fn advance(&mut self, n: usize) -> Result<(), BufError>;
    /// Shortens the frame to `len` bytes; does nothing if it is already shorter.
    fn truncate(&mut self, len: usize);
    /// Empties the frame, drops any attached payload, and sets its headroom
    /// to `headroom` (clamped to the region's size).
    fn reset(&mut self, headroom: usize);

    /// Another handle on the same bytes, without copying them. Each handle
    /// has its own frame window (`advance`, `truncate` and `prepend` move only
    /// that handle's window); a write through a handle whose bytes are shared
    /// first copies them.
    fn share(&self) -> Self
    where
        Self: Sized;

    /// Whether another handle shares this buffer's bytes.
    fn is_shared(&self) -> bool;

    /// Attaches `payload` after the frame's bytes, without copying it, for
    /// scatter-gather transmit. `payload`'s own attachment must be empty.
    fn attach(&mut self, payload: Self) -> Result<(), BufError>
    where
        Self: Sized;

    /// The attached payload's bytes; empty when nothing is attached.
    fn attached(&self) -> &[u8];

    /// Length of the whole frame: own bytes plus attached payload.
    fn frame_len(&self) -> usize {
        self.len() + self.attached().len()
    }

    /// Length of the frame in bytes.
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    /// Whether the frame is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Something that hands out empty buffers with the device's headroom.
pub trait BufAlloc {
    /// The buffer type handed out.
    type Buf: PacketBuf;
    /// An empty buffer, or `None` when the pool is exhausted.
    fn alloc(&mut self) -> Option<Self::Buf>;
}

/// Default headroom reserved in front of a frame built by the stack: enough
/// for Ethernet + 802.1Q + IPv4 + TCP headers with every option.
pub const DEFAULT_HEADROOM: usize = 128;

/// Default region size: headroom plus a 1500-byte MTU frame, rounded up.
pub const DEFAULT_BUF_SIZE: usize = 2048;

/// A heap-backed packet buffer: a reference-counted region, so
/// [`share`](PacketBuf::share) costs one atomic increment.
pub struct HeapBuf {
    mem: Arc<Vec<u8>>,
    start: usize,
    end: usize,
    tail: Option<Tail>,
}

/// A shared view of another buffer's bytes, attached after a frame.
struct Tail {
    mem: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

thread_local! {
    static COW_COPIES: Cell<u64> = const { Cell::new(0) };
}

/// Copies made on this thread because a shared buffer ([`HeapBuf`], or a
/// driver's buffer type) was written to.
pub fn cow_copies() -> u64 {
    COW_COPIES.with(Cell::get)
}

/// Counts one copy on write (for drivers' buffer types).
pub(crate) fn count_cow_copy() {
    COW_COPIES.with(|c| c.set(c.get() + 1));
}

impl core::fmt::Debug for HeapBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapBuf")
            .field("capacity", &self.mem.len())
            .field("start", &self.start)
            .field("len", &(self.end - self.start))
            .field("shared", &self.is_shared())
            .field("attached", &self.attached().len())
            .finish()
    }
}

impl HeapBuf {
    /// An empty buffer of `capacity` bytes with `headroom` bytes reserved in
    /// front (clamped to `capacity`).
    pub fn new(capacity: usize, headroom: usize) -> Self {
        let start = headroom.min(capacity);
        HeapBuf {
            mem: Arc::new(vec![0; capacity]),
            start,
            end: start,
            tail: None,
        }
    }

    /// A buffer holding a copy of `frame`, with `headroom` bytes before it.
    pub fn from_slice(frame: &[u8], headroom: usize) -> Self {
        let mut mem = vec![0; headroom + frame.len()];
        mem[headroom..].copy_from_slice(frame);
        HeapBuf {
            mem: Arc::new(mem),
            start: headroom,
            end: headroom + frame.len(),
            tail: None,
        }
    }

    /// Size of the whole region.
    pub fn capacity(&self) -> usize {
        self.mem.len()
    }

    /// The region, writable: copied first if another handle shares it.
    fn region_mut(&mut self) -> &mut Vec<u8> {
        if Arc::strong_count(&self.mem) > 1 {
            COW_COPIES.with(|c| c.set(c.get() + 1));
        }
        Arc::make_mut(&mut self.mem)
    }
}

impl PacketBuf for HeapBuf {
    fn as_slice(&self) -> &[u8] {
        &self.mem[self.start..self.end]
    }
    #[inline]
    fn len(&self) -> usize {
        // No slice (and bounds check) needed: start <= end always.
        self.end - self.start
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        let (start, end) = (self.start, self.end);
        &mut self.region_mut()[start..end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.mem.len() - self.end
    }
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.start {
            return Err(BufError::NoHeadroom);
        }
        self.start -= n;
        let start = self.start;
        Ok(&mut self.region_mut()[start..start + n])
    }
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.tailroom() {
            return Err(BufError::NoTailroom);
        }
        let old = self.end;
        self.end += n;
        let end = self.end;
        Ok(&mut self.region_mut()[old..end])
    }
    fn advance(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.end - self.start {
            return Err(BufError::TooShort);
        }
        self.start += n;
        Ok(())
    }
    fn truncate(&mut self, len: usize) {
        if len < self.end - self.start {
            self.end = self.start + len;
        }
    }
    fn reset(&mut self, headroom: usize) {
        self.start = headroom.min(self.mem.len());
        self.end = self.start;
        self.tail = None;
    }
    fn share(&self) -> Self {
        HeapBuf {
            mem: Arc::clone(&self.mem),
            start: self.start,
            end: self.end,
            tail: self.tail.as_ref().map(|t| Tail {
                mem: Arc::clone(&t.mem),
                start: t.start,
                end: t.end,
            }),
        }
    }
    fn is_shared(&self) -> bool {
        Arc::strong_count(&self.mem) > 1
    }
    fn attach(&mut self, payload: Self) -> Result<(), BufError> {
        if self.tail.is_some() || payload.tail.is_some() {
            return Err(BufError::AlreadyChained);
        }
        self.tail = Some(Tail {
            mem: payload.mem,
            start: payload.start,
            end: payload.end,
        });
        Ok(())
    }
    fn attached(&self) -> &[u8] {
        match &self.tail {
            Some(t) => &t.mem[t.start..t.end],
            None => &[],
        }
    }
}

/// A pool of [`HeapBuf`]s: recycles returned buffers and allocates up to a
/// limit, so exhaustion behaves as it does with a NIC's fixed pool.
#[derive(Debug)]
pub struct HeapPool {
    free: Vec<HeapBuf>,
    buf_size: usize,
    headroom: usize,
    outstanding: usize,
    limit: usize,
}

impl HeapPool {
    /// A pool of at most `limit` buffers of `buf_size` bytes with `headroom`.
    pub fn new(buf_size: usize, headroom: usize, limit: usize) -> Self {
        HeapPool {
            free: Vec::new(),
            buf_size,
            headroom,
            outstanding: 0,
            limit,
        }
    }

    /// Returns a buffer to the pool for reuse. A handle whose bytes another
    /// handle still shares is only dropped: the region counts as handed out
    /// until its last handle comes back.
    pub fn recycle(&mut self, mut buf: HeapBuf) {
        if buf.is_shared() {
            return;
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        if buf.capacity() == self.buf_size {
            buf.reset(self.headroom);
            self.free.push(buf);
        }
    }

    /// Buffers handed out and not yet recycled.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Forgets a buffer that was handed out and dropped elsewhere.
    pub fn forget_one(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
    }
}

impl BufAlloc for HeapPool {
    type Buf = HeapBuf;
    fn alloc(&mut self) -> Option<HeapBuf> {
        if self.outstanding >= self.limit {
            return None;
        }
        self.outstanding += 1;
        Some(
            self.free
                .pop()
                .unwrap_or_else(|| HeapBuf::new(self.buf_size, self.headroom)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_append_advance_truncate() {
        let mut b = HeapBuf::new(64, 16);
        assert_eq!((b.headroom(), b.tailroom(), b.len()), (16, 48, 0));
        b.append(4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
        b.prepend(2).unwrap().copy_from_slice(&[9, 8]);
        assert_eq!(b.as_slice(), &[9, 8, 1, 2, 3, 4]);
        b.advance(2).unwrap();
        assert_eq!(b.as_slice(), &[1, 2, 3, 4]);
        b.truncate(2);
        assert_eq!(b.as_slice(), &[1, 2]);
        b.truncate(10);
        assert_eq!(b.len(), 2);
        assert_eq!(b.prepend(17), Err(BufError::NoHeadroom));
        assert_eq!(b.append(47).err(), Some(BufError::NoTailroom));
        assert_eq!(b.advance(3), Err(BufError::TooShort));
        assert_eq!(b.as_slice(), &[1, 2]);
        b.reset(100);
        assert_eq!((b.headroom(), b.len()), (64, 0));
    }

    #[test]
    fn share_is_a_reference_not_a_copy() {
        let mut a = HeapBuf::new(64, 16);
        a.append(4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
        let before = cow_copies();
        let mut b = a.share();
        assert!(a.is_shared() && b.is_shared());
        assert_eq!(a.as_slice().as_ptr(), b.as_slice().as_ptr());
        // Windows move independently without copying.
        b.advance(2).unwrap();
        assert_eq!(
            (a.as_slice(), b.as_slice()),
            (&[1, 2, 3, 4][..], &[3, 4][..])
        );
        assert_eq!(cow_copies(), before);
        // A write through a shared handle copies first; the other is untouched.
        b.as_mut_slice()[0] = 9;
        assert_eq!(cow_copies(), before + 1);
        assert_eq!(
            (a.as_slice(), b.as_slice()),
            (&[1, 2, 3, 4][..], &[9, 4][..])
        );
        assert!(!a.is_shared() && !b.is_shared());
        // Unique again: writes copy nothing.
        a.as_mut_slice()[0] = 7;
        a.prepend(2).unwrap();
        assert_eq!(cow_copies(), before + 1);
    }

    #[test]
    fn attach_chains_one_payload_without_copying() {
        let mut payload = HeapBuf::new(64, 0);
        payload.append(5).unwrap().copy_from_slice(b"hello");
        let kept = payload.share();
        let mut head = HeapBuf::new(64, 32);
        head.prepend(3).unwrap().copy_from_slice(b"hdr");
        let before = cow_copies();
        head.attach(payload).unwrap();
        assert_eq!(head.as_slice(), b"hdr");
        assert_eq!(head.attached(), b"hello");
        assert_eq!(head.attached().as_ptr(), kept.as_slice().as_ptr());
        assert_eq!((head.len(), head.frame_len()), (3, 8));
        assert_eq!(cow_copies(), before);
        assert_eq!(head.attach(kept.share()), Err(BufError::AlreadyChained));
        let mut chained = HeapBuf::new(8, 0);
        chained.attach(kept.share()).unwrap();
        let mut other = HeapBuf::new(8, 0);
        assert_eq!(other.attach(chained), Err(BufError::AlreadyChained));
        head.reset(32);
        assert_eq!(head.frame_len(), 0);
    }

    #[test]
    fn pool_counts_a_shared_region_until_its_last_handle_returns() {
        let mut p = HeapPool::new(256, 32, 1);
        let a = p.alloc().unwrap();
        let b = a.share();
        p.recycle(a);
        assert_eq!(p.outstanding(), 1);
        assert!(p.alloc().is_none());
        p.recycle(b);
        assert_eq!(p.outstanding(), 0);
        assert!(p.alloc().is_some());
    }

    #[test]
    fn pool_limits_and_recycles() {
        let mut p = HeapPool::new(256, 32, 2);
        let a = p.alloc().unwrap();
        let mut b = p.alloc().unwrap();
        assert!(p.alloc().is_none());
        b.append(10).unwrap();
        p.recycle(b);
        let c = p.alloc().unwrap();
        assert_eq!((c.len(), c.headroom()), (0, 32));
        p.recycle(a);
        p.recycle(c);
        assert_eq!(p.outstanding(), 0);
    }
}
