//! UMEM frames as the engine's packet buffers.
//!
//! The port's UMEM is one mapping cut into equal frames; each queue owns a
//! contiguous share of them ([`QueueFrames`]). A frame is in exactly one of
//! these places: the owning device's free list, the fill ring (the kernel's
//! until it comes back on the RX ring), the TX ring (until the completion
//! ring returns it), or held by [`XdpBuf`] handles.
//!
//! Handles count references per frame (an atomic per frame), so
//! [`PacketBuf::share`] is one increment and the TCP retransmit queue keeps
//! its frame while a copy of the segment travels. When the last handle
//! goes, the frame returns to its queue: straight onto the free list when
//! the device itself recycles it, otherwise (a handle dropped by the stack
//! or by an application thread) onto a lock-free return stack the device
//! empties in one swap. Pushes and a take-all swap need no ABA protection:
//! a push only requires that its frame's link names the head at the moment
//! the head is replaced.
//!
//! A write through a handle whose frame is shared first copies the bytes
//! to the heap (copy on write, counted in [`crate::buf::cow_copies`]): the
//! kernel may still be reading the frame from the TX ring. Such a heap
//! buffer is copied into a frame again when it is transmitted.

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Arc;

use super::sys::Mapping;
use crate::buf::{BufError, PacketBuf};

/// No frame: the end of a return-stack chain.
const NONE: u32 = u32::MAX;

/// One queue's share of the UMEM.
pub(crate) struct QueueFrames {
    /// Keeps the whole UMEM mapped while any handle lives.
    _area: Arc<Mapping>,
    /// First byte of this queue's first frame.
    base: *mut u8,
    /// UMEM offset of this queue's first frame.
    pub(crate) base_offset: u64,
    pub(crate) frame_size: u32,
    /// log2(frame_size).
    shift: u32,
    pub(crate) frames: u32,
    refs: Box<[AtomicU32]>,
    next: Box<[AtomicU32]>,
    /// Head of the return stack (a frame index or [`NONE`]).
    returns: AtomicU32,
}

// SAFETY: the frame bytes are reached only through `XdpBuf` handles whose
// reference counts decide who may write (a unique handle) and when a frame
// is free; the counters and the return stack are atomics.
unsafe impl Send for QueueFrames {}
// SAFETY: as above.
unsafe impl Sync for QueueFrames {}

impl core::fmt::Debug for QueueFrames {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QueueFrames")
            .field("base_offset", &self.base_offset)
            .field("frame_size", &self.frame_size)
            .field("frames", &self.frames)
            .finish()
    }
}

impl QueueFrames {
    /// Frames `[first, first + frames)` of `area`, in frames of
    /// `frame_size` (a power of two) bytes.
    pub(crate) fn new(area: Arc<Mapping>, first: u32, frames: u32, frame_size: u32) -> Self {
        debug_assert!(frame_size.is_power_of_two());
        let base_offset = u64::from(first) * u64::from(frame_size);
        debug_assert!(base_offset + u64::from(frames) * u64::from(frame_size) <= area.len() as u64);
        // SAFETY: the range of frames lies inside the mapping (checked by
        // the caller, which sized the mapping for every queue's frames).
        let base = unsafe { area.as_ptr().add(base_offset as usize) };
        QueueFrames {
            _area: area,
            base,
            base_offset,
            frame_size,
            shift: frame_size.trailing_zeros(),
            frames,
            refs: (0..frames).map(|_| AtomicU32::new(0)).collect(),
            next: (0..frames).map(|_| AtomicU32::new(NONE)).collect(),
            returns: AtomicU32::new(NONE),
        }
    }

    /// The frame holding UMEM offset `addr`, and the offset inside it, if
    /// it is one of this queue's.
    pub(crate) fn locate(&self, addr: u64) -> Option<(u32, u32)> {
        let rel = addr.checked_sub(self.base_offset)?;
        let idx = rel >> self.shift;
        (idx < u64::from(self.frames))
            .then(|| (idx as u32, (rel & u64::from(self.frame_size - 1)) as u32))
    }

