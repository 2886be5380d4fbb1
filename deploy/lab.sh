#!/usr/bin/env bash
# A network-namespace lab: the engine on one side, the Linux kernel stack
# (nginx, curl, iperf3, ...) on the other, nothing in the root namespace.
#
#   deploy/lab.sh up   [--wire veth|tap] [--engine client|server] [--loss P]
#                      [--body-size N] [--prefix NAME]
#   deploy/lab.sh down [--prefix NAME]
#
# --wire veth (default): namespaces PREFIX-client and PREFIX-server joined
#   by a veth pair created inside them (veth-client, veth-server). The
#   engine's end gets no IP address (the kernel would answer ARP and send
#   RSTs beside it); the Linux end facing it has TX offloads off, since
#   AF_XDP and AF_PACKET see the partial checksums the kernel leaves.
# --wire tap: one namespace, the Linux peer's, holding a persistent TAP
#   (tap-client or tap-server, named after the engine's role) whose kernel
#   side is the peer; the engine attaches to it with --port tap:NAME.
# --engine client (default): the engine runs the load generator, nginx
#   serves on the server address. --engine server: the engine serves,
#   Linux clients connect.
# --loss P: random drop of P percent (0 to 100, two decimals) of TCP frames
#   in each direction, nftables netdev rules on the Linux end (this kernel
#   has no netem).
# --body-size N: bytes of nginx's page at / (default 1024).
# --prefix NAME: namespace prefix (default wsl), so several labs coexist.
#
# Addresses (RFC 2544 benchmarking range): client 198.18.0.1/24, server
# 198.18.0.2/24. State (nginx config, page, pid, logs) lives in
# /run/wirespeed-lab/PREFIX; the access log has one line per request.
#
# `up` tears down a lab of the same prefix first; `down` removes everything
# `up` made and succeeds when nothing is left. Both need root.
set -euo pipefail

readonly STATE_ROOT=/run/wirespeed-lab
readonly CLIENT_IP=198.18.0.1
readonly SERVER_IP=198.18.0.2
readonly PREFIX_LEN=24
readonly HTTP_PORT=80

usage() {
  cat >&2 <<'EOF'
usage: deploy/lab.sh up   [--wire veth|tap] [--engine client|server] [--loss PERCENT]
                          [--body-size BYTES] [--prefix NAME]
       deploy/lab.sh down [--prefix NAME]

  --wire       veth (engine on a bare veth end, for af_xdp) or tap (engine on a
               TAP in the peer's namespace) [veth]
  --engine     client (wirespeed loads nginx) or server (wirespeed serves) [client]
  --loss       random TCP frame loss per direction, percent from 0 to 100,
               up to two decimals (0.5, 1, 5) [0]
  --body-size  bytes of nginx's page, 0 to 1073741824 [1024]
  --prefix     namespace prefix: a letter, then letters, digits, '-', '_'
               (at most 40) [wsl]
EOF
}

die_usage() {
  echo "lab.sh: $*" >&2
  usage
  exit 2
}

die() {
  echo "lab.sh: $*" >&2
  exit 1
}

say() { printf '%s\n' "$*"; }

# --- arguments ---------------------------------------------------------------

(($#)) || die_usage "missing command (accepted: up, down)"
cmd=$1
shift
case $cmd in
  up | down) ;;
  -h | --help) usage; exit 0 ;;
  *) die_usage "unknown command '$cmd' (accepted: up, down)" ;;
esac

