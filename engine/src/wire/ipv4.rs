//! IPv4 (RFC 791).
//!
//! Contract: once [`Ipv4Packet::check_len`] has succeeded, no accessor panics;
//! [`Ipv4Repr::parse`] never panics; [`Ipv4Repr::emit`] never panics on a
//! buffer of at least [`Ipv4Repr::header_len`] (20) bytes (it writes the
//! header only: the payload is the caller's).
//!
//! The engine never fragments and never reassembles: emitted packets carry DF
//! and no options, and parsed fragments are refused with [`Error::Fragment`]
//! so callers can count them apart from malformed packets. Options in
//! received packets are skipped by IHL.

use std::net::Ipv4Addr;

use super::checksum;
use super::{read_u16, ChecksumCaps, Error};

/// TTL of the packets the engine sends (the common Linux default).
pub const DEFAULT_TTL: u8 = 64;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// Largest payload behind a 20-byte header (total length is 16 bits).
pub const MAX_PAYLOAD_LEN: usize = 65535 - HEADER_LEN;

/// Byte ranges of the IPv4 header.
pub mod field {
    use core::ops::Range;
    /// Version (high nibble) and IHL (low nibble, in 32-bit words).
    pub const VER_IHL: usize = 0;
    /// DSCP (6 bits) and ECN (2 bits).
    pub const DSCP_ECN: usize = 1;
    /// Total length, header included.
    pub const LENGTH: Range<usize> = 2..4;
    /// Identification.
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (3 bits) and fragment offset (13 bits, in 8-byte units).
    pub const FLG_OFF: Range<usize> = 6..8;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol of the payload.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: Range<usize> = 10..12;
    /// Source address.
    pub const SRC_ADDR: Range<usize> = 12..16;
    /// Destination address.
    pub const DST_ADDR: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// The protocol field (IANA protocol numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// ICMP, 1.
    Icmp,
    /// TCP, 6.
    Tcp,
    /// UDP, 17.
    Udp,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> Self {
        match v {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(other) => other,
        }
    }
}

fn addr(bytes: Option<&[u8]>) -> Ipv4Addr {
    match bytes {
        Some([a, b, c, d]) => Ipv4Addr::new(*a, *b, *c, *d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer and checks its lengths.
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the length fields against each other and the buffer:
    /// buffer < 20 and header or total length past the buffer are
    /// [`Error::Truncated`]; IHL < 5 and total length < header length are
    /// [`Error::Malformed`]. The buffer may be longer than the total length
    /// (Ethernet padding).
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        // RFC 791 §3.1: IHL is at least 5 words.
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if total_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    fn u16_at(&self, at: usize) -> u16 {
        read_u16(self.buffer.as_ref(), at).unwrap_or(0)
    }

    /// Version (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.byte(field::VER_IHL) >> 4
    }

    /// Header length in bytes, from IHL (options included).
    pub fn header_len(&self) -> usize {
        usize::from(self.byte(field::VER_IHL) & 0x0f) * 4
    }

    /// DSCP and ECN byte (formerly type of service).
    pub fn dscp_ecn(&self) -> u8 {
        self.byte(field::DSCP_ECN)
    }

    /// Total length, header included.
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH.start)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT.start)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF.start) & OFFSET_MASK) << 3
    }

    /// Whether this is a fragment: MF set or a nonzero offset (RFC 791 §3.2).
    pub fn is_fragment(&self) -> bool {
        self.u16_at(field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.byte(field::TTL)
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        self.byte(field::PROTOCOL).into()
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM.start)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref().get(field::SRC_ADDR))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref().get(field::DST_ADDR))
    }

    /// Option bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        let end = self.header_len();
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// Whether the header checksum (options included) is correct.
    pub fn verify_checksum(&self) -> bool {
        match self.buffer.as_ref().get(..self.header_len()) {
            Some(h) => checksum::sum(h) == 0xffff,
            None => false,
        }
    }

    /// The payload: from the end of the header (IHL) to the total length. Any
    /// bytes past the total length (Ethernet padding) are not included.
    pub fn payload(&self) -> &[u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        self.buffer.as_ref().get(start..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn set_u16(&mut self, at: usize, v: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the version.
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        self.set_u16(field::LENGTH.start, v);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        self.set_u16(field::IDENT.start, v);
    }

    /// Clears the flags and fragment offset.
    pub fn clear_flags(&mut self) {
        self.set_u16(field::FLG_OFF.start, 0);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let old = self.u16_at(field::FLG_OFF.start);
        self.set_u16(
            field::FLG_OFF.start,
            if on { old | flag } else { old & !flag },
        );
    }

    /// Sets Don't Fragment.
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on);
    }

    /// Sets More Fragments.
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on);
    }

    /// Sets the fragment offset in bytes (rounded down to 8).
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let old = self.u16_at(field::FLG_OFF.start);
        self.set_u16(
            field::FLG_OFF.start,
            (old & !OFFSET_MASK) | ((bytes >> 3) & OFFSET_MASK),
        );
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = v.into();
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16(field::CHECKSUM.start, v);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&v.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&v.octets());
    }

    /// Computes and stores the header checksum (options included).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let sum = match self.buffer.as_ref().get(..hl) {
            Some(h) => checksum::sum(h),
            None => return,
        };
        self.set_checksum(checksum::finish(sum));
    }

    /// The payload (header end to total length), writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        self.buffer.as_mut().get_mut(start..end).unwrap_or(&mut [])
    }
}