    /// UMEM offset of byte `off` of frame `idx`.
    pub(crate) fn addr(&self, idx: u32, off: u32) -> u64 {
        self.base_offset + (u64::from(idx) << self.shift) + u64::from(off)
    }

    fn frame_ptr(&self, idx: u32) -> *mut u8 {
        // SAFETY: `idx < frames` for every index handed out, so the frame
        // lies inside this queue's range of the mapping.
        unsafe { self.base.add((idx as usize) << self.shift) }
    }

    /// Drops one reference to frame `idx`; returns whether it was the last.
    fn unref(&self, idx: u32) -> bool {
        if self.refs[idx as usize].fetch_sub(1, Ordering::Release) == 1 {
            // Pairs with the release of every other handle's decrement: their
            // accesses to the frame happen before it is reused.
            fence(Ordering::Acquire);
            true
        } else {
            false
        }
    }

    /// Pushes free frame `idx` on the return stack (any thread).
    fn push_return(&self, idx: u32) {
        let mut head = self.returns.load(Ordering::Relaxed);
        loop {
            self.next[idx as usize].store(head, Ordering::Relaxed);
            match self.returns.compare_exchange_weak(
                head,
                idx,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Moves every returned frame to `free` (the owning device only).
    pub(crate) fn take_returns(&self, free: &mut Vec<u32>) -> usize {
        let mut idx = self.returns.swap(NONE, Ordering::Acquire);
        let mut n = 0;
        while idx != NONE {
            free.push(idx);
            n += 1;
            idx = self.next[idx as usize].load(Ordering::Relaxed);
        }
        n
    }

    /// Releases one reference the device holds (a frame on the TX ring
    /// whose completion arrived); returns whether the frame is now free.
    pub(crate) fn release(&self, idx: u32) -> bool {
        self.unref(idx)
    }

    /// Whether frame `idx` has no handle and no ring holds it.
    #[cfg(test)]
    pub(crate) fn is_free(&self, idx: u32) -> bool {
        self.refs[idx as usize].load(Ordering::Acquire) == 0
    }
}

/// Where a handle's bytes live.
enum Region {
    /// A UMEM frame (index into its queue's share).
    Frame(Arc<QueueFrames>, u32),
    /// A private heap copy, made by copy on write.
    Heap(Arc<Vec<u8>>),
}

impl Region {
    fn ptr(&self) -> *mut u8 {
        match self {
            Region::Frame(q, idx) => q.frame_ptr(*idx),
            Region::Heap(v) => v.as_ptr().cast_mut(),
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Region::Frame(q, _) => q.frame_size as usize,
            Region::Heap(v) => v.len(),
        }
    }

    fn is_shared(&self) -> bool {
        match self {
            Region::Frame(q, idx) => q.refs[*idx as usize].load(Ordering::Acquire) > 1,
            Region::Heap(v) => Arc::strong_count(v) > 1,
        }
    }

    fn share(&self) -> Region {
        match self {
            Region::Frame(q, idx) => {
                // Relaxed suffices for an increment from a live handle (as
                // in `Arc::clone`).
                q.refs[*idx as usize].fetch_add(1, Ordering::Relaxed);
                Region::Frame(Arc::clone(q), *idx)
            }
            Region::Heap(v) => Region::Heap(Arc::clone(v)),
        }
    }

    /// The bytes `[start, end)`.
    fn slice(&self, start: u32, end: u32) -> &[u8] {
        debug_assert!(start <= end && end as usize <= self.capacity());
        let p = self.ptr().wrapping_add(start as usize);
        // SAFETY: `start <= end <= capacity` (every window change is
        // checked against the capacity), the region is alive while `self`
        // is (an `Arc` on its memory), and nobody writes to it while a
        // shared handle exists (writes go through unique handles only; the
        // kernel writes only frames in the fill ring, which no handle holds).
        unsafe { core::slice::from_raw_parts(p, (end - start) as usize) }
    }
}

impl Region {
    /// Gives up this handle's reference to its frame (the `Arc` itself is
    /// dropped with the value). Heap regions need nothing.
    fn put(&self) {
        if let Region::Frame(q, idx) = self {
            if q.unref(*idx) {
                q.push_return(*idx);
            }
        }
    }
}

/// A packet buffer in a UMEM frame (or, after copy on write, on the heap).
pub struct XdpBuf {
    mem: Region,
    start: u32,
    end: u32,
    tail: Option<(Region, u32, u32)>,
}

impl core::fmt::Debug for XdpBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XdpBuf")
            .field("umem", &matches!(self.mem, Region::Frame(..)))
            .field("start", &self.start)
            .field("len", &(self.end - self.start))
            .field("attached", &self.attached().len())
            .finish()
    }
}

impl XdpBuf {
    /// A handle on frame `idx`, which must be free (no handle, no ring);
    /// the window is `[start, start + len)`.
    pub(crate) fn from_frame(q: &Arc<QueueFrames>, idx: u32, start: u32, len: u32) -> XdpBuf {
        debug_assert_eq!(q.refs[idx as usize].load(Ordering::Relaxed), 0);
        q.refs[idx as usize].store(1, Ordering::Relaxed);
        XdpBuf {
            mem: Region::Frame(Arc::clone(q), idx),
            start,
            end: start + len,
            tail: None,
        }
    }

