//! Parsers for the units the command line accepts: durations, byte sizes,
//! rates, counts, IPv4 prefixes and ranges, error thresholds and port specs.
//!
//! Every parser takes the text a user typed and returns either the typed value
//! or a [`ValueError`] whose message quotes the text and shows the accepted
//! form; clap puts the flag name in front of it.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A value the command line could not accept: what was typed and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{text}\" {reason}")]
pub struct ValueError {
    /// The text as typed.
    pub text: String,
    /// What it should have been, with examples.
    pub reason: String,
}

impl ValueError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        ValueError {
            text: text.to_owned(),
            reason: reason.into(),
        }
    }
}

const DURATION_FORM: &str =
    "is not a duration (examples: 10s, 500ms, 2m, 1h; a plain number is seconds)";
const SIZE_FORM: &str = "is not a size in bytes (examples: 64, 4k or 4KiB, 1m or 1MiB, 1g or 1GiB)";
const RATE_FORM: &str = "is not a rate per second (examples: 1000, 10k, 1.5m)";

/// Splits `text` into its leading decimal number (digits with at most one
/// point) and the unit suffix after it.
fn split_number(text: &str) -> Option<(&str, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 {
        return None;
    }
    Some((number, unit))
}

/// `number * scale` computed exactly for a decimal `number` ("1.25"), as long
/// as the result is a whole number that fits a u128.
fn scale_decimal(number: &str, scale: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut value = int.checked_mul(scale)?;
    if !frac.is_empty() {
        let den = 10u128.checked_pow(frac.len() as u32)?;
        let num: u128 = frac.parse().ok()?;
        let part = num.checked_mul(scale)?;
        if part % den != 0 {
            return None;
        }
        value = value.checked_add(part / den)?;
    }
    Some(value)
}

/// A duration: `10s`, `500ms`, `2m`, `1h`, `250us`, `1.5s`; a plain number is
/// seconds. Zero is refused: every run and every wait must last.
pub fn duration(text: &str) -> Result<Duration, ValueError> {
    let err = || ValueError::new(text, DURATION_FORM);
    let (number, unit) = split_number(text.trim()).ok_or_else(err)?;
    let nanos_per_unit: u128 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(err()),
    };
    let nanos = scale_decimal(number, nanos_per_unit).ok_or_else(err)?;
    if nanos == 0 {
        return Err(ValueError::new(
            text,
            "is zero; a duration must be longer (examples: 10s, 500ms)",
        ));
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| err())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// A size in bytes: `64`, `64B`, `4k`/`4KiB`, `1m`/`1MiB`, `1g`/`1GiB`; the
/// suffixes are binary (1k = 1024). Fractions are allowed where the result is
/// a whole number of bytes (`1.5k` = 1536).
pub fn size(text: &str) -> Result<u64, ValueError> {
    let err = || ValueError::new(text, SIZE_FORM);
    let (number, unit) = split_number(text.trim()).ok_or_else(err)?;
    let scale: u128 = match unit {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" | "kiB" | "kib" => 1 << 10,
        "m" | "M" | "MiB" | "mib" => 1 << 20,
        "g" | "G" | "GiB" | "gib" => 1 << 30,
        _ => return Err(err()),
    };
    let bytes = scale_decimal(number, scale).ok_or_else(err)?;
    u64::try_from(bytes).map_err(|_| err())
}

/// An operation rate per second, open loop: `1000`, `10k`, `1.5m`, with an
/// optional `/s`. The suffixes are decimal (1k = 1000).
pub fn rate(text: &str) -> Result<f64, ValueError> {
    let err = || ValueError::new(text, RATE_FORM);
    let trimmed = text.trim();
    let trimmed = trimmed.strip_suffix("/s").unwrap_or(trimmed);
    let (number, unit) = split_number(trimmed).ok_or_else(err)?;
    let scale = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "m" | "M" => 1e6,
        _ => return Err(err()),
    };
    let value: f64 = number.parse::<f64>().map_err(|_| err())? * scale;
    if !(value.is_finite() && value > 0.0) {
        return Err(ValueError::new(
            text,
            "is not a rate above zero (examples: 1000, 10k, 1.5m)",
        ));
    }
    if value > 1e9 {
        return Err(ValueError::new(
            text,
            "is above the largest rate, 1000m per second",
        ));
    }
    Ok(value)
}

