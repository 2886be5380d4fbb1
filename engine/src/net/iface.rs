//! The sans-IO IPv4 host on one Ethernet port: ARP, IPv4 input validation,
//! routing, ICMP echo, counters.
//!
//! An [`Interface`] does no I/O and reads no clock. Its owner (a worker, or
//! the simulator) drives it in this order, once per loop iteration with one
//! clock reading `now`:
//!
//! 1. [`receive`](Interface::receive) every frame from the device's
//!    `rx_burst`. ARP and ICMP echo are answered inside (replies queued for
//!    transmit); IPv4 packets for the transport layer come back as an
//!    [`Ipv4Delivery`]; everything else is dropped and counted.
//! 2. Send with [`send_ipv4`](Interface::send_ipv4) (or
//!    [`send_ping`](Interface::send_ping)): headers go into the payload
//!    buffer's headroom, the frame is queued for transmit or waits for ARP.
//! 3. [`handle_timeout`](Interface::handle_timeout) when `now` has reached
//!    [`poll_at`](Interface::poll_at): gratuitous ARP at start, ARP retries,
//!    refreshes and expiry. Calling it early is harmless.
//! 4. Drain [`poll_transmit`](Interface::poll_transmit) into the device's
//!    `tx_burst`, and [`poll_event`](Interface::poll_event) for what the
//!    application should know (echo replies, unreachable hosts).
//!
//! Every buffer comes from the caller's [`BufAlloc`]; when it is exhausted
//! the frame that needed it is dropped and counted (`drop_no_buffer`). No
//! input panics: every read is bounds-checked by the `wire` views first.

use core::fmt;
use core::net::Ipv4Addr;
use std::collections::VecDeque;

use crate::buf::{BufAlloc, PacketBuf};
use crate::net::arp::{ArpAction, ArpCache, ArpConfig, Neighbour, Resolve, Update};
use crate::net::route::{Ipv4Cidr, NextHop, Route, RouteError, RoutingTable};
use crate::net::stats::NetStats;
use crate::time::Instant;
use crate::wire::checksum;
use crate::wire::ipv4::DEFAULT_TTL;
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, ChecksumCaps, Error as WireError, EtherType, EthernetAddress,
    EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
};

/// Smallest MTU every IPv4 link must carry (RFC 791: 68 octets).
pub const MIN_MTU: usize = 68;

/// Most dropped buffers kept for [`Interface::poll_recycle`].
pub const RECYCLE_QUEUE_LEN: usize = 1024;

/// IPv4 header length without options.
const IPV4_HEADER_LEN: usize = 20;

/// Everything an [`Interface`] needs to start.
#[derive(Debug, Clone)]
pub struct InterfaceConfig {
    /// The port's MAC address (unicast).
    pub mac: EthernetAddress,
    /// Our addresses with their subnets; each subnet becomes a connected route.
    pub addrs: Vec<Ipv4Cidr>,
    /// Default gateway, on a connected subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Static routes; each must name a gateway (`via`) on a connected subnet.
    pub routes: Vec<Route>,
    /// Largest IPv4 packet (layer 3 MTU).
    pub mtu: usize,
    /// Which checksums software computes and verifies.
    pub checksum: ChecksumCaps,
    /// 802.1Q VLAN to tag sent frames with and accept received frames on;
    /// `None`: untagged only.
    pub vlan: Option<u16>,
    /// Accept Ethernet multicast destinations (we join no group, so the IP
    /// layer drops them unless broadcast); `false` drops them at layer 2.
    pub accept_multicast: bool,
    /// Hand IPv4 protocols other than TCP and UDP to the caller (`true`) or
    /// drop them as `drop_unsupported_protocol`.
    pub deliver_other_protocols: bool,
    /// Announce our addresses with gratuitous ARP at start (RFC 5227 §3).
    pub announce: bool,
    /// Neighbour cache settings.
    pub arp: ArpConfig,
    /// Most frames waiting in the transmit queue.
    pub tx_queue_len: usize,
    /// Most events waiting in the event queue.
    pub event_queue_len: usize,
}

impl InterfaceConfig {
    /// A configuration with one address and every default: MTU 1500,
    /// software checksums, no VLAN, no gateway, gratuitous ARP on.
    pub fn new(mac: EthernetAddress, addr: Ipv4Cidr) -> Self {
        InterfaceConfig {
            mac,
            addrs: vec![addr],
            gateway: None,
            routes: Vec::new(),
            mtu: 1500,
            checksum: ChecksumCaps::SOFTWARE,
            vlan: None,
            accept_multicast: false,
            deliver_other_protocols: true,
            announce: true,
            arp: ArpConfig::default(),
            tx_queue_len: 1024,
            event_queue_len: 1024,
        }
    }
}

