#!/bin/bash
# bench.sh - lxctl against Incus, side by side, in one run.
#
# Usage:  contrib/bench/bench.sh            (as root; see README.md here)
#
# Measures, for lxctl and (when installed) Incus, alternating the two peers per
# repetition so that host load hits both alike:
#   launch_running_dir   launch of a busybox image to RUNNING on a dir pool (s)
#   exec_true            `exec NAME -- true` latency (ms)
#   list_csv_20          `list --format csv` with 20 instances running (ms)
#   daemon_rss_idle      VmRSS of the daemon process before any work (MiB)
#   daemon_rss_20        VmRSS of the daemon process with 20 running (MiB); lxctl's
#                        with its attach helper's added (it runs once an exec has)
#   client_help          `CLI --help`, the client start-up floor (ms)
# then prints a ratio table (lxctl/incus) against the project's targets.
# Without Incus (not installed, or LXB_PEER=none) the lxctl figures are compared
# with the reference medians in $LXB_REF (measured earlier, NOT side by side).
#
# Both peers import the same unified image built by build-busybox-image.sh.
# Everything created is named lxb-* (lxctl) or pe-* (Incus). The lxctl daemon
# runs in its own state dir (LXB_DIR) and is started and stopped here unless one
# is already serving that dir. Incus is brought up with peer-daemon.sh if it is
# not running, and taken down again at the end in that case. Cleanup runs on
# any exit (trap).
#
# Output: "PEER METRIC VALUE UNIT" lines, "# ..." context lines, then the table.
# Details and command output go to $LXB_LOG.
#
# Knobs (environment): LXB_LXCTL, LXB_LXCTLD (binaries; default the repo's
# .venv), LXB_DIR (/tmp/lxb-bench), LXB_WORK (/tmp/lxb-work), LXB_LOG,
# LXB_PEER (auto | incus | none), LXB_SHARED (../shared/bench from the repo root),
# LXB_REF ($LXB_SHARED/incus-6.0.4.txt), LXB_N (20), R_LAUNCH (7), R_EXEC (30),
# R_LIST (15), R_HELP (30), LXB_KEEP_DIR (1: keep LXB_DIR afterwards),
# LXB_QUIET_WAIT (s to wait for a quiet host; 0), LXB_QUIET_MAX (busy %; 25),
# LXB_SETTLE (s after start-up before the idle RSS; 10), LXB_INCUS_FRESH (1: empty
# /var/lib/incus when this script starts Incus, as for the reference figures).
set -u
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LXCTL=${LXB_LXCTL:-$REPO/.venv/bin/lxctl}
LXCTLD=${LXB_LXCTLD:-$REPO/.venv/bin/lxctld}
LXB_DIR=${LXB_DIR:-/tmp/lxb-bench}
WORK=${LXB_WORK:-/tmp/lxb-work}
# the shared bench folder sits next to the checkout: <repo>/../shared/bench, resolved
SHARED=${LXB_SHARED:-$(realpath -m "$HERE/../../../shared/bench")}
REF=${LXB_REF:-$SHARED/incus-6.0.4.txt}
PEER_MODE=${LXB_PEER:-auto}
N=${LXB_N:-20}
R_LAUNCH=${R_LAUNCH:-7}
R_EXEC=${R_EXEC:-30}
R_LIST=${R_LIST:-15}
R_HELP=${R_HELP:-30}
INCUS_SOCK=/var/lib/incus/unix.socket
INCUS_POOL=pe-dir            # created by peer-daemon.sh
LXCTL_POOL=default
L_ALIAS=lxb-busybox
I_ALIAS=pe-busybox
export LXCTL_DIR=$LXB_DIR

mkdir -p "$WORK"
LOG=${LXB_LOG:-$WORK/bench.log}
: > "$LOG"
IMAGE_TAR=$WORK/lxb-busybox.tar.gz

log()  { echo "[$(date +%T)] $*" >> "$LOG"; }
note() { echo "# $*"; log "$*"; }
die()  { note "FATAL: $*"; exit 1; }

[ -d "$SHARED" ] || die "no shared bench folder at $SHARED (set LXB_SHARED)"

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.6f", b-a}'; }

