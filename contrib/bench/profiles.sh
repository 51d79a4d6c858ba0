#!/bin/bash
# profiles.sh - launch with 3 profiles + 5 devices, and `list` with 100 instances
# that each have 3 profiles: lxctl against Incus, side by side, in one run.
#
# Usage:  contrib/bench/profiles.sh        (as root; see README.md here)
#
# On each peer it creates the same three profiles, named <prefix>pr-pa/pb/pc
# (lxctl prefix lxb-, Incus prefix pe-):
#   pa  limits.cpu=1, limits.memory=256MiB; unix-char /dev/zero at /dev/lxb-zero
#   pb  user.bench.owner, user.bench.role, limits.processes=500;
#       unix-char /dev/null at /dev/lxb-null
#   pc  disk d1 and d2 (read-only binds of host dirs under $LXB_WORK/share);
#       unix-char /dev/urandom at /dev/lxb-urandom
#   pc1 disk d1 only (for the "split" launch: 3 devices from profiles, 2 on the instance)
# and measures, alternating the peers per repetition (odd: lxctl first, even:
# Incus first), medians of:
#   launch_plain     launch IMG NAME --storage POOL                     -> RUNNING
#   launch_p3d5      launch ... -p default -p pa -p pb -p pc            -> RUNNING
#                    (the 5 devices come from the profiles)
#   launch_p3d5_split init ... -p default -p pa -p pb -p pc1, then
#                    `config device add` d2 and urandom on the instance, then
#                    start                                              -> RUNNING
#                    (4 client calls: 3 devices from profiles, 2 on the instance)
#   list_table_N_stopped / list_csv_N_stopped
#                    `list` / `list --format csv` with N instances (init with
#                    -p default -p pa -p pb -p pc, so 5 devices each), all stopped
#   list_table_N_running / list_csv_N_running
#                    the same after `start` of all N (LXB_LIST_RUNNING=0 skips)
# then prints lxctl/incus ratios against the issue's targets.
#
# The whole run holds `flock $LXB_LOCK` (/work/brief/incus.lock) so that two
# engineers do not bench Incus at once. Incus is brought up with
# peer-daemon.sh (and down again at the end) when it is not running, as bench.sh
# does. Everything created is named lxb-pr-* (lxctl) or pe-pr-* (Incus); a trap
# cleans up on any exit, also when this script did not start the daemons (then
# only its own objects are removed).
#
# Knobs: LXB_LXCTL, LXB_LXCTLD, LXB_DIR (/tmp/lxb-prof), LXB_WORK (/tmp/lxb-prof-work),
# LXB_LOG, LXB_PEER (auto | incus | none), LXB_SHARED, LXB_LOCK, R_LAUNCH (7),
# R_LIST (7), LXB_LIST_N (100), LXB_LIST_RUNNING (1), LXB_INCUS_FRESH (1).
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
LXB_DIR=${LXB_DIR:-/tmp/lxb-prof}
WORK=${LXB_WORK:-/tmp/lxb-prof-work}
SHARED=${LXB_SHARED:-$(realpath -m "$HERE/../../../shared/bench")}
PEER_MODE=${LXB_PEER:-auto}
R_LAUNCH=${R_LAUNCH:-7}
R_LIST=${R_LIST:-7}
LN=${LXB_LIST_N:-100}
INCUS_SOCK=/var/lib/incus/unix.socket
INCUS_POOL=pe-dir
LXCTL_POOL=default
export LXCTL_DIR=$LXB_DIR

mkdir -p "$WORK"
LOG=${LXB_LOG:-$WORK/profiles.log}
: > "$LOG"
IMAGE_TAR=$WORK/lxb-busybox.tar.gz
SHARE=$WORK/share

. "$HERE/lib.sh"   # log, note, die, timeit, stats, lx/inc, waits, order, alive

