//! The flow table's hash: keyed, fast, and not steerable by peers.
//!
//! A worker's flow table maps a [`FourTuple`](super::FourTuple) to its
//! connection in O(1). `std`'s SipHash is sound but slow for a 12-byte key;
//! an unkeyed multiply hash (Fx) is fast but lets a peer choose 4-tuples that
//! collide and turn lookups linear (hash flooding). [`FlowHashBuilder`] sits
//! between: a folded 64×64→128-bit multiply per word, keyed with a secret the
//! runtime draws at start, so a peer that cannot read the key cannot aim its
//! collisions.

use core::hash::{BuildHasher, Hasher};

/// Multiplies two words into 128 bits and folds the halves together.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Builds [`FlowHasher`]s with one secret key.
#[derive(Clone, Copy)]
pub struct FlowHashBuilder {
    k0: u64,
    k1: u64,
}

impl core::fmt::Debug for FlowHashBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FlowHashBuilder { .. }")
    }
}

impl FlowHashBuilder {
    /// A builder keyed with `secret` (16 random bytes from the runtime).
    pub fn new(secret: [u8; 16]) -> Self {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&secret[..8]);
        k1.copy_from_slice(&secret[8..]);
        // Odd multipliers keep every key bit in play.
        FlowHashBuilder {
            k0: u64::from_le_bytes(k0),
            k1: u64::from_le_bytes(k1) | 1,
        }
    }
}

impl BuildHasher for FlowHashBuilder {
    type Hasher = FlowHasher;
    fn build_hasher(&self) -> FlowHasher {
        FlowHasher {
            state: self.k0,
            key: self.k1,
        }
    }
}

/// One hash computation; see the module documentation.
#[derive(Debug)]
pub struct FlowHasher {
    state: u64,
    key: u64,
}

impl FlowHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = folded_multiply(self.state ^ word, self.key);
    }
}

impl Hasher for FlowHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    fn finish(&self) -> u64 {
        // One more round so the last word's high bits reach the low ones,
        // which hashbrown uses for bucket selection.
        folded_multiply(self.state, self.key.rotate_left(29) | 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::FourTuple;
    use core::net::Ipv4Addr;
    use std::collections::HashSet;

    fn tuple(i: u32) -> FourTuple {
        FourTuple {
            local_addr: Ipv4Addr::new(198, 18, 0, 1),
            local_port: 80,
            remote_addr: Ipv4Addr::from(0xc612_0000 | (i >> 16)),
            remote_port: i as u16,
        }
    }

    #[test]
    fn same_key_same_hash_other_key_other_hash() {
        let a = FlowHashBuilder::new([1; 16]);
        let b = FlowHashBuilder::new([2; 16]);
        let t = tuple(7);
        assert_eq!(a.hash_one(t), a.hash_one(t));
        assert_ne!(a.hash_one(t), b.hash_one(t));
    }

    #[test]
    fn sequential_ports_spread_over_buckets() {
        // 2^16 tuples that differ only in the remote port (a load
        // generator's pattern) must fill 4096 buckets evenly.
        let h = FlowHashBuilder::new(*b"0123456789abcdef");
        let mut buckets = vec![0u32; 4096];
        for i in 0..65536 {
            buckets[(h.hash_one(tuple(i)) & 4095) as usize] += 1;
        }
        let max = *buckets.iter().max().unwrap();
        let min = *buckets.iter().min().unwrap();
        assert!(max <= 40 && min >= 1, "bucket load {min}..{max}, mean 16");
        let distinct: HashSet<u64> = (0..65536).map(|i| h.hash_one(tuple(i))).collect();
        assert_eq!(distinct.len(), 65536);
    }

    #[test]
    fn tail_length_is_part_of_the_hash() {
        let h = FlowHashBuilder::new([9; 16]);
        let mut a = h.build_hasher();
        a.write(b"ab");
        let mut b = h.build_hasher();
        b.write(b"ab\0");
        assert_ne!(a.finish(), b.finish());
    }
}
