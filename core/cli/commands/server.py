"""Daemon-level commands: monitor, operation, admin, storage, profile, version."""

from __future__ import annotations

import sys
import time
from typing import Any

from lxctl.cli import wire
from lxctl.cli.args import ArgumentParser
from lxctl.cli.connection import ConnectionFailed, RpcError, connect
from lxctl.cli.output import check_format, render_rows, write


# ---------------------------------------------------------------------------- monitor
def monitor(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl monitor", description="Print daemon events")
    p.add_argument("-t", "--type", action="append", default=[],
                   help="lifecycle, operation or logging (repeatable)")
    p.add_argument("-f", "--format", choices=("json", "yaml", "pretty"), default="yaml")
    p.add_argument("--pretty", action="store_true")
    opts = p.parse_args(args)
    fmt = "pretty" if opts.pretty else opts.format
    client = connect()

    def show(method: str, params: dict[str, Any]) -> None:
        if method != "event":
            if method == "events.dropped":
                sys.stderr.write("Error: the daemon dropped this monitor (too slow)\n")
            return
        if fmt == "json":
            write(wire.dumps(params).decode() + "\n")
        elif fmt == "yaml":
            import yaml

            write(yaml.safe_dump(params, sort_keys=False) + "\n")
        else:
            meta = params.get("metadata", {})
            what = meta.get("action") or meta.get("description") or ""
            extra = meta.get("source") or meta.get("status") or ""
            write(f"{params['timestamp']} {params['type']} {what} {extra}\n")

    client.on_notification = show
    client.call("events.subscribe", {"types": [t for types in opts.type
                                               for t in types.split(",") if t]})
    try:
        while True:
            client.poll(-1)  # events arrive as notifications, shown by show()
    except ConnectionFailed:
        return 0


# ---------------------------------------------------------------------------- operations
def operation(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl operation", description="Manage operations")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "ls"):
        ls = sub.add_parser(verb)
        ls.add_argument("-f", "--format", default="table")
    for verb in ("show", "cancel", "delete", "rm"):
        sub.add_parser(verb).add_argument("id")
    w = sub.add_parser("wait")
    w.add_argument("id")
    w.add_argument("--timeout", type=float, default=-1)
    opts = p.parse_args(args)
    client = connect()
    verb = {"ls": "list", "delete": "cancel", "rm": "cancel"}.get(opts.verb, opts.verb)
    if verb == "list":
        check_format(opts.format)
        ops = client.call("operation.list")
        rows = [[o["id"], o["class"].upper(), o["description"], o["status"].upper(),
                 "YES" if o["may_cancel"] else "NO", o["created_at"]] for o in ops]
        write(render_rows(opts.format, ["ID", "TYPE", "DESCRIPTION", "STATUS", "CANCELABLE",
                                        "CREATED"], rows, ops))
        return 0
    import yaml

    if verb == "show":
        write(yaml.safe_dump(client.call("operation.get", {"id": opts.id}), sort_keys=False))
    elif verb == "wait":
        op = client.call("operation.wait", {"id": opts.id, "timeout": opts.timeout})
        write(yaml.safe_dump(op, sort_keys=False))
        return 0 if op["status"] in ("Success", "Running") else 1
    else:
        client.call("operation.cancel", {"id": opts.id})
    return 0


# ---------------------------------------------------------------------------- admin
def admin(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl admin", description="Manage the daemon")
    sub = p.add_subparsers(dest="verb", required=True)
    w = sub.add_parser("waitready", help="Wait until the daemon is ready")
    w.add_argument("-t", "--timeout", type=float, default=0)
    s = sub.add_parser("shutdown", help="Stop all instances and the daemon")
    s.add_argument("-t", "--timeout", type=float, default=30)
    s.add_argument("-f", "--force", action="store_true")
    opts = p.parse_args(args)
    if opts.verb == "waitready":
        return _waitready(opts.timeout)
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


# ---------------------------------------------------------------------------- storage
def storage(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl storage", description="Manage storage pools")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "ls"):
        sub.add_parser(verb).add_argument("-f", "--format", default="table")
    opts = p.parse_args(args)
    check_format(opts.format)
    pools = connect().call("storage.list")
    rows = [[x["name"], x["driver"], x["description"], x["status"].upper()] for x in pools]
    write(render_rows(opts.format, ["NAME", "DRIVER", "DESCRIPTION", "STATE"], rows, pools))
    return 0


def profile(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl profile", description="Manage profiles")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "ls"):
        sub.add_parser(verb).add_argument("-f", "--format", default="table")
    sub.add_parser("show").add_argument("name")
    opts = p.parse_args(args)
    client = connect()
    if opts.verb == "show":
        import yaml

        write(yaml.safe_dump(client.call("profile.get", {"name": opts.name}), sort_keys=False))
        return 0
    check_format(opts.format)
    profiles = client.call("profile.list")
    rows = [[x["name"], x["description"]] for x in profiles]
    write(render_rows(opts.format, ["NAME", "DESCRIPTION"], rows, profiles))
    return 0
