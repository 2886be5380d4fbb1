//! Workers on threads: one per queue, each pinned to its own core.
//!
//! [`Runtime::start`] takes one device queue per worker and a factory that
//! builds each worker's interface, TCP stack settings and handler *on the
//! worker's own thread* (so a handler need not be `Send` to be built, and
//! everything it allocates sits in memory the worker's core touches
//! first). Workers run until every worker's handler is done (one that
//! finishes early keeps forwarding the others' traffic that lands on its
//! queue), [`Runtime::stop`] is called, or the deadline passes;
//! [`Runtime::join`] returns each worker's handler and final counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::stats::WorkerSnapshot;
use super::worker::{cross_core_mesh, Worker, WorkerConfig};
use crate::api::Handler;
use crate::net::{Interface, InterfaceConfig};
use crate::port::{Device, DeviceCaps};
use crate::tcp::{TcpConfig, TcpStack};
use crate::time::Instant;

/// What the factory returns for one worker.
#[derive(Debug)]
pub struct WorkerSetup<H> {
    /// The interface (addresses, gateway, routes) of this worker's queue.
    pub iface: InterfaceConfig,
    /// TCP settings.
    pub tcp: TcpConfig,
    /// Loop settings.
    pub worker: WorkerConfig,
    /// The application.
    pub handler: H,
}

/// A worker's outcome.
#[derive(Debug)]
pub struct WorkerResult<H> {
    /// The handler, as the loop left it.
    pub handler: H,
    /// The worker's final counters.
    pub stats: WorkerSnapshot,
}

/// Why the runtime could not start or a worker failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No device queues given.
    NoQueues,
    /// `cores` names fewer cores than there are queues.
    TooFewCores {
        /// Queues to run.
        queues: usize,
        /// Cores named.
        cores: usize,
    },
    /// The factory refused a worker's setup.
    Setup(String),
    /// The interface configuration was refused.
    Interface(crate::net::ConfigError),
    /// A worker thread could not start or panicked.
    Thread(String),
}

impl core::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RuntimeError::NoQueues => f.write_str("no device queues to run"),
            RuntimeError::TooFewCores { queues, cores } => {
                write!(f, "{queues} queues but only {cores} cores to pin them to")
            }
            RuntimeError::Setup(e) => write!(f, "worker setup: {e}"),
            RuntimeError::Interface(e) => write!(f, "interface: {e}"),
            RuntimeError::Thread(e) => write!(f, "worker thread: {e}"),
        }
    }
}

impl std::error::Error for RuntimeError {}

/// 48 random bytes from the kernel for a stack's keyed hashes.
pub fn random_secret() -> [u8; 48] {
    let mut s = [0u8; 48];
    let mut filled = 0;
    while filled < s.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `s`,
        // which is valid for writes for the duration of the call.
        let n = unsafe { libc::getrandom(s[filled..].as_mut_ptr().cast(), s.len() - filled, 0) };
        if n <= 0 {
            // Interrupted (or no entropy API): fall back on the clock so a
            // secret is never all zero; the keyed hashes stay per-process.
            let t = Instant::now_monotonic().as_nanos().to_le_bytes();
            for (i, b) in s.iter_mut().enumerate().skip(filled) {
                *b ^= t[i % 8].rotate_left(i as u32);
            }
            if n < 0 {
                break;
            }
            continue;
        }
        filled += n as usize;
    }
    s
}

/// A stack secret whose first 16 bytes (the ISN and timestamp key) are the
/// same for every run on this host until it reboots, derived from the
/// kernel's boot id; the rest is random per call.
///
/// Why: a load generator run right after another reuses the same 4-tuples
/// while the server still holds them in TIME-WAIT. A server accepts the new
/// SYN only when its timestamp (or, without timestamps, its sequence
/// number) is newer than the old incarnation's (RFC 6191, Linux's
/// `tcp_timewait_state_process`). With a per-process key the timestamp
/// offset and the ISN's hash part jump at random between runs, and about
/// half the SYNs are refused; with a per-boot key both run off the one
/// monotonic clock and only move forward, as Linux's own per-boot secret
/// makes them. RFC 6528 §3 and RFC 7323 §5.4 ask only that the key be
/// unknown to the peer, which the boot id is.
pub fn host_secret() -> [u8; 48] {
    let mut s = random_secret();
    if let Some(id) = boot_id() {
        // Not the raw id: SipHash it under a fixed key, so the key in use
        // and the id readable on the host are not the same bytes.
        let h = crate::tcp::siphash::SipHasher24::new(*b"wirespeed-isn-ts");
        let mut msg = [0u8; 17];
        msg[..16].copy_from_slice(&id);
        for (half, tag) in [(0usize, 0u8), (8, 1)] {
            msg[16] = tag;
            s[half..half + 8].copy_from_slice(&h.hash(&msg).to_le_bytes());
        }
    }
    s
}

