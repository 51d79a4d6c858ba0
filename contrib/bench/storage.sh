#!/bin/bash
# storage.sh - issue 7, acceptance 6: lxctl against Incus on the same pool types, side by
# side in one run, alternating the peers per repetition (odd: lxctl first), medians:
#   launch_btrfs        launch IMG NAME --storage <btrfs pool>          -> RUNNING
#                       (checked after it returns: `list` for lxctl, the API through
#                       curl for Incus; the check's time counts); launch_return_btrfs:
#                       the same launches until they returned (the check not counted)
#   clones20_btrfs      20 launches from one image on a fresh btrfs pool: the sum of
#                       their times, and the pool's used bytes (df of its mount, after
#                       sync) before and after: must stay flat (clones, not copies)
#   snapshot_btrfs      `snapshot create INST SNAP` of a RUNNING instance, the snapshot
#                       deleted between repetitions (outside the timing), each checked
#                       in `snapshot list` (for the peers whose CLI has the command)
#   snapshot_zfs        the same on zfs, for each peer that has a zfs pool
#   vsnapshot_btrfs     `storage volume snapshot create` of a custom volume holding
#                       64 MiB (both peers have it)
#   launch_zfs          the same on zfs, for each peer that has a zfs driver that
#                       drives zfs-fuse here (else the reason is printed)
# then prints lxctl/incus ratios against the targets (launch <= 0.35x on btrfs,
# snapshot create <= 0.8x).
#
# Each peer gets btrfs pools of its own on loop files it makes itself (`storage create
# NAME btrfs size=$LXB_POOL_SIZE`): lxb-st-btrfs, lxb-st-clones (lxctl), pe-st-btrfs,
# pe-st-clones (Incus). The whole run holds `flock $LXB_LOCK`; Incus is brought up with
# ../shared/bench/peer-daemon.sh when it is not running (and down at the end); a trap
# removes everything named lxb-st-* / pe-st-* on any exit.
#
# Knobs: LXB_LXCTL, LXB_LXCTLD, LXB_DIR (/tmp/lxb-st), LXB_WORK (/tmp/lxb-st-work),
# LXB_LOG, LXB_PEER (auto | incus | none), LXB_SHARED, LXB_LOCK, LXB_POOL_SIZE (3GiB),
# R_LAUNCH (7), R_SNAP (7), N_CLONES (20), LXB_INCUS_FRESH (1), LXB_ONLY (the workloads
# to run, space-separated among launch_btrfs launch_zfs clones snapshots; default all).
set -u
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
LOCK=${LXB_LOCK:-/work/brief/incus.lock}
if [ -z "${LXB_LOCKED:-}" ]; then
  if ! flock -n "$LOCK" true 2>/dev/null; then echo "# waiting for $LOCK (someone else is benching Incus)"; fi
  LXB_LOCKED=1 exec flock "$LOCK" "$0" "$@"
fi

REPO=$(cd "$HERE/../.." && pwd)
LXCTL=${LXB_LXCTL:-$REPO/.venv/bin/lxctl}
LXCTLD=${LXB_LXCTLD:-$REPO/.venv/bin/lxctld}
LXB_DIR=${LXB_DIR:-/tmp/lxb-st}
WORK=${LXB_WORK:-/tmp/lxb-st-work}
SHARED=${LXB_SHARED:-$(realpath -m "$HERE/../../../shared/bench")}
PEER_MODE=${LXB_PEER:-auto}
R_LAUNCH=${R_LAUNCH:-7}
R_SNAP=${R_SNAP:-7}
N_CLONES=${N_CLONES:-20}
ONLY=${LXB_ONLY:-launch_btrfs launch_zfs clones snapshots}
wants() { [[ " $ONLY " == *" $1 "* ]]; }
INCUS_SOCK=/var/lib/incus/unix.socket
POOL_SIZE=${LXB_POOL_SIZE:-3GiB}
export LXCTL_DIR=$LXB_DIR

mkdir -p "$WORK"
LOG=${LXB_LOG:-$WORK/storage.log}
: > "$LOG"
IMAGE_TAR=$WORK/lxb-busybox.tar.gz

# shellcheck source=contrib/bench/lib.sh
. "$HERE/lib.sh"