/// Why an [`InterfaceConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The MAC is a group or all-zero address.
    MacNotUnicast(EthernetAddress),
    /// No IPv4 address configured.
    NoAddress,
    /// An address is unspecified, multicast, broadcast, or its subnet's
    /// network or broadcast address.
    BadAddress(Ipv4Cidr),
    /// MTU below 68 (RFC 791).
    MtuTooSmall(usize),
    /// A route or the gateway was refused.
    Route(RouteError),
    /// A static route has no gateway.
    RouteWithoutGateway(Ipv4Cidr),
    /// VLAN id outside 1..=4094.
    BadVlan(u16),
    /// A queue length of zero.
    ZeroQueue,
    /// ARP settings inconsistent.
    Arp(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MacNotUnicast(m) => write!(f, "MAC address {m} is not a unicast address"),
            ConfigError::NoAddress => f.write_str("the interface has no IPv4 address"),
            ConfigError::BadAddress(a) => write!(
                f,
                "{a} is not a usable host address (unspecified, multicast, broadcast, or its subnet's network or broadcast address)"
            ),
            ConfigError::MtuTooSmall(m) => write!(f, "MTU {m} is below the IPv4 minimum of {MIN_MTU}"),
            ConfigError::Route(e) => write!(f, "route refused: {e}"),
            ConfigError::RouteWithoutGateway(d) => {
                write!(f, "static route to {d} has no gateway")
            }
            ConfigError::BadVlan(v) => write!(f, "VLAN id {v} is outside 1..=4094"),
            ConfigError::ZeroQueue => f.write_str("queue lengths must be at least 1"),
            ConfigError::Arp(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a send was refused. The frame is dropped and, where the cause is the
/// network's and not the caller's, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// No route to the destination (`drop_no_route`).
    NoRoute,
    /// The IPv4 packet would exceed the MTU; we set DF and do not fragment.
    TooBig,
    /// The payload buffer lacks headroom for the IPv4 and Ethernet headers.
    NoHeadroom,
    /// The buffer pool is exhausted (`drop_no_buffer`).
    NoBuffer,
    /// The destination is one of our own addresses (no loopback here).
    LocalDestination,
    /// The next hop's ARP queue is full (`drop_arp_queue_full`).
    ArpQueueFull,
    /// The ARP cache is full of unresolved entries (`drop_arp_cache_full`).
    ArpCacheFull,
    /// The transmit queue is full (`drop_tx_queue_full`).
    TxQueueFull,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::NoRoute => "no route to host",
            SendError::TooBig => "packet larger than the MTU",
            SendError::NoHeadroom => "not enough headroom for the headers",
            SendError::NoBuffer => "packet buffer pool exhausted",
            SendError::LocalDestination => "destination is a local address",
            SendError::ArpQueueFull => "too many packets waiting for ARP resolution",
            SendError::ArpCacheFull => "ARP cache full of unresolved neighbours",
            SendError::TxQueueFull => "transmit queue full",
        })
    }
}

impl std::error::Error for SendError {}

/// Something the application should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetEvent {
    /// An ICMP echo reply arrived.
    EchoReply {
        /// Who answered.
        from: Ipv4Addr,
        /// Identifier echoed back.
        ident: u16,
        /// Sequence number echoed back.
        seq_no: u16,
        /// Bytes of echo data.
        len: usize,
    },
    /// An ICMP destination unreachable arrived (RFC 792).
    Unreachable {
        /// The host or router that reported it.
        from: Ipv4Addr,
        /// Destination of the packet that could not be delivered.
        dst: Ipv4Addr,
        /// Protocol of that packet.
        protocol: IpProtocol,
        /// ICMP code (0 net, 1 host, 2 protocol, 3 port, 4 fragmentation needed).
        code: u8,
    },
    /// A neighbour did not answer ARP; frames waiting for it were dropped.
    NeighbourFailed {
        /// The next hop that never answered.
        addr: Ipv4Addr,
        /// How many frames were dropped.
        dropped: usize,
    },
    /// Another station claims one of our addresses (RFC 5227 §2.4).
    AddressConflict {
        /// Our address.
        addr: Ipv4Addr,
        /// The other station's MAC.
        mac: EthernetAddress,
    },
}

/// An IPv4 packet for the transport layer.
#[derive(Debug)]
pub struct Ipv4Delivery<B> {
    /// The validated IPv4 header.
    pub repr: Ipv4Repr,
    /// The received buffer, advanced to the IPv4 payload and cut to its length.
    pub buf: B,
}

/// The sans-IO IPv4 host on one port. See the module documentation for the
/// call order.
#[derive(Debug)]
pub struct Interface<B> {
    config: InterfaceConfig,
    routes: RoutingTable,
    arp: ArpCache<B>,
    arp_scratch: Vec<ArpAction<B>>,
    tx: VecDeque<B>,
    events: VecDeque<NetEvent>,
    stats: NetStats,
    announce_at: Option<Instant>,
    next_ident: u16,
    recycle: Vec<B>,
}