# ------------------------------------------------------------------ peers
lx_names()  { lx  list --format csv -c ns 2>/dev/null | awk -F, -v p="$1" -v s="${2:-}" 'index($1,p)==1 && (s=="" || $2==s){print $1}'; }
inc_names() { inc list --format csv -c ns 2>/dev/null | awk -F, -v p="$1" -v s="${2:-}" 'index($1,p)==1 && (s=="" || $2==s){print $1}'; }
cli_of()    { [ "$1" = lxctl ] && echo lx || echo inc; }
prefix_of() { [ "$1" = lxctl ] && echo lxb-pr- || echo pe-pr-; }
pool_of()   { [ "$1" = lxctl ] && echo "$LXCTL_POOL" || echo "$INCUS_POOL"; }
alias_of()  { echo "$(prefix_of "$1")busybox"; }

# the instance-level devices of the split launch
inst_devices() {   # PEER NAME
  local c; c=$(cli_of "$1")
  "$c" config device add "$2" d2 disk source="$SHARE/d2" path=/mnt/lxb-d2 readonly=true >> "$LOG" 2>&1 &&
  "$c" config device add "$2" urandom unix-char source=/dev/urandom path=/dev/lxb-urandom >> "$LOG" 2>&1
}

# create PEER KIND NAME: runs the client calls of one launch kind; returns when
# the client(s) returned
create() {
  local peer=$1 kind=$2 n=$3 c pre pool img
  c=$(cli_of "$peer"); pre=$(prefix_of "$peer"); pool=$(pool_of "$peer"); img=$(alias_of "$peer")
  case "$kind" in
    plain) "$c" launch -q "$img" "$n" --storage "$pool" >> "$LOG" 2>&1 ;;
    p3d5)  "$c" launch -q "$img" "$n" --storage "$pool" -p default -p "${pre}pa" -p "${pre}pb" -p "${pre}pc" >> "$LOG" 2>&1 ;;
    split) "$c" init -q "$img" "$n" --storage "$pool" -p default -p "${pre}pa" -p "${pre}pb" -p "${pre}pc1" >> "$LOG" 2>&1 &&
           inst_devices "$peer" "$n" && "$c" start "$n" >> "$LOG" 2>&1 ;;
  esac
}

# launch_running PEER KIND NAME: sets LAST to seconds from the first call to RUNNING
launch_running() {
  local peer=$1 kind=$2 n=$3 t0 t1
  t0=$EPOCHREALTIME
  create "$peer" "$kind" "$n" || { log "$peer $kind $n failed"; return 1; }
  if [ "$peer" = lxctl ]; then
    t1=$EPOCHREALTIME   # lxctl's launch/start return when RUNNING; checked below
    if ! lx_is_running "$n"; then
      note "  WARNING: lxctl $kind $n returned before the instance was RUNNING"
      lx_wait_running "$n" || return 1
      t1=$EPOCHREALTIME
    fi
  else
    inc_wait_running "$n" || return 1
    t1=$EPOCHREALTIME
  fi
  LAST=$(elapsed "$t0" "$t1")
}

