#!/usr/bin/env bash
# DPDK's own ceiling over net_memif between two processes: what any engine
# on a memif wire can hope for on this host.
#
# Two dpdk-testpmd processes share one memif link: the client generates
# frames (txonly) and the server counts what it receives (rxonly). The
# server's receive rate over the measured interval, as testpmd computes it
# from its TSC between two `show port stats`, is printed as one line:
#
#   memif testpmd ceiling: 27.42 Mpps (64-byte frames)
#
# Usage: bench/memif_ceiling.sh [--frame-size BYTES] [--seconds S]
#                               [--cpus A,B] [--hugepages]
#   --frame-size  bytes per frame, 64 to 1514 (default 64)
#   --seconds     measured interval, 1 to 60 (default 5), after 1 s warm-up
#   --cpus        the two CPUs, one forwarding core per process (default 0,1):
#                 the server forwards on B, the client on A, and each main
#                 core (idle at its prompt) sits on the other's CPU
#   --hugepages   run on reserved 2 MiB hugepages (--in-memory) instead of
#                 --no-huge; reserve them first (64 free pages), e.g.
#                 deploy/setup.sh --hugepages 64, and give them back with
#                 deploy/setup.sh --release
#
# Both rates cross between the two CPUs, so the core-to-core round trip
# (bench's c2c binary, when built: cargo build --release -p wirespeed-bench
# --bin c2c) goes on stderr beside the summary.
#
# Needs dpdk-testpmd (Debian package dpdk) and stdbuf; no PCI device is
# touched (--no-pci) and the memif socket is an abstract one named after
# this run. Both processes run under a time limit; forwarding is stopped on
# both sides before either quits (a memif server whose client vanishes
# mid-burst can crash), and the processes are ended by PID if they hang.
set -euo pipefail
cd "$(dirname "$0")/.."

