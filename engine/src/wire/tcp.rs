//! TCP segments (RFC 9293 §3.1) and their options: maximum segment size
//! (RFC 9293 §3.2), window scale and timestamps (RFC 7323), SACK (RFC 2018).
//!
//! Contract: once [`TcpPacket::check_len`] has succeeded, no accessor panics;
//! [`TcpRepr::parse`] and the option parser never panic on any input and
//! reject malformed options; [`TcpRepr::emit`] never panics on a buffer of at
//! least [`TcpRepr::header_len`] bytes.
//!
//! Zero-copy transmit: [`TcpRepr::emit`] writes only the header and options
//! into the first `header_len()` bytes of a buffer whose payload is already
//! in place behind them; the payload bytes are read (for the checksum), never
//! copied. The view covers one whole segment: pass it the IPv4 payload, since
//! the checksum covers every byte plus the pseudo-header.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};
use std::net::Ipv4Addr;

use super::checksum;
use super::{read_u16, read_u32, ChecksumCaps, Error};

/// IANA protocol number of TCP, for the pseudo-header.
const PROTOCOL_TCP: u8 = 6;

/// A TCP sequence number: arithmetic and comparison modulo 2^32.
///
/// Ordering is serial-number arithmetic (RFC 1982, as RFC 9293 §3.4 uses
/// it): `a < b` when `b - a`, as a signed 32-bit difference, is positive. It
/// is only meaningful for numbers less than 2^31 apart, and it is not
/// transitive across the whole space. Two numbers exactly 2^31 apart are
/// unordered: `partial_cmp` returns `None`, so both `a < b` and `b < a` are
/// false.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpSeqNumber(pub u32);

impl TcpSeqNumber {
    /// The later of two numbers (`self` if unordered).
    pub fn max(self, other: TcpSeqNumber) -> TcpSeqNumber {
        if other > self {
            other
        } else {
            self
        }
    }

    /// The earlier of two numbers (`self` if unordered).
    pub fn min(self, other: TcpSeqNumber) -> TcpSeqNumber {
        if other < self {
            other
        } else {
            self
        }
    }

    /// Bytes from `earlier` to `self` modulo 2^32 (never negative).
    pub fn wrapping_distance(self, earlier: TcpSeqNumber) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }
}

impl fmt::Debug for TcpSeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpSeqNumber({})", self.0)
    }
}

impl fmt::Display for TcpSeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Add<u32> for TcpSeqNumber {
    type Output = TcpSeqNumber;
    fn add(self, rhs: u32) -> TcpSeqNumber {
        TcpSeqNumber(self.0.wrapping_add(rhs))
    }
}

