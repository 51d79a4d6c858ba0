"""``lxctl snapshot create|delete|restore|rename|list|show``: instance snapshots, in
Incus 6's grammar (``lxctl snapshot create NAME [SNAPSHOT]`` ...).

``snapshot create`` with plain arguments (full flag names, no ``--help``) is parsed by
hand and imports only the connection, as ``exec`` and ``launch`` do (argparse and
``typing`` cost ~25 ms a start); anything else goes to the argparse parser."""

from __future__ import annotations

from lxctl.cli.connection import connect
from lxctl.cli.values import target

TYPE_CHECKING = False  # typing costs ~2 ms per client start; checkers see True
if TYPE_CHECKING:
    from typing import Any

    from lxctl.cli.args import ArgumentParser

CREATE_FLAGS = {"--no-expiry": "no_expiry", "--reuse": "reuse", "--stateful": "stateful"}

HEADER = ["NAME", "TAKEN AT", "EXPIRES AT", "STATEFUL"]


def _parser() -> ArgumentParser:
    from lxctl.cli.args import ArgumentParser

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


def quick_create(args: list[str]) -> dict[str, Any] | None:
    """``create INSTANCE [SNAPSHOT] [--no-expiry] [--reuse] [--stateful]`` as argparse
    reads it, or None where that is not sure."""
    if not args or args[0] != "create":
        return None
    words = [a for a in args[1:] if not a.startswith("-")]
    flags = [a for a in args[1:] if a.startswith("-")]
    if not 1 <= len(words) <= 2 or any(f not in CREATE_FLAGS for f in flags) or \
            args[1:1 + len(words)] != words:  # the names first, then the flags
        return None
    opts: dict[str, Any] = {dest: False for dest in CREATE_FLAGS.values()}
    opts.update({CREATE_FLAGS[f]: True for f in flags})
    return {**opts, "instance": words[0], "snapshot": words[1] if len(words) == 2 else None}


def create(opts: dict[str, Any]) -> int:
    params: dict[str, Any] = {"instance": target(opts["instance"]),
                              "stateful": opts["stateful"], "reuse": opts["reuse"]}
    if opts["snapshot"] is not None:
        params["name"] = opts["snapshot"]
    if opts["no_expiry"]:
        params["expires_at"] = 0
    client = connect()
    client.wait_operation(client.call("instance_snapshot.create", params))
    return 0


def snapshot(command: str, args: list[str]) -> int:
    quick = quick_create(args)
    if quick is not None:
        return create(quick)
    opts = _parser().parse_args(args)
    if opts.verb == "create":
        return create(vars(opts))
    from lxctl.cli.output import check_format, render_rows, write

    client = connect()
    instance = target(opts.instance)
    key = {"instance": instance}
    if opts.verb in ("delete", "rm"):
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
