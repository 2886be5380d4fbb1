#!/usr/bin/env bash
# Side-by-side comparison of the wirespeed load generator with the Linux
# kernel stack and with smoltcp, one core per side, in one run.
#
#   wirespeed  target/release/wirespeed load ... --cores 2 (client and its
#              own server on the in-memory wire)
#   Linux      over loopback (MTU 1500) in a network namespace of its own:
#              nginx (1 worker) + wrk (1 thread) for HTTP, epoll_peer for
#              echo, connect, bulk and ping-pong; server on CPU 0, client on CPU 1
#   smoltcp    smol_peer: two smoltcp interfaces in two threads (CPU 0 and
#              1) joined by lock-free rings
#
# For each workload it runs R rounds of wirespeed, Linux, smoltcp (A B C
# A B C ...), measures the core-to-core round trip (c2c) right before every
# run, and prints each result with it, then a table with the ratios
# wirespeed/Linux and wirespeed/smoltcp taken within each round.
#
# Usage: bench/compare.sh [--rounds R] [--duration SECONDS] [--quick]
#                         [--only w1,w2,...] [--keep DIR] [--no-offload] [--rt]
#   --rounds    rounds per workload (default 3)
#   --duration  seconds per run (default 5)
#   --quick     smoke run: 1 round of 1 s
#   --only      workloads to run (default all): http, http-close, echo-100,
#               echo-10k, connect-100, connect-10k, bulk, pingpong
#   --keep DIR  keep every JSON report and log in DIR
#   --no-offload  turn TSO and GSO off on the Linux side's loopback (needs
#               ethtool): the kernel then moves 1500-byte segments instead
#               of 64 KiB super-segments, as the other two sides do
#   --rt        run every side (and c2c) under SCHED_FIFO priority 1
#               (chrt), so that other load on a shared machine does not
#               preempt it. Busy-polling sides (wirespeed, smoltcp) only
#               move while both their threads hold a CPU, and lose far
#               more to other load than the Linux side. Other processes
#               keep only the kernel's RT throttling share (5 %) while a
#               run goes: use it where that is acceptable
#
# Needs root (network namespaces; apt-get for nginx and wrk if missing),
# python3, taskset, ip, unshare. Every run is bounded by its duration plus
# a margin and killed past it; servers are stopped by PID.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
port=18080
msg() { echo "$*" >&2; }

# ------------------------------------------------------------------ Linux
# `compare.sh --inner-linux WORKLOAD SECONDS OUT BINDIR on|off` runs one Linux-side
# workload; the outer script calls it inside `unshare -n`, so the loopback
# it uses, its sockets and TIME-WAIT entries vanish with it.
if [ "${1:-}" = "--inner-linux" ]; then
    workload=$2 secs=$3 out=$4 bindir=$5 offload=$6
    ip link set lo mtu 1500 up
    if [ "$offload" = off ]; then
        ethtool -K lo tso off gso off >/dev/null
    fi
    tmp=$(mktemp -d)
    server_pid=
    cleanup() {
        if [ -n "$server_pid" ]; then
            kill "$server_pid" 2>/dev/null || true
            wait "$server_pid" 2>/dev/null || true
        fi
        rm -rf "$tmp"
    }
    trap cleanup EXIT
    case $workload in
        http | http-close)
            taskset -c 0 nginx -p "$tmp" -e "$tmp/error.log" -c "$here/peers/nginx.conf" &
            server_pid=$!
            ;;
        echo-* | pingpong)
            taskset -c 0 "$bindir/epoll_peer" server --mode echo --listen "127.0.0.1:$port" \
                --core 0 --lifetime "$((secs + 120))s" >"$tmp/server.out" &
            server_pid=$!
            ;;
        connect-*)
            taskset -c 0 "$bindir/epoll_peer" server --mode connect --size 64 \
                --listen "127.0.0.1:$port" --core 0 --lifetime "$((secs + 120))s" >"$tmp/server.out" &
            server_pid=$!
            ;;
        bulk)
            taskset -c 0 "$bindir/epoll_peer" server --mode discard --listen "127.0.0.1:$port" \
                --core 0 --lifetime "$((secs + 120))s" >"$tmp/server.out" &
            server_pid=$!
            ;;
        *) msg "unknown workload $workload"; exit 2 ;;
    esac
    up=
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
        sleep 0.05
    done
    [ -n "$up" ] || { msg "linux: server did not start"; cat "$tmp/error.log" 2>/dev/null >&2 || true; exit 1; }
    limit=$((secs + 60))
    client=(taskset -c 1 timeout "$limit")
    addr="127.0.0.1:$port"
    common=(--duration "${secs}s" --json "$out" --core 1)
    case $workload in
        http)
            WRK_JSON=$out WRK_CONNECTIONS=100 "${client[@]}" wrk -t1 -c100 -d "${secs}s" \
                -s "$here/peers/wrk_report.lua" "http://$addr/" >"$tmp/wrk.out"
            ;;
        http-close)
            WRK_JSON=$out WRK_CONNECTIONS=100 WRK_CLOSE=1 "${client[@]}" wrk -t1 -c100 -d "${secs}s" \
                -H "Connection: close" -s "$here/peers/wrk_report.lua" "http://$addr/" >"$tmp/wrk.out"
            ;;
        echo-100) "${client[@]}" "$bindir/epoll_peer" client --mode echo --server "$addr" --connections 100 --size 64 "${common[@]}" ;;
        echo-10k) "${client[@]}" "$bindir/epoll_peer" client --mode echo --server "$addr" --connections 10000 --size 64 "${common[@]}" ;;
        connect-100) "${client[@]}" "$bindir/epoll_peer" client --mode connect --server "$addr" --connections 100 --size 64 "${common[@]}" ;;
        connect-10k) "${client[@]}" "$bindir/epoll_peer" client --mode connect --server "$addr" --connections 10000 --size 64 "${common[@]}" ;;
        bulk) "${client[@]}" "$bindir/epoll_peer" client --mode bulk --server "$addr" --connections 1 "${common[@]}" ;;
        pingpong) "${client[@]}" "$bindir/epoll_peer" client --mode echo --server "$addr" --connections 1 --size 64 --latency "${common[@]}" ;;
    esac
    exit 0
