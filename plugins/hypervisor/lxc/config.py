"""The LXC configuration file of one container, written by us (never read back).

python-lxc's ``set_config_item`` silently drops values it cannot read back, so the
whole file is rendered here. Cgroups go under a per-daemon prefix (``lxctl.<id>``) so
that two daemons may run containers of the same name.
"""

from __future__ import annotations

from pathlib import Path

from lxctl.config import is_true, parse_size
from lxctl.drivers import RootVolume
from lxctl.objects.idmap import IdMap

COMMON = Path("/usr/share/lxc/config/common.conf")
USERNS = Path("/usr/share/lxc/config/userns.conf")


def cgroup_prefix(daemon_id: str) -> str:
    return f"lxctl.{daemon_id}"


def rootfs_path(root: RootVolume) -> str:
    if root.lower is None:
        return f"dir:{root.path}"
    return f"overlay:{root.lower}:{root.path}"  # LXC puts the workdir beside the upper


def render(
    *, name: str, root: RootVolume, config: dict[str, str], idmap: IdMap | None,
    cgroup_dir: str, log_file: Path,
) -> str:
    lines = [
        "# Written by lxctld; edits are overwritten. Use raw.lxc for extra keys.",
        f"lxc.include = {COMMON}",
    ]
    if idmap is not None:
        lines.append(f"lxc.include = {USERNS}")
        lines += idmap.lxc_config()
    lines += [
        "lxc.hook.post-stop =",  # Debian's lxcfs hook is a 0.5 s sleep on every stop
        "lxc.arch = linux64",
        f"lxc.uts.name = {name}",
        f"lxc.rootfs.path = {rootfs_path(root)}",
        "lxc.net.0.type = empty",
        f"lxc.cgroup.dir.container = {cgroup_dir}/{name}",
        f"lxc.cgroup.dir.monitor = {cgroup_dir}/{name}.mon",
        f"lxc.cgroup.dir.monitor.pivot = {cgroup_dir}",
        f"lxc.log.file = {log_file}",
        "lxc.log.level = WARN",
    ]
    if idmap is None and is_true(config.get("security.nesting")):
        lines.append("lxc.mount.auto = cgroup:mixed:force")
    memory = config.get("limits.memory")
    if memory and not memory.endswith("%"):
        size = parse_size(memory)
        lines += [f"lxc.cgroup.memory.limit_in_bytes = {size}",
                  f"lxc.cgroup.memory.memsw.limit_in_bytes = {size}"]
    processes = config.get("limits.processes")
    if processes:
        lines.append(f"lxc.cgroup.pids.max = {int(processes)}")
    raw = config.get("raw.lxc")
    if raw:
        lines += ["# raw.lxc", *raw.splitlines()]
    return "\n".join(lines) + "\n"