/// A whole number from `min` to `max` inclusive, with `what` naming it in the
/// error ("a connection count").
pub fn count(text: &str, min: u64, max: u64, what: &str) -> Result<u64, ValueError> {
    let reason = || format!("is not {what} (a whole number from {min} to {max})");
    let value: u64 = text
        .trim()
        .parse()
        .map_err(|_| ValueError::new(text, reason()))?;
    if value < min || value > max {
        return Err(ValueError::new(text, reason()));
    }
    Ok(value)
}

/// A TCP port from 1 to 65535.
pub fn tcp_port(text: &str) -> Result<u16, ValueError> {
    count(text, 1, u64::from(u16::MAX), "a TCP port").map(|p| p as u16)
}

/// An IPv4 address in dotted-quad form.
pub fn ipv4(text: &str) -> Result<Ipv4Addr, ValueError> {
    Ipv4Addr::from_str(text.trim())
        .map_err(|_| ValueError::new(text, "is not an IPv4 address (example: 198.18.0.1)"))
}

/// An interface address with its prefix length: `198.18.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The host's own address.
    pub addr: Ipv4Addr,
    /// Prefix length, 1 to 32.
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// The network mask, `255.255.255.0` for /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix_len))
                .unwrap_or(0),
        )
    }

    /// Whether `other` lies in this address's subnet (is directly reachable).
    pub fn contains(&self, other: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask());
        u32::from(self.addr) & mask == u32::from(other) & mask
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Parses `ADDR/LEN` (`198.18.0.1/24`).
pub fn ipv4_cidr(text: &str) -> Result<Ipv4Cidr, ValueError> {
    let form = "is not an address with a prefix length (example: 198.18.0.1/24)";
    let (addr, len) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| ValueError::new(text, form))?;
    let addr = Ipv4Addr::from_str(addr).map_err(|_| ValueError::new(text, form))?;
    let prefix_len: u8 = len.parse().map_err(|_| ValueError::new(text, form))?;
    if !(1..=32).contains(&prefix_len) {
        return Err(ValueError::new(
            text,
            "has a prefix length outside 1 to 32 (example: 198.18.0.1/24)",
        ));
    }
    if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
        return Err(ValueError::new(
            text,
            "is not a host address (example: 198.18.0.1/24)",
        ));
    }
    Ok(Ipv4Cidr { addr, prefix_len })
}

/// An inclusive range of IPv4 addresses, `198.18.1.1-198.18.1.200`; a single
/// address is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Range {
    /// First address, inclusive.
    pub start: Ipv4Addr,
    /// Last address, inclusive; never below `start`.
    pub end: Ipv4Addr,
}

impl Ipv4Range {
    /// The range holding only `addr`.
    pub fn single(addr: Ipv4Addr) -> Self {
        Ipv4Range {
            start: addr,
            end: addr,
        }
    }

    /// How many addresses the range holds (at least 1).
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.end)) - u64::from(u32::from(self.start)) + 1
    }

    /// Always false: a range holds at least its start address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `addr` lies in the range.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (self.start..=self.end).contains(&addr)
    }

    /// The addresses in order.
    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.start)..=u32::from(self.end)).map(Ipv4Addr::from)
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// Parses `A-B` (inclusive, A ≤ B) or a single address.
pub fn ipv4_range(text: &str) -> Result<Ipv4Range, ValueError> {
    let form = "is not an address range (example: 198.18.1.1-198.18.1.200, both ends included)";
    let trimmed = text.trim();
    let (start, end) = trimmed.split_once('-').unwrap_or((trimmed, trimmed));
    let start = Ipv4Addr::from_str(start.trim()).map_err(|_| ValueError::new(text, form))?;
    let end = Ipv4Addr::from_str(end.trim()).map_err(|_| ValueError::new(text, form))?;
    if start > end {
        return Err(ValueError::new(
            text,
            "starts after it ends (example: 198.18.1.1-198.18.1.200)",
        ));
    }
    Ok(Ipv4Range { start, end })
}

/// Parses `ADDR:PORT` (`198.18.0.2:80`), or a bare `ADDR` that takes
/// `default_port`.
pub fn target(text: &str, default_port: u16) -> Result<SocketAddrV4, ValueError> {
    let form = "is not an address and port (example: 198.18.0.2:80)";
    let trimmed = text.trim();
    if let Ok(addr) = SocketAddrV4::from_str(trimmed) {
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(ValueError::new(text, form));
        }
        return Ok(addr);
    }
    match Ipv4Addr::from_str(trimmed) {
        Ok(ip) if !ip.is_unspecified() => Ok(SocketAddrV4::new(ip, default_port)),
        _ => Err(ValueError::new(text, form)),
    }
}

