//! ICMPv4 (RFC 792): echo request and reply, destination unreachable.
//!
//! Contract: once [`Icmpv4Packet::check_len`] has succeeded, no accessor
//! panics; [`Icmpv4Repr::parse`] never panics; [`Icmpv4Repr::emit`] never
//! panics on a buffer of at least [`Icmpv4Repr::buffer_len`] bytes.
//!
//! The view covers one whole ICMP message: pass it the IPv4 payload (which
//! [`Ipv4Packet::payload`](super::Ipv4Packet::payload) has already cut to
//! the total length), since the checksum covers every byte.

use super::checksum;
use super::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use super::{read_u16, ChecksumCaps, Error};

/// Byte ranges of the ICMPv4 header.
pub mod field {
    use core::ops::Range;
    /// Message type.
    pub const TYPE: usize = 0;
    /// Message code.
    pub const CODE: usize = 1;
    /// Checksum over the whole message.
    pub const CHECKSUM: Range<usize> = 2..4;
    /// Echo identifier.
    pub const ECHO_IDENT: Range<usize> = 4..6;
    /// Echo sequence number.
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    /// Rest of header of error messages (unused, or next-hop MTU in 6..8).
    pub const UNUSED: Range<usize> = 4..8;
    /// Next-hop MTU of "fragmentation needed" (RFC 1191 §4).
    pub const MTU: Range<usize> = 6..8;
    /// Start of the data.
    pub const DATA: usize = 8;
}

/// Length of the ICMPv4 header.
pub const HEADER_LEN: usize = field::DATA;

/// ICMPv4 message types (RFC 792; IANA ICMP parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Message {
    /// 0: echo reply.
    EchoReply,
    /// 3: destination unreachable.
    DstUnreachable,
    /// 5: redirect.
    Redirect,
    /// 8: echo request.
    EchoRequest,
    /// 11: time exceeded.
    TimeExceeded,
    /// 12: parameter problem.
    ParamProblem,
    /// Anything else.
    Unknown(u8),
}

impl Icmpv4Message {
    /// Type code of echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Type code of destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Type code of redirect.
    pub const REDIRECT: u8 = 5;
    /// Type code of echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Type code of time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Type code of parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
}

impl From<u8> for Icmpv4Message {
    fn from(v: u8) -> Self {
        match v {
            Self::ECHO_REPLY => Icmpv4Message::EchoReply,
            Self::DST_UNREACHABLE => Icmpv4Message::DstUnreachable,
            Self::REDIRECT => Icmpv4Message::Redirect,
            Self::ECHO_REQUEST => Icmpv4Message::EchoRequest,
            Self::TIME_EXCEEDED => Icmpv4Message::TimeExceeded,
            Self::PARAM_PROBLEM => Icmpv4Message::ParamProblem,
            other => Icmpv4Message::Unknown(other),
        }
    }
}

impl From<Icmpv4Message> for u8 {
    fn from(v: Icmpv4Message) -> Self {
        match v {
            Icmpv4Message::EchoReply => Icmpv4Message::ECHO_REPLY,
            Icmpv4Message::DstUnreachable => Icmpv4Message::DST_UNREACHABLE,
            Icmpv4Message::Redirect => Icmpv4Message::REDIRECT,
            Icmpv4Message::EchoRequest => Icmpv4Message::ECHO_REQUEST,
            Icmpv4Message::TimeExceeded => Icmpv4Message::TIME_EXCEEDED,
            Icmpv4Message::ParamProblem => Icmpv4Message::PARAM_PROBLEM,
            Icmpv4Message::Unknown(other) => other,
        }
    }
}

