"""Warnings: ``lxctl warning list|show|ack|delete``."""

from __future__ import annotations

from typing import Any

from lxctl.cli.args import ArgumentParser
from lxctl.cli.connection import connect
from lxctl.cli.output import check_format, render_rows, write


def warning(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl warning", description="Manage warnings")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "ls"):
        ls = sub.add_parser(verb)
        ls.add_argument("-f", "--format", default="table")
        ls.add_argument("--all-projects", action="store_true")
        ls.add_argument("--status", default=None, help="new, acknowledged or resolved")
        ls.add_argument("--type", default=None)
        ls.add_argument("-a", "--all", action="store_true", help="resolved ones too")
    for verb in ("show", "ack", "delete", "rm"):
        sub.add_parser(verb).add_argument("uuid")
    opts = p.parse_args(args)
    client = connect()
    verb = {"ls": "list", "rm": "delete"}.get(opts.verb, opts.verb)
    if verb == "list":
        check_format(opts.format)
        params: dict[str, Any] = {"all_projects": True} if opts.all_projects else {
            "project": client.project or "default"}
        for key in ("status", "type"):
            if getattr(opts, key) is not None:
                params[key] = getattr(opts, key)
        warnings = client.call("warning.list", params)
        if not opts.all and opts.status is None:
            warnings = [w for w in warnings if w["status"] != "resolved"]
        rows = [[w["uuid"], w["type"], w["status"].upper(), w["severity"].upper(),
                 str(w["count"]), w["project"], w["last_seen_at"]] for w in warnings]
        write(render_rows(opts.format, ["UUID", "TYPE", "STATUS", "SEVERITY", "COUNT",
                                        "PROJECT", "LAST SEEN"], rows, warnings))
        return 0
    if verb == "show":
        import yaml

        write(yaml.safe_dump(client.call("warning.get", {"uuid": opts.uuid}), sort_keys=False))
    elif verb == "ack":
        client.call("warning.ack", {"uuid": opts.uuid})
    else:
        client.call("warning.delete", {"uuid": opts.uuid})
    return 0
