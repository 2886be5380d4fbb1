//! What a command asks for, checked and with every default filled in: the
//! typed arguments the runtime consumes. [`crate::cli`] builds them from the
//! command line; `docs/cli.md` is the user-facing reference.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

pub use crate::units::{ErrorThreshold, Ipv4Cidr, Ipv4Range, PortSpec};

/// What `wirespeed serve` emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeMode {
    /// HTTP/1.1 server: answers every request with 200 and a body of
    /// `--body-size` bytes, keeps connections alive.
    Http,
    /// Echo server (RFC 862): sends back every byte it receives.
    Echo,
    /// Discard server (RFC 863): reads and drops every byte.
    Discard,
}

impl ServeMode {
    /// The well-known port: http 80, echo 7 (RFC 862), discard 9 (RFC 863).
    pub fn default_port(self) -> u16 {
        match self {
            ServeMode::Http => 80,
            ServeMode::Echo => 7,
            ServeMode::Discard => 9,
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServeMode::Http => "http",
            ServeMode::Echo => "echo",
            ServeMode::Discard => "discard",
        }
    }
}

/// What `wirespeed load` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadMode {
    /// HTTP/1.1 GET requests on keep-alive connections.
    Http,
    /// Messages of `--size` bytes, each checked when it comes back.
    Echo,
    /// Connections opened and closed, no payload (connections per second).
    Connect,
    /// One-way stream of data in `--size` writes (throughput).
    Bulk,
}

impl LoadMode {
    /// The port a target without one gets: http 80, echo 7, connect 7 (an
    /// echo server answers its request), bulk 9 (a discard server).
    pub fn default_port(self) -> u16 {
        match self {
            LoadMode::Http => 80,
            LoadMode::Echo | LoadMode::Connect => 7,
            LoadMode::Bulk => 9,
        }
    }

    /// Connections when `--connections` is not given: 100, or 1 for bulk
    /// (one stream, as iperf does).
    pub fn default_connections(self) -> usize {
        match self {
            LoadMode::Bulk => 1,
            _ => 100,
        }
    }

    /// Bytes per message (echo) or per write (bulk) when `--size` is not
    /// given: 64, or 64 KiB for bulk.
    pub fn default_size(self) -> usize {
        match self {
            LoadMode::Bulk => 64 << 10,
            _ => 64,
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LoadMode::Http => "http",
            LoadMode::Echo => "echo",
            LoadMode::Connect => "connect",
            LoadMode::Bulk => "bulk",
        }
    }
}

/// Defaults shared by the commands.
pub mod defaults {
    use super::*;

    /// The server's address when `--ip` is not given.
    pub const SERVE_IP: Ipv4Cidr = Ipv4Cidr {
        addr: Ipv4Addr::new(198, 18, 0, 1),
        prefix_len: 24,
    };
    /// The load generator's address when `--ip` is not given.
    pub const LOAD_IP: Ipv4Cidr = Ipv4Cidr {
        addr: Ipv4Addr::new(198, 18, 0, 2),
        prefix_len: 24,
    };
    /// How long a load runs when `--duration` is not given.
    pub const DURATION: Duration = Duration::from_secs(10);
    /// HTTP response body size when `--body-size` is not given.
    pub const BODY_SIZE: usize = 64;
    /// HTTP request path when `--path` is not given.
    pub const PATH: &str = "/";
    /// Requests in flight per connection when `--pipeline` is not given.
    pub const PIPELINE: usize = 1;

    /// Worker cores when `--cores` is not given: every online core.
    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Source ports a connection can take from one source address
/// (1024-65535): the bound on connections per source address and target.
pub const PORTS_PER_SOURCE: u64 = 65535 - 1024 + 1;

/// `wirespeed serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeArgs {
    /// What to serve.
    pub mode: ServeMode,
    /// The device.
    pub port: PortSpec,
    /// The server's address and subnet.
    pub ip: Ipv4Cidr,
    /// Default gateway, inside `ip`'s subnet.
    pub gateway: Option<Ipv4Addr>,
    /// TCP port to listen on.
    pub listen: u16,
    /// Worker cores.
    pub cores: usize,
    /// HTTP response body size in bytes (http only).
    pub body_size: usize,
    /// How long to serve; `None` until interrupted.
    pub duration: Option<Duration>,
}

/// `wirespeed load`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadArgs {
    /// What to generate.
    pub mode: LoadMode,
    /// The device.
    pub port: PortSpec,
    /// The load generator's address and subnet.
    pub ip: Ipv4Cidr,
    /// Default gateway, inside `ip`'s subnet.
    pub gateway: Option<Ipv4Addr>,
    /// The server to load. With the `mem` port and no server there, the
    /// runtime starts one at this address.
    pub target: SocketAddrV4,
    /// Request path (http only).
    pub path: String,
    /// Concurrent connections (connect: concurrent connection attempts).
    pub connections: usize,
    /// How long to generate load.
    pub duration: Duration,
    /// Open loop: operations per second over all cores (requests; for
    /// connect, new connections), latency measured from the intended send
    /// time. `None` is closed loop.
    pub rate: Option<f64>,
    /// Open a new connection for every request and close it after the
    /// response (http, echo).
    pub new_conn_per_request: bool,
    /// Bytes per message (echo) or per write (bulk).
    pub size: usize,
    /// Requests in flight per connection (http, echo).
    pub pipeline: usize,
    /// Source addresses connections take (default: `ip`'s address alone).
    pub src_ips: Ipv4Range,
    /// Worker cores.
    pub cores: usize,
    /// Write the JSON report there.
    pub json: Option<PathBuf>,
    /// Write the HdrHistogram interval log there.
    pub hlog: Option<PathBuf>,
    /// Print the full percentile spectrum.
    pub latency: bool,
    /// Draw the latency-by-percentile curve there (SVG).
    pub plot: Option<PathBuf>,
    /// When the run's errors make it fail (exit status 1).
    pub error_threshold: ErrorThreshold,
}

impl LoadArgs {
    /// "load http", the run's name in reports.
    pub fn title(&self) -> String {
        format!("load {}", self.mode.name())
    }
}

/// `wirespeed report merge`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeArgs {
    /// Interval logs to merge.
    pub files: Vec<PathBuf>,
    /// Write the merged interval log there.
    pub output: Option<PathBuf>,
    /// Write the merged percentiles as JSON there.
    pub json: Option<PathBuf>,
    /// Print the full percentile spectrum.
    pub latency: bool,
    /// Draw the merged latency-by-percentile curve there (SVG).
    pub plot: Option<PathBuf>,
}
