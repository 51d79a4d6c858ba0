"""Storage pools: ``lxctl storage list``."""

from __future__ import annotations

from lxctl.cli.args import ArgumentParser
from lxctl.cli.connection import connect
from lxctl.cli.output import check_format, render_rows, write


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