# check_devices PEER NAME: the 5 devices are there inside, the binds read-only (outside the timing)
check_devices() {
  local c out; c=$(cli_of "$1")
  out=$("$c" exec "$2" -- sh -c 'for p in /dev/lxb-zero /dev/lxb-null /dev/lxb-urandom; do [ -c $p ] || echo "missing $p"; done
        for d in d1 d2; do [ -f /mnt/lxb-$d/marker ] || echo "missing /mnt/lxb-$d/marker"; touch /mnt/lxb-$d/w 2>/dev/null && echo "writable /mnt/lxb-$d"; done
        head -c 4 /dev/lxb-urandom | wc -c | grep -qx 4 || echo "urandom unreadable"' 2>&1)
  if [ -n "$out" ]; then note "  WARNING: $1 $2 devices: $out"; return 1; fi
  log "$1 $2: 5 devices present, binds read-only"
}

# ------------------------------------------------------------------ cleanup
STARTED_LXCTLD=0; LXCTLD_PID=""; STARTED_INCUS=0; INCUS_USED=0; CLEANED=0
remove_own() {   # PEER: this script's instances, profiles and image
  local c pre left p; c=$(cli_of "$1"); pre=$(prefix_of "$1")
  left=$("${c}_names" "$pre")
  # shellcheck disable=SC2086  # word splitting of names is intended
  [ -n "$left" ] && "$c" delete --force $left >> "$LOG" 2>&1
  for p in pa pb pc pc1; do "$c" profile delete "$pre$p" >> "$LOG" 2>&1; done
  "$c" image delete "$(alias_of "$1")" >> "$LOG" 2>&1
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
    rm -rf --one-file-system "$LXB_DIR"
  fi
  if [ "$INCUS_USED" = 1 ]; then
    remove_own incus
    if [ "$STARTED_INCUS" = 1 ]; then
      bash "$SHARED/peer-daemon.sh" down incus >> "$LOG" 2>&1 || note "peer-daemon.sh down incus failed, see $LOG"
    fi
  fi
  rm -rf --one-file-system "$SHARE" "$IMAGE_TAR"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ setup
[ "$(id -u)" = 0 ] || die "run as root"
{ [ -x "$LXCTL" ] && [ -x "$LXCTLD" ]; } || die "lxctl not installed at $LXCTL (run contrib/setup.sh)"
note "profiles.sh: $(date -u +%FT%TZ), host $(uname -r), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg), background cpu busy $(cpu_busy_pct 2) %, holding $LOCK"

bash "$SHARED/build-busybox-image.sh" "$IMAGE_TAR" >> "$LOG" 2>&1 || die "image build failed"
mkdir -p "$SHARE/d1" "$SHARE/d2"
echo d1 > "$SHARE/d1/marker"; echo d2 > "$SHARE/d2/marker"

if lx admin waitready --timeout 1 >> "$LOG" 2>&1; then
  note "using the lxctl daemon already serving $LXB_DIR"
else
  mkdir -p "$LXB_DIR"
  setsid "$LXCTLD" >> "$WORK/lxctld.log" 2>&1 < /dev/null &
  LXCTLD_PID=$!; STARTED_LXCTLD=1
  lx admin waitready --timeout 30 >> "$LOG" 2>&1 || die "lxctld did not become ready, see $WORK/lxctld.log"
fi
L_PID=$(lx info 2>>"$LOG" | awk '/^server_pid:/{print $2}')
{ [ -n "$L_PID" ] && [ -r "/proc/$L_PID/status" ]; } || die "cannot find lxctld PID"
[ -z "$LXCTLD_PID" ] && LXCTLD_PID=$L_PID
note "lxctl $(lx version 2>/dev/null | awk '/Server/{print $3}') pid $L_PID state dir $LXB_DIR"

PEERS=(lxctl)
case "$PEER_MODE" in
  none) note "LXB_PEER=none: Incus not used (no ratios)" ;;
  auto|incus)
    if ! command -v incus >/dev/null; then
      [ "$PEER_MODE" = incus ] && die "incus not installed"
      note "incus not installed: no ratios"
    else
      if ! iapi /1.0 | grep -q '"status_code":200'; then
        note "bringing Incus up with peer-daemon.sh"
        STARTED_INCUS=1; INCUS_USED=1
        PE_FRESH=${LXB_INCUS_FRESH:-1} bash "$SHARED/peer-daemon.sh" up incus >> "$LOG" 2>&1 \
          || die "peer-daemon.sh up incus failed, see $LOG"
      fi
      INCUS_USED=1
      inc storage show "$INCUS_POOL" >/dev/null 2>&1 || die "Incus has no $INCUS_POOL pool (use peer-daemon.sh)"
      I_PID=$(iapi /1.0 | grep -oE '"server_pid": ?[0-9]+' | grep -oE '[0-9]+$')
      { [ -n "$I_PID" ] && [ -r "/proc/$I_PID/status" ]; } || die "cannot find incusd PID"
      note "incus $(iapi /1.0 | grep -oE '"server_version": ?"[^"]+"' | cut -d'"' -f4) pid $I_PID"
      PEERS+=(incus)
    fi ;;
  *) die "LXB_PEER must be auto, incus or none" ;;
