"""``lxctl snapshot create|delete|restore|rename|list|show``: instance snapshots, in
Incus 6's grammar (``lxctl snapshot create NAME [SNAPSHOT]`` ...)."""

from __future__ import annotations

from typing import Any

from lxctl.cli.args import ArgumentParser, target
from lxctl.cli.connection import connect
from lxctl.cli.output import check_format, render_rows, write

HEADER = ["NAME", "TAKEN AT", "EXPIRES AT", "STATEFUL"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="lxctl snapshot", description="Manage instance snapshots")
    sub = p.add_subparsers(dest="verb", required=True)
    create = sub.add_parser("create")
    create.add_argument("instance")
    create.add_argument("snapshot", nargs="?")
    create.add_argument("--stateful", action="store_true")
    create.add_argument("--no-expiry", action="store_true")
    create.add_argument("--reuse", action="store_true")
    for verb in ("delete", "rm", "show"):
        one = sub.add_parser(verb)
        one.add_argument("instance")
        one.add_argument("snapshot", nargs="+" if verb != "show" else None)
    restore = sub.add_parser("restore")
    restore.add_argument("instance")
    restore.add_argument("snapshot")
    restore.add_argument("--stateful", action="store_true")
    rename = sub.add_parser("rename")
    rename.add_argument("instance")
    rename.add_argument("snapshot")
    rename.add_argument("new_name")
    for verb in ("list", "ls"):
        ls = sub.add_parser(verb)
        ls.add_argument("instance")
        ls.add_argument("-f", "--format", default="table")
    return p


def taken_at(value: str) -> str:
    """An API time as Incus's tables show it (empty for "never")."""
    if not value or value.startswith(("0001", "1970")):
        return ""
    return f"{value[:10].replace('-', '/')} {value[11:16]} UTC"


def rows(snapshots: list[dict[str, Any]]) -> list[list[str]]:
    return [[s["name"], taken_at(s["created_at"]), taken_at(s["expires_at"]),
             "YES" if s.get("stateful") else "NO"] for s in snapshots]


def snapshot(command: str, args: list[str]) -> int:
    opts = _parser().parse_args(args)
    client = connect()
    instance = target(opts.instance)
    key = {"instance": instance}
    if opts.verb == "create":
        params: dict[str, Any] = {**key, "stateful": opts.stateful, "reuse": opts.reuse}
        if opts.snapshot is not None:
            params["name"] = opts.snapshot
        if opts.no_expiry:
            params["expires_at"] = 0
        client.wait_operation(client.call("instance_snapshot.create", params))
    elif opts.verb in ("delete", "rm"):
        ops = [client.call("instance_snapshot.delete", {**key, "name": s})
               for s in opts.snapshot]
        for op in ops:
            client.wait_operation(op)
    elif opts.verb == "restore":
        client.wait_operation(client.call("instance_snapshot.restore", {
            **key, "name": opts.snapshot, "stateful": opts.stateful}))
    elif opts.verb == "rename":
        client.wait_operation(client.call("instance_snapshot.rename", {
            **key, "name": opts.snapshot, "new_name": opts.new_name}))
    elif opts.verb == "show":
        import yaml

        snap = client.call("instance_snapshot.get", {**key, "name": opts.snapshot})
        write(yaml.safe_dump(snap, sort_keys=False))
    else:  # list
        check_format(opts.format)
        snaps = client.call("instance_snapshot.list", key)
        write(render_rows(opts.format, HEADER, rows(snaps), snaps))
    return 0
