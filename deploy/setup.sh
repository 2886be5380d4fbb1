#!/usr/bin/env bash
# Host setup for wirespeed's DPDK port: packages, 2 MiB hugepages and the
# binding of a named NIC to a user-space driver, and the way back.
#
#   deploy/setup.sh [--dry-run] [--packages] [--hugepages N]
#                   [--bind PCI_ADDR]... [--driver vfio-pci|uio_pci_generic] [--force]
#   deploy/setup.sh [--dry-run] --release
#
# --packages     installs the missing Debian packages DPDK needs to build and
#                run the engine and to bind NICs (dpdk dpdk-dev libdpdk-dev
#                pkg-config clang libclang-dev kmod pciutils). Nothing is
#                installed without it.
# --hugepages N  makes the pool of 2 MiB hugepages at least N pages (a larger
#                pool is left as it is) and mounts hugetlbfs at /dev/hugepages
#                when nothing is mounted there.
# --bind ADDR    loads the driver's module and binds the PCI device ADDR
#                (DDDD:BB:DD.F or BB:DD.F) to it with dpdk-devbind.py. Only
#                named devices are bound, one per --bind. The device behind
#                eth0 is refused always; a device with an interface that is up
#                or carries a default route is refused unless --force.
# --driver NAME  the driver for --bind: vfio-pci (default) or uio_pci_generic.
# --force        binds a device even though one of its interfaces is active.
# --release      undoes what earlier runs recorded: the hugepage count goes
#                back to what it was before them (unless someone else has
#                changed it since), the hugetlbfs mount they made is removed,
#                and each device they bound returns to its former driver.
# --dry-run      prints every command a real run would run and changes
#                nothing; needs no root.
#
# Every run is idempotent: what is already in place is left alone. Records
# live in $WIRESPEED_SETUP_STATE (default /run/wirespeed-setup, gone at
# reboot with the reservations themselves). Exit status: 0 done, 1 refused
# or failed, 2 bad usage.
set -euo pipefail

readonly HP_DIR=/sys/kernel/mm/hugepages/hugepages-2048kB
readonly HP_MOUNT=/dev/hugepages
readonly PACKAGES=(dpdk dpdk-dev libdpdk-dev pkg-config clang libclang-dev kmod pciutils)
readonly DRIVERS="vfio-pci, uio_pci_generic"
readonly FLAGS="--dry-run, --packages, --hugepages, --bind, --driver, --force, --release"
state=${WIRESPEED_SETUP_STATE:-/run/wirespeed-setup}

usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d' >&2; }
die_usage() {
  echo "setup.sh: $*" >&2
  usage
  exit 2
}
die() {
  echo "setup.sh: $*" >&2
  exit 1
}
warn() { echo "setup.sh: warning: $*" >&2; }
say() { printf '%s\n' "$*"; }

# --- arguments ---------------------------------------------------------------

dry=0
packages=0
hugepages=
binds=()
driver=
force=0
release=0

