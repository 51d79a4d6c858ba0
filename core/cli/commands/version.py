"""``lxctl version``: kept apart so that it imports nothing but the connection."""

from __future__ import annotations

import sys

from lxctl import __version__
from lxctl.cli.connection import ConnectionFailed, RpcError, connect


def version(command: str, args: list[str]) -> int:
    lines = [f"Client version: {__version__}"]
    try:
        lines.append(f"Server version: {connect().call('server.version')['server_version']}")
    except (ConnectionFailed, RpcError):
        lines.append("Server version: unreachable")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
