//! The Linux kernel stack's side of the comparison: an epoll (mio) echo
//! server and client, one thread each, for `bench/compare.sh`.
//!
//! Server modes (`epoll_peer server --mode M [--listen ADDR] [--size N]`):
//! - `echo`: writes back every byte it reads;
//! - `discard`: reads and drops; when the client ends its stream, replies
//!   with the number of bytes it received (8 bytes, big endian) and closes,
//!   so the client can check delivery and time the last byte;
//! - `connect`: reads a request of `--size` bytes, answers `--size` bytes,
//!   and closes first (the server holds TIME-WAIT, as an HTTP server with
//!   `Connection: close` does).
//!
//! It prints `listening on ADDR` once it accepts connections and exits by
//! itself after `--lifetime` (default 10 minutes).
//!
//! Client modes (`epoll_peer client --mode M --server ADDR ...`):
//! - `echo`: `--connections` connections opened first, then each sends a
//!   `--size`-byte request and waits for the echo before the next (closed
//!   loop) until `--duration` has passed; echoed bytes are checked;
//! - `connect`: `--connections` slots, each opening a connection, sending
//!   one request, reading the response and the server's close, closing, and
//!   starting over: connections per second;
//! - `bulk`: `--connections` streams (default 1) writing `--size`-byte
//!   chunks (default 64 KiB) to a `discard` server; at the end each stream
//!   is shut down and the interval ends when every byte count has come back.
//!
//! `--latency` records per-request (per-connection for `connect`) latency
//! in an HdrHistogram. The report is [`wirespeed_bench::peer::Report`]'s
//! JSON, written to `--json FILE` or stdout.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use wirespeed_bench::peer::{
    latency_histogram, parse_duration, pin_to_core, raise_nofile_limit, Errors, Latency, Report,
};

/// Connection attempts in flight at once while a pool is opened: keeps the
/// server's accept queue from overflowing (a dropped SYN costs a 1 s retry).
const MAX_PENDING_CONNECTS: usize = 256;
/// How long opening the pool, or collecting bulk byte counts, may take.
const GRACE: Duration = Duration::from_secs(30);
/// Listen backlog (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;
const LISTENER: Token = Token(usize::MAX);

#[derive(Debug, Parser)]
#[command(about = "epoll (mio) echo server and client: the Linux peer of bench/compare.sh")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve echo, discard or connect until killed or `--lifetime` ends.
    Server(ServerArgs),
    /// Run one bounded load against a server and report it.
    Client(ClientArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ServerMode {
    Echo,
    Discard,
    Connect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientMode {
    Echo,
    Connect,
    Bulk,
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    #[arg(long, value_enum)]
    mode: ServerMode,
    /// Address to listen on; port 0 picks a free one (printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Request and response size in `connect` mode.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Pin the server's thread to this CPU.
    #[arg(long)]
    core: Option<usize>,
    /// Exit after this long even if nobody stops the server.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    lifetime: Duration,
}

#[derive(Debug, clap::Args)]
struct ClientArgs {
    #[arg(long, value_enum)]
    mode: ClientMode,
    /// The server's address.
    #[arg(long)]
    server: SocketAddr,
    /// Concurrent connections (bulk: streams).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Length of the measured interval.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Request size (echo, connect; default 64) or write size (bulk; default 65536).
    #[arg(long)]
    size: Option<usize>,
    /// Record per-request latency.
    #[arg(long)]
    latency: bool,
    /// Write the JSON report here instead of stdout.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Pin the client's thread to this CPU.
    #[arg(long)]
    core: Option<usize>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    raise_nofile_limit();
    match cli.cmd {
        Cmd::Server(args) => {
            if let Some(core) = args.core {
                pin_to_core(core)?;
            }
            serve(&args)
        }
        Cmd::Client(args) => {
            if let Some(core) = args.core {
                pin_to_core(core)?;
            }
            let report = run_client(&args)?;
            eprintln!("{}", report.summary());
            let json = serde_json::to_string_pretty(&report.to_json())?;
            match &args.json {
                Some(path) => std::fs::write(path, json + "\n")
                    .with_context(|| format!("writing {}", path.display()))?,
                None => println!("{json}"),
            }
            Ok(())
        }
    }
}

/// The payload both sides send: a pattern, so echoed bytes can be checked.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Counts an I/O error under its kind.
fn count(errors: &mut Errors, e: &io::Error) {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            errors.reset += 1
        }
        ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable | ErrorKind::NotConnected => {
            errors.connect += 1
        }
        ErrorKind::UnexpectedEof => errors.eof += 1,
        ErrorKind::InvalidData => errors.mismatch += 1,
        ErrorKind::TimedOut => errors.timeout += 1,
        _ => errors.io += 1,
    }
}

