"""The instance keys the core itself declares (Incus's names). Drivers add their own
(``raw.lxc`` comes with the LXC plugin)."""

from __future__ import annotations

import re
from collections.abc import Callable

from lxctl.config.schema import ConfigKey, KeyType, Scope


def _cpus(value: str) -> None:
    """A CPU count (``2``) or a pinning set (``0-1,3``)."""
    if value.isdigit():
        if int(value) < 1:
            raise ValueError("must be at least 1")
        return
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
        raise ValueError("must be a count (2) or a set of CPUs (0-1,3)")


def _allowance(value: str) -> None:
    """``50%`` (of one CPU's time, as a share) or ``25ms/100ms`` (a hard quota)."""
    if re.fullmatch(r"\d{1,3}%", value) and 0 < int(value[:-1]) <= 100:
        return
    if not re.fullmatch(r"\d+ms/\d+ms", value):
        raise ValueError("must be a percentage (50%) or a quota (25ms/100ms)")


def _one_of(*values: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in values:
            raise ValueError(f"must be one of {', '.join(values)}")
    return check


EXPIRY_UNITS = {"M": 60, "H": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400,
                "y": 365 * 86400}


def expiry_seconds(value: str) -> int:
    """``snapshots.expiry`` (``1d 2H``) in seconds; ValueError with the reason."""
    total = 0
    for part in value.split():
        m = re.fullmatch(r"(\d+)([MHdwmy])", part)
        if m is None:
            raise ValueError(f"{part!r} is not <number><unit> (units: M H d w m y)")
        total += int(m[1]) * EXPIRY_UNITS[m[2]]
    return total


def _expiry(value: str) -> None:
    expiry_seconds(value)


def _snapshot_pattern(value: str) -> None:
    if value.count("%d") > 1 or "/" in value or not value.strip():
        raise ValueError("must be a name with at most one %d, without '/'")


_I = Scope.INSTANCE
INSTANCE_KEYS = (
    ConfigKey("security.privileged", _I, KeyType.BOOL, "false",
              doc="Run without a user namespace (root in the instance is root on the host)"),
    ConfigKey("security.idmap.isolated", _I, KeyType.BOOL, "false",
              doc="An id map of the instance's own (unprivileged), not shared with "
                  "other instances; chosen at creation"),
    ConfigKey("security.nesting", _I, KeyType.BOOL, "false", live=True,
              doc="Allow running containers inside the instance"),
    ConfigKey("security.protection.delete", _I, KeyType.BOOL, "false", live=True,
              doc="Refuse to delete the instance"),
    ConfigKey("security.protection.start", _I, KeyType.BOOL, "false", live=True,
              doc="Refuse to start the instance"),
    ConfigKey("limits.memory", _I, KeyType.SIZE, live=True,
              doc="Memory limit, in bytes (256MiB) or as a percentage of the host's"),
    ConfigKey("limits.processes", _I, KeyType.INTEGER, live=True,
              doc="Maximum number of processes"),
    ConfigKey("limits.cpu", _I, live=True, validate=_cpus,
              doc="CPUs: a count (spread from CPU 0) or a set to pin to (0-1,3)"),
    ConfigKey("limits.cpu.allowance", _I, live=True, validate=_allowance,
              doc="CPU time: 50% (a share under contention) or 25ms/100ms (a hard quota)"),
    ConfigKey("limits.memory.swap", _I, KeyType.BOOL, "true", live=True,
              doc="Whether the instance may use swap beyond limits.memory"),

    ConfigKey("boot.autostart", _I, KeyType.BOOL, live=True,
              doc="Start the instance when the daemon starts, whatever its last state"),
    ConfigKey("boot.autostart.priority", _I, KeyType.INTEGER, "0", live=True,
              doc="Order of the start when the daemon starts: higher first (ties by name)"),
    ConfigKey("boot.autostart.delay", _I, KeyType.INTEGER, "0", live=True,
              doc="Seconds to wait after starting the instance before starting the next"),
    ConfigKey("boot.host_shutdown_action", _I, KeyType.STRING, "stop", live=True,
              validate=_one_of("stop", "force-stop", "stateful-stop"),
              doc="What 'admin shutdown' does to the instance: stop (cleanly, within "
                  "boot.host_shutdown_timeout), force-stop, or stateful-stop where the "
                  "hypervisor can (else a clean stop)"),
    ConfigKey("boot.host_shutdown_timeout", _I, KeyType.INTEGER, live=True,
              doc="Seconds a clean stop at 'admin shutdown' may take before the instance "
                  "is killed (default: the shutdown's own timeout)"),
    ConfigKey("cloud-init.user-data", _I,
              doc="cloud-init user data (#cloud-config ...), in the NoCloud seed"),
    ConfigKey("cloud-init.vendor-data", _I, doc="cloud-init vendor data, in the NoCloud seed"),
    ConfigKey("cloud-init.network-config", _I,
              doc="cloud-init network configuration, in the NoCloud seed"),
    ConfigKey("snapshots.pattern", _I, KeyType.STRING, "snap%d", live=True,
              validate=_snapshot_pattern,
              doc="Name of a snapshot made without one: %d becomes the lowest free number"),
    ConfigKey("snapshots.expiry", _I, KeyType.STRING, live=True, validate=_expiry,
              doc="When a new snapshot expires: e.g. 1M 2H 3d 4w 5m 6y (minutes, hours, "
                  "days, weeks, months, years); empty: never"),
    ConfigKey("user.", _I, live=True, doc="Free-form user keys"),
    ConfigKey("environment.", _I, live=True, doc="Environment variables for exec"),
    ConfigKey("image.", _I, doc="Properties of the image the instance was made from"),
)
