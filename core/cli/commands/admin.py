"""The daemon itself: ``lxctl admin waitready|shutdown``."""

from __future__ import annotations

import time

from lxctl.cli.args import ArgumentParser
from lxctl.cli.connection import ConnectionFailed, RpcError, connect


def admin(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl admin", description="Manage the daemon")
    sub = p.add_subparsers(dest="verb", required=True)
    w = sub.add_parser("waitready", help="Wait until the daemon is ready")
    w.add_argument("-t", "--timeout", type=float, default=0)
    w.add_argument("--network", action="store_true",
                   help="Also wait until every network is up (none Unavailable)")
    s = sub.add_parser("shutdown", help="Stop all instances and the daemon")
    s.add_argument("-t", "--timeout", type=float, default=30)
    s.add_argument("-f", "--force", action="store_true")
    opts = p.parse_args(args)
    if opts.verb == "waitready":
        started = time.monotonic()
        _waitready(opts.timeout)
        if opts.network:
            left = opts.timeout - (time.monotonic() - started) if opts.timeout > 0 else 0
            return _wait_networks(left if opts.timeout <= 0 or left > 0 else 0.001)
        return 0
    client = connect()
    client.call("server.shutdown", {"force": opts.force, "timeout": opts.timeout})
    while client.read_messages() is not None:  # the daemon closes the socket as it exits
        pass
    return 0


def _waitready(timeout: float) -> int:
    """Wait until the daemon answers ``server.ready``; ``timeout`` (> 0) bounds it all:
    connection attempts, the call, the pauses between attempts."""
    deadline = time.monotonic() + timeout if timeout > 0 else None
    last = ""
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise ConnectionFailed(f"Daemon still not running after {timeout:g}s timeout "
                                   f"({last or 'timed out'})")
        try:
            client = connect(timeout=remaining)
            client.deadline = deadline
            try:
                client.call("server.ready")
                return 0
            finally:
                client.close()
        except (ConnectionFailed, RpcError, OSError) as exc:  # OSError: also TimeoutError
            last = str(exc)
        pause = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
        if pause > 0:
            time.sleep(pause)


def _wait_networks(timeout: float) -> int:
    """Poll ``network.list`` until no network is Unavailable (``timeout`` > 0 bounds it)."""
    deadline = time.monotonic() + timeout if timeout > 0 else None
    client = connect()
    while True:
        down = [f"{n['name']} ({n['reason']})" for n in client.call("network.list")
                if n["status"] == "Unavailable"]
        if not down:
            return 0
        if deadline is not None and time.monotonic() >= deadline:
            raise ConnectionFailed(f"Networks still unavailable after {timeout:g}s: "
                                   f"{', '.join(down)}")
        time.sleep(0.1)