/// The kernel's boot id (a random UUID per boot), as 16 bytes.
fn boot_id() -> Option<[u8; 16]> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    if hex.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = core::str::from_utf8(pair).ok()?;
        id[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(id)
}

/// Running workers.
#[derive(Debug)]
pub struct Runtime<H> {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<WorkerResult<H>, RuntimeError>>>,
}

impl<H: Send + 'static> Runtime<H> {
    /// Starts one worker per device queue in `queues` (queue `i` on
    /// `cores[i]`; no pinning when `cores` is empty), each built by `make`
    /// on its own thread. Workers stop by themselves at `deadline` if given.
    pub fn start<D, F>(
        queues: Vec<D>,
        cores: &[usize],
        deadline: Option<Instant>,
        make: F,
    ) -> Result<Self, RuntimeError>
    where
        D: Device + Send + 'static,
        H: Handler<D>,
        F: Fn(usize, &DeviceCaps) -> Result<WorkerSetup<H>, String> + Send + Sync + 'static,
    {
        if queues.is_empty() {
            return Err(RuntimeError::NoQueues);
        }
        if !cores.is_empty() && cores.len() < queues.len() {
            return Err(RuntimeError::TooFewCores {
                queues: queues.len(),
                cores: cores.len(),
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let make = Arc::new(make);
        let mesh = cross_core_mesh(queues.len(), 4096);
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let size = queues.len();
        let mut threads = Vec::new();
        for (i, (dev, xcore)) in queues.into_iter().zip(mesh).enumerate() {
            let core = cores.get(i).copied();
            let flag = stop.clone();
            let make = make.clone();
            let done = done.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("wirespeed-w{i}"))
                .spawn(move || {
                    if let Some(c) = core {
                        // Best effort: an unpinned worker still runs.
                        let _ = core_affinity::set_for_current(core_affinity::CoreId { id: c });
                    }
                    let caps = dev.caps().clone();
                    let setup = make(i, &caps).map_err(RuntimeError::Setup)?;
                    let now = Instant::now_monotonic();
                    // The port says which checksums its NIC takes over, for
                    // IPv4 and ICMP as for TCP.
                    let mut icfg = setup.iface.clone();
                    icfg.checksum = caps.checksum;
                    let iface = Interface::new(icfg, now).map_err(RuntimeError::Interface)?;
                    let tcp = TcpStack::new(setup.tcp, caps.checksum, host_secret(), now);
                    let mut w = Worker::new(iface, dev, tcp, setup.handler, setup.worker, xcore);
                    w.run_in_group(&flag, deadline, &done, size);
                    let stats = WorkerSnapshot::of(&w.core);
                    Ok(WorkerResult {
                        handler: w.handler,
                        stats,
                    })
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(RuntimeError::Thread(e.to_string()));
                }
            }
        }
        Ok(Runtime { stop, threads })
    }
}

impl<H> Runtime<H> {
    /// Asks every worker to finish its loop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// A flag that stops the workers when set (for signal handlers and
    /// other threads).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Whether every worker has finished.
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }

    /// Waits for every worker; their results in queue order.
    pub fn join(self) -> Vec<Result<WorkerResult<H>, RuntimeError>> {
        self.threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(RuntimeError::Thread("panicked".into())))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_isn_key_lasts_the_boot_and_the_other_keys_do_not() {
        let (a, b) = (host_secret(), host_secret());
        assert_ne!(a[16..], b[16..], "cookie and flow keys are fresh per call");
        if boot_id().is_some() {
            assert_eq!(a[..16], b[..16]);
            assert_ne!(a[..16], [0; 16]);
            assert_ne!(a[..16], boot_id().unwrap(), "not the readable id itself");
        }
    }
}
