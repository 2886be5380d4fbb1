#!/usr/bin/env bash
# wirespeed's one test command.
#
# Installs the Debian packages the suite needs when they are missing (root
# only), then runs, in order: rustfmt, clippy, a short smoke run of every
# fuzz target, and the whole test suite (unit, simulation, and the root-only
# tests that create their own network namespaces and clean up after
# themselves). Clippy and the tests build every cargo feature, `dpdk`
# included.
#
# Environment:
#   CI=true                   root-only tests fail instead of skipping when
#                             they cannot run (not root, tool missing)
#   WIRESPEED_FUZZ_SECONDS=N  seconds per fuzz target in the smoke run (5)
#   WIRESPEED_SKIP_FUZZ=1     skip the fuzz smoke run (local iteration only)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# Debian packages: tools the root-only tests drive (see shared ENVIRONMENT.md);
# nginx and iperf3 are the Linux peers in deploy/lab.sh's lab; DPDK with
# pkg-config, clang and libclang (bindgen) builds the `dpdk` feature, and
# dpdk-testpmd is the peer of its tests.
packages=(iproute2 iputils-ping iputils-arping tshark tcpdump ethtool nftables curl wrk nginx iperf3
  dpdk dpdk-dev libdpdk-dev libclang-dev clang pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    echo 'iperf3 iperf3/start_daemon boolean false' | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The tests start nginx in their own namespaces, from their own
    # config; the package's system service must not run beside them.
    if [[ " ${missing[*]} " == *" nginx "* ]]; then
      if [[ -d /run/systemd/system ]]; then
        systemctl disable --now nginx >/dev/null 2>&1 || true
      else
        update-rc.d nginx disable >/dev/null 2>&1 || true
        if [[ -s /run/nginx.pid ]]; then
          nginx -s quit 2>/dev/null || true
        fi
      fi
    fi
  else
    echo "warning: missing packages ${missing[*]} (run as root to install them); root-only tests will skip" >&2
  fi
fi

if [[ "${CI:-}" == "true" ]]; then
  export WIRESPEED_REQUIRE_ROOT_TESTS=1
fi

say "rustfmt"
cargo fmt --all -- --check

say "clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

if [[ "${WIRESPEED_SKIP_FUZZ:-}" != "1" ]]; then
  say "fuzz smoke"
  bash deploy/fuzz.sh smoke "${WIRESPEED_FUZZ_SECONDS:-5}"
fi

say "test suite"
if cargo nextest --version >/dev/null 2>&1; then
  cargo test --workspace --all-features --doc
  cargo nextest run --workspace --all-features --no-fail-fast
else
  cargo test --workspace --all-features --no-fail-fast
fi