/// Codes of destination unreachable (RFC 792, RFC 1122 §3.2.2.1, RFC 1812
/// §5.2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DstUnreachable {
    /// 0
    NetUnreachable,
    /// 1
    HostUnreachable,
    /// 2
    ProtoUnreachable,
    /// 3
    PortUnreachable,
    /// 4: fragmentation needed and DF set (carries the next-hop MTU).
    FragRequired,
    /// 5
    SrcRouteFailed,
    /// 6
    DstNetUnknown,
    /// 7
    DstHostUnknown,
    /// 8
    SrcHostIsolated,
    /// 9
    NetProhibited,
    /// 10
    HostProhibited,
    /// 11
    NetUnreachToS,
    /// 12
    HostUnreachToS,
    /// 13: communication administratively prohibited.
    CommProhibited,
    /// 14
    HostPrecedenceViolation,
    /// 15
    PrecedenceCutoff,
    /// Any other code.
    Unknown(u8),
}

impl From<u8> for DstUnreachable {
    fn from(v: u8) -> Self {
        use DstUnreachable::*;
        match v {
            0 => NetUnreachable,
            1 => HostUnreachable,
            2 => ProtoUnreachable,
            3 => PortUnreachable,
            4 => FragRequired,
            5 => SrcRouteFailed,
            6 => DstNetUnknown,
            7 => DstHostUnknown,
            8 => SrcHostIsolated,
            9 => NetProhibited,
            10 => HostProhibited,
            11 => NetUnreachToS,
            12 => HostUnreachToS,
            13 => CommProhibited,
            14 => HostPrecedenceViolation,
            15 => PrecedenceCutoff,
            other => Unknown(other),
        }
    }
}

impl From<DstUnreachable> for u8 {
    fn from(v: DstUnreachable) -> Self {
        use DstUnreachable::*;
        match v {
            NetUnreachable => 0,
            HostUnreachable => 1,
            ProtoUnreachable => 2,
            PortUnreachable => 3,
            FragRequired => 4,
            SrcRouteFailed => 5,
            DstNetUnknown => 6,
            DstHostUnknown => 7,
            SrcHostIsolated => 8,
            NetProhibited => 9,
            HostProhibited => 10,
            NetUnreachToS => 11,
            HostUnreachToS => 12,
            CommProhibited => 13,
            HostPrecedenceViolation => 14,
            PrecedenceCutoff => 15,
            Unknown(other) => other,
        }
    }
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer and checks its length.
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the 8-byte header fits.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: usize) -> u16 {
        read_u16(self.buffer.as_ref(), at).unwrap_or(0)
    }

    /// Message type.
    pub fn msg_type(&self) -> Icmpv4Message {
        self.buffer
            .as_ref()
            .get(field::TYPE)
            .copied()
            .unwrap_or(0)
            .into()
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref().get(field::CODE).copied().unwrap_or(0)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM.start)
    }

    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT.start)
    }

    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO.start)
    }

    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191 §4); zero
    /// from routers that predate it.
    pub fn next_hop_mtu(&self) -> u16 {
        self.u16_at(field::MTU.start)
    }

    /// The data after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(field::DATA..).unwrap_or(&[])
    }

    /// Whether the checksum over the whole buffer is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    fn set_u16(&mut self, at: usize, v: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: Icmpv4Message) {
        self.buffer.as_mut()[field::TYPE] = v.into();
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16(field::CHECKSUM.start, v);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        self.set_u16(field::ECHO_IDENT.start, v);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        self.set_u16(field::ECHO_SEQNO.start, v);
    }

    /// Sets bytes 4..8 of an error message (unused, or the next-hop MTU).
    pub fn set_rest_of_header(&mut self, v: u32) {
        self.buffer.as_mut()[field::UNUSED].copy_from_slice(&v.to_be_bytes());
    }

    /// The data after the header, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::DATA..)
            .unwrap_or(&mut [])
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref()));
        self.set_checksum(c);
    }
}

