//! The command line: clap definitions, then the checks that span several
//! flags, producing the typed [`crate::args`] structs.
//!
//! Every error is a `clap::Error` whose message names the flag and shows the
//! accepted form; `clap::Error::exit` prints it and exits with status 2
//! (status 0 for `--help` and `--version`).

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

use crate::args::{
    defaults, LoadArgs, LoadMode, MergeArgs, ServeArgs, ServeMode, PORTS_PER_SOURCE,
};
use crate::units::{self, ErrorThreshold, Ipv4Cidr, Ipv4Range, PortSpec, ValueError};

/// A parsed and checked command.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// `wirespeed serve ...`
    Serve(ServeArgs),
    /// `wirespeed load ...`
    Load(LoadArgs),
    /// `wirespeed report merge ...`
    Merge(MergeArgs),
}

/// Parses the process's arguments.
pub fn parse() -> Result<Invocation, clap::Error> {
    parse_from(std::env::args_os())
}

/// Parses `args` (the first is the program name).
pub fn parse_from<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args)?.command {
        Cmd::Serve(s) => s.check().map(Invocation::Serve),
        Cmd::Load(l) => l.check().map(Invocation::Load),
        Cmd::Report(ReportCmd::Merge(m)) => Ok(Invocation::Merge(MergeArgs {
            files: m.files,
            output: m.output,
            json: m.json,
            latency: m.latency,
            plot: m.plot,
        })),
    }
}

// Number and unit flags take values that start with '-' ("-1", "-5s"), so
// that their own parser names the flag and the accepted form instead of clap
// reading the value as an unknown option.

