#!/usr/bin/env bash
# Fuzzing the packet parsers with cargo-fuzz (libFuzzer).
#
#   deploy/fuzz.sh smoke [SECONDS]            every target for SECONDS (default 5)
#   deploy/fuzz.sh run SECONDS [TARGET...]    long runs; prints executions per target
#   deploy/fuzz.sh list                       the targets
#
# The toolchain here is stable Rust; cargo-fuzz needs nightly-only compiler
# flags (sanitizer coverage), which RUSTC_BOOTSTRAP=1 enables on stable.
# Each target starts from the committed seeds in fuzz/seeds/TARGET (real
# frames) and keeps what it finds in fuzz/corpus/TARGET (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTC_BOOTSTRAP=1
mode=${1:-smoke}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

targets() { cargo fuzz list --fuzz-dir fuzz; }

run_one() { # target seconds
  local t=$1 secs=$2 log
  mkdir -p "fuzz/corpus/$t"
  log=$(mktemp)
  if ! cargo fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    rm -f "$log"
    echo "fuzz target $t FAILED" >&2
    return 1
  fi
  local execs
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz $t: ${execs:-?} executions in ${secs}s, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs"
  rm -f "$log"
}

case "$mode" in
  list) targets ;;
  smoke)
    secs=${2:-5}
    cargo fuzz build --fuzz-dir fuzz
    for t in $(targets); do run_one "$t" "$secs"; done
    ;;
  run)
    secs=${2:?seconds}
    shift 2
    sel=("$@")
    ((${#sel[@]})) || mapfile -t sel < <(targets)
    cargo fuzz build --fuzz-dir fuzz
    for t in "${sel[@]}"; do run_one "$t" "$secs"; done
    ;;
  *)
    echo "usage: deploy/fuzz.sh smoke [SECONDS] | run SECONDS [TARGET...] | list" >&2
    echo "unknown mode '$mode' (accepted: smoke, run, list)" >&2
    exit 2
    ;;
esac
