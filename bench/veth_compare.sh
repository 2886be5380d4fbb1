#!/usr/bin/env bash
# wirespeed on AF_XDP against the Linux stack, over the same veth pair, in
# one run (indicative: a veth in copy mode is a fair medium, not a NIC).
#
#   serve   wrk (1 thread) drives `wirespeed serve http` on af_xdp, then
#           nginx (1 worker) on the Linux stack, same body, same wrk:
#           requests/s of the one server core, as a ratio
#   load    `wirespeed load http` on af_xdp against nginx, then wrk against
#           the same nginx: requests/s, and CPU seconds the load generator
#           spent per million requests, as ratios
#   bulk    `wirespeed load bulk` on af_xdp into a Linux sink (socat), then
#           iperf3 between the two Linux ends with TX offloads off on both:
#           Gbit/s ratio
#
# The two vCPUs are split: the side under test on CPU 0, its peer on CPU 1
# (wirespeed pins its worker to CPU 0). Rounds alternate engine and Linux
# (A B A B ...); the table gives each round's figures and ratios.
#
# Usage: bench/veth_compare.sh [--rounds R] [--duration S] [--body-size N]
#                              [--connections C] [--mode native|generic]
#   --rounds       rounds (default 3)
#   --duration     seconds per measurement (default 5)
#   --body-size    bytes of the HTTP body (default 1024)
#   --connections  HTTP connections (default 100)
#   --mode         XDP attach mode of the engine (default native)
#
# Needs root, a release build (cargo build --release -p wirespeed-bench
# --bin wirespeed), nginx, wrk, iperf3, socat, ethtool, taskset. Builds its
# labs with deploy/lab.sh (prefix wsb) and removes them; every run is
# bounded and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
duration=5
body=1024
conns=100
mode=native
usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d' >&2; }
while (($#)); do
  (($# >= 2)) || { echo "veth_compare.sh: $1: missing value" >&2; usage; exit 2; }
  case $1 in
    --rounds) [[ $2 =~ ^[1-9][0-9]?$ ]] || { echo "--rounds '$2': accepted 1 to 99" >&2; exit 2; }; rounds=$2 ;;
    --duration) [[ $2 =~ ^[1-9][0-9]{0,2}$ ]] || { echo "--duration '$2': accepted 1 to 999 seconds" >&2; exit 2; }; duration=$2 ;;
    --body-size) [[ $2 =~ ^[0-9]{1,7}$ ]] || { echo "--body-size '$2': accepted 0 to 9999999 bytes" >&2; exit 2; }; body=$2 ;;
    --connections) [[ $2 =~ ^[1-9][0-9]{0,4}$ ]] || { echo "--connections '$2': accepted 1 to 99999" >&2; exit 2; }; conns=$2 ;;
    --mode) [[ $2 == native || $2 == generic ]] || { echo "--mode '$2': accepted native, generic" >&2; exit 2; }; mode=$2 ;;
    *) echo "veth_compare.sh: unknown flag '$1' (accepted: --rounds, --duration, --body-size, --connections, --mode)" >&2; usage; exit 2 ;;
  esac
  shift 2
done
[[ $(id -u) -eq 0 ]] || { echo "veth_compare.sh: needs root" >&2; exit 1; }
ws=target/release/wirespeed
[[ -x $ws ]] || { echo "veth_compare.sh: build first: cargo build --release -p wirespeed-bench --bin wirespeed" >&2; exit 1; }
for t in nginx wrk iperf3 socat ethtool taskset python3; do
  command -v "$t" >/dev/null || { echo "veth_compare.sh: $t is missing (deploy/test.sh installs it)" >&2; exit 1; }
done

prefix=wsb
cns=$prefix-client
sns=$prefix-server
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bash deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

lab() { bash deploy/lab.sh up --prefix "$prefix" --body-size "$body" "$@" >/dev/null; }
limit=$((duration + 20))

# Pins nginx (master and workers) to CPU $1.
pin_nginx() {
  local master
  master=$(cat "/run/wirespeed-lab/$prefix/nginx.pid")
  for p in $master $(pgrep -P "$master"); do taskset -a -p -c "$1" "$p" >/dev/null; done
}