impl Add<usize> for TcpSeqNumber {
    type Output = TcpSeqNumber;
    /// Adds modulo 2^32 (the length is truncated to 32 bits).
    fn add(self, rhs: usize) -> TcpSeqNumber {
        TcpSeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl Sub<u32> for TcpSeqNumber {
    type Output = TcpSeqNumber;
    fn sub(self, rhs: u32) -> TcpSeqNumber {
        TcpSeqNumber(self.0.wrapping_sub(rhs))
    }
}

impl Sub<usize> for TcpSeqNumber {
    type Output = TcpSeqNumber;
    fn sub(self, rhs: usize) -> TcpSeqNumber {
        TcpSeqNumber(self.0.wrapping_sub(rhs as u32))
    }
}

impl AddAssign<u32> for TcpSeqNumber {
    fn add_assign(&mut self, rhs: u32) {
        *self = *self + rhs;
    }
}

impl AddAssign<usize> for TcpSeqNumber {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl SubAssign<u32> for TcpSeqNumber {
    fn sub_assign(&mut self, rhs: u32) {
        *self = *self - rhs;
    }
}

impl Sub<TcpSeqNumber> for TcpSeqNumber {
    type Output = i32;
    /// The signed distance from `rhs` to `self` (RFC 1982 serial arithmetic).
    fn sub(self, rhs: TcpSeqNumber) -> i32 {
        self.0.wrapping_sub(rhs.0) as i32
    }
}

impl PartialOrd for TcpSeqNumber {
    fn partial_cmp(&self, other: &TcpSeqNumber) -> Option<Ordering> {
        match self.0.wrapping_sub(other.0) {
            0 => Some(Ordering::Equal),
            // RFC 1982 §3.2: exactly half the space apart is undefined.
            0x8000_0000 => None,
            d if (d as i32) < 0 => Some(Ordering::Less),
            _ => Some(Ordering::Greater),
        }
    }
}

/// The TCP control bits (RFC 9293 §3.1; ECE and CWR from RFC 3168).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN-Echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x080);

    const NAMES: [(TcpFlags, &'static str); 8] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    /// No flag set.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// Flags from the raw bits (the 12 bits below the data offset).
    pub const fn from_bits(bits: u16) -> TcpFlags {
        TcpFlags(bits & 0x0fff)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag in `other` is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Sets the flags in `other`.
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    /// Clears the flags in `other`.
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }

    /// Sets or clears the flags in `other`.
    pub fn set(&mut self, other: TcpFlags, on: bool) {
        if on {
            self.insert(other)
        } else {
            self.remove(other)
        }
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl core::ops::BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    /// `TcpFlags(SYN | ACK)`; bits without a name print in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TcpFlags(")?;
        let mut first = true;
        let mut rest = self.0;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !flag.0;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{rest:#x}")?;
            first = false;
        }
        if first {
            f.write_str("empty")?;
        }
        f.write_str(")")
    }
}

/// Byte ranges of the TCP header, and option kinds.
pub mod field {
    use core::ops::Range;
    /// Source port.
    pub const SRC_PORT: Range<usize> = 0..2;
    /// Destination port.
    pub const DST_PORT: Range<usize> = 2..4;
    /// Sequence number.
    pub const SEQ_NUM: Range<usize> = 4..8;
    /// Acknowledgment number.
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset (high nibble), reserved bits and control bits.
    pub const FLAGS: Range<usize> = 12..14;
    /// Window.
    pub const WIN_SIZE: Range<usize> = 14..16;
    /// Checksum.
    pub const CHECKSUM: Range<usize> = 16..18;
    /// Urgent pointer.
    pub const URGENT: Range<usize> = 18..20;
    /// Start of the options.
    pub const OPTIONS: usize = 20;

    /// End of option list.
    pub const OPT_END: u8 = 0;
    /// No-operation.
    pub const OPT_NOP: u8 = 1;
    /// Maximum segment size.
    pub const OPT_MSS: u8 = 2;
    /// Window scale.
    pub const OPT_WS: u8 = 3;
    /// SACK permitted.
    pub const OPT_SACKPERM: u8 = 4;
    /// SACK blocks.
    pub const OPT_SACKRNG: u8 = 5;
    /// Timestamps.
    pub const OPT_TSTAMP: u8 = 8;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Largest header: data offset 15.
pub const MAX_HEADER_LEN: usize = 60;
/// Largest shift count honoured in a window scale option (RFC 7323 §2.3).
pub const MAX_WINDOW_SCALE: u8 = 14;

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps a buffer and checks its length.
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the header, options included, fits: a buffer shorter
    /// than 20 bytes or than the data offset says is [`Error::Truncated`];
    /// a data offset below 5 words is [`Error::Malformed`] (RFC 9293 §3.1).
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: usize) -> u16 {
        read_u16(self.buffer.as_ref(), at).unwrap_or(0)
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT.start)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> TcpSeqNumber {
        TcpSeqNumber(read_u32(self.buffer.as_ref(), field::SEQ_NUM.start).unwrap_or(0))
    }

    /// Acknowledgment number (meaningful only with ACK set).
    pub fn ack_number(&self) -> TcpSeqNumber {
        TcpSeqNumber(read_u32(self.buffer.as_ref(), field::ACK_NUM.start).unwrap_or(0))
    }

    /// Header length in bytes, from the data offset.
    pub fn header_len(&self) -> usize {
        usize::from(self.u16_at(field::FLAGS.start) >> 12) * 4
    }

    /// The 12 bits below the data offset: reserved bits and control bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits(self.u16_at(field::FLAGS.start))
    }

    /// FIN set.
    pub fn fin(&self) -> bool {
        self.flags().contains(TcpFlags::FIN)
    }

    /// SYN set.
    pub fn syn(&self) -> bool {
        self.flags().contains(TcpFlags::SYN)
    }

    /// RST set.
    pub fn rst(&self) -> bool {
        self.flags().contains(TcpFlags::RST)
    }

    /// PSH set.
    pub fn psh(&self) -> bool {
        self.flags().contains(TcpFlags::PSH)
    }

    /// ACK set.
    pub fn ack(&self) -> bool {
        self.flags().contains(TcpFlags::ACK)
    }

    /// URG set.
    pub fn urg(&self) -> bool {
        self.flags().contains(TcpFlags::URG)
    }

    /// ECE set.
    pub fn ece(&self) -> bool {
        self.flags().contains(TcpFlags::ECE)
    }

    /// CWR set.
    pub fn cwr(&self) -> bool {
        self.flags().contains(TcpFlags::CWR)
    }

    /// Window (unscaled).
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WIN_SIZE.start)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM.start)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        self.u16_at(field::URGENT.start)
    }

    /// The option bytes (between the fixed header and the data offset).
    pub fn options(&self) -> &[u8] {
        let end = self.header_len();
        self.buffer.as_ref().get(field::OPTIONS..end).unwrap_or(&[])
    }

    /// The payload: everything after the header.
    pub fn payload(&self) -> &[u8] {
        let start = self.header_len();
        self.buffer.as_ref().get(start..).unwrap_or(&[])
    }

    /// Sequence space the segment occupies: payload plus SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload().len() + usize::from(self.syn()) + usize::from(self.fin())
    }

    /// Whether the checksum over pseudo-header, header and payload (the
    /// whole buffer) is correct (RFC 9293 §3.1).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let data = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, PROTOCOL_TCP, data.len() as u32);
        checksum::combine(&[ph, checksum::sum(data)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn set_u16(&mut self, at: usize, v: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    fn set_u32(&mut self, at: usize, v: u32) {
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        self.set_u16(field::SRC_PORT.start, v);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        self.set_u16(field::DST_PORT.start, v);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: TcpSeqNumber) {
        self.set_u32(field::SEQ_NUM.start, v.0);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, v: TcpSeqNumber) {
        self.set_u32(field::ACK_NUM.start, v.0);
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60); keeps
    /// the flags.
    pub fn set_header_len(&mut self, len: usize) {
        let old = self.u16_at(field::FLAGS.start);
        let words = ((len / 4) as u16) & 0x0f;
        self.set_u16(field::FLAGS.start, (old & 0x0fff) | (words << 12));
    }

    /// Sets the reserved and control bits; keeps the data offset.
    pub fn set_flags(&mut self, flags: TcpFlags) {
        let old = self.u16_at(field::FLAGS.start);
        self.set_u16(field::FLAGS.start, (old & 0xf000) | flags.bits());
    }

    /// Sets the window.
    pub fn set_window_len(&mut self, v: u16) {
        self.set_u16(field::WIN_SIZE.start, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16(field::CHECKSUM.start, v);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, v: u16) {
        self.set_u16(field::URGENT.start, v);
    }

    /// The option bytes, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        self.buffer
            .as_mut()
            .get_mut(field::OPTIONS..end)
            .unwrap_or(&mut [])
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }

    /// Computes and stores the checksum over pseudo-header, header and
    /// payload (the whole buffer).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, PROTOCOL_TCP, data.len() as u32);
        let c = checksum::finish(checksum::combine(&[ph, checksum::sum(data)]));
        self.set_checksum(c);
    }

    /// Stores the (not inverted) pseudo-header sum in the checksum field: what
    /// NICs with TCP checksum offload expect to start from (DPDK
    /// `RTE_MBUF_F_TX_TCP_CKSUM`, virtio `NEEDS_CSUM`).
    pub fn fill_pseudo_header_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.buffer.as_ref().len() as u32;
        self.set_checksum(checksum::pseudo_header(src, dst, PROTOCOL_TCP, len));
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Kind 0: end of the option list; what follows is padding.
    EndOfList,
    /// Kind 1: padding between options.
    NoOperation,
    /// Kind 2: maximum segment size (RFC 9293 §3.2).
    MaxSegmentSize(u16),
    /// Kind 3: window scale shift count (RFC 7323 §2).
    WindowScale(u8),
    /// Kind 4: SACK permitted (RFC 2018 §2).
    SackPermitted,
    /// Kind 5: one to four SACK blocks, left and right edges (RFC 2018 §3).
    SackRange([Option<(u32, u32)>; 4]),
    /// Kind 8: timestamps (RFC 7323 §3).
    TimeStamp {
        /// Sender's timestamp value.
        tsval: u32,
        /// Echoed timestamp.
        tsecr: u32,
    },
    /// Any other kind, skipped by its length.
    Unknown {
        /// The kind byte.
        kind: u8,
        /// The bytes after the length byte.
        data: &'a [u8],
    },
}

impl<'a> TcpOption<'a> {
    /// Parses the option at the start of `buffer`, returning what follows it.
    ///
    /// Rejected as [`Error::Malformed`]: an empty buffer, a missing length
    /// byte, a length below 2 or past the end of the buffer, and a known kind
    /// with the wrong length (MSS 4, window scale 3, SACK permitted 2,
    /// timestamps 10, SACK 2 + 8n with n in 1..=4).
    pub fn parse(buffer: &'a [u8]) -> Result<(&'a [u8], TcpOption<'a>), Error> {
        let (&kind, after_kind) = buffer.split_first().ok_or(Error::Malformed)?;
        match kind {
            field::OPT_END => return Ok((after_kind, TcpOption::EndOfList)),
            field::OPT_NOP => return Ok((after_kind, TcpOption::NoOperation)),
            _ => {}
        }
        // RFC 9293 §3.1: every other option has a length byte counting the
        // kind and length bytes; a bad length makes the rest unparseable.
        let len = usize::from(*after_kind.first().ok_or(Error::Malformed)?);
        if len < 2 {
            return Err(Error::Malformed);
        }
        let (opt, rest) = match (buffer.get(..len), buffer.get(len..)) {
            (Some(opt), Some(rest)) => (opt, rest),
            _ => return Err(Error::Malformed),
        };
        let data = opt.get(2..).unwrap_or(&[]);
        let option = match kind {
            field::OPT_MSS => match data {
                [a, b] => TcpOption::MaxSegmentSize(u16::from_be_bytes([*a, *b])),
                _ => return Err(Error::Malformed),
            },
            field::OPT_WS => match data {
                [s] => TcpOption::WindowScale(*s),
                _ => return Err(Error::Malformed),
            },
            field::OPT_SACKPERM => match data {
                [] => TcpOption::SackPermitted,
                _ => return Err(Error::Malformed),
            },
            field::OPT_TSTAMP => match (data.len(), read_u32(data, 0), read_u32(data, 4)) {
                (8, Some(tsval), Some(tsecr)) => TcpOption::TimeStamp { tsval, tsecr },
                _ => return Err(Error::Malformed),
            },
            field::OPT_SACKRNG => {
                // RFC 2018 §3: length 2 + 8n; at most 4 blocks fit in 40
                // bytes of options.
                if data.is_empty() || data.len() % 8 != 0 || data.len() > 32 {
                    return Err(Error::Malformed);
                }
                let mut ranges = [None; 4];
                for (slot, block) in ranges.iter_mut().zip(data.chunks_exact(8)) {
                    *slot = read_u32(block, 0).zip(read_u32(block, 4));
                }
                TcpOption::SackRange(ranges)
            }
            kind => TcpOption::Unknown { kind, data },
        };
        Ok((rest, option))
    }

    /// Bytes the option takes on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::SackRange(r) => 2 + 8 * r.iter().flatten().count(),
            TcpOption::TimeStamp { .. } => 10,
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option at the start of `buffer` and returns the rest.
    /// Only the `Some` blocks of a `SackRange` are written.
    ///
    /// # Panics
    /// If `buffer` is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<'b>(&self, buffer: &'b mut [u8]) -> &'b mut [u8] {
        let len = self.buffer_len();
        let (opt, rest) = buffer.split_at_mut(len);
        match *self {
            TcpOption::EndOfList => opt[0] = field::OPT_END,
            TcpOption::NoOperation => opt[0] = field::OPT_NOP,
            TcpOption::MaxSegmentSize(mss) => {
                opt[..2].copy_from_slice(&[field::OPT_MSS, 4]);
                opt[2..4].copy_from_slice(&mss.to_be_bytes());
            }
            TcpOption::WindowScale(s) => opt.copy_from_slice(&[field::OPT_WS, 3, s]),
            TcpOption::SackPermitted => opt.copy_from_slice(&[field::OPT_SACKPERM, 2]),
            TcpOption::SackRange(ranges) => {
                opt[0] = field::OPT_SACKRNG;
                opt[1] = len as u8;
                for (block, (l, r)) in opt[2..].chunks_exact_mut(8).zip(ranges.iter().flatten()) {
                    block[..4].copy_from_slice(&l.to_be_bytes());
                    block[4..].copy_from_slice(&r.to_be_bytes());
                }
            }
            TcpOption::TimeStamp { tsval, tsecr } => {
                opt[..2].copy_from_slice(&[field::OPT_TSTAMP, 10]);
                opt[2..6].copy_from_slice(&tsval.to_be_bytes());
                opt[6..10].copy_from_slice(&tsecr.to_be_bytes());
            }
            TcpOption::Unknown { kind, data } => {
                opt[0] = kind;
                opt[1] = len as u8;
                opt[2..].copy_from_slice(data);
            }
        }
        rest
    }
}

