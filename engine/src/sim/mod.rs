//! Deterministic simulation: a virtual clock and hosts on the in-memory wire.
