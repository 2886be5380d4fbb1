//! The sans-IO layer 2/3 host: ARP, IPv4, routing, ICMP, RSS hashing.

pub mod rss;