/// When a run counts as failed (exit status 1), judged on its errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ErrorThreshold {
    /// Fails when more than this many errors happened.
    Count(u64),
    /// Fails when errors exceed this fraction (0 to 1) of the operations
    /// (requests sent plus connections attempted).
    Fraction(f64),
}

impl ErrorThreshold {
    /// Whether `errors` out of `operations` goes over the threshold.
    pub fn exceeded(&self, errors: u64, operations: u64) -> bool {
        match *self {
            ErrorThreshold::Count(n) => errors > n,
            ErrorThreshold::Fraction(f) => errors as f64 > f * operations as f64,
        }
    }
}

impl Default for ErrorThreshold {
    fn default() -> Self {
        ErrorThreshold::Count(0)
    }
}

impl fmt::Display for ErrorThreshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorThreshold::Count(n) => write!(f, "{n}"),
            ErrorThreshold::Fraction(x) => write!(f, "{}%", x * 100.0),
        }
    }
}

/// Parses an error threshold: a whole number `N` is a count, `P%` a
/// percentage and a decimal `0.F` a fraction of the operations.
pub fn error_threshold(text: &str) -> Result<ErrorThreshold, ValueError> {
    let form = "is not an error threshold (a count such as 0 or 100, a percentage such as 1%, or a fraction such as 0.01)";
    let trimmed = text.trim();
    let fraction = |s: &str, div: f64| -> Result<ErrorThreshold, ValueError> {
        let v: f64 = s.parse().map_err(|_| ValueError::new(text, form))?;
        let v = v / div;
        if !(0.0..=1.0).contains(&v) || s.starts_with('+') {
            return Err(ValueError::new(text, form));
        }
        Ok(ErrorThreshold::Fraction(v))
    };
    if let Some(p) = trimmed.strip_suffix('%') {
        return fraction(p, 100.0);
    }
    if trimmed.contains('.') {
        return fraction(trimmed, 1.0);
    }
    trimmed
        .parse()
        .map(ErrorThreshold::Count)
        .map_err(|_| ValueError::new(text, form))
}

/// The device a command runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// The in-memory wire: client and server in one process, no privileges.
    Mem,
    /// A Linux TAP device, created by the run (needs root).
    Tap {
        /// Interface name (1 to 15 bytes).
        name: String,
    },
    /// AF_XDP sockets on a Linux interface:
    /// `af_xdp:IFACE[,queues=N][,mode=native|generic|auto][,zc=auto|on|off]`.
    AfXdp(wirespeed::port::AfXdpConfig),
    /// A DPDK port: `dpdk:EAL ARGS[;port=N][;queues=N][;mbufs=N][;mtu=N]`.
    Dpdk {
        /// EAL arguments, split on whitespace.
        args: Vec<String>,
        /// Everything after `dpdk:`, options included.
        spec: String,
    },
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::Mem => write!(f, "mem"),
            PortSpec::Tap { name } => write!(f, "tap:{name}"),
            PortSpec::AfXdp(c) => {
                write!(f, "af_xdp:{}", c.iface)?;
                let d = wirespeed::port::AfXdpConfig::new(&c.iface);
                if c.queues != d.queues {
                    write!(f, ",queues={}", c.queues)?;
                }
                if c.mode != d.mode {
                    write!(f, ",mode={}", format!("{:?}", c.mode).to_lowercase())?;
                }
                if c.zero_copy != d.zero_copy {
                    let zc = match c.zero_copy {
                        wirespeed::port::af_xdp::ZeroCopy::On => "on",
                        _ => "off",
                    };
                    write!(f, ",zc={zc}")?;
                }
                if c.frames != d.frames {
                    write!(f, ",frames={}", c.frames)?;
                }
                if c.frame_size != d.frame_size {
                    write!(f, ",frame_size={}", c.frame_size)?;
                }
                if c.ring_size != d.ring_size {
                    write!(f, ",ring={}", c.ring_size)?;
                }
                Ok(())
            }
            PortSpec::Dpdk { spec, .. } => write!(f, "dpdk:{spec}"),
        }
    }
}

/// Linux interface names: at most IFNAMSIZ - 1 bytes, no '/', ':' or
/// whitespace (see `dev_valid_name` in the kernel), and no '%' (a name
/// template for the kernel, which the engine's TAP port refuses).
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c == '%' || c.is_whitespace() || c.is_control())
}

