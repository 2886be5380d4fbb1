//! Ethernet II frames, with at most one IEEE 802.1Q tag.
//!
//! Contract: once [`EthernetFrame::check_len`] has succeeded, no accessor
//! panics; [`EthernetRepr::emit`] never panics on a buffer of at least
//! [`EthernetRepr::header_len`] bytes. [`EthernetRepr::parse`] never panics.
//!
//! A frame whose ethertype is 0x8100 carries a 4-byte 802.1Q tag (TPID, TCI)
//! before the real ethertype; the view skips exactly ONE tag. A double-tagged
//! (QinQ) frame reports [`EtherType::Vlan`] as its ethertype, so upper layers
//! drop it as unsupported. 802.1ad S-tags (0x88a8) are not skipped either.

use super::{read_u16, Error};

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group (multicast) bit is set; broadcast is a group address.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this can be a station's own address (not group, not zero).
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }

    /// The address in the first six bytes of `data`; `None` if shorter.
    pub fn from_bytes(data: &[u8]) -> Option<EthernetAddress> {
        match data.get(..6)? {
            [a, b, c, d, e, f] => Some(EthernetAddress([*a, *b, *c, *d, *e, *f])),
            _ => None,
        }
    }

    /// The address's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// The EtherType field: what the frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4, 0x0800.
    Ipv4,
    /// ARP, 0x0806.
    Arp,
    /// An IEEE 802.1Q tag, 0x8100.
    Vlan,
    /// Anything else (IPv6 included: the engine does not speak it).
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> Self {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::Unknown(other) => other,
        }
    }
}