# timeit CMD...: sets LAST (seconds); output goes to the log
timeit() {
  local t0=$EPOCHREALTIME rc
  "$@" >> "$LOG" 2>&1; rc=$?
  LAST=$(elapsed "$t0" "$EPOCHREALTIME")
  [ $rc -eq 0 ] || log "FAILED (rc=$rc): $*"
  return $rc
}

declare -A RESULT   # RESULT[peer:metric]=value (in the metric's unit)

# stats PEER METRIC UNIT SAMPLES... (samples in seconds, or MiB for UNIT=MiB)
stats() {
  local peer=$1 name=$2 unit=$3 line; shift 3
  if [ $# -eq 0 ]; then
    echo "$peer $name NaN $unit"; note "  $peer $name: no successful samples"
    RESULT[$peer:$name]=NaN; return
  fi
  local scale=1; [ "$unit" = ms ] && scale=1000
  line=$(printf '%s\n' "$@" | sort -g | awk -v s="$scale" -v u="$unit" '
    {a[NR]=$1*s}
    END{ m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2
         f = (u=="s") ? "%.3f" : (u=="MiB" ? "%.1f" : "%.2f")
         printf f " " f " " f " %d\n", m, a[1], a[NR], NR }')
  read -r med min max cnt <<< "$line"
  echo "$peer $name $med $unit"
  [ "$cnt" -gt 1 ] && echo "#   $peer $name: n=$cnt min=$min max=$max ($unit)"
  RESULT[$peer:$name]=$med
  log "$peer $name samples: $*"
}

rss_mib() { awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo NaN; }
# lxctl's daemon with its own long-lived helper (the attach helper, once an exec ran):
# the sum of their VmRSS (shared pages counted twice: never in lxctl's favour)
lxctl_rss_mib() {
  local pids; pids="$1 $(pgrep -P "$1" -f attach_helper.py | tr '\n' ' ')"
  # shellcheck disable=SC2086
  (cd /proc && awk '/^VmRSS/{kb += $2} END {printf "%.1f", kb/1024}' \
    $(for p in $pids; do echo "$p/status"; done) 2>/dev/null) || echo NaN
}

cpu_busy_pct() {   # whole-host CPU busy % over $1 seconds (from /proc/stat)
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat); sleep "$1"
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); bu=y[1]-x[1]; id=y[2]-x[2];
    printf "%.0f", (bu+id>0) ? 100*bu/(bu+id) : 0}'
}

# ------------------------------------------------------------------ peers
# Each peer has: P_cli, launch (NAME), running (NAME), names (prefix), pid.
lx()   { "$LXCTL" "$@"; }
inc()  { incus "$@"; }
iapi() { curl -s --unix-socket "$INCUS_SOCK" "s$1"; }

# names of instances (csv -c ns) with a given prefix; $2 = RUNNING to filter
lx_names()  { lx  list --format csv -c ns 2>/dev/null | awk -F, -v p="$1" -v s="${2:-}" 'index($1,p)==1 && (s=="" || $2==s){print $1}'; }
inc_names() { inc list --format csv -c ns 2>/dev/null | awk -F, -v p="$1" -v s="${2:-}" 'index($1,p)==1 && (s=="" || $2==s){print $1}'; }

# Incus: instance status via the REST API (as bench-peer.sh does)
inc_state() { iapi "/1.0/instances/$1/state" | grep -oE '"status": ?"[A-Za-z]+"' | grep -oE '[A-Za-z]+"$' | tr -d '"' | grep -vx Success | head -1; }
inc_wait_running() {   # NAME [timeout s]
  local deadline=$(( EPOCHSECONDS + ${2:-120} ))
  while [ "$EPOCHSECONDS" -le "$deadline" ]; do
    [ "$(inc_state "$1")" = Running ] && return 0
    sleep 0.01
  done
  log "timeout waiting for incus $1 to be Running"; return 1
}
# lxctl: `launch` returns when RUNNING; verify with list (outside the timing)
lx_is_running() { lx list --format csv -c ns 2>>"$LOG" | grep -qx "$1,RUNNING"; }
lx_wait_running() {    # NAME [timeout s]
  local deadline=$(( EPOCHSECONDS + ${2:-120} ))
  while [ "$EPOCHSECONDS" -le "$deadline" ]; do
    lx_is_running "$1" && return 0
    sleep 0.05
  done
  log "timeout waiting for lxctl $1 to be RUNNING"; return 1
}

