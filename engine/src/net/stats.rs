//! Counters of the layer 2/3 host.
//!
//! One plain struct of `u64` fields per interface, owned by the worker that
//! owns the interface: no atomics. Every frame that enters the interface is
//! either delivered, answered, or dropped with exactly one `drop_*` counter
//! incremented, so the drop counters explain every loss.

macro_rules! net_stats {
    ($( $(#[doc = $doc:literal])* $name:ident, )*) => {
        /// Counters of one interface. See the module documentation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[non_exhaustive]
        pub struct NetStats {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        impl NetStats {
            /// Every counter's name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name),)*];

            /// Every counter as `(name, value)`, in declaration order, for
            /// printing or serialising.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$((stringify!($name), self.$name),)*].into_iter()
            }

            /// Adds `other` to `self`, counter by counter (to total workers).
            pub fn accumulate(&mut self, other: &NetStats) {
                $( self.$name = self.$name.wrapping_add(other.$name); )*
            }
        }
    };
}

net_stats! {
    /// Ethernet frames received (every frame handed to `receive`).
    eth_rx_frames,
    /// Bytes of those frames.
    eth_rx_bytes,
    /// Ethernet frames handed out by `poll_transmit`.
    eth_tx_frames,
    /// Bytes of those frames.
    eth_tx_bytes,

    /// ARP requests received (for us or not).
    arp_rx_requests,
    /// ARP replies received (for us or not).
    arp_rx_replies,
    /// ARP requests sent (resolution, retries, refreshes, announcements).
    arp_tx_requests,
    /// ARP replies sent.
    arp_tx_replies,
    /// Gratuitous ARP announcements sent (also counted in `arp_tx_requests`).
    arp_tx_announcements,
    /// ARP packets about other hosts, not merged into an existing entry and
    /// otherwise ignored (RFC 826).
    arp_not_for_us,
    /// Neighbours resolved (an incomplete entry completed).
    arp_resolved,
    /// Cache entries that expired.
    arp_expired,
    /// Resolved entries evicted to make room.
    arp_evicted,
    /// ARP packets claiming one of our addresses from another MAC.
    arp_conflicts,

    /// IPv4 packets that passed validation and were addressed to us.
    ipv4_rx_packets,
    /// IPv4 packets handed to the transport layer.
    ipv4_delivered,
    /// IPv4 packets sent (queued for transmit or waiting for ARP).
    ipv4_tx_packets,

    /// ICMP echo requests received.
    icmp_rx_echo_requests,
    /// ICMP echo replies sent.
    icmp_tx_echo_replies,
    /// ICMP echo requests sent.
    icmp_tx_echo_requests,
    /// ICMP echo replies received.
    icmp_rx_echo_replies,
    /// ICMP destination unreachable messages received.
    icmp_rx_unreachable,
    /// Other ICMP messages received and ignored.
    icmp_rx_other,

    /// Dropped: shorter than the headers it claims (Ethernet, ARP, IPv4, ICMP).
    drop_truncated,
    /// Dropped: IPv4 header or ICMP checksum wrong.
    drop_bad_checksum,
    /// Dropped: Ethernet destination neither our MAC nor broadcast.
    drop_not_our_mac,
    /// Dropped: IPv4 destination not one of our addresses or broadcasts.
    drop_not_our_ip,
    /// Dropped: 802.1Q tag for a VLAN we are not on, or a tag we do not expect.
    drop_wrong_vlan,
    /// Dropped: ethertype neither IPv4 nor ARP (QinQ included).
    drop_unsupported_ethertype,
    /// Dropped: IPv4 protocol the host does not handle (none so far; the
    /// transport layer counts its own).
    drop_unsupported_protocol,
    /// Dropped: IPv4 fragment (no reassembly).
    drop_fragment,
    /// Dropped: header fields inconsistent (IPv4 version or IHL, lengths,
    /// ARP hardware or protocol type, ICMP type fields).
    drop_malformed,
    /// Dropped: IPv4 source is a broadcast or multicast address
    /// (RFC 1122 §3.2.1.3).
    drop_martian_source,
    /// Dropped: ICMP echo request to a broadcast address (RFC 1122 §3.2.2.6).
    drop_broadcast_echo,
    /// Dropped: a frame waiting for ARP found the neighbour's queue full.
    drop_arp_queue_full,
    /// Dropped: a frame waited for a neighbour that never answered.
    drop_arp_failed,
    /// Dropped: a frame for a new neighbour with the ARP cache full of
    /// unresolved entries.
    drop_arp_cache_full,
    /// Dropped: no route to the destination.
    drop_no_route,
    /// Dropped: the buffer pool was exhausted.
    drop_no_buffer,
    /// Dropped: the transmit queue was full.
    drop_tx_queue_full,
    /// Events dropped because the event queue was full.
    events_dropped,
}

impl NetStats {
    /// Sum of every `drop_*` counter.
    pub fn total_drops(&self) -> u64 {
        self.iter()
            .filter(|(n, _)| n.starts_with("drop_"))
            .map(|(_, v)| v)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iter_names_every_field_in_order() {
        let mut s = NetStats {
            eth_rx_frames: 3,
            drop_fragment: 2,
            drop_no_route: 1,
            ..NetStats::default()
        };
        let v: Vec<_> = s.iter().collect();
        assert_eq!(v.len(), NetStats::NAMES.len());
        assert_eq!(v[0], ("eth_rx_frames", 3));
        assert!(v.contains(&("drop_fragment", 2)));
        assert_eq!(s.total_drops(), 3);
        let copy = s;
        s.accumulate(&copy);
        assert_eq!(s.eth_rx_frames, 6);
        assert_eq!(s.total_drops(), 6);
        let mut names = NetStats::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), NetStats::NAMES.len());
    }
}
