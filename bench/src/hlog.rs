//! HdrHistogram interval logs (`.hlog`): one V2 + DEFLATE histogram per
//! interval, the format jHiccup, wrk2 and HdrHistogram's own log tools read.
//!
//! Writing goes through the `hdrhistogram` crate's `IntervalLogWriter`; a
//! run streams its intervals to an [`HlogSink`], whose thread owns the file.
//! Reading recovers each interval's absolute start time, so that logs from
//! several cores or machines merge by wall-clock second
//! ([`merge_intervals`]): intervals whose start rounds to the same multiple
//! of the interval length add into one histogram, exactly.
//!
//! Values are nanoseconds; the `Interval_Max` column is in milliseconds
//! (`MaxValueDivisor` 1e6), as HdrHistogram's tools expect for nanosecond
//! logs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::stats::{add_histogram, latency_histogram};

/// The comment every log starts with, saying what the values are.
pub const UNITS_COMMENT: &str =
    "wirespeed latency log: values in nanoseconds, one interval per second merged over cores; Interval_Max in milliseconds";

/// Divides the max column into milliseconds.
const MAX_VALUE_DIVISOR: f64 = 1e6;

/// Interval timestamps above this many seconds are absolute (seconds since
/// the epoch) rather than relative to the log's base time; the same rule
/// HdrHistogram's Java log reader applies (a year).
const ABSOLUTE_TIMESTAMP_S: u64 = 365 * 24 * 3600;

/// Why a log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    /// The file could not be written or read.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A line is neither a header, a comment nor an interval.
    #[error("not an HdrHistogram interval log (unreadable line at byte {offset})")]
    Parse {
        /// Byte offset of the line.
        offset: usize,
    },
    /// An interval's histogram is not valid base64.
    #[error("interval {index}: histogram is not valid base64")]
    Base64 {
        /// Which interval (0-based).
        index: usize,
    },
    /// An interval's histogram does not decode.
    #[error("interval {index}: {source}")]
    Decode {
        /// Which interval (0-based).
        index: usize,
        /// What the decoder said.
        source: hdrhistogram::serialization::DeserializeError,
    },
    /// A histogram could not be encoded.
    #[error("encoding a histogram: {0}")]
    Encode(String),
    /// The writer thread stopped without saying why.
    #[error("the interval log writer stopped")]
    WriterGone,
}

/// One interval of a log.
#[derive(Debug, Clone)]
pub struct LogInterval {
    /// When the interval started, since the Unix epoch.
    pub start: Duration,
    /// How long it lasted.
    pub length: Duration,
    /// Latency samples, nanoseconds.
    pub histogram: Histogram<u64>,
}

/// Seconds since the epoch, as the log headers carry them.
pub fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Writes a whole log to `w`: the units comment, `#[StartTime: ...]` and
/// `#[BaseTime: ...]` at `start` (since the epoch), then every interval with
/// its start relative to `start`.
pub fn write_log<W, I>(w: &mut W, start: Duration, intervals: I) -> Result<(), HlogError>
where
    W: Write,
    I: IntoIterator<Item = LogInterval>,
{
    let mut serializer = V2DeflateSerializer::new();
    let start_time = UNIX_EPOCH + start;
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("[Histogram log format version 1.3]")
        .add_comment(UNITS_COMMENT)
        .with_start_time(start_time)
        .with_base_time(start_time)
        .with_max_value_divisor(MAX_VALUE_DIVISOR)
        .begin_log_with(w, &mut serializer)?;
    log.write_comment(
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"",
    )?;
    for iv in intervals {
        log.write_histogram(
            &iv.histogram,
            iv.start.saturating_sub(start),
            iv.length,
            None,
        )
        .map_err(|e| match e {
            hdrhistogram::serialization::interval_log::IntervalLogWriterError::IoError(e) => {
                HlogError::Io(e)
            }
            other => HlogError::Encode(other.to_string()),
        })?;
    }
    Ok(())
}

/// Writes a whole log to the file at `path`.
pub fn write_log_file(
    path: &Path,
    start: Duration,
    intervals: Vec<LogInterval>,
) -> Result<(), HlogError> {
    let mut w = BufWriter::new(File::create(path)?);
    write_log(&mut w, start, intervals)?;
    w.flush()?;
    Ok(())
}

/// A log being written while the run goes on. The file is created at once
/// (so a bad path fails before the run); a thread owns it and writes each
/// interval as it arrives.
#[derive(Debug)]
pub struct HlogSink {
    tx: Option<mpsc::Sender<LogInterval>>,
    thread: Option<JoinHandle<Result<(), HlogError>>>,
}

