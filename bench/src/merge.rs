//! `wirespeed report merge`: interval logs from several cores or machines
//! merged into one, exactly.
//!
//! Intervals are bucketed by absolute start time rounded to the interval
//! length (the length most intervals in the inputs have, one second for
//! wirespeed's own logs); the histograms of one bucket add. The summary is
//! the latency part of a run's summary over every bucket.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::args::MergeArgs;
use crate::hlog::{merge_intervals, read_log_file, write_log_file, HlogError, LogInterval};
use crate::plot::latency_svg;
use crate::report::{write_latency, LatencyUs};
use crate::stats::{add_histogram, latency_histogram};

/// The interval length when the inputs have no interval at all.
const DEFAULT_LENGTH: Duration = Duration::from_secs(1);

/// Why a merge failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// An input could not be read or is not an interval log.
    #[error("{}: {source}", path.display())]
    Read {
        /// The input.
        path: PathBuf,
        /// Why.
        source: HlogError,
    },
    /// An output could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The output.
        path: PathBuf,
        /// Why.
        source: HlogError,
    },
    /// The summary could not be printed.
    #[error("printing the summary: {0}")]
    Print(#[from] io::Error),
}

/// The merge's JSON form (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeReport {
    /// The inputs, as given.
    pub files: Vec<String>,
    /// Merged intervals (one per distinct rounded start time).
    pub intervals: usize,
    /// Interval length used for bucketing, seconds.
    pub interval_s: f64,
    /// Start of the first merged interval, seconds since the epoch.
    pub start_s: f64,
    /// From the first merged interval's start to the last one's end, seconds.
    pub duration_s: f64,
    /// Latency over every interval, microseconds.
    pub latency_us: LatencyUs,
}

/// The interval length most intervals have, to the millisecond.
fn common_length(intervals: &[LogInterval]) -> Duration {
    let mut counts: HashMap<u128, usize> = HashMap::new();
    for iv in intervals {
        *counts
            .entry(iv.length.as_nanos().div_ceil(1_000_000))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|&(ms, _)| ms > 0)
        .max_by_key(|&(ms, n)| (n, ms))
        .map_or(DEFAULT_LENGTH, |(ms, _)| Duration::from_millis(ms as u64))
}

/// Runs the merge: reads every input, prints the merged summary to `out`,
/// writes `-o`, `--json` and `--plot`.
pub fn run(args: &MergeArgs, out: &mut impl Write) -> Result<MergeReport, MergeError> {
    let mut all = Vec::new();
    for path in &args.files {
        let ivs = read_log_file(path).map_err(|source| MergeError::Read {
            path: path.clone(),
            source,
        })?;
        all.extend(ivs);
    }
    let length = common_length(&all);
    let merged = merge_intervals(all, length);
    let mut total = latency_histogram();
    for iv in &merged {
        add_histogram(&mut total, &iv.histogram);
    }
    let start = merged.first().map(|iv| iv.start).unwrap_or_default();
    let end = merged.last().map_or(start, |iv| iv.start + iv.length);
    let report = MergeReport {
        files: args.files.iter().map(|p| p.display().to_string()).collect(),
        intervals: merged.len(),
        interval_s: length.as_secs_f64(),
        start_s: start.as_secs_f64(),
        duration_s: (end - start).as_secs_f64(),
        latency_us: LatencyUs::of(&total),
    };

    writeln!(
        out,
        "merged {} files: {} intervals of {:.3} s, {:.3} s from {:.3} (seconds since the epoch)",
        report.files.len(),
        report.intervals,
        report.interval_s,
        report.duration_s,
        report.start_s
    )?;
    write_latency(out, &total, args.latency)?;
    out.flush()?;

    let write_err = |path: &PathBuf| {
        let path = path.clone();
        move |source: HlogError| MergeError::Write { path, source }
    };
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        std::fs::write(path, json).map_err(|e| write_err(path)(HlogError::Io(e)))?;
    }
    if let Some(path) = &args.plot {
        let svg = latency_svg(&total, "merged latency by percentile");
        std::fs::write(path, svg).map_err(|e| write_err(path)(HlogError::Io(e)))?;
    }
    if let Some(path) = &args.output {
        write_log_file(path, start, merged).map_err(write_err(path))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_length_prefers_the_majority() {
        let iv = |ms: u64| LogInterval {
            start: Duration::ZERO,
            length: Duration::from_millis(ms),
            histogram: latency_histogram(),
        };
        assert_eq!(common_length(&[]), DEFAULT_LENGTH);
        assert_eq!(
            common_length(&[iv(1000), iv(1000), iv(5000)]),
            Duration::from_secs(1)
        );
        assert_eq!(common_length(&[iv(5000)]), Duration::from_secs(5));
    }
}