/// A parsed ICMPv4 message of a type the engine handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// Echo request (ping).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data, echoed back verbatim (RFC 792).
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination unreachable, quoting the packet that caused it.
    DstUnreachable {
        /// The code.
        reason: DstUnreachable,
        /// The quoted IPv4 header. `payload_len` is the original packet's,
        /// which is usually longer than `data`.
        header: Ipv4Repr,
        /// The quoted payload bytes: at least the first 8 (RFC 792), more if
        /// the sender included them (RFC 1812 §4.3.2.3).
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a message. A bad checksum, when `caps.icmpv4` says software
    /// verifies, is [`Error::Checksum`]; types other than echo and
    /// destination unreachable are [`Error::Unsupported`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv4Packet<&'a T>,
        caps: &ChecksumCaps,
    ) -> Result<Icmpv4Repr<'a>, Error> {
        packet.check_len()?;
        if caps.icmpv4.verify_rx() && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let bytes: &'a [u8] = <T as AsRef<[u8]>>::as_ref(packet.buffer);
        let data = bytes.get(field::DATA..).unwrap_or(&[]);
        match (packet.msg_type(), packet.msg_code()) {
            (Icmpv4Message::EchoRequest, 0) => Ok(Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Icmpv4Message::EchoReply, 0) => Ok(Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Icmpv4Message::DstUnreachable, code) => {
                let (header, quoted) = parse_quoted(data)?;
                Ok(Icmpv4Repr::DstUnreachable {
                    reason: code.into(),
                    header,
                    data: quoted,
                })
            }
            _ => Err(Error::Unsupported),
        }
    }

    /// Length of the emitted message.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Icmpv4Repr::DstUnreachable { data, .. } => HEADER_LEN + ipv4::HEADER_LEN + data.len(),
        }
    }

    /// Writes the message into the first [`buffer_len`](Self::buffer_len)
    /// bytes of the buffer (data copied). The checksum, over those bytes, is
    /// computed when `caps.icmpv4` says software computes, else left zero.
    /// The quoted IPv4 header's own checksum follows `caps.ipv4`.
    ///
    /// # Panics
    /// If the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Icmpv4Packet<T>,
        caps: &ChecksumCaps,
    ) {
        match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                let ty = if matches!(self, Icmpv4Repr::EchoRequest { .. }) {
                    Icmpv4Message::EchoRequest
                } else {
                    Icmpv4Message::EchoReply
                };
                packet.set_msg_type(ty);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                packet.data_mut()[..data.len()].copy_from_slice(data);
            }
            Icmpv4Repr::DstUnreachable {
                reason,
                header,
                data,
            } => {
                packet.set_msg_type(Icmpv4Message::DstUnreachable);
                packet.set_msg_code(reason.into());
                packet.set_rest_of_header(0);
                let body = packet.data_mut();
                header.emit(&mut Ipv4Packet::new_unchecked(&mut body[..]), caps);
                body[ipv4::HEADER_LEN..ipv4::HEADER_LEN + data.len()].copy_from_slice(data);
            }
        }
        packet.set_checksum(0);
        if caps.icmpv4.compute_tx() {
            let len = self.buffer_len();
            let sum = checksum::sum(&packet.buffer.as_ref()[..len]);
            packet.set_checksum(checksum::finish(sum));
        }
    }
}

/// Splits the data of an ICMP error into the quoted IPv4 header and the
/// quoted payload. The quoted header's total length is the original packet's,
/// so it is not checked against the (shorter) quote, nor is its checksum.
fn parse_quoted(data: &[u8]) -> Result<(Ipv4Repr, &[u8]), Error> {
    let inner = Ipv4Packet::new_unchecked(data);
    if data.len() < ipv4::HEADER_LEN {
        return Err(Error::Truncated);
    }
    if inner.version() != 4 || inner.header_len() < ipv4::HEADER_LEN {
        return Err(Error::Malformed);
    }
    let hl = inner.header_len();
    let total = usize::from(inner.total_len());
    if total < hl {
        return Err(Error::Malformed);
    }
    let quoted = data.get(hl..).ok_or(Error::Truncated)?;
    // RFC 792: the header plus the first 64 bits of the original data.
    if quoted.len() < (total - hl).min(8) {
        return Err(Error::Truncated);
    }
    let header = Ipv4Repr {
        src_addr: inner.src_addr(),
        dst_addr: inner.dst_addr(),
        protocol: inner.protocol(),
        payload_len: total - hl,
        ttl: inner.ttl(),
        dscp_ecn: inner.dscp_ecn(),
        ident: inner.ident(),
    };
    Ok((header, quoted))
}

