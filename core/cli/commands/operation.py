"""Operations: ``lxctl operation list|show|wait|delete`` (``cancel`` too)."""

from __future__ import annotations

from typing import Any

from lxctl.cli.args import ArgumentParser
from lxctl.cli.connection import connect
from lxctl.cli.output import check_format, render_rows, write


def operation(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl operation", description="Manage operations")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "ls"):
        ls = sub.add_parser(verb)
        ls.add_argument("-f", "--format", default="table")
        ls.add_argument("--all-projects", action="store_true")
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
        params: dict[str, Any] = {"all_projects": True} if opts.all_projects else {
            "project": client.project or "default"}
        ops = client.call("operation.list", params)
        header = ["ID", "TYPE", "DESCRIPTION", "STATUS", "CANCELABLE", "CREATED"]
        rows = [[o["id"], o["class"].upper(), o["description"], o["status"].upper(),
                 "YES" if o["may_cancel"] else "NO", o["created_at"]] for o in ops]
        if opts.all_projects:
            header.insert(0, "PROJECT")
            rows = [[o["project"], *row] for o, row in zip(ops, rows, strict=True)]
        write(render_rows(opts.format, header, rows, ops))
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
