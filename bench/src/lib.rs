//! Benchmarks for the wirespeed engine: criterion micro-benchmarks live in
//! `benches/`; whole-system comparisons arrive with the load generator.
