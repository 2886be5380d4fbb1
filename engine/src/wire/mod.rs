//! Zero-copy wire formats.
//!
//! Each header is a view `Packet<T: AsRef<[u8]>>` over a byte buffer. The
//! contract of every view: once `check_len()` has succeeded, no accessor
//! panics; `Repr::parse` validates and `Repr::emit` never panics on a buffer
//! of at least `Repr::buffer_len()` bytes.

pub mod checksum;
pub mod ethernet;

pub use checksum::ChecksumCaps;
pub use ethernet::EthernetAddress;
