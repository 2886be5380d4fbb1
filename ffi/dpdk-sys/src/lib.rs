//! Raw bindings to the system's DPDK (found with `pkg-config libdpdk`, 22.11
//! or later), generated at build time by bindgen from the installed headers.
//!
//! Only what the engine's DPDK port uses is bound (an allowlist in
//! `build.rs`). DPDK's fast path (`rte_eth_rx_burst`, `rte_eth_tx_burst`,
//! `rte_pktmbuf_alloc`, `rte_pktmbuf_free`, `rte_mbuf_refcnt_update`,
//! `rte_pktmbuf_attach`, ...) is `static inline` in the headers: a generated
//! C file re-exports each one, and the bindings call it under its own
//! name. What a macro hides (`rte_errno`, flags built with `RTE_BIT64`) and
//! fields inside anonymous unions (the link's bitfields, the TX offload
//! lengths) go through the small C shim in `csrc/shim.c`.
//!
//! The mbuf fields the port reads and writes are reached through [`mbuf`],
//! by offsets the C compiler computed for the installed release: DPDK 24.03
//! moved several of them into anonymous unions, which renames them in
//! generated bindings.
//!
//! Everything here is `unsafe` and follows DPDK's own rules; the safe layer
//! is `wirespeed::port::dpdk`.

#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    missing_debug_implementations,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use bindings::*;

/// The calling thread's `rte_errno` (a thread-local variable behind a
/// macro in DPDK's headers).
#[inline]
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local integer; no precondition.
    unsafe { wirespeed_rte_errno() }
}

