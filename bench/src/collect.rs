//! The main thread's side of a run: it receives each core's intervals, and
//! turns them into the live line, the interval log, the totals, and at the
//! end the summary, the JSON report, the plot and the exit outcome.
//!
//! Order of calls: [`Collector::new`] before the workers start,
//! [`Collector::push`] for every [`Interval`] a worker sends (any core
//! order, each core's own in sequence), [`Collector::finish`] once every
//! worker has stopped, then [`conclude_load`] with the totals.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::args::LoadArgs;
use crate::hlog::{since_epoch, HlogError, HlogSink, LogInterval};
use crate::plot::latency_svg;
use crate::report::{Live, Outcome, Report, RunInfo};
use crate::stats::{Aggregator, Interval, Totals};

/// Collects a run's intervals on the main thread.
#[derive(Debug)]
pub struct Collector<W: Write = io::Stderr> {
    agg: Aggregator,
    totals: Totals,
    live: Option<Live<W>>,
    hlog: Option<HlogSink>,
    start: Duration,
    length: Duration,
}

impl<W: Write> Collector<W> {
    /// A collector for `cores` workers whose run started at `start` (wall
    /// clock, for the log) and who send one interval every `length`.
    pub fn new(
        cores: usize,
        start: SystemTime,
        length: Duration,
        live: Option<Live<W>>,
        hlog: Option<HlogSink>,
    ) -> Self {
        Collector {
            agg: Aggregator::new(cores),
            totals: Totals::new(),
            live,
            hlog,
            start: since_epoch(start),
            length,
        }
    }

    /// Takes one worker's interval. When it completes a second (every core
    /// has sent it), the merged interval goes to the live line, the log and
    /// the totals. Only the log can fail; the live line is best effort (a
    /// closed stderr does not stop a run).
    pub fn push(&mut self, interval: Interval) -> Result<(), HlogError> {
        match self.agg.push(interval) {
            Some(merged) => self.complete(merged),
            None => Ok(()),
        }
    }

    fn complete(&mut self, merged: Interval) -> Result<(), HlogError> {
        self.totals.add(&merged);
        let offset = self
            .length
            .saturating_mul(u32::try_from(merged.seq).unwrap_or(u32::MAX));
        if let Some(live) = &mut self.live {
            let _ = live.update(&merged, self.length, offset + self.length);
        }
        match &self.hlog {
            Some(log) => log.write(LogInterval {
                start: self.start + offset,
                length: self.length,
                histogram: merged.latency,
            }),
            None => Ok(()),
        }
    }

    /// The totals so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Ends the run: intervals some core never sent are merged over the
    /// cores that did, the live line ends and the log is closed.
    pub fn finish(mut self) -> Result<Totals, HlogError> {
        let mut result = Ok(());
        for merged in self.agg.flush() {
            result = result.and(self.complete(merged));
        }
        if let Some(live) = &mut self.live {
            let _ = live.finish();
        }
        if let Some(log) = self.hlog.take() {
            result = result.and(log.finish());
        }
        result.map(|()| self.totals)
    }
}

/// A report output that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing {what} to {}: {source}", path.display())]
pub struct OutputError {
    /// "the JSON report", "the plot", "the summary".
    pub what: &'static str,
    /// Where.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

fn output(what: &'static str, path: &Path, r: io::Result<()>) -> Result<(), OutputError> {
    r.map_err(|source| OutputError {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Ends a load run: prints the summary to `out` (with the spectrum under
/// `--latency`), writes `--json` and `--plot`, and judges the run against
/// `--error-threshold`. `elapsed` is the measured duration of the run.
pub fn conclude_load(
    args: &LoadArgs,
    totals: &Totals,
    elapsed: Duration,
    out: &mut impl Write,
) -> Result<(Report, Outcome), OutputError> {
    let report = Report::new(&RunInfo::of_load(args), totals, elapsed);
    output(
        "the summary",
        Path::new("stdout"),
        report
            .write_text(out, &totals.latency, args.latency)
            .and_then(|()| out.flush()),
    )?;
    if let Some(path) = &args.json {
        output("the JSON report", path, report.write_json(path))?;
    }
    if let Some(path) = &args.plot {
        let title = format!("{}: latency by percentile", report.mode);
        output(
            "the plot",
            path,
            std::fs::write(path, latency_svg(&totals.latency, &title)),
        )?;
    }
    let outcome = report.outcome(args.error_threshold);
    Ok((report, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlog::read_log_file;
    use crate::stats::CoreStats;

    #[test]
    fn collector_feeds_live_log_and_totals() {
        let dir = std::env::temp_dir().join(format!("ws-collect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.hlog");
        let start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        let sink = HlogSink::create(&path, start).unwrap();
        let live = Live::new(Vec::new(), false, Some(Duration::from_secs(3)));
        let mut c = Collector::new(2, start, Duration::from_secs(1), Some(live), Some(sink));
        let mut cores = [CoreStats::new(), CoreStats::new()];
        for second in 0..3u64 {
            for (i, core) in cores.iter_mut().enumerate() {
                core.record_latency(1000 * (second + 1) + i as u64);
                core.counters.requests += 10;
                c.push(core.take_interval()).unwrap();
            }
        }
        // Core 1 stops early: its last interval never comes.
        cores[0].record_latency(99_000);
        c.push(cores[0].take_interval()).unwrap();
        let totals = c.finish().unwrap();
        assert_eq!(totals.intervals, 4);
        assert_eq!(totals.counters.requests, 60);
        assert_eq!(totals.latency.len(), 7);
        let log = read_log_file(&path).unwrap();
        assert_eq!(log.len(), 4);
        assert_eq!(log[0].start, Duration::from_secs(1_700_000_000));
        assert_eq!(log[3].start, Duration::from_secs(1_700_000_003));
        assert_eq!(log.iter().map(|l| l.histogram.len()).sum::<u64>(), 7);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