/// Iterator over the options of a segment: yields each option, stops after
/// `EndOfList` or at the end of the bytes, and yields one `Err` (then stops)
/// at a malformed option.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> TcpOptions<'a> {
    /// Iterates over option bytes (e.g. [`TcpPacket::options`]).
    pub fn new(options: &'a [u8]) -> TcpOptions<'a> {
        TcpOptions {
            rest: options,
            done: false,
        }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        match TcpOption::parse(self.rest) {
            Ok((rest, option)) => {
                self.rest = rest;
                // RFC 9293 §3.2: End of Option List ends the options; the
                // rest of the header is padding.
                self.done = option == TcpOption::EndOfList;
                Some(Ok(option))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A parsed TCP segment.
///
/// `flags` holds the control bits as on the wire; on emit, ACK is set exactly
/// when `ack_number` is `Some`. The urgent pointer is not represented: it is
/// emitted as zero and ignored on parse (RFC 6093 §5 advises against urgent
/// data; [`TcpPacket::urgent_at`] still reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: TcpSeqNumber,
    /// Acknowledgment number, when ACK is set.
    pub ack_number: Option<TcpSeqNumber>,
    /// Control bits (CWR ECE URG ACK PSH RST SYN FIN).
    pub flags: TcpFlags,
    /// Window (unscaled, as on the wire).
    pub window_len: u16,
    /// MSS option.
    pub max_seg_size: Option<u16>,
    /// Window scale option (received values above 14 read as 14).
    pub window_scale: Option<u8>,
    /// SACK-permitted option.
    pub sack_permitted: bool,
    /// SACK blocks (left, right edge), filled from the front. On emit only as
    /// many as fit in 40 bytes of options are written.
    pub sack_ranges: [Option<(u32, u32)>; 4],
    /// Timestamps option: (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
    /// The payload. [`emit`](TcpRepr::emit) ignores it (the payload is in
    /// place in the buffer); [`emit_with_payload`](TcpRepr::emit_with_payload)
    /// copies it.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parses and validates a segment. `src`/`dst` are the IPv4 addresses,
    /// for the pseudo-header. Errors: length problems (see
    /// [`TcpPacket::check_len`]), a zero port or a malformed option
    /// ([`Error::Malformed`]), a bad checksum when `caps.tcp` says software
    /// verifies ([`Error::Checksum`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) -> Result<TcpRepr<'a>, Error> {
        packet.check_len()?;
        // Port 0 is reserved and never valid on the wire.
        if packet.src_port() == 0 || packet.dst_port() == 0 {
            return Err(Error::Malformed);
        }
        if caps.tcp.verify_rx() && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        let bytes: &'a [u8] = <T as AsRef<[u8]>>::as_ref(packet.buffer);
        let header_len = packet.header_len();
        let options = bytes.get(field::OPTIONS..header_len).unwrap_or(&[]);
        let payload = bytes.get(header_len..).unwrap_or(&[]);

        let flags = TcpFlags::from_bits(packet.flags().bits() & 0x00ff);
        let mut repr = TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: flags.contains(TcpFlags::ACK).then(|| packet.ack_number()),
            flags,
            window_len: packet.window_len(),
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamp: None,
            payload,
        };
        for option in TcpOptions::new(options) {
            match option? {
                TcpOption::EndOfList | TcpOption::NoOperation => {}
                TcpOption::MaxSegmentSize(mss) => repr.max_seg_size = Some(mss),
                // RFC 7323 §2.3: a shift count above 14 is used as 14.
                TcpOption::WindowScale(s) => repr.window_scale = Some(s.min(MAX_WINDOW_SCALE)),
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::SackRange(r) => repr.sack_ranges = r,
                TcpOption::TimeStamp { tsval, tsecr } => repr.timestamp = Some((tsval, tsecr)),
                // RFC 9293 §3.2: unknown options are skipped by their length.
                TcpOption::Unknown { .. } => {}
            }
        }
        Ok(repr)
    }

    /// Bytes of options other than SACK blocks, as laid out by `emit`.
    fn base_options_len(&self) -> usize {
        let mut n = 0;
        if self.max_seg_size.is_some() {
            n += 4;
        }
        if self.timestamp.is_some() {
            n += 12; // SACK-permitted (or NOP NOP) + timestamps
        } else if self.sack_permitted {
            n += 4; // NOP NOP SACK-permitted
        }
        if self.window_scale.is_some() {
            n += 4; // NOP + window scale
        }
        n
    }

    /// SACK blocks `emit` writes: those present, as many as fit in the 40
    /// bytes of option space after the other options (RFC 2018 §3: three
    /// with timestamps).
    #[inline]
    pub fn sack_blocks_emitted(&self) -> usize {
        if self.sack_ranges.iter().all(Option::is_none) {
            // The common case.
            return 0;
        }
        let present = self.sack_ranges.iter().flatten().count();
        let room = (MAX_HEADER_LEN - HEADER_LEN - self.base_options_len()).saturating_sub(4) / 8;
        present.min(room)
    }

    /// Header length as emitted: 20 plus the options, every option padded to a
    /// 4-byte boundary with NOPs, as Linux lays them out. At most 60.
    pub fn header_len(&self) -> usize {
        let sacks = self.sack_blocks_emitted();
        let sack_len = if sacks > 0 { 4 + 8 * sacks } else { 0 };
        HEADER_LEN + self.base_options_len() + sack_len
    }

    /// Header plus payload length.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space the segment occupies: payload plus SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload.len()
            + usize::from(self.flags.contains(TcpFlags::SYN))
            + usize::from(self.flags.contains(TcpFlags::FIN))
    }

    /// Writes header and options into the first [`header_len`](Self::header_len)
    /// bytes of `packet`, whose payload is already in place after them (the
    /// buffer is `header_len() + payload length` bytes). The payload is never
    /// copied: it is only read for the checksum.
    ///
    /// When `caps.tcp` says software computes, the checksum covers the
    /// pseudo-header and the whole buffer; otherwise the field holds the
    /// pseudo-header sum, which offloading NICs start from.
    ///
    /// # Panics
    /// If the buffer is shorter than `header_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) {
        self.emit_header(packet.buffer.as_mut());
        if caps.tcp.compute_tx() {
            packet.fill_checksum(src, dst);
        } else {
            packet.fill_pseudo_header_checksum(src, dst);
        }
    }

    /// Writes header and options into the first
    /// [`header_len`](Self::header_len) bytes of `header`, the checksum
    /// field zero: for a caller that sums the header and a payload held
    /// elsewhere (scatter-gather transmit) itself. Returns the header
    /// length.
    ///
    /// # Panics
    /// If `header` is shorter than `header_len()`.
    pub fn emit_header(&self, header: &mut [u8]) -> usize {
        let sacks = self.sack_blocks_emitted();
        let options = self.base_options_len() + if sacks > 0 { 4 + 8 * sacks } else { 0 };
        let header_len = HEADER_LEN + options;
        let h = &mut header[..header_len];
        let mut flags = TcpFlags::from_bits(self.flags.bits() & 0x00ff);
        flags.set(TcpFlags::ACK, self.ack_number.is_some());
        let offset_flags = (((header_len / 4) as u16) << 12) | flags.bits();
        h[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        h[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        h[field::SEQ_NUM].copy_from_slice(&self.seq_number.0.to_be_bytes());
        let ack = self.ack_number.unwrap_or_default().0;
        h[field::ACK_NUM].copy_from_slice(&ack.to_be_bytes());
        h[field::FLAGS].copy_from_slice(&offset_flags.to_be_bytes());
        h[field::WIN_SIZE].copy_from_slice(&self.window_len.to_be_bytes());
        h[field::CHECKSUM].copy_from_slice(&[0, 0]);
        h[field::URGENT].copy_from_slice(&[0, 0]);
        self.emit_options(&mut h[field::OPTIONS..], sacks);
        header_len
    }

    /// The options as `header_len` counts them, `sacks` SACK blocks
    /// included: each padded to 4 bytes with NOPs, as Linux lays them out.
    fn emit_options(&self, buf: &mut [u8], sacks: usize) {
        use field::{OPT_MSS, OPT_NOP, OPT_SACKPERM, OPT_SACKRNG, OPT_TSTAMP, OPT_WS};
        let mut i = 0;
        if let Some(mss) = self.max_seg_size {
            let [hi, lo] = mss.to_be_bytes();
            buf[i..i + 4].copy_from_slice(&[OPT_MSS, 4, hi, lo]);
            i += 4;
        }
        match (self.timestamp, self.sack_permitted) {
            (Some((tsval, tsecr)), sack_permitted) => {
                let lead = if sack_permitted {
                    [OPT_SACKPERM, 2]
                } else {
                    [OPT_NOP, OPT_NOP]
                };
                buf[i..i + 2].copy_from_slice(&lead);
                buf[i + 2..i + 4].copy_from_slice(&[OPT_TSTAMP, 10]);
                buf[i + 4..i + 8].copy_from_slice(&tsval.to_be_bytes());
                buf[i + 8..i + 12].copy_from_slice(&tsecr.to_be_bytes());
                i += 12;
            }
            (None, true) => {
                buf[i..i + 4].copy_from_slice(&[OPT_NOP, OPT_NOP, OPT_SACKPERM, 2]);
                i += 4;
            }
            (None, false) => {}
        }
        if let Some(shift) = self.window_scale {
            buf[i..i + 4].copy_from_slice(&[OPT_NOP, OPT_WS, 3, shift]);
            i += 4;
        }
        if sacks > 0 {
            let len = (2 + 8 * sacks) as u8;
            buf[i..i + 4].copy_from_slice(&[OPT_NOP, OPT_NOP, OPT_SACKRNG, len]);
            i += 4;
            for (l, r) in self.sack_ranges.iter().flatten().take(sacks) {
                buf[i..i + 4].copy_from_slice(&l.to_be_bytes());
                buf[i + 4..i + 8].copy_from_slice(&r.to_be_bytes());
                i += 8;
            }
        }
        debug_assert_eq!(i, buf.len());
    }

    /// Copies the payload behind the header and emits the header: a
    /// convenience for tests and for small segments where copying is the
    /// cheaper choice. Returns the segment length (`buffer_len()`), or
    /// [`Error::Truncated`] if `buffer` is too short (nothing written).
    pub fn emit_with_payload(
        &self,
        buffer: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) -> Result<usize, Error> {
        let len = self.buffer_len();
        let seg = buffer.get_mut(..len).ok_or(Error::Truncated)?;
        seg[self.header_len()..].copy_from_slice(self.payload);
        self.emit(&mut TcpPacket::new_unchecked(seg), src, dst, caps);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Checksum;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const SW: ChecksumCaps = ChecksumCaps::SOFTWARE;
    const NIC: ChecksumCaps = ChecksumCaps {
        ipv4: Checksum::None,
        tcp: Checksum::None,
        icmpv4: Checksum::None,
    };

    // SYN 10.0.0.1:43210 -> 10.0.0.2:80 as Linux sends it: MSS 1460,
    // SACK permitted, timestamps, NOP, window scale 7.
    static SYN: [u8; 40] = [
        0xa8, 0xca, 0x00, 0x50, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x97, 0x90, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x37,
        0xa1, 0xb2, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    // PSH|ACK with NOP NOP timestamps and 16 bytes of payload.
    static DATA: [u8; 48] = [
        0xa8, 0xca, 0x00, 0x50, 0x1a, 0x2b, 0x3c, 0x4e, 0x5e, 0x6f, 0x70, 0x81, 0x80, 0x18, 0x01,
        0xf6, 0x6d, 0x65, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x00, 0x37, 0xa1, 0xc0, 0x9f, 0x00,
        0x12, 0x34, 0x47, 0x45, 0x54, 0x20, 0x2f, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e,
        0x31, 0x0d, 0x0a,
    ];

    // ACK 10.0.0.2:80 -> 10.0.0.1:43210 with timestamps and one SACK block.
    static SACK: [u8; 44] = [
        0x00, 0x50, 0xa8, 0xca, 0x5e, 0x6f, 0x70, 0x81, 0x1a, 0x2b, 0x3c, 0x5e, 0xb0, 0x10, 0x01,
        0xfd, 0x4e, 0x0f, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x9f, 0x00, 0x13, 0x00, 0x00, 0x37,
        0xa1, 0xc0, 0x01, 0x01, 0x05, 0x0a, 0x1a, 0x2b, 0x40, 0x00, 0x1a, 0x2b, 0x45, 0xb4,
    ];

    fn syn_repr() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 43210,
            dst_port: 80,
            seq_number: TcpSeqNumber(0x1a2b3c4d),
            ack_number: None,
            flags: TcpFlags::SYN,
            window_len: 64240,
            max_seg_size: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            sack_ranges: [None; 4],
            timestamp: Some((0x0037a1b2, 0)),
            payload: &[],
        }
    }

    fn data_repr() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 43210,
            dst_port: 80,
            seq_number: TcpSeqNumber(0x1a2b3c4e),
            ack_number: Some(TcpSeqNumber(0x5e6f7081)),
            flags: TcpFlags::PSH | TcpFlags::ACK,
            window_len: 502,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamp: Some((0x0037a1c0, 0x9f001234)),
            payload: b"GET / HTTP/1.1\r\n",
        }
    }

    fn sack_repr() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 80,
            dst_port: 43210,
            seq_number: TcpSeqNumber(0x5e6f7081),
            ack_number: Some(TcpSeqNumber(0x1a2b3c5e)),
            flags: TcpFlags::ACK,
            window_len: 509,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [Some((0x1a2b4000, 0x1a2b45b4)), None, None, None],
            timestamp: Some((0x9f001300, 0x0037a1c0)),
            payload: &[],
        }
    }

    #[test]
    fn deconstruct_syn() {
        let p = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 43210);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), TcpSeqNumber(0x1a2b3c4d));
        assert_eq!(p.ack_number(), TcpSeqNumber(0));
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags::SYN);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh());
        assert!(!p.urg() && !p.ece() && !p.cwr());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.checksum(), 0x9790);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &SYN[20..]);
        assert!(p.payload().is_empty());
        assert_eq!(p.segment_len(), 1);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(10, 0, 0, 3)));
        let opts: Vec<_> = TcpOptions::new(p.options()).map(Result::unwrap).collect();
        assert_eq!(
            opts,
            [
                TcpOption::MaxSegmentSize(1460),
                TcpOption::SackPermitted,
                TcpOption::TimeStamp {
                    tsval: 0x0037a1b2,
                    tsecr: 0
                },
                TcpOption::NoOperation,
                TcpOption::WindowScale(7),
            ]
        );
    }

    #[test]
    fn deconstruct_data() {
        let p = TcpPacket::new_checked(&DATA[..]).unwrap();
        assert_eq!(p.header_len(), 32);
        assert_eq!(p.flags(), TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(p.ack_number(), TcpSeqNumber(0x5e6f7081));
        assert_eq!(p.payload(), b"GET / HTTP/1.1\r\n");
        assert_eq!(p.segment_len(), 16);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn parse_fixtures() {
        let cases: [(&[u8], TcpRepr, Ipv4Addr, Ipv4Addr); 3] = [
            (&SYN, syn_repr(), SRC, DST),
            (&DATA, data_repr(), SRC, DST),
            (&SACK, sack_repr(), DST, SRC),
        ];
        for (bytes, repr, src, dst) in cases {
            let p = TcpPacket::new_checked(bytes).unwrap();
            assert_eq!(TcpRepr::parse(&p, src, dst, &SW).unwrap(), repr);
        }
    }

    #[test]
    fn construct_fixtures() {
        let cases: [(&[u8], TcpRepr, Ipv4Addr, Ipv4Addr); 3] = [
            (&SYN, syn_repr(), SRC, DST),
            (&DATA, data_repr(), SRC, DST),
            (&SACK, sack_repr(), DST, SRC),
        ];
        for (bytes, repr, src, dst) in cases {
            assert_eq!(repr.buffer_len(), bytes.len());
            let mut buf = vec![0xa5u8; bytes.len() + 10];
            let n = repr.emit_with_payload(&mut buf, src, dst, &SW).unwrap();
            assert_eq!(&buf[..n], bytes);
        }
    }

    #[test]
    fn emit_zero_copy() {
        // The payload is already in the buffer; emit writes only the header.
        let repr = data_repr();
        let hl = repr.header_len();
        let mut buf = vec![0u8; hl + repr.payload.len()];
        buf[hl..].copy_from_slice(repr.payload);
        let header_only = TcpRepr {
            payload: &[],
            ..repr
        };
        header_only.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, &SW);
        assert_eq!(&buf[..], &DATA[..]);
    }

    #[test]
    fn emit_offloaded_writes_pseudo_header_sum() {
        let repr = data_repr();
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit_with_payload(&mut buf, SRC, DST, &NIC).unwrap();
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(
            p.checksum(),
            checksum::pseudo_header(SRC, DST, 6, DATA.len() as u32)
        );
        // What the NIC then does: sum over the segment starting from there.
        let mut q = TcpPacket::new_unchecked(buf.clone());
        q.fill_checksum(SRC, DST);
        assert_eq!(q.into_inner(), DATA.to_vec());
        assert_eq!(
            repr.emit_with_payload(&mut [0u8; 40], SRC, DST, &SW),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn truncated_every_length() {
        for fixture in [&SYN[..], &DATA[..], &SACK[..]] {
            let hl = TcpPacket::new_unchecked(fixture).header_len();
            for len in 0..fixture.len() {
                let p = TcpPacket::new_unchecked(&fixture[..len]);
                assert_eq!(p.check_len().is_ok(), len >= hl, "len {len}");
                // Shorter than the header: Truncated. Header complete but
                // payload cut: the checksum no longer matches.
                let r = TcpRepr::parse(&p, SRC, DST, &SW);
                assert!(r.is_err(), "len {len}");
                if len < hl {
                    assert_eq!(r, Err(Error::Truncated));
                    assert_eq!(TcpRepr::parse(&p, SRC, DST, &NIC), Err(Error::Truncated));
                } else {
                    let r = TcpRepr::parse(&p, SRC, DST, &NIC).unwrap();
                    assert_eq!(r.payload, &fixture[hl..len]);
                }
            }
        }
    }

    #[test]
    fn bad_data_offset() {
        let mut buf = DATA;
        buf[12] = 0x40; // 16-byte header
        assert_eq!(
            TcpPacket::new_checked(&buf[..]).err(),
            Some(Error::Malformed)
        );
        buf[12] = 0xf0; // 60-byte header in 48 bytes
        assert_eq!(
            TcpPacket::new_checked(&buf[..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn bad_checksum_detected_or_trusted() {
        let mut buf = DATA;
        buf[40] ^= 0x20; // flip a payload bit
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert!(!p.verify_checksum(SRC, DST));
        assert_eq!(TcpRepr::parse(&p, SRC, DST, &SW), Err(Error::Checksum));
        for tcp in [Checksum::Tx, Checksum::None] {
            let caps = ChecksumCaps { tcp, ..SW };
            let r = TcpRepr::parse(&p, SRC, DST, &caps).unwrap();
            assert_eq!(r.seq_number, data_repr().seq_number);
        }
    }

    #[test]
    fn zero_port_rejected() {
        let mut buf = SYN;
        buf[0] = 0;
        buf[1] = 0;
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, SRC, DST, &NIC), Err(Error::Malformed));
    }

    /// A SYN whose options are `opts` (padded with EOL to a multiple of 4),
    /// with a valid checksum.
    fn syn_with_options(opts: &[u8]) -> Vec<u8> {
        let padded = opts.len().div_ceil(4) * 4;
        let mut buf = vec![0u8; 20 + padded];
        buf[..20].copy_from_slice(&SYN[..20]);
        buf[20..20 + opts.len()].copy_from_slice(opts);
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        p.set_header_len(20 + padded);
        p.fill_checksum(SRC, DST);
        buf
    }

    #[test]
    fn malformed_options_rejected() {
        let ts = [8u8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        let cases: &[(&str, &[u8])] = &[
            ("length byte missing", &[2]),
            ("length byte missing after NOPs", &[1, 1, 1, 8]),
            ("length 0", &[0x1e, 0, 0, 0]),
            ("length 1", &[0x1e, 1, 0, 0]),
            ("length past the end", &[0x1e, 9, 0, 0]),
            ("timestamps past the end", &ts[..8]),
            ("MSS length 3", &[2, 3, 5]),
            ("MSS length 5", &[2, 5, 5, 0xb4, 0]),
            ("WS length 2", &[3, 2]),
            ("WS length 4", &[3, 4, 7, 0]),
            ("SACK-permitted length 3", &[4, 3, 0]),
            ("timestamps length 8", &[8, 8, 0, 0, 0, 1, 0, 0]),
            (
                "timestamps length 12",
                &[8, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0],
            ),
            ("SACK without blocks", &[5, 2]),
            ("SACK length 10 + 1", &[5, 11, 0, 0, 0, 1, 0, 0, 0, 2, 9]),
            ("SACK length 6", &[5, 6, 0, 0, 0, 1]),
        ];
        for (what, opts) in cases {
            let buf = syn_with_options(opts);
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            assert_eq!(
                TcpRepr::parse(&p, SRC, DST, &SW),
                Err(Error::Malformed),
                "{what}"
            );
        }
        // Five SACK blocks (42 bytes) can only come from a bare option buffer.
        let mut five = vec![5u8, 42];
        five.extend_from_slice(&[0; 40]);
        assert_eq!(TcpOption::parse(&five), Err(Error::Malformed));
        assert_eq!(TcpOption::parse(&[]), Err(Error::Malformed));
    }

    #[test]
    fn option_parser_edge_cases() {
        // Unknown kinds (TFO cookie 34, MPTCP 30) are skipped by length.
        let opts = [34u8, 6, 0xde, 0xad, 0xbe, 0xef, 2, 4, 0x05, 0xb4, 30, 2];
        let buf = syn_with_options(&opts);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        let r = TcpRepr::parse(&p, SRC, DST, &SW).unwrap();
        assert_eq!(r.max_seg_size, Some(1460));
        assert_eq!(r.window_scale, None);
        let parsed: Vec<_> = TcpOptions::new(&opts).collect();
        assert_eq!(
            parsed[0],
            Ok(TcpOption::Unknown {
                kind: 34,
                data: &[0xde, 0xad, 0xbe, 0xef]
            })
        );
        assert_eq!(
            parsed[2],
            Ok(TcpOption::Unknown {
                kind: 30,
                data: &[]
            })
        );

        // End of list: what follows is padding, even if it looks malformed.
        let buf = syn_with_options(&[3, 3, 2, 0, 2, 1, 0xff]);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        let r = TcpRepr::parse(&p, SRC, DST, &SW).unwrap();
        assert_eq!(r.window_scale, Some(2));

        // The iterator stops after the first error.
        let mut it = TcpOptions::new(&[1, 2, 1, 1]);
        assert_eq!(it.next(), Some(Ok(TcpOption::NoOperation)));
        assert_eq!(it.next(), Some(Err(Error::Malformed)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn window_scale_clamped() {
        // RFC 7323 §2.3: shift counts above 14 are used as 14.
        for (shift, expect) in [(14u8, 14u8), (15, 14), (255, 14), (0, 0)] {
            let buf = syn_with_options(&[1, 3, 3, shift]);
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            let r = TcpRepr::parse(&p, SRC, DST, &SW).unwrap();
            assert_eq!(r.window_scale, Some(expect));
        }
    }

    #[test]
    fn sack_blocks_limited_by_option_space() {
        let four = [Some((1, 2)), Some((3, 4)), Some((5, 6)), Some((7, 8))];
        let mut r = TcpRepr {
            sack_ranges: four,
            timestamp: None,
            ..sack_repr()
        };
        assert_eq!(r.sack_blocks_emitted(), 4);
        assert_eq!(r.header_len(), 56);
        r.timestamp = Some((1, 2));
        assert_eq!(r.sack_blocks_emitted(), 3);
        assert_eq!(r.header_len(), 60);
        let all = TcpRepr {
            max_seg_size: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            ..r
        };
        assert_eq!(all.sack_blocks_emitted(), 2);
        assert_eq!(all.header_len(), 60);
        let mut buf = [0u8; 60];
        all.emit_with_payload(&mut buf, SRC, DST, &SW).unwrap();
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        let back = TcpRepr::parse(&p, SRC, DST, &SW).unwrap();
        assert_eq!(back.sack_ranges, [Some((1, 2)), Some((3, 4)), None, None]);
    }

    #[test]
    fn seq_number_arithmetic() {
        let a = TcpSeqNumber(u32::MAX - 1);
        assert_eq!(a + 3usize, TcpSeqNumber(1));
        assert_eq!(a + 3u32, TcpSeqNumber(1));
        assert_eq!(TcpSeqNumber(1) - 3usize, a);
        assert_eq!((a + 3usize) - a, 3);
        assert_eq!(a - (a + 3usize), -3);
        assert!(a < a + 1usize);
        assert!(a + 1usize > a);
        assert!(a + 10usize > a);
        assert_eq!((a + 10usize).max(a), a + 10usize);
        assert_eq!((a + 10usize).min(a), a);
        assert_eq!(TcpSeqNumber(5).wrapping_distance(TcpSeqNumber(u32::MAX)), 6);
        let mut b = a;
        b += 2usize;
        b += 2u32;
        b -= 1u32;
        assert_eq!(b, TcpSeqNumber(1));
        // Half the space apart: unordered (RFC 1982 §3.2).
        let x = TcpSeqNumber(0);
        let y = TcpSeqNumber(0x8000_0000);
        assert_eq!(x.partial_cmp(&y), None);
        let (x_lt_y, y_lt_x) = (x < y, y < x);
        assert!(!x_lt_y && !y_lt_x && x != y);
        assert!(TcpSeqNumber(0x7fff_ffff) > x);
        assert!(TcpSeqNumber(0x8000_0001) < x);
    }

    #[test]
    fn flags_debug_and_ops() {
        assert_eq!(
            format!("{:?}", TcpFlags::SYN | TcpFlags::ACK),
            "TcpFlags(SYN | ACK)"
        );
        assert_eq!(format!("{:?}", TcpFlags::empty()), "TcpFlags(empty)");
        assert_eq!(
            format!("{:?}", TcpFlags::from_bits(0x101)),
            "TcpFlags(FIN | 0x100)"
        );
        let mut f = TcpFlags::empty();
        f.insert(TcpFlags::FIN | TcpFlags::PSH);
        assert!(f.contains(TcpFlags::FIN) && !f.contains(TcpFlags::FIN | TcpFlags::SYN));
        assert!(f.intersects(TcpFlags::FIN | TcpFlags::SYN));
        f.remove(TcpFlags::FIN);
        assert_eq!(f, TcpFlags::PSH);
        assert_eq!(f & TcpFlags::PSH, TcpFlags::PSH);
        assert!(!f.is_empty());
    }

    #[test]
    fn segment_len_counts_syn_fin() {
        assert_eq!(syn_repr().segment_len(), 1);
        assert_eq!(data_repr().segment_len(), 16);
        let fin = TcpRepr {
            flags: TcpFlags::FIN | TcpFlags::ACK,
            ..data_repr()
        };
        assert_eq!(fin.segment_len(), 17);
    }

    fn arb_sack() -> impl Strategy<Value = [Option<(u32, u32)>; 4]> {
        proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=4).prop_map(|v| {
            let mut out = [None; 4];
            for (slot, r) in out.iter_mut().zip(v) {
                *slot = Some(r);
            }
            out
        })
    }

    prop_compose! {
        fn arb_repr()(
            src_port in 1u16..,
            dst_port in 1u16..,
            seq in any::<u32>(),
            ack in proptest::option::of(any::<u32>()),
            flag_bits in any::<u8>(),
            window_len in any::<u16>(),
            max_seg_size in proptest::option::of(any::<u16>()),
            window_scale in proptest::option::of(0u8..=14),
            sack_permitted in any::<bool>(),
            sack_ranges in arb_sack(),
            timestamp in proptest::option::of((any::<u32>(), any::<u32>())),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) -> (TcpRepr<'static>, Vec<u8>) {
            let mut flags = TcpFlags::from_bits(u16::from(flag_bits));
            flags.set(TcpFlags::ACK, ack.is_some());
            (TcpRepr {
                src_port,
                dst_port,
                seq_number: TcpSeqNumber(seq),
                ack_number: ack.map(TcpSeqNumber),
                flags,
                window_len,
                max_seg_size,
                window_scale,
                sack_permitted,
                sack_ranges,
                timestamp,
                payload: &[],
            }, payload)
        }
    }

    proptest! {
        #[test]
        fn roundtrip((repr, payload) in arb_repr()) {
            let repr = TcpRepr { payload: &payload, ..repr };
            let hl = repr.header_len();
            prop_assert!(hl <= MAX_HEADER_LEN && hl.is_multiple_of(4));
            let mut buf = vec![0u8; repr.buffer_len()];
            prop_assert_eq!(repr.emit_with_payload(&mut buf, SRC, DST, &SW), Ok(buf.len()));
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(p.header_len(), hl);
            let back = TcpRepr::parse(&p, SRC, DST, &SW).unwrap();
            // SACK blocks beyond the option space are dropped on emit.
            let mut expect = repr;
            let n = repr.sack_blocks_emitted();
            for slot in expect.sack_ranges.iter_mut().skip(n) {
                *slot = None;
            }
            prop_assert_eq!(back, expect);
        }

        #[test]
        fn never_panics(
            header in proptest::collection::vec(any::<u8>(), 20),
            options in proptest::collection::vec(any::<u8>(), 0..44),
            payload_len in 0usize..8,
        ) {
            let mut buf = header;
            buf.extend_from_slice(&options);
            buf.extend(std::iter::repeat_n(0u8, payload_len));
            let p = TcpPacket::new_unchecked(&buf[..]);
            if p.check_len().is_ok() {
                let _ = (p.options(), p.payload(), p.flags(), p.segment_len());
                let _ = TcpOptions::new(p.options()).count();
            }
            let _ = TcpRepr::parse(&p, SRC, DST, &NIC);
            // Also with a plausible data offset, so the options get parsed.
            let mut buf2 = buf.clone();
            buf2[12] = (((20 + options.len()) / 4) as u8) << 4;
            let p = TcpPacket::new_unchecked(&buf2[..]);
            let _ = TcpRepr::parse(&p, SRC, DST, &NIC);
            let _ = TcpOptions::new(&options).count();
        }
    }
}
