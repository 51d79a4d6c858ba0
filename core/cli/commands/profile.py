"""Profiles: ``lxctl profile list|show``."""

from __future__ import annotations

from lxctl.cli.args import ArgumentParser
from lxctl.cli.connection import connect
from lxctl.cli.output import check_format, render_rows, write


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
