#!/usr/bin/env bash
# Runs the engine's TCP benches (tcp_conn) and smoltcp's (smoltcp_tcp)
# interleaved, A B A B ..., and prints per metric the median of each side
# over the rounds and the median of the per-round ratios wirespeed/smoltcp.
#
# Usage: bench/compare_smoltcp.sh [rounds] (default 3; at least 3)
# Environment: CARGO_TARGET_DIR as for any cargo call; EXTRA passes more
# criterion arguments to both (e.g. EXTRA="--measurement-time 3").
#
# Times are criterion's point estimate per segment (ns) or per 4 MiB
# (bulk, shown as Gbit/s). A time ratio below 1 means wirespeed is faster;
# for bulk the ratio is of throughputs, so above 1 means faster. Run on a
# quiet machine: the interleaving spreads drift over both sides, it does
# not remove noise.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
if [ "$rounds" -lt 3 ]; then
    echo "at least 3 rounds" >&2
    exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo bench -p wirespeed-bench --bench tcp_conn --bench smoltcp_tcp --no-run >/dev/null 2>&1 \
    || cargo bench -p wirespeed-bench --bench tcp_conn --bench smoltcp_tcp --no-run

for r in $(seq 1 "$rounds"); do
    for b in tcp_conn smoltcp_tcp; do
        echo "round $r: $b" >&2
        # shellcheck disable=SC2086
        cargo bench -q -p wirespeed-bench --bench "$b" -- --noplot ${EXTRA:-} \
            >"$out/$b.$r.txt" 2>/dev/null
    done
done

python3 - "$out" "$rounds" <<'EOF'
import re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
UNIT = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
def parse(path):
    res, name = {}, None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^(\S+)\s*(time:.*)?$", line.rstrip())
        if m and not line.startswith(" "):
            name = m.group(1)
        t = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if t and name:
            res[name] = float(t.group(1)) * UNIT[t.group(2)]
    return res
runs = {b: [parse(f"{out}/{b}.{r}.txt") for r in range(1, rounds + 1)]
        for b in ("tcp_conn", "smoltcp_tcp")}
BULK_BITS = (4 << 20) * 8
pairs = [
    ("rx segment, sw checksum (ns)", "tcp_conn/rx_segment/sw_checksum", "smoltcp_tcp/rx_segment/sw_checksum", False),
    ("rx segment, offload (ns)", "tcp_conn/rx_segment/offload", "smoltcp_tcp/rx_segment/offload", False),
    ("rx segment, conn only vs smoltcp offload (ns)", "tcp_conn/rx_segment/conn_only", "smoltcp_tcp/rx_segment/offload", False),
    ("bulk, one thread (Gbit/s)", "tcp_conn/bulk", "smoltcp_tcp/bulk", True),
]
def val(r, k, bulk):
    v = r.get(k)
    if v is None:
        return None
    return BULK_BITS / v if bulk else v
print(f"{'metric':48} {'wirespeed':>10} {'smoltcp':>10} {'ratio ws/smol':>14}  per-round ratios")
for label, w, s, bulk in pairs:
    wv = [val(r, w, bulk) for r in runs["tcp_conn"]]
    sv = [val(r, s, bulk) for r in runs["smoltcp_tcp"]]
    if None in wv or None in sv:
        print(f"{label:48} missing")
        continue
    ratios = [a / b for a, b in zip(wv, sv)]
    print(f"{label:48} {statistics.median(wv):10.2f} {statistics.median(sv):10.2f} "
          f"{statistics.median(ratios):14.3f}  " + " ".join(f"{x:.3f}" for x in ratios))
for label, w in [
    ("ACK for one segment (ns)", "tcp_conn/ack/one_segment"),
    ("ACK for two segments (ns)", "tcp_conn/ack/two_segments"),
    ("tx segment, sw checksum (ns)", "tcp_conn/tx_segment/sw_checksum"),
    ("tx segment, offload (ns)", "tcp_conn/tx_segment/offload"),
]:
    wv = [r.get(w) for r in runs["tcp_conn"]]
    if None in wv:
        print(f"{label:48} missing")
        continue
    print(f"{label:48} {statistics.median(wv):10.2f} {'-':>10} {'-':>14}  "
          + " ".join(f"{x:.1f}" for x in wv))
EOF
