//! Generates the bindings from the system's DPDK headers and compiles the C
//! wrappers of DPDK's `static inline` functions and the small shim.
//!
//! Needs, from the distribution: DPDK with its development files and
//! pkg-config file (Debian: `dpdk`, `libdpdk-dev`), libclang for bindgen
//! (`libclang-dev`), a C compiler (`clang` or `gcc`) and `pkg-config`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const PACKAGES: &str = "dpdk libdpdk-dev libclang-dev clang pkg-config";

/// Functions the engine's DPDK port calls. The `static inline` ones among
/// them get a C wrapper (`wrap_static_fns`).
const FUNCTIONS: &[&str] = &[
    // EAL
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_strerror",
    "rte_version",
    "rte_socket_id",
    "rte_thread_register",
    // Mempools and mbufs
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_alloc",
    "rte_pktmbuf_alloc_bulk",
    "rte_pktmbuf_free",
    "rte_pktmbuf_free_seg",
    "rte_pktmbuf_attach",
    "rte_pktmbuf_linearize",
    "rte_mbuf_refcnt_read",
    "rte_mbuf_refcnt_update",
    // Ethernet devices
    "rte_eth_dev_count_avail",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_dev_set_mtu",
    "rte_eth_dev_get_mtu",
    "rte_eth_macaddr_get",
    "rte_eth_promiscuous_enable",
    "rte_eth_dev_rss_hash_conf_get",
    "rte_eth_dev_rss_reta_query",
    "rte_eth_dev_rss_hash_update",
    "rte_eth_dev_rss_reta_update",
    "rte_eth_stats_get",
    "rte_eth_xstats_get",
    "rte_eth_xstats_get_names",
    "rte_eth_rx_burst",
    "rte_eth_tx_burst",
    // The shim (csrc/shim.c)
    "wirespeed_.*",
];

/// Constants: offload and RSS flags, enum values, sizes.
const VARS: &[&str] = &[
    "RTE_MBUF_F_.*",
    "RTE_ETH_RETA_GROUP_SIZE",
    "RTE_ETH_LINK_UP",
    "RTE_ETH_LINK_FULL_DUPLEX",
    "RTE_ETH_SPEED_NUM_.*",
    "RTE_ETHER_MAX_LEN",
    "RTE_ETHER_HDR_LEN",
    "RTE_ETHER_CRC_LEN",
    "RTE_ETHER_MTU",
    "RTE_ETH_XSTATS_NAME_SIZE",
    "RTE_ETH_NAME_MAX_LEN",
    "RTE_MBUF_DEFAULT_BUF_SIZE",
    "RTE_MBUF_DEFAULT_DATAROOM",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MEMPOOL_CACHE_MAX_SIZE",
    "RTE_MAX_ETHPORTS",
    "RTE_MAX_LCORE",
    "SOCKET_ID_ANY",
];

const TYPES: &[&str] = &[
    "rte_mbuf",
    "rte_mempool",
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_rxconf",
    "rte_eth_txconf",
    "rte_eth_rss_conf",
    "rte_eth_rss_reta_entry64",
    "rte_eth_link",
    "rte_eth_stats",
    "rte_eth_xstat",
    "rte_eth_xstat_name",
    "rte_ether_addr",
    "rte_eth_rx_mq_mode",
    "rte_eth_tx_mq_mode",
    "wirespeed_dpdk_flag",
    "wirespeed_mbuf_layout",
];

fn fail(what: &str) -> ! {
    panic!(
        "\n\nwirespeed-dpdk-sys: {what}\n\
         It builds against the system's DPDK (22.11 or later): install the packages\n\
         {PACKAGES} (Debian/Ubuntu: apt-get install {PACKAGES}),\n\
         or point PKG_CONFIG_PATH at the directory holding libdpdk.pc.\n\
         Only `--features wirespeed/dpdk` and `--workspace` builds need it.\n"
    );
}

/// `pkg-config --cflags libdpdk`, split into arguments: include paths, and
/// the `-include rte_config.h` and `-march` that DPDK's headers rely on.
fn cflags() -> Vec<String> {
    let pc = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(&pc)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run `{pc}`: {e}")));
    if !out.status.success() {
        fail(&format!(
            "`{pc} --cflags libdpdk` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let csrc = dir.join("csrc");
    println!("cargo:rerun-if-changed={}", csrc.display());
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Link flags (the rte_* libraries). PMDs are plugins the EAL loads at
    // run time from its driver directory, so nothing more is linked.
    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| fail(&format!("pkg-config found no usable libdpdk: {e}")));
    println!("cargo:version={}", lib.version);
    let flags = cflags();

    let header = csrc.join("wrapper.h");
    let wrappers = out.join("static_fns");
    let mut b = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_args(&flags)
        .clang_arg(format!("-I{}", csrc.display()))
        // DPDK's fast path is `static inline`: bindgen writes a C file that
        // re-exports each as `NAME__extern`, and the bindings call that.
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        // One packed header type cannot derive Debug.
        .derive_debug(false)
        .derive_default(true)
        .impl_debug(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .layout_tests(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in FUNCTIONS {
        b = b.allowlist_function(f);
    }
    for v in VARS {
        b = b.allowlist_var(v);
    }
    for t in TYPES {
        b = b.allowlist_type(t);
    }
    let bindings = b
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen could not read the DPDK headers: {e}")));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");

    let mut cc = cc::Build::new();
    cc.file(wrappers.with_extension("c"))
        .file(csrc.join("shim.c"))
        .include(&csrc)
        .include(&dir)
        .warnings(false)
        .opt_level(2);
    for f in &flags {
        cc.flag(f);
    }
    cc.compile("wirespeed_dpdk_shim");
}