# wrk on CPU $1 from the client namespace: prints "req/s cpu_seconds".
wrk_run() {
  local out
  out=$(ip netns exec "$cns" /usr/bin/time -f '%U %S' -o "$work/time" \
    timeout "$limit" taskset -c "$1" wrk -t1 -c"$conns" -d"${duration}s" http://198.18.0.2/ 2>&1)
  if grep -q -e 'Socket errors' -e 'Non-2xx' <<<"$out"; then echo "wrk reported errors:" >&2; echo "$out" >&2; fi
  local rps
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  echo "$rps $(awk '{print $1 + $2}' "$work/time")"
}

declare -a r_serve_ws r_serve_lx r_load_ws r_load_lx r_cpu_ws r_cpu_lx r_bulk_ws r_bulk_lx
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds" >&2

  # serve: the engine.
  lab --engine server
  ip netns exec "$sns" timeout "$limit" "$ws" serve http --port "af_xdp:veth-server,mode=$mode" \
    --ip 198.18.0.2/24 --body-size "$body" --duration "$((duration + 4))s" >/dev/null 2>"$work/serve.err" &
  pids+=($!)
  sleep 1.5
  read -r rps _ < <(wrk_run 1)
  r_serve_ws+=("$rps")
  wait "${pids[-1]}" || { cat "$work/serve.err" >&2; exit 1; }

  # serve: nginx on the Linux stack. The lab whose engine is the client
  # has nginx; giving its client end an address makes both ends Linux.
  lab --engine client
  ip -n "$cns" addr add 198.18.0.1/24 dev veth-client
  pin_nginx 0
  read -r rps _ < <(wrk_run 1)
  r_serve_lx+=("$rps")

  # load: wrk against nginx (pinned apart), and iperf3 both ends Linux.
  pin_nginx 1
  read -r rps cpu < <(wrk_run 0)
  r_load_lx+=("$rps")
  r_cpu_lx+=("$(python3 -c "print($cpu / max($rps * $duration, 1) * 1e6)")")
  ip netns exec "$cns" ethtool -K veth-client tx off >/dev/null
  ip netns exec "$sns" ethtool -K veth-server tx off >/dev/null
  ip netns exec "$sns" timeout "$limit" taskset -c 1 iperf3 -s -1 -B 198.18.0.2 >/dev/null 2>&1 &
  pids+=($!)
  sleep 0.5
  gbps=$(ip netns exec "$cns" timeout "$limit" taskset -c 0 iperf3 -c 198.18.0.2 -t "$duration" -J |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)')
  r_bulk_lx+=("$gbps")
  wait "${pids[-1]}" || true

  # load: the engine against the same nginx, then bulk into a Linux sink.
  lab --engine client
  pin_nginx 1
  ip netns exec "$cns" /usr/bin/time -f '%U %S' -o "$work/time" timeout "$limit" \
    "$ws" load http --port "af_xdp:veth-client,mode=$mode" --ip 198.18.0.1/24 \
    --target 198.18.0.2:80 --connections "$conns" --duration "${duration}s" \
    --json "$work/load.json" >/dev/null 2>"$work/load.err" || { cat "$work/load.err" >&2; exit 1; }
  rps=$(python3 -c "import json; print(json.load(open('$work/load.json'))['rps'])")
  cpu=$(awk '{print $1 + $2}' "$work/time")
  r_load_ws+=("$rps")
  r_cpu_ws+=("$(python3 -c "print($cpu / max($rps * $duration, 1) * 1e6)")")
  ip netns exec "$sns" timeout "$limit" taskset -c 1 socat -u -b 262144 TCP-LISTEN:9,bind=198.18.0.2,reuseaddr OPEN:/dev/null >/dev/null 2>&1 &
  pids+=($!)
  sleep 0.5
  ip netns exec "$cns" timeout "$limit" "$ws" load bulk --port "af_xdp:veth-client,mode=$mode" \
    --ip 198.18.0.1/24 --target 198.18.0.2:9 --connections 1 --duration "${duration}s" \
    --json "$work/bulk.json" >/dev/null 2>"$work/bulk.err" || { cat "$work/bulk.err" >&2; exit 1; }
  r_bulk_ws+=("$(python3 -c "import json; print(json.load(open('$work/bulk.json'))['gbps'])")")
  kill "${pids[-1]}" 2>/dev/null || true
done

python3 - "$rounds" "$duration" "$body" "$conns" "$mode" \
  "${r_serve_ws[*]}" "${r_serve_lx[*]}" "${r_load_ws[*]}" "${r_load_lx[*]}" \
  "${r_cpu_ws[*]}" "${r_cpu_lx[*]}" "${r_bulk_ws[*]}" "${r_bulk_lx[*]}" <<'EOF'
import statistics, sys
rounds, duration, body, conns, mode = sys.argv[1:6]
v = [list(map(float, a.split())) for a in sys.argv[6:]]
sw, sl, lw, ll, cw, cl, bw, bl = v
print(f"wirespeed (af_xdp, XDP {mode} mode) vs Linux over one veth pair: "
      f"{rounds} rounds of {duration} s, body {body} B, {conns} connections")
print(f"{'round':>5} {'serve ws':>10} {'nginx':>10} {'ratio':>6} | {'load ws':>10} {'wrk':>10} {'ratio':>6}"
      f" | {'cpu/M ws':>8} {'cpu/M wrk':>9} {'ratio':>6} | {'bulk ws':>8} {'iperf3':>8} {'ratio':>6}")
rows = []
for i in range(len(sw)):
    r = (sw[i] / sl[i], lw[i] / ll[i], cw[i] / cl[i], bw[i] / bl[i])
    rows.append(r)
    print(f"{i+1:>5} {sw[i]:>10.0f} {sl[i]:>10.0f} {r[0]:>6.2f} | {lw[i]:>10.0f} {ll[i]:>10.0f} {r[1]:>6.2f}"
          f" | {cw[i]:>8.2f} {cl[i]:>9.2f} {r[2]:>6.2f} | {bw[i]:>8.2f} {bl[i]:>8.2f} {r[3]:>6.2f}")
med = [statistics.median(c) for c in zip(*rows)]
print(f"median ratios: serve {med[0]:.2f}x nginx (req/s, one server core); "
      f"load {med[1]:.2f}x wrk (req/s), {med[2]:.2f}x its CPU seconds per million requests; "
      f"bulk {med[3]:.2f}x iperf3 (Gbit/s)")
EOF