/// Protocol number of ICMP, for callers building the IPv4 header.
pub const PROTOCOL: IpProtocol = IpProtocol::Icmp;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Checksum;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    // `ping` from Linux: id 0x0b6e, seq 1, 56 bytes of data (a timeval, then
    // 0x10..0x37).
    static ECHO_REQUEST: [u8; 64] = [
        0x08, 0x00, 0x63, 0x3c, 0x0b, 0x6e, 0x00, 0x01, 0x5e, 0x1b, 0x6c, 0x66, 0x00, 0x00, 0x00,
        0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
        0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c,
        0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];
    const ECHO_LEN: usize = 56;

    // Port unreachable for a traceroute probe 192.168.1.10:54321 ->
    // 192.168.1.1:33434 (UDP, 60-byte datagram), quoting header + 8 bytes.
    static PORT_UNREACHABLE: [u8; 36] = [
        0x03, 0x03, 0x89, 0xdb, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x3c, 0xbe, 0xef, 0x40,
        0x00, 0x01, 0x11, 0x37, 0x66, 0xc0, 0xa8, 0x01, 0x0a, 0xc0, 0xa8, 0x01, 0x01, 0xd4, 0x31,
        0x82, 0x9a, 0x00, 0x28, 0x1c, 0x2d,
    ];

    fn echo_data() -> &'static [u8] {
        &ECHO_REQUEST[8..ECHO_LEN]
    }

    #[test]
    fn deconstruct_echo() {
        let p = Icmpv4Packet::new_checked(&ECHO_REQUEST[..ECHO_LEN]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x633c);
        assert_eq!(p.echo_ident(), 0x0b6e);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), echo_data());
        assert!(p.verify_checksum());
    }

    #[test]
    fn echo_request_and_reply() {
        let p = Icmpv4Packet::new_checked(&ECHO_REQUEST[..ECHO_LEN]).unwrap();
        let req = Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).unwrap();
        assert_eq!(
            req,
            Icmpv4Repr::EchoRequest {
                ident: 0x0b6e,
                seq_no: 1,
                data: echo_data()
            }
        );
        assert_eq!(req.buffer_len(), ECHO_LEN);
        let mut buf = [0u8; ECHO_LEN];
        req.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCaps::SOFTWARE,
        );
        assert_eq!(&buf[..], &ECHO_REQUEST[..ECHO_LEN]);

        // The reply differs in type and checksum only (0x6b3c).
        let reply = Icmpv4Repr::EchoReply {
            ident: 0x0b6e,
            seq_no: 1,
            data: echo_data(),
        };
        let mut buf = [0u8; ECHO_LEN];
        reply.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCaps::SOFTWARE,
        );
        assert_eq!(&buf[..4], &[0x00, 0x00, 0x6b, 0x3c]);
        assert_eq!(&buf[4..], &ECHO_REQUEST[4..ECHO_LEN]);
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).unwrap(),
            reply
        );
    }

    fn unreachable_repr() -> Icmpv4Repr<'static> {
        Icmpv4Repr::DstUnreachable {
            reason: DstUnreachable::PortUnreachable,
            header: Ipv4Repr {
                src_addr: Ipv4Addr::new(192, 168, 1, 10),
                dst_addr: Ipv4Addr::new(192, 168, 1, 1),
                protocol: IpProtocol::Udp,
                payload_len: 40,
                ttl: 1,
                dscp_ecn: 0,
                ident: 0xbeef,
            },
            data: &PORT_UNREACHABLE[28..],
        }
    }

    #[test]
    fn dst_unreachable() {
        let p = Icmpv4Packet::new_checked(&PORT_UNREACHABLE[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::DstUnreachable);
        assert_eq!(p.msg_code(), 3);
        let r = Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).unwrap();
        assert_eq!(r, unreachable_repr());
        let mut buf = [0u8; 36];
        r.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCaps::SOFTWARE,
        );
        assert_eq!(buf, PORT_UNREACHABLE);
    }

    #[test]
    fn dst_unreachable_bad_quote() {
        // Quote cut to fewer than 8 payload bytes.
        let mut buf = PORT_UNREACHABLE[..35].to_vec();
        Icmpv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE),
            Err(Error::Truncated)
        );
        // Quoted packet is not IPv4.
        let mut buf = PORT_UNREACHABLE;
        buf[8] = 0x65;
        Icmpv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn frag_required_mtu() {
        let mut buf = PORT_UNREACHABLE;
        buf[1] = 4;
        buf[6..8].copy_from_slice(&1400u16.to_be_bytes());
        Icmpv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.next_hop_mtu(), 1400);
        match Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).unwrap() {
            Icmpv4Repr::DstUnreachable { reason, .. } => {
                assert_eq!(reason, DstUnreachable::FragRequired)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsupported_types() {
        for (ty, code) in [(11u8, 0u8), (5, 1), (13, 0), (8, 1), (0, 9)] {
            let mut buf = [0u8; 36];
            buf[0] = ty;
            buf[1] = code;
            Icmpv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(
                Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE),
                Err(Error::Unsupported)
            );
        }
    }

    #[test]
    fn bad_checksum_detected_or_trusted() {
        let mut buf = ECHO_REQUEST;
        buf[20] ^= 0xff;
        let p = Icmpv4Packet::new_checked(&buf[..ECHO_LEN]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE),
            Err(Error::Checksum)
        );
        let caps = ChecksumCaps {
            icmpv4: Checksum::None,
            ..ChecksumCaps::SOFTWARE
        };
        assert!(Icmpv4Repr::parse(&p, &caps).is_ok());
        // Offloaded emit leaves the checksum zero.
        let mut out = [0xffu8; ECHO_LEN];
        Icmpv4Repr::parse(&p, &caps)
            .unwrap()
            .emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]), &caps);
        assert_eq!(&out[2..4], &[0, 0]);
    }

    #[test]
    fn truncated_every_length() {
        for len in 0..ECHO_LEN {
            let p = Icmpv4Packet::new_unchecked(&ECHO_REQUEST[..len]);
            assert_eq!(p.check_len().is_ok(), len >= 8);
            // Every prefix fails: short header, or a checksum mismatch.
            assert!(Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).is_err());
        }
        let no_verify = ChecksumCaps {
            icmpv4: Checksum::None,
            ..ChecksumCaps::SOFTWARE
        };
        for len in 0..PORT_UNREACHABLE.len() {
            let p = Icmpv4Packet::new_unchecked(&PORT_UNREACHABLE[..len]);
            assert!(Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).is_err());
            assert!(Icmpv4Repr::parse(&p, &no_verify).is_err(), "len {len}");
        }
    }

    fn arb_ipv4() -> impl Strategy<Value = Ipv4Repr> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
        )
            .prop_map(|(s, d, proto, ttl, dscp_ecn, ident)| Ipv4Repr {
                src_addr: s.into(),
                dst_addr: d.into(),
                protocol: proto.into(),
                payload_len: 0,
                ttl,
                dscp_ecn,
                ident,
            })
    }

    proptest! {
        #[test]
        fn roundtrip_echo(
            request in any::<bool>(),
            ident in any::<u16>(),
            seq_no in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let repr = if request {
                Icmpv4Repr::EchoRequest { ident, seq_no, data: &data }
            } else {
                Icmpv4Repr::EchoReply { ident, seq_no, data: &data }
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]), &ChecksumCaps::SOFTWARE);
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).unwrap(), repr);
        }

        #[test]
        fn roundtrip_unreachable(
            code in any::<u8>(),
            mut header in arb_ipv4(),
            data in proptest::collection::vec(any::<u8>(), 8..64),
            extra in 0usize..1000,
        ) {
            header.payload_len = data.len() + extra;
            let repr = Icmpv4Repr::DstUnreachable { reason: code.into(), header, data: &data };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]), &ChecksumCaps::SOFTWARE);
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).unwrap(), repr);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let p = Icmpv4Packet::new_unchecked(&data[..]);
            let caps = ChecksumCaps { icmpv4: Checksum::None, ..ChecksumCaps::SOFTWARE };
            let _ = Icmpv4Repr::parse(&p, &caps);
            let _ = Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE);
        }
    }
}
