//! wirespeed: a kernel-bypass TCP/IP engine.
//!
//! The crate is layered as the folders are:
//!
//! - [`wire`]: zero-copy views over header bytes (Ethernet, ARP, IPv4, ICMPv4,
//!   TCP and its options) and the Internet checksum. Pure functions, no state.
//! - [`net`]: the sans-IO layer 2/3 host: ARP cache, IPv4 input validation,
//!   routing (connected subnets and a default gateway), ICMP echo, counters.
//! - [`buf`]: packet buffers with headroom, and pools.
//! - [`port`]: the device trait and its drivers (in-memory wire, TAP, pcap tap).
//! - [`rt`]: the per-core runtime: workers joining a device queue to the
//!   stack, pinned threads, cross-core rings, RSS-aware active open,
//!   counters.
//! - [`api`]: what applications see: inline handlers and their context,
//!   and rings to application threads.
//! - [`sim`]: a virtual clock and a harness driving hosts on the in-memory
//!   wire, for deterministic tests.
//!
//! The protocol code never reads a clock: time comes in as an [`Instant`]
//! argument. Only drivers (`port`) touch the operating system.

pub mod api;
pub mod buf;
pub mod net;
pub mod port;
pub mod rt;
pub mod sim;
pub mod tcp;
pub mod time;
pub mod wire;

pub use time::{Duration, Instant};