fi

# ------------------------------------------------------------------ options
rounds=3 secs=5 only="" keep="" offload=on rt=()
all="http http-close echo-100 echo-10k connect-100 connect-10k bulk pingpong"
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --duration) secs=${2%s}; shift 2 ;;
        --quick) rounds=1 secs=1; shift ;;
        --only) only=${2//,/ }; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        --no-offload) offload=off; shift ;;
        --rt) rt=(chrt -f 1); shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) msg "unknown option $1 (see --help)"; exit 2 ;;
    esac
done
case $rounds in '' | *[!0-9]* | 0) msg "--rounds: a positive integer"; exit 2 ;; esac
case $secs in '' | *[!0-9]* | 0) msg "--duration: whole seconds, at least 1"; exit 2 ;; esac
workloads=${only:-$all}
for w in $workloads; do
    case " $all " in *" $w "*) ;; *) msg "unknown workload $w (known: $all)"; exit 2 ;; esac
done

# ------------------------------------------------------------------ setup
if [ "$offload" = off ] && ! command -v ethtool >/dev/null; then
    msg "--no-offload needs ethtool"; exit 2
fi
linux_ok=1
if [ "$(id -u)" != 0 ]; then
    msg "linux: needs root for its network namespace; the Linux column is skipped"
    linux_ok=
elif ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
    msg "installing nginx and wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx wrk >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx wrk >/dev/null; } \
        || { msg "linux: could not install nginx and wrk; HTTP rows are skipped"; }
fi

cd "$repo"
msg "building release binaries"
cargo build --release -p wirespeed-bench --bins >&2
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bindir=$target/release
ws=$bindir/wirespeed
if [ ! -x "$ws" ]; then
    msg "wirespeed: not built ($ws missing); its column and ratios are skipped"
    ws=
fi

if [ -n "$keep" ]; then
    mkdir -p "$keep"
    out=$(cd "$keep" && pwd)
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi
results=$out/results.jsonl
: >"$results"

# ------------------------------------------------------------------ runs
# Appends one line to results.jsonl: workload, side, round, c2c, report.
record() {
    local workload=$1 side=$2 round=$3 c2c=$4 json=$5 rc=$6
    python3 - "$workload" "$side" "$round" "$c2c" "$json" "$rc" >>"$results" <<'EOF'
import json, sys
workload, side, rnd, c2c, path, rc = sys.argv[1:]
rec = {"workload": workload, "side": side, "round": int(rnd),
       "c2c_ns": float(c2c) if c2c else None, "rc": int(rc), "report": None}
try:
    with open(path, encoding="utf-8") as f:
        rec["report"] = json.load(f)
except (OSError, ValueError):
    pass
print(json.dumps(rec))
EOF
}

# Prints the figure of one report that the table uses, for the log.
figure() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
workload, path = sys.argv[1:]
try:
    r = json.load(open(path, encoding="utf-8"))
