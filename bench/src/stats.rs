//! Statistics that per-core workers keep without sharing, and their exact
//! merge on the main thread.
//!
//! Contract: each worker owns one [`CoreStats`], bumps its plain counters and
//! calls [`CoreStats::record_latency`] on the hot path (no atomics, no locks),
//! and once per interval (one second) calls [`CoreStats::take_interval`] and
//! sends the [`Interval`] to the main thread over a channel. The main thread
//! feeds them to an [`Aggregator`], which hands back one merged [`Interval`]
//! per sequence number once every core has sent it, and sums them into
//! [`Totals`]. Merging is exact: counters add, histograms add bucket by bucket.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Highest latency the histograms track: one hour, in nanoseconds. Longer
/// values are clamped to it rather than lost.
pub const LATENCY_MAX_NS: u64 = 3_600_000_000_000;
/// Significant decimal digits the latency histograms keep (0.1 % resolution).
pub const LATENCY_SIGFIG: u8 = 3;

/// A latency histogram in nanoseconds, 1 ns to 1 h, 3 significant digits: the
/// shape every histogram in a run shares, so that merging them is exact.
pub fn latency_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_MAX_NS, LATENCY_SIGFIG) {
        Ok(h) => h,
        // The bounds are constants that the crate accepts (low >= 1,
        // high >= 2 * low, sigfig <= 5); the unit tests build one.
        Err(e) => unreachable!("constant histogram bounds rejected: {e:?}"),
    }
}

/// Adds `src` into `dst`, exactly. Histograms of the run's shape always add;
/// one read from a file may reach higher, and then `dst` grows to hold it.
pub fn add_histogram(dst: &mut Histogram<u64>, src: &Histogram<u64>) {
    if src.max() > dst.high() {
        dst.auto(true);
    }
    // With auto-resize on where needed, `add` fails only when the counts
    // array would outgrow usize, which u64 bounds cannot reach on 64-bit.
    let added = dst.add(src);
    debug_assert!(added.is_ok(), "histogram addition failed: {added:?}");
}

/// Why an operation failed. The discriminant indexes [`Counters::errors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ErrorKind {
    /// The peer answered our SYN with a RST.
    ConnectRefused = 0,
    /// The handshake did not complete in time (SYN retransmissions exhausted).
    ConnectTimeout,
    /// An established connection was reset by the peer.
    Reset,
    /// A request got no (complete) response in time.
    Timeout,
    /// A response that does not parse or does not match the request.
    BadResponse,
    /// Echoed data differs from what was sent.
    ChecksumMismatch,
    /// The peer closed the connection while a request was outstanding.
    ClosedEarly,
}

impl ErrorKind {
    /// How many kinds there are.
    pub const COUNT: usize = 7;
    /// Every kind, in the order of their indices.
    pub const ALL: [ErrorKind; Self::COUNT] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::BadResponse,
        ErrorKind::ChecksumMismatch,
        ErrorKind::ClosedEarly,
    ];

    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::ChecksumMismatch => "checksum_mismatch",
            ErrorKind::ClosedEarly => "closed_early",
        }
    }
}

/// HTTP status classes. The discriminant indexes [`Counters::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum StatusClass {
    /// 100-199
    Informational = 0,
    /// 200-299
    Success,
    /// 300-399
    Redirection,
    /// 400-499
    ClientError,
    /// 500-599
    ServerError,
    /// Anything outside 100-599.
    Other,
}

impl StatusClass {
    /// How many classes there are.
    pub const COUNT: usize = 6;
    /// Every class, in the order of their indices.
    pub const ALL: [StatusClass; Self::COUNT] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Other,
    ];

    /// The class of a status code (RFC 9110 section 15: the first digit).
    pub fn of(code: u16) -> StatusClass {
        match code {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            500..=599 => StatusClass::ServerError,
            _ => StatusClass::Other,
        }
    }

    /// The name used in reports and JSON: `1xx` .. `5xx`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Other => "other",
        }
    }
}

/// Plain counters a worker bumps directly. All are totals over the interval
/// except `open_connections`, a gauge (connections open right now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests sent (echo: messages sent).
    pub requests: u64,
    /// Responses received complete and checked (echo: messages echoed back).
    pub responses: u64,
    /// Connections that reached ESTABLISHED.
    pub connections_opened: u64,
    /// Connections closed, whatever the way.
    pub connections_closed: u64,
    /// Errors, indexed by [`ErrorKind`].
    pub errors: [u64; ErrorKind::COUNT],
    /// Application payload bytes received.
    pub bytes_rx: u64,
    /// Application payload bytes sent.
    pub bytes_tx: u64,
    /// HTTP responses by status class, indexed by [`StatusClass`].
    pub status: [u64; StatusClass::COUNT],
    /// Open loop: sends that left later than their intended time (the
    /// latency still counts from the intended time).
    pub late_sends: u64,
    /// Gauge: connections open at the end of the interval.
    pub open_connections: u64,
}

