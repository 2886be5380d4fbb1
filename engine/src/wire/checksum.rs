//! The Internet checksum (RFC 1071, RFC 1624) and the checksum capabilities of
//! a port.
//!
//! Sums here are ones'-complement sums of big-endian 16-bit words, folded to 16
//! bits and NOT inverted; [`finish`] inverts a sum into the value stored in a
//! header. A received header verifies when the sum over it (checksum field
//! included) is `0xffff`.
//!
//! Nothing here panics, on any input.

use std::net::Ipv4Addr;

/// Who handles one protocol's checksum: software in each direction, or the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    /// Software verifies received and computes transmitted checksums.
    #[default]
    Both,
    /// Software verifies on receive; the NIC fills it in on transmit.
    Rx,
    /// Software computes on transmit; the NIC has verified it on receive.
    Tx,
    /// The NIC verifies and computes: software trusts it and leaves the field.
    None,
}

impl Checksum {
    /// Whether software must verify received checksums.
    pub fn verify_rx(self) -> bool {
        matches!(self, Checksum::Both | Checksum::Rx)
    }
    /// Whether software must compute transmitted checksums.
    pub fn compute_tx(self) -> bool {
        matches!(self, Checksum::Both | Checksum::Tx)
    }
}

/// Checksum handling per protocol, as a port's offloads allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChecksumCaps {
    /// IPv4 header checksum.
    pub ipv4: Checksum,
    /// TCP checksum (with pseudo-header).
    pub tcp: Checksum,
    /// ICMPv4 checksum.
    pub icmpv4: Checksum,
}

impl ChecksumCaps {
    /// Software does everything: the safe choice for devices with no offload.
    pub const SOFTWARE: ChecksumCaps = ChecksumCaps {
        ipv4: Checksum::Both,
        tcp: Checksum::Both,
        icmpv4: Checksum::Both,
    };
}

/// Folds a 64-bit ones'-complement accumulator to 16 bits (end-around carry).
#[inline]
fn fold64(acc: u64) -> u16 {
    // RFC 1071 §2(C): carries out of bit 15 are added back in (deferred carries).
    let acc = (acc & 0xffff_ffff) + (acc >> 32); // <= 0x1_ffff_fffe
    let acc = (acc & 0xffff_ffff) + (acc >> 32); // <= 0xffff_ffff
    let acc = (acc & 0xffff) + (acc >> 16); // <= 0x1_fffe
    let acc = (acc & 0xffff) + (acc >> 16); // <= 0xffff
    acc as u16
}

/// Sums `data` as native-endian 32-bit words into a 64-bit accumulator.
///
/// Each word is added zero-extended, so the accumulator cannot overflow for
/// fewer than 2^32 words; [`sum`] feeds at most [`BLOCK`] bytes per call.
/// Eight independent lanes let the compiler vectorise the loop.
#[inline]
fn sum_block(data: &[u8]) -> u64 {
    let mut lanes = [0u64; 8];
    let mut chunks = data.chunks_exact(32);
    for chunk in &mut chunks {
        for (lane, w) in lanes.iter_mut().zip(chunk.chunks_exact(4)) {
            *lane += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    let mut acc: u64 = lanes.iter().sum();
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    // RFC 1071 §4.1: an odd trailing byte is padded with a zero byte on the
    // right, which the zero-filled word does for 1 to 3 trailing bytes.
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut w = [0u8; 4];
        w[..tail.len()].copy_from_slice(tail);
        acc += u64::from(u32::from_ne_bytes(w));
    }
    acc
}

/// Bytes summed per accumulator before folding: far below the 2^34 bytes at
/// which [`sum_block`]'s 64-bit accumulator could overflow.
const BLOCK: usize = 1 << 30;

/// The ones'-complement sum of `data` as big-endian 16-bit words, folded to 16
/// bits, not inverted. Odd lengths are padded with a zero byte (RFC 1071 §4.1).
///
/// Word at a time: native-endian 32-bit words into 64-bit lanes, folded once
/// at the end. RFC 1071 §2(B): the sum is byte-order independent, so a sum of
/// native-order words is the byte-swap of the big-endian sum. Any length and
/// any alignment; equal to [`reference_sum`] on every input.
pub fn sum(data: &[u8]) -> u16 {
    let mut total = 0u64;
    for block in data.chunks(BLOCK) {
        total += u64::from(fold64(sum_block(block)));
    }
    // Each block sums at a multiple of 4 bytes from the start, so word
    // boundaries line up across blocks.
    let folded = fold64(total);
    if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    }
}

/// The plain RFC 1071 §4.1 loop: big-endian byte pairs into a 32-bit
/// accumulator with carries folded back. The reference [`sum`] is tested
/// against.
pub fn reference_sum(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    let mut pairs = data.chunks_exact(2);
    for p in &mut pairs {
        acc += u32::from(u16::from_be_bytes([p[0], p[1]]));
        // Fold before the accumulator can overflow.
        if acc & 0x8000_0000 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = pairs.remainder() {
        acc += u32::from(*last) << 8;
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Ones'-complement sum of partial sums (RFC 1071 §2(C): sums of parts add up
/// to the sum of the whole, when each part starts at an even offset).
pub fn combine(sums: &[u16]) -> u16 {
    let acc: u64 = sums.iter().map(|&s| u64::from(s)).sum();
    fold64(acc)
}

/// The value to store in a checksum field for a sum: its ones' complement.
#[inline]
pub fn finish(sum: u16) -> u16 {
    !sum
}

/// Sum of the IPv4 pseudo-header (RFC 9293 §3.1: source, destination, zero,
/// protocol, TCP length), not inverted. `length` is the transport segment
/// length (header plus payload).
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    let acc = u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol)
        + u64::from(length >> 16)
        + u64::from(length & 0xffff);
    fold64(acc)
}

/// Incremental update of a stored checksum when one 16-bit word of the
/// covered data changes from `old` to `new`.
///
/// RFC 1624 §3, eqn. 3: `HC' = ~(~HC + ~m + m')` (eqn. 2 gets the -0 case
/// wrong). The result can differ from a full recomputation only in how zero
/// is written (0x0000 or 0xffff); both verify unless every covered byte is
/// zero, which no real header is.
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !combine(&[!checksum, !old, new])
}

