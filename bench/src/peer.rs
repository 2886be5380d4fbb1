//! What the comparison peers share: the JSON report, durations, pinning.
//!
//! The report has the field names of `wirespeed load --json`, so one parser
//! reads all three columns of `bench/compare.sh`:
//!
//! ```text
//! { "workload", "requests", "connections_opened",
//!   "errors": { <kind>: n, ..., "total": n },
//!   "duration_s", "rps", "cps", "bytes_rx", "bytes_tx", "gbps",
//!   "latency_us": { "p50", "p90", "p99", "p999", "p9999", "max", "mean" } | null,
//!   "status": "ok" | "errors" }
//! ```
//!
//! Rates are over `duration_s`, the measured interval (connection set-up
//! for a fixed pool of connections is outside it). `latency_us` is `null`
//! when latency was not recorded.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Errors of one run, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Errors {
    /// A connection attempt failed (refused, unreachable, not established in time).
    pub connect: u64,
    /// The peer reset an established connection.
    pub reset: u64,
    /// The peer closed a connection before the exchange was complete.
    pub eof: u64,
    /// Bytes came back that differ from what was sent, or a byte count disagrees.
    pub mismatch: u64,
    /// The run's end came while a confirmation was still outstanding.
    pub timeout: u64,
    /// Any other I/O error.
    pub io: u64,
}

impl Errors {
    /// Sum over every kind.
    pub fn total(&self) -> u64 {
        self.connect + self.reset + self.eof + self.mismatch + self.timeout + self.io
    }

    fn to_json(self) -> Value {
        json!({
            "connect": self.connect,
            "reset": self.reset,
            "eof": self.eof,
            "mismatch": self.mismatch,
            "timeout": self.timeout,
            "io": self.io,
            "total": self.total(),
        })
    }
}

/// Result of one client run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Workload name as given on the command line (`echo`, `connect`, `bulk`).
    pub workload: String,
    /// Completed request/response exchanges.
    pub requests: u64,
    /// Connections established (the fixed pool, or one per request).
    pub connections_opened: u64,
    /// Connections completed (opened, exchanged, closed) inside the interval.
    pub connections_closed: u64,
    pub errors: Errors,
    /// The measured interval.
    pub duration: Duration,
    pub bytes_rx: u64,
    pub bytes_tx: u64,
    /// Payload bytes the receiving side confirmed (bulk); rates use these.
    pub bytes_delivered: u64,
    pub latency: Option<Latency>,
}

impl Report {
    /// An empty report for `workload`.
    pub fn new(workload: &str) -> Self {
        Report {
            workload: workload.to_owned(),
            requests: 0,
            connections_opened: 0,
            connections_closed: 0,
            errors: Errors::default(),
            duration: Duration::ZERO,
            bytes_rx: 0,
            bytes_tx: 0,
            bytes_delivered: 0,
            latency: None,
        }
    }

    fn per_second(&self, n: u64) -> f64 {
        let s = self.duration.as_secs_f64();
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }

    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.per_second(self.requests)
    }

    /// Completed connections per second.
    pub fn cps(&self) -> f64 {
        self.per_second(self.connections_closed)
    }

    /// Delivered payload in Gbit/s (decimal).
    pub fn gbps(&self) -> f64 {
        self.per_second(self.bytes_delivered) * 8.0 / 1e9
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "workload": self.workload,
            "requests": self.requests,
            "connections_opened": self.connections_opened,
            "errors": self.errors.to_json(),
            "duration_s": self.duration.as_secs_f64(),
            "rps": self.rps(),
            "cps": self.cps(),
            "bytes_rx": self.bytes_rx,
            "bytes_tx": self.bytes_tx,
            "gbps": self.gbps(),
            "latency_us": self.latency.map_or(Value::Null, Latency::to_json),
            "status": if self.errors.total() == 0 { "ok" } else { "errors" },
        })
    }

    /// One human-readable line: the figure that matters for the workload.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} requests, {} connections in {:.3} s: {:.0} req/s, {:.0} conn/s, {:.2} Gbit/s, {} errors",
            self.workload,
            self.requests,
            self.connections_opened,
            self.duration.as_secs_f64(),
            self.rps(),
            self.cps(),
            self.gbps(),
            self.errors.total(),
        );
        if let Some(l) = self.latency {
            s.push_str(&format!(
                ", latency p50 {:.1} us p99 {:.1} us max {:.1} us",
                l.p50, l.p99, l.max
            ));
        }
        s
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// Summarises a histogram of nanoseconds; `None` when it is empty.
    pub fn from_ns(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1e3;
        Some(Latency {
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            p9999: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
            mean: h.mean() / 1e3,
        })
    }

    fn to_json(self) -> Value {
        json!({
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "p999": self.p999,
            "p9999": self.p9999,
            "max": self.max,
            "mean": self.mean,
        })
    }
}

