//! ARP (RFC 826), for Ethernet and IPv4 only.
//!
//! Contract: once [`ArpPacket::check_len`] has succeeded, no accessor panics
//! (the address fields are sized by the packet's own `hlen`/`plen`);
//! [`ArpRepr::parse`] never panics and rejects every hardware or protocol
//! type other than Ethernet/IPv4 with [`Error::Unsupported`];
//! [`ArpRepr::emit`] never panics on a buffer of at least
//! [`ArpRepr::buffer_len`] (28) bytes.

use std::net::Ipv4Addr;

use super::{read_u16, Error, EthernetAddress};

/// Byte ranges of the fixed ARP header; the address fields follow at offsets
/// that depend on the hardware and protocol address lengths.
pub mod field {
    use core::ops::Range;
    /// Hardware type (1 = Ethernet).
    pub const HTYPE: Range<usize> = 0..2;
    /// Protocol type (0x0800 = IPv4).
    pub const PTYPE: Range<usize> = 2..4;
    /// Hardware address length.
    pub const HLEN: usize = 4;
    /// Protocol address length.
    pub const PLEN: usize = 5;
    /// Operation.
    pub const OPER: Range<usize> = 6..8;
    /// Start of the sender hardware address.
    pub const ADDRS: usize = 8;

    /// Sender hardware address.
    pub const fn sha(hlen: u8, _plen: u8) -> Range<usize> {
        ADDRS..ADDRS + hlen as usize
    }
    /// Sender protocol address.
    pub const fn spa(hlen: u8, plen: u8) -> Range<usize> {
        let s = ADDRS + hlen as usize;
        s..s + plen as usize
    }
    /// Target hardware address.
    pub const fn tha(hlen: u8, plen: u8) -> Range<usize> {
        let s = ADDRS + hlen as usize + plen as usize;
        s..s + hlen as usize
    }
    /// Target protocol address.
    pub const fn tpa(hlen: u8, plen: u8) -> Range<usize> {
        let s = ADDRS + 2 * hlen as usize + plen as usize;
        s..s + plen as usize
    }
}

