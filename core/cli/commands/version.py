"""``lxctl version``: kept apart so that it imports nothing but the connection."""

from __future__ import annotations

import sys

from lxctl import __version__
from lxctl.cli.connection import ConnectionFailed, RpcError, connect

USAGE = """Usage: lxctl version

Show the client's and the daemon's versions.
"""


def version(command: str, args: list[str]) -> int:
    if args[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    if args:  # parsed by hand, as exec: argparse alone costs ~5 ms a start
        what = "flag" if args[0].startswith("-") else "argument"
        raise ValueError(f"unknown {what} {args[0]!r} for version (see 'lxctl version --help')")
    lines = [f"Client version: {__version__}"]
    try:
        lines.append(f"Server version: {connect().call('server.version')['server_version']}")
    except (ConnectionFailed, RpcError):
        lines.append("Server version: unreachable")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
