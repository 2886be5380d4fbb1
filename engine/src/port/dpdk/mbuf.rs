//! DPDK mbufs as the engine's packet buffers.
//!
//! An [`Mbuf`] owns one reference on a *direct* mbuf (one whose data buffer
//! is its own). Its frame window lives in the handle, not in the mbuf: the
//! mbuf's `data_off` and `data_len` are written only when the mbuf is
//! handed to the PMD. So [`PacketBuf::share`] is one reference count
//! increment (`rte_mbuf_refcnt_update`), and each handle moves its window
//! freely.
//!
//! A write through a handle whose mbuf is shared first copies the bytes
//! into a fresh mbuf of the same pool, or to the heap when that pool is
//! exhausted (copy on write, counted in [`crate::buf::cow_copies`]): the
//! PMD may still be reading the shared one.
//!
//! At transmission (`TxFrame::build`) a handle becomes what the PMD takes:
//! - its own mbuf, when no other handle shares it (the handle's reference
//!   moves to the PMD);
//! - otherwise an indirect mbuf attached to it (`rte_pktmbuf_attach`, which
//!   takes its own reference) carrying the handle's window;
//! - an attached payload becomes a second segment: an indirect mbuf
//!   attached to the payload's direct mbuf with the payload's window. The
//!   retransmit queue's handle and the in-flight segment share the bytes;
//!   the PMD frees the chain once sent, which drops the indirect's
//!   reference.

use core::ptr::{self, NonNull};
use std::sync::Arc;

use sys::mbuf as field;
use wirespeed_dpdk_sys as sys;

use crate::buf::{BufError, PacketBuf};

/// Where a handle's bytes live.
enum Region {
    /// A direct mbuf on which this handle holds one reference; the bytes
    /// are its whole data buffer (`buf_addr`, `buf_len`).
    Mbuf(NonNull<sys::rte_mbuf>),
    /// A private heap copy, made by copy on write when the pool was empty.
    Heap(Arc<Vec<u8>>),
}

impl Region {
    fn ptr(&self) -> *mut u8 {
        match self {
            // SAFETY: the handle holds a reference, so the mbuf is live.
            Region::Mbuf(m) => unsafe { field::buf_addr(m.as_ptr()) }.cast::<u8>(),
            Region::Heap(v) => v.as_ptr().cast_mut(),
        }
    }

    fn capacity(&self) -> usize {
        match self {
            // SAFETY: as above.
            Region::Mbuf(m) => usize::from(unsafe { field::buf_len(m.as_ptr()) }),
            Region::Heap(v) => v.len(),
        }
    }

    fn is_shared(&self) -> bool {
        match self {
            // SAFETY: as above; the count is read atomically.
            Region::Mbuf(m) => (unsafe { sys::rte_mbuf_refcnt_read(m.as_ptr()) }) > 1,
            Region::Heap(v) => Arc::strong_count(v) > 1,
        }
    }

    fn share(&self) -> Region {
        match self {
            Region::Mbuf(m) => {
                // SAFETY: the mbuf is live (this handle's reference) and
                // direct; the increment is atomic once the count exceeds 1.
                unsafe { sys::rte_mbuf_refcnt_update(m.as_ptr(), 1) };
                Region::Mbuf(*m)
            }
            Region::Heap(v) => Region::Heap(Arc::clone(v)),
        }
    }

    /// The bytes `[start, end)`.
    fn slice(&self, start: u32, end: u32) -> &[u8] {
        debug_assert!(start <= end && end as usize <= self.capacity());
        let p = self.ptr().wrapping_add(start as usize);
        // SAFETY: every window change is checked against the capacity, so
        // `[start, end)` lies in the data buffer, which lives while this
        // handle's reference does; nobody writes to a buffer another handle
        // shares (writes copy first), and the PMD writes only mbufs it owns.
        unsafe { core::slice::from_raw_parts(p, (end - start) as usize) }
    }

    /// Gives up this handle's reference (a heap region's `Arc` goes with
    /// the value itself).
    fn put(&self) {
        if let Region::Mbuf(m) = self {
            // SAFETY: the handle held one reference on a direct mbuf whose
            // `next` is null (chains exist only while the PMD holds them);
            // free_seg drops the reference and returns the mbuf to its pool
            // when it was the last.
            unsafe { sys::rte_pktmbuf_free_seg(m.as_ptr()) };
        }
    }
}