# launch_running PEER NAME: sets LAST to seconds from launch to RUNNING
launch_running() {
  local peer=$1 n=$2 t0 t1
  t0=$EPOCHREALTIME
  if [ "$peer" = lxctl ]; then
    lx launch -q "$L_ALIAS" "$n" --storage "$LXCTL_POOL" >> "$LOG" 2>&1 || { log "lxctl launch $n failed"; return 1; }
    t1=$EPOCHREALTIME
    if ! lx_is_running "$n"; then
      note "  WARNING: lxctl launch $n returned before the instance was RUNNING"
      lx_wait_running "$n" || return 1
      t1=$EPOCHREALTIME
    fi
  else
    inc launch -q "$I_ALIAS" "$n" --storage "$INCUS_POOL" >> "$LOG" 2>&1 || { log "incus launch $n failed"; return 1; }
    inc_wait_running "$n" || return 1
    t1=$EPOCHREALTIME
  fi
  LAST=$(elapsed "$t0" "$t1")
}

cli_of()    { [ "$1" = lxctl ] && echo lx || echo inc; }
prefix_of() { [ "$1" = lxctl ] && echo lxb- || echo pe-; }

# order REP: the peers in the order to run them in repetition REP (alternating)
order() {
  if [ "${#PEERS[@]}" -eq 1 ]; then echo "${PEERS[0]}"
  elif [ $(( $1 % 2 )) -eq 1 ]; then echo "${PEERS[0]} ${PEERS[1]}"
  else echo "${PEERS[1]} ${PEERS[0]}"; fi
}

# alive PHASE: stop with a clear message if a daemon has gone away
alive() {
  kill -0 "$L_PID" 2>/dev/null || die "lxctld (pid $L_PID) exited during $1; see $WORK/lxctld.log"
  if [ "${#PEERS[@]}" -gt 1 ]; then kill -0 "$I_PID" 2>/dev/null || die "incusd (pid $I_PID) exited during $1"; fi
}

# ------------------------------------------------------------------ cleanup
STARTED_LXCTLD=0; LXCTLD_PID=""; STARTED_INCUS=0; INCUS_USED=0; CLEANED=0
cleanup() {
  [ "$CLEANED" = 1 ] && return; CLEANED=1
  trap - INT TERM
  log "cleanup"
  local n left
  if [ -S "$LXB_DIR/unix.socket" ]; then
    left=$(lx_names lxb-)
    # shellcheck disable=SC2086  # word splitting of names is intended
    [ -n "$left" ] && lx delete --force $left >> "$LOG" 2>&1
    lx image delete "$L_ALIAS" >> "$LOG" 2>&1
  fi
  if [ "$STARTED_LXCTLD" = 1 ]; then
    lx admin shutdown >> "$LOG" 2>&1
    for _ in $(seq 100); do kill -0 "$LXCTLD_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$LXCTLD_PID" 2>/dev/null; then note "lxctld $LXCTLD_PID still alive after shutdown, sending TERM"; kill "$LXCTLD_PID"; fi
    [ "${LXB_KEEP_DIR:-0}" = 1 ] || rm -rf --one-file-system "$LXB_DIR"
  fi
  if [ "$INCUS_USED" = 1 ]; then
    if [ "$STARTED_INCUS" = 1 ]; then
      bash "$SHARED/peer-daemon.sh" down incus >> "$LOG" 2>&1 || note "peer-daemon.sh down incus failed, see $LOG"
    else
      for n in $(inc_names pe-); do
        case "$n" in pe-c1|pe-s[0-9]*) inc delete --force "$n" >> "$LOG" 2>&1 ;; esac
      done
      inc image delete "$I_ALIAS" >> "$LOG" 2>&1
    fi
  fi
  rm -f "$IMAGE_TAR"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ setup
[ "$(id -u)" = 0 ] || die "run as root"
{ [ -x "$LXCTL" ] && [ -x "$LXCTLD" ]; } || die "lxctl not installed at $LXCTL (run contrib/setup.sh)"

