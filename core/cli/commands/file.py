"""Files of instances: ``lxctl file push|pull|delete|edit`` (``INSTANCE/PATH``), ``-r``
for directories."""

from __future__ import annotations

import itertools
import sys
from typing import Any

from lxctl.cli.args import ArgumentParser, target
from lxctl.cli.connection import connect

UPLOAD_CHUNK = 256 * 1024
_STREAM_IDS = itertools.count(1)


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
    push.add_argument("sources", nargs="+", metavar="SOURCE",
                      help="local files (directories with -r), or - for standard input")
    push.add_argument("target", metavar="INSTANCE/PATH")
    push.add_argument("-r", "--recursive", action="store_true")
    push.add_argument("-p", "--create-dirs", action="store_true")
    push.add_argument("--uid", type=int, default=0)
    push.add_argument("--gid", type=int, default=0)
    push.add_argument("--mode", default=None, help="octal, such as 0644")
    pull = sub.add_parser("pull")
    pull.add_argument("sources", nargs="+", metavar="INSTANCE/PATH")
    pull.add_argument("target", help="a local file or directory, or - for standard output")
    pull.add_argument("-r", "--recursive", action="store_true")
    pull.add_argument("-p", "--create-dirs", action="store_true")
    for verb in ("delete", "rm"):
        delete = sub.add_parser(verb)
        delete.add_argument("targets", nargs="+", metavar="INSTANCE/PATH")
    sub.add_parser("edit").add_argument("target", metavar="INSTANCE/PATH")
    opts = p.parse_args(args)
    client = connect()
    if opts.verb == "push":
        _push_all(client, opts)
    elif opts.verb == "pull":
        _pull_all(client, opts)
    elif opts.verb == "edit":
        _edit(client, *_remote_path(opts.target))
    else:
        for spec in opts.targets:
            name, path = _remote_path(spec)
            client.call("file.delete", {"instance": name, "path": path})
    return 0


def _mode(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 8)
    except ValueError:
        raise ValueError(f"Invalid mode {value!r}: octal, such as 0644") from None


def _push_all(client: Any, opts: Any) -> None:
    """One file to a path; several, or directories with -r, into a directory."""
    import os

    name, path = _remote_path(opts.target)
    mode = _mode(opts.mode)
    into = len(opts.sources) > 1 or opts.recursive or path.endswith("/")
    for source in opts.sources:
        if source == "-" and (into or opts.recursive):
            raise ValueError("Standard input (-) can only be pushed to one file path")
        if source != "-" and os.path.isdir(source) and not opts.recursive:
            raise ValueError(f"{source} is a directory: use -r to push it")
    for source in opts.sources:
        dest = os.path.join(path, os.path.basename(os.path.normpath(source))) if into else path
        if opts.recursive and os.path.isdir(source):
            _push_tree(client, name, source, dest, opts, mode)
        else:
            _push(client, name, source, dest, uid=opts.uid, gid=opts.gid, mode=mode,
                  parents=opts.create_dirs)


def _push_tree(client: Any, name: str, source: str, dest: str, opts: Any,
               mode: int | None) -> None:
    import os

    for directory, dirs, files in os.walk(source):
        dirs.sort()
        relative = os.path.relpath(directory, source)
        target_dir = dest if relative == "." else os.path.join(dest, relative)
        st = os.stat(directory)
        client.call("file.mkdir", {"instance": name, "path": target_dir, "uid": opts.uid,
                                   "gid": opts.gid, "mode": st.st_mode & 0o7777,
                                   "parents": opts.create_dirs})
        for filename in sorted(files):
            local = os.path.join(directory, filename)
            if os.path.islink(local) or not os.path.isfile(local):
                sys.stderr.write(f"Skipping {local}: not a regular file\n")
                continue
            _push(client, name, local, os.path.join(target_dir, filename), uid=opts.uid,
                  gid=opts.gid, mode=mode, parents=False)


