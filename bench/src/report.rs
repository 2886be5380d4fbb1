//! What a run tells its user: the live line once a second, the final text
//! summary, the JSON report, and the exit outcome.
//!
//! Everything here works on merged statistics ([`crate::stats::Interval`],
//! [`crate::stats::Totals`]) on the main thread; nothing runs on a worker.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::args::{LoadArgs, ServeArgs};
use crate::stats::{Counters, ErrorKind, Interval, StatusClass, Totals};
use crate::units::ErrorThreshold;

/// Formats nanoseconds with a unit that keeps three or four digits:
/// `850ns`, `45.12us`, `1.23ms`, `2.50s`.
pub fn format_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.2}us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

/// Formats a count or rate with a decimal suffix: `950`, `12.35k`, `1.20M`.
pub fn format_si(x: f64) -> String {
    if x < 1e3 {
        if x.fract() == 0.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    } else if x < 1e6 {
        format!("{:.2}k", x / 1e3)
    } else if x < 1e9 {
        format!("{:.2}M", x / 1e6)
    } else {
        format!("{:.2}G", x / 1e9)
    }
}

/// Formats bytes with a binary unit: `512B`, `4.00KiB`, `1.50GiB`.
pub fn format_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b}B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

/// Payload throughput in Gbit/s, both directions together.
fn gbps(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds / 1e9
    } else {
        0.0
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// One live line for one merged interval of `length`:
/// `  5s  req/s 123.46k  conn/s 0  0.12 Gbit/s  open 100  err 0  p50 45.12us  p99 120.00us`.
pub fn live_line(iv: &Interval, length: Duration, elapsed: Duration) -> String {
    let s = length.as_secs_f64();
    let c = &iv.counters;
    let mut line = format!(
        "{:>4}s  req/s {}  conn/s {}  {:.2} Gbit/s  open {}  err {}",
        elapsed.as_secs(),
        format_si(per_second(c.requests, s)),
        format_si(per_second(c.connections_opened, s)),
        gbps(c.bytes_rx + c.bytes_tx, s),
        c.open_connections,
        c.errors_total(),
    );
    if !iv.latency.is_empty() {
        let _ = write!(
            line,
            "  p50 {}  p99 {}",
            format_ns(iv.latency.value_at_quantile(0.5) as f64),
            format_ns(iv.latency.value_at_quantile(0.99) as f64)
        );
    }
    line
}

/// A progress bar of `width` cells for `elapsed` out of `total`.
pub fn progress_bar(elapsed: Duration, total: Duration, width: usize) -> String {
    let frac = if total.is_zero() {
        1.0
    } else {
        (elapsed.as_secs_f64() / total.as_secs_f64()).clamp(0.0, 1.0)
    };
    let done = (frac * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(done), "-".repeat(width - done))
}

/// The live output: one line per second, or on a terminal one line that
/// rewrites itself (`\r`) behind a progress bar of elapsed/duration.
#[derive(Debug)]
pub struct Live<W: Write> {
    out: W,
    tty: bool,
    total: Option<Duration>,
    dirty: bool,
}

impl Live<io::Stderr> {
    /// Live output on stderr (stdout keeps the summary), rewriting in place
    /// when stderr is a terminal.
    pub fn stderr(total: Option<Duration>) -> Self {
        let out = io::stderr();
        let tty = out.is_terminal();
        Live::new(out, tty, total)
    }
}

impl<W: Write> Live<W> {
    /// Live output on `out`; `tty` chooses the rewriting form; `total` is the
    /// run's planned duration (no bar without it).
    pub fn new(out: W, tty: bool, total: Option<Duration>) -> Self {
        Live {
            out,
            tty,
            total,
            dirty: false,
        }
    }

    /// Shows one merged interval of `length` ending `elapsed` into the run.
    pub fn update(&mut self, iv: &Interval, length: Duration, elapsed: Duration) -> io::Result<()> {
        let line = live_line(iv, length, elapsed);
        if self.tty {
            let bar = match self.total {
                Some(t) => format!(
                    "{} {:>3.0}% ",
                    progress_bar(elapsed, t, 20),
                    100.0 * elapsed.as_secs_f64() / t.as_secs_f64().max(1e-9)
                ),
                None => String::new(),
            };
            // \r to column 0, ESC[2K to clear what a longer line left.
            write!(self.out, "\r\x1b[2K{bar}{line}")?;
            self.dirty = true;
        } else {
            writeln!(self.out, "{line}")?;
        }
        self.out.flush()
    }

    /// Ends the rewriting line so that what follows starts on its own.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.dirty {
            writeln!(self.out)?;
            self.dirty = false;
        }
        self.out.flush()
    }

    /// The writer, for tests.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Latency percentiles in microseconds, as the JSON report carries them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyUs {
    /// Samples recorded.
    pub count: u64,
    /// Smallest sample.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl LatencyUs {
    /// The percentiles of a nanosecond histogram (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        let q = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
        LatencyUs {
            count: h.len(),
            min: h.min() as f64 / 1e3,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: h.max() as f64 / 1e3,
            mean: h.mean() / 1e3,
        }
    }
}