impl<B: PacketBuf> Interface<B> {
    /// A new interface. With `config.announce`, gratuitous ARP for every
    /// address is due at `now` (so [`poll_at`](Self::poll_at) returns `now`).
    pub fn new(config: InterfaceConfig, now: Instant) -> Result<Self, ConfigError> {
        if !config.mac.is_unicast() {
            return Err(ConfigError::MacNotUnicast(config.mac));
        }
        if config.addrs.is_empty() {
            return Err(ConfigError::NoAddress);
        }
        if config.mtu < MIN_MTU {
            return Err(ConfigError::MtuTooSmall(config.mtu));
        }
        if let Some(v) = config.vlan {
            if v == 0 || v > 4094 {
                return Err(ConfigError::BadVlan(v));
            }
        }
        if config.tx_queue_len == 0 || config.event_queue_len == 0 {
            return Err(ConfigError::ZeroQueue);
        }
        config.arp.validate().map_err(ConfigError::Arp)?;
        let mut routes = RoutingTable::new();
        for &a in &config.addrs {
            let ip = a.addr;
            let bad = ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_broadcast()
                || a.prefix_len > 32
                || (a.prefix_len < 31 && (a.broadcast() == Some(ip) || a.network().addr == ip));
            if bad {
                return Err(ConfigError::BadAddress(a));
            }
            routes.add_connected(a);
        }
        for r in &config.routes {
            let via = r.via.ok_or(ConfigError::RouteWithoutGateway(r.dest))?;
            routes.add_static(r.dest, via).map_err(ConfigError::Route)?;
        }
        if let Some(gw) = config.gateway {
            routes.set_default_gateway(gw).map_err(ConfigError::Route)?;
        }
        Ok(Interface {
            arp: ArpCache::new(config.arp),
            announce_at: config.announce.then_some(now),
            routes,
            arp_scratch: Vec::new(),
            tx: VecDeque::with_capacity(config.tx_queue_len.min(4096)),
            events: VecDeque::new(),
            stats: NetStats::default(),
            next_ident: 0,
            recycle: Vec::new(),
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &InterfaceConfig {
        &self.config
    }

    /// The port's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        self.config.mac
    }

    /// The routing table.
    pub fn routes(&self) -> &RoutingTable {
        &self.routes
    }

    /// The counters.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// The neighbour cache entry for `addr`, if any.
    pub fn neighbour(&self, addr: Ipv4Addr) -> Option<Neighbour> {
        self.arp.get(addr)
    }

    /// Whether the interface has work in progress besides routine timers:
    /// frames to transmit, announcements due, or neighbours being resolved.
    /// A simulation is idle when no interface is busy and no frame is in
    /// flight.
    pub fn is_busy(&self) -> bool {
        !self.tx.is_empty() || self.announce_at.is_some() || self.arp.unresolved() > 0
    }

    /// Whether `addr` is one of ours.
    pub fn has_addr(&self, addr: Ipv4Addr) -> bool {
        self.config.addrs.iter().any(|a| a.addr == addr)
    }

    /// Whether a received packet to `dst` is for this host: one of our
    /// addresses, the limited broadcast, or a connected subnet's broadcast
    /// (RFC 1122 §3.2.1.3, §3.3.6).
    fn accepts_ip(&self, dst: Ipv4Addr) -> bool {
        dst.is_broadcast()
            || self
                .config
                .addrs
                .iter()
                .any(|a| a.addr == dst || a.broadcast() == Some(dst))
    }

    fn is_broadcast_ip(&self, dst: Ipv4Addr) -> bool {
        dst.is_broadcast() || self.config.addrs.iter().any(|a| a.broadcast() == Some(dst))
    }

    /// Our address to send from towards next hop `hop` (RFC 1122 §3.3.4.3:
    /// the address on the subnet of the first hop), else the first one.
    fn source_for(&self, hop: Ipv4Addr) -> Ipv4Addr {
        self.config
            .addrs
            .iter()
            .find(|a| a.contains(hop))
            .or(self.config.addrs.first())
            .map_or(Ipv4Addr::UNSPECIFIED, |a| a.addr)
    }

    fn ethernet_header_len(&self) -> usize {
        if self.config.vlan.is_some() {
            crate::wire::ethernet::VLAN_HEADER_LEN
        } else {
            crate::wire::ethernet::HEADER_LEN
        }
    }

    fn push_event(&mut self, event: NetEvent) {
        if self.events.len() >= self.config.event_queue_len {
            self.stats.events_dropped += 1;
            return;
        }
        self.events.push_back(event);
    }

    /// Whether the transmit queue is full (a send now would be dropped):
    /// drain it to the device first.
    pub fn tx_queue_full(&self) -> bool {
        self.tx.len() >= self.config.tx_queue_len
    }

    fn push_tx(&mut self, frame: B) -> Result<(), SendError> {
        if self.tx.len() >= self.config.tx_queue_len {
            self.stats.drop_tx_queue_full += 1;
            self.discard(frame);
            return Err(SendError::TxQueueFull);
        }
        self.tx.push_back(frame);
        Ok(())
    }

    fn count_wire_error(&mut self, e: WireError) {
        let s = &mut self.stats;
        match e {
            WireError::Truncated => s.drop_truncated += 1,
            WireError::Checksum => s.drop_bad_checksum += 1,
            WireError::Fragment => s.drop_fragment += 1,
            WireError::Malformed | WireError::Unsupported => s.drop_malformed += 1,
        }
    }

    // ----- receive -----

    /// Processes one received frame. Returns an IPv4 packet for the
    /// transport layer, or `None` when the frame was consumed: answered (ARP,
    /// echo), turned into an event, or dropped and counted.
    pub fn receive(
        &mut self,
        now: Instant,
        frame: B,
        alloc: &mut impl BufAlloc<Buf = B>,
    ) -> Option<Ipv4Delivery<B>> {
        let _ = alloc; // replies are built in the received buffer
        self.stats.eth_rx_frames += 1;
        self.stats.eth_rx_bytes += frame.len() as u64;
        let (ethertype, eth_len, src_mac) = {
            let eth = match EthernetFrame::new_checked(frame.as_slice()) {
                Ok(eth) => eth,
                Err(e) => {
                    self.count_wire_error(e);
                    self.discard(frame);
                    return None;
                }
            };
            let dst = eth.dst_addr();
            let for_us = dst == self.config.mac
                || dst.is_broadcast()
                || (dst.is_multicast() && self.config.accept_multicast);
            if !for_us {
                self.stats.drop_not_our_mac += 1;
                self.discard(frame);
                return None;
            }
            if !eth.src_addr().is_unicast() {
                // A group or zero source address is never a station's own
                // (IEEE 802.3 §3.2.3).
                self.stats.drop_malformed += 1;
                self.discard(frame);
                return None;
            }
            if eth.ethertype() != EtherType::Vlan && eth.vlan_id() != self.config.vlan {
                self.stats.drop_wrong_vlan += 1;
                self.discard(frame);
                return None;
            }
            (eth.ethertype(), eth.header_len(), eth.src_addr())
        };
        match ethertype {
            EtherType::Arp => {
                self.receive_arp(now, frame, eth_len);
                None
            }
            EtherType::Ipv4 => self.receive_ipv4(frame, eth_len, src_mac),
            // A second 802.1Q tag (QinQ) or any other protocol.
            EtherType::Vlan | EtherType::Unknown(_) => {
                self.stats.drop_unsupported_ethertype += 1;
                self.discard(frame);
                None
            }
        }
    }

    fn receive_arp(&mut self, now: Instant, mut frame: B, eth_len: usize) {
        let parsed = frame
            .as_slice()
            .get(eth_len..)
            .ok_or(WireError::Truncated)
            .and_then(ArpPacket::new_checked)
            .and_then(|p| ArpRepr::parse(&p));
        let repr = match parsed {
            Ok(r) => r,
            Err(e) => {
                self.count_wire_error(e);
                self.discard(frame);
                return;
            }
        };
        match repr.operation {
            ArpOperation::Request => self.stats.arp_rx_requests += 1,
            ArpOperation::Reply => self.stats.arp_rx_replies += 1,
            // RFC 826 defines requests and replies only.
            _ => {
                self.stats.drop_malformed += 1;
                self.discard(frame);
                return;
            }
        }
        let sha = repr.source_hardware_addr;
        let spa = repr.source_protocol_addr;
        if !sha.is_unicast() || spa.is_broadcast() || spa.is_multicast() {
            self.stats.drop_malformed += 1;
            self.discard(frame);
            return;
        }
        if self.has_addr(spa) {
            // RFC 5227 §2.4: someone else uses our address. Never learn it.
            if sha != self.config.mac {
                self.stats.arp_conflicts += 1;
                self.push_event(NetEvent::AddressConflict {
                    addr: spa,
                    mac: sha,
                });
            }
            self.discard(frame);
            return;
        }
        let tpa = repr.target_protocol_addr;
        let for_us = self.has_addr(tpa);
        // RFC 826 "Packet Reception": update an existing entry for the
        // sender from any ARP packet (Merge_flag); add a new one only if we
        // are the target. An address probe (sender 0.0.0.0, RFC 5227 §2.1.1)
        // teaches nothing.
        if !spa.is_unspecified() {
            let mut released = Vec::new();
            let update = self.arp.update(now, spa, sha, for_us, |mac, mut f| {
                if let Some(dst) = f.as_mut_slice().get_mut(..6) {
                    dst.copy_from_slice(&mac.0);
                }
                released.push(f);
            });
            self.stats.arp_evicted = self.arp.evictions();
            if update == Update::Resolved {
                self.stats.arp_resolved += 1;
            }
            for f in released {
                let _ = self.push_tx(f);
            }
        }
        if !for_us {
            self.stats.arp_not_for_us += 1;
            self.discard(frame);
            return;
        }
        if repr.operation != ArpOperation::Request {
            self.discard(frame);
            return;
        }
        // RFC 826: swap sender and target, put in our address, set the
        // opcode to reply, send it to the requester (unicast), in place.
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.config.mac,
            source_protocol_addr: tpa,
            target_hardware_addr: sha,
            target_protocol_addr: spa,
        };
        let eth = EthernetRepr {
            src_addr: self.config.mac,
            dst_addr: sha,
            ethertype: EtherType::Arp,
            vlan: self.config.vlan,
        };
        frame.truncate(eth_len + reply.buffer_len());
        if frame.len() != eth_len + reply.buffer_len() {
            self.stats.drop_truncated += 1;
            self.discard(frame);
            return;
        }
        if !self.emit_arp(frame.as_mut_slice(), &eth, &reply) {
            self.stats.drop_malformed += 1;
            self.discard(frame);
            return;
        }
        if self.push_tx(frame).is_ok() {
            self.stats.arp_tx_replies += 1;
        }
    }

    fn emit_arp(&self, bytes: &mut [u8], eth: &EthernetRepr, arp: &ArpRepr) -> bool {
        let eth_len = eth.header_len();
        let Some((head, rest)) = bytes.split_at_mut_checked(eth_len) else {
            return false;
        };
        let mut frame = EthernetFrame::new_unchecked(head);
        eth.emit(&mut frame);
        let Some(arp_bytes) = rest.get_mut(..arp.buffer_len()) else {
            return false;
        };
        let mut pkt = ArpPacket::new_unchecked(arp_bytes);
        arp.emit(&mut pkt);
        true
    }

    fn receive_ipv4(
        &mut self,
        frame: B,
        eth_len: usize,
        src_mac: EthernetAddress,
    ) -> Option<Ipv4Delivery<B>> {
        let caps = self.config.checksum;
        let parsed = frame
            .as_slice()
            .get(eth_len..)
            .ok_or(WireError::Truncated)
            .and_then(Ipv4Packet::new_checked)
            .and_then(|p| Ok((Ipv4Repr::parse(&p, &caps)?, p.header_len())));
        let (repr, ip_len) = match parsed {
            Ok(r) => r,
            Err(e) => {
                self.count_wire_error(e);
                self.discard(frame);
                return None;
            }
        };
        if !self.accepts_ip(repr.dst_addr) {
            self.stats.drop_not_our_ip += 1;
            self.discard(frame);
            return None;
        }
        // RFC 1122 §3.2.1.3: a source address must not be broadcast or
        // multicast; such a packet is silently discarded.
        if repr.src_addr.is_broadcast()
            || repr.src_addr.is_multicast()
            || self.is_broadcast_ip(repr.src_addr)
        {
            self.stats.drop_martian_source += 1;
            self.discard(frame);
            return None;
        }
        self.stats.ipv4_rx_packets += 1;
        let payload_len = repr.payload_len;
        match repr.protocol {
            IpProtocol::Icmp => {
                self.receive_icmp(frame, eth_len, ip_len, &repr, src_mac);
                None
            }
            IpProtocol::Tcp | IpProtocol::Udp => {
                self.deliver(frame, eth_len + ip_len, payload_len, repr)
            }
            _ if self.config.deliver_other_protocols => {
                self.deliver(frame, eth_len + ip_len, payload_len, repr)
            }
            _ => {
                self.stats.drop_unsupported_protocol += 1;
                self.discard(frame);
                None
            }
        }
    }

    fn deliver(
        &mut self,
        mut frame: B,
        offset: usize,
        payload_len: usize,
        repr: Ipv4Repr,
    ) -> Option<Ipv4Delivery<B>> {
        if frame.advance(offset).is_err() {
            self.stats.drop_truncated += 1;
            self.discard(frame);
            return None;
        }
        // Drop Ethernet padding after the IPv4 total length.
        frame.truncate(payload_len);
        self.stats.ipv4_delivered += 1;
        Some(Ipv4Delivery { repr, buf: frame })
    }

    fn receive_icmp(
        &mut self,
        mut frame: B,
        eth_len: usize,
        ip_len: usize,
        ip: &Ipv4Repr,
        src_mac: EthernetAddress,
    ) {
        let caps = self.config.checksum;
        let icmp_start = eth_len + ip_len;
        let icmp_end = icmp_start + ip.payload_len;
        let event = {
            let parsed = frame
                .as_slice()
                .get(icmp_start..icmp_end)
                .ok_or(WireError::Truncated)
                .and_then(Icmpv4Packet::new_checked)
                .and_then(|p| {
                    Icmpv4Repr::parse(&p, &caps).map(|r| match r {
                        Icmpv4Repr::EchoRequest { .. } => None,
                        Icmpv4Repr::EchoReply {
                            ident,
                            seq_no,
                            data,
                        } => Some(NetEvent::EchoReply {
                            from: ip.src_addr,
                            ident,
                            seq_no,
                            len: data.len(),
                        }),
                        Icmpv4Repr::DstUnreachable { reason, header, .. } => {
                            Some(NetEvent::Unreachable {
                                from: ip.src_addr,
                                dst: header.dst_addr,
                                protocol: header.protocol,
                                code: reason.into(),
                            })
                        }
                    })
                });
            match parsed {
                Ok(ev) => ev,
                Err(WireError::Unsupported) => {
                    // Types other than echo and unreachable: RFC 1122
                    // §3.2.2 lets a host silently discard them.
                    self.stats.icmp_rx_other += 1;
                    self.discard(frame);
                    return;
                }
                Err(e) => {
                    self.count_wire_error(e);
                    self.discard(frame);
                    return;
                }
            }
        };
        match event {
            Some(ev @ NetEvent::EchoReply { .. }) => {
                self.stats.icmp_rx_echo_replies += 1;
                self.push_event(ev);
            }
            Some(ev) => {
                self.stats.icmp_rx_unreachable += 1;
                self.push_event(ev);
            }
            None => {
                self.stats.icmp_rx_echo_requests += 1;
                // RFC 1122 §3.2.2.6: an echo request to a broadcast address
                // MAY be silently discarded (it would make us an amplifier).
                if self.is_broadcast_ip(ip.dst_addr) {
                    self.stats.drop_broadcast_echo += 1;
                    self.discard(frame);
                    return;
                }
                frame.truncate(icmp_end);
                if self.echo_reply_in_place(frame.as_mut_slice(), eth_len, ip_len, src_mac) {
                    if self.push_tx(frame).is_ok() {
                        self.stats.icmp_tx_echo_replies += 1;
                    }
                } else {
                    self.stats.drop_truncated += 1;
                }
            }
        }
    }

    /// Turns a validated echo request into its reply, in place (RFC 792:
    /// "the source and destination addresses are simply reversed, the type
    /// code changed to 0, and the checksum recomputed"). The reply goes back
    /// to the MAC the request came from, so it follows the request's path
    /// without an ARP lookup. IP options are echoed as received
    /// (RFC 1122 §3.2.2.6 asks for record route and timestamp to be
    /// reflected; we reflect every option unchanged).
    fn echo_reply_in_place(
        &self,
        bytes: &mut [u8],
        eth_len: usize,
        ip_len: usize,
        src_mac: EthernetAddress,
    ) -> bool {
        let caps = self.config.checksum;
        let Some((eth, rest)) = bytes.split_at_mut_checked(eth_len) else {
            return false;
        };
        let Some((ip, icmp)) = rest.split_at_mut_checked(ip_len) else {
            return false;
        };
        if eth.len() < 12 || ip.len() < IPV4_HEADER_LEN || icmp.len() < 4 {
            return false;
        }
        eth[0..6].copy_from_slice(&src_mac.0);
        eth[6..12].copy_from_slice(&self.config.mac.0);
        // IPv4: swap source and destination, fresh TTL, recompute the sum.
        let mut src = [0u8; 4];
        src.copy_from_slice(&ip[12..16]);
        ip.copy_within(16..20, 12);
        ip[16..20].copy_from_slice(&src);
        ip[8] = DEFAULT_TTL;
        ip[10..12].copy_from_slice(&[0, 0]);
        if caps.ipv4.compute_tx() {
            let sum = checksum::finish(checksum::sum(ip));
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        // ICMP: type 8 -> 0; RFC 1624 incremental update of the checksum
        // for the one 16-bit word (type, code) that changed.
        let old_word = u16::from_be_bytes([icmp[0], icmp[1]]);
        icmp[0] = 0;
        let new_word = u16::from_be_bytes([icmp[0], icmp[1]]);
        if caps.icmpv4.compute_tx() {
            let old_sum = u16::from_be_bytes([icmp[2], icmp[3]]);
            let new_sum = checksum::update_u16(old_sum, old_word, new_word);
            icmp[2..4].copy_from_slice(&new_sum.to_be_bytes());
        }
        true
    }

    // ----- send -----

    /// Sends `payload` (the layer 4 bytes, at the front of the buffer, with
    /// headroom before them) to `dst` as one IPv4 packet (TTL 64, DF set).
    /// The IPv4 and Ethernet headers are written into the headroom; the
    /// payload is not copied.
    ///
    /// `Ok` means the frame is queued for transmit, or waits for ARP
    /// resolution (a request is sent when none is outstanding); if that
    /// resolution fails the frame is dropped later and
    /// [`NetEvent::NeighbourFailed`] raised.
    pub fn send_ipv4(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload: B,
        alloc: &mut impl BufAlloc<Buf = B>,
    ) -> Result<(), SendError> {
        self.send_ipv4_from(now, None, dst, protocol, payload, alloc)
    }

    /// [`send_ipv4`](Self::send_ipv4) with the source address given (a
    /// transport connection bound to one of several local addresses); it
    /// must be one of ours, else the route's source address is used.
    pub fn send_ipv4_from(
        &mut self,
        now: Instant,
        src: Option<Ipv4Addr>,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        mut payload: B,
        alloc: &mut impl BufAlloc<Buf = B>,
    ) -> Result<(), SendError> {
        // The payload is the buffer's bytes plus any attached payload
        // (scatter-gather: a TCP header with the data hanging off it).
        let payload_len = payload.frame_len();
        if payload_len + IPV4_HEADER_LEN > self.config.mtu {
            self.discard(payload);
            return Err(SendError::TooBig);
        }
        if self.has_addr(dst) {
            self.discard(payload);
            return Err(SendError::LocalDestination);
        }
        let Some(hop) = self.routes.lookup(dst) else {
            self.stats.drop_no_route += 1;
            self.discard(payload);
            return Err(SendError::NoRoute);
        };
        let eth_len = self.ethernet_header_len();
        if payload.headroom() < IPV4_HEADER_LEN + eth_len {
            self.discard(payload);
            return Err(SendError::NoHeadroom);
        }
        let src = match src {
            // The first address is the common case: no scan.
            Some(a) if self.config.addrs.first().is_some_and(|c| c.addr == a) => a,
            Some(a) if self.has_addr(a) => a,
            _ => self.source_for(hop.neighbour().unwrap_or(dst)),
        };
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol,
            payload_len,
            ttl: DEFAULT_TTL,
            dscp_ecn: 0,
            ident: self.next_ident,
        };
        self.next_ident = self.next_ident.wrapping_add(1);
        let caps = self.config.checksum;
        if let Ok(hdr) = payload.prepend(IPV4_HEADER_LEN) {
            repr.emit(&mut Ipv4Packet::new_unchecked(hdr), &caps);
        }
        let dst_mac = match hop {
            NextHop::Broadcast => EthernetAddress::BROADCAST,
            // Filled in below or when ARP resolves.
            NextHop::Direct(_) | NextHop::Gateway(_) => EthernetAddress([0; 6]),
        };
        let eth = EthernetRepr {
            src_addr: self.config.mac,
            dst_addr: dst_mac,
            ethertype: EtherType::Ipv4,
            vlan: self.config.vlan,
        };
        // Headroom for both headers was checked above.
        if let Ok(hdr) = payload.prepend(eth_len) {
            eth.emit(&mut EthernetFrame::new_unchecked(hdr));
        }
        let frame = payload;
        let Some(next) = hop.neighbour() else {
            self.push_tx(frame)?;
            self.stats.ipv4_tx_packets += 1;
            return Ok(());
        };
        let resolved = self.arp.resolve(now, next, frame);
        self.stats.arp_evicted = self.arp.evictions();
        match resolved {
            Resolve::Ready(mac, mut frame) => {
                if let Some(d) = frame.as_mut_slice().get_mut(..6) {
                    d.copy_from_slice(&mac.0);
                }
                self.push_tx(frame)?;
            }
            Resolve::QueuedNewRequest => self.send_arp_request(next, None, alloc),
            Resolve::Queued => {}
            Resolve::QueueFull(f) => {
                self.stats.drop_arp_queue_full += 1;
                self.discard(f);
                return Err(SendError::ArpQueueFull);
            }
            Resolve::CacheFull(f) => {
                self.stats.drop_arp_cache_full += 1;
                self.discard(f);
                return Err(SendError::ArpCacheFull);
            }
        }
        self.stats.ipv4_tx_packets += 1;
        Ok(())
    }

    /// Sends an ICMP echo request with `data` to `dst` (a buffer from
    /// `alloc`, the data copied in). The reply shows up as
    /// [`NetEvent::EchoReply`].
    pub fn send_ping(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
        alloc: &mut impl BufAlloc<Buf = B>,
    ) -> Result<(), SendError> {
        let Some(mut buf) = alloc.alloc() else {
            self.stats.drop_no_buffer += 1;
            return Err(SendError::NoBuffer);
        };
        let repr = Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        let len = repr.buffer_len();
        let Ok(bytes) = buf.append(len) else {
            self.discard(buf);
            return Err(SendError::TooBig);
        };
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(bytes),
            &self.config.checksum,
        );
        self.send_ipv4(now, dst, IpProtocol::Icmp, buf, alloc)?;
        self.stats.icmp_tx_echo_requests += 1;
        Ok(())
    }