fn eof() -> io::Error {
    io::Error::new(ErrorKind::UnexpectedEof, "peer closed early")
}

fn mismatch() -> io::Error {
    io::Error::new(ErrorKind::InvalidData, "bytes differ from what was sent")
}

// ---------------------------------------------------------------- server

struct ServerConn {
    stream: TcpStream,
    /// Bytes read but not yet written back (echo), or the response.
    pending: Vec<u8>,
    received: u64,
    /// The response or byte count is queued; close once it is written.
    closing: bool,
}

fn serve(args: &ServerArgs) -> Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(args.listen).context("bind")?;
    // SAFETY: the descriptor belongs to `listener`, which outlives the call;
    // listen() on a listening socket only changes its backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
        bail!("listen: {}", io::Error::last_os_error());
    }
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    let response = pattern(args.size);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut conns: Vec<Option<ServerConn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let end = Instant::now() + args.lifetime;
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        match poll.poll(&mut events, Some((end - now).min(Duration::from_secs(1)))) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in &events {
            if ev.token() == LISTENER {
                accept_all(&mut poll, &listener, &mut conns, &mut free)?;
                continue;
            }
            let idx = ev.token().0;
            let Some(conn) = conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            let keep = match args.mode {
                ServerMode::Echo => serve_echo(conn, &mut scratch),
                ServerMode::Discard => serve_discard(conn, &mut scratch),
                ServerMode::Connect => serve_connect(conn, &mut scratch, &response),
            };
            if !matches!(keep, Ok(true)) {
                conns[idx] = None;
                free.push(idx);
            }
        }
    }
}