/// A parsed IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN byte.
    pub dscp_ecn: u8,
    /// Identification. With DF set it only needs to be unique enough for
    /// duplicate detection (RFC 6864 §4.1).
    pub ident: u16,
}

impl Ipv4Repr {
    /// Parses and validates a header. Version other than 4 is
    /// [`Error::Malformed`]; a bad checksum, when `caps.ipv4` says software
    /// verifies, is [`Error::Checksum`]; a fragment is [`Error::Fragment`].
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Ipv4Packet<T>,
        caps: &ChecksumCaps,
    ) -> Result<Ipv4Repr, Error> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::Malformed);
        }
        if caps.ipv4.verify_rx() && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        // RFC 791 §3.2: MF or a nonzero offset marks a fragment. We do not
        // reassemble (RFC 1122 §3.3.2 allows a host to not support it).
        if packet.is_fragment() {
            return Err(Error::Fragment);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
        })
    }

    /// Header length of emitted packets: 20, no options.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the whole packet: header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header into the first 20 bytes of the buffer: IHL 5, DF set,
    /// offset 0. The checksum is computed when `caps.ipv4` says software
    /// computes; otherwise it is left zero for the NIC to fill.
    ///
    /// `payload_len` should be at most [`MAX_PAYLOAD_LEN`]; larger values
    /// are written as total length 65535.
    ///
    /// # Panics
    /// If the buffer is shorter than 20 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
        caps: &ChecksumCaps,
    ) {
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp_ecn(self.dscp_ecn);
        let total = HEADER_LEN.saturating_add(self.payload_len).min(65535) as u16;
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        packet.clear_flags();
        // We never fragment: DF lets path MTU discovery work (RFC 1191).
        packet.set_dont_frag(true);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        if caps.ipv4.compute_tx() {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Checksum;
    use proptest::prelude::*;

    // Header of a ping request 192.168.1.10 -> 8.8.8.8 as Linux sends it,
    // then 8 bytes of ICMP (type 8, code 0, ...).
    static PING: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x1a, 0x2b, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0xc0, 0xa8, 0x01,
        0x0a, 0x08, 0x08, 0x08, 0x08, // header, checksum filled in below
        0x08, 0x00, 0xf7, 0xff, 0x00, 0x00, 0x00, 0x00, // ICMP echo, id 0 seq 0
    ];

    fn fixture() -> [u8; 28] {
        let mut b = PING;
        let c = checksum::finish(checksum::sum(&b[..20]));
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    fn fixture_repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 1, 10),
            dst_addr: Ipv4Addr::new(8, 8, 8, 8),
            protocol: IpProtocol::Icmp,
            payload_len: 8,
            ttl: 64,
            dscp_ecn: 0,
            ident: 0x1a2b,
        }
    }

    #[test]
    fn deconstruct() {
        let b = fixture();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1a2b);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::Icmp);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(8, 8, 8, 8));
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &PING[20..]);
        assert!(p.options().is_empty());
    }

    #[test]
    fn known_checksum() {
        // 45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7: a
        // header whose published checksum is b861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let mut buf = [0u8; 0x73];
        buf[..20].copy_from_slice(&h);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        let mut out = [0u8; 20];
        Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).unwrap().emit(
            &mut Ipv4Packet::new_unchecked(&mut out[..]),
            &ChecksumCaps::SOFTWARE,
        );
        assert_eq!(out, h);
    }

    #[test]
    fn parse_and_construct() {
        let b = fixture();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).unwrap(),
            fixture_repr()
        );
        let mut out = [0u8; 28];
        out[20..].copy_from_slice(&PING[20..]);
        fixture_repr().emit(
            &mut Ipv4Packet::new_unchecked(&mut out[..]),
            &ChecksumCaps::SOFTWARE,
        );
        assert_eq!(out, b);
    }

    #[test]
    fn emit_offloaded_leaves_checksum_zero() {
        let caps = ChecksumCaps {
            ipv4: Checksum::Rx,
            ..ChecksumCaps::SOFTWARE
        };
        let mut out = [0xffu8; 20];
        fixture_repr().emit(&mut Ipv4Packet::new_unchecked(&mut out[..]), &caps);
        assert_eq!(&out[10..12], &[0, 0]);
    }

    #[test]
    fn truncated_every_length() {
        let b = fixture();
        for len in 0..b.len() {
            let p = Ipv4Packet::new_unchecked(&b[..len]);
            assert_eq!(p.check_len(), Err(Error::Truncated), "len {len}");
            assert_eq!(
                Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE),
                Err(Error::Truncated)
            );
        }
    }

    #[test]
    fn bad_lengths() {
        let mut b = fixture();
        b[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Malformed)
        );
        b[0] = 0x46; // IHL 6: 24 bytes of header, fits, total 28 fine
        assert!(Ipv4Packet::new_checked(&b[..]).is_ok());
        b[0] = 0x48; // IHL 8: 32 > 28 buffer
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Truncated)
        );
        let mut b = fixture();
        b[3] = 19; // total length < header length
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Malformed)
        );
        b[3] = 29; // total length > buffer
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn bad_version() {
        let mut b = fixture();
        b[0] = 0x65;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn bad_checksum_detected_or_trusted() {
        let mut b = fixture();
        b[11] ^= 0x01;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(
            Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE),
            Err(Error::Checksum)
        );
        // The NIC verified it: software trusts the NIC.
        for ipv4 in [Checksum::Tx, Checksum::None] {
            let caps = ChecksumCaps {
                ipv4,
                ..ChecksumCaps::SOFTWARE
            };
            assert_eq!(Ipv4Repr::parse(&p, &caps), Ok(fixture_repr()));
        }
    }

    #[test]
    fn fragments_refused() {
        for (hi, lo) in [(0x20, 0x00), (0x00, 0x01), (0x20, 0xb9), (0x40, 0x10)] {
            let mut b = fixture();
            b[6] = hi;
            b[7] = lo;
            let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
            p.fill_checksum();
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            assert!(p.is_fragment());
            assert_eq!(
                Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE),
                Err(Error::Fragment)
            );
        }
        let mut b = fixture();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        assert!(p.more_frags() && p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
    }

    #[test]
    fn options_skipped_by_ihl() {
        // IHL 6: a 4-byte Router Alert option (RFC 2113), then the payload.
        let mut b = vec![0x46, 0x00, 0x00, 0x20];
        b.extend_from_slice(&PING[4..20]);
        b.extend_from_slice(&[0x94, 0x04, 0x00, 0x00]);
        b.extend_from_slice(&PING[20..]);
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &PING[20..]);
        let r = Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).unwrap();
        assert_eq!(r, fixture_repr());
    }

    #[test]
    fn ethernet_padding_cut_by_total_len() {
        // 28 bytes of IP in a 46-byte minimum Ethernet payload.
        let mut b = [0u8; 46];
        b[..28].copy_from_slice(&fixture());
        b[28..].fill(0xee);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &PING[20..]);
        assert_eq!(
            Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE)
                .unwrap()
                .payload_len,
            8
        );
    }

    fn arb_repr() -> impl Strategy<Value = Ipv4Repr> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            0usize..=MAX_PAYLOAD_LEN,
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
        )
            .prop_map(
                |(s, d, proto, payload_len, ttl, dscp_ecn, ident)| Ipv4Repr {
                    src_addr: s.into(),
                    dst_addr: d.into(),
                    protocol: proto.into(),
                    payload_len,
                    ttl,
                    dscp_ecn,
                    ident,
                },
            )
    }

    proptest! {
        #[test]
        fn roundtrip(repr in arb_repr()) {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &ChecksumCaps::SOFTWARE);
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.dont_frag());
            prop_assert_eq!(Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).unwrap(), repr);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let p = Ipv4Packet::new_unchecked(&data[..]);
            if p.check_len().is_ok() {
                let _ = (p.payload(), p.options(), p.verify_checksum(), p.src_addr());
            }
            let _ = Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE);
        }
    }
}
