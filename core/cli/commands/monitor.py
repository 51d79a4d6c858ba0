"""Print daemon events: ``lxctl monitor``."""

from __future__ import annotations

from typing import Any

from lxctl.cli import wire
from lxctl.cli.args import ArgumentParser
from lxctl.cli.connection import ConnectionFailed, connect
from lxctl.cli.output import write


def _pretty(event: dict[str, Any]) -> str:
    meta = event.get("metadata", {})
    if event["type"] == "logging":
        ctx = " ".join(f"{k}={v}" for k, v in (meta.get("context") or {}).items())
        return f"{event['timestamp']} {meta.get('level', '').upper()}: " \
               f"{meta.get('message', '')} {ctx}".rstrip()
    what = meta.get("action") or meta.get("description") or ""
    extra = meta.get("source") or meta.get("status") or ""
    project = event.get("project") or "-"
    return f"{event['timestamp']} [{project}] {event['type']} {what} {extra}"


def monitor(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl monitor", description="Print daemon events")
    p.add_argument("-t", "--type", action="append", default=[],
                   help="lifecycle, operation or logging (repeatable)")
    p.add_argument("-f", "--format", choices=("json", "yaml", "pretty"), default="yaml")
    p.add_argument("--pretty", action="store_true")
    p.add_argument("--all-projects", action="store_true")
    p.add_argument("--instance", default=None, help="only this instance's events")
    p.add_argument("--loglevel", default=None,
                   help="lowest level of logging events: debug, info, warning, error")
    p.add_argument("--since", type=int, default=None,
                   help="first the events after this id that the daemon still keeps")
    opts = p.parse_args(args)
    fmt = "pretty" if opts.pretty else opts.format
    client = connect()
    status = {"code": 0}

    def show(method: str, params: dict[str, Any]) -> None:
        if method != "event":
            if method == "events.dropped":
                import sys

                sys.stderr.write(f"Error: the daemon dropped this monitor: {params['reason']} "
                                 f"(resume with --since {params['last_id']})\n")
                status["code"] = 1
            return
        if fmt == "json":
            write(wire.dumps(params).decode() + "\n")
        elif fmt == "yaml":
            import yaml

            write(yaml.safe_dump(params, sort_keys=False) + "\n")
        else:
            write(_pretty(params) + "\n")

    params: dict[str, Any] = {"types": [t for types in opts.type
                                        for t in types.split(",") if t]}
    if opts.all_projects:
        params["all_projects"] = True
    else:
        params["project"] = client.project or "default"
    for key in ("instance", "loglevel", "since"):
        if getattr(opts, key) is not None:
            params[key] = getattr(opts, key)
    client.on_notification = show
    client.call("events.subscribe", params)
    try:
        while True:
            client.poll(-1)  # events arrive as notifications, shown by show()
    except ConnectionFailed:
        return status["code"]