/// Byte ranges of the Ethernet II header.
pub mod field {
    use core::ops::Range;
    /// Destination MAC address.
    pub const DESTINATION: Range<usize> = 0..6;
    /// Source MAC address.
    pub const SOURCE: Range<usize> = 6..12;
    /// EtherType of an untagged frame, or the 802.1Q TPID (0x8100).
    pub const ETHERTYPE: Range<usize> = 12..14;
    /// Payload of an untagged frame.
    pub const PAYLOAD: usize = 14;
    /// 802.1Q tag control information (PCP, DEI, VLAN ID).
    pub const VLAN_TCI: Range<usize> = 14..16;
    /// EtherType inside the 802.1Q tag.
    pub const VLAN_ETHERTYPE: Range<usize> = 16..18;
    /// Payload of a tagged frame.
    pub const VLAN_PAYLOAD: usize = 18;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of an Ethernet II header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = field::VLAN_PAYLOAD;

const TPID_8021Q: u16 = 0x8100;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer and checks that the header fits.
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>, Error> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the header (with its 802.1Q tag, if any) fits the buffer.
    /// An empty payload is fine.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.outer_ethertype_raw() == TPID_8021Q && len < VLAN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn outer_ethertype_raw(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE.start).unwrap_or(0)
    }

    /// Whether the frame carries an 802.1Q tag (and is long enough for it).
    fn tagged(&self) -> bool {
        self.outer_ethertype_raw() == TPID_8021Q && self.buffer.as_ref().len() >= VLAN_HEADER_LEN
    }

    /// The destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DESTINATION]).unwrap_or_default()
    }

    /// The source address.
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SOURCE]).unwrap_or_default()
    }

    /// The ethertype at bytes 12..14, before any tag is skipped.
    pub fn outer_ethertype(&self) -> EtherType {
        self.outer_ethertype_raw().into()
    }

    /// The ethertype of the payload: after ONE 802.1Q tag, if there is one.
    /// A second tag (QinQ) is reported as [`EtherType::Vlan`].
    pub fn ethertype(&self) -> EtherType {
        if self.tagged() {
            read_u16(self.buffer.as_ref(), field::VLAN_ETHERTYPE.start)
                .unwrap_or(0)
                .into()
        } else {
            self.outer_ethertype()
        }
    }

    /// The 802.1Q tag control information (PCP, DEI, VID), if tagged.
    pub fn vlan_tci(&self) -> Option<u16> {
        if self.tagged() {
            read_u16(self.buffer.as_ref(), field::VLAN_TCI.start)
        } else {
            None
        }
    }

    /// The 12-bit VLAN ID, if tagged.
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|tci| tci & 0x0fff)
    }

    /// The header length: 14, or 18 with an 802.1Q tag.
    pub fn header_len(&self) -> usize {
        if self.tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The bytes after the header (any Ethernet padding included: the upper
    /// layer's length field cuts it off).
    pub fn payload(&self) -> &[u8] {
        let start = self.header_len();
        self.buffer.as_ref().get(start..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets bytes 12..14 (0x8100 makes the frame tagged).
    pub fn set_outer_ethertype(&mut self, ethertype: EtherType) {
        let v: u16 = ethertype.into();
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the payload's ethertype: inside the tag if the frame is tagged.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        let at = if self.tagged() {
            field::VLAN_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        let v: u16 = ethertype.into();
        self.buffer.as_mut()[at].copy_from_slice(&v.to_be_bytes());
    }

    /// Writes an 802.1Q tag with this TCI; the frame needs 18 bytes.
    pub fn set_vlan_tci(&mut self, tci: u16) {
        let buf = self.buffer.as_mut();
        buf[field::ETHERTYPE].copy_from_slice(&TPID_8021Q.to_be_bytes());
        buf[field::VLAN_TCI].copy_from_slice(&tci.to_be_bytes());
    }

    /// The bytes after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }
}

/// A parsed Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// Ethertype of the payload (inside the tag, if tagged).
    pub ethertype: EtherType,
    /// VLAN ID (12 bits) of the 802.1Q tag, if tagged. Emitted with priority
    /// (PCP) 0 and DEI 0.
    pub vlan: Option<u16>,
}

impl EthernetRepr {
    /// Parses a frame's header.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr, Error> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
            vlan: frame.vlan_id(),
        })
    }

    /// Header length: 14, or 18 with a tag.
    pub const fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Frame length for a payload of `payload_len` bytes.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Writes the header into the first [`header_len`](Self::header_len)
    /// bytes of the frame.
    ///
    /// # Panics
    /// If the buffer is shorter than `header_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        match self.vlan {
            Some(vid) => {
                frame.set_vlan_tci(vid & 0x0fff);
                let v: u16 = self.ethertype.into();
                frame.buffer.as_mut()[field::VLAN_ETHERTYPE].copy_from_slice(&v.to_be_bytes());
            }
            None => frame.set_outer_ethertype(self.ethertype),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // An ARP request broadcast, untagged, padded to the 60-byte minimum.
    static UNTAGGED: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x08, 0x06, // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00,
        0x02, // ARP body
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];

    // An IPv4 frame on VLAN 100 with priority 5 (TCI 0xa064), header and the
    // first payload bytes.
    static TAGGED: [u8; 22] = [
        0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e, // dst
        0x00, 0x1b, 0x21, 0x01, 0x02, 0x03, // src
        0x81, 0x00, // 802.1Q TPID
        0xa0, 0x64, // PCP 5, DEI 0, VID 100
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x54, // start of IPv4
    ];

    static QINQ: [u8; 22] = [
        0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e, 0x00, 0x1b, 0x21, 0x01, 0x02, 0x03, 0x81, 0x00, 0x00,
        0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00,
    ];

    #[test]
    fn deconstruct_untagged() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(
            f.src_addr(),
            EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &UNTAGGED[14..]);
    }

    #[test]
    fn deconstruct_tagged() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.outer_ethertype(), EtherType::Vlan);
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.vlan_tci(), Some(0xa064));
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &[0x45, 0x00, 0x00, 0x54]);
    }

    #[test]
    fn qinq_reports_inner_tag() {
        let f = EthernetFrame::new_checked(&QINQ[..]).unwrap();
        assert_eq!(f.ethertype(), EtherType::Vlan);
        assert_eq!(f.vlan_id(), Some(10));
        let repr = EthernetRepr::parse(&f).unwrap();
        assert_eq!(repr.ethertype, EtherType::Vlan);
    }

    #[test]
    fn construct_untagged() {
        let repr =
            EthernetRepr::parse(&EthernetFrame::new_checked(&UNTAGGED[..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            EthernetRepr {
                src_addr: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
                dst_addr: EthernetAddress::BROADCAST,
                ethertype: EtherType::Arp,
                vlan: None,
            }
        );
        let mut buf = UNTAGGED;
        buf[..14].fill(0);
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        repr.emit(&mut f);
        assert_eq!(buf, UNTAGGED);
    }

    #[test]
    fn construct_tagged() {
        let repr = EthernetRepr {
            src_addr: EthernetAddress([0x00, 0x1b, 0x21, 0x01, 0x02, 0x03]),
            dst_addr: EthernetAddress([0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e]),
            ethertype: EtherType::Ipv4,
            vlan: Some(100),
        };
        assert_eq!(repr.header_len(), 18);
        let mut buf = [0u8; 18];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        let mut expect = [0u8; 18];
        expect.copy_from_slice(&TAGGED[..18]);
        expect[14] = 0x00; // PCP is emitted as 0
        assert_eq!(buf, expect);
        // Setters on an existing tagged frame.
        let mut buf = TAGGED;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_ethertype(EtherType::Arp);
        f.payload_mut()[0] = 0x99;
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert_eq!(&buf[16..19], &[0x08, 0x06, 0x99]);
    }

    #[test]
    fn truncated_every_length() {
        for len in 0..UNTAGGED.len() {
            let r = EthernetFrame::new_checked(&UNTAGGED[..len]);
            assert_eq!(r.is_ok(), len >= 14, "len {len}");
            if let Ok(f) = r {
                let _ = (f.payload(), f.ethertype(), EthernetRepr::parse(&f).unwrap());
            }
        }
        for fixture in [&TAGGED[..], &QINQ[..]] {
            for len in 0..fixture.len() {
                let f = EthernetFrame::new_unchecked(&fixture[..len]);
                assert_eq!(f.check_len().is_ok(), len >= 18, "len {len}");
                assert_eq!(EthernetRepr::parse(&f).is_ok(), len >= 18);
            }
        }
    }

    #[test]
    fn ethertype_conversions() {
        for v in [0x0800u16, 0x0806, 0x8100, 0x86dd, 0x88a8, 0] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
        assert_eq!(EtherType::from(0x86dd), EtherType::Unknown(0x86dd));
    }

    fn arb_addr() -> impl Strategy<Value = EthernetAddress> {
        any::<[u8; 6]>().prop_map(EthernetAddress)
    }

    fn arb_repr() -> impl Strategy<Value = EthernetRepr> {
        let et = prop_oneof![
            Just(EtherType::Ipv4),
            Just(EtherType::Arp),
            Just(EtherType::Vlan),
            any::<u16>().prop_map(EtherType::from),
        ];
        (arb_addr(), arb_addr(), et, proptest::option::of(0u16..4096)).prop_map(
            |(src_addr, dst_addr, ethertype, vlan)| EthernetRepr {
                src_addr,
                dst_addr,
                ethertype,
                vlan,
            },
        )
    }

    proptest! {
        #[test]
        fn roundtrip(repr in arb_repr(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            // An untagged frame whose ethertype is 0x8100 is a tagged frame by
            // definition: that repr cannot round trip, so give it a tag.
            let repr = if repr.vlan.is_none() && repr.ethertype == EtherType::Vlan {
                EthernetRepr { vlan: Some(1), ..repr }
            } else {
                repr
            };
            let mut buf = vec![0u8; repr.buffer_len(payload.len())];
            buf[repr.header_len()..].copy_from_slice(&payload);
            let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
            repr.emit(&mut f);
            let f = EthernetFrame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(EthernetRepr::parse(&f).unwrap(), repr);
            prop_assert_eq!(f.payload(), &payload[..]);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let f = EthernetFrame::new_unchecked(&data[..]);
            if f.check_len().is_ok() {
                let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.vlan_id(), f.payload());
            }
            let _ = EthernetRepr::parse(&f);
        }
    }
}