/// A usage error found after clap's own parsing, formatted like clap's
/// (with the subcommand's usage line).
fn usage_error(subcommand: &str, message: String) -> clap::Error {
    let mut cmd = Cli::command();
    cmd.build();
    match cmd.find_subcommand_mut(subcommand) {
        Some(sub) => sub.error(ErrorKind::ArgumentConflict, message),
        None => cmd.error(ErrorKind::ArgumentConflict, message),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "wirespeed",
    version,
    about = "Load generator and server emulator on the wirespeed kernel-bypass TCP/IP engine",
    after_help = "Exit status: 0 success, 1 the run failed (errors above --error-threshold, or it could not run), 2 bad usage.\n\
                  Reference: docs/cli.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Emulate a server: http, echo or discard.
    Serve(ServeCli),
    /// Generate load: http, echo, connect or bulk.
    Load(LoadCli),
    /// Work on recorded results.
    #[command(subcommand)]
    Report(ReportCmd),
}

#[derive(Debug, Subcommand)]
enum ReportCmd {
    /// Merge HdrHistogram interval logs (from several cores or machines) and
    /// print the merged latency summary.
    Merge(MergeCli),
}

/// Flags both `serve` and `load` take.
#[derive(Debug, clap::Args)]
struct NetCli {
    /// Device: mem (in-memory wire, no privileges), tap:NAME,
    /// af_xdp:IFACE[,queues=N][,mode=native|generic|auto][,zc=auto|on|off]
    /// or dpdk:EAL ARGS[;port=N][;queues=N][;mbufs=N][;mtu=N] [default: mem]
    #[arg(long, value_name = "SPEC", value_parser = units::port_spec)]
    port: Option<PortSpec>,
    /// This host's address and prefix length [default: serve 198.18.0.1/24,
    /// load 198.18.0.2/24]
    #[arg(long, value_name = "ADDR/LEN", value_parser = units::ipv4_cidr)]
    ip: Option<Ipv4Cidr>,
    /// Default gateway, inside the --ip subnet [default: none, the subnet
    /// only]
    #[arg(long, value_name = "ADDR", value_parser = units::ipv4)]
    gateway: Option<Ipv4Addr>,
    /// Worker cores, one queue each [default: all online cores; tap: 1;
    /// af_xdp and dpdk: their queues=]
    #[arg(long, value_name = "N", value_parser = parse_cores, allow_hyphen_values = true)]
    cores: Option<usize>,
}

#[derive(Debug, clap::Args)]
struct ServeCli {
    /// What to serve.
    #[arg(value_enum)]
    mode: ServeMode,
    #[command(flatten)]
    net: NetCli,
    /// TCP port to listen on [default: http 80, echo 7, discard 9]
    #[arg(long, value_name = "PORT", value_parser = units::tcp_port, allow_hyphen_values = true)]
    listen: Option<u16>,
    /// HTTP response body size (http only) [default: 64]
    #[arg(long, value_name = "BYTES", value_parser = parse_body_size, allow_hyphen_values = true)]
    body_size: Option<usize>,
    /// Stop after this long [default: run until interrupted]
    #[arg(long, value_name = "D", value_parser = units::duration, allow_hyphen_values = true)]
    duration: Option<Duration>,
}

#[derive(Debug, clap::Args)]
struct LoadCli {
    /// What to generate.
    #[arg(value_enum)]
    mode: LoadMode,
    #[command(flatten)]
    net: NetCli,
    /// Server address; a bare ADDR takes the mode's port (http 80, echo 7,
    /// connect 7, bulk 9) [default: 198.18.0.1]
    #[arg(long, value_name = "ADDR:PORT")]
    target: Option<String>,
    /// Request path (http only) [default: /]
    #[arg(long, value_name = "/P", value_parser = parse_path)]
    path: Option<String>,
    /// Concurrent connections [default: 100, bulk 1]
    #[arg(long, value_name = "N", value_parser = parse_connections, allow_hyphen_values = true)]
    connections: Option<usize>,
    /// How long to generate load [default: 10s]
    #[arg(long, value_name = "D", value_parser = units::duration, allow_hyphen_values = true)]
    duration: Option<Duration>,
    /// Open loop: requests (connect: connections) per second over all cores;
    /// latency counts from the intended send time [default: closed loop]
    #[arg(long, value_name = "R", value_parser = units::rate, allow_hyphen_values = true)]
    rate: Option<f64>,
    /// A new connection for every request, closed after the response (http,
    /// echo)
    #[arg(long)]
    new_conn_per_request: bool,
    /// Bytes per message (echo) or per write (bulk) [default: 64, bulk 64k]
    #[arg(long, value_name = "BYTES", value_parser = parse_message_size, allow_hyphen_values = true)]
    size: Option<usize>,
    /// Requests in flight per connection (http, echo) [default: 1]
    #[arg(long, value_name = "N", value_parser = parse_pipeline, allow_hyphen_values = true)]
    pipeline: Option<usize>,
    /// Source addresses, both ends included, for more than 64 K connections
    /// per target [default: the --ip address]
    #[arg(long, value_name = "A-B", value_parser = units::ipv4_range)]
    src_ips: Option<Ipv4Range>,
    /// Write the JSON report to FILE
    #[arg(long, value_name = "FILE", value_parser = units::output_file)]
    json: Option<PathBuf>,
    /// Write an HdrHistogram interval log (V2, DEFLATE, one interval a
    /// second, nanoseconds) to FILE
    #[arg(long, value_name = "FILE", value_parser = units::output_file)]
    hlog: Option<PathBuf>,
    /// Print the full latency percentile spectrum
    #[arg(long)]
    latency: bool,
    /// Draw the latency-by-percentile curve to FILE.svg
    #[arg(long, value_name = "FILE.svg", value_parser = units::output_file)]
    plot: Option<PathBuf>,
    /// Errors that fail the run (exit 1): a count N (more than N fails), a
    /// percentage P% or a fraction 0.F of requests plus connection attempts
    /// [default: 0]
    #[arg(long, value_name = "N|P%", value_parser = units::error_threshold, allow_hyphen_values = true)]
    error_threshold: Option<ErrorThreshold>,
}

#[derive(Debug, clap::Args)]
struct MergeCli {
    /// Interval logs to merge.
    #[arg(value_name = "FILE.hlog", required = true, value_parser = units::input_file)]
    files: Vec<PathBuf>,
    /// Write the merged interval log to OUT.hlog
    #[arg(short = 'o', long = "output", value_name = "OUT.hlog", value_parser = units::output_file)]
    output: Option<PathBuf>,
    /// Write the merged percentiles as JSON to FILE
    #[arg(long, value_name = "FILE", value_parser = units::output_file)]
    json: Option<PathBuf>,
    /// Print the full latency percentile spectrum
    #[arg(long)]
    latency: bool,
    /// Draw the merged latency-by-percentile curve to FILE.svg
    #[arg(long, value_name = "FILE.svg", value_parser = units::output_file)]
    plot: Option<PathBuf>,
}

fn parse_cores(s: &str) -> Result<usize, ValueError> {
    units::count(s, 1, 4096, "a core count").map(|n| n as usize)
}

fn parse_connections(s: &str) -> Result<usize, ValueError> {
    units::count(s, 1, 100_000_000, "a connection count").map(|n| n as usize)
}

fn parse_pipeline(s: &str) -> Result<usize, ValueError> {
    units::count(s, 1, 1024, "a pipeline depth").map(|n| n as usize)
}

const MAX_SIZE: u64 = 1 << 30;

fn parse_body_size(s: &str) -> Result<usize, ValueError> {
    let v = units::size(s)?;
    if v > MAX_SIZE {
        return Err(ValueError {
            text: s.to_owned(),
            reason: "is larger than 1GiB".to_owned(),
        });
    }
    Ok(v as usize)
}

fn parse_message_size(s: &str) -> Result<usize, ValueError> {
    let v = units::size(s)?;
    if v == 0 || v > MAX_SIZE {
        return Err(ValueError {
            text: s.to_owned(),
            reason: "is not a size from 1 byte to 1GiB (examples: 64, 4k, 1MiB)".to_owned(),
        });
    }
    Ok(v as usize)
}

/// An absolute path of visible ASCII: it goes into the request line as is
/// (RFC 9112 section 3.2.1, origin-form).
fn parse_path(s: &str) -> Result<String, ValueError> {
    if !s.starts_with('/') || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValueError {
            text: s.to_owned(),
            reason:
                "is not a request path (a '/' then visible characters, no spaces: /, /index.html)"
                    .to_owned(),
        });
    }
    Ok(s.to_owned())
}