/// Errors by kind plus their total; serializes as one JSON object in the
/// order of [`ErrorKind::ALL`], then `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCounts(pub [u64; ErrorKind::COUNT]);

impl ErrorCounts {
    /// The sum over every kind.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl Serialize for ErrorCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(ErrorKind::COUNT + 1))?;
        for kind in ErrorKind::ALL {
            map.serialize_entry(kind.name(), &self.0[kind as usize])?;
        }
        map.serialize_entry("total", &self.total())?;
        map.end()
    }
}

/// Responses by HTTP status class; serializes as `{"1xx": .., .., "other": ..}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCounts(pub [u64; StatusClass::COUNT]);

impl Serialize for StatusCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(StatusClass::COUNT))?;
        for class in StatusClass::ALL {
            map.serialize_entry(class.name(), &self.0[class as usize])?;
        }
        map.end()
    }
}

/// What a run was, for the report's header.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// `load http`, `serve echo`, ...
    pub mode: String,
    /// Configured connections (`None` for a server).
    pub connections: Option<usize>,
    /// Worker cores.
    pub cores: usize,
    /// Whether HTTP status classes mean anything for this run.
    pub http: bool,
}

impl RunInfo {
    /// The description of a server run.
    pub fn of_serve(args: &ServeArgs) -> Self {
        RunInfo {
            mode: format!("serve {}", args.mode.name()),
            connections: None,
            cores: args.cores,
            http: args.mode == crate::args::ServeMode::Http,
        }
    }

    /// The description of a load run.
    pub fn of_load(args: &LoadArgs) -> Self {
        RunInfo {
            mode: args.title(),
            connections: Some(args.connections),
            cores: args.cores,
            http: args.mode == crate::args::LoadMode::Http,
        }
    }
}

/// The final report of a run; its JSON form is the `--json` file
/// (`docs/cli.md` lists the fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `load http`, ...
    pub mode: String,
    /// Configured connections (`null` for a server).
    pub connections: Option<usize>,
    /// Worker cores.
    pub cores: usize,
    /// Measured duration of the run, seconds.
    pub duration_s: f64,
    /// Requests sent.
    pub requests: u64,
    /// Responses received complete.
    pub responses: u64,
    /// Connections that reached ESTABLISHED.
    pub connections_opened: u64,
    /// Connections closed.
    pub connections_closed: u64,
    /// Connections open when the run ended.
    pub open_connections: u64,
    /// Most connections open at one interval's end.
    pub open_connections_peak: u64,
    /// Errors by kind, and `total`.
    pub errors: ErrorCounts,
    /// `requests / duration_s`.
    pub rps: f64,
    /// `responses / duration_s`.
    pub responses_per_s: f64,
    /// `connections_opened / duration_s`.
    pub cps: f64,
    /// Payload bytes received.
    pub bytes_rx: u64,
    /// Payload bytes sent.
    pub bytes_tx: u64,
    /// `(bytes_rx + bytes_tx) * 8 / duration_s / 1e9`: payload both ways.
    pub gbps: f64,
    /// Open loop: sends that left after their intended time.
    pub late_sends: u64,
    /// Latency percentiles, microseconds.
    pub latency_us: LatencyUs,
    /// HTTP responses by status class.
    pub status: StatusCounts,
    /// Whether HTTP status classes are shown in the text summary.
    #[serde(skip)]
    pub http: bool,
}

