//! Receive-side scaling: the Toeplitz hash, as NICs compute it.
//!
//! A NIC hashes each received IPv4 packet's addresses (and, for TCP and UDP,
//! ports) with the Toeplitz function over a secret key, and looks the hash up
//! in a redirection table (RETA) to pick the receive queue. The engine
//! computes the same hash in software to predict where a flow's packets land
//! (to choose source ports whose replies come back to the sending core), and
//! the in-memory wire uses it to spread frames over queues exactly as a NIC.
//!
//! The function follows Microsoft's RSS specification ("RSS hashing
//! functions"): for every set bit of the input, left to right, XOR in the 32
//! key bits starting at that bit position. Input bytes are, in order: source
//! address, destination address, then source port and destination port, all
//! in network byte order.
//!
//! Key bits past the end of the key read as zero, so input bytes beyond the
//! key's length add nothing (a 40-byte key covers the 36-byte IPv6 4-tuple).
//!
//! Contract: nothing here panics, whatever the input bytes or their length.

/// The key from Microsoft's RSS verification suite, used by default by many
/// NIC drivers. It does **not** give symmetric hashes.
pub const MICROSOFT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// A key whose 16-bit period makes the hash symmetric: swapping source and
/// destination (addresses and ports together) gives the same hash, so both
/// directions of a flow land on the same queue index.
pub const SYMMETRIC_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// The 32 key bits starting at bit `bit` (bit 0 is the key's first, most
/// significant bit); bits past the key's end read as zero.
fn key_window(key: &[u8], bit: usize) -> u32 {
    let byte = bit / 8;
    let shift = bit % 8;
    let mut w: u64 = 0;
    for i in 0..5 {
        w = (w << 8) | u64::from(key.get(byte + i).copied().unwrap_or(0));
    }
    // 40 bits loaded; the window is the top 32 after dropping `shift` bits.
    ((w << shift) >> 8) as u32
}

/// The Toeplitz hash over one key, with a 256-entry table per input byte
/// position: hashing costs one lookup and one XOR per input byte.
#[derive(Clone)]
pub struct Toeplitz {
    key: Vec<u8>,
    /// `tables[i][b]`: the hash contribution of byte value `b` at position `i`.
    tables: Vec<[u32; 256]>,
}

impl core::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Toeplitz").field("key", &self.key).finish()
    }
}

impl Toeplitz {
    /// Precomputes the tables for `key` (any length; NICs use 40 or 52 bytes).
    pub fn new(key: &[u8]) -> Self {
        let mut tables = Vec::with_capacity(key.len());
        for pos in 0..key.len() {
            let mut bits = [0u32; 8];
            for (k, b) in bits.iter_mut().enumerate() {
                // Bit k of the byte (k = 0 is the most significant).
                *b = key_window(key, pos * 8 + k);
            }
            let mut table = [0u32; 256];
            for (value, slot) in table.iter_mut().enumerate() {
                let mut h = 0;
                for (k, b) in bits.iter().enumerate() {
                    if value & (0x80 >> k) != 0 {
                        h ^= b;
                    }
                }
                *slot = h;
            }
            tables.push(table);
        }
        Toeplitz {
            key: key.to_vec(),
            tables,
        }
    }

    /// The key the tables were built from.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The hash of `input` (bytes beyond the key's length contribute nothing).
    pub fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(self.tables.iter())
            .fold(0, |h, (&b, table)| h ^ table[usize::from(b)])
    }

    /// The IPv4 2-tuple hash (hash type "IPv4"): source then destination.
    pub fn hash_ipv4(&self, src: [u8; 4], dst: [u8; 4]) -> u32 {
        let mut input = [0u8; 8];
        input[..4].copy_from_slice(&src);
        input[4..].copy_from_slice(&dst);
        self.hash(&input)
    }

    /// The IPv4 4-tuple hash (hash types "TCP/IPv4", "UDP/IPv4").
    pub fn hash_ipv4_tcp(&self, src: [u8; 4], dst: [u8; 4], src_port: u16, dst_port: u16) -> u32 {
        let mut input = [0u8; 12];
        input[..4].copy_from_slice(&src);
        input[4..8].copy_from_slice(&dst);
        input[8..10].copy_from_slice(&src_port.to_be_bytes());
        input[10..].copy_from_slice(&dst_port.to_be_bytes());
        self.hash(&input)
    }
}

/// The plain bit-by-bit Toeplitz hash of the specification: slow, obviously
/// right, and the reference the table-driven [`Toeplitz`] is tested against.
pub fn toeplitz_reference(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |n: usize| -> u32 {
        key.get(n / 8)
            .map_or(0, |b| u32::from(b >> (7 - (n % 8))) & 1)
    };
    let mut result = 0u32;
    for (i, &byte) in input.iter().enumerate() {
        for k in 0..8 {
            if byte & (0x80 >> k) != 0 {
                let start = i * 8 + k;
                let mut window = 0u32;
                for j in 0..32 {
                    window = (window << 1) | key_bit(start + j);
                }
                result ^= window;
            }
        }
    }
    result
}

