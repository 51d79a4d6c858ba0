#!/bin/bash
# Install what lxctl needs on Debian 12 (as root): Debian packages, subordinate ids,
# the lxctl group, a virtualenv in .venv with lxctl installed (editable), and the
# lxctl/lxctld commands in /usr/local/bin. Safe to run again; fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ "$(id -u)" = 0 ] || { echo "setup.sh: run as root" >&2; exit 1; }

PACKAGES=(lxc lxc-dev uidmap busybox-static pkg-config python3-venv python3-dev gcc tar
          util-linux lxcfs
          btrfs-progs zfs-fuse lvm2 rsync  # storage drivers (lvm: its tools, for parsing)
          dnsmasq-base nftables iproute2  # network drivers (bridge: DHCP/DNS, NAT)
          openvswitch-switch ovn-central ovn-host)  # ovn networks (services left stopped)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  apt-get update -qq
  # no package's service is started by the install (Open vSwitch and OVN run privately,
  # per daemon or test, never as the host's services)
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $policy; chmod 755 $policy
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$policy" ] || rm -f "$policy"
fi

# Unprivileged containers: root needs one subordinate id range (any existing one is kept).
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  grep -q '^root:' "$f" || echo 'root:1000000:1000000000' >> "$f"
done
getent group lxctl >/dev/null || groupadd --system lxctl

# Python: a venv of Debian's interpreter (starts in ~20 ms; the pyenv shim costs ~170 ms).
[ -x .venv/bin/python ] || /usr/bin/python3 -m venv .venv
stamp=.venv/.lxctl-installed
want=$(cat pyproject.toml contrib/example-plugin/pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
  .venv/bin/pip install -q --disable-pip-version-check -e ".[daemon,test]"
  echo "$want" > $stamp
fi
# setuptools maps core/ -> lxctl and plugins/ -> lxctl_plugins with an import-hook finder
# that every interpreter start loads (~8 ms, with pathlib). Plain symlinks in
# site-packages give the same editable install at no start-up cost; the dist-info
# (entry points, console scripts) stays as pip wrote it.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -f "$site"/__editable__.lxctl-*.pth "$site"/__editable___lxctl_*_finder.py
ln -sfn "$ROOT/core" "$site/lxctl"
ln -sfn "$ROOT/plugins" "$site/lxctl_plugins"
# The client's launcher skips site processing (-S): .pth files and site add ~10 ms to
# every command. It puts site-packages on sys.path itself and calls the entry point pip
# declared (lxctl.cli.main:main).
cat > .venv/bin/lxctl <<LAUNCHER
#!$ROOT/.venv/bin/python3 -S
import sys
sys.path.append("$site")
from lxctl.cli.main import main
main()
LAUNCHER
chmod 755 .venv/bin/lxctl
# Byte-compile now: with PYTHONDONTWRITEBYTECODE set, every client start would recompile.
.venv/bin/python -m compileall -q core plugins
ln -sf "$ROOT/.venv/bin/lxctl" /usr/local/bin/lxctl
ln -sf "$ROOT/.venv/bin/lxctld" /usr/local/bin/lxctld
echo "setup.sh: ready ($(.venv/bin/lxctl --version | head -1))"