impl Counters {
    /// Adds `other` into `self`, the gauge included: use it to merge cores
    /// over the same interval.
    pub fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.responses += other.responses;
        self.connections_opened += other.connections_opened;
        self.connections_closed += other.connections_closed;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.bytes_rx += other.bytes_rx;
        self.bytes_tx += other.bytes_tx;
        for (a, b) in self.status.iter_mut().zip(other.status) {
            *a += b;
        }
        self.late_sends += other.late_sends;
        self.open_connections += other.open_connections;
    }

    /// Errors of one kind.
    pub fn error(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize]
    }

    /// Errors of every kind.
    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Connection attempts that failed before ESTABLISHED.
    pub fn connect_failures(&self) -> u64 {
        self.error(ErrorKind::ConnectRefused) + self.error(ErrorKind::ConnectTimeout)
    }

    /// What error thresholds are a fraction of: requests sent plus
    /// connections attempted.
    pub fn operations(&self) -> u64 {
        self.requests + self.connections_opened + self.connect_failures()
    }

    /// Responses of one status class.
    pub fn status(&self, class: StatusClass) -> u64 {
        self.status[class as usize]
    }
}

/// One worker's statistics. Lives on the worker's core; nothing in it is
/// shared.
#[derive(Debug, Clone)]
pub struct CoreStats {
    /// Counters for the current interval; bump them directly.
    pub counters: Counters,
    latency: Histogram<u64>,
    seq: u64,
}

impl Default for CoreStats {
    fn default() -> Self {
        Self::new()
    }
}

impl CoreStats {
    /// Empty statistics; the first interval taken has sequence number 0.
    pub fn new() -> Self {
        CoreStats {
            counters: Counters::default(),
            latency: latency_histogram(),
            seq: 0,
        }
    }

    /// Records one latency sample in nanoseconds. Values above one hour are
    /// recorded as one hour.
    #[inline]
    pub fn record_latency(&mut self, ns: u64) {
        self.latency.saturating_record(ns);
    }

    /// Counts one error.
    #[inline]
    pub fn record_error(&mut self, kind: ErrorKind) {
        self.counters.errors[kind as usize] += 1;
    }

    /// Counts one HTTP response status.
    #[inline]
    pub fn record_status(&mut self, code: u16) {
        self.counters.status[StatusClass::of(code) as usize] += 1;
    }

    /// Counts a connection reaching ESTABLISHED.
    #[inline]
    pub fn connection_opened(&mut self) {
        self.counters.connections_opened += 1;
        self.counters.open_connections += 1;
    }

    /// Counts a connection closing (it must have been counted as opened).
    #[inline]
    pub fn connection_closed(&mut self) {
        self.counters.connections_closed += 1;
        self.counters.open_connections = self.counters.open_connections.saturating_sub(1);
    }

    /// The latency samples of the current interval.
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// Ends the current interval: returns its counters and histogram and
    /// starts the next one from zero (the open-connections gauge carries on).
    pub fn take_interval(&mut self) -> Interval {
        let fresh = Histogram::new_from(&self.latency);
        let counters = self.counters;
        self.counters = Counters {
            open_connections: counters.open_connections,
            ..Counters::default()
        };
        let seq = self.seq;
        self.seq += 1;
        Interval {
            seq,
            counters,
            latency: std::mem::replace(&mut self.latency, fresh),
        }
    }
}

/// The statistics of one interval, from one core or merged over several.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Which interval of the run (0 for the first second).
    pub seq: u64,
    /// Counter totals over the interval.
    pub counters: Counters,
    /// Latency samples, in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Interval {
    /// An empty interval with sequence number `seq`.
    pub fn empty(seq: u64) -> Self {
        Interval {
            seq,
            counters: Counters::default(),
            latency: latency_histogram(),
        }
    }

    /// Merges another core's interval into this one: counters (the gauge
    /// included) and histograms add.
    pub fn merge(&mut self, other: &Interval) {
        self.counters.add(&other.counters);
        add_histogram(&mut self.latency, &other.latency);
    }
}

/// Collects the intervals every core sends and hands back each one merged
/// once all cores have sent it. Each core's intervals must arrive in order,
/// which one channel per core or one shared channel both give.
#[derive(Debug)]
pub struct Aggregator {
    cores: usize,
    pending: BTreeMap<u64, (usize, Interval)>,
}

impl Aggregator {
    /// An aggregator for `cores` workers (at least one).
    pub fn new(cores: usize) -> Self {
        Aggregator {
            cores: cores.max(1),
            pending: BTreeMap::new(),
        }
    }

    /// Takes one core's interval; returns the merged interval of that
    /// sequence number when it was the last core missing.
    pub fn push(&mut self, interval: Interval) -> Option<Interval> {
        let seq = interval.seq;
        let (seen, merged) = match self.pending.remove(&seq) {
            Some((seen, mut merged)) => {
                merged.merge(&interval);
                (seen + 1, merged)
            }
            None => (1, interval),
        };
        if seen >= self.cores {
            Some(merged)
        } else {
            self.pending.insert(seq, (seen, merged));
            None
        }
    }

