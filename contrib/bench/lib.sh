# lib.sh - shell helpers of the side-by-side benchmarks (sourced by storage.sh and
# profiles.sh; bench.sh and network.sh carry older variants of some). Expects LOG,
# LXCTL, LXCTLD, LXB_DIR, WORK, SHARED, PEER_MODE, INCUS_SOCK set by the script, and
# sets PEERS, L_PID, I_PID, LXCTLD_PID, STARTED_LXCTLD, STARTED_INCUS, INCUS_USED, RESULT.
# shellcheck shell=bash

log()  { echo "[$(date +%T)] $*" >> "$LOG"; }
note() { echo "# $*"; log "$*"; }
die()  { note "FATAL: $*"; exit 1; }

[ -d "$SHARED" ] || die "no shared bench folder at $SHARED (set LXB_SHARED)"

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.6f", b-a}'; }
timeit() {   # CMD...: sets LAST (s); output to the log
  local t0=$EPOCHREALTIME rc
  "$@" >> "$LOG" 2>&1; rc=$?
  LAST=$(elapsed "$t0" "$EPOCHREALTIME")
  [ $rc -eq 0 ] || log "FAILED (rc=$rc): $*"
  return $rc
}

declare -A RESULT
stats() {    # PEER METRIC UNIT SAMPLES(s)...
  local peer=$1 name=$2 unit=$3 line; shift 3
  if [ $# -eq 0 ]; then
    echo "$peer $name NaN $unit"; note "  $peer $name: no successful samples"
    RESULT[$peer:$name]=NaN; return
  fi
  local scale=1; [ "$unit" = ms ] && scale=1000
  line=$(printf '%s\n' "$@" | sort -g | awk -v s="$scale" -v u="$unit" '
    {a[NR]=$1*s}
    END{ m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2
         f = (u=="s") ? "%.3f" : "%.1f"
         printf f " " f " " f " %d\n", m, a[1], a[NR], NR }')
  read -r med min max cnt <<< "$line"
  echo "$peer $name $med $unit"
  [ "$cnt" -gt 1 ] && echo "#   $peer $name: n=$cnt min=$min max=$max ($unit)"
  RESULT[$peer:$name]=$med
  log "$peer $name samples: $*"
}

cpu_busy_pct() {
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat); sleep "$1"
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); bu=y[1]-x[1]; id=y[2]-x[2];
    printf "%.0f", (bu+id>0) ? 100*bu/(bu+id) : 0}'
}

# ------------------------------------------------------------------ peers
lx()   { "$LXCTL" "$@"; }
inc()  { incus "$@"; }
iapi() { curl -s --unix-socket "$INCUS_SOCK" "s$1"; }

inc_state() { iapi "/1.0/instances/$1/state" | grep -oE '"status": ?"[A-Za-z]+"' | grep -oE '[A-Za-z]+"$' | tr -d '"' | grep -vx Success | head -1; }
inc_wait_running() {
  local deadline=$(( EPOCHSECONDS + ${2:-120} ))
  while [ "$EPOCHSECONDS" -le "$deadline" ]; do
    [ "$(inc_state "$1")" = Running ] && return 0
    sleep 0.01
  done
  log "timeout waiting for incus $1 to be Running"; return 1
}
lx_is_running() { lx list --format csv -c ns 2>>"$LOG" | grep -qx "$1,RUNNING"; }
lx_wait_running() {
  local deadline=$(( EPOCHSECONDS + ${2:-120} ))
  while [ "$EPOCHSECONDS" -le "$deadline" ]; do
    lx_is_running "$1" && return 0
    sleep 0.05
  done
  log "timeout waiting for lxctl $1 to be RUNNING"; return 1
}

order() {
  if [ "${#PEERS[@]}" -eq 1 ]; then echo "${PEERS[0]}"
  elif [ $(( $1 % 2 )) -eq 1 ]; then echo "${PEERS[0]} ${PEERS[1]}"
  else echo "${PEERS[1]} ${PEERS[0]}"; fi
}
alive() {
  kill -0 "$L_PID" 2>/dev/null || die "lxctld (pid $L_PID) exited during $1; see $WORK/lxctld.log"
  if [ "${#PEERS[@]}" -gt 1 ]; then kill -0 "$I_PID" 2>/dev/null || die "incusd (pid $I_PID) exited during $1"; fi
}


# start_peers: lxctld (when not serving $LXB_DIR) and Incus (peer-daemon.sh), PEERS
start_peers() {
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
        I_PID=$(iapi /1.0 | grep -oE '"server_pid": ?[0-9]+' | grep -oE '[0-9]+$')
        { [ -n "$I_PID" ] && [ -r "/proc/$I_PID/status" ]; } || die "cannot find incusd PID"
        note "incus $(iapi /1.0 | grep -oE '"server_version": ?"[^"]+"' | cut -d'"' -f4) pid $I_PID"
        PEERS+=(incus)
      fi ;;
    *) die "LXB_PEER must be auto, incus or none" ;;
  esac
}

# ratio_table: "METRIC TARGET" lines on stdin (TARGET "-": no target); lxctl/incus
ratio_table() {
  local key target a b
  note "ratio = lxctl / incus, both measured side by side in this run"
  {
    echo "metric lxctl incus ratio target verdict"
    while read -r key target; do
      a=${RESULT[lxctl:$key]:-NaN}; b=${RESULT[incus:$key]:-NaN}
      awk -v m="$key" -v a="$a" -v b="$b" -v t="$target" 'BEGIN{
        if (a=="NaN" || b=="NaN" || b+0==0) { printf "%s %s %s n/a %s n/a\n", m, a, b, t; exit }
        r = a/b; v = (t=="-") ? "-" : (sprintf("%.3f", r)+0<=t+0 ? "PASS" : "FAIL")
        printf "%s %s %s %.3f %s %s\n", m, a, b, r, (t=="-" ? "-" : "<=" t), v }'
    done
  } | column -t
}