impl Report {
    /// The report of a run from its totals and its measured duration.
    pub fn new(info: &RunInfo, totals: &Totals, elapsed: Duration) -> Self {
        let c: &Counters = &totals.counters;
        let s = elapsed.as_secs_f64();
        Report {
            mode: info.mode.clone(),
            connections: info.connections,
            cores: info.cores,
            duration_s: s,
            requests: c.requests,
            responses: c.responses,
            connections_opened: c.connections_opened,
            connections_closed: c.connections_closed,
            open_connections: c.open_connections,
            open_connections_peak: totals.open_connections_peak,
            errors: ErrorCounts(c.errors),
            rps: per_second(c.requests, s),
            responses_per_s: per_second(c.responses, s),
            cps: per_second(c.connections_opened, s),
            bytes_rx: c.bytes_rx,
            bytes_tx: c.bytes_tx,
            gbps: gbps(c.bytes_rx + c.bytes_tx, s),
            late_sends: c.late_sends,
            latency_us: LatencyUs::of(&totals.latency),
            status: StatusCounts(c.status),
            http: info.http,
        }
    }

    /// Operations the error threshold is a fraction of: requests sent plus
    /// connections attempted.
    pub fn operations(&self) -> u64 {
        let failed_connects = self.errors.0[ErrorKind::ConnectRefused as usize]
            + self.errors.0[ErrorKind::ConnectTimeout as usize];
        self.requests + self.connections_opened + failed_connects
    }

    /// Whether the run passed: errors within `threshold`, and it did
    /// something (a run that completed no response and opened no connection
    /// measured nothing).
    pub fn outcome(&self, threshold: ErrorThreshold) -> Outcome {
        if threshold.exceeded(self.errors.total(), self.operations()) {
            Outcome::TooManyErrors
        } else if self.responses == 0 && self.connections_opened == 0 {
            Outcome::NothingDone
        } else {
            Outcome::Passed
        }
    }

    /// The JSON report, pretty-printed.
    pub fn to_json(&self) -> String {
        // A struct of numbers, strings and maps with string keys always
        // serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the JSON report to `path`.
    pub fn write_json(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_json() + "\n")
    }

    /// Writes the text summary; `hist` is the run's latency histogram,
    /// `spectrum` adds the full percentile table (`--latency`).
    pub fn write_text(
        &self,
        w: &mut impl Write,
        hist: &Histogram<u64>,
        spectrum: bool,
    ) -> io::Result<()> {
        let conns = match self.connections {
            Some(n) => format!(", {n} connections"),
            None => String::new(),
        };
        writeln!(
            w,
            "{}: {:.2} s, {} cores{conns}",
            self.mode, self.duration_s, self.cores
        )?;
        writeln!(
            w,
            "  requests     {:>14}  {:>10}/s   responses {} ({}/s)",
            self.requests,
            format_si(self.rps),
            self.responses,
            format_si(self.responses_per_s)
        )?;
        writeln!(
            w,
            "  connections  {:>14}  {:>10}/s   closed {}, open at end {} (peak {})",
            self.connections_opened,
            format_si(self.cps),
            self.connections_closed,
            self.open_connections,
            self.open_connections_peak
        )?;
        writeln!(
            w,
            "  throughput   {:>14.3}  {:>12}   rx {} ({}), tx {} ({})",
            self.gbps,
            "Gbit/s",
            format_bytes(self.bytes_rx),
            self.bytes_rx,
            format_bytes(self.bytes_tx),
            self.bytes_tx
        )?;
        if self.late_sends > 0 {
            writeln!(
                w,
                "  late sends   {:>14}  (open loop: sent after their intended time)",
                self.late_sends
            )?;
        }
        write_latency(w, hist, spectrum)?;
        let total = self.errors.total();
        if total == 0 {
            writeln!(w, "errors: none")?;
        } else {
            write!(w, "errors: {total} (")?;
            let mut first = true;
            for kind in ErrorKind::ALL {
                let n = self.errors.0[kind as usize];
                if n > 0 {
                    write!(w, "{}{} {n}", if first { "" } else { ", " }, kind.name())?;
                    first = false;
                }
            }
            writeln!(w, ")")?;
        }
        if self.http {
            write!(w, "status:")?;
            for class in StatusClass::ALL {
                write!(w, " {} {}", class.name(), self.status.0[class as usize])?;
            }
            writeln!(w)?;
        }
        Ok(())
    }
}

