#!/bin/bash
# transfer.sh - issue 7, acceptance 2: `lxctl copy` of a stopped instance holding 200 MiB
# of random data between two pools of one driver, natively (btrfs send | receive, zfs
# send | recv) against the rsync path (`[storage] native_transfers = false` in
# lxctld.toml), medians and the ratio native/rsync:
#   copy_btrfs_native / copy_btrfs_rsync   lxctl copy lxb-tr-bc1 lxb-tr-bc2 --storage lxb-tr-b
#   copy_zfs_native   / copy_zfs_rsync     lxctl copy lxb-tr-zc1 lxb-tr-zc2 --storage lxb-tr-zb
#   (+ *_sync: the same plus a `sync -f` of the target pool, so that writes the copy
#    left dirty in the page cache are counted too)
#   incus copy_btrfs (reference, when Incus is there): incus copy pe-tr-bc1 pe-tr-bc2
#                    -s pe-tr-b between two Incus btrfs pools; Incus has no rsync switch
#
# One lxctld (LXCTL_DIR=$LXB_DIR) is restarted whenever the mode changes: the daemon reads
# native_transfers at start. The modes alternate per repetition in ABBA order (odd
# repetitions native first, even ones rsync first), so one restart per repetition;
# within a mode each driver copies once. After each copy, outside the timing: the log
# lines of the daemon's commands during it (log.level=debug) must show the transfer the
# mode asks for (btrfs/zfs send for native, rsync for rsync, never both), the copy is
# started and `sha256sum` of its 200 MiB file inside must match the source's, then the
# copy is deleted. Pools: btrfs lxb-tr-a, lxb-tr-b and zfs lxb-tr-za, lxb-tr-zb, each on a
# loop file the daemon makes ($LXB_POOL_SIZE); the zfs driver reuses or starts the
# machine's one zfs-fuse daemon (stopped at the end only if this run's lxctld started
# it and no zpool is left on it). The whole run holds
# `flock $LXB_LOCK`; a trap removes everything named lxb-tr-* / pe-tr-* on any exit.
#
# Knobs: LXB_LXCTL, LXB_LXCTLD, LXB_DIR (/tmp/lxb-tr), LXB_WORK (/tmp/lxb-tr-work),
# LXB_LOG, LXB_PEER (auto | incus | none: the Incus reference line), LXB_SHARED,
# LXB_LOCK, LXB_POOL_SIZE (2GiB), LXB_DATA_MIB (200), R_COPY (5), LXB_DRIVERS
# ("btrfs zfs"), LXB_DROP_CACHES (0; 1: drop the page cache before each copy, which
# also slows whatever else runs on the machine), LXB_INCUS_FRESH (1).
set -u
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
LOCK=${LXB_LOCK:-/work/brief/incus.lock}
if [ -z "${LXB_LOCKED:-}" ]; then
  if ! flock -n "$LOCK" true 2>/dev/null; then echo "# waiting for $LOCK (someone else is benching)"; fi
  LXB_LOCKED=1 exec flock "$LOCK" "$0" "$@"
fi

REPO=$(cd "$HERE/../.." && pwd)
LXCTL=${LXB_LXCTL:-$REPO/.venv/bin/lxctl}
LXCTLD=${LXB_LXCTLD:-$REPO/.venv/bin/lxctld}
PY=$REPO/.venv/bin/python
LXB_DIR=${LXB_DIR:-/tmp/lxb-tr}
WORK=${LXB_WORK:-/tmp/lxb-tr-work}
SHARED=${LXB_SHARED:-$(realpath -m "$HERE/../../../shared/bench")}
PEER_MODE=${LXB_PEER:-auto}
R_COPY=${R_COPY:-5}
POOL_SIZE=${LXB_POOL_SIZE:-2GiB}
DATA_MIB=${LXB_DATA_MIB:-200}
DRIVERS=${LXB_DRIVERS:-btrfs zfs}
DROP_CACHES=${LXB_DROP_CACHES:-0}
INCUS_SOCK=/var/lib/incus/unix.socket
export LXCTL_DIR=$LXB_DIR

mkdir -p "$WORK"
LOG=${LXB_LOG:-$WORK/transfer.log}
: > "$LOG"
IMAGE_TAR=$WORK/lxb-busybox.tar.gz
DLOG=$WORK/lxctld.log   # lib.sh's start_peers writes the daemon's output there
DATA=/lxb-data          # the file inside the instances

# shellcheck source=contrib/bench/lib.sh
. "$HERE/lib.sh"

