"""Configuration: where the daemon keeps its state, and declared, validated keys.

Daemon settings come from ``$LXCTL_DIR/lxctld.toml`` (optional). Instance config keys
follow Incus's names. Every key is declared with a validator; an unknown key is an
error that names it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxctl import paths
from lxctl.errors import InvalidArgument


def state_dir() -> Path:
    return Path(paths.state_dir())


def socket_path(directory: Path | None = None) -> Path:
    return Path(paths.socket_path(str(directory) if directory else None))


# ---------------------------------------------------------------------------- daemon
@dataclass
class DaemonConfig:
    disabled_plugins: list[str] = field(default_factory=list)
    max_message_size: int = 4 * 1024 * 1024
    log_level: str = "info"
    socket_group: str = "lxctl"
    shutdown_timeout: float = 30.0


_DAEMON_KEYS: dict[str, tuple[str, type]] = {
    "plugins.disabled": ("disabled_plugins", list),
    "rpc.max_message_size": ("max_message_size", int),
    "log.level": ("log_level", str),
    "socket.group": ("socket_group", str),
    "shutdown.timeout": ("shutdown_timeout", float),
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
        if not isinstance(value, typ) or isinstance(value, bool):
            raise InvalidArgument(f"{path}: key {key!r} must be of type {typ.__name__}", key=key)
        setattr(cfg, attr, value)
    return cfg


# ---------------------------------------------------------------------------- instance
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|kB|MB|GB|TB|KiB|MiB|GiB|TiB)?$")
_BOOL = ("true", "false", "1", "0", "yes", "no", "on", "off")


def _bool(v: str) -> None:
    if v.lower() not in _BOOL:
        raise ValueError("must be true or false")


def _int(v: str) -> None:
    if not v.isdigit():
        raise ValueError("must be a non-negative integer")


def _size(v: str) -> None:
    if not _SIZE.match(v) and not re.fullmatch(r"\d{1,3}%", v):
        raise ValueError("must be a size such as 256MiB or a percentage")


def _any(v: str) -> None:
    return None


def _power(v: str) -> None:
    if v not in ("Running", "Stopped", "Frozen"):
        raise ValueError("must be Running, Stopped or Frozen")


INSTANCE_KEYS: dict[str, Callable[[str], None]] = {
    "security.privileged": _bool,
    "security.nesting": _bool,
    "security.protection.delete": _bool,
    "security.protection.start": _bool,
    "limits.memory": _size,
    "limits.processes": _int,
    "boot.autostart": _bool,
    "raw.lxc": _any,
}
INSTANCE_NAMESPACES: dict[str, Callable[[str], None]] = {
    "user.": _any,
    "environment.": _any,
    "image.": _any,
}
VOLATILE_PREFIX = "volatile."


def is_true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes", "on")


def check_instance_config(config: dict[str, str], *, allow_volatile: bool = False) -> None:
    """Raise InvalidArgument naming the first unknown or invalid key."""
    for key, value in config.items():
        if not isinstance(value, str):
            raise InvalidArgument(f"Config key {key!r} must have a string value", key=key)
        if key.startswith(VOLATILE_PREFIX):
            if allow_volatile:
                continue
            raise InvalidArgument(f"Config key {key!r} is managed by the daemon", key=key)
        check = INSTANCE_KEYS.get(key) or next(
            (v for p, v in INSTANCE_NAMESPACES.items() if key.startswith(p) and key != p), None
        )
        if check is None:
            raise InvalidArgument(f"Unknown configuration key: {key}", key=key)
        try:
            check(value)
        except ValueError as exc:
            raise InvalidArgument(f"Invalid value for {key!r}: {value!r} {exc}", key=key) from None


_UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def parse_size(value: str) -> int:
    m = _SIZE.match(value)
    if not m:
        raise InvalidArgument(f"Invalid size {value!r}")
    number = float(value.rstrip("BkMGTi ").strip()) if m.group(2) else float(value)
    return int(number * _UNITS[m.group(2) or "B"])