    /// Queues an ARP request for `target`: broadcast, or unicast to
    /// `unicast` when refreshing a known entry.
    fn send_arp_request(
        &mut self,
        target: Ipv4Addr,
        unicast: Option<EthernetAddress>,
        alloc: &mut impl BufAlloc<Buf = B>,
    ) {
        let spa = self.source_for(target);
        let repr = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.config.mac,
            source_protocol_addr: spa,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        if self.send_arp(&repr, unicast.unwrap_or(EthernetAddress::BROADCAST), alloc) {
            self.stats.arp_tx_requests += 1;
        }
    }

    fn send_arp(
        &mut self,
        repr: &ArpRepr,
        dst: EthernetAddress,
        alloc: &mut impl BufAlloc<Buf = B>,
    ) -> bool {
        let Some(mut buf) = alloc.alloc() else {
            self.stats.drop_no_buffer += 1;
            return false;
        };
        let eth = EthernetRepr {
            src_addr: self.config.mac,
            dst_addr: dst,
            ethertype: EtherType::Arp,
            vlan: self.config.vlan,
        };
        let len = eth.header_len() + repr.buffer_len();
        let ok = match buf.append(len) {
            Ok(bytes) => self.emit_arp(bytes, &eth, repr),
            Err(_) => false,
        };
        if !ok {
            self.stats.drop_no_buffer += 1;
            self.discard(buf);
            return false;
        }
        self.push_tx(buf).is_ok()
    }

