"""The daemon's own settings: ``$LXCTL_DIR/lxctld.toml`` (optional); unknown keys are
refused with their name."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxctl import paths
from lxctl.errors import InvalidArgument


def state_dir() -> Path:
    return Path(paths.state_dir())


def socket_path(directory: Path | None = None) -> Path:
    return Path(paths.socket_path(str(directory) if directory else None))


@dataclass
class DaemonConfig:
    disabled_plugins: list[str] = field(default_factory=list)
    max_message_size: int = 4 * 1024 * 1024
    log_level: str = "info"
    socket_group: str = "lxctl"
    shutdown_timeout: float = 30.0
    retry_max_interval: float = 30.0  # degraded start: longest wait between retries
    events_backlog: int = 4096  # events kept for subscribers that resume from an id
    events_queue: int = 1024  # events a subscriber may fall behind before it is dropped
    hooks_dir: str = ""  # hook scripts: <dir>/<event-type>/*; "": $LXCTL_DIR/hooks.d
    hooks_timeout: float = 30.0  # a hook run is killed after this many seconds
    hooks_concurrency: int = 8  # hook runs at once; more are dropped with a warning
    default_pool_driver: str = "dir"  # the driver of the ``default`` pool made at first start
    # copies between two pools of one driver: its native transfer (btrfs send/receive, zfs
    # send/recv); false: rsync, as between drivers (to compare them, or to avoid a stream)
    native_transfers: bool = True
    snapshots_prune_interval: float = 60.0  # seconds between deletions of expired snapshots
    # OVN networks: the northbound DB, the local Open vSwitch DB and its integration bridge
    ovn_northbound: str = ""  # e.g. unix:/run/ovn/ovnnb_db.sock; "": OVN networks unavailable
    ovs_connection: str = ""  # ovs-vsctl --db (""; its default, unix:/run/openvswitch/db.sock)
    ovn_integration_bridge: str = "br-int"

    def driver_settings(self) -> dict[str, str]:
        """The settings drivers read (``DriverContext.settings``), by their file keys."""
        return {"network.ovn.northbound_connection": self.ovn_northbound,
                "network.ovs.connection": self.ovs_connection,
                "network.ovn.integration_bridge": self.ovn_integration_bridge}


_DAEMON_KEYS: dict[str, tuple[str, type]] = {
    "plugins.disabled": ("disabled_plugins", list),
    "rpc.max_message_size": ("max_message_size", int),
    "log.level": ("log_level", str),
    "socket.group": ("socket_group", str),
    "shutdown.timeout": ("shutdown_timeout", float),
    "retry.max_interval": ("retry_max_interval", float),
    "events.backlog": ("events_backlog", int),
    "events.queue": ("events_queue", int),
    "hooks.directory": ("hooks_dir", str),
    "hooks.timeout": ("hooks_timeout", float),
    "hooks.concurrency": ("hooks_concurrency", int),
    "storage.default_driver": ("default_pool_driver", str),
    "storage.native_transfers": ("native_transfers", bool),
    "snapshots.prune_interval": ("snapshots_prune_interval", float),
    "network.ovn.northbound_connection": ("ovn_northbound", str),
    "network.ovs.connection": ("ovs_connection", str),
    "network.ovn.integration_bridge": ("ovn_integration_bridge", str),
}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_daemon_config(directory: Path) -> DaemonConfig:
    cfg = DaemonConfig()
    path = directory / "lxctld.toml"
    if not path.exists():
        return cfg
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path}: {exc}") from None
    for key, value in _flatten(data).items():
        if key not in _DAEMON_KEYS:
            raise InvalidArgument(f"{path}: unknown key {key!r} "
                                  f"(known: {', '.join(sorted(_DAEMON_KEYS))})", key=key)
        attr, typ = _DAEMON_KEYS[key]
        if typ is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
            raise InvalidArgument(f"{path}: key {key!r} must be of type {typ.__name__}", key=key)
        setattr(cfg, attr, value)
    return cfg