/// Parses `mem`, `tap:NAME`, `af_xdp:IFACE[,OPTIONS]` or `dpdk:ARGS`.
pub fn port_spec(text: &str) -> Result<PortSpec, ValueError> {
    let form = "is not a port (mem, tap:NAME, af_xdp:IFACE or dpdk:ARGS)";
    let ifname_form =
        "has an interface name that Linux refuses (1 to 15 characters, no '/', ':', '%' or spaces)";
    let trimmed = text.trim();
    if trimmed == "mem" {
        return Ok(PortSpec::Mem);
    }
    let (kind, rest) = trimmed
        .split_once(':')
        .ok_or_else(|| ValueError::new(text, form))?;
    match kind {
        "tap" if !valid_ifname(rest) => Err(ValueError::new(text, ifname_form)),
        "tap" => Ok(PortSpec::Tap {
            name: rest.to_owned(),
        }),
        "af_xdp" => wirespeed::port::AfXdpConfig::parse(rest)
            .map(PortSpec::AfXdp)
            .map_err(|why| ValueError::new(text, &why)),
        "dpdk" => {
            let eal = rest.split(';').next().unwrap_or("");
            let args: Vec<String> = eal.split_whitespace().map(str::to_owned).collect();
            if args.is_empty() {
                return Err(ValueError::new(
                    text,
                    "has no EAL arguments (example: dpdk:--vdev=net_tap0 --no-pci)",
                ));
            }
            #[cfg(feature = "dpdk")]
            wirespeed::port::dpdk::DpdkConfig::parse(rest)
                .map_err(|why| ValueError::new(text, &why))?;
            eal_cores(&args)?;
            Ok(PortSpec::Dpdk {
                args,
                spec: rest.trim().to_owned(),
            })
        }
        _ => Err(ValueError::new(text, form)),
    }
}

/// The cores an EAL argument list names with `-l LIST`, `-lLIST` or
/// `--lcores=LIST`/`--lcores LIST` (`1`, `0,2`, `0-3`, `0-1,4`), in order;
/// `None` when it names none. The workers of a DPDK port run on them.
pub fn eal_cores(args: &[String]) -> Result<Option<Vec<usize>>, ValueError> {
    let mut list = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-l" || a == "--lcores" {
            list = it.next().cloned();
        } else if let Some(rest) = a.strip_prefix("--lcores=") {
            list = Some(rest.to_owned());
        } else if let Some(rest) = a
            .strip_prefix("-l")
            .filter(|r| !r.is_empty() && !r.starts_with('-'))
        {
            list = Some(rest.to_owned());
        }
    }
    let Some(list) = list else {
        return Ok(None);
    };
    let bad = || {
        ValueError::new(
            &list,
            "is not a core list this tool reads (N, N-M, comma-separated: 1 or 0-1,4)",
        )
    };
    let mut cores = Vec::new();
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b > 4095 {
            return Err(bad());
        }
        cores.extend(a..=b);
    }
    Ok(Some(cores))
}

/// A file to write: its directory must exist, so that a long run does not
/// end with nowhere to put its report.
pub fn output_file(text: &str) -> Result<PathBuf, ValueError> {
    if text.is_empty() {
        return Err(ValueError::new(text, "is not a file name"));
    }
    let path = PathBuf::from(text);
    if path.is_dir() {
        return Err(ValueError::new(text, "is a directory, not a file name"));
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(ValueError::new(
            text,
            format!("is in a directory that does not exist ({})", dir.display()),
        )),
        _ => Ok(path),
    }
}