frame=64
secs=5
cpus=0,1
huge=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d' >&2; }
bad() {
  echo "memif_ceiling.sh: $*" >&2
  usage
  exit 2
}
while (($#)); do
  case $1 in
    --hugepages) huge=1; shift; continue ;;
    -h | --help) usage; exit 0 ;;
    --frame-size | --seconds | --cpus) (($# >= 2)) || bad "$1: missing value" ;;
    *) bad "unknown flag '$1' (accepted: --frame-size, --seconds, --cpus, --hugepages)" ;;
  esac
  case $1 in
    --frame-size)
      [[ $2 =~ ^[0-9]{2,4}$ ]] && ((10#$2 >= 64 && 10#$2 <= 1514)) ||
        bad "--frame-size '$2': accepted 64 to 1514 bytes"
      frame=$((10#$2))
      ;;
    --seconds)
      [[ $2 =~ ^[0-9]{1,2}$ ]] && ((10#$2 >= 1 && 10#$2 <= 60)) ||
        bad "--seconds '$2': accepted 1 to 60"
      secs=$((10#$2))
      ;;
    --cpus)
      [[ $2 =~ ^([0-9]{1,4}),([0-9]{1,4})$ ]] && ((10#${BASH_REMATCH[1]} != 10#${BASH_REMATCH[2]})) ||
        bad "--cpus '$2': accepted two different CPU numbers, A,B"
      cpus=$((10#${BASH_REMATCH[1]})),$((10#${BASH_REMATCH[2]}))
      ;;
  esac
  shift 2
done

die() {
  echo "memif_ceiling.sh: $*" >&2
  exit 1
}
for t in dpdk-testpmd stdbuf timeout; do
  command -v "$t" >/dev/null || die "$t is missing (Debian packages dpdk, coreutils)"
done
cpu_a=${cpus%,*}
cpu_b=${cpus#*,}
for c in "$cpu_a" "$cpu_b"; do
  [[ -d /sys/devices/system/cpu/cpu$c ]] || die "CPU $c does not exist (--cpus)"
done

# 8192 mbufs of 2176 bytes per process (about 18 MiB): plenty for one
# queue of 1024 descriptors, and small enough for -m 512.
mem=(--no-huge -m 512 --no-shconf)
if ((huge)); then
  free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
  # The two processes take 34 pages together (EAL heap, mempools, memif
  # regions); twice that leaves room.
  ((free >= 64)) || die "--hugepages: $free free 2 MiB pages, want 64 (deploy/setup.sh --hugepages 64)"
  mem=(--in-memory)
fi

work=$(mktemp -d)
tag=wirespeed-memif-$$
pids=()
server_in=
client_in=

cleanup() {
  # Stop forwarding on both sides before either quits; an early EOF on
  # stdin makes testpmd quit on its own.
  local fd
  for fd in "$client_in" "$server_in"; do
    [[ -n $fd ]] && { printf 'stop\n' >&"$fd"; } 2>/dev/null || true
  done
  sleep 0.5
  for fd in "$client_in" "$server_in"; do
    [[ -n $fd ]] && { printf 'quit\n' >&"$fd"; } 2>/dev/null || true
  done
  local p i
  for p in "${pids[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  # The EAL's runtime directories of both sides.
  rm -rf "$work" "/var/run/dpdk/$tag-server" "/var/run/dpdk/$tag-client"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until FILE holds at least N lines matching PATTERN.
wait_for() {
  local file=$1 pattern=$2 n=$3 what=$4 i p c
  for ((i = 0; i < 200; i++)); do
    c=$(grep -c -- "$pattern" "$file" 2>/dev/null) || c=0
    ((c >= n)) && return 0
    for p in "${pids[@]}"; do
      kill -0 "$p" 2>/dev/null || { tail -n 20 "$work"/*.log >&2; die "testpmd exited early ($what)"; }
    done
    sleep 0.1
  done
  tail -n 20 "$work"/*.log >&2
  die "timed out waiting for $what"
}

# testpmd in interactive mode reads its commands from a FIFO this script
# holds open read-write, so opening it never blocks and the process sees
# EOF (and quits) only once the script is gone.
start_testpmd() {
  local role=$1 main=$2 mode=$3
  mkfifo "$work/$role.in"
  # The commands and the prompt lines go to the log line by line, so the
  # script can follow them.
  timeout -k 5 $((secs + 60)) stdbuf -oL -eL dpdk-testpmd \
    -l "$cpu_a,$cpu_b" --main-lcore "$main" "${mem[@]}" --no-pci \
    --file-prefix "$tag-$role" \
    --vdev="net_memif0,role=$role,socket=$tag" \
    -- -i --forward-mode="$mode" --total-num-mbufs=8192 \
    --txpkts="$frame" \
    <"$work/$role.in" >"$work/$role.log" 2>&1 &
  pids+=($!)
}

start_testpmd server "$cpu_a" rxonly
exec {server_in}<>"$work/server.in"
wait_for "$work/server.log" 'Checking link statuses' 1 "the memif server to start"
start_testpmd client "$cpu_b" txonly
exec {client_in}<>"$work/client.in"
wait_for "$work/client.log" 'Checking link statuses' 1 "the memif client to start"

# The link is up once the client has connected to the server's socket.
up=0
for ((i = 0; i < 100; i++)); do
  printf 'show port info 0\n' >&"$server_in"
  sleep 0.1
  if grep -q 'Link status: up' "$work/server.log"; then
    up=1
    break
  fi
done
((up)) || { tail -n 20 "$work"/*.log >&2; die "the memif link never came up"; }

printf 'start\n' >&"$server_in"
printf 'start\n' >&"$client_in"
wait_for "$work/server.log" 'rxonly packet forwarding - ports=' 1 "the server to forward"
wait_for "$work/client.log" 'txonly packet forwarding - ports=' 1 "the client to forward"
sleep 1
printf 'show port stats 0\n' >&"$server_in"
wait_for "$work/server.log" 'Rx-pps:' 1 "the first statistics"
sleep "$secs"
printf 'show port stats 0\n' >&"$server_in"
wait_for "$work/server.log" 'Rx-pps:' 2 "the second statistics"
printf 'show port stats 0\n' >&"$client_in"
wait_for "$work/client.log" 'Tx-pps:' 1 "the client's statistics"

# Stop both, the sender first, before either quits.
printf 'stop\n' >&"$client_in"
wait_for "$work/client.log" 'Accumulated forward statistics' 1 "the client to stop"
printf 'stop\n' >&"$server_in"
wait_for "$work/server.log" 'Accumulated forward statistics' 1 "the server to stop"

# The second `show port stats` gives the rate since the first one.
rx_pps=$(grep 'Rx-pps:' "$work/server.log" | sed -n 2p | awk '{print $2}')
[[ $rx_pps =~ ^[0-9]+$ ]] || die "no Rx-pps in the server's statistics"
((rx_pps > 0)) || { tail -n 30 "$work"/*.log >&2; die "the server received nothing"; }
dropped=$(grep -A 3 'Accumulated forward statistics' "$work/client.log" |
  sed -n 's/.*TX-dropped: *\([0-9]*\).*/\1/p' | head -n 1)
c2c=${CARGO_TARGET_DIR:-target}/release/c2c
rtt=
if [[ -x $c2c ]] && ns=$("$c2c" --a "$cpu_a" --b "$cpu_b" 2>/dev/null); then
  rtt=", c2c round trip $ns ns"
fi
gbps=$(awk -v pps="$rx_pps" -v f="$frame" 'BEGIN { printf "%.1f", pps * f * 8 / 1e9 }')
echo "memif: ${secs}s measured, $frame-byte frames ($gbps Gbit/s), CPUs $cpus$rtt, $([[ $huge == 1 ]] && echo hugepages || echo no-huge); the client found the ring full for ${dropped:-?} frames" >&2
awk -v pps="$rx_pps" -v f="$frame" 'BEGIN { printf "memif testpmd ceiling: %.2f Mpps (%d-byte frames)\n", pps / 1e6, f }'