impl NetCli {
    /// Resolves the defaults and checks the gateway against the subnet.
    fn check(
        &self,
        subcommand: &str,
        default_ip: Ipv4Cidr,
    ) -> Result<(PortSpec, Ipv4Cidr, usize), clap::Error> {
        let ip = self.ip.unwrap_or(default_ip);
        if let Some(gw) = self.gateway {
            if !ip.contains(gw) || gw == ip.addr {
                return Err(usage_error(
                    subcommand,
                    format!("--gateway: {gw} is not another host in the --ip subnet {ip} (a gateway must be directly reachable)"),
                ));
            }
        }
        let port = self.port.clone().unwrap_or(PortSpec::Mem);
        let cores = match (&port, self.cores) {
            (_, Some(n)) => n,
            (PortSpec::Tap { .. }, None) => 1,
            (PortSpec::AfXdp(c), None) => usize::from(c.queues),
            (PortSpec::Dpdk { spec, .. }, None) => dpdk_queues(spec),
            _ => defaults::cores(),
        };
        Ok((port, ip, cores))
    }
}

/// The `queues=` option of a DPDK port spec (1 when absent).
fn dpdk_queues(spec: &str) -> usize {
    spec.split(';')
        .skip(1)
        .filter_map(|p| p.trim().strip_prefix("queues="))
        .filter_map(|v| v.trim().parse().ok())
        .last()
        .unwrap_or(1)
}

impl ServeCli {
    fn check(self) -> Result<ServeArgs, clap::Error> {
        let (port, ip, cores) = self.net.check("serve", defaults::SERVE_IP)?;
        if self.body_size.is_some() && self.mode != ServeMode::Http {
            return Err(usage_error(
                "serve",
                format!(
                    "--body-size: only serve http sends a body, not serve {}",
                    self.mode.name()
                ),
            ));
        }
        Ok(ServeArgs {
            mode: self.mode,
            port,
            ip,
            gateway: self.net.gateway,
            listen: self.listen.unwrap_or(self.mode.default_port()),
            cores,
            body_size: self.body_size.unwrap_or(defaults::BODY_SIZE),
            duration: self.duration,
        })
    }
}

