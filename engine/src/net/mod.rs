//! The sans-IO layer 2/3 host: ARP, IPv4, routing, ICMP, RSS hashing.

pub mod arp;
pub mod iface;
pub mod route;
pub mod rss;
pub mod stats;

pub use arp::{ArpCache, ArpConfig};
pub use iface::{ConfigError, Interface, InterfaceConfig, Ipv4Delivery, NetEvent, SendError};
pub use route::{Ipv4Cidr, NextHop, Route, RoutingTable};
pub use stats::NetStats;
