#!/usr/bin/env bash
# wirespeed over DPDK net_memif between two processes, one core each, next
# to DPDK's own ceiling over the same memif in the same run.
#
#   echo     `load echo --size 64` (100 connections) against `serve echo`
#   connect  `load connect` (100 concurrent, a connection per exchange)
#   bulk     `load bulk` (1 connection) into `serve discard`
#   ceiling  bench/memif_ceiling.sh: dpdk-testpmd txonly into rxonly,
#            64-byte frames, one way
#
# The server side runs on CPU 1, the load generator on CPU 0 (as testpmd's
# receiver and sender). Each workload reports its rate and the TCP frames
# per second both engines moved over the memif (frames in plus out of the
# load generator), and that as a fraction of testpmd's one-way packets/s.
# Rounds interleave the ceiling and the workloads.
#
# Usage: bench/memif_compare.sh [--rounds R] [--duration S] [--hugepages]
#   --rounds     rounds (default 3)
#   --duration   seconds per measurement (default 5)
#   --hugepages  run both sides on hugepages (--in-memory); reserve them
#                first (deploy/setup.sh --hugepages 256)
#
# Needs root, dpdk-testpmd, python3, and a build with the DPDK port:
#   cargo build --release -p wirespeed-bench --features dpdk --bin wirespeed
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
duration=5
huge=0
while (($#)); do
  case $1 in
    --rounds) [[ ${2:-} =~ ^[1-9][0-9]?$ ]] || { echo "--rounds '${2:-}': accepted 1 to 99" >&2; exit 2; }; rounds=$2; shift 2 ;;
    --duration) [[ ${2:-} =~ ^[1-9][0-9]?$ ]] || { echo "--duration '${2:-}': accepted 1 to 99 seconds" >&2; exit 2; }; duration=$2; shift 2 ;;
    --hugepages) huge=1; shift ;;
    *) echo "memif_compare.sh: unknown flag '$1' (accepted: --rounds, --duration, --hugepages)" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "memif_compare.sh: needs root" >&2; exit 1; }
ws=target/release/wirespeed
# A build with the DPDK port checks the port's options at parse time.
if [[ ! -x $ws || $("$ws" serve http --port 'dpdk:--no-pci;colour=x' 2>&1) != *"unknown option"* ]]; then
  echo "memif_compare.sh: build with the DPDK port first: cargo build --release -p wirespeed-bench --features dpdk --bin wirespeed" >&2
  exit 1
fi

mem="--no-huge -m 512 --no-shconf"
((huge)) && mem="--in-memory"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# One workload: serve MODE on CPU 1, load MODE ARGS on CPU 0; prints
# "rate frames_per_s" where rate is the JSON field $3.
run() {
  local serve=$1 load=$2 field=$3 port=$4
  shift 4
  local sock="wsmc$$-$RANDOM"
  timeout $((duration + 30)) "$ws" serve "$serve" --ip 198.18.8.2/24 --duration "$((duration + 8))s" \
    --port "dpdk:-l 1 $mem --no-pci --file-prefix $sock-s --vdev=net_memif0,role=server,socket=$sock" \
    >"$work/serve.out" 2>"$work/serve.err" &
  pids+=($!)
  sleep 1.5
  timeout $((duration + 30)) "$ws" load "$load" --ip 198.18.8.1/24 --target "198.18.8.2:$port" \
    --port "dpdk:-l 0 $mem --no-pci --file-prefix $sock-c --vdev=net_memif0,role=client,socket=$sock" \
    --duration "${duration}s" --json "$work/load.json" "$@" >"$work/load.out" 2>"$work/load.err" ||
    { cat "$work/load.err" >&2; exit 1; }
  kill "${pids[-1]}" 2>/dev/null || true
  wait "${pids[-1]}" 2>/dev/null || true
  # The EAL's runtime directories of both sides.
  rm -rf "/var/run/dpdk/$sock-s" "/var/run/dpdk/$sock-c"
  python3 - "$work/load.json" "$work/load.out" "$field" "$duration" <<'EOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
if r["errors"]["total"]:
    sys.exit(f"load reported errors: {r['errors']}")
m = re.search(r"engine: (\d+) frames in, (\d+) out", open(sys.argv[2]).read())
frames = (int(m.group(1)) + int(m.group(2))) / float(sys.argv[4])
print(r[sys.argv[3]], frames)
EOF
}

declare -a ceil echo_r echo_f conn_r conn_f bulk_r bulk_f
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds" >&2
  hp=()
  ((huge)) && hp=(--hugepages)
  c=$(bash bench/memif_ceiling.sh --seconds "$duration" "${hp[@]}" 2>/dev/null | sed -n 's/^memif testpmd ceiling: \([0-9.]*\) Mpps.*/\1/p')
  [[ -n $c ]] || { echo "memif_ceiling.sh gave no figure" >&2; exit 1; }
  ceil+=("$c")
  read -r a b < <(run echo echo rps 7 --connections 100 --size 64); echo_r+=("$a"); echo_f+=("$b")
  read -r a b < <(run echo connect cps 7 --connections 100); conn_r+=("$a"); conn_f+=("$b")
  read -r a b < <(run discard bulk gbps 9 --connections 1); bulk_r+=("$a"); bulk_f+=("$b")
done

python3 - "$rounds" "$duration" "$huge" "${ceil[*]}" "${echo_r[*]}" "${echo_f[*]}" \
  "${conn_r[*]}" "${conn_f[*]}" "${bulk_r[*]}" "${bulk_f[*]}" <<'EOF'
import statistics, sys
rounds, duration, huge = sys.argv[1:4]
ce, er, ef, cr, cf, br, bf = [list(map(float, a.split())) for a in sys.argv[4:]]
print(f"wirespeed over net_memif, two processes, one core each: {rounds} rounds of {duration} s, "
      f"{'hugepages' if huge == '1' else 'no hugepages'}")
print(f"{'round':>5} {'testpmd Mpps':>12} | {'echo req/s':>11} {'frac':>5} | {'conn/s':>9} {'frac':>5} | {'bulk Gbit/s':>11} {'frac':>5}")
fr = []
for i in range(len(ce)):
    c = ce[i] * 1e6
    f = (ef[i] / c, cf[i] / c, bf[i] / c)
    fr.append(f)
    print(f"{i+1:>5} {ce[i]:>12.2f} | {er[i]:>11.0f} {f[0]:>5.2f} | {cr[i]:>9.0f} {f[1]:>5.2f} | {br[i]:>11.2f} {f[2]:>5.2f}")
med = lambda xs: statistics.median(xs)
print(f"median: echo {med(er):.0f} req/s, connect {med(cr):.0f} conn/s, bulk {med(br):.2f} Gbit/s; "
      f"TCP frames/s as a fraction of testpmd's {med(ce):.2f} Mpps: echo {med([f[0] for f in fr]):.2f}, "
      f"connect {med([f[1] for f in fr]):.2f}, bulk {med([f[2] for f in fr]):.2f}")
EOF