    // ----- timers and output -----

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.announce_at, self.arp.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs what is due at `now`: gratuitous ARP, ARP retries, failures,
    /// refreshes and expiry.
    pub fn handle_timeout(&mut self, now: Instant, alloc: &mut impl BufAlloc<Buf = B>) {
        if self.announce_at.is_some_and(|t| t <= now) {
            self.announce_at = None;
            for i in 0..self.config.addrs.len() {
                let Some(addr) = self.config.addrs.get(i).map(|a| a.addr) else {
                    break;
                };
                // RFC 5227 §3: an announcement is a request with sender and
                // target protocol addresses both ours, broadcast.
                let repr = ArpRepr {
                    operation: ArpOperation::Request,
                    source_hardware_addr: self.config.mac,
                    source_protocol_addr: addr,
                    target_hardware_addr: EthernetAddress([0; 6]),
                    target_protocol_addr: addr,
                };
                if self.send_arp(&repr, EthernetAddress::BROADCAST, alloc) {
                    self.stats.arp_tx_requests += 1;
                    self.stats.arp_tx_announcements += 1;
                }
            }
        }
        let mut actions = core::mem::take(&mut self.arp_scratch);
        self.arp.handle_timeout(now, |a| actions.push(a));
        for action in actions.drain(..) {
            match action {
                ArpAction::Request { addr, unicast } => {
                    self.send_arp_request(addr, unicast, alloc);
                }
                ArpAction::Failed { addr, frames } => {
                    // RFC 1122 §2.3.2.1: give up after a bounded number of
                    // requests; the host is unreachable for now.
                    let dropped = frames.len();
                    self.stats.drop_arp_failed += dropped as u64;
                    for f in frames {
                        self.discard(f);
                    }
                    self.push_event(NetEvent::NeighbourFailed { addr, dropped });
                }
                ArpAction::Expired { .. } => self.stats.arp_expired += 1,
            }
        }
        self.arp_scratch = actions;
    }