/// Hardware type Ethernet (RFC 826; IANA ARP parameters).
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type IPv4 (an EtherType).
pub const PTYPE_IPV4: u16 = 0x0800;
/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1: who has `target_protocol_addr`?
    Request,
    /// 2: `source_protocol_addr` is at `source_hardware_addr`.
    Reply,
    /// Anything else (RARP, InARP, ...).
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(v: ArpOperation) -> Self {
        match v {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

/// A view of an ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps a buffer and checks its length.
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the fixed header and the four addresses, sized by
    /// `hlen`/`plen`, fit the buffer.
    pub fn check_len(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        if data.len() < field::ADDRS {
            return Err(Error::Truncated);
        }
        if data.len() < field::tpa(self.hardware_len(), self.protocol_len()).end {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type.
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE.start).unwrap_or(0)
    }

    /// Protocol type.
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE.start).unwrap_or(0)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref().get(field::HLEN).copied().unwrap_or(0)
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref().get(field::PLEN).copied().unwrap_or(0)
    }

    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        read_u16(self.buffer.as_ref(), field::OPER.start)
            .unwrap_or(0)
            .into()
    }

    fn slice(&self, r: core::ops::Range<usize>) -> &[u8] {
        self.buffer.as_ref().get(r).unwrap_or(&[])
    }

    /// Sender hardware address bytes.
    pub fn source_hardware_addr(&self) -> &[u8] {
        self.slice(field::sha(self.hardware_len(), self.protocol_len()))
    }

    /// Sender protocol address bytes.
    pub fn source_protocol_addr(&self) -> &[u8] {
        self.slice(field::spa(self.hardware_len(), self.protocol_len()))
    }

    /// Target hardware address bytes.
    pub fn target_hardware_addr(&self) -> &[u8] {
        self.slice(field::tha(self.hardware_len(), self.protocol_len()))
    }

    /// Target protocol address bytes.
    pub fn target_protocol_addr(&self) -> &[u8] {
        self.slice(field::tpa(self.hardware_len(), self.protocol_len()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    fn set_u16(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, v: u16) {
        self.set_u16(field::HTYPE, v);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, v: u16) {
        self.set_u16(field::PTYPE, v);
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, v: ArpOperation) {
        self.set_u16(field::OPER, v.into());
    }

    fn set_addr(&mut self, r: core::ops::Range<usize>, v: &[u8]) {
        self.buffer.as_mut()[r].copy_from_slice(v);
    }

    /// Sets the sender hardware address (its length must be `hlen`).
    pub fn set_source_hardware_addr(&mut self, v: &[u8]) {
        let r = field::sha(self.hardware_len(), self.protocol_len());
        self.set_addr(r, v);
    }

    /// Sets the sender protocol address (its length must be `plen`).
    pub fn set_source_protocol_addr(&mut self, v: &[u8]) {
        let r = field::spa(self.hardware_len(), self.protocol_len());
        self.set_addr(r, v);
    }

    /// Sets the target hardware address (its length must be `hlen`).
    pub fn set_target_hardware_addr(&mut self, v: &[u8]) {
        let r = field::tha(self.hardware_len(), self.protocol_len());
        self.set_addr(r, v);
    }

    /// Sets the target protocol address (its length must be `plen`).
    pub fn set_target_protocol_addr(&mut self, v: &[u8]) {
        let r = field::tpa(self.hardware_len(), self.protocol_len());
        self.set_addr(r, v);
    }
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request, reply or other.
    pub operation: ArpOperation,
    /// Sender's MAC address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender's IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target's MAC address (zero in a request).
    pub target_hardware_addr: EthernetAddress,
    /// Target's IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

fn ipv4(bytes: &[u8]) -> Ipv4Addr {
    match bytes {
        [a, b, c, d] => Ipv4Addr::new(*a, *b, *c, *d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

impl ArpRepr {
    /// Parses an ARP packet. Anything but Ethernet (htype 1, hlen 6) over
    /// IPv4 (ptype 0x0800, plen 4) is [`Error::Unsupported`]. Unknown
    /// operations are returned as [`ArpOperation::Unknown`]; the caller
    /// ignores them (RFC 826 only defines request and reply).
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr, Error> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != PTYPE_IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: EthernetAddress::from_bytes(packet.source_hardware_addr())
                .ok_or(Error::Truncated)?,
            source_protocol_addr: ipv4(packet.source_protocol_addr()),
            target_hardware_addr: EthernetAddress::from_bytes(packet.target_hardware_addr())
                .ok_or(Error::Truncated)?,
            target_protocol_addr: ipv4(packet.target_protocol_addr()),
        })
    }

    /// Length of the emitted packet: 28 bytes.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet into the first 28 bytes of the buffer.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(PTYPE_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Who has 10.0.0.2? Tell 10.0.0.1 (52:54:00:12:34:56), as captured.
    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02,
    ];

    // 10.0.0.2 is at 02:00:00:aa:bb:cc.
    static REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc, 0x0a,
        0x00, 0x00, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a, 0x00, 0x00, 0x01,
    ];

    fn request_repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn deconstruct() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!(p.hardware_len(), 6);
        assert_eq!(p.protocol_len(), 4);
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(
            p.source_hardware_addr(),
            &[0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
        );
        assert_eq!(p.source_protocol_addr(), &[10, 0, 0, 1]);
        assert_eq!(p.target_hardware_addr(), &[0; 6]);
        assert_eq!(p.target_protocol_addr(), &[10, 0, 0, 2]);
    }

    #[test]
    fn parse_and_construct() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p).unwrap(), request_repr());
        let mut buf = [0u8; 28];
        request_repr().emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);

        let reply = ArpRepr::parse(&ArpPacket::new_checked(&REPLY[..]).unwrap()).unwrap();
        assert_eq!(reply.operation, ArpOperation::Reply);
        assert_eq!(reply.source_protocol_addr, Ipv4Addr::new(10, 0, 0, 2));
        let mut buf = [0u8; 28];
        reply.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REPLY);
    }

    #[test]
    fn trailing_bytes_ignored() {
        // ARP inside a padded minimum-size Ethernet frame.
        let mut buf = [0u8; 46];
        buf[..28].copy_from_slice(&REQUEST);
        let p = ArpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p).unwrap(), request_repr());
    }

    #[test]
    fn truncated_every_length() {
        for len in 0..REQUEST.len() {
            let p = ArpPacket::new_unchecked(&REQUEST[..len]);
            assert_eq!(p.check_len(), Err(Error::Truncated), "len {len}");
            assert_eq!(ArpRepr::parse(&p), Err(Error::Truncated));
        }
    }

    #[test]
    fn unsupported_types() {
        for (at, v) in [(1, 0x06), (3, 0xdd), (4, 8), (5, 16)] {
            let mut buf = [0u8; 64];
            buf[..28].copy_from_slice(&REQUEST);
            buf[at] = v;
            let p = ArpPacket::new_checked(&buf[..]).unwrap();
            assert_eq!(ArpRepr::parse(&p), Err(Error::Unsupported), "byte {at}");
        }
        // hlen 16 with only 28 bytes: the addresses do not fit.
        let mut buf = REQUEST;
        buf[4] = 16;
        assert_eq!(
            ArpPacket::new_checked(&buf[..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn unknown_operation() {
        let mut buf = REQUEST;
        buf[7] = 8; // InARP request
        let r = ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(r.operation, ArpOperation::Unknown(8));
    }

    fn arb_repr() -> impl Strategy<Value = ArpRepr> {
        (
            any::<u16>(),
            any::<[u8; 6]>(),
            any::<u32>(),
            any::<[u8; 6]>(),
            any::<u32>(),
        )
            .prop_map(|(op, sha, spa, tha, tpa)| ArpRepr {
                operation: op.into(),
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: spa.into(),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: tpa.into(),
            })
    }

    proptest! {
        #[test]
        fn roundtrip(repr in arb_repr()) {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
            let p = ArpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(ArpRepr::parse(&p).unwrap(), repr);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let p = ArpPacket::new_unchecked(&data[..]);
            if p.check_len().is_ok() {
                let _ = (p.source_hardware_addr(), p.target_protocol_addr(), p.operation());
            }
            let _ = ArpRepr::parse(&p);
        }
    }
}
