#!/bin/bash
# network.sh - networking, lxctl against Incus side by side (issue 8, acceptance 6).
#
# Usage:  contrib/bench/network.sh        (as root; holds flock /work/brief/incus.lock)
#
# Each daemon runs inside a private network namespace of its own (lxb-nl for lxctld,
# lxb-ni for incusd, made here and deleted at the end); each gets a bridge network
# 10.252.0.1/24 with ipv4.nat=false (lxbnet0 / penet0) and a profile whose eth0 is on
# it. Medians, alternating the peers per repetition (odd: lxctl first), of:
#   launch_nic      launch IMG -p default -p NETPROFILE          -> RUNNING
#   launch_lease    ... then `exec udhcpc` in the instance          -> first DHCP lease
#   nics_attach_N   N x `config device add INST ethK nic nictype=bridged parent=lxbbr1`
#                   on a RUNNING instance (hot-plug; seconds for all N), then
#                   nics_detach_N: N x `config device remove`; lxbbr1 is a plain Linux
#                   bridge made in each netns (Incus refuses a second NIC of one
#                   instance on one managed network: "DNS name conflict")
#   list_M          `list` (table, with the IPv4 column) with M running instances that
#                   hold a DHCP address
# and, lxctl only (Incus retries unavailable networks every 60 s, by design):
#   degraded_s      a macvlan network whose parent is gone at a daemon start; seconds
#                   from `ip link add PARENT` to the waiting instance RUNNING (goal < 2 s)
#
# Knobs: LXB_LXCTL, LXB_LXCTLD, LXB_DIR (/tmp/lxb-net), LXB_WORK (/tmp/lxb-net-work),
# LXB_SHARED, LXB_LOCK, R_LAUNCH (5), LXB_NICS (100), LXB_LIST_N (50), R_LIST (7).
# Incus must not be running already (it would not be in a namespace of ours): the
# script starts incusd in lxb-ni itself (private /etc/sub[ug]id as peer-daemon.sh
# does) and shuts it down at the end. A trap removes every object it made on any exit.
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
LXB_DIR=${LXB_DIR:-/tmp/lxb-net}
WORK=${LXB_WORK:-/tmp/lxb-net-work}
SHARED=${LXB_SHARED:-$(realpath -m "$HERE/../../../shared/bench")}
R_LAUNCH=${R_LAUNCH:-5}
NICS=${LXB_NICS:-100}
LN=${LXB_LIST_N:-50}
R_LIST=${R_LIST:-7}
NSL=lxb-nl; NSI=lxb-ni
INCUSD=/usr/libexec/incus/incusd
SUBNET=10.252.0.1/24
export LXCTL_DIR=$LXB_DIR

