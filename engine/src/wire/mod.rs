//! Zero-copy wire formats.
//!
//! Each header is a view `XxxPacket<T: AsRef<[u8]>>` over a byte buffer, in the
//! smoltcp style: `new_unchecked` wraps, `new_checked` wraps and calls
//! `check_len`, getters live in `impl<T: AsRef<[u8]>>`, setters in
//! `impl<T: AsRef<[u8]> + AsMut<[u8]>>`, and a `field` module names the byte
//! ranges. A `Repr` type is the parsed, owned-or-borrowed form of a header:
//! `Repr::parse` validates a view, `Repr::emit` writes one.
//!
//! Contract of every module here:
//! - once `check_len()` has succeeded, no accessor panics (accessors whose
//!   range depends on a field a setter may have changed since fall back to an
//!   empty slice instead of panicking);
//! - `Repr::parse` checks the length itself and never panics on any input;
//! - `Repr::emit` never panics on a buffer of at least `buffer_len()` (or
//!   `header_len()` where the payload is already in place) bytes.
//!
//! No code in this module uses `unsafe`.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use checksum::{Checksum, ChecksumCaps};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmp::{DstUnreachable, DstUnreachable as Icmpv4DstUnreachable};
pub use icmp::{Icmpv4Message, Icmpv4Packet, Icmpv4Repr};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use tcp::{TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr, TcpSeqNumber};

/// Why a header could not be parsed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header (or a length field) says.
    Truncated,
    /// A field holds a value the protocol forbids.
    Malformed,
    /// The checksum does not match the contents.
    Checksum,
    /// Well formed, but a variant this engine does not handle.
    Unsupported,
    /// An IPv4 fragment: the engine never reassembles, callers count and drop.
    Fragment,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "packet shorter than its header or length field",
            Error::Malformed => "header field holds a forbidden value",
            Error::Checksum => "checksum mismatch",
            Error::Unsupported => "unsupported protocol variant",
            Error::Fragment => "IPv4 fragment (not reassembled)",
        })
    }
}

impl std::error::Error for Error {}

/// Reads a big-endian `u16` at `at`; `None` past the end of `data`.
#[inline]
pub(crate) fn read_u16(data: &[u8], at: usize) -> Option<u16> {
    match data.get(at..at.checked_add(2)?)? {
        [a, b] => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    }
}
/// Reads a big-endian `u32` at `at`; `None` past the end of `data`.
#[inline]
pub(crate) fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    match data.get(at..at.checked_add(4)?)? {
        [a, b, c, d] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}