    /// The next frame to hand to the device, oldest first.
    pub fn poll_transmit(&mut self) -> Option<B> {
        let frame = self.tx.pop_front()?;
        self.stats.eth_tx_frames += 1;
        self.stats.eth_tx_bytes += frame.frame_len() as u64;
        Some(frame)
    }

    /// Frames waiting in the transmit queue.
    pub fn tx_pending(&self) -> usize {
        self.tx.len()
    }

    /// Moves every frame ready for transmit to the end of `out`.
    pub fn drain_transmit(&mut self, out: &mut Vec<B>) {
        while let Some(f) = self.poll_transmit() {
            out.push(f);
        }
    }

    /// A buffer the interface is done with (a dropped frame), to give back
    /// to the device it came from (`Device::recycle`) so heap-backed pools
    /// keep their count. Drain it after each loop iteration; beyond
    /// [`RECYCLE_QUEUE_LEN`] waiting buffers, further ones are simply dropped.
    pub fn poll_recycle(&mut self) -> Option<B> {
        self.recycle.pop()
    }

    fn discard(&mut self, buf: B) {
        if self.recycle.len() < RECYCLE_QUEUE_LEN {
            self.recycle.push(buf);
        }
    }

    /// The next event for the application, oldest first.
    pub fn poll_event(&mut self) -> Option<NetEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{HeapBuf, HeapPool};

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const PEER: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    fn cfg() -> InterfaceConfig {
        InterfaceConfig::new(MAC, "198.18.0.2/24".parse().unwrap())
    }

