"""The instance keys the core itself declares (Incus's names). Drivers add their own
(``raw.lxc`` comes with the LXC plugin)."""

from __future__ import annotations

from lxctl.config.schema import ConfigKey, KeyType, Scope


def _power(value: str) -> None:
    if value not in ("Running", "Stopped", "Frozen"):
        raise ValueError("must be Running, Stopped or Frozen")


_I = Scope.INSTANCE
INSTANCE_KEYS = (
    ConfigKey("security.privileged", _I, KeyType.BOOL, "false",
              doc="Run without a user namespace (root in the instance is root on the host)"),
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
    ConfigKey("boot.autostart", _I, KeyType.BOOL, live=True,
              doc="Start the instance when the daemon starts, whatever its last state"),
    ConfigKey("user.", _I, live=True, doc="Free-form user keys"),
    ConfigKey("environment.", _I, live=True, doc="Environment variables for exec"),
    ConfigKey("image.", _I, doc="Properties of the image the instance was made from"),
)