# Other load skews every number: optionally wait (LXB_QUIET_WAIT s) until
# background CPU use is <= LXB_QUIET_MAX % (25); always report it.
BG=$(cpu_busy_pct 2); waited=0
while [ "$BG" -gt "${LXB_QUIET_MAX:-25}" ] && [ "$waited" -lt "${LXB_QUIET_WAIT:-0}" ]; do
  sleep 8; waited=$((waited + 10)); BG=$(cpu_busy_pct 2)
done
note "bench.sh: $(date -u +%FT%TZ), host $(uname -r), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg), background cpu busy $BG % (waited ${waited}s)"

bash "$SHARED/build-busybox-image.sh" "$IMAGE_TAR" >> "$LOG" 2>&1 || die "image build failed"

# lxctl daemon in its own state dir
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

# Incus, if installed
PEERS=(lxctl)
case "$PEER_MODE" in
  none) note "LXB_PEER=none: Incus not used" ;;
  auto|incus)
    if ! command -v incus >/dev/null; then
      [ "$PEER_MODE" = incus ] && die "incus not installed"
      note "incus not installed"
    else
      if ! iapi /1.0 | grep -q '"status_code":200'; then
        note "bringing Incus up with peer-daemon.sh"
        STARTED_INCUS=1; INCUS_USED=1
        # a fresh database, as the reference figures were taken (LXB_INCUS_FRESH=0 keeps it)
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

# leftovers of an earlier run
for p in "${PEERS[@]}"; do
  c=$(cli_of "$p"); left=$("${c}_names" "$(prefix_of "$p")")
  for n in $left; do
    [ "$p" = incus ] && case "$n" in pe-c1|pe-s[0-9]*) ;; *) continue ;; esac
    log "removing leftover $p $n"; "$c" delete --force "$n" >> "$LOG" 2>&1
  done
done

# ------------------------------------------------------------------ idle RSS
sleep "${LXB_SETTLE:-10}"   # let both daemons settle after start-up
stats lxctl daemon_rss_idle MiB "$(lxctl_rss_mib "$L_PID")"
[ "${#PEERS[@]}" -gt 1 ] && stats incus daemon_rss_idle MiB "$(rss_mib "$I_PID")"

alive "idle RSS"
# ------------------------------------------------------------------ image import (same tarball)
lx image delete "$L_ALIAS" >> "$LOG" 2>&1
timeit lx image import "$IMAGE_TAR" --alias "$L_ALIAS" || die "lxctl image import failed, see $LOG"
note "  lxctl image import: $(printf %.3f "$LAST") s"
if [ "${#PEERS[@]}" -gt 1 ]; then
  inc image delete "$I_ALIAS" >> "$LOG" 2>&1
  timeit inc image import "$IMAGE_TAR" --alias "$I_ALIAS" || die "incus image import failed, see $LOG"
  note "  incus image import: $(printf %.3f "$LAST") s"
fi

alive "image import"
# ------------------------------------------------------------------ launch -> RUNNING (dir)
declare -A S
for p in "${PEERS[@]}"; do S[$p]=""; done
for i in $(seq "$R_LAUNCH"); do
  for p in $(order "$i"); do
    n=$(prefix_of "$p")c1
    if launch_running "$p" "$n"; then S[$p]+=" $LAST"; else log "$p launch rep $i failed"; fi
    "$(cli_of "$p")" delete --force "$n" >> "$LOG" 2>&1 || log "$p delete --force $n failed"
  done
done
# shellcheck disable=SC2086
for p in "${PEERS[@]}"; do stats "$p" launch_running_dir s ${S[$p]}; done

alive "launch"
# ------------------------------------------------------------------ exec latency
for p in "${PEERS[@]}"; do
  S[$p]=""; n=$(prefix_of "$p")c1
  launch_running "$p" "$n" || log "$p: launch of $n for exec failed"
done
for i in $(seq "$R_EXEC"); do
  for p in $(order "$i"); do
    timeit "$(cli_of "$p")" exec "$(prefix_of "$p")c1" -- true && S[$p]+=" $LAST"
  done
done
# shellcheck disable=SC2086
for p in "${PEERS[@]}"; do
  stats "$p" exec_true ms ${S[$p]}
  "$(cli_of "$p")" delete --force "$(prefix_of "$p")c1" >> "$LOG" 2>&1
done

