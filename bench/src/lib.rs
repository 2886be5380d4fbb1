//! The `wirespeed` load generator and server emulator around the engine.
//! Criterion micro-benchmarks live in `benches/`.

#![forbid(unsafe_code)]

pub mod args;
pub mod cli;
pub mod collect;
pub mod hlog;
pub mod merge;
pub mod plot;
pub mod report;
pub mod stats;
pub mod units;