fn accept_all(
    poll: &mut Poll,
    listener: &TcpListener,
    conns: &mut Vec<Option<ServerConn>>,
    free: &mut Vec<usize>,
) -> Result<()> {
    loop {
        let (mut stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Out of descriptors or a connection reset before accept: the
            // listener stays usable, the client counts its own failure.
            Err(e) => {
                eprintln!("accept: {e}");
                return Ok(());
            }
        };
        stream.set_nodelay(true)?;
        let idx = free.pop().unwrap_or_else(|| {
            conns.push(None);
            conns.len() - 1
        });
        poll.registry().register(
            &mut stream,
            Token(idx),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        conns[idx] = Some(ServerConn {
            stream,
            pending: Vec::new(),
            received: 0,
            closing: false,
        });
    }
}

/// Writes as much of `conn.pending` as the socket takes. Ok(true) when all
/// of it is gone.
fn flush(conn: &mut ServerConn) -> io::Result<bool> {
    while !conn.pending.is_empty() {
        match conn.stream.write(&conn.pending) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.pending.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads once; `Ok(None)` when the socket has nothing more for now.
fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Ok(false): the connection is finished and should be dropped.
fn serve_echo(conn: &mut ServerConn, scratch: &mut [u8]) -> io::Result<bool> {
    loop {
        // Echo what is owed before reading more: the client's window, not
        // our memory, holds the backlog.
        if !flush(conn)? {
            return Ok(true);
        }
        let Some(n) = read_some(&mut conn.stream, scratch)? else {
            return Ok(true);
        };
        if n == 0 {
            return Ok(false);
        }
        match conn.stream.write(&scratch[..n]) {
            Ok(k) => conn.pending.extend_from_slice(&scratch[k..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                conn.pending.extend_from_slice(&scratch[..n])
            }
            Err(e) => return Err(e),
        }
    }
}

fn serve_discard(conn: &mut ServerConn, scratch: &mut [u8]) -> io::Result<bool> {
    if conn.closing {
        return Ok(!flush(conn)?);
    }
    loop {
        let Some(n) = read_some(&mut conn.stream, scratch)? else {
            return Ok(true);
        };
        if n == 0 {
            conn.pending.extend_from_slice(&conn.received.to_be_bytes());
            conn.closing = true;
            return Ok(!flush(conn)?);
        }
        conn.received += n as u64;
    }
}

fn serve_connect(conn: &mut ServerConn, scratch: &mut [u8], response: &[u8]) -> io::Result<bool> {
    if conn.closing {
        return Ok(!flush(conn)?);
    }
    loop {
        let Some(n) = read_some(&mut conn.stream, scratch)? else {
            return Ok(true);
        };
        if n == 0 {
            return Ok(false);
        }
        conn.received += n as u64;
        if conn.received >= response.len() as u64 {
            conn.pending.extend_from_slice(response);
            conn.closing = true;
            // Dropping the socket once the response is out sends our FIN.
            return Ok(!flush(conn)?);
        }
    }
}

// ---------------------------------------------------------------- client

fn run_client(args: &ClientArgs) -> Result<Report> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let size = args.size.unwrap_or(match args.mode {
        ClientMode::Bulk => 64 * 1024,
        _ => 64,
    });
    if size == 0 {
        bail!("--size must be at least 1");
    }
    let mut client = Client {
        poll: Poll::new()?,
        scratch: vec![0u8; 64 * 1024],
        payload: pattern(size),
        latency: args.latency.then(latency_histogram),
        report: Report::new(match args.mode {
            ClientMode::Echo => "echo",
            ClientMode::Connect => "connect",
            ClientMode::Bulk => "bulk",
        }),
    };
    match args.mode {
        ClientMode::Echo => client.echo(args)?,
        ClientMode::Connect => client.connect(args)?,
        ClientMode::Bulk => client.bulk(args)?,
    }
    let mut report = client.report;
    report.latency = client.latency.as_ref().and_then(Latency::from_ns);
    Ok(report)
}

/// Whether a non-blocking connect has finished: Ok(false) while pending.
fn connected(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// One connection of a fixed pool: where the current exchange stands.
struct PoolConn {
    stream: TcpStream,
    sent: usize,
    received: usize,
    started: Option<Instant>,
    /// Bulk: total written, and the server's byte count as it arrives.
    total_sent: u64,
    count: Vec<u8>,
}

struct Client {
    poll: Poll,
    scratch: Vec<u8>,
    payload: Vec<u8>,
    latency: Option<Histogram<u64>>,
    report: Report,
}

impl Client {
    /// Opens `n` connections, at most [`MAX_PENDING_CONNECTS`] at a time.
    /// Failed slots are `None` and counted as connect errors.
    fn open_pool(&mut self, server: SocketAddr, n: usize) -> Result<Vec<Option<PoolConn>>> {
        let mut pool: Vec<Option<PoolConn>> = (0..n).map(|_| None).collect();
        let mut ready = vec![false; n];
        let (mut next, mut pending, mut done) = (0, 0, 0);
        let give_up = Instant::now() + GRACE;
        let mut events = Events::with_capacity(1024);
        while done < n {
            while pending < MAX_PENDING_CONNECTS && next < n {
                match TcpStream::connect(server) {
                    Ok(mut stream) => {
                        stream.set_nodelay(true)?;
                        self.poll.registry().register(
                            &mut stream,
                            Token(next),
                            Interest::READABLE | Interest::WRITABLE,
                        )?;
                        pool[next] = Some(PoolConn {
                            stream,
                            sent: 0,
                            received: 0,
                            started: None,
                            total_sent: 0,
                            count: Vec::new(),
                        });
                        pending += 1;
                    }
                    Err(e) => {
                        count(&mut self.report.errors, &e);
                        done += 1;
                    }
                }
                next += 1;
            }
            if Instant::now() >= give_up {
                for (slot, ok) in pool.iter_mut().zip(&ready) {
                    if slot.is_some() && !ok {
                        *slot = None;
                        self.report.errors.connect += 1;
                    }
                }
                break;
            }
            match self
                .poll
                .poll(&mut events, Some(Duration::from_millis(100)))
            {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            for ev in &events {
                let idx = ev.token().0;
                let Some(conn) = pool.get(idx).and_then(Option::as_ref) else {
                    continue;
                };
                if ready[idx] {
                    continue;
                }
                match connected(&conn.stream) {
                    Ok(false) => continue,
                    Ok(true) => {
                        ready[idx] = true;
                        self.report.connections_opened += 1;
                    }
                    Err(e) => {
                        count(&mut self.report.errors, &e);
                        pool[idx] = None;
                    }
                }
                pending -= 1;
                done += 1;
            }
        }
        Ok(pool)
    }

    /// Polls once, up to `until`; false when `until` has passed.
    fn poll_until(&mut self, events: &mut Events, until: Instant) -> Result<bool> {
        let now = Instant::now();
        if now >= until {
            return Ok(false);
        }
        match self.poll.poll(events, Some(until - now)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    fn echo(&mut self, args: &ClientArgs) -> Result<()> {
        let mut pool = self.open_pool(args.server, args.connections)?;
        let start = Instant::now();
        let deadline = start + args.duration;
        let mut events = Events::with_capacity(1024);
        for slot in &mut pool {
            if let Some(conn) = slot.as_mut() {
                conn.started = self.latency.as_ref().map(|_| Instant::now());
                if let Err(e) = self.send_request(conn) {
                    count(&mut self.report.errors, &e);
                    *slot = None;
                }
            }
        }
        while self.poll_until(&mut events, deadline)? {
            for idx in events.iter().map(|ev| ev.token().0) {
                let Some(conn) = pool.get_mut(idx).and_then(Option::as_mut) else {
                    continue;
                };
                if let Err(e) = self.service_echo(conn) {
                    count(&mut self.report.errors, &e);
                    pool[idx] = None;
                }
            }
        }
        self.report.duration = start.elapsed();
        self.report.bytes_delivered = self.report.bytes_rx;
        Ok(())
    }

    /// Writes what is left of the current request.
    fn send_request(&mut self, conn: &mut PoolConn) -> io::Result<()> {
        while conn.sent < self.payload.len() {
            match conn.stream.write(&self.payload[conn.sent..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    conn.sent += n;
                    self.report.bytes_tx += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads response bytes, checking them against the request; returns
    /// Ok(true) when the response is complete. Bytes past the response are
    /// a mismatch (the peer sent more than asked).
    fn read_response(&mut self, conn: &mut PoolConn) -> io::Result<Option<bool>> {
        let want = self.payload.len() - conn.received;
        let buf = &mut self.scratch[..want.max(1)];
        let Some(n) = read_some(&mut conn.stream, buf)? else {
            return Ok(None);
        };
        if n == 0 {
            return Ok(Some(false));
        }
        if n > want || buf[..n] != self.payload[conn.received..conn.received + n] {
            return Err(mismatch());
        }
        conn.received += n;
        self.report.bytes_rx += n as u64;
        Ok(Some(true))
    }

    fn service_echo(&mut self, conn: &mut PoolConn) -> io::Result<()> {
        self.send_request(conn)?;
        loop {
            match self.read_response(conn)? {
                None => return Ok(()),
                Some(false) => return Err(eof()),
                Some(true) => {}
            }
            if conn.received == self.payload.len() {
                self.report.requests += 1;
                if let (Some(h), Some(t)) = (self.latency.as_mut(), conn.started) {
                    let now = Instant::now();
                    h.saturating_record(now.duration_since(t).as_nanos() as u64);
                    conn.started = Some(now);
                }
                conn.sent = 0;
                conn.received = 0;
                self.send_request(conn)?;
            }
        }
    }

    fn connect(&mut self, args: &ClientArgs) -> Result<()> {
        let start = Instant::now();
        let deadline = start + args.duration;
        let mut events = Events::with_capacity(1024);
        let mut slots: Vec<Option<PoolConn>> = (0..args.connections).map(|_| None).collect();
        let mut established = vec![false; args.connections];
        for idx in 0..slots.len() {
            self.open_slot(args.server, &mut slots, idx)?;
        }
        while self.poll_until(&mut events, deadline)? {
            for idx in events.iter().map(|ev| ev.token().0) {
                let Some(conn) = slots.get_mut(idx).and_then(Option::as_mut) else {
                    continue;
                };
                match self.service_connect(conn, &mut established[idx]) {
                    Ok(false) => continue,
                    Ok(true) => {
                        self.report.requests += 1;
                        self.report.connections_closed += 1;
                        if let (Some(h), Some(t)) = (self.latency.as_mut(), conn.started) {
                            h.saturating_record(t.elapsed().as_nanos() as u64);
                        }
                    }
                    Err(e) => count(&mut self.report.errors, &e),
                }
                // Done or failed: close and start over in the same slot.
                slots[idx] = None;
                established[idx] = false;
                self.open_slot(args.server, &mut slots, idx)?;
            }
        }
        self.report.duration = start.elapsed();
        self.report.bytes_delivered = self.report.bytes_rx;
        Ok(())
    }

    fn open_slot(
        &mut self,
        server: SocketAddr,
        slots: &mut [Option<PoolConn>],
        idx: usize,
    ) -> Result<()> {
        let started = self.latency.as_ref().map(|_| Instant::now());
        match TcpStream::connect(server) {
            Ok(mut stream) => {
                stream.set_nodelay(true)?;
                self.poll.registry().register(
                    &mut stream,
                    Token(idx),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                slots[idx] = Some(PoolConn {
                    stream,
                    sent: 0,
                    received: 0,
                    started,
                    total_sent: 0,
                    count: Vec::new(),
                });
            }
            // The slot stays empty; counted, so a persistent failure shows.
            Err(e) => count(&mut self.report.errors, &e),
        }
        Ok(())
    }

    /// Ok(true) once the response and the server's close have arrived.
    fn service_connect(&mut self, conn: &mut PoolConn, established: &mut bool) -> io::Result<bool> {
        if !*established {
            if !connected(&conn.stream)? {
                return Ok(false);
            }
            *established = true;
            self.report.connections_opened += 1;
        }
        self.send_request(conn)?;
        loop {
            match self.read_response(conn)? {
                None => return Ok(false),
                Some(true) => {}
                Some(false) if conn.received == self.payload.len() => return Ok(true),
                Some(false) => return Err(eof()),
            }
        }
    }

    fn bulk(&mut self, args: &ClientArgs) -> Result<()> {
        let mut pool = self.open_pool(args.server, args.connections)?;
        let start = Instant::now();
        let deadline = start + args.duration;
        let mut events = Events::with_capacity(1024);
        for slot in &mut pool {
            if let Some(conn) = slot.as_mut() {
                if let Err(e) = self.write_bulk(conn) {
                    count(&mut self.report.errors, &e);
                    *slot = None;
                }
            }
        }
        while self.poll_until(&mut events, deadline)? {
            for idx in events.iter().map(|ev| ev.token().0) {
                let Some(conn) = pool.get_mut(idx).and_then(Option::as_mut) else {
                    continue;
                };
                if let Err(e) = self.write_bulk(conn) {
                    count(&mut self.report.errors, &e);
                    pool[idx] = None;
                }
            }
        }
        // End every stream; the interval closes when the last byte count
        // is back, so bytes still queued in socket buffers are timed too.
        let mut open = 0;
        for slot in &mut pool {
            if let Some(conn) = slot.as_mut() {
                match conn.stream.shutdown(Shutdown::Write) {
                    Ok(()) => open += 1,
                    Err(e) => {
                        count(&mut self.report.errors, &e);
                        *slot = None;
                    }
                }
            }
        }
        let give_up = Instant::now() + GRACE;
        while open > 0 && self.poll_until(&mut events, give_up)? {
            for idx in events.iter().map(|ev| ev.token().0) {
                let Some(conn) = pool.get_mut(idx).and_then(Option::as_mut) else {
                    continue;
                };
                match self.read_count(conn) {
                    Ok(None) => continue,
                    Ok(Some(delivered)) => {
                        self.report.bytes_delivered += delivered;
                        if delivered != conn.total_sent {
                            self.report.errors.mismatch += 1;
                        }
                    }
                    Err(e) => count(&mut self.report.errors, &e),
                }
                pool[idx] = None;
                open -= 1;
            }
        }
        self.report.errors.timeout += open as u64;
        self.report.duration = start.elapsed();
        Ok(())
    }

    fn write_bulk(&mut self, conn: &mut PoolConn) -> io::Result<()> {
        loop {
            match conn.stream.write(&self.payload) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    conn.total_sent += n as u64;
                    self.report.bytes_tx += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The server's byte count, once it and the server's close are in.
    fn read_count(&mut self, conn: &mut PoolConn) -> io::Result<Option<u64>> {
        loop {
            let Some(n) = read_some(&mut conn.stream, &mut self.scratch)? else {
                return Ok(None);
            };
            if n == 0 {
                let bytes: [u8; 8] = conn.count.as_slice().try_into().map_err(|_| eof())?;
                return Ok(Some(u64::from_be_bytes(bytes)));
            }
            self.report.bytes_rx += n as u64;
            conn.count.extend_from_slice(&self.scratch[..n]);
            if conn.count.len() > 8 {
                return Err(mismatch());
            }
        }
    }
}
