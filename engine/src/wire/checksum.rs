//! The Internet checksum (RFC 1071) and the checksum capabilities of a port.

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