impl HlogSink {
    /// Creates the log at `path` for a run that started at `start`.
    pub fn create(path: &Path, start: SystemTime) -> Result<Self, HlogError> {
        let file = File::create(path)?;
        let start = since_epoch(start);
        let (tx, rx) = mpsc::channel::<LogInterval>();
        let thread = std::thread::Builder::new()
            .name("hlog".into())
            .spawn(move || {
                let mut w = BufWriter::new(file);
                write_log(&mut w, start, rx)?;
                w.flush()?;
                Ok(())
            })?;
        Ok(HlogSink {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues one interval. A failed writer shows up here and in
    /// [`HlogSink::finish`].
    pub fn write(&self, interval: LogInterval) -> Result<(), HlogError> {
        match &self.tx {
            Some(tx) => tx.send(interval).map_err(|_| HlogError::WriterGone),
            None => Err(HlogError::WriterGone),
        }
    }

    /// Writes what is queued, closes the file and reports the first error.
    pub fn finish(mut self) -> Result<(), HlogError> {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) | None => Err(HlogError::WriterGone),
        }
    }
}

impl Drop for HlogSink {
    fn drop(&mut self) {
        // Closing the channel ends the writer thread; wait so that the file
        // is complete when the sink is gone.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Decodes standard base64 (RFC 4648 section 4), padding optional.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for chunk in body.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | sextet(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&acc.to_be_bytes()[1..]),
            3 => out.extend_from_slice(&(acc << 6).to_be_bytes()[1..3]),
            2 => out.push((acc >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}

/// Reads every interval of a log, with absolute start times: relative
/// timestamps count from `BaseTime`, else `StartTime`, else the epoch.
pub fn read_log(bytes: &[u8]) -> Result<Vec<LogInterval>, HlogError> {
    let mut start_time = None;
    let mut base_time = None;
    let mut out = Vec::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        match entry {
            Ok(LogEntry::StartTime(t)) => start_time = Some(t),
            Ok(LogEntry::BaseTime(t)) => base_time = Some(t),
            Ok(LogEntry::Interval(iv)) => {
                let index = out.len();
                let raw =
                    base64_decode(iv.encoded_histogram()).ok_or(HlogError::Base64 { index })?;
                let histogram: Histogram<u64> = deserializer
                    .deserialize(&mut raw.as_slice())
                    .map_err(|source| HlogError::Decode { index, source })?;
                let ts = iv.start_timestamp();
                let start = if ts.as_secs() >= ABSOLUTE_TIMESTAMP_S {
                    ts
                } else {
                    base_time.or(start_time).unwrap_or_default() + ts
                };
                out.push(LogInterval {
                    start,
                    length: iv.duration(),
                    histogram,
                });
            }
            Err(hdrhistogram::serialization::interval_log::LogIteratorError::ParseError {
                offset,
            }) => return Err(HlogError::Parse { offset }),
        }
    }
    Ok(out)
}

/// Reads the log at `path`.
pub fn read_log_file(path: &Path) -> Result<Vec<LogInterval>, HlogError> {
    read_log(&std::fs::read(path)?)
}

/// Merges intervals from any number of logs: those whose absolute start
/// rounds to the same multiple of `length` add into one histogram. Returns
/// the merged intervals in time order, each starting on that multiple.
pub fn merge_intervals<I>(intervals: I, length: Duration) -> Vec<LogInterval>
where
    I: IntoIterator<Item = LogInterval>,
{
    let len_ns = length.as_nanos().max(1);
    let mut buckets: BTreeMap<u128, Histogram<u64>> = BTreeMap::new();
    for iv in intervals {
        let key = (iv.start.as_nanos() + len_ns / 2) / len_ns;
        let h = buckets.entry(key).or_insert_with(latency_histogram);
        add_histogram(h, &iv.histogram);
    }
    buckets
        .into_iter()
        .map(|(key, histogram)| {
            let ns = key * len_ns;
            LogInterval {
                start: Duration::new((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32),
                length,
                histogram,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 section 10.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(
                base64_decode(enc).as_deref(),
                Some(plain.as_bytes()),
                "{enc}"
            );
        }
        assert_eq!(base64_decode("+/+/").unwrap(), vec![0xfb, 0xff, 0xbf]);
        for bad in ["Z", "Zg===", "Zm9v!", "Zm 9"] {
            assert!(base64_decode(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn write_then_read_is_exact() {
        let start = Duration::from_millis(1_700_000_000_250);
        let mut ivs = Vec::new();
        for i in 0..3u64 {
            let mut h = latency_histogram();
            for v in 1..=500u64 {
                h.record(v * 1_013 * (i + 1)).unwrap();
            }
            ivs.push(LogInterval {
                start: start + Duration::from_secs(i),
                length: Duration::from_secs(1),
                histogram: h,
            });
        }
        let mut buf = Vec::new();
        write_log(&mut buf, start, ivs.clone()).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(text.contains("#[StartTime: 1700000000.250"), "{text}");
        assert!(text.contains("nanoseconds"), "{text}");
        let back = read_log(&buf).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in ivs.iter().zip(&back) {
            assert_eq!(a.start, b.start);
            assert_eq!(a.length, b.length);
            assert_eq!(a.histogram, b.histogram);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(read_log(b"hello\n"), Err(HlogError::Parse { .. })));
        assert!(matches!(
            read_log(b"0.000,1.000,0.1,!!!!\n"),
            Err(HlogError::Base64 { .. })
        ));
        assert!(matches!(
            read_log(b"0.000,1.000,0.1,AAAA\n"),
            Err(HlogError::Decode { .. })
        ));
        assert!(read_log(b"").unwrap().is_empty());
    }

    #[test]
    fn merge_rounds_to_the_interval() {
        let mk = |ms: u64, v: u64| {
            let mut h = latency_histogram();
            h.record(v).unwrap();
            LogInterval {
                start: Duration::from_millis(ms),
                length: Duration::from_secs(1),
                histogram: h,
            }
        };
        let merged = merge_intervals(
            vec![mk(10_000, 5), mk(10_400, 6), mk(10_600, 7), mk(9_700, 8)],
            Duration::from_secs(1),
        );
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].start, Duration::from_secs(10));
        assert_eq!(merged[0].histogram.len(), 3);
        assert_eq!(merged[1].start, Duration::from_secs(11));
        assert_eq!(merged[1].histogram.len(), 1);
    }
}