    /// The frame and window this handle covers, if it is a UMEM frame of
    /// queue `q` with nothing attached: what a TX descriptor can name.
    pub(crate) fn frame_of(&self, q: &Arc<QueueFrames>) -> Option<(u32, u32, u32)> {
        match (&self.mem, &self.tail) {
            (Region::Frame(owner, idx), None) if Arc::ptr_eq(owner, q) => {
                Some((*idx, self.start, self.end - self.start))
            }
            _ => None,
        }
    }

    /// Appends the attached payload into this handle's own frame when that
    /// is a frame of `q` no one else holds and has room; returns whether it
    /// did (and the attachment is gone).
    pub(crate) fn gather_in_place(&mut self, q: &Arc<QueueFrames>) -> bool {
        let Some((_, s, e)) = &self.tail else {
            return false;
        };
        let n = (e - s) as usize;
        let own = matches!(&self.mem, Region::Frame(o, _) if Arc::ptr_eq(o, q));
        if !own || self.mem.is_shared() || self.tailroom() < n {
            return false;
        }
        let Some((t, s, e)) = self.tail.take() else {
            return false;
        };
        if let Ok(room) = self.append(n) {
            room.copy_from_slice(t.slice(s, e));
        }
        t.put();
        true
    }

    /// Takes the handle apart without running its destructor.
    fn into_parts(self) -> (Region, Option<(Region, u32, u32)>) {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: each field is read exactly once and `me` is never dropped,
        // so the fields are moved out, not duplicated.
        let mem = unsafe { core::ptr::read(&me.mem) };
        // SAFETY: as above.
        let tail = unsafe { core::ptr::read(&me.tail) };
        (mem, tail)
    }

    /// Turns the handle into the reference a TX descriptor holds: the frame
    /// keeps its count until [`QueueFrames::release`].
    pub(crate) fn into_ring_ref(self) {
        let (mem, tail) = self.into_parts();
        if let Some((t, ..)) = &tail {
            t.put();
        }
        drop(mem);
    }

    /// Takes the reference of a handle on one of queue `q`'s frames for the
    /// owning device's free list: `Ok(Some(idx))` when this was the frame's
    /// last handle, `Ok(None)` when others remain; `Err(self)` when the
    /// handle is not on one of `q`'s frames.
    pub(crate) fn into_free_frame(self, q: &Arc<QueueFrames>) -> Result<Option<u32>, XdpBuf> {
        if !matches!(&self.mem, Region::Frame(owner, _) if Arc::ptr_eq(owner, q)) {
            return Err(self);
        }
        let (mem, tail) = self.into_parts();
        if let Some((t, ..)) = &tail {
            t.put();
        }
        match mem {
            Region::Frame(owner, idx) => Ok(owner.unref(idx).then_some(idx)),
            Region::Heap(_) => Ok(None),
        }
    }