lx_names()  { lx  list --format csv -c ns 2>/dev/null | awk -F, -v p="$1" -v s="${2:-}" 'index($1,p)==1 && (s=="" || $2==s){print $1}'; }
inc_names() { inc list --format csv -c ns 2>/dev/null | awk -F, -v p="$1" -v s="${2:-}" 'index($1,p)==1 && (s=="" || $2==s){print $1}'; }
cli_of()    { [ "$1" = lxctl ] && echo lx || echo inc; }
prefix_of() { [ "$1" = lxctl ] && echo lxb-st- || echo pe-st-; }
pool_of()   { echo "$(prefix_of "$1")${2:-btrfs}"; }   # PEER [DRIVER]
alias_of()  { echo "$(prefix_of "$1")busybox"; }
# launch_running PEER NAME POOL: sets LAST to seconds from the call to RUNNING, checked
# after the launch returns (lxctl: `list`, a client start; Incus: its API through curl)
# and counted in LAST, and LAST_RETURN to seconds until the launch returned (the check
# not counted; when the check did not find it RUNNING at once, the wait counts)
launch_running() {
  local peer=$1 n=$2 pool=$3 t0 tr t1 c at_once=1
  c=$(cli_of "$peer")
  t0=$EPOCHREALTIME
  "$c" launch -q "$(alias_of "$peer")" "$n" --storage "$pool" >> "$LOG" 2>&1 || { log "$peer launch $n on $pool failed"; return 1; }
  tr=$EPOCHREALTIME
  if [ "$peer" = lxctl ]; then
    lx_is_running "$n" || { at_once=0; note "  WARNING: lxctl launch $n returned before RUNNING"; lx_wait_running "$n" || return 1; }
  else
    [ "$(inc_state "$n")" = Running ] || { at_once=0; inc_wait_running "$n" || return 1; }
  fi
  t1=$EPOCHREALTIME
  LAST=$(elapsed "$t0" "$t1")
  if [ "$at_once" = 1 ]; then LAST_RETURN=$(elapsed "$t0" "$tr"); else LAST_RETURN=$LAST; fi
  log "$peer launch $n on $pool: returned after $LAST_RETURN s, RUNNING checked after $LAST s"
}

mount_of() {   # PEER POOL: where the pool's filesystem is mounted
  if [ "$1" = lxctl ]; then echo "$LXB_DIR/storage-pools/$2"; else echo "/var/lib/incus/storage-pools/$2"; fi
}
used_bytes() { sync; btrfs filesystem sync "$1" >/dev/null 2>&1; df -B1 --output=used "$1" | tail -1 | tr -d ' '; }
has_instance_snapshots() { "$(cli_of "$1")" snapshot create --help >/dev/null 2>&1; }