L_ALIAS=lxb-tr-busybox; I_ALIAS=pe-tr-busybox
src_pool() { [ "$1" = zfs ] && echo lxb-tr-za || echo lxb-tr-a; }   # DRIVER
dst_pool() { [ "$1" = zfs ] && echo lxb-tr-zb || echo lxb-tr-b; }
src_inst() { [ "$1" = zfs ] && echo lxb-tr-zc1 || echo lxb-tr-bc1; }
dst_inst() { [ "$1" = zfs ] && echo lxb-tr-zc2 || echo lxb-tr-bc2; }
lx_names()  { lx  list --format csv -c n 2>/dev/null | grep '^lxb-tr-'; }
inc_names() { inc list --format csv -c n 2>/dev/null | grep '^pe-tr-'; }

# ------------------------------------------------------------------ the daemon and its mode
MODE=""
write_config() {   # native | rsync
  local v=true; [ "$1" = rsync ] && v=false
  printf '[log]\nlevel = "debug"\n\n[storage]\nnative_transfers = %s\n' "$v" > "$LXB_DIR/lxctld.toml"
}
lxctld_stop() {
  kill -TERM "$L_PID" 2>/dev/null
  for _ in $(seq 300); do kill -0 "$L_PID" 2>/dev/null || return 0; sleep 0.1; done
  die "lxctld $L_PID did not exit within 30 s of SIGTERM"
}
set_mode() {       # native | rsync: restart lxctld with that lxctld.toml unless it has it
  [ "$MODE" = "$1" ] && return 0
  [ "$STARTED_LXCTLD" = 1 ] || die "a daemon not started by this script serves $LXB_DIR: cannot restart it"
  lxctld_stop
  write_config "$1"
  setsid "$LXCTLD" >> "$DLOG" 2>&1 < /dev/null &
  LXCTLD_PID=$!; L_PID=$LXCTLD_PID
  if ! lx admin waitready --timeout 60 >> "$LOG" 2>&1; then
    tail -5 "$DLOG" | sed 's/^/#   lxctld: /'
    die "lxctld did not become ready with native_transfers=$([ "$1" = native ] && echo true || echo false), see $DLOG"
  fi
  MODE=$1; log "lxctld $L_PID up in mode $MODE"
}

# transfers_since OFFSET: the transfer tools in the daemon's command lines logged after
# byte OFFSET of $DLOG ("send", "rsync", both or none), from its JSON lines
# shellcheck disable=SC2016  # the Python program is in single quotes on purpose
transfers_since() {
  tail -c +"$(( $1 + 1 ))" "$DLOG" | "$PY" -c '
import json, re, sys
# btrfs send|receive, zfs send|receive|recv, as the argv or inside an `sh -c` script
native = re.compile(r"\b(btrfs|zfs) (send|receive|recv)\b")
seen = set()
for line in sys.stdin:
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    argv = rec.get("argv") if rec.get("event") in ("command", "service") else None
    if not isinstance(argv, list) or not argv:
        continue
    words = [str(a).rsplit("/", 1)[-1] if i == 0 else str(a) for i, a in enumerate(argv)]
    if words[0] == "rsync" or re.search(r"\brsync ", " ".join(words[1:3])):
        seen.add("rsync")
    elif native.search(" ".join(words[:3])):
        seen.add("send")
print(" ".join(sorted(seen)) or "none")'
}
dlog_size() { stat -c %s "$DLOG" 2>/dev/null || echo 0; }

