"""``lxctl exec NAME [flags] -- CMD...``: run a command, relay stdio, exit with its code.

Interactive (stdin and stdout are terminals, or ``-t``): the local terminal is put in raw
mode and the daemon gives the command a new pty; window size changes are forwarded.
Otherwise stdin, stdout and stderr are relayed as separate streams.
"""

from __future__ import annotations

import binascii
import os
import select
import sys

from lxctl.cli.connection import connect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lxctl.cli.connection import Client

STREAM = "stdin"
CHUNK = 65536
OUTBOX_LIMIT = 1 << 20  # stop reading stdin while this much input waits to be sent


USAGE = """Usage: lxctl exec NAME [flags] -- CMD...

Flags:
  --env KEY=VALUE          Environment variable (repeatable)
  --cwd DIR                Working directory
  --user UID, --group GID  Run as this uid and gid (default 0)
  -t, --force-interactive  Allocate a pty even if stdin/stdout are not terminals
  -T, --force-noninteractive  Never allocate a pty
  -n, --disable-stdin      Do not forward stdin
  --mode auto|interactive|non-interactive
"""
_VALUE_FLAGS = ("--env", "--cwd", "--user", "--group", "--mode")


def _parse(args: list[str]) -> dict[str, Any]:
    """Parse ``NAME [flags] [--] CMD...`` by hand: argparse alone costs ~5 ms a start."""
    if "-h" in args[:1] or "--help" in args[:1]:
        sys.stdout.write(USAGE)
        raise SystemExit(0)
    opts: dict[str, Any] = {"env": [], "cwd": None, "user": "0", "group": "0", "mode": "auto"}
    name = None
    command: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            command = rest
            break
        flag, eq, inline = arg.partition("=")
        if flag in _VALUE_FLAGS:
            if not eq:
                if not rest:
                    raise ValueError(f"flag {flag} needs a value")
                inline = rest.pop(0)
            key = flag[2:]
            if key == "env":
                opts["env"].append(inline)
            else:
                opts[key] = inline
        elif arg in ("-t", "--force-interactive"):
            opts["mode"] = "interactive"
        elif arg in ("-T", "--force-noninteractive"):
            opts["mode"] = "non-interactive"
        elif arg in ("-n", "--disable-stdin"):
            opts["no_stdin"] = True
        elif arg.startswith("-"):
            raise ValueError(f"unknown flag {arg!r} for exec (see 'lxctl exec --help')")
        elif name is None:
            name = arg
        else:  # Incus also accepts "exec NAME CMD..." without "--"
            command = [arg, *rest]
            break
    if name is None:
        raise ValueError("Missing instance name (lxctl exec NAME -- CMD...)")
    if not command:
        raise ValueError("Missing command (lxctl exec NAME -- CMD...)")
    if opts["mode"] not in ("auto", "interactive", "non-interactive"):
        raise ValueError("--mode must be auto, interactive or non-interactive")
    try:
        user, group = int(opts["user"]), int(opts["group"])
    except ValueError:
        raise ValueError("--user and --group take numeric ids") from None
    env = {}
    for pair in opts["env"]:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"Bad --env {pair!r}: use KEY=VALUE")
        env[key] = value
    if opts["mode"] == "auto":
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    else:
        interactive = opts["mode"] == "interactive"
    params: dict[str, Any] = {"name": name, "command": command, "environment": env,
                              "cwd": opts["cwd"], "user": user, "group": group,
                              "interactive": interactive}
    if interactive:
        env.setdefault("TERM", os.environ.get("TERM", "xterm"))
        try:
            size = os.get_terminal_size(sys.stdout.fileno())
            params.update(width=size.columns, height=size.lines)
        except OSError:
            pass
    if not opts.get("no_stdin"):
        params["stream"] = STREAM
    return params


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except (BrokenPipeError, BlockingIOError):
        pass


def exec_(command: str, args: list[str]) -> int:
    params = _parse(args)
    return session(connect(), "instance.exec", params, interactive=params["interactive"])


def session(client: Client, method: str, params: dict[str, Any], *, interactive: bool) -> int:
    """Call ``method`` (exec or console) and relay stdin and its output until it
    returns {"return": code}; ``interactive``: the local terminal in raw mode, its size
    changes forwarded."""

    def on_notification(method: str, p: dict[str, Any]) -> None:
        if method == "exec.output":
            _write_all(1 if p.get("fd") == 1 else 2, binascii.a2b_base64(p["data"]))

    client.on_notification = on_notification
    saved = None
    if interactive and sys.stdin.isatty():
        import signal
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
        return _relay(client, method, params)
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _relay(client: Client, method: str, params: dict[str, Any]) -> int:
    """Relay stdin and output at once: input is queued and sent when the socket takes
    it, so output is always read (a blocking send could deadlock with the daemon)."""
    request_id = client.request(method, params)
    client.buffered = True
    stdin_open = "stream" in params
    sock = client.fileno()
    while True:
        readers = [sock] + ([0] if stdin_open and len(client.outbox) < OUTBOX_LIMIT else [])
        try:
            ready, writable, _ = select.select(readers, [sock] if client.outbox else [], [])
        except InterruptedError:
            continue
        if writable:
            client.flush_some()
        if 0 in ready:
            try:
                data = os.read(0, CHUNK)
            except OSError:
                data = b""
            if data:
                client.send_stream(STREAM, data)
            else:
                client.end_stream(STREAM)
                stdin_open = False
        if sock in ready:
            done, result = client.poll(request_id)
            if done:
                return int(result["return"])
