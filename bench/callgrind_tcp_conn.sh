#!/usr/bin/env bash
# Instructions per segment on the connection's hot paths, counted by
# callgrind over examples/conn_hotpath.rs (see its docs): stable where
# wall-clock times on a shared machine are not.
#
# Usage: bench/callgrind_tcp_conn.sh [segments] (default 20000)
# Environment: CARGO_TARGET_DIR as for any cargo call.
set -euo pipefail
cd "$(dirname "$0")/.."
segments=${1:-20000}
cargo build -q --release -p wirespeed-bench --example conn_hotpath
bin="${CARGO_TARGET_DIR:-target}/release/examples/conn_hotpath"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-6s %10s %14s %12s\n' path segments instructions "per segment"
for mode in rx ack tx; do
    valgrind --tool=callgrind --callgrind-out-file="$out/$mode.out" \
        --toggle-collect="*counted_${mode}*" "$bin" "$mode" "$segments" \
        >"$out/$mode.txt" 2>"$out/$mode.err"
    n=$(awk '{print $2}' "$out/$mode.txt" | tr -d ';')
    ir=$(awk '/^summary:/ {print $2}' "$out/$mode.out")
    awk -v m="$mode" -v n="$n" -v ir="$ir" \
        'BEGIN { printf "%-6s %10d %14d %12.1f\n", m, n, ir, ir / n }'
done