    fn region_mut(&mut self) -> *mut u8 {
        if self.mem.is_shared() {
            crate::buf::count_cow_copy();
            let mut copy = vec![0u8; self.mem.capacity()];
            copy[self.start as usize..self.end as usize]
                .copy_from_slice(self.mem.slice(self.start, self.end));
            let old = core::mem::replace(&mut self.mem, Region::Heap(Arc::new(copy)));
            old.put();
        }
        match &mut self.mem {
            Region::Frame(q, idx) => q.frame_ptr(*idx),
            Region::Heap(v) => match Arc::get_mut(v) {
                Some(v) => v.as_mut_ptr(),
                // Unreachable: not shared was just checked; keep a safe
                // answer anyway by copying.
                None => {
                    let copy = Arc::new(v.as_slice().to_vec());
                    *v = copy;
                    Arc::get_mut(v).map_or(core::ptr::null_mut(), |v| v.as_mut_ptr())
                }
            },
        }
    }

    fn window_mut(&mut self, start: u32, end: u32) -> &mut [u8] {
        let p = self.region_mut();
        let p = p.wrapping_add(start as usize);
        // SAFETY: `[start, end)` lies inside the region (callers check
        // against the capacity) and the region is unique to this handle
        // (copy on write above), so no other reference to these bytes
        // exists while the returned borrow of `self` lives.
        unsafe { core::slice::from_raw_parts_mut(p, (end - start) as usize) }
    }
}

impl Drop for XdpBuf {
    fn drop(&mut self) {
        self.mem.put();
        if let Some((t, ..)) = &self.tail {
            t.put();
        }
    }
}

impl PacketBuf for XdpBuf {
    fn as_slice(&self) -> &[u8] {
        self.mem.slice(self.start, self.end)
    }
    #[inline]
    fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        let (s, e) = (self.start, self.end);
        self.window_mut(s, e)
    }
    fn headroom(&self) -> usize {
        self.start as usize
    }
    fn tailroom(&self) -> usize {
        self.mem.capacity() - self.end as usize
    }
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.start as usize {
            return Err(BufError::NoHeadroom);
        }
        self.start -= n as u32;
        let s = self.start;
        Ok(self.window_mut(s, s + n as u32))
    }
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.tailroom() {
            return Err(BufError::NoTailroom);
        }
        let old = self.end;
        self.end += n as u32;
        let e = self.end;
        Ok(self.window_mut(old, e))
    }
    fn advance(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.len() {
            return Err(BufError::TooShort);
        }
        self.start += n as u32;
        Ok(())
    }
    fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len as u32;
        }
    }
    fn reset(&mut self, headroom: usize) {
        self.start = headroom.min(self.mem.capacity()) as u32;
        self.end = self.start;
        if let Some((t, ..)) = self.tail.take() {
            t.put();
        }
    }
    fn share(&self) -> Self {
        XdpBuf {
            mem: self.mem.share(),
            start: self.start,
            end: self.end,
            tail: self.tail.as_ref().map(|(r, s, e)| (r.share(), *s, *e)),
        }
    }
    fn is_shared(&self) -> bool {
        self.mem.is_shared()
    }
    fn attach(&mut self, payload: Self) -> Result<(), BufError> {
        if self.tail.is_some() || payload.tail.is_some() {
            return Err(BufError::AlreadyChained);
        }
        let (s, e) = (payload.start, payload.end);
        let (mem, _) = payload.into_parts();
        self.tail = Some((mem, s, e));
        Ok(())
    }
    fn attached(&self) -> &[u8] {
        match &self.tail {
            Some((r, s, e)) => r.slice(*s, *e),
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::cow_copies;

    fn queue(frames: u32) -> Arc<QueueFrames> {
        let area = Arc::new(Mapping::anonymous(frames as usize * 2048).unwrap());
        Arc::new(QueueFrames::new(area, 0, frames, 2048))
    }

    #[test]
    fn frame_returns_when_its_last_handle_goes_from_any_thread() {
        let q = queue(4);
        let mut a = XdpBuf::from_frame(&q, 2, 128, 0);
        a.append(3).unwrap().copy_from_slice(b"abc");
        let b = a.share();
        assert!(a.is_shared() && !q.is_free(2));
        drop(a);
        assert!(!q.is_free(2));
        let mut free = Vec::new();
        assert_eq!(q.take_returns(&mut free), 0);
        std::thread::spawn(move || drop(b)).join().unwrap();
        assert!(q.is_free(2));
        assert_eq!(q.take_returns(&mut free), 1);
        assert_eq!(free, [2]);
        assert_eq!(q.take_returns(&mut free), 0);
    }

    #[test]
    fn a_ring_reference_outlives_the_handle_until_released() {
        let q = queue(4);
        let a = XdpBuf::from_frame(&q, 1, 256, 60);
        let kept = a.share();
        assert_eq!(a.frame_of(&q), Some((1, 256, 60)));
        a.into_ring_ref();
        drop(kept);
        assert!(!q.is_free(1), "the ring still holds the frame");
        assert!(q.release(1));
        assert!(q.is_free(1));
        // The device's own recycling path: no trip over the return stack.
        let b = XdpBuf::from_frame(&q, 3, 0, 0);
        assert_eq!(b.into_free_frame(&q).ok(), Some(Some(3)));
        let mut free = Vec::new();
        assert_eq!(q.take_returns(&mut free), 0);
    }

    #[test]
    fn a_write_through_a_shared_handle_copies_to_the_heap() {
        let q = queue(2);
        let mut a = XdpBuf::from_frame(&q, 0, 128, 0);
        a.append(4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
        let b = a.share();
        let before = cow_copies();
        a.as_mut_slice()[0] = 9;
        assert_eq!(cow_copies(), before + 1);
        assert_eq!(
            (a.as_slice(), b.as_slice()),
            (&[9, 2, 3, 4][..], &[1, 2, 3, 4][..])
        );
        assert_eq!(a.frame_of(&q), None, "the copy is on the heap");
        assert_eq!(a.headroom(), 128);
        assert!(!b.is_shared());
        drop(b);
        assert!(q.is_free(0));
        drop(a);
    }

    #[test]
    fn an_attached_payload_is_gathered_into_the_header_frame() {
        let q = queue(4);
        let mut payload = XdpBuf::from_frame(&q, 0, 128, 0);
        payload.append(5).unwrap().copy_from_slice(b"hello");
        let kept = payload.share();
        let mut head = XdpBuf::from_frame(&q, 1, 128, 0);
        head.append(3).unwrap().copy_from_slice(b"hdr");
        head.attach(payload).unwrap();
        assert_eq!(
            (head.as_slice(), head.attached()),
            (&b"hdr"[..], &b"hello"[..])
        );
        assert_eq!(head.frame_of(&q), None, "two frames: no single descriptor");
        assert!(head.gather_in_place(&q));
        assert_eq!(
            (head.as_slice(), head.attached()),
            (&b"hdrhello"[..], &b""[..])
        );
        assert_eq!(head.frame_of(&q), Some((1, 128, 8)));
        assert!(!kept.is_shared(), "the attachment's reference is gone");
        drop(kept);
        assert!(q.is_free(0));
        drop(head);
        assert!(q.is_free(1));
    }

    #[test]
    fn windows_stay_inside_the_frame() {
        let q = queue(1);
        let mut a = XdpBuf::from_frame(&q, 0, 2000, 0);
        assert_eq!(a.tailroom(), 48);
        assert!(a.append(49).is_err());
        assert!(a.prepend(2001).is_err());
        a.append(48).unwrap();
        assert_eq!(a.advance(49), Err(BufError::TooShort));
        a.reset(4096);
        assert_eq!((a.headroom(), a.len()), (2048, 0));
        assert_eq!(q.locate(2048 + 5), None);
        assert_eq!(q.locate(300), Some((0, 300)));
    }
}