except (OSError, ValueError):
    print("no report"); sys.exit()
errs = r.get("errors", {}).get("total", 0)
if workload == "bulk":
    s = f"{r.get('gbps', 0):.2f} Gbit/s"
elif workload.startswith("connect"):
    s = f"{r.get('cps', 0):,.0f} conn/s"
elif workload == "pingpong":
    l = r.get("latency_us") or {}
    s = f"p50 {l.get('p50', 0):.1f} us, p99 {l.get('p99', 0):.1f} us"
else:
    s = f"{r.get('rps', 0):,.0f} req/s"
print(s + (f" ({errs} errors)" if errs else ""))
EOF
}

run_side() {
    local workload=$1 side=$2 round=$3
    local json=$out/$workload.$side.$round.json log=$out/$workload.$side.$round.log
    local c2c rc=0 limit=$((secs + 60))
    local size=(--size 64) d="${secs}s"
    rm -f "$json"
    c2c=$("${rt[@]}" "$bindir/c2c" 2>/dev/null) || c2c=
    case $side in
        wirespeed)
            local args
            case $workload in
                http) args=(http --connections 100) ;;
                http-close) args=(http --connections 100 --new-conn-per-request) ;;
                echo-100) args=(echo --connections 100 "${size[@]}") ;;
                echo-10k) args=(echo --connections 10000 "${size[@]}") ;;
                connect-100) args=(connect --connections 100 "${size[@]}") ;;
                connect-10k) args=(connect --connections 10000 "${size[@]}") ;;
                bulk) args=(bulk --connections 1) ;;
                pingpong) args=(echo --connections 1 "${size[@]}" --latency) ;;
            esac
            "${rt[@]}" timeout "$limit" "$ws" load "${args[@]}" --duration "$d" --cores 2 --json "$json" >"$log" 2>&1 || rc=$?
            ;;
        linux)
            "${rt[@]}" timeout $((limit + 30)) unshare -n bash "$here/compare.sh" --inner-linux "$workload" "$secs" "$json" "$bindir" "$offload" >"$log" 2>&1 || rc=$?
            ;;
        smoltcp)
            local args
            case $workload in
                echo-100) args=(--mode echo --connections 100 "${size[@]}") ;;
                echo-10k) args=(--mode echo --connections 10000 "${size[@]}") ;;
                connect-100) args=(--mode connect --connections 100 "${size[@]}") ;;
                connect-10k) args=(--mode connect --connections 10000 "${size[@]}") ;;
                bulk) args=(--mode bulk --connections 1) ;;
                pingpong) args=(--mode echo --connections 1 "${size[@]}" --latency) ;;
            esac
            "${rt[@]}" timeout "$limit" "$bindir/smol_peer" "${args[@]}" --duration "$d" \
                --server-core 0 --client-core 1 --json "$json" >"$log" 2>&1 || rc=$?
            ;;
    esac
    record "$workload" "$side" "$round" "$c2c" "$json" "$rc"
    if [ "$rc" != 0 ]; then
        msg "  $side: exit $rc (c2c ${c2c:-?} ns): $(tail -n 3 "$log" | tr '\n' ' ')"
    else
        msg "  $side: $(figure "$workload" "$json") (c2c ${c2c:-?} ns)"
    fi
}

# Which sides run a workload: smoltcp has no HTTP.
sides_for() {
    local s=()
    [ -n "$ws" ] && s+=(wirespeed)
    if [ -n "$linux_ok" ]; then
        case $1 in
            http*) command -v nginx >/dev/null && command -v wrk >/dev/null && s+=(linux) ;;
            *) s+=(linux) ;;
        esac
    fi
    case $1 in http*) ;; *) s+=(smoltcp) ;; esac
    echo "${s[@]}"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
