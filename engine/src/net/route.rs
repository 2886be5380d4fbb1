//! IPv4 routing for a host: connected subnets, static routes and a default
//! gateway, looked up by longest prefix (RFC 1812 §5.2.4.3, which hosts
//! follow as well: the most specific route wins).
//!
//! The table is small (a host has a handful of routes), so it is a vector
//! kept sorted by prefix length, longest first, and a lookup is a scan that
//! stops at the first match. Lookups allocate nothing and never panic.

use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

/// An IPv4 address with a prefix length, as in `198.18.0.2/24`.
///
/// The address keeps its host bits: `198.18.0.2/24` is the interface address
/// `198.18.0.2` on the subnet `198.18.0.0/24`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The address, host bits included.
    pub addr: Ipv4Addr,
    /// Number of leading network bits, `0..=32`.
    pub prefix_len: u8,
}

/// Why a text is not an IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrErrorKind {
    /// No `/` separating address and prefix length.
    MissingPrefix,
    /// The part before `/` is not a dotted-quad IPv4 address.
    BadAddress,
    /// The part after `/` is not a number in `0..=32`.
    BadPrefix,
}

/// A text that failed to parse as an IPv4 CIDR, with the text itself.
///
/// Holds a `String`: parsing happens on configuration paths, never per packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrParseError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub kind: CidrErrorKind,
}

impl fmt::Display for CidrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            CidrErrorKind::MissingPrefix => "expected ADDRESS/PREFIX_LEN, e.g. 198.18.0.2/24",
            CidrErrorKind::BadAddress => "the address is not a dotted-quad IPv4 address",
            CidrErrorKind::BadPrefix => "the prefix length must be a number from 0 to 32",
        };
        write!(f, "invalid IPv4 CIDR {:?}: {why}", self.text)
    }
}

impl std::error::Error for CidrParseError {}

/// The prefix length was above 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixTooLong(pub u8);

impl fmt::Display for PrefixTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IPv4 prefix length {} is above 32", self.0)
    }
}

impl Ipv4Cidr {
    /// `addr/prefix_len`; fails if `prefix_len > 32`.
    pub const fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Self, PrefixTooLong> {
        if prefix_len > 32 {
            return Err(PrefixTooLong(prefix_len));
        }
        Ok(Ipv4Cidr { addr, prefix_len })
    }

    /// The netmask as a host-order integer.
    pub const fn mask_bits(&self) -> u32 {
        // The fields are public: treat a prefix above 32 as 32.
        match self.prefix_len {
            0 => 0,
            p if p >= 32 => u32::MAX,
            p => u32::MAX << (32 - p as u32),
        }
    }

    /// The netmask, e.g. `255.255.255.0` for `/24`.
    pub const fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.mask_bits())
    }

    /// The subnet with host bits cleared, e.g. `198.18.0.0/24`.
    pub const fn network(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::from_bits(self.addr.to_bits() & self.mask_bits()),
            prefix_len: self.prefix_len,
        }
    }

    /// The subnet-directed broadcast address (RFC 919, RFC 1122 §3.2.1.3),
    /// or `None` for `/31` (RFC 3021) and `/32` subnets, which have none.
    pub const fn broadcast(&self) -> Option<Ipv4Addr> {
        if self.prefix_len >= 31 {
            return None;
        }
        Some(Ipv4Addr::from_bits(self.addr.to_bits() | !self.mask_bits()))
    }

    /// Whether `addr` is inside this subnet.
    pub const fn contains(&self, addr: Ipv4Addr) -> bool {
        (addr.to_bits() ^ self.addr.to_bits()) & self.mask_bits() == 0
    }
}

