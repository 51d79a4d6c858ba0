"""The LXC configuration file of one container, written by us (never read back).

python-lxc's ``set_config_item`` silently drops values it cannot read back, so the
whole file is rendered here, devices included. Cgroups go under a per-daemon prefix
(``lxctl.<id>``) so that two daemons may run containers of the same name.
"""

from __future__ import annotations

from pathlib import Path

from lxctl.public import (
    Device,
    DiskDevice,
    IdMap,
    InvalidArgument,
    MountedVolume,
    NicDevice,
    UnixDevice,
    is_true,
)

from .lxcfs import mount_entries

COMMON = Path("/usr/share/lxc/config/common.conf")
USERNS = Path("/usr/share/lxc/config/userns.conf")
SECCOMP = Path("/usr/share/lxc/config/common.seccomp")  # LXC's default deny list
APPARMOR = Path("/sys/module/apparmor/parameters/enabled")
CONSOLE_LOG = "console.log"
CONSOLE_SIZE = "1MB"  # the ring buffer and the log file's cap (one rotated copy kept)
DEVICE_TYPES = frozenset({"disk", "nic", "unix-char", "unix-block", "proxy"})
# disks and unix devices by mount injection, proxies by starting their forwarder, NICs
# by moving an interface into the network namespace (nics)
HOTPLUG_TYPES = frozenset({"disk", "unix-char", "unix-block", "proxy", "nic"})


def cgroup_prefix(daemon_id: str) -> str:
    return f"lxctl.{daemon_id}"


def rootfs_path(root: MountedVolume) -> str:
    if root.lower is None:
        return f"dir:{root.path}"
    return f"overlay:{root.lower}:{root.path}"  # LXC puts the workdir beside the upper


def root_of(devices: list[Device]) -> MountedVolume:
    for device in devices:
        if isinstance(device, DiskDevice) and device.path == "/":
            return device.source
    raise InvalidArgument("The instance has no root disk")


def _disk(device: DiskDevice) -> list[str]:
    options = ["bind", "create=dir" if device.source.path.is_dir() else "create=file"]
    if device.readonly:
        options.append("ro")
    if not device.required:
        options.append("optional")
    target = device.path.lstrip("/")
    return [f"lxc.mount.entry = {device.source.path} {target} none {','.join(options)} 0 0"]


def _nic(index: int, nic: NicDevice) -> list[str]:
    key = f"lxc.net.{index}"
    lines = [f"{key}.type = {nic.kind}", f"{key}.name = {nic.name_in_instance}",
             f"{key}.flags = up"]
    if nic.link:
        lines.append(f"{key}.link = {nic.link}")
    if nic.kind == "veth" and nic.host_name:
        lines.append(f"{key}.veth.pair = {nic.host_name}")
    if nic.kind == "veth" and nic.vlan is not None:
        lines.append(f"{key}.veth.vlan.id = {nic.vlan}")
    if nic.kind == "macvlan":
        lines.append(f"{key}.macvlan.mode = {nic.mode or 'bridge'}")
    if nic.hwaddr:
        lines.append(f"{key}.hwaddr = {nic.hwaddr}")
    if nic.mtu:
        lines.append(f"{key}.mtu = {nic.mtu}")
    if nic.ipv4_address:
        lines.append(f"{key}.ipv4.address = {nic.ipv4_address}")
    if nic.ipv6_address:
        lines.append(f"{key}.ipv6.address = {nic.ipv6_address}")
    return lines


def device_rule(device: UnixDevice) -> str:
    """Its line in the devices cgroup (``c 1:3 rwm``)."""
    kind = "c" if device.kind == "unix-char" else "b"
    return f"{kind} {device.major}:{device.minor} rwm"


def _unix(device: UnixDevice) -> list[str]:
    rule = device_rule(device)
    return [f"lxc.cgroup.devices.allow = {rule}", f"lxc.cgroup2.devices.allow = {rule}",
            f"lxc.mount.entry = {device.source} {device.path.lstrip('/')} none "
            "bind,create=file 0 0"]


def apparmor_enabled() -> bool:
    try:
        return APPARMOR.read_text().strip().upper().startswith("Y")
    except OSError:
        return False


def render(
    *, name: str, root: MountedVolume, config: dict[str, str], idmap: IdMap | None,
    cgroup_dir: str, log_file: Path, console_log: Path | None = None,
    devices: list[Device] | None = None, cgroup_name: str | None = None,
    cgroup_limits: dict[str, str] | None = None, lxcfs: Path | None = None,
) -> str:
    cgroup_name = cgroup_name or name
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
        f"lxc.cgroup.dir.container = {cgroup_dir}/{cgroup_name}",
        f"lxc.cgroup.dir.monitor = {cgroup_dir}/{cgroup_name}.mon",
        f"lxc.cgroup.dir.monitor.pivot = {cgroup_dir}",
        f"lxc.log.file = {log_file}",
        "lxc.log.level = WARN",
    ]
    if SECCOMP.exists():  # common.conf includes it too: stated here, so it is visible
        lines.append(f"lxc.seccomp.profile = {SECCOMP}")
    if console_log is not None:
        lines += [f"lxc.console.logfile = {console_log}", f"lxc.console.size = {CONSOLE_SIZE}",
                  "lxc.console.rotate = 1"]
    nics = [d for d in devices or [] if isinstance(d, NicDevice)]
    if not nics:
        lines.append("lxc.net.0.type = empty")
    for index, nic in enumerate(nics):
        lines += _nic(index, nic)
    for device in devices or []:
        if isinstance(device, DiskDevice) and device.path != "/":
            lines += _disk(device)
        elif isinstance(device, UnixDevice):
            lines += _unix(device)
    if is_true(config.get("security.nesting")):
        if idmap is None:
            lines.append("lxc.mount.auto = cgroup:mixed:force")
        else:  # an unprivileged one may mount proc and sysfs of its own nested containers
            lines.append("lxc.mount.auto = proc:rw sys:rw cgroup:rw")
        if apparmor_enabled():
            lines.append("lxc.apparmor.allow_nesting = 1")
    if lxcfs is not None:
        lines += mount_entries(lxcfs)
    for key, value in (cgroup_limits or {}).items():
        lines.append(f"lxc.cgroup.{key} = {value}")
    raw = config.get("raw.lxc")
    if raw:
        lines += ["# raw.lxc", *raw.splitlines()]
    return "\n".join(lines) + "\n"
