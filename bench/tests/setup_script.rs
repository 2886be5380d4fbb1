//! `deploy/setup.sh`: its usage contract, its dry run, a real hugepage
//! reservation and its release, and the devices it refuses to bind.
//!
//! No test binds a device for real (this host has no VFIO, and eth0 is
//! never to be touched): binding is checked through the dry run's plan,
//! and the refusals through runs that must stop before anything happens.
//! Commands that would change the host (modprobe, dpdk-devbind.py, mount,
//! umount, apt-get) are shadowed on PATH by tripwires that log their call
//! and fail, so a test sees whether any of them ran.
//!
//! The hugepage pool is host-wide: the tests that read or change it take a
//! lock (and nextest runs this binary's tests one at a time).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

const NR_HUGEPAGES: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
const TRIPWIRES: &[&str] = &["modprobe", "dpdk-devbind.py", "mount", "umount", "apt-get"];

static POOL: Mutex<()> = Mutex::new(());

fn pool_lock() -> MutexGuard<'static, ()> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/setup.sh")
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        // Unique per call: `cargo test` runs the tests as threads of one process.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ws-setup-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs the script with its records under `scratch/state` and, when
/// `tripwires` is set, the host-changing commands shadowed on PATH.
fn setup(scratch: &Scratch, tripwires: bool, args: &[&str]) -> Output {
    let mut c = Command::new("bash");
    c.arg(script())
        .args(args)
        .env("WIRESPEED_SETUP_STATE", scratch.0.join("state"));
    if tripwires {
        let bin = scratch.0.join("bin");
        fs::create_dir_all(&bin).unwrap();
        let log = scratch.0.join("ran.log");
        for t in TRIPWIRES {
            let p = bin.join(t);
            fs::write(
                &p,
                format!("#!/bin/sh\necho \"{t} $*\" >>'{}'\nexit 1\n", log.display()),
            )
            .unwrap();
            Command::new("chmod").arg("+x").arg(&p).status().unwrap();
        }
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", bin.display()));
    }
    c.output().expect("bash runs deploy/setup.sh")
}

