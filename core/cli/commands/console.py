"""``lxctl console NAME``: attach to the instance's console (detach with ctrl+a q);
``--show-log``: print what it has written there so far."""

from __future__ import annotations

import os
import sys

from lxctl.cli.args import ArgumentParser, target
from lxctl.cli.connection import connect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def console(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog=f"lxctl {command}",
                       description="Attach to an instance's console (ctrl+a q detaches)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--show-log", action="store_true", help="print the console log")
    opts = p.parse_args(args)
    client = connect()
    if opts.show_log:
        log = client.call("instance.console_log", {"name": target(opts.name)})["log"]
        sys.stdout.write(log)
        return 0
    from lxctl.cli.commands.exec import STREAM, session  # the stream its relay feeds

    params: dict[str, Any] = {"name": target(opts.name), "stream": STREAM}
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
        params.update(width=size.columns, height=size.lines)
    except OSError:
        pass
    interactive = sys.stdin.isatty()
    if interactive:
        sys.stderr.write("To detach from the console, press: <ctrl>+a q\n")
    session(client, "instance.console", params, interactive=interactive)
    return 0