    /// The intervals some core never sent (a worker that stopped early), in
    /// order, merged over the cores that did.
    pub fn flush(&mut self) -> Vec<Interval> {
        std::mem::take(&mut self.pending)
            .into_values()
            .map(|(_, iv)| iv)
            .collect()
    }
}

/// A whole run's statistics: merged intervals summed over time.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Counter sums; `open_connections` holds the last interval's gauge.
    pub counters: Counters,
    /// The largest open-connections gauge of any interval.
    pub open_connections_peak: u64,
    /// Every latency sample of the run, in nanoseconds.
    pub latency: Histogram<u64>,
    /// How many intervals were added.
    pub intervals: u64,
}

impl Default for Totals {
    fn default() -> Self {
        Self::new()
    }
}

impl Totals {
    /// Empty totals.
    pub fn new() -> Self {
        Totals {
            counters: Counters::default(),
            open_connections_peak: 0,
            latency: latency_histogram(),
            intervals: 0,
        }
    }

    /// Adds one merged interval (all cores, one second).
    pub fn add(&mut self, interval: &Interval) {
        let gauge = interval.counters.open_connections;
        self.counters.add(&interval.counters);
        self.counters.open_connections = gauge;
        self.open_connections_peak = self.open_connections_peak.max(gauge);
        add_histogram(&mut self.latency, &interval.latency);
        self.intervals += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_index_their_arrays() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        for (i, c) in StatusClass::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        assert_eq!(StatusClass::of(99), StatusClass::Other);
        assert_eq!(StatusClass::of(100), StatusClass::Informational);
        assert_eq!(StatusClass::of(204), StatusClass::Success);
        assert_eq!(StatusClass::of(308), StatusClass::Redirection);
        assert_eq!(StatusClass::of(404), StatusClass::ClientError);
        assert_eq!(StatusClass::of(503), StatusClass::ServerError);
        assert_eq!(StatusClass::of(600), StatusClass::Other);
    }

    #[test]
    fn histogram_shape() {
        let h = latency_histogram();
        assert_eq!(h.low(), 1);
        assert!(h.high() >= LATENCY_MAX_NS);
        assert_eq!(h.sigfig(), 3);
    }

    #[test]
    fn take_interval_resets_but_keeps_gauge() {
        let mut s = CoreStats::new();
        s.connection_opened();
        s.connection_opened();
        s.counters.requests += 3;
        s.record_latency(1_000);
        s.record_latency(u64::MAX);
        s.record_error(ErrorKind::Reset);
        s.record_status(200);
        let a = s.take_interval();
        assert_eq!(a.seq, 0);
        assert_eq!(a.counters.requests, 3);
        assert_eq!(a.counters.open_connections, 2);
        assert_eq!(a.counters.error(ErrorKind::Reset), 1);
        assert_eq!(a.counters.status(StatusClass::Success), 1);
        assert_eq!(a.latency.len(), 2);
        assert!(a.latency.max() >= LATENCY_MAX_NS);
        s.connection_closed();
        let b = s.take_interval();
        assert_eq!(b.seq, 1);
        assert_eq!(b.counters.requests, 0);
        assert_eq!(b.counters.connections_closed, 1);
        assert_eq!(b.counters.open_connections, 1);
        assert!(b.latency.is_empty());
    }

    #[test]
    fn aggregator_merges_exactly() {
        let mut cores: Vec<CoreStats> = (0..3).map(|_| CoreStats::new()).collect();
        let mut agg = Aggregator::new(3);
        let mut totals = Totals::new();
        let mut all = latency_histogram();
        let mut out = Vec::new();
        for second in 0..4u64 {
            for (i, c) in cores.iter_mut().enumerate() {
                for k in 0..100u64 {
                    let v = 1 + k * 997 * (i as u64 + 1) + second * 13;
                    c.record_latency(v);
                    all.record(v).unwrap();
                    c.counters.requests += 1;
                }
                c.connection_opened();
            }
            // Cores report in a different order each second.
            for i in 0..3 {
                let idx = (i + second as usize) % 3;
                if let Some(m) = agg.push(cores[idx].take_interval()) {
                    out.push(m);
                }
            }
        }
        assert!(agg.flush().is_empty());
        assert_eq!(
            out.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        for m in &out {
            assert_eq!(m.counters.requests, 300);
            totals.add(m);
        }
        assert_eq!(totals.counters.requests, 1200);
        assert_eq!(totals.counters.connections_opened, 12);
        assert_eq!(totals.counters.open_connections, 12);
        assert_eq!(totals.open_connections_peak, 12);
        assert_eq!(totals.latency, all);
    }

    #[test]
    fn aggregator_flushes_partial() {
        let mut agg = Aggregator::new(2);
        let mut a = CoreStats::new();
        a.counters.requests = 5;
        assert!(agg.push(a.take_interval()).is_none());
        let rest = agg.flush();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].counters.requests, 5);
    }
}