/// Whether a run passed, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Passed,
    /// Errors went over `--error-threshold`: exit status 1.
    TooManyErrors,
    /// No response completed and no connection opened: exit status 1.
    NothingDone,
}

impl Outcome {
    /// The process exit status.
    pub fn exit_code(self) -> std::process::ExitCode {
        match self {
            Outcome::Passed => std::process::ExitCode::SUCCESS,
            Outcome::TooManyErrors | Outcome::NothingDone => std::process::ExitCode::from(1),
        }
    }
}

/// The latency part of a summary, shared by runs and `report merge`: one
/// line of percentiles, and with `spectrum` the wrk2-style table.
pub fn write_latency(w: &mut impl Write, h: &Histogram<u64>, spectrum: bool) -> io::Result<()> {
    if h.is_empty() {
        return writeln!(w, "latency: no samples");
    }
    let l = LatencyUs::of(h);
    writeln!(w, "latency ({} samples)", l.count)?;
    writeln!(
        w,
        "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
    )?;
    let cells: Vec<String> = [l.p50, l.p90, l.p99, l.p999, l.p9999, l.max, l.mean]
        .iter()
        .map(|us| format_ns(us * 1e3))
        .collect();
    writeln!(
        w,
        "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
    )?;
    if spectrum {
        write_spectrum(w, h)?;
    }
    Ok(())
}