/// A file to read: it must exist and be a regular file.
pub fn input_file(text: &str) -> Result<PathBuf, ValueError> {
    let path = PathBuf::from(text);
    if !path.is_file() {
        return Err(ValueError::new(text, "is not a file that exists"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_core_lists() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(eal_cores(&v(&["--no-pci"])).unwrap(), None);
        assert_eq!(
            eal_cores(&v(&["-l", "1", "--no-huge"])).unwrap(),
            Some(vec![1])
        );
        assert_eq!(eal_cores(&v(&["-l0-1,4"])).unwrap(), Some(vec![0, 1, 4]));
        assert_eq!(eal_cores(&v(&["--lcores=2,3"])).unwrap(), Some(vec![2, 3]));
        assert_eq!(eal_cores(&v(&["--lcores", "5"])).unwrap(), Some(vec![5]));
        for bad in ["1-0", "a", "1,,2", "(0-1)@2"] {
            assert!(eal_cores(&v(&["-l", bad])).is_err(), "{bad}");
        }
    }
    use proptest::prelude::*;

    #[test]
    fn durations() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("250us"), Ok(Duration::from_micros(250)));
        for bad in [
            "", "5x", "s", "1.2.3s", "-1s", "0", "0ms", "1e3", "10 s", "1.5ns",
        ] {
            assert!(duration(bad).is_err(), "{bad:?} accepted");
        }
        let e = duration("5x").unwrap_err().to_string();
        assert!(
            e.contains("\"5x\" is not a duration") && e.contains("10s, 500ms, 2m"),
            "{e}"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(size("64"), Ok(64));
        assert_eq!(size("64B"), Ok(64));
        assert_eq!(size("4k"), Ok(4096));
        assert_eq!(size("4KiB"), Ok(4096));
        assert_eq!(size("1m"), Ok(1 << 20));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("2G"), Ok(2 << 30));
        assert_eq!(size("1.5k"), Ok(1536));
        assert_eq!(size("0"), Ok(0));
        for bad in [
            "",
            "k",
            "4kb",
            "4KB",
            "1.3",
            "-4",
            "4 k",
            "99999999999999999999g",
        ] {
            assert!(size(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(rate("1000"), Ok(1000.0));
        assert_eq!(rate("10k"), Ok(10_000.0));
        assert_eq!(rate("1.5m"), Ok(1_500_000.0));
        assert_eq!(rate("250/s"), Ok(250.0));
        assert_eq!(rate("0.5"), Ok(0.5));
        for bad in ["", "0", "fast", "10x", "-5", "2000m", "1e3"] {
            assert!(rate(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn addresses() {
        let c = ipv4_cidr("198.18.0.1/24").unwrap();
        assert_eq!(c.addr, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(c.prefix_len, 24);
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(c.contains(Ipv4Addr::new(198, 18, 0, 254)));
        assert!(!c.contains(Ipv4Addr::new(198, 18, 1, 1)));
        assert_eq!(
            ipv4_cidr("198.18.0.1/32").unwrap().netmask(),
            Ipv4Addr::BROADCAST
        );
        for bad in [
            "198.18.0.1",
            "198.18.0.1/33",
            "198.18.0.1/0",
            "0.0.0.0/8",
            "224.0.0.1/4",
            "x/24",
        ] {
            assert!(ipv4_cidr(bad).is_err(), "{bad:?} accepted");
        }
        let r = ipv4_range("198.18.1.1-198.18.1.200").unwrap();
        assert_eq!(r.len(), 200);
        assert!(r.contains(Ipv4Addr::new(198, 18, 1, 200)));
        assert_eq!(r.iter().count(), 200);
        assert_eq!(ipv4_range("198.18.1.7").unwrap().len(), 1);
        assert!(ipv4_range("198.18.1.9-198.18.1.1").is_err());
        assert!(ipv4_range("198.18.1.1-").is_err());
        assert_eq!(
            target("198.18.0.2:8080", 80),
            Ok("198.18.0.2:8080".parse().unwrap())
        );
        assert_eq!(target("198.18.0.2", 7), Ok("198.18.0.2:7".parse().unwrap()));
        assert!(target("198.18.0.2:0", 80).is_err());
        assert!(target("host:80", 80).is_err());
    }

    #[test]
    fn thresholds() {
        assert_eq!(error_threshold("0"), Ok(ErrorThreshold::Count(0)));
        assert_eq!(error_threshold("100"), Ok(ErrorThreshold::Count(100)));
        assert_eq!(error_threshold("1%"), Ok(ErrorThreshold::Fraction(0.01)));
        assert_eq!(error_threshold("0.5"), Ok(ErrorThreshold::Fraction(0.5)));
        for bad in ["", "-1", "101%", "1.5", "x", "%"] {
            assert!(error_threshold(bad).is_err(), "{bad:?} accepted");
        }
        assert!(!ErrorThreshold::Count(0).exceeded(0, 10));
        assert!(ErrorThreshold::Count(0).exceeded(1, 10));
        assert!(!ErrorThreshold::Fraction(0.1).exceeded(1, 10));
        assert!(ErrorThreshold::Fraction(0.1).exceeded(2, 10));
        assert!(ErrorThreshold::Fraction(0.1).exceeded(1, 0));
    }

    #[test]
    fn ports() {
        assert_eq!(port_spec("mem"), Ok(PortSpec::Mem));
        assert_eq!(
            port_spec("tap:ws0"),
            Ok(PortSpec::Tap { name: "ws0".into() })
        );
        assert_eq!(
            port_spec("af_xdp:veth1"),
            Ok(PortSpec::AfXdp(wirespeed::port::AfXdpConfig::new("veth1")))
        );
        let PortSpec::AfXdp(c) =
            port_spec("af_xdp:veth1,queues=2,mode=generic,zc=off,frames=8192").unwrap()
        else {
            panic!("not af_xdp");
        };
        assert_eq!(
            (c.queues, c.mode, c.frames),
            (2, wirespeed::port::af_xdp::XdpMode::Generic, 8192)
        );
        assert_eq!(
            port_spec("dpdk:--vdev=net_null0 --no-pci"),
            Ok(PortSpec::Dpdk {
                args: vec!["--vdev=net_null0".into(), "--no-pci".into()],
                spec: "--vdev=net_null0 --no-pci".into(),
            })
        );
        for bad in [
            "",
            "tap",
            "tap:",
            "tap:a/b",
            "tap:ws%d",
            "tap:waytoolonginterface",
            "xdp:eth1",
            "af_xdp:",
            "af_xdp:veth1,queues=0",
            "af_xdp:veth1,mode=fast",
            "af_xdp:veth1,zc=maybe",
            "af_xdp:veth1,frames=10",
            "af_xdp:veth1,colour=red",
            "af_xdp:veth1,queues",
            "dpdk:",
            "memory",
        ] {
            assert!(port_spec(bad).is_err(), "{bad:?} accepted");
        }
        for ok in [
            "mem",
            "tap:ws0",
            "af_xdp:veth1",
            "af_xdp:veth1,queues=2,mode=native,zc=off",
            "dpdk:--no-pci",
        ] {
            assert_eq!(port_spec(ok).unwrap().to_string(), ok);
        }
    }

    #[test]
    fn files() {
        let dir = std::env::temp_dir();
        assert!(output_file("report.json").is_ok());
        assert!(output_file(&dir.join("r.json").to_string_lossy()).is_ok());
        assert!(output_file("").is_err());
        assert!(output_file(&dir.to_string_lossy()).is_err());
        assert!(output_file("/nonexistent-wirespeed-dir/r.json").is_err());
        assert!(input_file("/nonexistent-wirespeed-dir/a.hlog").is_err());
        assert!(input_file(&dir.to_string_lossy()).is_err());
    }

    proptest! {
        #[test]
        fn duration_round_trips(n in 1u64..1_000_000, unit in 0usize..5) {
            let (suffix, nanos) = [("us", 1_000u64), ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)][unit];
            let d = duration(&format!("{n}{suffix}")).unwrap();
            prop_assert_eq!(d.as_nanos(), u128::from(n) * u128::from(nanos));
        }

        #[test]
        fn size_round_trips(n in 0u64..1_000_000, unit in 0usize..4) {
            let (suffix, scale) = [("", 1u64), ("k", 1 << 10), ("MiB", 1 << 20), ("g", 1 << 30)][unit];
            prop_assert_eq!(size(&format!("{n}{suffix}")), Ok(n * scale));
        }

        #[test]
        fn rate_scales(n in 1u32..100_000, unit in 0usize..3) {
            let (suffix, scale) = [("", 1.0), ("k", 1e3), ("m", 1e6)][unit];
            let r = rate(&format!("{n}{suffix}"));
            if f64::from(n) * scale <= 1e9 {
                prop_assert_eq!(r, Ok(f64::from(n) * scale));
            } else {
                prop_assert!(r.is_err());
            }
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,24}") {
            let _ = duration(&s);
            let _ = size(&s);
            let _ = rate(&s);
            let _ = ipv4_cidr(&s);
            let _ = ipv4_range(&s);
            let _ = target(&s, 80);
            let _ = error_threshold(&s);
            let _ = port_spec(&s);
        }

        #[test]
        fn range_order_checked(a: u32, b: u32) {
            let text = format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b));
            match ipv4_range(&text) {
                Ok(r) => { prop_assert!(a <= b); prop_assert_eq!(r.len(), u64::from(b - a) + 1); }
                Err(_) => prop_assert!(a > b),
            }
        }
    }
}
