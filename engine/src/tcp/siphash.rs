//! SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
//! 2012): the keyed pseudo-random function behind the ISN generator
//! (RFC 6528 §3) and SYN cookies (RFC 4987 §3.6).
//!
//! Written here rather than taken from a crate so the engine has no runtime
//! dependency for it; checked against the paper's reference vectors and
//! against `core::hash::SipHasher` (also SipHash-2-4) in the tests.

use core::fmt;

/// A SipHash-2-4 instance bound to a 128-bit secret key.
///
/// `Debug` never prints the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SipHasher24 {
    k0: u64,
    k1: u64,
}

impl SipHasher24 {
    /// A hasher keyed with `key` (the paper's byte order: `k0` is the first
    /// eight bytes, little-endian).
    pub fn new(key: [u8; 16]) -> Self {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&key[..8]);
        k1.copy_from_slice(&key[8..]);
        SipHasher24 {
            k0: u64::from_le_bytes(k0),
            k1: u64::from_le_bytes(k1),
        }
    }

    /// SipHash-2-4 of `msg`.
    pub fn hash(&self, msg: &[u8]) -> u64 {
        let mut v = [
            self.k0 ^ 0x736f_6d65_7073_6575,
            self.k1 ^ 0x646f_7261_6e64_6f6d,
            self.k0 ^ 0x6c79_6765_6e65_7261,
            self.k1 ^ 0x7465_6462_7974_6573,
        ];
        let mut blocks = msg.chunks_exact(8);
        for block in &mut blocks {
            let m = le_u64(block);
            v[3] ^= m;
            sip_round(&mut v);
            sip_round(&mut v);
            v[0] ^= m;
        }
        // Last block: the remaining bytes, with the message length (mod 256)
        // in the top byte.
        let last = le_u64(blocks.remainder()) | ((msg.len() as u64) << 56);
        v[3] ^= last;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= last;
        v[2] ^= 0xff;
        for _ in 0..4 {
            sip_round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

impl fmt::Debug for SipHasher24 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SipHasher24 { key: <redacted> }")
    }
}

/// Up to eight bytes, little-endian, zero-padded.
fn le_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(bytes) {
        *d = *s;
    }
    u64::from_le_bytes(b)
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference_key() -> SipHasher24 {
        let mut key = [0u8; 16];
        for (i, b) in key.iter_mut().enumerate() {
            *b = i as u8;
        }
        SipHasher24::new(key)
    }

    /// The first entries of `vectors_sip64` from the SipHash reference
    /// implementation: key 00..0f, message 00..(n-1) for n = 0, 1, 2, ...,
    /// output bytes as listed there (little-endian).
    const VECTORS: [[u8; 8]; 16] = [
        [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72],
        [0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74],
        [0x5a, 0x4f, 0xa9, 0xd9, 0x09, 0x80, 0x6c, 0x0d],
        [0x2d, 0x7e, 0xfb, 0xd7, 0x96, 0x66, 0x67, 0x85],
        [0xb7, 0x87, 0x71, 0x27, 0xe0, 0x94, 0x27, 0xcf],
        [0x8d, 0xa6, 0x99, 0xcd, 0x64, 0x55, 0x76, 0x18],
        [0xce, 0xe3, 0xfe, 0x58, 0x6e, 0x46, 0xc9, 0xcb],
        [0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab],
        [0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93],
        [0xb0, 0xe4, 0xa9, 0x0b, 0xdf, 0x82, 0x00, 0x9e],
        [0xf3, 0xb9, 0xdd, 0x94, 0xc5, 0xbb, 0x5d, 0x7a],
        [0xa7, 0xad, 0x6b, 0x22, 0x46, 0x2f, 0xb3, 0xf4],
        [0xfb, 0xe5, 0x0e, 0x86, 0xbc, 0x8f, 0x1e, 0x75],
        [0x90, 0x3d, 0x84, 0xc0, 0x27, 0x56, 0xea, 0x14],
        [0xee, 0xf2, 0x7a, 0x8e, 0x90, 0xca, 0x23, 0xf7],
        [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1],
    ];

    #[test]
    fn reference_vectors() {
        let h = reference_key();
        let msg: Vec<u8> = (0u8..64).collect();
        for (n, want) in VECTORS.iter().enumerate() {
            assert_eq!(h.hash(&msg[..n]), u64::from_le_bytes(*want), "length {n}");
        }
    }

    #[test]
    fn paper_appendix_example() {
        // Appendix A of the paper: 15-byte message 00..0e.
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(reference_key().hash(&msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn debug_hides_the_key() {
        let s = format!("{:?}", SipHasher24::new([0xab; 16]));
        assert!(!s.contains("ab") && !s.contains("171"), "{s}");
    }

    proptest! {
        /// Differential test against the standard library's SipHash-2-4.
        #[test]
        fn matches_core_siphasher(key in any::<[u8; 16]>(), msg in proptest::collection::vec(any::<u8>(), 0..100)) {
            #[allow(deprecated)]
            let mut reference = core::hash::SipHasher::new_with_keys(
                u64::from_le_bytes(key[..8].try_into().unwrap()),
                u64::from_le_bytes(key[8..].try_into().unwrap()),
            );
            core::hash::Hasher::write(&mut reference, &msg);
            prop_assert_eq!(SipHasher24::new(key).hash(&msg), core::hash::Hasher::finish(&reference));
        }
    }
}