esac

# leftovers of an earlier run, then image and profiles on each peer
for p in "${PEERS[@]}"; do
  remove_own "$p"
  c=$(cli_of "$p"); pre=$(prefix_of "$p")
  "$c" image import "$IMAGE_TAR" --alias "$(alias_of "$p")" >> "$LOG" 2>&1 || die "$p image import failed, see $LOG"
  { "$c" profile create "${pre}pa" &&
    "$c" profile set "${pre}pa" limits.cpu=1 limits.memory=256MiB &&
    "$c" profile device add "${pre}pa" zero unix-char source=/dev/zero path=/dev/lxb-zero &&
    "$c" profile create "${pre}pb" &&
    "$c" profile set "${pre}pb" user.bench.owner=lxb user.bench.role=profiles limits.processes=500 &&
    "$c" profile device add "${pre}pb" null unix-char source=/dev/null path=/dev/lxb-null &&
    "$c" profile create "${pre}pc" &&
    "$c" profile device add "${pre}pc" d1 disk source="$SHARE/d1" path=/mnt/lxb-d1 readonly=true &&
    "$c" profile device add "${pre}pc" d2 disk source="$SHARE/d2" path=/mnt/lxb-d2 readonly=true &&
    "$c" profile device add "${pre}pc" urandom unix-char source=/dev/urandom path=/dev/lxb-urandom &&
    "$c" profile create "${pre}pc1" &&
    "$c" profile device add "${pre}pc1" d1 disk source="$SHARE/d1" path=/mnt/lxb-d1 readonly=true
  } >> "$LOG" 2>&1 || die "$p: creating the profiles failed, see $LOG"
done
note "profiles pa (limits.cpu/memory + unix-char), pb (user.* + limits.processes + unix-char), pc (2 ro disks + unix-char), pc1 (1 ro disk) on each peer"

# the devices really are there (once per peer and kind, outside the timing)
for p in "${PEERS[@]}"; do
  for k in p3d5 split; do
    n=$(prefix_of "$p")chk
    launch_running "$p" "$k" "$n" || die "$p: $k launch of $n failed, see $LOG"
    check_devices "$p" "$n" || die "$p: the devices of a $k launch are not right"
    "$(cli_of "$p")" delete --force "$n" >> "$LOG" 2>&1
  done
done
note "devices checked inside on each peer (3 unix-char nodes, 2 read-only binds)"
alive "setup"

# ------------------------------------------------------------------ (a) launch -> RUNNING
declare -A S
for k in plain p3d5 split; do
  for p in "${PEERS[@]}"; do S[$p]=""; done
  for i in $(seq "$R_LAUNCH"); do
    for p in $(order "$i"); do
      n=$(prefix_of "$p")c1
      if launch_running "$p" "$k" "$n"; then S[$p]+=" $LAST"; else log "$p $k rep $i failed"; fi
      "$(cli_of "$p")" delete --force "$n" >> "$LOG" 2>&1 || log "$p delete --force $n failed"
    done
  done
  m=launch_$k; [ "$k" = split ] && m=launch_p3d5_split
  # shellcheck disable=SC2086
  for p in "${PEERS[@]}"; do stats "$p" "$m" s ${S[$p]}; done
  alive "launch $k"
done

# ------------------------------------------------------------------ (b) list with LN instances, 3 profiles each
for p in "${PEERS[@]}"; do S[$p]=""; done
for i in $(seq "$LN"); do
  for p in $(order "$i"); do
    pre=$(prefix_of "$p")
    n=$(printf '%sl%03d' "$pre" "$i")
    if timeit "$(cli_of "$p")" init -q "$(alias_of "$p")" "$n" --storage "$(pool_of "$p")" \
         -p default -p "${pre}pa" -p "${pre}pb" -p "${pre}pc"; then S[$p]+=" $LAST"; fi
  done
