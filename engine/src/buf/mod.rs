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
}

impl core::fmt::Display for BufError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BufError::NoHeadroom => "not enough headroom in the packet buffer",
            BufError::NoTailroom => "not enough tailroom in the packet buffer",
            BufError::TooShort => "packet buffer holds fewer bytes than asked for",
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
    /// Empties the frame and sets its headroom to `headroom` (clamped to the
    /// region's size).
    fn reset(&mut self, headroom: usize);

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

/// A heap-backed packet buffer.
#[derive(Clone)]
pub struct HeapBuf {
    mem: Box<[u8]>,
    start: usize,
    end: usize,
}

impl core::fmt::Debug for HeapBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapBuf")
            .field("capacity", &self.mem.len())
            .field("start", &self.start)
            .field("len", &(self.end - self.start))
            .finish()
    }
}

impl HeapBuf {
    /// An empty buffer of `capacity` bytes with `headroom` bytes reserved in
    /// front (clamped to `capacity`).
    pub fn new(capacity: usize, headroom: usize) -> Self {
        let start = headroom.min(capacity);
        HeapBuf {
            mem: vec![0; capacity].into_boxed_slice(),
            start,
            end: start,
        }
    }

    /// A buffer holding a copy of `frame`, with `headroom` bytes before it.
    pub fn from_slice(frame: &[u8], headroom: usize) -> Self {
        let mut mem = vec![0; headroom + frame.len()].into_boxed_slice();
        mem[headroom..].copy_from_slice(frame);
        HeapBuf {
            mem,
            start: headroom,
            end: headroom + frame.len(),
        }
    }

    /// Size of the whole region.
    pub fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl PacketBuf for HeapBuf {
    fn as_slice(&self) -> &[u8] {
        &self.mem[self.start..self.end]
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.end]
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
        Ok(&mut self.mem[self.start..self.start + n])
    }
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.tailroom() {
            return Err(BufError::NoTailroom);
        }
        let old = self.end;
        self.end += n;
        Ok(&mut self.mem[old..self.end])
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

    /// Returns a buffer to the pool for reuse.
    pub fn recycle(&mut self, mut buf: HeapBuf) {
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