/// A packet buffer in a DPDK mbuf (or, after copy on write with an
/// exhausted pool, on the heap).
pub struct Mbuf {
    mem: Region,
    start: u32,
    end: u32,
    tail: Option<(Region, u32, u32)>,
}

// SAFETY: an mbuf may be used and freed from any thread: its reference count
// is atomic (RTE_MBUF_REFCNT_ATOMIC), its mempool is multi-producer and
// multi-consumer (threads without an lcore bypass the per-lcore caches), and
// the handle's window is its own. Writes go through a unique handle only.
unsafe impl Send for Mbuf {}

impl core::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mbuf")
            .field("mbuf", &matches!(self.mem, Region::Mbuf(_)))
            .field("start", &self.start)
            .field("len", &(self.end - self.start))
            .field("shared", &self.is_shared())
            .field("attached", &self.attached().len())
            .finish()
    }
}

impl Mbuf {
    /// Takes over the caller's reference on `m`, a direct single-segment
    /// mbuf, with the window its `data_off` and `data_len` describe.
    ///
    /// # Safety
    /// `m` is a valid direct mbuf with `next` null, and the caller owns
    /// one reference on it that it gives up.
    pub(crate) unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Mbuf {
        // SAFETY: valid per the caller.
        let off = unsafe { field::data_off(m.as_ptr()) };
        // SAFETY: as above.
        let len = unsafe { field::data_len(m.as_ptr()) };
        Mbuf {
            mem: Region::Mbuf(m),
            start: u32::from(off),
            end: u32::from(off) + u32::from(len),
            tail: None,
        }
    }

    /// References on this handle's mbuf (`None` for a heap copy): one per
    /// handle, plus one per indirect mbuf attached to it.
    pub fn refcnt(&self) -> Option<u16> {
        match self.mem {
            // SAFETY: the mbuf is live (this handle's reference).
            Region::Mbuf(m) => Some(unsafe { sys::rte_mbuf_refcnt_read(m.as_ptr()) }),
            Region::Heap(_) => None,
        }
    }

    /// Takes the handle apart without running its destructor.
    fn into_parts(self) -> (Region, Option<(Region, u32, u32)>) {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: each field is read exactly once and `me` is never dropped,
        // so the fields are moved out, not duplicated.
        let mem = unsafe { ptr::read(&me.mem) };
        // SAFETY: as above.
        let tail = unsafe { ptr::read(&me.tail) };
        (mem, tail)
    }

    /// Makes the region this handle's alone, copying it first if shared;
    /// returns its first byte.
    fn region_mut(&mut self) -> *mut u8 {
        if self.mem.is_shared() {
            crate::buf::count_cow_copy();
            let copy = self.private_copy();
            let old = core::mem::replace(&mut self.mem, copy);
            old.put();
        }
        match &mut self.mem {
            Region::Mbuf(m) => {
                // SAFETY: the mbuf is live and unique to this handle.
                unsafe { field::buf_addr(m.as_ptr()) }.cast::<u8>()
            }
            Region::Heap(v) => {
                if Arc::get_mut(v).is_none() {
                    // Not reachable (not shared was just made sure of), but
                    // a copy keeps the answer safe.
                    *v = Arc::new(v.as_slice().to_vec());
                }
                Arc::get_mut(v).map_or(ptr::null_mut(), |v| v.as_mut_ptr())
            }
        }
    }