done
for p in "${PEERS[@]}"; do
  # shellcheck disable=SC2086
  tot=$(printf '%s\n' ${S[$p]} | awk '{t+=$1} END{printf "%.3f", t}')
  cnt=$("$(cli_of "$p")_names" "$(prefix_of "$p")l" | wc -l)
  echo "$p init_${LN}_p3_sum $tot s"
  [ "$cnt" -eq "$LN" ] || note "  WARNING: $p has $cnt of $LN instances"
done
alive "init $LN"

list_bench() {   # STATE: list (table) and list --format csv, alternating
  local state=$1 fmt i p
  for fmt in table csv; do
    for p in "${PEERS[@]}"; do S[$p]=""; done
    for i in $(seq "$R_LIST"); do
      for p in $(order "$i"); do
        if [ "$fmt" = table ]; then timeit "$(cli_of "$p")" list && S[$p]+=" $LAST"
        else timeit "$(cli_of "$p")" list --format csv && S[$p]+=" $LAST"; fi
      done
    done
    # shellcheck disable=SC2086
    for p in "${PEERS[@]}"; do stats "$p" "list_${fmt}_${LN}_$state" ms ${S[$p]}; done
  done
}
list_bench stopped
alive "list stopped"

if [ "${LXB_LIST_RUNNING:-1}" = 1 ]; then
  for p in "${PEERS[@]}"; do
    c=$(cli_of "$p")
    # shellcheck disable=SC2046
    timeit "$c" start $("${c}_names" "$(prefix_of "$p")l") \
      && note "  $p start of $LN (one command): $(printf %.3f "$LAST") s"
    cnt=$("${c}_names" "$(prefix_of "$p")l" RUNNING | wc -l)
    [ "$cnt" -eq "$LN" ] || note "  WARNING: $p has $cnt of $LN instances RUNNING"
  done
  sleep 2
  list_bench running
  alive "list running"
fi
for p in "${PEERS[@]}"; do
  c=$(cli_of "$p")
  # shellcheck disable=SC2046
  timeit "$c" delete --force $("${c}_names" "$(prefix_of "$p")l") \
    && note "  $p delete --force $LN (one command): $(printf %.3f "$LAST") s"
done

# ------------------------------------------------------------------ ratio table
echo
if [ "${#PEERS[@]}" -lt 2 ]; then note "no Incus in this run: no ratios"; exit 0; fi
note "ratio = lxctl / incus, both measured side by side in this run"
{
  echo "metric lxctl incus ratio target verdict"
  while read -r key target; do
    a=${RESULT[lxctl:$key]:-NaN}; b=${RESULT[incus:$key]:-NaN}
    awk -v m="$key" -v a="$a" -v b="$b" -v t="$target" 'BEGIN{
      if (a=="NaN" || b=="NaN" || b+0==0) { printf "%s %s %s n/a %s n/a\n", m, a, b, t; exit }
      r = a/b; v = (t=="-") ? "-" : (sprintf("%.3f", r)+0<=t+0 ? "PASS" : "FAIL")
      printf "%s %s %s %.3f %s %s\n", m, a, b, r, (t=="-" ? "-" : "<=" t), v }'
  done <<EOF
launch_plain -
launch_p3d5 0.32
launch_p3d5_split 0.32
list_table_${LN}_stopped 0.06
list_csv_${LN}_stopped 0.06
list_table_${LN}_running 0.06
list_csv_${LN}_running 0.06
EOF
} | column -t
echo "# units: launch s, list ms"
for p in "${PEERS[@]}"; do
  awk -v p="$p" -v a="${RESULT[$p:launch_plain]:-NaN}" -v b="${RESULT[$p:launch_p3d5]:-NaN}" -v c="${RESULT[$p:launch_p3d5_split]:-NaN}" 'BEGIN{
    if (a=="NaN" || a+0==0) exit
    printf "# %s: launch_p3d5 / launch_plain = %.2f, launch_p3d5_split / launch_plain = %.2f\n", p, b/a, c/a }'
done