impl LoadCli {
    fn check(self) -> Result<LoadArgs, clap::Error> {
        let err = |message: String| usage_error("load", message);
        let mode = self.mode;
        let name = mode.name();
        let (port, ip, cores) = self.net.check("load", defaults::LOAD_IP)?;

        let target = match &self.target {
            Some(t) => {
                units::target(t, mode.default_port()).map_err(|e| err(format!("--target: {e}")))?
            }
            None => std::net::SocketAddrV4::new(defaults::SERVE_IP.addr, mode.default_port()),
        };
        if *target.ip() == ip.addr {
            return Err(err(format!(
                "--target: {} is this host's own --ip address",
                target.ip()
            )));
        }
        if !ip.contains(*target.ip()) && self.net.gateway.is_none() {
            return Err(err(format!(
                "--target: {} is outside the --ip subnet {ip}; give --gateway to reach it",
                target.ip()
            )));
        }

        let http_or_echo = matches!(mode, LoadMode::Http | LoadMode::Echo);
        if self.path.is_some() && mode != LoadMode::Http {
            return Err(err(format!(
                "--path: only load http sends a path, not load {name}"
            )));
        }
        if self.new_conn_per_request && !http_or_echo {
            return Err(err(format!(
                "--new-conn-per-request: applies to load http and echo, not load {name}"
            )));
        }
        if let Some(p) = self.pipeline {
            if !http_or_echo {
                return Err(err(format!(
                    "--pipeline: applies to load http and echo, not load {name}"
                )));
            }
            if p > 1 && self.new_conn_per_request {
                return Err(err(
                    "--pipeline: a connection per request carries one request; drop --pipeline or --new-conn-per-request"
                        .to_owned(),
                ));
            }
        }
        if self.size.is_some()
            && !matches!(mode, LoadMode::Echo | LoadMode::Connect | LoadMode::Bulk)
        {
            return Err(err(format!(
                "--size: applies to load echo, connect and bulk, not load {name}"
            )));
        }
        if self.rate.is_some() && mode == LoadMode::Bulk {
            return Err(err(
                "--rate: load bulk sends as fast as the window allows; --rate applies to http, echo and connect"
                    .to_owned(),
            ));
        }

        let connections = self.connections.unwrap_or(mode.default_connections());
        let src_ips = self.src_ips.unwrap_or(Ipv4Range::single(ip.addr));
        // One target: each connection needs its own (source address, source
        // port) pair (RFC 9293 section 3.4, the 4-tuple names a connection).
        if connections as u64 > src_ips.len() * PORTS_PER_SOURCE {
            let needed = (connections as u64).div_ceil(PORTS_PER_SOURCE);
            return Err(err(format!(
                "--connections: {connections} connections to one target need at least {needed} source addresses \
                 ({PORTS_PER_SOURCE} ports each); give --src-ips with that many"
            )));
        }

        Ok(LoadArgs {
            mode,
            port,
            ip,
            gateway: self.net.gateway,
            target,
            path: self.path.unwrap_or_else(|| defaults::PATH.to_owned()),
            connections,
            duration: self.duration.unwrap_or(defaults::DURATION),
            rate: self.rate,
            new_conn_per_request: self.new_conn_per_request,
            size: self.size.unwrap_or(mode.default_size()),
            pipeline: self.pipeline.unwrap_or(defaults::PIPELINE),
            src_ips,
            cores,
            json: self.json,
            hlog: self.hlog,
            latency: self.latency,
            plot: self.plot,
            error_threshold: self.error_threshold.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> Result<LoadArgs, clap::Error> {
        match parse_from(["wirespeed", "load"].iter().chain(args)) {
            Ok(Invocation::Load(l)) => Ok(l),
            Ok(other) => panic!("not a load: {other:?}"),
            Err(e) => Err(e),
        }
    }

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        match parse_from(["wirespeed", "serve"].iter().chain(args)) {
            Ok(Invocation::Serve(s)) => Ok(s),
            Ok(other) => panic!("not a serve: {other:?}"),
            Err(e) => Err(e),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn load_defaults() {
        let l = load(&["http"]).unwrap();
        assert_eq!(l.mode, LoadMode::Http);
        assert_eq!(l.port, PortSpec::Mem);
        assert_eq!(l.ip, defaults::LOAD_IP);
        assert_eq!(l.gateway, None);
        assert_eq!(l.target, "198.18.0.1:80".parse().unwrap());
        assert_eq!(l.path, "/");
        assert_eq!(l.connections, 100);
        assert_eq!(l.duration, Duration::from_secs(10));
        assert_eq!(l.rate, None);
        assert!(!l.new_conn_per_request);
        assert_eq!(l.size, 64);
        assert_eq!(l.pipeline, 1);
        assert_eq!(l.src_ips, Ipv4Range::single(defaults::LOAD_IP.addr));
        assert_eq!(l.cores, defaults::cores());
        assert_eq!((l.json, l.hlog, l.plot), (None, None, None));
        assert!(!l.latency);
        assert_eq!(l.error_threshold, ErrorThreshold::Count(0));

        assert_eq!(load(&["echo"]).unwrap().target.port(), 7);
        let b = load(&["bulk"]).unwrap();
        assert_eq!((b.connections, b.size, b.target.port()), (1, 65536, 9));
        assert_eq!(load(&["connect"]).unwrap().target.port(), 7);
    }

    #[test]
    fn load_every_flag() {
        let dir = std::env::temp_dir();
        let json = dir.join("ws-cli-test.json");
        let hlog = dir.join("ws-cli-test.hlog");
        let plot = dir.join("ws-cli-test.svg");
        let (j, h, p) = (
            json.to_str().unwrap(),
            hlog.to_str().unwrap(),
            plot.to_str().unwrap(),
        );
        let l = load(&[
            "echo",
            "--port",
            "tap:ws1",
            "--ip",
            "198.18.0.9/16",
            "--gateway",
            "198.18.0.254",
            "--target",
            "198.19.0.2:7007",
            "--connections",
            "5000",
            "--duration",
            "2m",
            "--rate",
            "1.5m",
            "--size",
            "4KiB",
            "--pipeline",
            "8",
            "--src-ips",
            "198.18.1.1-198.18.1.200",
            "--cores",
            "3",
            "--json",
            j,
            "--hlog",
            h,
            "--latency",
            "--plot",
            p,
            "--error-threshold",
            "1%",
        ])
        .unwrap();
        assert_eq!(l.mode, LoadMode::Echo);
        assert_eq!(l.port, PortSpec::Tap { name: "ws1".into() });
        assert_eq!(l.ip.to_string(), "198.18.0.9/16");
        assert_eq!(l.gateway, Some(Ipv4Addr::new(198, 18, 0, 254)));
        assert_eq!(l.target, "198.19.0.2:7007".parse().unwrap());
        assert_eq!(l.connections, 5000);
        assert_eq!(l.duration, Duration::from_secs(120));
        assert_eq!(l.rate, Some(1_500_000.0));
        assert_eq!(l.size, 4096);
        assert_eq!(l.pipeline, 8);
        assert_eq!(l.src_ips.to_string(), "198.18.1.1-198.18.1.200");
        assert_eq!(l.cores, 3);
        assert_eq!(l.json.as_deref(), Some(json.as_path()));
        assert_eq!(l.hlog.as_deref(), Some(hlog.as_path()));
        assert_eq!(l.plot.as_deref(), Some(plot.as_path()));
        assert!(l.latency);
        assert_eq!(l.error_threshold, ErrorThreshold::Fraction(0.01));

        let h = load(&[
            "http",
            "--path",
            "/index.html",
            "--new-conn-per-request",
            "--target",
            "198.18.0.3",
        ])
        .unwrap();
        assert_eq!(h.path, "/index.html");
        assert!(h.new_conn_per_request);
        assert_eq!(h.target, "198.18.0.3:80".parse().unwrap());

        let x = load(&["connect", "--port", "af_xdp:veth0", "--rate", "10k"]).unwrap();
        assert_eq!(
            x.port,
            PortSpec::AfXdp(wirespeed::port::AfXdpConfig::new("veth0"))
        );
        let d = load(&[
            "bulk",
            "--port",
            "dpdk:--vdev=net_tap0 --no-pci",
            "--size",
            "1m",
        ])
        .unwrap();
        assert_eq!(
            d.port,
            PortSpec::Dpdk {
                args: vec!["--vdev=net_tap0".into(), "--no-pci".into()],
                spec: "--vdev=net_tap0 --no-pci".into(),
            }
        );
        assert_eq!(d.size, 1 << 20);
    }

    #[test]
    fn serve_flags() {
        let s = serve(&["http"]).unwrap();
        assert_eq!(
            s,
            ServeArgs {
                mode: ServeMode::Http,
                port: PortSpec::Mem,
                ip: defaults::SERVE_IP,
                gateway: None,
                listen: 80,
                cores: defaults::cores(),
                body_size: 64,
                duration: None,
            }
        );
        assert_eq!(serve(&["echo"]).unwrap().listen, 7);
        assert_eq!(serve(&["discard"]).unwrap().listen, 9);
        let s = serve(&[
            "http",
            "--port",
            "tap:ws0",
            "--ip",
            "198.18.0.1/24",
            "--gateway",
            "198.18.0.254",
            "--listen",
            "8080",
            "--cores",
            "2",
            "--body-size",
            "1k",
            "--duration",
            "30s",
        ])
        .unwrap();
        assert_eq!(s.port, PortSpec::Tap { name: "ws0".into() });
        assert_eq!(s.gateway, Some(Ipv4Addr::new(198, 18, 0, 254)));
        assert_eq!((s.listen, s.cores, s.body_size), (8080, 2, 1024));
        assert_eq!(s.duration, Some(Duration::from_secs(30)));
    }

    #[test]
    fn merge_flags() {
        let f = std::env::temp_dir().join("ws-cli-merge-input.hlog");
        std::fs::write(&f, "").unwrap();
        let fs = f.to_str().unwrap();
        let inv = parse_from([
            "wirespeed",
            "report",
            "merge",
            fs,
            fs,
            "-o",
            "out.hlog",
            "--json",
            "m.json",
            "--latency",
        ])
        .unwrap();
        let Invocation::Merge(m) = inv else {
            panic!("not a merge: {inv:?}")
        };
        assert_eq!(m.files, vec![f.clone(), f.clone()]);
        assert_eq!(m.output, Some(PathBuf::from("out.hlog")));
        assert_eq!(m.json, Some(PathBuf::from("m.json")));
        assert!(m.latency);
        assert!(parse_from(["wirespeed", "report", "merge"]).is_err());
        let _ = std::fs::remove_file(&f);
    }

    #[test]
    fn cross_flag_checks() {
        let msg = |r: Result<LoadArgs, clap::Error>| r.unwrap_err().to_string();
        assert!(msg(load(&["echo", "--path", "/x"])).contains("--path"));
        assert!(msg(load(&["connect", "--pipeline", "2"])).contains("--pipeline"));
        assert!(
            msg(load(&["http", "--pipeline", "2", "--new-conn-per-request"]))
                .contains("--pipeline")
        );
        assert!(msg(load(&["bulk", "--new-conn-per-request"])).contains("--new-conn-per-request"));
        assert!(msg(load(&["http", "--size", "100"])).contains("--size"));
        assert!(msg(load(&["bulk", "--rate", "100"])).contains("--rate"));
        assert!(msg(load(&["http", "--target", "10.0.0.1:80"])).contains("--target"));
        assert!(msg(load(&["http", "--target", "198.18.0.2:80"])).contains("--target"));
        assert!(msg(load(&["http", "--gateway", "10.0.0.1"])).contains("--gateway"));
        assert!(msg(load(&["http", "--connections", "70000"])).contains("--connections"));
        assert!(load(&[
            "http",
            "--connections",
            "70000",
            "--src-ips",
            "198.18.0.2-198.18.0.3"
        ])
        .is_ok());
        assert!(load(&[
            "http",
            "--target",
            "10.0.0.1:80",
            "--gateway",
            "198.18.0.254"
        ])
        .is_ok());
        let e = serve(&["echo", "--body-size", "10"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--body-size"));
    }
}