/// DPDK's message for `errno` (an `rte_errno` value or a plain errno).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string in
    // static or thread-local storage, valid until the next call on this
    // thread; it is copied out at once.
    let p = unsafe { rte_strerror(errno) };
    if p.is_null() {
        return format!("error {errno}");
    }
    // SAFETY: `p` is non-null and NUL-terminated (above).
    unsafe { core::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// The DPDK version the process runs with ("DPDK 22.11.11").
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated
    // string; it needs no initialised EAL.
    let p = unsafe { rte_version() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: `p` is non-null and NUL-terminated (above).
    unsafe { core::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// The mbuf fields the port uses, by the offsets the C compiler computed
/// (`enum wirespeed_mbuf_layout` in the shim).
///
/// Every function takes a pointer to a valid `struct rte_mbuf`; writers
/// need the mbuf to be the caller's alone (no other thread or PMD using
/// it).
pub mod mbuf {
    use super::*;
    use core::ffi::c_void;

    // The sizes the accessors below read and write, checked against what
    // the installed headers declare.
    const _: () = assert!(WIRESPEED_MBUF_SIZE_buf_addr as usize == size_of::<*mut c_void>());
    const _: () = assert!(WIRESPEED_MBUF_SIZE_data_off == 2);
    const _: () = assert!(WIRESPEED_MBUF_SIZE_nb_segs == 2);
    const _: () = assert!(WIRESPEED_MBUF_SIZE_ol_flags == 8);
    const _: () = assert!(WIRESPEED_MBUF_SIZE_pkt_len == 4);
    const _: () = assert!(WIRESPEED_MBUF_SIZE_data_len == 2);
    const _: () = assert!(WIRESPEED_MBUF_SIZE_buf_len == 2);
    const _: () = assert!(WIRESPEED_MBUF_SIZE_pool as usize == size_of::<*mut rte_mempool>());
    const _: () = assert!(WIRESPEED_MBUF_SIZE_next as usize == size_of::<*mut rte_mbuf>());
    // Two cache lines, as DPDK itself asserts, and bindgen's view agrees.
    const _: () = assert!(WIRESPEED_MBUF_SIZE == 128);
    const _: () = assert!(size_of::<rte_mbuf>() == WIRESPEED_MBUF_SIZE as usize);

    macro_rules! field {
        ($(#[$doc:meta])* $get:ident, $set:ident, $off:ident, $ty:ty) => {
            $(#[$doc])*
            ///
            /// # Safety
            /// `m` points to a valid mbuf.
            #[inline]
            pub unsafe fn $get(m: *const rte_mbuf) -> $ty {
                // SAFETY: the field lies at this offset inside the mbuf,
                // naturally aligned (C's layout), with this size (checked
                // above); `m` is valid per the caller.
                unsafe { m.cast::<u8>().add($off as usize).cast::<$ty>().read() }
            }

            /// Sets the field read by the function of the same name.
            ///
            /// # Safety
            /// `m` points to a valid mbuf that is the caller's alone.
            #[inline]
            pub unsafe fn $set(m: *mut rte_mbuf, v: $ty) {
                // SAFETY: as above, and nobody else uses the mbuf.
                unsafe { m.cast::<u8>().add($off as usize).cast::<$ty>().write(v) }
            }
        };
    }

    field!(
        /// First byte of the segment's data buffer.
        buf_addr, set_buf_addr, WIRESPEED_MBUF_OFF_buf_addr, *mut c_void
    );
    field!(
        /// Start of the data, from `buf_addr`.
        data_off, set_data_off, WIRESPEED_MBUF_OFF_data_off, u16
    );
    field!(
        /// Segments in the chain (first segment only).
        nb_segs, set_nb_segs, WIRESPEED_MBUF_OFF_nb_segs, u16
    );
    field!(
        /// Offload flags (`RTE_MBUF_F_*`).
        ol_flags, set_ol_flags, WIRESPEED_MBUF_OFF_ol_flags, u64
    );
    field!(
        /// Bytes in the whole chain (first segment only).
        pkt_len, set_pkt_len, WIRESPEED_MBUF_OFF_pkt_len, u32
    );
    field!(
        /// Bytes of data in this segment.
        data_len, set_data_len, WIRESPEED_MBUF_OFF_data_len, u16
    );
    field!(
        /// Size of the segment's data buffer.
        buf_len, set_buf_len, WIRESPEED_MBUF_OFF_buf_len, u16
    );
    field!(
        /// The mempool the mbuf came from.
        pool, set_pool, WIRESPEED_MBUF_OFF_pool, *mut rte_mempool
    );
    field!(
        /// The next segment, or null.
        next, set_next, WIRESPEED_MBUF_OFF_next, *mut rte_mbuf
    );

    /// `rte_pktmbuf_mtod(m, u8 *)`: the first byte of the segment's data
    /// (a macro in C: `buf_addr + data_off`).
    ///
    /// # Safety
    /// `m` points to a valid mbuf.
    #[inline]
    pub unsafe fn mtod(m: *const rte_mbuf) -> *mut u8 {
        // SAFETY: valid per the caller.
        let base = unsafe { buf_addr(m) }.cast::<u8>();
        // SAFETY: as above.
        let off = unsafe { data_off(m) };
        base.wrapping_add(usize::from(off))
    }

    /// Makes `m` a lone segment with the data window `[off, off + len)`,
    /// and clears every offload flag but those that say what kind of mbuf
    /// it is (indirect, external buffer), so no receive flag is read as a
    /// transmit request.
    ///
    /// # Safety
    /// `m` points to a valid mbuf that is the caller's alone, and the
    /// window lies inside its data buffer.
    #[inline]
    pub unsafe fn set_single_segment(m: *mut rte_mbuf, off: u16, len: u16) {
        let kind = RTE_MBUF_F_INDIRECT | RTE_MBUF_F_EXTERNAL;
        // SAFETY: `m` is valid and the caller's alone (all calls below).
        unsafe { set_data_off(m, off) };
        // SAFETY: as above.
        unsafe { set_data_len(m, len) };
        // SAFETY: as above.
        unsafe { set_pkt_len(m, u32::from(len)) };
        // SAFETY: as above.
        unsafe { set_nb_segs(m, 1) };
        // SAFETY: as above.
        unsafe { set_next(m, core::ptr::null_mut()) };
        // SAFETY: as above.
        let flags = unsafe { ol_flags(m) };
        // SAFETY: as above.
        unsafe { set_ol_flags(m, flags & kind) };
    }

    /// Chains `seg` (a lone segment) after `head` (a lone segment): a
    /// two-segment packet.
    ///
    /// # Safety
    /// Both point to valid mbufs that are the caller's alone.
    #[inline]
    pub unsafe fn chain(head: *mut rte_mbuf, seg: *mut rte_mbuf) {
        // SAFETY: both valid and the caller's (all calls below).
        let total = u32::from(unsafe { data_len(head) }) + u32::from(unsafe { data_len(seg) });
        // SAFETY: as above.
        unsafe { set_next(head, seg) };
        // SAFETY: as above.
        unsafe { set_nb_segs(head, 2) };
        // SAFETY: as above.
        unsafe { set_pkt_len(head, total) };
    }

    /// Undoes [`chain`]: returns what followed `head`, which is a lone
    /// segment again.
    ///
    /// # Safety
    /// `head` points to a valid mbuf that is the caller's alone.
    #[inline]
    pub unsafe fn unchain(head: *mut rte_mbuf) -> *mut rte_mbuf {
        // SAFETY: valid and the caller's (all calls below).
        let seg = unsafe { next(head) };
        // SAFETY: as above.
        unsafe { set_next(head, core::ptr::null_mut()) };
        // SAFETY: as above.
        unsafe { set_nb_segs(head, 1) };
        // SAFETY: as above.
        let len = unsafe { data_len(head) };
        // SAFETY: as above.
        unsafe { set_pkt_len(head, u32::from(len)) };
        seg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_reach_the_fields_bindgen_names() {
        // On the installed release (22.11 here) the fields are also named
        // members of bindgen's struct: both views must agree.
        let mut m = rte_mbuf::default();
        let p: *mut rte_mbuf = &mut m;
        // SAFETY: `m` is a local mbuf value, ours alone.
        unsafe { mbuf::set_single_segment(p, 128, 60) };
        assert_eq!(m.data_off, 128);
        assert_eq!((m.data_len, m.pkt_len, m.nb_segs), (60, 60, 1));
        m.buf_len = 2176;
        m.ol_flags = RTE_MBUF_F_INDIRECT | RTE_MBUF_F_TX_IP_CKSUM;
        // SAFETY: as above.
        unsafe { mbuf::set_single_segment(p, 64, 10) };
        assert_eq!(m.ol_flags, RTE_MBUF_F_INDIRECT);
        // SAFETY: as above.
        assert_eq!(unsafe { mbuf::buf_len(p) }, 2176);
        let mut seg = rte_mbuf {
            data_len: 5,
            ..Default::default()
        };
        // SAFETY: both local values.
        unsafe { mbuf::chain(p, &mut seg) };
        assert_eq!((m.nb_segs, m.pkt_len), (2, 15));
        assert_eq!(m.next, &mut seg as *mut rte_mbuf);
        // SAFETY: as above.
        let undone = unsafe { mbuf::unchain(p) };
        assert_eq!(undone, &mut seg as *mut rte_mbuf);
        assert_eq!(
            (m.nb_segs, m.pkt_len, m.next),
            (1, 10, core::ptr::null_mut())
        );
    }

    #[test]
    fn strerror_and_version_need_no_eal() {
        assert!(version().starts_with("DPDK "), "{}", version());
        assert_eq!(strerror(22), "Invalid argument");
    }
}
