"""Files of instances: ``lxctl file push|pull|delete`` (``INSTANCE/PATH``)."""

from __future__ import annotations

import sys
from typing import Any

from lxctl.cli.args import ArgumentParser, target
from lxctl.cli.connection import connect

UPLOAD_CHUNK = 256 * 1024


def _remote_path(spec: str) -> tuple[str, str]:
    """``c1/etc/hosts`` -> ("c1", "/etc/hosts"), as Incus writes it."""
    name, sep, path = spec.partition("/")
    if not sep or not name or not path:
        raise ValueError(f"Invalid target {spec!r}: use INSTANCE/PATH")
    return target(name), "/" + path


def file(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl file", description="Manage files in instances")
    sub = p.add_subparsers(dest="verb", required=True)
    push = sub.add_parser("push")
    push.add_argument("source", help="a local file, or - for standard input")
    push.add_argument("target", metavar="INSTANCE/PATH")
    push.add_argument("-p", "--create-dirs", action="store_true")
    push.add_argument("--uid", type=int, default=0)
    push.add_argument("--gid", type=int, default=0)
    push.add_argument("--mode", default=None, help="octal, such as 0644")
    pull = sub.add_parser("pull")
    pull.add_argument("source", metavar="INSTANCE/PATH")
    pull.add_argument("target", help="a local file or directory, or - for standard output")
    for verb in ("delete", "rm"):
        delete = sub.add_parser(verb)
        delete.add_argument("targets", nargs="+", metavar="INSTANCE/PATH")
    opts = p.parse_args(args)
    client = connect()
    if opts.verb == "push":
        name, path = _remote_path(opts.target)
        try:
            f = sys.stdin.buffer if opts.source == "-" else open(opts.source, "rb")  # noqa: SIM115
        except OSError as exc:
            raise ValueError(f"cannot read {opts.source}: {exc.strerror}") from None
        if opts.mode is not None:
            mode = int(opts.mode, 8)
        else:
            import os

            mode = 0o644 if opts.source == "-" else os.stat(opts.source).st_mode & 0o7777
        params: dict[str, Any] = {"instance": name, "path": path, "stream": "file",
                                  "uid": opts.uid, "gid": opts.gid, "mode": mode,
                                  "parents": opts.create_dirs}
        with f:
            request = client.request("file.push", params)
            while chunk := f.read(UPLOAD_CHUNK):
                client.send_stream("file", chunk)
            client.end_stream("file")
        client.wait_for(request)
    elif opts.verb == "pull":
        name, path = _remote_path(opts.source)
        _pull(client, name, path, opts.target)
    else:
        for spec in opts.targets:
            name, path = _remote_path(spec)
            client.call("file.delete", {"instance": name, "path": path})
    return 0


def _pull(client: Any, name: str, path: str, dest: str) -> None:
    import binascii
    import os

    if dest != "-" and os.path.isdir(dest):
        dest = os.path.join(dest, os.path.basename(path))
    out = sys.stdout.buffer if dest == "-" else open(dest + ".lxctl-partial", "wb")  # noqa: SIM115

    def chunk(method: str, params: dict[str, Any]) -> None:
        if method == "file.output":
            out.write(binascii.a2b_base64(params["data"]))

    client.on_notification = chunk
    try:
        client.call("file.pull", {"instance": name, "path": path, "stream": "pull"})
    except BaseException:
        if dest != "-":
            out.close()
            os.unlink(dest + ".lxctl-partial")
        raise
    if dest != "-":
        out.close()
        os.replace(dest + ".lxctl-partial", dest)
    else:
        out.flush()