    fn iface() -> Interface<HeapBuf> {
        let mut c = cfg();
        c.announce = false;
        Interface::new(c, Instant::ZERO).unwrap()
    }

    fn pool() -> HeapPool {
        HeapPool::new(2048, 128, 64)
    }

    #[test]
    fn config_errors_are_named() {
        let t = Instant::ZERO;
        let mut c = cfg();
        c.mac = EthernetAddress::BROADCAST;
        assert!(matches!(
            Interface::<HeapBuf>::new(c, t),
            Err(ConfigError::MacNotUnicast(_))
        ));
        let mut c = cfg();
        c.addrs.clear();
        assert_eq!(
            Interface::<HeapBuf>::new(c, t).unwrap_err(),
            ConfigError::NoAddress
        );
        for bad in [
            "198.18.0.0/24",
            "198.18.0.255/24",
            "224.0.0.1/4",
            "0.0.0.0/8",
        ] {
            let mut c = cfg();
            c.addrs = vec![bad.parse().unwrap()];
            let e = Interface::<HeapBuf>::new(c, t).unwrap_err();
            assert!(matches!(e, ConfigError::BadAddress(_)), "{bad}");
            assert!(e.to_string().contains(bad.split('/').next().unwrap()));
        }
        let mut c = cfg();
        c.mtu = 67;
        assert_eq!(
            Interface::<HeapBuf>::new(c, t).unwrap_err(),
            ConfigError::MtuTooSmall(67)
        );
        let mut c = cfg();
        c.gateway = Some(Ipv4Addr::new(10, 0, 0, 1));
        let e = Interface::<HeapBuf>::new(c, t).unwrap_err();
        assert!(e.to_string().contains("10.0.0.1"), "{e}");
        let mut c = cfg();
        c.vlan = Some(4095);
        assert_eq!(
            Interface::<HeapBuf>::new(c, t).unwrap_err(),
            ConfigError::BadVlan(4095)
        );
    }