/// The HdrHistogram percentile spectrum as wrk2 prints it, values in
/// microseconds: the headline percentiles, then Value / Percentile /
/// TotalCount / 1/(1-Percentile) for every step of `iter_quantiles(1)`, then
/// the mean, deviation, max and bucket lines.
pub fn write_spectrum(w: &mut impl Write, h: &Histogram<u64>) -> io::Result<()> {
    writeln!(
        w,
        "\n  Latency Distribution (HdrHistogram - Recorded Latency)"
    )?;
    for q in [0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 0.99999, 1.0] {
        writeln!(
            w,
            " {:>7.3}% {:>12}",
            q * 100.0,
            format_ns(h.value_at_quantile(q) as f64)
        )?;
    }
    writeln!(w, "\n  Detailed Percentile spectrum:")?;
    writeln!(
        w,
        "  {:>12} {:>12} {:>12} {:>16}\n",
        "Value(us)", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    for v in h.iter_quantiles(1) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / 1e3;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            writeln!(
                w,
                "  {value:>12.3} {q:>12.6} {total:>12} {:>16.2}",
                1.0 / (1.0 - q)
            )?;
        } else {
            writeln!(w, "  {value:>12.3} {q:>12.6} {total:>12} {:>16}", "inf")?;
        }
    }
    writeln!(
        w,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1e3,
        h.stdev() / 1e3
    )?;
    writeln!(
        w,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1e3,
        h.len()
    )?;
    // HdrHistogram sizes sub-buckets to the power of two that holds
    // 2 * 10^sigfig values (2048 for 3 digits).
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    writeln!(
        w,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{CoreStats, Totals};

    #[test]
    fn formats() {
        assert_eq!(format_ns(850.0), "850ns");
        assert_eq!(format_ns(45_120.0), "45.12us");
        assert_eq!(format_ns(1_234_000.0), "1.23ms");
        assert_eq!(format_ns(2.5e9), "2.50s");
        assert_eq!(format_si(950.0), "950");
        assert_eq!(format_si(12_345.0), "12.35k");
        assert_eq!(format_si(1.2e6), "1.20M");
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_bytes(4096), "4.00KiB");
        assert_eq!(format_bytes(3 << 29), "1.50GiB");
        assert_eq!(
            progress_bar(Duration::from_secs(5), Duration::from_secs(10), 10),
            "[#####-----]"
        );
        assert_eq!(
            progress_bar(Duration::from_secs(50), Duration::from_secs(10), 4),
            "[####]"
        );
    }

    fn sample_totals() -> Totals {
        let mut s = CoreStats::new();
        for i in 1..=1000u64 {
            s.record_latency(i * 1000);
            s.counters.requests += 1;
            s.counters.responses += 1;
            s.record_status(if i % 100 == 0 { 503 } else { 200 });
        }
        s.connection_opened();
        s.counters.bytes_rx = 1_000_000;
        s.counters.bytes_tx = 250_000;
        s.record_error(ErrorKind::Timeout);
        let mut t = Totals::new();
        t.add(&s.take_interval());
        t
    }

    #[test]
    fn report_is_consistent() {
        let t = sample_totals();
        let info = RunInfo {
            mode: "load http".into(),
            connections: Some(1),
            cores: 1,
            http: true,
        };
        let r = Report::new(&info, &t, Duration::from_secs(2));
        assert_eq!(r.rps, 500.0);
        assert_eq!(r.cps, 0.5);
        assert_eq!(r.gbps, 1_250_000.0 * 8.0 / 2.0 / 1e9);
        assert_eq!(r.errors.total(), 1);
        assert_eq!(r.latency_us.count, 1000);
        assert!(
            (r.latency_us.p50 - 500.0).abs() <= 0.5,
            "{}",
            r.latency_us.p50
        );
        assert!(r.latency_us.p90 <= r.latency_us.p99 && r.latency_us.p99 <= r.latency_us.max);
        assert_eq!(r.outcome(ErrorThreshold::Count(0)), Outcome::TooManyErrors);
        assert_eq!(r.outcome(ErrorThreshold::Count(1)), Outcome::Passed);
        assert_eq!(r.outcome(ErrorThreshold::Fraction(0.01)), Outcome::Passed);
        let empty = Report::new(&info, &Totals::new(), Duration::from_secs(1));
        assert_eq!(
            empty.outcome(ErrorThreshold::Count(0)),
            Outcome::NothingDone
        );

        let mut text = Vec::new();
        r.write_text(&mut text, &t.latency, true).unwrap();
        let text = String::from_utf8(text).unwrap();
        for needle in [
            "load http",
            "p99.99",
            "timeout 1",
            "2xx 990",
            "5xx 10",
            "Detailed Percentile spectrum",
            "#[Max",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }

    #[test]
    fn run_info_of_commands() {
        use crate::cli::{parse_from, Invocation};
        let Ok(Invocation::Serve(s)) = parse_from(["wirespeed", "serve", "echo", "--cores", "3"])
        else {
            panic!("serve echo does not parse")
        };
        let info = RunInfo::of_serve(&s);
        assert_eq!(
            (info.mode.as_str(), info.connections, info.cores, info.http),
            ("serve echo", None, 3, false)
        );
        let Ok(Invocation::Load(l)) =
            parse_from(["wirespeed", "load", "http", "--connections", "7"])
        else {
            panic!("load http does not parse")
        };
        let info = RunInfo::of_load(&l);
        assert_eq!(
            (info.mode.as_str(), info.connections, info.http),
            ("load http", Some(7), true)
        );
    }

    #[test]
    fn live_lines() {
        let mut s = CoreStats::new();
        s.counters.requests = 2000;
        s.record_latency(40_000);
        let iv = s.take_interval();
        let mut plain = Live::new(Vec::new(), false, Some(Duration::from_secs(10)));
        plain
            .update(&iv, Duration::from_secs(1), Duration::from_secs(1))
            .unwrap();
        plain
            .update(&iv, Duration::from_secs(1), Duration::from_secs(2))
            .unwrap();
        plain.finish().unwrap();
        let out = String::from_utf8(plain.into_inner()).unwrap();
        assert_eq!(out.lines().count(), 2);
        assert!(
            out.contains("req/s 2.00k") && out.contains("p50 40.0"),
            "{out}"
        );
        assert!(!out.contains('\r'));

        let mut tty = Live::new(Vec::new(), true, Some(Duration::from_secs(10)));
        tty.update(&iv, Duration::from_secs(1), Duration::from_secs(5))
            .unwrap();
        tty.finish().unwrap();
        let out = String::from_utf8(tty.into_inner()).unwrap();
        assert!(
            out.starts_with('\r') && out.contains("[##########----------]") && out.ends_with('\n'),
            "{out:?}"
        );
    }
}