wire=veth
engine=client
loss=0
body_size=1024
prefix=wsl
while (($#)); do
  flag=$1
  [[ $flag == -h || $flag == --help ]] && { usage; exit 0; }
  (($# >= 2)) || die_usage "$flag: missing value"
  value=$2
  shift 2
  if [[ $cmd == down && $flag != --prefix ]]; then
    die_usage "$flag: down takes only --prefix"
  fi
  case $flag in
    --wire)
      [[ $value == veth || $value == tap ]] || die_usage "--wire '$value': accepted values are veth, tap"
      wire=$value ;;
    --engine)
      [[ $value == client || $value == server ]] || die_usage "--engine '$value': accepted values are client, server"
      engine=$value ;;
    --loss)
      [[ $value =~ ^[0-9]{1,3}(\.[0-9]{1,2})?$ ]] || die_usage "--loss '$value': accepted values are percentages from 0 to 100 with up to two decimals"
      loss=$value ;;
    --body-size)
      [[ $value =~ ^[0-9]{1,10}$ ]] && ((10#$value <= 1073741824)) || die_usage "--body-size '$value': accepted values are byte counts from 0 to 1073741824"
      body_size=$((10#$value)) ;;
    --prefix)
      [[ $value =~ ^[A-Za-z][A-Za-z0-9_-]{0,39}$ ]] || die_usage "--prefix '$value': accepted values are a letter then letters, digits, '-' or '_', 40 characters at most"
      prefix=$value ;;
    *) die_usage "unknown flag '$flag' (accepted: --wire, --engine, --loss, --body-size, --prefix)" ;;
  esac
done

# Loss in hundredths of a percent: numgen draws from 0..9999.
loss_int=${loss%%.*}
loss_frac=
[[ $loss == *.* ]] && loss_frac=${loss#*.}
loss_frac=${loss_frac}00
loss_per_10k=$((10#$loss_int * 100 + 10#${loss_frac:0:2}))
((loss_per_10k <= 10000)) || die_usage "--loss '$loss': accepted values are percentages from 0 to 100"

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, nftables)"

client_ns=$prefix-client
server_ns=$prefix-server
state=$STATE_ROOT/$prefix

ns_exists() { ip netns list | awk '{print $1}' | grep -qxF "$1"; }

# --- down --------------------------------------------------------------------

stop_nginx() {
  local pidfile=$state/nginx.pid pid
  [[ -s $pidfile ]] || return 0
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  # Only the master this lab started: its command line names our config.
  if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$state/nginx.conf"; then
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

down() {
  stop_nginx
  local ns pids
  for ns in "$client_ns" "$server_ns"; do
    if ns_exists "$ns"; then
      pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
      [[ -z $pids ]] || echo "lab.sh: warning: processes still in $ns (pids $pids); they keep it alive until they exit" >&2
      ip netns del "$ns"
    fi
  done
  rm -rf "$state"
  rmdir "$STATE_ROOT" 2>/dev/null || true
}

if [[ $cmd == down ]]; then
  down
  say "lab $prefix: down"
  exit 0
fi

# --- up ----------------------------------------------------------------------

for tool in ip nft; do
  command -v "$tool" >/dev/null || die "needs $tool (deploy/test.sh installs it)"
done
if [[ $wire == veth ]]; then
  command -v ethtool >/dev/null || die "needs ethtool (deploy/test.sh installs it)"
fi
if [[ $engine == client ]]; then
  command -v nginx >/dev/null || die "needs nginx (deploy/test.sh installs it)"
fi

# A half-made lab of this prefix goes first; a failure below undoes this one.
down
trap 'status=$?; if ((status)); then echo "lab.sh: up failed, tearing down" >&2; down; fi' EXIT

if [[ $engine == client ]]; then
  engine_ip=$CLIENT_IP linux_ip=$SERVER_IP linux_role=server
else
  engine_ip=$SERVER_IP linux_ip=$CLIENT_IP linux_role=client
fi

new_ns() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  # No IPv6: the kernel would chatter (router and neighbour solicitations)
  # on the engine's wire.
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
}

mkdir -p "$state"
if [[ $wire == veth ]]; then
  new_ns "$client_ns"
  new_ns "$server_ns"
  ip link add veth-client netns "$client_ns" type veth peer name veth-server netns "$server_ns"
  engine_ns=$prefix-$engine
  linux_ns=$prefix-$linux_role
  engine_dev=veth-$engine
  linux_dev=veth-$linux_role
  ip -n "$engine_ns" link set "$engine_dev" up
  ip -n "$linux_ns" addr add "$linux_ip/$PREFIX_LEN" dev "$linux_dev"
  ip -n "$linux_ns" link set "$linux_dev" up
  # The engine computes every checksum itself and reads frames raw: the
  # kernel must not hand it partial checksums or TSO super-frames.
  ip netns exec "$linux_ns" ethtool -K "$linux_dev" tx off >/dev/null
  port_spec=af_xdp:$engine_dev
else
  linux_ns=$prefix-$linux_role
  engine_ns=$linux_ns
  new_ns "$linux_ns"
  engine_dev=tap-$engine
  linux_dev=$engine_dev
  ip -n "$linux_ns" tuntap add dev "$linux_dev" mode tap
  ip -n "$linux_ns" addr add "$linux_ip/$PREFIX_LEN" dev "$linux_dev"
  ip -n "$linux_ns" link set "$linux_dev" up
  port_spec=tap:$engine_dev
fi

if ((loss_per_10k > 0)); then
  ip netns exec "$linux_ns" nft -f - <<EOF
table netdev lab_loss {
  chain in  { type filter hook ingress device "$linux_dev" priority 0; meta l4proto tcp numgen random mod 10000 < $loss_per_10k counter drop; }
  chain out { type filter hook egress  device "$linux_dev" priority 0; meta l4proto tcp numgen random mod 10000 < $loss_per_10k counter drop; }
}
EOF
fi

if [[ $engine == client ]]; then
  mkdir -p "$state/www"
  # The same body the engine's `serve http` sends: 'a' to 'z', repeated.
  yes abcdefghijklmnopqrstuvwxyz | tr -d '\n' | head -c "$body_size" >"$state/www/index.html" || true
  [[ $(stat -c %s "$state/www/index.html") -eq $body_size ]] || die "writing the $body_size-byte page failed"
  cat >"$state/nginx.conf" <<EOF
# Written by deploy/lab.sh for lab $prefix; removed by 'lab.sh down'.
worker_processes 1;
worker_rlimit_nofile 20000;
daemon on;
pid $state/nginx.pid;
error_log $state/error.log warn;

events {
    use epoll;
    worker_connections 16384;
}

http {
    # Unbuffered: one line per request, written when the request ends.
    access_log $state/access.log;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    default_type application/octet-stream;
    client_body_temp_path $state/tmp/body;
    proxy_temp_path $state/tmp/proxy;
    fastcgi_temp_path $state/tmp/fastcgi;
    uwsgi_temp_path $state/tmp/uwsgi;
    scgi_temp_path $state/tmp/scgi;

    server {
        listen $SERVER_IP:$HTTP_PORT backlog=4096;
        root $state/www;
        index index.html;
    }
}
EOF
  mkdir -p "$state/tmp"
  : >"$state/access.log"
  ip netns exec "$server_ns" nginx -q -p "$state" -e "$state/error.log" -c "$state/nginx.conf"
  for _ in $(seq 50); do
    [[ -s $state/nginx.pid ]] && break
    sleep 0.1
  done
  [[ -s $state/nginx.pid ]] || die "nginx did not start (see $state/error.log)"
fi
trap - EXIT

bin=target/release/wirespeed
say "lab $prefix: up ($wire wire, engine is the $engine)"
if [[ $wire == veth ]]; then
  say "  namespaces: $client_ns, $server_ns"
  say "  $engine_ns: $engine_dev (engine's end, no address), run the engine here"
  say "  $linux_ns: $linux_dev $linux_ip/$PREFIX_LEN (Linux, tx offloads off)"
else
  say "  namespace:  $linux_ns"
  say "  $linux_ns: $linux_dev, a TAP: kernel side $linux_ip/$PREFIX_LEN (Linux), engine side attaches"
fi
((loss_per_10k > 0)) && say "  loss:       $loss % of TCP frames each way on $linux_dev (nft table netdev lab_loss)"
say "  engine:     $engine_ip/$PREFIX_LEN (give it with --ip)"
if [[ $engine == client ]]; then
  say "  nginx:      http://$SERVER_IP/ ($body_size-byte body), pid $(<"$state/nginx.pid"), log $state/access.log"
  say "run:"
  say "  ip netns exec $engine_ns $bin load http --port $port_spec --cores 1 --ip $engine_ip/$PREFIX_LEN --target $SERVER_IP:$HTTP_PORT --connections 100 --duration 10s"
else
  say "run:"
  say "  ip netns exec $engine_ns $bin serve http --port $port_spec --cores 1 --ip $engine_ip/$PREFIX_LEN --duration 60s &"
  say "  ip netns exec $linux_ns curl http://$SERVER_IP/"
fi
say "  deploy/lab.sh down --prefix $prefix"
