//! The EAL (once per process), the ports opened in it, and what a port
//! leaves behind when its last device goes.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::raw::c_char;
use std::ptr::NonNull;
use std::sync::{Mutex, OnceLock};

use wirespeed_dpdk_sys as sys;

use super::DpdkError;

/// The EAL of this process and the arguments it was started with.
#[derive(Debug)]
pub(crate) struct Eal {
    args: Vec<String>,
}

static EAL: OnceLock<Eal> = OnceLock::new();
/// Serialises attempts: `rte_eal_init` must not run twice at once.
static EAL_INIT: Mutex<()> = Mutex::new(());
/// Ports opened and not yet closed.
static OPEN_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Arguments the EAL answers by ending the process.
const EXITING_ARGS: &[&str] = &["-h", "--help", "-v", "--version"];

/// The process's EAL, started with `args` on first use. Later calls reuse
/// it when their arguments are the same.
///
/// `rte_eal_init` pins the calling thread to the EAL's main lcore; the
/// thread's own CPU set is restored afterwards, since the engine's runtime
/// pins its workers itself and threads inherit their creator's set.
pub(crate) fn eal(args: &[String]) -> Result<&'static Eal, DpdkError> {
    let check = |e: &'static Eal| {
        if e.args == args {
            Ok(e)
        } else {
            Err(DpdkError::EalArgsDiffer)
        }
    };
    if let Some(e) = EAL.get() {
        return check(e);
    }
    let _serial = EAL_INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = EAL.get() {
        return check(e);
    }
    if args.iter().any(|a| EXITING_ARGS.contains(&a.as_str())) {
        return Err(DpdkError::BadEalArgs);
    }
    let mut owned = Vec::with_capacity(args.len() + 1);
    owned.push(CString::new("wirespeed").map_err(|_| DpdkError::BadEalArgs)?);
    for a in args {
        owned.push(CString::new(a.as_str()).map_err(|_| DpdkError::BadEalArgs)?);
    }
    // The EAL may keep pointers into argv (it reorders it and parses
    // lazily): the strings live for the rest of the process, which starts
    // one EAL only.
    let owned: &'static [CString] = Box::leak(owned.into_boxed_slice());
    let argv: &'static mut [*mut c_char] = Box::leak(
        owned
            .iter()
            .map(|s| s.as_ptr().cast_mut())
            .chain(core::iter::once(core::ptr::null_mut()))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let affinity = thread_affinity();
    // SAFETY: argv holds `owned.len()` NUL-terminated strings that live for
    // the rest of the process, then a null pointer, as `main` would get;
    // no other thread runs rte_eal_init (the lock above).
    let rc = unsafe { sys::rte_eal_init(owned.len() as i32, argv.as_mut_ptr()) };
    let errno = sys::rte_errno();
    if let Some(set) = affinity {
        restore_affinity(&set);
    }
    if rc < 0 {
        return Err(DpdkError::EalInit { errno });
    }
    Ok(EAL.get_or_init(|| Eal {
        args: args.to_vec(),
    }))
}

fn thread_affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain bytes; all zeroes is an empty set.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is writable and its size
    // is passed.
    let rc = unsafe { libc::sched_getaffinity(0, core::mem::size_of_val(&set), &mut set) };
    (rc == 0).then_some(set)
}

fn restore_affinity(set: &libc::cpu_set_t) {
    // Best effort: a thread left on the main lcore still runs.
    // SAFETY: pid 0 is the calling thread; `set` is a valid CPU set.
    let _ = unsafe { libc::sched_setaffinity(0, core::mem::size_of_val(set), set) };
}

/// Marks `port` open; `false` when it already is.
pub(crate) fn claim_port(port: u16) -> bool {
    let mut open = OPEN_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    open.get_or_insert_with(HashSet::new).insert(port)
}

fn release_port(port: u16) {
    let mut open = OPEN_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(set) = open.as_mut() {
        set.remove(&port);
    }
}

thread_local! {
    static REGISTERED: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Gives the calling thread an lcore id once (`rte_thread_register`), so
/// its mempool operations use a per-lcore cache instead of the shared
/// ring. Threads that cannot get one still work, uncached.
#[inline]
pub(crate) fn register_thread() {
    if REGISTERED.with(|r| r.replace(true)) {
        return;
    }
    // SAFETY: the EAL is initialised (a device exists); registering a
    // non-EAL thread only assigns it an lcore id.
    let _ = unsafe { sys::rte_thread_register() };
}

/// What a port leaves behind: the device is stopped and closed when the
/// last of its queues' devices goes (or the setup that started it fails),
/// and its mempools are freed if no mbuf of theirs is still held.
#[derive(Debug)]
pub(crate) struct PortShared {
    pub(crate) port: u16,
    pub(crate) pools: Vec<Pool>,
    pub(crate) started: bool,
}

/// A mempool created for the port.
#[derive(Debug)]
pub(crate) struct Pool(pub(crate) NonNull<sys::rte_mempool>);

// SAFETY: a mempool is shared by design (multi-producer, multi-consumer
// ring); the pointer is only freed in `PortShared::drop`, after the device
// stopped and only when no mbuf of it is in use.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

impl Drop for PortShared {
    fn drop(&mut self) {
        // A port that never started (a refused setup) stays as it was, so
        // a corrected configuration can open it again.
        if self.started {
            // SAFETY: the port was configured and started by this process;
            // stopping it returns the mbufs in its rings to their pools.
            let _ = unsafe { sys::rte_eth_dev_stop(self.port) };
            // SAFETY: as above; no device of the port remains to use it.
            let _ = unsafe { sys::rte_eth_dev_close(self.port) };
        }
        for p in &self.pools {
            // Mbufs still held by the application (or an application
            // thread) keep their pool: it is freed only when all are back,
            // and otherwise stays allocated for the life of the process.
            // SAFETY: the pool is live (never freed elsewhere).
            let in_use = unsafe { sys::rte_mempool_in_use_count(p.0.as_ptr()) };
            if in_use == 0 {
                // SAFETY: no mbuf of the pool exists outside it and the
                // device that used it is closed.
                unsafe { sys::rte_mempool_free(p.0.as_ptr()) };
            }
        }
        release_port(self.port);
    }
}

/// A pktmbuf pool of `n` mbufs with `data_room` bytes each (0 for indirect
/// mbufs), on `socket`.
pub(crate) fn pktmbuf_pool(name: &str, n: u32, data_room: u16, socket: i32) -> Result<Pool, i32> {
    let cname = CString::new(name).map_err(|_| libc::EINVAL)?;
    // A per-lcore cache amortises the ring; DPDK wants it at most
    // n / 1.5 and RTE_MEMPOOL_CACHE_MAX_SIZE.
    let cache = (n / 8).min(256).min(sys::RTE_MEMPOOL_CACHE_MAX_SIZE);
    // SAFETY: the EAL is initialised; the name is NUL-terminated.
    let p = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
    NonNull::new(p).map(Pool).ok_or_else(sys::rte_errno)
}