# Full, lower-case PCI address (DDDD:BB:DD.F) of $1, or nothing.
pci_normalize() {
  local a=${1,,}
  [[ $a =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] && a=0000:$a
  [[ $a =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] && printf '%s' "$a"
  return 0
}

(($#)) || die_usage "nothing to do (accepted: $FLAGS)"
while (($#)); do
  case $1 in
    --dry-run) dry=1 ;;
    --packages) packages=1 ;;
    --force) force=1 ;;
    --release) release=1 ;;
    -h | --help) usage; exit 0 ;;
    --hugepages | --bind | --driver)
      (($# >= 2)) || die_usage "$1: missing value"
      case $1 in
        --hugepages)
          [[ $2 =~ ^[0-9]{1,7}$ ]] && ((10#$2 >= 1 && 10#$2 <= 1048576)) ||
            die_usage "--hugepages '$2': accepted 1 to 1048576 pages of 2 MiB"
          hugepages=$((10#$2))
          ;;
        --bind)
          addr=$(pci_normalize "$2")
          [[ -n $addr ]] ||
            die_usage "--bind '$2': accepted one PCI address, DDDD:BB:DD.F or BB:DD.F (interface names, wildcards and 'all' are refused: name each device)"
          binds+=("$addr")
          ;;
        --driver)
          [[ $2 == vfio-pci || $2 == uio_pci_generic ]] ||
            die_usage "--driver '$2': accepted $DRIVERS"
          driver=$2
          ;;
      esac
      shift
      ;;
    *) die_usage "unknown flag '$1' (accepted: $FLAGS)" ;;
  esac
  shift
done

if ((release)); then
  [[ $packages == 0 && -z $hugepages && ${#binds[@]} == 0 && -z $driver && $force == 0 ]] ||
    die_usage "--release takes only --dry-run"
else
  [[ -n $driver && ${#binds[@]} == 0 ]] &&
    die_usage "--driver names no device: give --bind PCI_ADDR for each device to bind"
  ((force && ${#binds[@]} == 0)) && die_usage "--force applies to --bind only"
  ((packages || ${#binds[@]})) || [[ -n $hugepages ]] ||
    die_usage "nothing to do (accepted: $FLAGS)"
fi
driver=${driver:-vfio-pci}

# --- doing, or printing -----------------------------------------------------

# Runs a command, printed first; in a dry run only prints it.
run() {
  local q=() a
  for a in "$@"; do q+=("$(printf '%q' "$a")"); done
  say "+ ${q[*]}"
  ((dry)) || "$@"
}

# Writes $1 into the file $2 (sysfs), printed as the shell line that would.
write() {
  say "+ echo $1 > $2"
  ((dry)) || echo "$1" >"$2"
}

# Records (real runs only): key files under $state.
record() {
  ((dry)) && return 0
  mkdir -p "$(dirname "$state/$1")"
  printf '%s\n' "$2" >"$state/$1"
}
forget() { ((dry)) || rm -f "$state/$1"; }

if ((!dry)); then
  [[ $(id -u) -eq 0 ]] || die "needs root (or --dry-run)"
  mkdir -p "$state"
  # One run at a time: the records are read, then rewritten.
  exec {lock}>"$state/lock"
  flock -w 30 "$lock" || die "another setup.sh holds $state/lock"
fi

# --- facts about the host ------------------------------------------------

# PCI address of the device behind network interface $1 (nothing when the
# interface is virtual): the last PCI address on its sysfs device path, so
# virtio and devices behind bridges resolve to the function itself.
pci_of_netdev() {
  local path part found=
  path=$(readlink -f "/sys/class/net/$1/device" 2>/dev/null) || return 0
  local IFS=/
  for part in $path; do
    [[ $part =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] && found=$part
  done
  printf '%s' "$found"
}

# Network interfaces on PCI device $1.
netdevs_of_pci() {
  local n
  for n in /sys/class/net/*; do
    [[ -e $n ]] || continue
    [[ $(pci_of_netdev "${n##*/}") == "$1" ]] && printf '%s\n' "${n##*/}"
  done
  return 0
}

# Interfaces that carry a default route (IPv4 or IPv6).
default_route_devs() {
  command -v ip >/dev/null || return 0
  { ip -4 route show default; ip -6 route show default; } 2>/dev/null |
    sed -n 's/.* dev \([^ ]*\).*/\1/p' | sort -u
}

hugetlbfs_mounted() {
  awk -v m="$HP_MOUNT" '$2 == m && $3 == "hugetlbfs" { found = 1 } END { exit !found }' /proc/mounts
}

# --- release -------------------------------------------------------------

if ((release)); then
  ((dry)) && say "dry run: nothing is changed; a real run would run:"
  did=0
  if [[ -f $state/hugepages ]]; then
    did=1
    read -r prev mine <"$state/hugepages" || die "unreadable record $state/hugepages"
    cur=$(<"$HP_DIR/nr_hugepages")
    if ((cur == mine)); then
      say "2 MiB hugepages: $cur reserved, giving back to $prev"
      write "$prev" "$HP_DIR/nr_hugepages"
    else
      warn "2 MiB hugepages: $cur reserved now, not the $mine this script set; someone else changed the pool, so it is left as it is"
    fi
    forget hugepages
  fi
  if [[ -f $state/mounted ]]; then
    did=1
    if ! hugetlbfs_mounted; then
      forget mounted
    elif run umount "$HP_MOUNT"; then
      [[ $(<"$state/mounted") == made ]] && run rmdir "$HP_MOUNT"
      forget mounted
    else
      # Kept on record, so a later --release tries again.
      warn "$HP_MOUNT is busy; left mounted"
    fi
  fi
  if [[ -d $state/bind ]]; then
    for rec in "$state"/bind/*; do
      [[ -f $rec ]] || continue
      did=1
      addr=${rec##*/}
      orig=$(<"$rec")
      if [[ $orig == none ]]; then
        run dpdk-devbind.py -u "$addr"
      else
        run dpdk-devbind.py --bind="$orig" "$addr"
      fi
      forget "bind/$addr"
    done
  fi
  ((did)) || say "nothing recorded to release"
  exit 0
fi

# --- refusals first: nothing changes before every device is accepted -------

eth0_pci=$(pci_of_netdev eth0)
mapfile -t default_devs < <(default_route_devs)
for addr in "${binds[@]}"; do
  if [[ -n $eth0_pci && $addr == "$eth0_pci" ]]; then
    die "refused: $addr is eth0's device; it is never bound, --force or not"
  fi
  dev=/sys/bus/pci/devices/$addr
  if [[ ! -e $dev ]]; then
    ((dry)) || die "no PCI device $addr on this host"
    say "note: no PCI device $addr on this host; the plan assumes it"
    continue
  fi
  mapfile -t nets < <(netdevs_of_pci "$addr")
  for n in "${nets[@]}"; do
    [[ $n == eth0 ]] && die "refused: $addr carries eth0; it is never bound, --force or not"
    why=
    for d in "${default_devs[@]}"; do
      [[ $d == "$n" ]] && why="carries the default route"
    done
    flags=$(<"/sys/class/net/$n/flags")
    [[ -z $why ]] && ((flags & 1)) && why="is up"
    if [[ -n $why ]]; then
      ((force)) || die "refused: $addr has interface $n, which $why; bring it down first, or pass --force"
      warn "$addr: interface $n $why; binding anyway (--force)"
    fi
  done
done

((dry)) && say "dry run: nothing is changed; a real run would run:"

# --- packages -----------------------------------------------------------

if ((packages)); then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -qq
    run apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    say "packages: all installed (${PACKAGES[*]})"
  fi
fi

# --- hugepages ------------------------------------------------------------

if [[ -n $hugepages ]]; then
  [[ -d $HP_DIR ]] || die "this kernel offers no 2 MiB hugepages ($HP_DIR)"
  cur=$(<"$HP_DIR/nr_hugepages")
  if ((cur >= hugepages)); then
    say "2 MiB hugepages: $cur reserved, at least $hugepages wanted; nothing to do"
  else
    # The count before the first reservation is the one --release restores.
    prev=$cur
    if [[ -f $state/hugepages ]]; then
      read -r prev _ <"$state/hugepages" || prev=$cur
    fi
    write "$hugepages" "$HP_DIR/nr_hugepages"
    if ((!dry)); then
      got=$(<"$HP_DIR/nr_hugepages")
      if ((got < hugepages)); then
        # Fragmented memory: the kernel finds fewer free 2 MiB blocks.
        echo "$cur" >"$HP_DIR/nr_hugepages"
        die "the kernel reserved only $got of $hugepages 2 MiB hugepages (memory fragmented?); left at $cur"
      fi
      record hugepages "$prev $hugepages"
    fi
  fi
  if hugetlbfs_mounted; then
    say "hugetlbfs: mounted at $HP_MOUNT"
  else
    if [[ -e $HP_MOUNT ]] && awk -v m="$HP_MOUNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; then
      die "$HP_MOUNT holds a mount that is not hugetlbfs"
    fi
    made=kept
    if [[ ! -d $HP_MOUNT ]]; then
      run mkdir "$HP_MOUNT"
      made=made
    fi
    run mount -t hugetlbfs -o pagesize=2M nodev "$HP_MOUNT"
    # Whether the mount point was made here, so --release removes it too.
    record mounted "$made"
  fi
fi

# --- binding ---------------------------------------------------------------

if ((${#binds[@]})); then
  if ((!dry)); then
    for t in modprobe lspci dpdk-devbind.py; do
      command -v "$t" >/dev/null || die "$t is missing (deploy/setup.sh --packages installs it)"
    done
  fi
  loaded=0
  for addr in "${binds[@]}"; do
    dev=/sys/bus/pci/devices/$addr
    cur_driver=none
    [[ -e $dev/driver ]] && cur_driver=$(basename "$(readlink -f "$dev/driver")")
    if [[ $cur_driver == "$driver" ]]; then
      say "$addr: bound to $driver already; nothing to do"
      continue
    fi
    if ((!loaded)); then
      run modprobe "$driver"
      loaded=1
      if [[ $driver == vfio-pci ]] && [[ -z $(ls -A /sys/kernel/iommu_groups 2>/dev/null) ]]; then
        warn "no IOMMU groups: vfio-pci binds only in no-IOMMU mode (echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode), or boot with the IOMMU on (intel_iommu=on / amd_iommu=on)"
      fi
    fi
    # The driver before the first binding is the one --release restores.
    [[ -f $state/bind/$addr ]] || record "bind/$addr" "$cur_driver"
    args=(--bind="$driver")
    ((force)) && args+=(--force)
    run dpdk-devbind.py "${args[@]}" "$addr"
  done
fi