mkdir -p "$WORK"
LOG=$WORK/network.log; : > "$LOG"
IMAGE_TAR=$WORK/lxb-busybox.tar.gz
log()  { echo "[$(date +%T)] $*" >> "$LOG"; }
note() { echo "# $*"; log "$*"; }
die()  { note "FATAL: $*"; exit 1; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.6f", b-a}'; }

declare -A RESULT
stats() {    # PEER METRIC SAMPLES(s)...: median in seconds
  local peer=$1 name=$2; shift 2
  if [ $# -eq 0 ]; then RESULT[$peer:$name]=NaN; echo "$peer $name NaN s"; return; fi
  RESULT[$peer:$name]=$(printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1}
    END{printf "%.4f", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
  echo "$peer $name ${RESULT[$peer:$name]} s   (n=$#)"
  log "$peer $name samples: $*"
}

lx()  { "$LXCTL" "$@"; }
inc() { incus "$@"; }
cli_of()  { [ "$1" = lxctl ] && echo lx || echo inc; }
pre_of()  { [ "$1" = lxctl ] && echo lxb-n- || echo pe-n-; }
net_of()  { [ "$1" = lxctl ] && echo lxbnet0 || echo penet0; }
pool_of() { [ "$1" = lxctl ] && echo default || echo pe-dir; }
order() { if [ $(( $1 % 2 )) -eq 1 ]; then echo "lxctl incus"; else echo "incus lxctl"; fi; }
state_of() { "$(cli_of "$1")" list --format csv -c ns 2>>"$LOG" | awk -F, -v n="$2" '$1==n{print toupper($2)}'; }
wait_running() {  # PEER NAME
  local deadline=$(( EPOCHSECONDS + 60 ))
  while [ "$EPOCHSECONDS" -le "$deadline" ]; do
    [ "$(state_of "$1" "$2")" = RUNNING ] && return 0; sleep 0.02
  done
  log "timeout: $1 $2 not RUNNING"; return 1
}
# udhcpc with a script that sets the leased address (the image has none)
U='[ "$1" = bound ] && ip addr add $ip/${mask:-24} dev $interface; exit 0'
lease() {  # PEER NAME
  "$(cli_of "$1")" exec "$2" -- sh -c "echo '$U' > /u.sh && chmod +x /u.sh && udhcpc -i eth0 -q -n -t 20 -T 1 -s /u.sh" >> "$LOG" 2>&1
}

# ------------------------------------------------------------------ cleanup
LXCTLD_PID=""; INCUSD_PID=""; CLEANED=0
own() { "$(cli_of "$1")" list --format csv -c n 2>/dev/null | grep "^$(pre_of "$1")"; }
cleanup() {
  [ "$CLEANED" = 1 ] && return; CLEANED=1
  trap - INT TERM
  log "cleanup"
  for p in lxctl incus; do
    if { [ "$p" = lxctl ] && [ -n "$LXCTLD_PID" ]; } || { [ "$p" = incus ] && [ -n "$INCUSD_PID" ]; }; then
      c=$(cli_of "$p"); left=$(own "$p" | tr '\n' ' ')
      # shellcheck disable=SC2086
      [ -n "$left" ] && "$c" delete --force $left >> "$LOG" 2>&1
      "$c" profile delete "$(pre_of "$p")nic" >> "$LOG" 2>&1
      "$c" network delete "$(net_of "$p")" >> "$LOG" 2>&1
      "$c" image delete "$(pre_of "$p")bb" >> "$LOG" 2>&1
    fi
  done
  lx network delete lxbmv0 >> "$LOG" 2>&1
  if [ -n "$LXCTLD_PID" ]; then
    lx admin shutdown >> "$LOG" 2>&1
    for _ in $(seq 100); do kill -0 "$LXCTLD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$LXCTLD_PID" 2>/dev/null && kill "$LXCTLD_PID"
    rm -rf --one-file-system "$LXB_DIR"
  fi
  if [ -n "$INCUSD_PID" ]; then
    timeout 60 incus admin shutdown >> "$LOG" 2>&1
    for _ in $(seq 100); do kill -0 "$INCUSD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$INCUSD_PID" 2>/dev/null && kill "$INCUSD_PID"
  fi
  for ns in $NSL $NSI; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  rm -f "$IMAGE_TAR"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ setup
[ "$(id -u)" = 0 ] || die "run as root"
command -v incus >/dev/null && [ -x "$INCUSD" ] || die "Incus not installed: no side-by-side figures"
pgrep -x incusd >/dev/null && die "an incusd is running already (not in a namespace of this script); stop it first"
note "network.sh: $(date -u +%FT%TZ), host $(uname -r), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg), holding $LOCK"
bash "$SHARED/build-busybox-image.sh" "$IMAGE_TAR" >> "$LOG" 2>&1 || die "image build failed"
for ns in $NSL $NSI; do
  ip netns add "$ns" || die "cannot make netns $ns"
  ip -n "$ns" link set lo up
done

mkdir -p "$LXB_DIR"
ip netns exec $NSL setsid "$LXCTLD" >> "$WORK/lxctld.log" 2>&1 < /dev/null &
LXCTLD_PID=$!
lx admin waitready --timeout 30 >> "$LOG" 2>&1 || die "lxctld not ready, see $WORK/lxctld.log"

echo 'root:1000000:1000000000' > "$WORK/subid"
ip netns exec $NSI setsid unshare --mount --propagation private sh -c \
  "mount --bind $WORK/subid /etc/subuid && mount --bind $WORK/subid /etc/subgid && PATH=/usr/libexec/incus:\$PATH exec $INCUSD --group root --logfile=$WORK/incus.log" \
  >> "$WORK/incus.stdout" 2>&1 < /dev/null &
INCUSD_PID=$!
timeout 60 incus admin waitready >> "$LOG" 2>&1 || die "incusd not ready, see $WORK/incus.log"
if ! inc storage show pe-dir >/dev/null 2>&1; then
  inc storage create pe-dir dir >> "$LOG" 2>&1 || die "incus: cannot create pool pe-dir"
fi
inc profile device remove default eth0 >> "$LOG" 2>&1
inc profile device show default 2>/dev/null | grep -q 'path: /$' ||
  inc profile device add default root disk path=/ pool=pe-dir >> "$LOG" 2>&1
note "lxctld in netns $NSL, incusd $(inc version 2>/dev/null | awk '/Server/{print $3}') in netns $NSI"

for p in lxctl incus; do
  c=$(cli_of "$p"); pre=$(pre_of "$p"); net=$(net_of "$p")
  { "$c" image import "$IMAGE_TAR" --alias "${pre}bb" &&
    "$c" network create "$net" ipv4.address=$SUBNET ipv4.nat=false ipv6.address=none &&
    "$c" profile create "${pre}nic" &&
    "$c" profile device add "${pre}nic" eth0 nic network="$net" name=eth0
  } >> "$LOG" 2>&1 || die "$p: image, network or profile failed, see $LOG"
done
note "bridges lxbnet0 / penet0 $SUBNET, ipv4.nat=false, each in its daemon's netns"

# ------------------------------------------------------------------ (a) launch with a NIC
declare -A S L
for p in lxctl incus; do S[$p]=""; L[$p]=""; done
for i in $(seq "$R_LAUNCH"); do
  for p in $(order "$i"); do
    c=$(cli_of "$p"); n=$(pre_of "$p")l1
    t0=$EPOCHREALTIME
    if "$c" launch -q "$(pre_of "$p")bb" "$n" -s "$(pool_of "$p")" -p default -p "$(pre_of "$p")nic" >> "$LOG" 2>&1 &&
       wait_running "$p" "$n"; then
      t1=$EPOCHREALTIME; S[$p]+=" $(elapsed "$t0" "$t1")"
      if lease "$p" "$n"; then L[$p]+=" $(elapsed "$t0" "$EPOCHREALTIME")"; else log "$p $n: no lease"; fi
    else log "$p launch $n failed"; fi
    "$c" delete --force "$n" >> "$LOG" 2>&1
  done
done
# shellcheck disable=SC2086
for p in lxctl incus; do stats "$p" launch_nic ${S[$p]}; stats "$p" launch_lease ${L[$p]}; done

# ------------------------------------------------------------------ (b) N NICs hot-plugged
for ns in $NSL $NSI; do
  ip -n "$ns" link add lxbbr1 type bridge && ip -n "$ns" link set lxbbr1 up || die "no bridge lxbbr1"
done
for p in lxctl incus; do
  "$(cli_of "$p")" launch -q "$(pre_of "$p")bb" "$(pre_of "$p")h1" -s "$(pool_of "$p")" >> "$LOG" 2>&1 ||
    die "$p: launch for the NIC run failed"
done
for phase in attach detach; do
  for p in $(order 1); do
    c=$(cli_of "$p"); n=$(pre_of "$p")h1; ok=0
    t0=$EPOCHREALTIME
    for k in $(seq "$NICS"); do
      if [ "$phase" = attach ]; then
        "$c" config device add "$n" "eth$k" nic nictype=bridged parent=lxbbr1 name="eth$k" \
          >> "$LOG" 2>&1 && ok=$((ok + 1))
      else
        "$c" config device remove "$n" "eth$k" >> "$LOG" 2>&1 && ok=$((ok + 1))
      fi
    done
    S[$p]=$(elapsed "$t0" "$EPOCHREALTIME")
    [ "$ok" -eq "$NICS" ] || note "  WARNING: $p $phase: $ok of $NICS succeeded"
    inside=$("$c" exec "$n" -- sh -c 'ls /sys/class/net | grep -c "^eth"' 2>>"$LOG")
    log "$p after $phase: $inside eth interfaces inside"
  done
  for p in lxctl incus; do stats "$p" "nics_${phase}_$NICS" "${S[$p]}"; done
done

# ------------------------------------------------------------------ (c) list with addresses
for p in lxctl incus; do
  c=$(cli_of "$p"); pre=$(pre_of "$p")
  "$c" delete --force "${pre}h1" >> "$LOG" 2>&1
  for k in $(seq "$LN"); do
    n=$(printf '%sa%03d' "$pre" "$k")
    "$c" launch -q "${pre}bb" "$n" -s "$(pool_of "$p")" -p default -p "${pre}nic" >> "$LOG" 2>&1 &&
      wait_running "$p" "$n" && lease "$p" "$n" || log "$p $n: launch or lease failed"
  done
  got=$("$c" list --format csv -c n4 2>>"$LOG" | grep -c ',10\.252\.')
  note "  $p: $got of $LN instances with an address"
done
for p in lxctl incus; do S[$p]=""; done
for i in $(seq "$R_LIST"); do
  for p in $(order "$i"); do
    t0=$EPOCHREALTIME; "$(cli_of "$p")" list >> "$LOG" 2>&1 && S[$p]+=" $(elapsed "$t0" "$EPOCHREALTIME")"
  done
done
# shellcheck disable=SC2086
for p in lxctl incus; do stats "$p" "list_$LN" ${S[$p]}; done
for p in lxctl incus; do
  # shellcheck disable=SC2046
  "$(cli_of "$p")" delete --force $(own "$p" | grep -- "-a") >> "$LOG" 2>&1
done

# ------------------------------------------------------------------ (d) degraded start (lxctl)
ip -n $NSL link add lxbp0 type veth peer name lxbp0b
lx network create lxbmv0 --type macvlan parent=lxbp0 >> "$LOG" 2>&1 || die "macvlan network failed"
lx init -q lxb-n-bb lxb-n-d1 -c boot.autostart=true >> "$LOG" 2>&1
lx network attach lxbmv0 lxb-n-d1 eth0 >> "$LOG" 2>&1
lx start lxb-n-d1 >> "$LOG" 2>&1
lx admin shutdown >> "$LOG" 2>&1
for _ in $(seq 100); do kill -0 "$LXCTLD_PID" 2>/dev/null || break; sleep 0.1; done
ip -n $NSL link del lxbp0
ip netns exec $NSL setsid "$LXCTLD" >> "$WORK/lxctld.log" 2>&1 < /dev/null &
LXCTLD_PID=$!
lx admin waitready --timeout 30 >> "$LOG" 2>&1 || die "lxctld not ready again"
sleep 1
[ "$(state_of lxctl lxb-n-d1)" = STOPPED ] || note "  WARNING: lxb-n-d1 not waiting (state $(state_of lxctl lxb-n-d1))"
t0=$EPOCHREALTIME
ip -n $NSL link add lxbp0 type veth peer name lxbp0b
if wait_running lxctl lxb-n-d1; then
  RESULT[lxctl:degraded_s]=$(elapsed "$t0" "$EPOCHREALTIME")
  echo "lxctl degraded_s ${RESULT[lxctl:degraded_s]} s (goal < 2 s; Incus retries every 60 s)"
fi
lx delete --force lxb-n-d1 >> "$LOG" 2>&1

# ------------------------------------------------------------------ ratios
echo
note "ratio = lxctl / incus, both measured side by side in this run"
printf '%-20s %10s %10s %8s\n' metric lxctl incus ratio
for m in launch_nic launch_lease "nics_attach_$NICS" "nics_detach_$NICS" "list_$LN"; do
  a=${RESULT[lxctl:$m]:-NaN}; b=${RESULT[incus:$m]:-NaN}
  awk -v m="$m" -v a="$a" -v b="$b" 'BEGIN{ r = (a=="NaN" || b=="NaN" || b+0==0) ? "n/a" : sprintf("%.3f", a/b)
    printf "%-20s %10s %10s %8s\n", m, a, b, r }'
done
