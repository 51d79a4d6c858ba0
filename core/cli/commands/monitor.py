"""Print daemon events: ``lxctl monitor``."""

from __future__ import annotations

import sys
from typing import Any

from lxctl.cli import wire
from lxctl.cli.args import ArgumentParser
from lxctl.cli.connection import ConnectionFailed, connect
from lxctl.cli.output import write


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