    /// A copy of the window `[start, end)` at the same offsets: in a fresh
    /// mbuf of the same pool, or on the heap when it is empty.
    fn private_copy(&self) -> Region {
        let (s, e) = (self.start as usize, self.end as usize);
        if let Region::Mbuf(m) = &self.mem {
            // SAFETY: the mbuf is live; its pool outlives every mbuf of it.
            let pool = unsafe { field::pool(m.as_ptr()) };
            // SAFETY: `pool` is a pktmbuf pool (the mbuf came from it).
            let fresh = NonNull::new(unsafe { sys::rte_pktmbuf_alloc(pool) });
            if let Some(f) = fresh {
                let dst = Region::Mbuf(f).ptr().wrapping_add(s);
                let src = self.mem.slice(self.start, self.end);
                // SAFETY: `f` is a fresh mbuf of the same pool, so its data
                // buffer has the same length and `[s, e)` fits; the two
                // buffers are distinct.
                unsafe { ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
                return Region::Mbuf(f);
            }
        }
        let mut v = vec![0u8; self.mem.capacity()];
        v[s..e].copy_from_slice(self.mem.slice(self.start, self.end));
        Region::Heap(Arc::new(v))
    }

    fn window_mut(&mut self, start: u32, end: u32) -> &mut [u8] {
        let p = self.region_mut().wrapping_add(start as usize);
        // SAFETY: `[start, end)` lies inside the region (callers check
        // against the capacity) and the region is unique to this handle
        // (copied above when shared), so no other reference to these bytes
        // exists while the returned borrow of `self` lives.
        unsafe { core::slice::from_raw_parts_mut(p, (end - start) as usize) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        self.mem.put();
        if let Some((t, ..)) = &self.tail {
            t.put();
        }
    }
}

impl PacketBuf for Mbuf {
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
        Mbuf {
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

/// Pools a transmit queue builds frames from.
#[derive(Clone, Copy)]
pub(crate) struct TxPools {
    /// Data mbufs (copies of heap buffers).
    pub(crate) data: NonNull<sys::rte_mempool>,
    /// Mbufs without data room, for indirect segments.
    pub(crate) indirect: NonNull<sys::rte_mempool>,
    /// Whether the PMD takes multi-segment frames; if not, an attached
    /// payload is copied behind the header.
    pub(crate) multi_seg: bool,
}

/// How a transmit frame was built: what to undo if the PMD does not take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// The handle's own mbuf: its reference passes to the PMD if sent.
    Own,
    /// An mbuf made for this transmission (indirect or copy); the handle
    /// keeps its own reference.
    Made,
}

/// One frame as the PMD takes it.
pub(crate) struct TxFrame {
    pub(crate) head: NonNull<sys::rte_mbuf>,
    pub(crate) kind: Head,
    /// Segments made by copying (heap bytes, or a gather for a PMD without
    /// multi-segment transmit).
    pub(crate) copied: bool,
    /// Whether the frame went out as a chain of two segments.
    pub(crate) chained: bool,
}

/// Data offset for a copy: the engine's headroom, or less when the window
/// starts earlier.
fn copy_offset(start: u32) -> u16 {
    start.min(sys::RTE_PKTMBUF_HEADROOM) as u16
}

/// A fresh mbuf from `pool` holding `parts` one after the other, at the
/// engine's headroom.
fn copy_into(
    pool: NonNull<sys::rte_mempool>,
    start: u32,
    parts: [&[u8]; 2],
) -> Option<NonNull<sys::rte_mbuf>> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    // SAFETY: `pool` is a live pktmbuf pool of this queue.
    let m = NonNull::new(unsafe { sys::rte_pktmbuf_alloc(pool.as_ptr()) })?;
    let off = copy_offset(start);
    // SAFETY: `m` is a fresh mbuf only this function holds.
    let room = usize::from(unsafe { field::buf_len(m.as_ptr()) });
    if usize::from(off) + total > room || total > usize::from(u16::MAX) {
        // SAFETY: the mbuf is ours, single-segment.
        unsafe { sys::rte_pktmbuf_free_seg(m.as_ptr()) };
        return None;
    }
    let mut dst = Region::Mbuf(m).ptr().wrapping_add(usize::from(off));
    for p in parts {
        // SAFETY: `[off, off + total)` fits the fresh mbuf's data buffer
        // (checked), which no one else can see; `p` is another buffer.
        unsafe { ptr::copy_nonoverlapping(p.as_ptr(), dst, p.len()) };
        dst = dst.wrapping_add(p.len());
    }
    // SAFETY: the fresh mbuf is ours; the window was just filled.
    unsafe { field::set_single_segment(m.as_ptr(), off, total as u16) };
    Some(m)
}

/// An indirect mbuf from `pool` attached to the direct mbuf `to`, with the
/// window `[s, e)` of `to`'s data buffer. Takes a reference on `to`.
fn indirect(
    pool: NonNull<sys::rte_mempool>,
    to: NonNull<sys::rte_mbuf>,
    s: u32,
    e: u32,
) -> Option<NonNull<sys::rte_mbuf>> {
    // SAFETY: `pool` is a live pktmbuf pool of this queue.
    let mi = NonNull::new(unsafe { sys::rte_pktmbuf_alloc(pool.as_ptr()) })?;
    // SAFETY: `mi` is fresh (direct, count 1) and `to` is a live direct
    // mbuf; attach takes a reference on `to` and points `mi` at its data.
    unsafe { sys::rte_pktmbuf_attach(mi.as_ptr(), to.as_ptr()) };
    // SAFETY: `mi` is ours; the window lies in `to`'s buffer (the
    // handle's checked window).
    unsafe { field::set_single_segment(mi.as_ptr(), s as u16, (e - s) as u16) };
    Some(mi)
}

impl TxFrame {
    /// The frame `buf` describes (its own bytes, then its attached
    /// payload), as mbufs the PMD can take; `None` when a pool is empty or
    /// the frame does not fit an mbuf (nothing is held then).
    pub(crate) fn build(buf: &Mbuf, pools: TxPools) -> Option<TxFrame> {
        let (s, e) = (buf.start, buf.end);
        let mut copied = false;
        let (head, kind) = match (&buf.mem, &buf.tail) {
            // Without multi-segment transmit, header and payload are
            // gathered into one mbuf.
            (_, Some((t, ts, te))) if !pools.multi_seg => {
                copied = true;
                let m = copy_into(pools.data, s, [buf.as_slice(), t.slice(*ts, *te)])?;
                return Some(TxFrame {
                    head: m,
                    kind: Head::Made,
                    copied,
                    chained: false,
                });
            }
            (Region::Mbuf(m), _) if !buf.mem.is_shared() => {
                // SAFETY: the handle's mbuf, which no other handle shares
                // and the PMD does not hold; the window is in its buffer.
                unsafe { field::set_single_segment(m.as_ptr(), s as u16, (e - s) as u16) };
                (*m, Head::Own)
            }
            (Region::Mbuf(m), _) => (indirect(pools.indirect, *m, s, e)?, Head::Made),
            (Region::Heap(_), _) => {
                copied = true;
                (copy_into(pools.data, s, [buf.as_slice(), &[]])?, Head::Made)
            }
        };
        let mut frame = TxFrame {
            head,
            kind,
            copied,
            chained: false,
        };
        let Some((t, ts, te)) = &buf.tail else {
            return Some(frame);
        };
        let seg = match t {
            Region::Mbuf(p) => indirect(pools.indirect, *p, *ts, *te),
            Region::Heap(_) => {
                frame.copied = true;
                copy_into(pools.data, 0, [t.slice(*ts, *te), &[]])
            }
        };
        let Some(seg) = seg else {
            frame.undo();
            return None;
        };
        // SAFETY: the head is this transmission's (own and unshared, or
        // made here) and `seg` was made above: both ours alone; two
        // chained segments are what the PMD expects of such a frame.
        unsafe { field::chain(frame.head.as_ptr(), seg.as_ptr()) };
        frame.chained = true;
        Some(frame)
    }

    /// Releases what [`build`](Self::build) made when the PMD did not take
    /// the frame; the handle it came from is whole again.
    pub(crate) fn undo(self) {
        let h = self.head.as_ptr();
        match self.kind {
            Head::Own => {
                // SAFETY: the head is the handle's own mbuf, still ours.
                let seg = unsafe { field::unchain(h) };
                if !seg.is_null() {
                    // SAFETY: the segment was made by `build` and holds
                    // its own references, which freeing it drops.
                    unsafe { sys::rte_pktmbuf_free(seg) };
                }
            }
            // SAFETY: the whole chain was made by `build`; freeing it drops
            // the references its indirect segments took.
            Head::Made => unsafe { sys::rte_pktmbuf_free(h) },
        }
    }

    /// The handle a frame came from, once the PMD took it: its own mbuf's
    /// reference went with the frame.
    pub(crate) fn sent(buf: Mbuf, kind: Head) {
        let (mem, tail) = buf.into_parts();
        if let Some((t, ..)) = tail {
            t.put();
        }
        // With `Own`, the PMD frees the mbuf after sending it.
        if kind == Head::Made {
            mem.put();
        }
    }
}
