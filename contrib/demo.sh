#!/bin/bash
# Set up lxctl, start lxctld on the embedded default (SQLite state, `dir` pool) and
# launch a demo container from a busybox image built on this host. As root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/setup.sh
export LXCTL_DIR=${LXCTL_DIR:-/var/lib/lxctl}
if ! lxctl admin waitready --timeout 0.2 >/dev/null 2>&1; then
  echo "demo: starting lxctld (LXCTL_DIR=$LXCTL_DIR, log /var/log/lxctld.log)"
  setsid nohup lxctld >>/var/log/lxctld.log 2>&1 </dev/null &
fi
lxctl admin waitready --timeout 30
lxctl image show busybox >/dev/null 2>&1 || lxctl image build busybox --alias busybox
lxctl list --format csv --columns n | grep -qx demo || lxctl launch busybox demo
lxctl exec demo -- sh -c 'echo "hello from $(hostname), uid $(id -u) inside"; cat /proc/1/comm'
lxctl list
echo "demo: try 'lxctl exec demo -- sh', 'lxctl info demo', 'lxctl delete --force demo'"