    #[test]
    fn send_errors() {
        let mut i = iface();
        let mut p = pool();
        let t = Instant::ZERO;
        let big = HeapBuf::from_slice(&[0; 1481], 128);
        assert_eq!(
            i.send_ipv4(
                t,
                Ipv4Addr::new(198, 18, 0, 3),
                IpProtocol::Udp,
                big,
                &mut p
            ),
            Err(SendError::TooBig)
        );
        let cramped = HeapBuf::from_slice(&[0; 8], 20);
        assert_eq!(
            i.send_ipv4(
                t,
                Ipv4Addr::new(198, 18, 0, 3),
                IpProtocol::Udp,
                cramped,
                &mut p
            ),
            Err(SendError::NoHeadroom)
        );
        let b = HeapBuf::from_slice(&[0; 8], 128);
        assert_eq!(
            i.send_ipv4(t, Ipv4Addr::new(198, 18, 0, 2), IpProtocol::Udp, b, &mut p),
            Err(SendError::LocalDestination)
        );
        let b = HeapBuf::from_slice(&[0; 8], 128);
        assert_eq!(
            i.send_ipv4(t, Ipv4Addr::new(8, 8, 8, 8), IpProtocol::Udp, b, &mut p),
            Err(SendError::NoRoute)
        );
        assert_eq!(i.stats().drop_no_route, 1);
        let mut empty = HeapPool::new(2048, 128, 0);
        assert_eq!(
            i.send_ping(t, Ipv4Addr::new(198, 18, 0, 3), 1, 1, b"", &mut empty),
            Err(SendError::NoBuffer)
        );
        assert_eq!(i.stats().drop_no_buffer, 1);
        assert!(SendError::NoRoute.to_string().contains("route"));
    }

    #[test]
    fn broadcast_send_needs_no_arp_and_vlan_is_tagged() {
        let mut c = cfg();
        c.announce = false;
        c.vlan = Some(5);
        let mut i = Interface::new(c, Instant::ZERO).unwrap();
        let mut p = pool();
        let b = HeapBuf::from_slice(&[1, 2, 3, 4], 128);
        i.send_ipv4(
            Instant::ZERO,
            Ipv4Addr::BROADCAST,
            IpProtocol::Udp,
            b,
            &mut p,
        )
        .unwrap();
        let f = i.poll_transmit().unwrap();
        let eth = EthernetFrame::new_checked(f.as_slice()).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(eth.vlan_id(), Some(5));
        assert_eq!(eth.ethertype(), EtherType::Ipv4);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let repr = Ipv4Repr::parse(&ip, &ChecksumCaps::SOFTWARE).unwrap();
        assert_eq!(repr.ttl, 64);
        assert!(ip.dont_frag());
        assert_eq!(ip.payload(), &[1, 2, 3, 4]);
        assert!(!i.is_busy());
    }

    #[test]
    fn echo_reply_is_built_in_place_and_verifies() {
        let mut i = iface();
        let mut p = pool();
        let caps = ChecksumCaps::SOFTWARE;
        let icmp = Icmpv4Repr::EchoRequest {
            ident: 9,
            seq_no: 77,
            data: b"abcdefg",
        };
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 3),
            dst_addr: Ipv4Addr::new(198, 18, 0, 2),
            protocol: IpProtocol::Icmp,
            payload_len: icmp.buffer_len(),
            ttl: 3,
            dscp_ecn: 0,
            ident: 5,
        };
        // 60-byte minimum frame: the padding must not be echoed.
        let mut v = vec![0u8; 60];
        EthernetRepr {
            src_addr: PEER,
            dst_addr: MAC,
            ethertype: EtherType::Ipv4,
            vlan: None,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut v[..14]));
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut v[14..34]), &caps);
        icmp.emit(
            &mut Icmpv4Packet::new_unchecked(&mut v[34..34 + icmp.buffer_len()]),
            &caps,
        );
        let buf = HeapBuf::from_slice(&v, 0);
        assert!(i.receive(Instant::ZERO, buf, &mut p).is_none());
        let out = i.poll_transmit().unwrap();
        assert_eq!(out.len(), 14 + ip.buffer_len());
        let eth = EthernetFrame::new_checked(out.as_slice()).unwrap();
        assert_eq!((eth.src_addr(), eth.dst_addr()), (MAC, PEER));
        let pkt = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let r = Ipv4Repr::parse(&pkt, &caps).unwrap();
        assert_eq!(r.src_addr, ip.dst_addr);
        assert_eq!(r.dst_addr, ip.src_addr);
        assert_eq!(r.ttl, DEFAULT_TTL);
        let ipayload = pkt.payload();
        let reply = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ipayload).unwrap(), &caps);
        assert_eq!(
            reply,
            Ok(Icmpv4Repr::EchoReply {
                ident: 9,
                seq_no: 77,
                data: b"abcdefg"
            })
        );
        assert_eq!(i.stats().icmp_tx_echo_replies, 1);
        assert_eq!(i.poll_recycle().map(|b| b.len()), None);
    }

    #[test]
    fn udp_is_delivered_at_its_payload() {
        let mut i = iface();
        let mut p = pool();
        let caps = ChecksumCaps::SOFTWARE;
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 3),
            dst_addr: Ipv4Addr::new(198, 18, 0, 2),
            protocol: IpProtocol::Udp,
            payload_len: 3,
            ttl: 64,
            dscp_ecn: 0,
            ident: 1,
        };
        let mut v = vec![0u8; 60];
        EthernetRepr {
            src_addr: PEER,
            dst_addr: MAC,
            ethertype: EtherType::Ipv4,
            vlan: None,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut v[..14]));
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut v[14..34]), &caps);
        v[34..37].copy_from_slice(&[7, 8, 9]);
        let d = i
            .receive(Instant::ZERO, HeapBuf::from_slice(&v, 0), &mut p)
            .unwrap();
        assert_eq!(d.buf.as_slice(), &[7, 8, 9]);
        assert_eq!(d.repr.src_addr, ip.src_addr);
        assert_eq!(i.stats().ipv4_delivered, 1);
    }
}