/// [`update_u16`] for a 32-bit field (an IPv4 address, a sequence number).
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    !combine(&[
        !checksum,
        !((old >> 16) as u16),
        !(old as u16),
        (new >> 16) as u16,
        new as u16,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SplitMix64: a seeded generator, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next() as u8;
            }
        }
    }

    #[test]
    fn rfc1071_worked_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(reference_sum(&data), 0xddf2);
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(finish(sum(&data)), 0x220d);
    }

    #[test]
    fn ipv4_header_example() {
        // A well-known IPv4 header whose checksum is b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(sum(&hdr)), 0xb861);
    }

    #[test]
    fn edge_cases() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0xff; 64]), 0xffff);
        assert_eq!(sum(&[0xff; 65535]), reference_sum(&[0xff; 65535]));
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[]), 0);
    }

    #[test]
    fn differential_every_length_and_alignment() {
        // Fast vs reference on every length 0..2048 at start offsets 0..8 (the
        // slice's alignment), with random contents and with all-0xff (maximal
        // carries).
        let mut rng = Rng(0x5eed_c0de);
        let mut buf = vec![0u8; 2048 + 8];
        for len in 0..2048 {
            rng.fill(&mut buf);
            for off in 0..8 {
                let data = &buf[off..off + len];
                assert_eq!(sum(data), reference_sum(data), "len {len} offset {off}");
            }
        }
        let ones = vec![0xffu8; 2048 + 8];
        for len in 0..2048 {
            for off in [0, 1, 3] {
                let data = &ones[off..off + len];
                assert_eq!(sum(data), reference_sum(data), "ones len {len} off {off}");
            }
        }
    }

    #[test]
    fn differential_large() {
        let mut rng = Rng(7);
        let mut buf = vec![0u8; 70_000];
        rng.fill(&mut buf);
        for len in [9000, 65535, 65536, 69_999] {
            assert_eq!(sum(&buf[..len]), reference_sum(&buf[..len]));
            assert_eq!(sum(&buf[1..len]), reference_sum(&buf[1..len]));
        }
    }

    #[test]
    fn combine_of_parts() {
        let mut rng = Rng(11);
        let mut buf = vec![0u8; 1500];
        rng.fill(&mut buf);
        for split in (0..1500).step_by(2) {
            let whole = sum(&buf);
            assert_eq!(combine(&[sum(&buf[..split]), sum(&buf[split..])]), whole);
        }
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let src = Ipv4Addr::new(192, 168, 1, 2);
        let dst = Ipv4Addr::new(10, 0, 0, 254);
        let mut ph = Vec::new();
        ph.extend_from_slice(&src.octets());
        ph.extend_from_slice(&dst.octets());
        ph.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(pseudo_header(src, dst, 6, 1500), reference_sum(&ph));
    }

    /// Two ones'-complement values are the same number (0 and 0xffff are both
    /// zero).
    fn same(a: u16, b: u16) -> bool {
        a == b || (a | b == 0xffff && (a == 0 || b == 0))
    }

    proptest! {
        #[test]
        fn incremental_update_u16_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 4..200),
            at in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            // Word 0 holds a nonzero constant, so the data is never all zero;
            // words 1 holds the checksum.
            data[0] = 0x45;
            if data.len() % 2 == 1 { data.push(0); }
            let words = data.len() / 2;
            data[2] = 0; data[3] = 0;
            let c = finish(sum(&data));
            data[2..4].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(sum(&data), 0xffff);
            // Change one word other than the first two.
            let w = 2 + at.index(words.max(3) - 2);
            prop_assume!(w < words);
            let old = u16::from_be_bytes([data[2 * w], data[2 * w + 1]]);
            data[2 * w..2 * w + 2].copy_from_slice(&new.to_be_bytes());
            let inc = update_u16(c, old, new);
            data[2] = 0; data[3] = 0;
            let full = finish(sum(&data));
            prop_assert!(same(inc, full), "inc {:04x} full {:04x}", inc, full);
            data[2..4].copy_from_slice(&inc.to_be_bytes());
            prop_assert_eq!(sum(&data), 0xffff);
        }

        #[test]
        fn incremental_update_u32_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 12..100),
            new in any::<u32>(),
        ) {
            // Bytes 0..2 nonzero constant, 2..4 checksum, 8..12 the 32-bit field.
            data[0] = 0x45;
            data[2] = 0; data[3] = 0;
            let c = finish(sum(&data));
            let old = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
            data[8..12].copy_from_slice(&new.to_be_bytes());
            let full = finish(sum(&data));
            let inc = update_u32(c, old, new);
            prop_assert!(same(inc, full), "inc {:04x} full {:04x}", inc, full);
            data[2..4].copy_from_slice(&inc.to_be_bytes());
            prop_assert_eq!(sum(&data), 0xffff);
        }

        #[test]
        fn fast_equals_reference(data in proptest::collection::vec(any::<u8>(), 0..4096), off in 0usize..16) {
            let off = off.min(data.len());
            prop_assert_eq!(sum(&data[off..]), reference_sum(&data[off..]));
        }
    }
}