impl fmt::Debug for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrParseError;

    fn from_str(text: &str) -> Result<Self, CidrParseError> {
        let err = |kind| CidrParseError {
            text: text.to_owned(),
            kind,
        };
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| err(CidrErrorKind::MissingPrefix))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err(CidrErrorKind::BadAddress))?;
        // `u8::from_str` accepts a leading '+'; a prefix length is digits only.
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(CidrErrorKind::BadPrefix));
        }
        let prefix_len: u8 = prefix.parse().map_err(|_| err(CidrErrorKind::BadPrefix))?;
        Ipv4Cidr::new(addr, prefix_len).map_err(|_| err(CidrErrorKind::BadPrefix))
    }
}

/// Where to send a packet on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// The destination is on a connected subnet: resolve it directly.
    Direct(Ipv4Addr),
    /// The destination is behind this router: resolve the router.
    Gateway(Ipv4Addr),
    /// Limited (255.255.255.255) or subnet-directed broadcast: send to the
    /// Ethernet broadcast address, no resolution.
    Broadcast,
}

impl NextHop {
    /// The neighbour to resolve with ARP, if any.
    pub fn neighbour(&self) -> Option<Ipv4Addr> {
        match *self {
            NextHop::Direct(a) | NextHop::Gateway(a) => Some(a),
            NextHop::Broadcast => None,
        }
    }
}

/// One route: a destination prefix and, unless it is on-link, a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (host bits are ignored).
    pub dest: Ipv4Cidr,
    /// The router to send through; `None` for a connected (on-link) route.
    pub via: Option<Ipv4Addr>,
}

/// Why a route was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// The gateway is not on any connected subnet, so it cannot be resolved.
    GatewayNotOnLink(Ipv4Addr),
    /// The gateway is unspecified, broadcast, multicast or a subnet's
    /// broadcast address.
    BadGateway(Ipv4Addr),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::GatewayNotOnLink(gw) => {
                write!(f, "gateway {gw} is not on any connected subnet")
            }
            RouteError::BadGateway(gw) => {
                write!(f, "gateway {gw} is not a unicast host address")
            }
        }
    }
}

impl std::error::Error for RouteError {}

/// A host's routing table.
///
/// Connected routes come from the interface's addresses; static routes and
/// the default gateway (`0.0.0.0/0`) must name a gateway on a connected
/// subnet (RFC 1122 §3.3.1.1: the first hop is always on-link).
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    /// Longest prefix first; among equal prefixes, connected routes first.
    routes: Vec<Route>,
}

impl RoutingTable {
    /// An empty table: every lookup but the limited broadcast fails.
    pub fn new() -> Self {
        RoutingTable::default()
    }

    /// Adds the connected subnet of an interface address.
    pub fn add_connected(&mut self, addr: Ipv4Cidr) {
        let dest = addr.network();
        if self
            .routes
            .iter()
            .any(|r| r.dest == dest && r.via.is_none())
        {
            return;
        }
        self.insert(Route { dest, via: None });
    }

    /// Adds a route through `via` to `dest`. The gateway must be on a
    /// connected subnet, so add connected routes first.
    pub fn add_static(&mut self, dest: Ipv4Cidr, via: Ipv4Addr) -> Result<(), RouteError> {
        if via.is_unspecified() || via.is_broadcast() || via.is_multicast() {
            return Err(RouteError::BadGateway(via));
        }
        let mut on_link = false;
        for r in self.routes.iter().filter(|r| r.via.is_none()) {
            if r.dest.contains(via) {
                if r.dest.broadcast() == Some(via) || r.dest.network().addr == via {
                    // The network address is only a host address on /31 and /32.
                    if r.dest.prefix_len < 31 {
                        return Err(RouteError::BadGateway(via));
                    }
                }
                on_link = true;
            }
        }
        if !on_link {
            return Err(RouteError::GatewayNotOnLink(via));
        }
        let dest = dest.network();
        // A later route to the same prefix replaces the earlier one.
        self.routes.retain(|r| !(r.dest == dest && r.via.is_some()));
        self.insert(Route {
            dest,
            via: Some(via),
        });
        Ok(())
    }

