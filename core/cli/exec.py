"""``lxctl exec NAME [flags] -- CMD...``: run a command, relay stdio, exit with its code.

Interactive (stdin and stdout are terminals, or ``-t``): the local terminal is put in raw
mode and the daemon gives the command a new pty; window size changes are forwarded.
Otherwise stdin, stdout and stderr are relayed as separate streams.
"""

from __future__ import annotations

import base64
import os
import select
import signal
import sys
from typing import Any

from lxctl.cli.connection import Client, ConnectionFailed, connect

STREAM = "stdin"
CHUNK = 65536


def _parse(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    if "--" in args:
        i = args.index("--")
        flags, command = args[:i], args[i + 1:]
    else:
        flags, command = [], []
        rest = list(args)
        while rest and rest[0].startswith("-"):
            flags.append(rest.pop(0))
            if flags[-1] in ("--env", "--cwd", "--user", "--group", "--mode") and rest:
                flags.append(rest.pop(0))
        command = rest[1:] if rest else []
        flags = [*flags, *(rest[:1])]
    import argparse

    p = argparse.ArgumentParser(prog="lxctl exec", usage="lxctl exec NAME [flags] -- CMD...")
    p.add_argument("name")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--cwd")
    p.add_argument("--user", type=int, default=0)
    p.add_argument("--group", type=int, default=0)
    p.add_argument("-t", "--force-interactive", action="store_true")
    p.add_argument("-T", "--force-noninteractive", action="store_true")
    p.add_argument("-n", "--disable-stdin", action="store_true")
    p.add_argument("--mode", choices=("auto", "interactive", "non-interactive"), default="auto")
    opts = p.parse_args(flags)
    if not command:
        raise ValueError("Missing command (lxctl exec NAME -- CMD...)")
    env = {}
    for pair in opts.env:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"Bad --env {pair!r}: use KEY=VALUE")
        env[key] = value
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if opts.force_interactive or opts.mode == "interactive":
        interactive = True
    if opts.force_noninteractive or opts.mode == "non-interactive":
        interactive = False
    params: dict[str, Any] = {"name": opts.name, "command": command, "environment": env,
                              "cwd": opts.cwd, "user": opts.user, "group": opts.group,
                              "interactive": interactive}
    if interactive:
        env.setdefault("TERM", os.environ.get("TERM", "xterm"))
        try:
            size = os.get_terminal_size(sys.stdout.fileno())
            params.update(width=size.columns, height=size.lines)
        except OSError:
            pass
    if not opts.disable_stdin:
        params["stream"] = STREAM
    return params, command


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except (BrokenPipeError, BlockingIOError):
        pass


def exec_(command: str, args: list[str]) -> int:
    params, _ = _parse(args)
    client = connect()
    interactive = params["interactive"]

    def on_notification(method: str, p: dict[str, Any]) -> None:
        if method == "exec.output":
            _write_all(1 if p.get("fd") == 1 else 2, base64.b64decode(p["data"]))

    client.on_notification = on_notification
    saved = None
    if interactive and sys.stdin.isatty():
        import termios
        import tty

        saved = termios.tcgetattr(0)
        tty.setraw(0)

        def on_winch(_sig: int, _frame: Any) -> None:
            try:
                size = os.get_terminal_size(sys.stdout.fileno())
                client.notify("stream.input", {"stream": STREAM, "width": size.columns,
                                               "height": size.lines})
            except OSError:
                pass

        signal.signal(signal.SIGWINCH, on_winch)
    try:
        return _relay(client, params)
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _relay(client: Client, params: dict[str, Any]) -> int:
    request_id = client.request("instance.exec", params)
    stdin_open = "stream" in params
    while True:
        watch = [client.fileno()] + ([0] if stdin_open else [])
        try:
            ready, _, _ = select.select(watch, [], [])
        except InterruptedError:
            continue
        if 0 in ready:
            try:
                data = os.read(0, CHUNK)
            except OSError:
                data = b""
            if data:
                client.notify("stream.input", {"stream": STREAM,
                                               "data": base64.b64encode(data).decode()})
            else:
                client.notify("stream.input", {"stream": STREAM, "eof": True})
                stdin_open = False
        if client.fileno() in ready:
            messages = client.read_messages()
            if messages is None:
                raise ConnectionFailed("the daemon closed the connection")
            for message in messages:
                done, result = client.handle(message, request_id)
                if done:
                    return int(result["return"])