# ------------------------------------------------------------------ cleanup
STARTED_LXCTLD=0; LXCTLD_PID=""; L_PID=""; STARTED_INCUS=0; INCUS_USED=0; CLEANED=0
remove_lxctl() {
  local left p
  left=$(lx_names)
  # shellcheck disable=SC2086  # word splitting of names is intended
  [ -n "$left" ] && lx delete --force $left >> "$LOG" 2>&1
  lx image delete "$L_ALIAS" >> "$LOG" 2>&1
  for p in lxb-tr-a lxb-tr-b lxb-tr-za lxb-tr-zb; do lx storage delete "$p" >> "$LOG" 2>&1; done
}
remove_incus() {
  local left p
  left=$(inc_names)
  # shellcheck disable=SC2086
  [ -n "$left" ] && inc delete --force $left >> "$LOG" 2>&1
  inc image delete "$I_ALIAS" >> "$LOG" 2>&1
  for p in pe-tr-a pe-tr-b pe-tr-za; do inc storage delete "$p" >> "$LOG" 2>&1; done
}
cleanup() {
  local z m pid
  [ "$CLEANED" = 1 ] && return; CLEANED=1
  trap - INT TERM
  log "cleanup"
  if [ -S "$LXB_DIR/unix.socket" ] && lx admin waitready --timeout 5 >> "$LOG" 2>&1; then remove_lxctl; fi
  if [ "$STARTED_LXCTLD" = 1 ]; then
    lx admin shutdown >> "$LOG" 2>&1
    for _ in $(seq 100); do kill -0 "$L_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$L_PID" 2>/dev/null; then note "lxctld $L_PID still alive after shutdown, sending TERM"; kill "$L_PID"; fi
    # zpools and mounts a failed delete left behind (their loop devices go with them)
    for z in $(zpool list -H -o name 2>/dev/null | grep '^lxb-tr-'); do
      note "destroying leftover zpool $z"; zpool destroy -f "$z" >> "$LOG" 2>&1
    done
    awk -v d="$LXB_DIR/" 'index($2,d)==1{print $2}' /proc/mounts | sort -r | while read -r m; do
      note "unmounting leftover $m"; umount "$m" >> "$LOG" 2>&1 || umount -l "$m"
    done
    losetup -a 2>/dev/null | grep -F "($LXB_DIR/" | cut -d: -f1 | while read -r m; do
      note "detaching leftover loop device $m"; losetup -d "$m"
    done
    rm -rf --one-file-system "$LXB_DIR"
  fi
  if [ "$INCUS_USED" = 1 ]; then
    remove_incus
    if [ "$STARTED_INCUS" = 1 ]; then
      bash "$SHARED/peer-daemon.sh" down incus >> "$LOG" 2>&1 || note "peer-daemon.sh down incus failed, see $LOG"
    fi
  fi
  # the zfs-fuse daemon this run's lxctld started (the zfs driver leaves it running: it
  # has our LXCTL_DIR in its environment), if no zpool is left on it
  for pid in $(pidof zfs-fuse 2>/dev/null); do
    tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "LXCTL_DIR=$LXB_DIR" || continue
    if [ -z "$(zpool list -H -o name 2>/dev/null)" ]; then
      log "stopping zfs-fuse $pid (started by this run's lxctld, no zpool left)"; kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    else
      note "zfs-fuse $pid (started by this run) left running: others' zpools are on it ($(zpool list -H -o name | tr '\n' ' '))"
    fi
  done
  rm -f "$IMAGE_TAR"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ setup
[ "$(id -u)" = 0 ] || die "run as root"
{ [ -x "$LXCTL" ] && [ -x "$LXCTLD" ]; } || die "lxctl not installed at $LXCTL (run contrib/setup.sh)"
note "transfer.sh: $(date -u +%FT%TZ), host $(uname -r), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg), background cpu busy $(cpu_busy_pct 2) %, holding $LOCK"
bash "$SHARED/build-busybox-image.sh" "$IMAGE_TAR" >> "$LOG" 2>&1 || die "image build failed"
[ -S "$LXB_DIR/unix.socket" ] && lx admin waitready --timeout 1 >> "$LOG" 2>&1 \
  && die "a daemon already serves $LXB_DIR: this script restarts its own, set LXB_DIR elsewhere"
mkdir -p "$LXB_DIR"; write_config native; MODE=native
: > "$DLOG"
start_peers
[ -n "${LXB_SETUP_ONLY:-}" ] || lx copy --help >/dev/null 2>&1 || die "this lxctl has no \`copy\` command (instance copy not landed)"

# fill NAME with DATA_MIB of random data (as a running instance), print its sha256, stop
fill_instance() {   # CLI NAME
  local c=$1 n=$2 sum
  "$c" exec "$n" -- dd if=/dev/urandom of=$DATA bs=1048576 count="$DATA_MIB" >> "$LOG" 2>&1 || return 1
  "$c" exec "$n" -- sync >> "$LOG" 2>&1
  sum=$("$c" exec "$n" -- sha256sum $DATA 2>>"$LOG" | awk '{print $1}')
  [ ${#sum} -eq 64 ] || return 1
  "$c" stop "$n" >> "$LOG" 2>&1 || return 1
  echo "$sum"
}
# check_copy CLI NAME SUM: the copy starts and holds the same data; then it is deleted
check_copy() {
  local c=$1 n=$2 want=$3 got
  "$c" start "$n" >> "$LOG" 2>&1 || { note "  $c start $n (the copy) failed"; "$c" delete --force "$n" >> "$LOG" 2>&1; return 1; }
  got=$("$c" exec "$n" -- sha256sum $DATA 2>>"$LOG" | awk '{print $1}')
  "$c" delete --force "$n" >> "$LOG" 2>&1 || log "$c delete --force $n failed"
  [ "$got" = "$want" ] || { note "  $n: sha256 of $DATA is '${got:-nothing}', the source's $want"; return 1; }
}

declare -A SUM
lx image import "$IMAGE_TAR" --alias "$L_ALIAS" >> "$LOG" 2>&1 || die "lxctl image import failed, see $LOG"
for d in $DRIVERS; do
  for pool in "$(src_pool "$d")" "$(dst_pool "$d")"; do
    out=$(lx storage create "$pool" "$d" size="$POOL_SIZE" 2>&1) \
      || die "lxctl storage create $pool $d size=$POOL_SIZE: $(echo "$out" | tail -1)"
    echo "$out" >> "$LOG"
  done
  n=$(src_inst "$d")
  lx launch -q "$L_ALIAS" "$n" --storage "$(src_pool "$d")" >> "$LOG" 2>&1 || die "lxctl launch $n on $(src_pool "$d") failed, see $LOG"
  SUM[lxctl:$d]=$(fill_instance lx "$n") || die "lxctl: writing $DATA_MIB MiB into $n failed, see $LOG"
  note "lxctl $d: $n on $(src_pool "$d") holds $DATA_MIB MiB of random data (sha256 ${SUM[lxctl:$d]:0:12}...), stopped; copies go to $(dst_pool "$d")"
done

HAVE_INCUS=0
if [ "${#PEERS[@]}" -gt 1 ]; then
  inc image import "$IMAGE_TAR" --alias "$I_ALIAS" >> "$LOG" 2>&1 || die "incus image import failed, see $LOG"
  if inc storage create pe-tr-a btrfs size="$POOL_SIZE" >> "$LOG" 2>&1 \
     && inc storage create pe-tr-b btrfs size="$POOL_SIZE" >> "$LOG" 2>&1 \
     && inc launch -q "$I_ALIAS" pe-tr-bc1 -s pe-tr-a >> "$LOG" 2>&1 \
     && SUM[incus:btrfs]=$(fill_instance inc pe-tr-bc1); then
    HAVE_INCUS=1; note "incus btrfs: pe-tr-bc1 on pe-tr-a holds $DATA_MIB MiB, stopped (reference: Incus's own copy to pe-tr-b)"
  else
    note "incus: btrfs reference not set up, see $LOG"
  fi
  if [[ " $DRIVERS " == *" zfs "* ]]; then
    if out=$(inc storage create pe-tr-za zfs size=1GiB 2>&1); then inc storage delete pe-tr-za >> "$LOG" 2>&1; z="(it could: not measured)"
    else z=$(echo "$out" | tail -1); fi
    note "incus: no zfs reference: $z"
  fi
fi
alive "setup"
[ -n "${LXB_SETUP_ONLY:-}" ] && { note "LXB_SETUP_ONLY: stopping after the set-up"; exit 0; }

# ------------------------------------------------------------------ copies
declare -A S SS
drop_caches() { [ "$DROP_CACHES" = 1 ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }; }
lx_copy_once() {   # DRIVER MODE REP
  local d=$1 m=$2 i=$3 src dst pool off t0 seen out
  src=$(src_inst "$d"); dst=$(dst_inst "$d"); pool=$(dst_pool "$d")
  sync; drop_caches
  off=$(dlog_size)
  t0=$EPOCHREALTIME
  if ! out=$(lx copy "$src" "$dst" --storage "$pool" 2>&1); then
    echo "$out" >> "$LOG"
    note "  rep $i: lxctl copy $src $dst --storage $pool ($m) failed: $(echo "$out" | tail -1)"
    lx delete --force "$dst" >> "$LOG" 2>&1; return 1
  fi
  LAST=$(elapsed "$t0" "$EPOCHREALTIME")
  echo "$out" >> "$LOG"
  sync -f "$LXB_DIR/storage-pools/$pool" 2>/dev/null || sync
  local with_sync; with_sync=$(elapsed "$t0" "$EPOCHREALTIME")
  sleep 0.2   # the daemon's last log lines
  seen=$(transfers_since "$off")
  log "rep $i $d $m: copy $LAST s, with sync $with_sync s, transfers seen: $seen"
  local want=send; [ "$m" = rsync ] && want=rsync
  if [ "$seen" != "$want" ]; then
    note "  rep $i: $d copy in mode $m ran '$seen' (expected '$want' only): sample dropped"
    lx delete --force "$dst" >> "$LOG" 2>&1; return 1
  fi
  check_copy lx "$dst" "${SUM[lxctl:$d]}" || { note "  rep $i: $d $m copy failed its check: sample dropped"; return 1; }
  S[$d:$m]+=" $LAST"; SS[$d:$m]+=" $with_sync"
}
inc_copy_once() {  # REP
  local i=$1 t0 out
  sync; drop_caches
  t0=$EPOCHREALTIME
  if ! out=$(inc copy pe-tr-bc1 pe-tr-bc2 -s pe-tr-b 2>&1); then
    echo "$out" >> "$LOG"
    note "  rep $i: incus copy failed: $(echo "$out" | tr '\r' '\n' | tail -1)"; inc delete --force pe-tr-bc2 >> "$LOG" 2>&1; return 1
  fi
  LAST=$(elapsed "$t0" "$EPOCHREALTIME")
  echo "$out" | tr '\r' '\n' | grep -v '^ *$' | tail -1 >> "$LOG"   # its progress lines: the last
  sync -f /var/lib/incus/storage-pools/pe-tr-b 2>/dev/null || sync
  local with_sync; with_sync=$(elapsed "$t0" "$EPOCHREALTIME")
  check_copy inc pe-tr-bc2 "${SUM[incus:btrfs]}" || { note "  rep $i: incus copy failed its check"; return 1; }
  S[incus]+=" $LAST"; SS[incus]+=" $with_sync"
}

note "$R_COPY repetitions; modes in ABBA order (lxctld restarted when the mode changes)"
for i in $(seq "$R_COPY"); do
  if [ $(( i % 2 )) -eq 1 ]; then modes="native rsync"; else modes="rsync native"; fi
  [ "$HAVE_INCUS" = 1 ] && [ $(( i % 2 )) -eq 1 ] && inc_copy_once "$i"
  for m in $modes; do
    set_mode "$m"
    for d in $DRIVERS; do lx_copy_once "$d" "$m" "$i"; done
  done
  [ "$HAVE_INCUS" = 1 ] && [ $(( i % 2 )) -eq 0 ] && inc_copy_once "$i"
  alive "rep $i"
done

# ------------------------------------------------------------------ results
echo
# shellcheck disable=SC2086  # the sample lists split into arguments
for d in $DRIVERS; do
  for m in native rsync; do
    stats lxctl "copy_${d}_$m" s ${S[$d:$m]:-}
    stats lxctl "copy_${d}_${m}_sync" s ${SS[$d:$m]:-}
  done
done
if [ "$HAVE_INCUS" = 1 ]; then
  # shellcheck disable=SC2086
  stats incus copy_btrfs s ${S[incus]:-}
  # shellcheck disable=SC2086
  stats incus copy_btrfs_sync s ${SS[incus]:-}
fi
echo
note "ratio = native / rsync ($DATA_MIB MiB instance, medians; < 1: send/receive is faster)"
{
  echo "driver native rsync ratio native+sync rsync+sync ratio+sync"
  for d in $DRIVERS; do
    awk -v d="$d" -v a="${RESULT[lxctl:copy_${d}_native]}" -v b="${RESULT[lxctl:copy_${d}_rsync]}" \
        -v c="${RESULT[lxctl:copy_${d}_native_sync]}" -v e="${RESULT[lxctl:copy_${d}_rsync_sync]}" 'BEGIN{
      r1 = (a=="NaN" || b=="NaN" || b+0==0) ? "n/a" : sprintf("%.3f", a/b)
      r2 = (c=="NaN" || e=="NaN" || e+0==0) ? "n/a" : sprintf("%.3f", c/e)
      printf "%s %s %s %s %s %s %s\n", d, a, b, r1, c, e, r2 }'
  done
} | column -t
if [ "$HAVE_INCUS" = 1 ]; then
  note "reference: incus copy between its two btrfs pools ${RESULT[incus:copy_btrfs]} s (with sync ${RESULT[incus:copy_btrfs_sync]} s);" \
       "lxctl native/incus $(awk -v a="${RESULT[lxctl:copy_btrfs_native]}" -v b="${RESULT[incus:copy_btrfs]}" 'BEGIN{print (a=="NaN"||b=="NaN"||b+0==0) ? "n/a" : sprintf("%.3f", a/b)}')"
fi
echo "# units: s"
