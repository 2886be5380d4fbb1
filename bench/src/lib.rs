//! Benchmarks for the wirespeed engine: criterion micro-benchmarks live in
//! `benches/`; whole-system comparisons arrive with the load generator.
//! [`peer`] holds what the comparison peers (`src/bin/epoll_peer.rs`,
//! `src/bin/smol_peer.rs`) share: the JSON report, duration parsing, core
//! pinning.

pub mod peer;