/// What the tripwires logged: the host-changing commands that ran.
fn ran(scratch: &Scratch) -> String {
    fs::read_to_string(scratch.0.join("ran.log")).unwrap_or_default()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn hugepages() -> u64 {
    fs::read_to_string(NR_HUGEPAGES)
        .expect("2 MiB hugepages in sysfs")
        .trim()
        .parse()
        .unwrap()
}

fn hugetlbfs_mounted() -> bool {
    fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 2 && f[1] == "/dev/hugepages" && f[2] == "hugetlbfs"
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Root and the 2 MiB hugepage pool: or a skip message (a failure in CI).
fn can_run_as_root(why: &str) -> bool {
    if is_root() && Path::new(NR_HUGEPAGES).exists() {
        return true;
    }
    let why = format!("needs root and {NR_HUGEPAGES} ({why})");
    if std::env::var_os("CI").is_some()
        || std::env::var_os("WIRESPEED_REQUIRE_ROOT_TESTS").is_some()
    {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// The PCI address of the device behind `iface`: the last PCI address on
/// its sysfs device path (virtio NICs sit one level below theirs).
fn pci_of(iface: &str) -> Option<String> {
    let path = fs::canonicalize(format!("/sys/class/net/{iface}/device")).ok()?;
    path.components()
        .rev()
        .filter_map(|c| c.as_os_str().to_str())
        .find(|c| {
            let b = c.as_bytes();
            b.len() == 12
                && b[4] == b':'
                && b[7] == b':'
                && b[10] == b'.'
                && c.chars()
                    .enumerate()
                    .all(|(i, ch)| [4, 7, 10].contains(&i) || ch.is_ascii_hexdigit())
        })
        .map(str::to_owned)
}

/// Runs `args`, expects status 2 and a stderr that holds every `needles`.
fn rejects(args: &[&str], needles: &[&str]) {
    let s = Scratch::new("usage");
    let out = setup(&s, true, args);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} exited {:?}\n{stderr}",
        out.status
    );
    assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: {n:?} missing from\n{stderr}");
    }
    assert_eq!(ran(&s), "", "{args:?} ran commands");
    assert!(!s.0.join("state").exists(), "{args:?} wrote records");
}

#[test]
fn bad_flags_exit_2_naming_the_accepted_values() {
    let flags = "--dry-run, --packages, --hugepages, --bind, --driver, --force, --release";
    rejects(&[], &["nothing to do", flags]);
    rejects(&["--bogus"], &["unknown flag '--bogus'", flags]);
    rejects(&["--dry-run"], &["nothing to do", flags]);
    rejects(&["--hugepages"], &["--hugepages: missing value"]);
    for bad in ["0", "x", "-4", "1048577", "12k"] {
        rejects(
            &["--hugepages", bad],
            &[&format!("--hugepages '{bad}'"), "accepted 1 to 1048576"],
        );
    }
    rejects(
        &["--bind", "0000:00:04.0", "--driver", "igb_uio"],
        &["--driver 'igb_uio'", "accepted vfio-pci, uio_pci_generic"],
    );
    rejects(
        &["--release", "--hugepages", "16"],
        &["--release takes only --dry-run"],
    );
    rejects(&["--force"], &["--force applies to --bind only"]);
}

#[test]
fn unnamed_devices_are_refused() {
    // A driver without a device, and anything but one PCI address per
    // --bind, never reaches dpdk-devbind.py.
    rejects(
        &["--driver", "vfio-pci"],
        &["--driver names no device", "--bind PCI_ADDR"],
    );
    rejects(
        &["--dry-run", "--driver", "vfio-pci"],
        &["--driver names no device"],
    );
    for bad in [
        "all",
        "eth0",
        "*",
        "",
        "0000:00:03",
        "00:03.0,00:04.0",
        "0000:00:03.8",
    ] {
        rejects(
            &["--dry-run", "--bind", bad, "--driver", "vfio-pci"],
            &[
                &format!("--bind '{bad}'"),
                "accepted one PCI address",
                "name each device",
            ],
        );
    }
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let _pool = pool_lock();
    let s = Scratch::new("dry");
    let before = fs::read_to_string(NR_HUGEPAGES).ok();
    let mounted = hugetlbfs_mounted();
    let out = setup(
        &s,
        true,
        &[
            "--dry-run",
            "--bind",
            "0000:00:99.0",
            "--driver",
            "vfio-pci",
            "--hugepages",
            "16",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("dry run: nothing is changed"), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let modprobe = lines.iter().position(|l| *l == "+ modprobe vfio-pci");
    let devbind = lines
        .iter()
        .position(|l| *l == "+ dpdk-devbind.py --bind=vfio-pci 0000:00:99.0");
    assert!(
        modprobe.is_some() && devbind.is_some() && modprobe < devbind,
        "modprobe, then dpdk-devbind.py:\n{stdout}"
    );
    // The hugepage part is planned only when the pool is smaller.
    if before
        .as_deref()
        .is_some_and(|b| b.trim().parse::<u64>().unwrap() < 16)
    {
        assert!(
            stdout.contains(&format!("+ echo 16 > {NR_HUGEPAGES}")),
            "{stdout}"
        );
    }
    if !mounted {
        assert!(
            stdout.contains("+ mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages"),
            "{stdout}"
        );
    }
    assert_eq!(ran(&s), "", "a dry run ran commands");
    assert_eq!(
        fs::read_to_string(NR_HUGEPAGES).ok(),
        before,
        "nr_hugepages changed"
    );
    assert_eq!(hugetlbfs_mounted(), mounted, "the hugetlbfs mount changed");
    assert!(!s.0.join("state").exists(), "a dry run wrote records");

    // With nothing recorded, a dry release plans nothing either.
    let out = setup(&s, true, &["--dry-run", "--release"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("nothing recorded to release"));
    assert_eq!(ran(&s), "");
}

#[test]
fn eth0_device_is_refused_even_with_force() {
    let Some(eth0) = pci_of("eth0") else {
        eprintln!("skipped: this host has no eth0 on a PCI device");
        return;
    };
    let s = Scratch::new("eth0");
    let short = eth0.strip_prefix("0000:").unwrap_or(&eth0).to_owned();
    let mut runs: Vec<Vec<&str>> = vec![
        vec!["--dry-run", "--bind", &eth0, "--driver", "vfio-pci"],
        vec!["--dry-run", "--bind", &short, "--force"],
        // A named, harmless device first does not let eth0's through.
        vec![
            "--dry-run",
            "--bind",
            "0000:00:99.0",
            "--bind",
            &eth0,
            "--force",
        ],
    ];
    if is_root() {
        // For real too: the refusal comes before anything is done.
        runs.push(vec!["--bind", &eth0, "--driver", "vfio-pci", "--force"]);
        runs.push(vec!["--hugepages", "16", "--bind", &eth0]);
    }
    let _pool = pool_lock();
    let before = fs::read_to_string(NR_HUGEPAGES).ok();
    for args in runs {
        let out = setup(&s, true, &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("refused: {eth0} is eth0's device")),
            "{args:?}: {stderr}"
        );
        assert!(
            !text(&out.stdout).contains("+ "),
            "{args:?} planned commands"
        );
        assert_eq!(ran(&s), "", "{args:?} ran commands");
    }
    assert_eq!(
        fs::read_to_string(NR_HUGEPAGES).ok(),
        before,
        "nr_hugepages changed"
    );
    assert!(
        !s.0.join("state/hugepages").exists(),
        "a refused run reserved hugepages"
    );
}

#[test]
fn hugepages_are_reserved_and_released() {
    if !can_run_as_root("reserves 2 MiB hugepages for real") {
        return;
    }
    let _pool = pool_lock();
    let s = Scratch::new("huge");
    let prev = hugepages();
    let was_mounted = hugetlbfs_mounted();
    // 16 pages more than now, so the script has something to do even if
    // the pool is not empty.
    let want = prev + 16;
    let want_s = want.to_string();

    let out = setup(&s, false, &["--hugepages", &want_s]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("+ echo {want} > {NR_HUGEPAGES}")),
        "{stdout}"
    );
    let after = hugepages();
    let mounted = hugetlbfs_mounted();

    // Again: nothing to do.
    let again = setup(&s, false, &["--hugepages", &want_s]);
    let again_out = text(&again.stdout);

    let rel = setup(&s, false, &["--release"]);
    let rel_out = text(&rel.stdout);
    let rel_err = text(&rel.stderr);
    let released = hugepages();
    let mounted_after = hugetlbfs_mounted();
    let rel2 = setup(&s, false, &["--release"]);

    assert_eq!(after, want, "the pool after the reservation");
    assert!(mounted, "hugetlbfs is mounted at /dev/hugepages");
    assert_eq!(again.status.code(), Some(0));
    assert!(again_out.contains("nothing to do"), "{again_out}");
    assert!(
        !again_out.contains("+ "),
        "a second run changed something:\n{again_out}"
    );
    assert_eq!(rel.status.code(), Some(0), "{rel_out}\n{rel_err}");
    if rel_err.contains("someone else changed the pool") {
        // Another process resized the shared pool meanwhile: the release
        // must leave it alone.
        assert!(!rel_out.contains(&format!("> {NR_HUGEPAGES}")), "{rel_out}");
    } else {
        assert!(
            rel_out.contains(&format!("+ echo {prev} > {NR_HUGEPAGES}")),
            "{rel_out}"
        );
        assert_eq!(released, prev, "the pool after --release");
    }
    assert_eq!(mounted_after, was_mounted, "the mount after --release");
    assert_eq!(rel2.status.code(), Some(0));
    assert!(text(&rel2.stdout).contains("nothing recorded to release"));
}
