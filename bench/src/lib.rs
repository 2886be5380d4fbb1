//! The `wirespeed` load generator and server emulator around the engine:
//! command line, statistics, reports and interval logs. Criterion
//! micro-benchmarks live in `benches/`.
//!
//! - [`cli`] parses the command line into the typed [`args`] the runtime
//!   consumes ([`units`] holds the value parsers);
//! - [`stats`] is what each worker core counts, and its exact merge;
//! - [`collect`] is the main thread's side of a run: live line, interval
//!   log, totals, summary;
//! - [`report`], [`hlog`] and [`plot`] are the outputs; [`merge`] is
//!   `wirespeed report merge`;
//! - [`load`] and [`serve`] are the load generator's and the server
//!   emulator's handlers on each worker core, [`http`] their HTTP/1.1;
//! - [`run`] starts the runtime;
//! - [`peer`] is what the comparison peers (`src/bin/epoll_peer.rs`,
//!   `src/bin/smol_peer.rs`, `src/bin/c2c.rs`) share: the JSON report,
//!   duration parsing, core pinning.

#![deny(unsafe_code)]

pub mod args;
pub mod cli;
pub mod collect;
pub mod hlog;
pub mod http;
pub mod load;
pub mod merge;
pub mod peer;
pub mod plot;
pub mod report;
pub mod run;
pub mod serve;
pub mod stats;
pub mod units;
