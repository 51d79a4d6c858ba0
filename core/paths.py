"""Where a daemon keeps its state and socket. Imported by the client: ``os`` only."""

from __future__ import annotations

import os

DEFAULT_DIR = "/var/lib/lxctl"


def state_dir() -> str:
    """``$LXCTL_DIR``, or /var/lib/lxctl: used by the daemon and the client alike."""
    return os.environ.get("LXCTL_DIR") or DEFAULT_DIR


def socket_path(directory: str | None = None) -> str:
    return os.path.join(directory or state_dir(), "unix.socket")