    /// Sets the default gateway (`0.0.0.0/0 via gateway`).
    pub fn set_default_gateway(&mut self, gateway: Ipv4Addr) -> Result<(), RouteError> {
        let any = Ipv4Cidr {
            addr: Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
        };
        self.add_static(any, gateway)
    }

    /// The default gateway, if one is set.
    pub fn default_gateway(&self) -> Option<Ipv4Addr> {
        self.routes
            .iter()
            .find(|r| r.dest.prefix_len == 0)
            .and_then(|r| r.via)
    }

    /// The routes, longest prefix first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    fn insert(&mut self, route: Route) {
        // Stable position: after every route with a longer or equal prefix,
        // so a connected route stays ahead of a static one of equal length.
        let at = self
            .routes
            .iter()
            .position(|r| r.dest.prefix_len < route.dest.prefix_len)
            .unwrap_or(self.routes.len());
        self.routes.insert(at, route);
    }

    /// The next hop towards `dst`, by longest prefix match, or `None` when
    /// no route covers it.
    ///
    /// The limited broadcast 255.255.255.255 goes out on the link whenever
    /// the host has a connected subnet (RFC 1122 §3.3.6: never forwarded), and
    /// a connected subnet's directed broadcast goes out as a link broadcast
    /// (RFC 1122 §3.3.6, RFC 919). Multicast and the unspecified address
    /// have no route here.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        if dst.is_unspecified() || dst.is_multicast() {
            return None;
        }
        if dst.is_broadcast() {
            return self
                .routes
                .iter()
                .any(|r| r.via.is_none())
                .then_some(NextHop::Broadcast);
        }
        let route = self.routes.iter().find(|r| r.dest.contains(dst))?;
        Some(match route.via {
            Some(gw) => NextHop::Gateway(gw),
            None if route.dest.broadcast() == Some(dst) => NextHop::Broadcast,
            None => NextHop::Direct(dst),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_math() {
        let c = cidr("198.18.0.2/24");
        assert_eq!(c.addr, ip("198.18.0.2"));
        assert_eq!(c.prefix_len, 24);
        assert_eq!(c.netmask(), ip("255.255.255.0"));
        assert_eq!(c.network(), cidr("198.18.0.0/24"));
        assert_eq!(c.broadcast(), Some(ip("198.18.0.255")));
        assert!(c.contains(ip("198.18.0.200")));
        assert!(!c.contains(ip("198.18.1.1")));
        assert_eq!(c.to_string(), "198.18.0.2/24");
        assert_eq!(cidr("10.0.0.1/0").netmask(), ip("0.0.0.0"));
        assert!(cidr("10.0.0.1/0").contains(ip("1.2.3.4")));
        assert_eq!(cidr("10.0.0.1/32").netmask(), ip("255.255.255.255"));
        assert_eq!(cidr("10.0.0.0/31").broadcast(), None);
        assert_eq!(cidr("10.0.0.1/32").broadcast(), None);
    }

    #[test]
    fn cidr_parse_errors_name_the_text() {
        for (text, kind) in [
            ("198.18.0.2", CidrErrorKind::MissingPrefix),
            ("198.18.0/24", CidrErrorKind::BadAddress),
            ("198.18.0.2/33", CidrErrorKind::BadPrefix),
            ("198.18.0.2/", CidrErrorKind::BadPrefix),
            ("198.18.0.2/+8", CidrErrorKind::BadPrefix),
            ("198.18.0.2/2x", CidrErrorKind::BadPrefix),
            ("198.18.0.2/999999999999", CidrErrorKind::BadPrefix),
        ] {
            let e = text.parse::<Ipv4Cidr>().unwrap_err();
            assert_eq!(e.kind, kind, "{text}");
            assert!(e.to_string().contains(text), "{e}");
        }
        assert_eq!(Ipv4Cidr::new(ip("1.2.3.4"), 40), Err(PrefixTooLong(40)));
    }

    fn table() -> RoutingTable {
        let mut t = RoutingTable::new();
        t.add_connected(cidr("198.18.0.2/24"));
        t.add_connected(cidr("198.18.0.3/24")); // same subnet: no duplicate
        t.set_default_gateway(ip("198.18.0.1")).unwrap();
        t.add_static(cidr("198.19.0.0/16"), ip("198.18.0.254"))
            .unwrap();
        t.add_static(cidr("198.19.5.0/24"), ip("198.18.0.253"))
            .unwrap();
        t
    }

    #[test]
    fn longest_prefix_match() {
        let t = table();
        assert_eq!(t.routes().len(), 4);
        assert_eq!(
            t.lookup(ip("198.19.5.7")),
            Some(NextHop::Gateway(ip("198.18.0.253")))
        );
        assert_eq!(
            t.lookup(ip("198.19.6.7")),
            Some(NextHop::Gateway(ip("198.18.0.254")))
        );
        assert_eq!(
            t.lookup(ip("198.18.0.9")),
            Some(NextHop::Direct(ip("198.18.0.9")))
        );
    }

    #[test]
    fn default_gateway_catches_the_rest() {
        let t = table();
        assert_eq!(t.default_gateway(), Some(ip("198.18.0.1")));
        assert_eq!(
            t.lookup(ip("203.0.113.5")),
            Some(NextHop::Gateway(ip("198.18.0.1")))
        );
        let mut t2 = t.clone();
        t2.set_default_gateway(ip("198.18.0.7")).unwrap();
        assert_eq!(t2.default_gateway(), Some(ip("198.18.0.7")));
        assert_eq!(t2.routes().len(), 4, "the new gateway replaces the old");
    }

    #[test]
    fn no_route_without_gateway() {
        let mut t = RoutingTable::new();
        assert_eq!(t.lookup(ip("255.255.255.255")), None);
        t.add_connected(cidr("198.18.0.2/24"));
        assert_eq!(t.lookup(ip("198.19.0.9")), None);
        assert_eq!(t.lookup(ip("0.0.0.0")), None);
        assert_eq!(t.lookup(ip("224.0.0.1")), None);
        assert_eq!(t.default_gateway(), None);
    }

    #[test]
    fn broadcasts_go_to_the_link() {
        let t = table();
        assert_eq!(t.lookup(ip("255.255.255.255")), Some(NextHop::Broadcast));
        assert_eq!(t.lookup(ip("198.18.0.255")), Some(NextHop::Broadcast));
        assert_eq!(NextHop::Broadcast.neighbour(), None);
        // Another subnet's directed broadcast is routed like any address.
        assert_eq!(
            t.lookup(ip("198.19.255.255")),
            Some(NextHop::Gateway(ip("198.18.0.254")))
        );
    }

    #[test]
    fn gateway_must_be_on_link_and_unicast() {
        let mut t = RoutingTable::new();
        t.add_connected(cidr("198.18.0.2/24"));
        assert_eq!(
            t.set_default_gateway(ip("10.0.0.1")),
            Err(RouteError::GatewayNotOnLink(ip("10.0.0.1")))
        );
        for bad in ["198.18.0.255", "198.18.0.0", "255.255.255.255", "0.0.0.0"] {
            assert_eq!(
                t.set_default_gateway(ip(bad)),
                Err(RouteError::BadGateway(ip(bad))),
                "{bad}"
            );
        }
        assert!(RouteError::GatewayNotOnLink(ip("10.0.0.1"))
            .to_string()
            .contains("10.0.0.1"));
        // On a /31 both addresses are hosts (RFC 3021).
        let mut p2p = RoutingTable::new();
        p2p.add_connected(cidr("198.18.0.0/31"));
        p2p.set_default_gateway(ip("198.18.0.1")).unwrap();
    }
}