# ------------------------------------------------------------------ cleanup
STARTED_LXCTLD=0; LXCTLD_PID=""; STARTED_INCUS=0; INCUS_USED=0; CLEANED=0
remove_own() {   # PEER: this script's instances, volumes, image and pools
  local c pre left p; c=$(cli_of "$1"); pre=$(prefix_of "$1")
  left=$("${c}_names" "$pre")
  # shellcheck disable=SC2086  # word splitting of names is intended
  [ -n "$left" ] && "$c" delete --force $left >> "$LOG" 2>&1
  "$c" image delete "$(alias_of "$1")" >> "$LOG" 2>&1
  for p in btrfs clones zfs; do
    "$c" storage volume delete "$pre$p" "${pre}vol" >> "$LOG" 2>&1
    "$c" storage delete "$pre$p" >> "$LOG" 2>&1
  done
}
cleanup() {
  [ "$CLEANED" = 1 ] && return; CLEANED=1
  trap - INT TERM
  log "cleanup"
  if [ -S "$LXB_DIR/unix.socket" ]; then remove_own lxctl; fi
  if [ "$STARTED_LXCTLD" = 1 ]; then
    lx admin shutdown >> "$LOG" 2>&1
    for _ in $(seq 100); do kill -0 "$LXCTLD_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$LXCTLD_PID" 2>/dev/null; then note "lxctld $LXCTLD_PID still alive after shutdown, sending TERM"; kill "$LXCTLD_PID"; fi
    # pools left mounted (a delete that failed): their loop devices go with the unmount
    awk -v d="$LXB_DIR/" 'index($2,d)==1{print $2}' /proc/mounts | sort -r | while read -r m; do
      note "unmounting leftover $m"; umount "$m" >> "$LOG" 2>&1 || umount -l "$m"
    done
    rm -rf --one-file-system "$LXB_DIR"
  fi
  if [ "$INCUS_USED" = 1 ]; then
    remove_own incus
    if [ "$STARTED_INCUS" = 1 ]; then
      bash "$SHARED/peer-daemon.sh" down incus >> "$LOG" 2>&1 || note "peer-daemon.sh down incus failed, see $LOG"
    fi
  fi
  # the zfs-fuse daemon this run's lxctld started (the zfs driver leaves it running; it
  # has our LXCTL_DIR in its environment), once no zpool is left on it
  local pid
  for pid in $(pidof zfs-fuse 2>/dev/null); do
    tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "LXCTL_DIR=$LXB_DIR" || continue
    if [ -n "$(zpool list -H -o name 2>/dev/null)" ]; then note "zfs-fuse $pid left running: zpools of others are on it"; continue; fi
    log "stopping zfs-fuse $pid (started by this run's lxctld, no zpool left)"; kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -f "$IMAGE_TAR"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ setup
[ "$(id -u)" = 0 ] || die "run as root"
{ [ -x "$LXCTL" ] && [ -x "$LXCTLD" ]; } || die "lxctl not installed at $LXCTL (run contrib/setup.sh)"
note "storage.sh: $(date -u +%FT%TZ), host $(uname -r), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg), background cpu busy $(cpu_busy_pct 2) %, holding $LOCK"
bash "$SHARED/build-busybox-image.sh" "$IMAGE_TAR" >> "$LOG" 2>&1 || die "image build failed"

start_peers

declare -A ZFS_OK ZFS_WHY
for p in "${PEERS[@]}"; do
  remove_own "$p"
  c=$(cli_of "$p"); pre=$(prefix_of "$p")
  "$c" image import "$IMAGE_TAR" --alias "$(alias_of "$p")" >> "$LOG" 2>&1 || die "$p image import failed, see $LOG"
  for pool in btrfs clones; do
    "$c" storage create "$pre$pool" btrfs size="$POOL_SIZE" >> "$LOG" 2>&1 || die "$p: storage create $pre$pool btrfs failed, see $LOG"
  done
  if out=$("$c" storage create "${pre}zfs" zfs size=1GiB 2>&1); then ZFS_OK[$p]=1
  else ZFS_OK[$p]=0; ZFS_WHY[$p]=$(echo "$out" | tail -1); note "$p: no zfs pool: ${ZFS_WHY[$p]}"; fi
  echo "$out" >> "$LOG"
done
note "btrfs pools on loop files of each peer's own ($POOL_SIZE): $(for p in "${PEERS[@]}"; do printf '%s ' "$(pool_of "$p")"; done)"
alive "setup"

# ------------------------------------------------------------------ (a) launch -> RUNNING
declare -A S
launch_bench() {   # DRIVER
  local d=$1 i p n
  local -A SR
  for p in "${PEERS[@]}"; do S[$p]=""; SR[$p]=""; done
  for i in $(seq "$R_LAUNCH"); do
    for p in $(order "$i"); do
      [ "$d" = zfs ] && [ "${ZFS_OK[$p]}" != 1 ] && continue
      n=$(prefix_of "$p")c1
      if launch_running "$p" "$n" "$(pool_of "$p" "$d")"; then S[$p]+=" $LAST"; SR[$p]+=" $LAST_RETURN"
      else log "$p launch $d rep $i failed"; fi
      "$(cli_of "$p")" delete --force "$n" >> "$LOG" 2>&1 || log "$p delete --force $n failed"
    done
  done
  # shellcheck disable=SC2086
  for p in "${PEERS[@]}"; do stats "$p" "launch_$d" s ${S[$p]}; stats "$p" "launch_return_$d" s ${SR[$p]}; done
  alive "launch $d"
}
if wants launch_btrfs; then launch_bench btrfs; fi
if wants launch_zfs; then launch_bench zfs; fi

# ------------------------------------------------------------------ (b) N_CLONES launches, disk use
if wants clones; then
for p in "${PEERS[@]}"; do S[$p]=""; done
declare -A USED0 USED1
for p in "${PEERS[@]}"; do
  # one launch first so the image volume is on the pool: what follows must add ~nothing
  n=$(prefix_of "$p")k00; pool=$(pool_of "$p" clones)
  launch_running "$p" "$n" "$pool" || die "$p: first launch on $pool failed"
  USED0[$p]=$(used_bytes "$(mount_of "$p" "$pool")")
done
for i in $(seq "$N_CLONES"); do
  for p in $(order "$i"); do
    n=$(printf '%sk%02d' "$(prefix_of "$p")" "$i")
    if launch_running "$p" "$n" "$(pool_of "$p" clones)"; then S[$p]+=" $LAST"; fi
  done
done
for p in "${PEERS[@]}"; do
  USED1[$p]=$(used_bytes "$(mount_of "$p" "$(pool_of "$p" clones)")")
  # shellcheck disable=SC2086
  tot=$(printf '%s\n' ${S[$p]} | awk '{t+=$1} END{printf "%.3f", t}')
  cnt=$("$(cli_of "$p")_names" "$(prefix_of "$p")k" RUNNING | wc -l)
  delta=$(( ${USED1[$p]} - ${USED0[$p]} ))
  echo "$p clones${N_CLONES}_sum $tot s ($cnt running)"
  echo "$p clones${N_CLONES}_disk_delta $delta B (used ${USED0[$p]} -> ${USED1[$p]}; $(( delta / N_CLONES / 1024 )) KiB per instance)"
  # shellcheck disable=SC2086
  stats "$p" "launch_clone_btrfs" s ${S[$p]}
  RESULT[$p:clones_delta]=$delta
done
for p in "${PEERS[@]}"; do
  c=$(cli_of "$p")
  # shellcheck disable=SC2046
  "$c" delete --force $("${c}_names" "$(prefix_of "$p")k") >> "$LOG" 2>&1
done
alive "clones"
fi

# ------------------------------------------------------------------ (c) snapshot create
if wants snapshots; then
# snapshot_bench DRIVER: `snapshot create` of a running instance on each peer's DRIVER
# pool, R_SNAP times; after each (untimed) the snapshot must be in `snapshot list` and
# is deleted, so every repetition snapshots an instance that has none
is_running() { if [ "$1" = lxctl ]; then lx_is_running "$2"; else [ "$(inc_state "$2")" = Running ]; fi; }
snapshot_bench() {
  local d=$1 i p c n metric=snapshot_$1
  local -A CAN
  for p in "${PEERS[@]}"; do
    S[$p]=""; CAN[$p]=0; n=$(prefix_of "$p")s-$d
    if ! has_instance_snapshots "$p"; then note "$p: no $metric: no \`snapshot create\` in its CLI"
    elif [ "$d" = zfs ] && [ "${ZFS_OK[$p]}" != 1 ]; then note "$p: no $metric: no zfs pool (${ZFS_WHY[$p]})"
    elif launch_running "$p" "$n" "$(pool_of "$p" "$d")"; then CAN[$p]=1
    else note "$p: no $metric: launch of $n on $(pool_of "$p" "$d") failed, see $LOG"; fi
  done
  for i in $(seq "$R_SNAP"); do
    for p in $(order "$i"); do
      [ "${CAN[$p]}" = 1 ] || continue
      c=$(cli_of "$p"); n=$(prefix_of "$p")s-$d
      timeit "$c" snapshot create "$n" "snap$i" || { note "  $p: snapshot create $n snap$i failed: $(tail -1 "$LOG")"; continue; }
      if "$c" snapshot list "$n" 2>>"$LOG" | grep -qw "snap$i"; then S[$p]+=" $LAST"
      else note "  $p: snap$i of $n missing from \`snapshot list\` after its create: sample dropped"; fi
      "$c" snapshot delete "$n" "snap$i" >> "$LOG" 2>&1 || note "  $p: snapshot delete $n snap$i failed: $(tail -1 "$LOG")"
    done
  done
  for p in "${PEERS[@]}"; do
    [ "${CAN[$p]}" = 1 ] || { RESULT[$p:$metric]=NaN; continue; }
    n=$(prefix_of "$p")s-$d
    is_running "$p" "$n" || note "  WARNING: $p $n no longer runs after its snapshots"
    "$(cli_of "$p")" delete --force "$n" >> "$LOG" 2>&1 || log "$p delete --force $n failed"
    # shellcheck disable=SC2086
    stats "$p" "$metric" s ${S[$p]}
  done
}
snapshot_bench btrfs
snapshot_bench zfs
# custom volumes: both peers have volume snapshots
for p in "${PEERS[@]}"; do
  c=$(cli_of "$p"); pool=$(pool_of "$p"); v=$(prefix_of "$p")vol
  "$c" storage volume create "$pool" "$v" >> "$LOG" 2>&1 || die "$p: volume create failed"
  m=$(mount_of "$p" "$pool")/custom
  [ "$p" = incus ] && d=$m/default_$v || d=$m/$v/rootfs
  [ -d "$d" ] && head -c 64M /dev/urandom > "$d/data" || note "  $p: no volume directory at $d (volume empty)"
done
for p in "${PEERS[@]}"; do S[$p]=""; done
for i in $(seq "$R_SNAP"); do
  for p in $(order "$i"); do
    if timeit "$(cli_of "$p")" storage volume snapshot create "$(pool_of "$p")" "$(prefix_of "$p")vol" "vs$i"; then S[$p]+=" $LAST"; fi
  done
done
# shellcheck disable=SC2086
for p in "${PEERS[@]}"; do stats "$p" vsnapshot_btrfs s ${S[$p]}; done
alive "snapshots"
fi

# ------------------------------------------------------------------ ratio table
echo
if [ "${#PEERS[@]}" -lt 2 ]; then note "no Incus in this run: no ratios"; exit 0; fi
ratio_table <<EOF2
launch_btrfs 0.35
launch_return_btrfs -
launch_clone_btrfs 0.35
launch_zfs -
snapshot_btrfs 0.8
snapshot_zfs 0.8
vsnapshot_btrfs 0.8
clones_delta -
EOF2
echo "# units: s (clones_delta: bytes added to the pool by $N_CLONES launches after the first)"
