//! TCP building blocks (placeholder docs; see below).
#![forbid(unsafe_code)]

use core::net::Ipv4Addr;

pub mod cc;
pub mod isn;
pub mod rtt;
pub mod siphash;
pub mod syncookie;
pub mod timer;
pub mod wheel;

/// A connection's addresses and ports, from our side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FourTuple {
    /// Our address.
    pub local_addr: Ipv4Addr,
    /// Our port.
    pub local_port: u16,
    /// The peer's address.
    pub remote_addr: Ipv4Addr,
    /// The peer's port.
    pub remote_port: u16,
}

impl FourTuple {
    /// Network-order bytes: local address, local port, remote address,
    /// remote port (the argument order of RFC 6528 §3's `F`).
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.local_addr.octets());
        b[4..6].copy_from_slice(&self.local_port.to_be_bytes());
        b[6..10].copy_from_slice(&self.remote_addr.octets());
        b[10..].copy_from_slice(&self.remote_port.to_be_bytes());
        b
    }
}