sched=normal
[ ${#rt[@]} -gt 0 ] && sched="SCHED_FIFO 1"
for w in $workloads; do
    for r in $(seq 1 "$rounds"); do
        msg "$w, round $r/$rounds"
        for side in $(sides_for "$w"); do
            run_side "$w" "$side" "$r"
        done
    done
done

# ------------------------------------------------------------------ table
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$results" "$rounds" "$secs" "$load_start" "$load_end" "$offload" "$sched" <<'EOF'
import json, statistics, sys

path, rounds, secs, load_start, load_end, offload, sched = sys.argv[1:]
rounds = int(rounds)
recs = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
# (label, workload, how to read the figure, higher is better, goals)
ROWS = [
    ("HTTP keep-alive (req/s)", "http", lambda r: r["rps"], True, (25, None)),
    ("HTTP conn-per-request (req/s)", "http-close", lambda r: r["rps"], True, (60, None)),
    ("echo 64 B x 100 (req/s)", "echo-100", lambda r: r["rps"], True, (None, 2)),
    ("echo 64 B x 10k (req/s)", "echo-10k", lambda r: r["rps"], True, (None, 10)),
    ("connect x 100 (conn/s)", "connect-100", lambda r: r["cps"], True, (None, 2)),
    ("connect x 10k (conn/s)", "connect-10k", lambda r: r["cps"], True, (None, 10)),
    ("bulk, 1 stream (Gbit/s)", "bulk", lambda r: r["gbps"], True, (1, 1)),
    ("ping-pong p50 (us)", "pingpong", lambda r: r["latency_us"]["p50"], False, (None, None)),
    ("ping-pong p99 (us)", "pingpong", lambda r: r["latency_us"]["p99"], False, (None, None)),
]
SIDES = ("wirespeed", "linux", "smoltcp")

def value(rec, get):
    rep = rec.get("report")
    if rec["rc"] != 0 or not rep:
        return None
    try:
        return float(get(rep))
    except (KeyError, TypeError, ValueError):
        return None

def fmt(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"

def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None

print()
print(f"{rounds} round(s) of {secs} s per run; load average (1/5/15 min) {load_start} at the start, "
      f"{load_end} at the end; Linux loopback offloads {offload}; scheduling {sched}.")
print("Per run (c2c = core-to-core round trip measured right before that run;")
print("a '*' marks a round whose c2c values differ by more than 1.5x: placement moved).")
print()
hdr = f"{'workload':31} {'rnd':>3} {'c2c ns ws/lx/sm':>17} {'wirespeed':>10} {'Linux':>10} {'smoltcp':>10} {'ws/Linux':>9} {'ws/smol':>9}"
print(hdr)
print("-" * len(hdr))
summary = []
for label, w, get, higher, goals in ROWS:
    per_round = []
    for rnd in range(1, rounds + 1):
        by = {r["side"]: r for r in recs if r["workload"] == w and r["round"] == rnd}
        if not by:
            continue
        vals = {s: value(by[s], get) if s in by else None for s in SIDES}
        c2cs = [by[s]["c2c_ns"] if s in by else None for s in SIDES]
        known = [c for c in c2cs if c]
        moved = "*" if known and max(known) > 1.5 * min(known) else " "
        c2c = "/".join("-" if c is None else f"{c:.0f}" for c in c2cs)
        rl = ratio(vals["wirespeed"], vals["linux"])
        rs = ratio(vals["wirespeed"], vals["smoltcp"])
        per_round.append((vals, rl, rs))
        print(f"{label:31} {rnd:>3} {c2c:>16}{moved} {fmt(vals['wirespeed']):>10} {fmt(vals['linux']):>10} "
              f"{fmt(vals['smoltcp']):>10} {fmt(rl):>9} {fmt(rs):>9}")
    if per_round:
        summary.append((label, per_round, higher, goals))

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

print()
print("Medians over the rounds (ratios: median of the per-round ratios; for")
print("latency rows a ratio below 1 means wirespeed is faster).")
print()
hdr = f"{'workload':31} {'wirespeed':>10} {'Linux':>10} {'smoltcp':>10} {'ws/Linux':>9} {'ws/smol':>9}  goal"
print(hdr)
print("-" * len(hdr))
for label, per_round, higher, (gl, gs) in summary:
    m = {s: med([v[s] for v, _, _ in per_round]) for s in SIDES}
    rl, rs = med([x for _, x, _ in per_round]), med([x for _, _, x in per_round])
    goal = []
    for name, g, r in (("Linux", gl, rl), ("smoltcp", gs, rs)):
        if g is not None:
            verdict = "" if r is None else (" met" if r >= g else " not met")
            goal.append(f">= {g}x {name}{verdict}")
    print(f"{label:31} {fmt(m['wirespeed']):>10} {fmt(m['linux']):>10} {fmt(m['smoltcp']):>10} "
          f"{fmt(rl):>9} {fmt(rs):>9}  {'; '.join(goal)}")
failed = [r for r in recs if r["rc"] != 0 or not r.get("report")
          or (r["report"].get("errors") or {}).get("total", 0)]
if failed:
    print()
    print("Runs that failed or reported errors:")
    for r in failed:
        errs = ((r.get("report") or {}).get("errors") or {}).get("total")
        print(f"  {r['workload']} {r['side']} round {r['round']}: exit {r['rc']}, errors {errs}")
EOF