alive "exec"
# ------------------------------------------------------------------ N running: launch, RSS, list
for p in "${PEERS[@]}"; do S[$p]=""; done
for i in $(seq "$N"); do
  for p in $(order "$i"); do
    n=$(printf '%ss%02d' "$(prefix_of "$p")" "$i")
    if launch_running "$p" "$n"; then S[$p]+=" $LAST"; else log "$p launch $n failed"; fi
  done
done
for p in "${PEERS[@]}"; do
  # shellcheck disable=SC2086
  tot=$(printf '%s\n' ${S[$p]} | awk '{t+=$1} END{printf "%.3f", t}')
  cnt=$("$(cli_of "$p")_names" "$(prefix_of "$p")s" RUNNING | wc -l)
  echo "$p launch_${N}_sequential_sum $tot s"
  [ "$cnt" -eq "$N" ] || note "  WARNING: $p has $cnt of $N instances RUNNING"
done
sleep 2
stats lxctl "daemon_rss_$N" MiB "$(lxctl_rss_mib "$L_PID")"
[ "${#PEERS[@]}" -gt 1 ] && stats incus "daemon_rss_$N" MiB "$(rss_mib "$I_PID")"

for p in "${PEERS[@]}"; do S[$p]=""; done
for i in $(seq "$R_LIST"); do
  for p in $(order "$i"); do
    timeit "$(cli_of "$p")" list --format csv && S[$p]+=" $LAST"
  done
done
# shellcheck disable=SC2086
for p in "${PEERS[@]}"; do stats "$p" list_csv_$N ms ${S[$p]}; done

for p in "${PEERS[@]}"; do
  c=$(cli_of "$p")
  # shellcheck disable=SC2046
  timeit "$c" delete --force $("${c}_names" "$(prefix_of "$p")s") \
    && note "  $p delete --force $N running (one command): $(printf %.3f "$LAST") s"
done

alive "20 running / list"
# ------------------------------------------------------------------ client start-up floor
for p in "${PEERS[@]}"; do S[$p]=""; done
for i in $(seq "$R_HELP"); do
  for p in $(order "$i"); do
    timeit "$(cli_of "$p")" --help && S[$p]+=" $LAST"
  done
done
# shellcheck disable=SC2086
for p in "${PEERS[@]}"; do stats "$p" client_help ms ${S[$p]}; done

alive "client floor"
# ------------------------------------------------------------------ ratio table
ref() {   # median of a metric in the reference file
  awk -v m="$1" '$1==m{print $2; exit}' "$REF" 2>/dev/null
}
echo
if [ "${#PEERS[@]}" -gt 1 ]; then
  note "ratio = lxctl / incus, both measured side by side in this run"
  COLB=incus
else
  if [ -r "$REF" ]; then
    note "NO INCUS HERE: the incus column holds REFERENCE medians from $REF"
    note "(measured on another day on an idle host), NOT a side-by-side measurement"
  else
    note "no Incus and no reference file $REF: no ratios"
  fi
  COLB=incus_ref
  RESULT[incus:launch_running_dir]=$(ref launch_running_dir)
  RESULT[incus:exec_true]=$(ref exec_true)
  RESULT[incus:list_csv_$N]=$(ref "list_csv_$N")
  RESULT[incus:daemon_rss_$N]=$(ref "daemon_rss_${N}_running")
  RESULT[incus:daemon_rss_idle]=$(ref daemon_rss_idle_start)
fi
{
  echo "metric lxctl $COLB ratio target verdict"
  while read -r metric key target; do
    a=${RESULT[lxctl:$key]:-NaN}; b=${RESULT[incus:$key]:-NaN}
    awk -v m="$metric" -v a="$a" -v b="$b" -v t="$target" 'BEGIN{
      if (a=="NaN" || b=="NaN" || b=="" || b+0==0) { printf "%s %s %s n/a <=%s n/a\n", m, a, (b==""?"NaN":b), t; exit }
      r = a/b; printf "%s %s %s %.2f <=%s %s\n", m, a, b, r, t, (r<=t+0 ? "PASS" : "FAIL") }'
  done <<EOF
launch launch_running_dir 0.5
exec exec_true 0.8
list list_csv_$N 0.2
rss_$N daemon_rss_$N 0.8
rss_idle daemon_rss_idle 0.8
EOF
} | column -t
echo "# units: launch s, exec/list ms, rss MiB"