/// A histogram for latencies in nanoseconds, 1 ns to one hour, three
/// significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Why a duration did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// No number, or a number that does not parse.
    Number,
    /// A unit other than `ns`, `us`, `ms`, `s`, `m`.
    Unit,
    /// Negative, not finite, or too large.
    Range,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DurationError::Number => "expected a number, e.g. 5s, 500ms, 2.5",
            DurationError::Unit => "unknown unit: use ns, us, ms, s or m",
            DurationError::Range => "duration out of range",
        })
    }
}

impl std::error::Error for DurationError {}

/// Parses `5s`, `500ms`, `250us`, `2m`, `1.5` (seconds when no unit).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| DurationError::Number)?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        _ => return Err(DurationError::Unit),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| DurationError::Range)
}

/// Why pinning failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinError {
    /// The core is not in this process's allowed set.
    NoSuchCore(usize),
    /// The kernel refused the affinity change.
    Refused(usize),
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinError::NoSuchCore(c) => write!(f, "core {c} is not available to this process"),
            PinError::Refused(c) => write!(f, "could not pin to core {c}"),
        }
    }
}

impl std::error::Error for PinError {}

/// Pins the calling thread to `core` (an OS CPU number).
pub fn pin_to_core(core: usize) -> Result<(), PinError> {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    let id = ids
        .into_iter()
        .find(|c| c.id == core)
        .ok_or(PinError::NoSuchCore(core))?;
    if core_affinity::set_for_current(id) {
        Ok(())
    } else {
        Err(PinError::Refused(core))
    }
}

/// Raises the soft limit on open files to the hard limit (10 000
/// connections need as many descriptors). Returns the soft limit now in
/// force.
#[allow(unsafe_code)] // setrlimit: the one system call the peers need beyond std.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit that setrlimit only reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
    }

    #[test]
    fn bad_durations_are_errors() {
        assert_eq!(parse_duration(""), Err(DurationError::Number));
        assert_eq!(parse_duration("s"), Err(DurationError::Number));
        assert_eq!(parse_duration("1.2.3s"), Err(DurationError::Number));
        assert_eq!(parse_duration("5h"), Err(DurationError::Unit));
        assert_eq!(parse_duration("1e300"), Err(DurationError::Unit));
        assert_eq!(
            parse_duration("99999999999999999999999"),
            Err(DurationError::Range)
        );
    }

    #[test]
    fn report_json_has_the_load_generator_fields() {
        let mut r = Report::new("echo");
        r.requests = 1000;
        r.connections_opened = 10;
        r.connections_closed = 4;
        r.duration = Duration::from_millis(500);
        r.bytes_rx = 64_000;
        r.bytes_tx = 64_000;
        r.bytes_delivered = 125_000_000;
        r.errors.reset = 2;
        r.errors.mismatch = 1;
        let mut h = latency_histogram();
        for ns in [10_000u64, 20_000, 30_000, 40_000] {
            h.record(ns).unwrap();
        }
        r.latency = Latency::from_ns(&h);
        let v = r.to_json();
        assert_eq!(v["requests"], 1000);
        assert_eq!(v["connections_opened"], 10);
        assert_eq!(v["rps"], 2000.0);
        assert_eq!(v["cps"], 8.0);
        assert_eq!(v["gbps"], 2.0);
        assert_eq!(v["duration_s"], 0.5);
        assert_eq!(v["bytes_rx"], 64_000);
        assert_eq!(v["bytes_tx"], 64_000);
        assert_eq!(v["errors"]["reset"], 2);
        assert_eq!(v["errors"]["total"], 3);
        assert_eq!(v["status"], "errors");
        let l = &v["latency_us"];
        for key in ["p50", "p90", "p99", "p999", "p9999", "max", "mean"] {
            assert!(l[key].as_f64().is_some(), "latency_us.{key}");
        }
        assert!((l["p50"].as_f64().unwrap() - 20.0).abs() < 0.1);
        assert!((l["max"].as_f64().unwrap() - 40.0).abs() < 0.1);
        assert!((l["mean"].as_f64().unwrap() - 25.0).abs() < 0.1);
    }

    #[test]
    fn a_clean_run_is_ok_and_without_latency_null() {
        let v = Report::new("bulk").to_json();
        assert_eq!(v["status"], "ok");
        assert!(v["latency_us"].is_null());
        assert_eq!(v["rps"], 0.0);
    }
}