def _push(client: Any, name: str, source: str, path: str, *, uid: int, gid: int,
          mode: int | None, parents: bool) -> None:
    import os

    try:
        f = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ValueError(f"cannot read {source}: {exc.strerror}") from None
    if mode is None:
        mode = 0o644 if source == "-" else os.stat(source).st_mode & 0o7777
    params: dict[str, Any] = {"instance": name, "path": path, "stream": "file",
                              "uid": uid, "gid": gid, "mode": mode, "parents": parents}
    with f:
        _send(client, params, f)


def _send(client: Any, params: dict[str, Any], f: Any) -> None:
    # a stream id names one stream of the connection: input for an id whose stream has
    # ended is dropped, so each push on the connection gets an id of its own
    stream = f"file-{next(_STREAM_IDS)}"
    request = client.request("file.push", {**params, "stream": stream})
    while chunk := f.read(UPLOAD_CHUNK):
        client.send_stream(stream, chunk)
    client.end_stream(stream)
    client.wait_for(request)


def _pull_all(client: Any, opts: Any) -> None:
    import os

    if opts.create_dirs and opts.target != "-":
        os.makedirs(opts.target, exist_ok=True)
    if len(opts.sources) > 1 and not os.path.isdir(opts.target):
        raise ValueError(f"Pulling several files needs a directory, not {opts.target!r}")
    for spec in opts.sources:
        name, path = _remote_path(spec)
        if opts.recursive:
            if opts.target == "-":
                raise ValueError("A recursive pull needs a local directory, not -")
            _pull_tree(client, name, path, opts.target)
        else:
            _pull(client, name, path, opts.target)


def _pull_tree(client: Any, name: str, path: str, dest: str) -> None:
    """``path`` (a directory, a file or a symlink) into the local directory ``dest``."""
    import os

    info = client.call("file.info", {"instance": name, "path": path})
    local = os.path.join(dest, os.path.basename(path.rstrip("/")) or name)
    if info["type"] == "directory":
        os.makedirs(local, exist_ok=True)
        os.chmod(local, info["mode"])
        for entry in info["entries"]:
            _pull_tree(client, name, path.rstrip("/") + "/" + entry, local)
    elif info["type"] == "symlink":
        if os.path.lexists(local):
            os.unlink(local)
        os.symlink(info["target"], local)
    elif info["type"] == "file":
        _pull(client, name, path, local)
        os.chmod(local, info["mode"])
    else:
        sys.stderr.write(f"Skipping {name}{path}: not a file, directory or symlink\n")


def _edit(client: Any, name: str, path: str) -> None:
    """Pull into a temporary file, open ``$EDITOR`` on it (or read standard input when
    it is not a terminal), push it back with its owner and mode if it changed."""
    import io
    import os
    import subprocess
    import tempfile

    info = client.call("file.info", {"instance": name, "path": path})
    if info["type"] != "file":
        raise ValueError(f"{name}{path} is a {info['type']}, not a file")
    with tempfile.TemporaryDirectory(prefix="lxctl-edit-") as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        _pull(client, name, path, local)
        with open(local, "rb") as f:
            before = f.read()
        if sys.stdin.isatty():
            editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
            subprocess.run([*editor.split(), local], check=True)
            with open(local, "rb") as f:
                after = f.read()
        else:
            after = sys.stdin.buffer.read()
    if after == before:
        return
    params: dict[str, Any] = {"instance": name, "path": path, "stream": "file",
                              "uid": info["uid"], "gid": info["gid"], "mode": info["mode"]}
    _send(client, params, io.BytesIO(after))


def _pull(client: Any, name: str, path: str, dest: str) -> None:
    import binascii
    import os

    if dest != "-" and os.path.isdir(dest):
        dest = os.path.join(dest, os.path.basename(path))
    out = sys.stdout.buffer if dest == "-" else open(dest + ".lxctl-partial", "wb")  # noqa: SIM115

    stream = f"pull-{next(_STREAM_IDS)}"

    def chunk(method: str, params: dict[str, Any]) -> None:
        if method == "file.output" and params.get("stream") == stream:
            out.write(binascii.a2b_base64(params["data"]))

    client.on_notification = chunk
    try:
        client.call("file.pull", {"instance": name, "path": path, "stream": stream})
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