/// The queue a NIC picks for `hash`: `reta[hash % reta.len()]`; queue 0
/// when the table is empty.
pub fn queue_for(hash: u32, reta: &[u16]) -> u16 {
    if reta.is_empty() {
        return 0;
    }
    reta[hash as usize % reta.len()]
}

/// A redirection table of `size` entries spreading `queues` queues round
/// robin (entry `i` is queue `i % queues`), as drivers set up by default.
/// With `queues == 0` every entry is queue 0.
pub fn round_robin_reta(size: usize, queues: u16) -> Vec<u16> {
    (0..size)
        .map(|i| {
            if queues == 0 {
                0
            } else {
                (i % usize::from(queues)) as u16
            }
        })
        .collect()
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    let b = frame.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn ipv4_at(frame: &[u8], at: usize) -> Option<[u8; 4]> {
    let b = frame.get(at..at.checked_add(4)?)?;
    Some([b[0], b[1], b[2], b[3]])
}

/// The RSS hash a NIC computes for an Ethernet frame: the IPv4 4-tuple hash
/// for TCP and UDP, the IPv4 2-tuple hash for other protocols, and `None`
/// (the NIC's default queue 0) for anything else: non-IPv4 frames, IPv4
/// fragments (their later pieces carry no ports, so none of them is hashed
/// by ports), truncated or malformed headers. One 802.1Q tag is skipped.
///
/// Reads a few fixed offsets with bounds checks; never panics.
pub fn frame_hash(toeplitz: &Toeplitz, frame: &[u8]) -> Option<u32> {
    let mut l3 = 14;
    let mut ethertype = be16(frame, 12)?;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = be16(frame, 16)?;
        l3 = 18;
    }
    if ethertype != ETHERTYPE_IPV4 {
        return None;
    }
    let ver_ihl = *frame.get(l3)?;
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    if ver_ihl >> 4 != 4 || ihl < 20 || frame.len() < l3 + ihl {
        return None;
    }
    // RFC 791: flags and fragment offset. More-fragments set or a non-zero
    // offset marks a fragment.
    let frag = be16(frame, l3 + 6)?;
    if frag & 0x3fff != 0 {
        return None;
    }
    let proto = *frame.get(l3 + 9)?;
    let src = ipv4_at(frame, l3 + 12)?;
    let dst = ipv4_at(frame, l3 + 16)?;
    match proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let l4 = l3 + ihl;
            let src_port = be16(frame, l4)?;
            let dst_port = be16(frame, l4 + 2)?;
            Some(toeplitz.hash_ipv4_tcp(src, dst, src_port, dst_port))
        }
        _ => Some(toeplitz.hash_ipv4(src, dst)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Ethernet + IPv4 + L4 frame with the given 4-tuple, for tests. The
    /// L4 header holds only ports (8 zero bytes follow); checksums are zero.
    pub(crate) fn ipv4_frame(
        (dst_mac, src_mac): ([u8; 6], [u8; 6]),
        proto: u8,
        src: [u8; 4],
        dst: [u8; 4],
        src_port: u16,
        dst_port: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst_mac);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let total = (20 + 12 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src_port.to_be_bytes());
        f.extend_from_slice(&dst_port.to_be_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(payload);
        f
    }

    /// (destination, source, destination port, source port, IPv4 hash,
    /// TCP/IPv4 hash): the IPv4 rows of Microsoft's RSS verification suite
    /// (also in Intel's 82599 datasheet, 7.1.2.8.3), with [`MICROSOFT_KEY`].
    type Vector = ([u8; 4], [u8; 4], u16, u16, u32, u32);
    const VECTORS: [Vector; 5] = [
        (
            [161, 142, 100, 80],
            [66, 9, 149, 187],
            1766,
            2794,
            0x323e8fc2,
            0x51ccc178,
        ),
        (
            [65, 69, 140, 83],
            [199, 92, 111, 2],
            4739,
            14230,
            0xd718262a,
            0xc626b0ea,
        ),
        (
            [12, 22, 207, 184],
            [24, 19, 198, 95],
            38024,
            12898,
            0xd2d0a5de,
            0x5c2b394a,
        ),
        (
            [209, 142, 163, 6],
            [38, 27, 205, 30],
            2217,
            48228,
            0x82989176,
            0xafc7327f,
        ),
        (
            [202, 188, 127, 2],
            [153, 39, 163, 191],
            1303,
            44251,
            0x5d1809c5,
            0x10e828a2,
        ),
    ];

    #[test]
    fn microsoft_verification_vectors() {
        let t = Toeplitz::new(&MICROSOFT_KEY);
        for (dst, src, dport, sport, h2, h4) in VECTORS {
            assert_eq!(t.hash_ipv4(src, dst), h2, "IPv4 {src:?} -> {dst:?}");
            assert_eq!(
                t.hash_ipv4_tcp(src, dst, sport, dport),
                h4,
                "TCP/IPv4 {src:?}:{sport} -> {dst:?}:{dport}"
            );
            let mut input = [0u8; 12];
            input[..4].copy_from_slice(&src);
            input[4..8].copy_from_slice(&dst);
            input[8..10].copy_from_slice(&sport.to_be_bytes());
            input[10..].copy_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz_reference(&MICROSOFT_KEY, &input), h4);
            assert_eq!(toeplitz_reference(&MICROSOFT_KEY, &input[..8]), h2);
        }
    }

    #[test]
    fn frame_hash_reads_the_tuple() {
        let t = Toeplitz::new(&MICROSOFT_KEY);
        let (dst, src, dport, sport, h2, h4) = VECTORS[0];
        let m = [2, 0, 0, 0, 0, 1];
        let tcp = ipv4_frame((m, m), IPPROTO_TCP, src, dst, sport, dport, b"x");
        assert_eq!(frame_hash(&t, &tcp), Some(h4));
        let udp = ipv4_frame((m, m), IPPROTO_UDP, src, dst, sport, dport, b"");
        assert_eq!(frame_hash(&t, &udp), Some(h4));
        let icmp = ipv4_frame((m, m), 1, src, dst, sport, dport, b"");
        assert_eq!(frame_hash(&t, &icmp), Some(h2));

        // One 802.1Q tag.
        let mut tagged = tcp[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&tcp[12..]);
        assert_eq!(frame_hash(&t, &tagged), Some(h4));

        // IP options move the ports.
        let mut opts = tcp.clone();
        opts[14] = 0x46;
        opts.splice(34..34, [1, 1, 1, 0]);
        assert_eq!(frame_hash(&t, &opts), Some(h4));

        // Fragments, non-IPv4, bad version or IHL: queue 0.
        let mut frag = tcp.clone();
        frag[20] = 0x20; // more fragments
        assert_eq!(frame_hash(&t, &frag), None);
        let mut later = tcp.clone();
        later[21] = 0x10; // offset
        assert_eq!(frame_hash(&t, &later), None);
        let mut arp = tcp.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(frame_hash(&t, &arp), None);
        let mut v6 = tcp.clone();
        v6[14] = 0x65;
        assert_eq!(frame_hash(&t, &v6), None);
        let mut short_ihl = tcp.clone();
        short_ihl[14] = 0x44;
        assert_eq!(frame_hash(&t, &short_ihl), None);
    }

    #[test]
    fn frame_hash_survives_every_truncation() {
        let t = Toeplitz::new(&SYMMETRIC_KEY);
        let m = [2, 0, 0, 0, 0, 1];
        let f = ipv4_frame((m, m), IPPROTO_TCP, [1; 4], [2; 4], 3, 4, b"");
        for len in 0..f.len() {
            let h = frame_hash(&t, &f[..len]);
            // Ports end at byte 38: anything shorter cannot be hashed.
            assert_eq!(h.is_some(), len >= 38, "len {len}");
        }
    }

    #[test]
    fn queue_for_and_reta() {
        assert_eq!(queue_for(7, &[]), 0);
        let reta = round_robin_reta(128, 3);
        assert_eq!(&reta[..5], &[0, 1, 2, 0, 1]);
        assert_eq!(queue_for(130, &reta), reta[2]);
        assert_eq!(round_robin_reta(4, 0), vec![0; 4]);
    }

    #[test]
    fn symmetric_key_is_6d5a() {
        assert!(SYMMETRIC_KEY.chunks(2).all(|c| c == [0x6d, 0x5a]));
    }

    proptest! {
        #[test]
        fn table_matches_reference(
            key in proptest::collection::vec(any::<u8>(), 0..56),
            input in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            prop_assert_eq!(Toeplitz::new(&key).hash(&input), toeplitz_reference(&key, &input));
        }

        #[test]
        fn symmetric_key_is_symmetric(a: [u8; 4], b: [u8; 4], pa: u16, pb: u16) {
            let t = Toeplitz::new(&SYMMETRIC_KEY);
            prop_assert_eq!(t.hash_ipv4_tcp(a, b, pa, pb), t.hash_ipv4_tcp(b, a, pb, pa));
            prop_assert_eq!(t.hash_ipv4(a, b), t.hash_ipv4(b, a));
        }

        #[test]
        fn frame_hash_never_panics(frame in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = frame_hash(&Toeplitz::new(&SYMMETRIC_KEY), &frame);
        }
    }
}
