"""Files of a running container, reached from *inside* it: a child attached to the
container's namespaces (python-lxc ``attach``) opens the path as the container's root.
Every path, symlinks included, resolves in the container's mount namespace, so a
symlink to ``/etc`` in the container can never touch the host's ``/etc``, and ids are
the container's own (no shifting, no host root on its filesystem).

The ``child_*`` functions run in that child (a fork of the daemon): plain system calls
only; data flows through its standard input and output; errors go to its standard error
with exit code 1.
"""

from __future__ import annotations

import os
import stat

CHUNK = 1 << 20


def _only_stdio() -> None:
    """The child is a fork of the daemon: drop every descriptor it inherited but 0-2
    (the write end of its own standard input among them, or it never sees EOF)."""
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))


def _fail(message: str) -> int:
    os.write(2, message.encode(errors="replace"))
    return 1


def _copy(source: int, target: int) -> None:
    while chunk := os.read(source, CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(target, view):]


def child_push(args: tuple[str, int, int, int, bool]) -> int:
    """Write standard input to ``path`` (created or truncated), then own and mode it."""
    _only_stdio()
    path, uid, gid, mode, make_parents = args
    try:
        if make_parents:
            os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode & 0o777)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return _fail(f"{path} is not a regular file")
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            _copy(0, fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return _fail(f"{path}: {exc.strerror}")
    return 0


def child_pull(path: str) -> int:
    """Copy a regular file to standard output."""
    _only_stdio()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return _fail(f"{path} is not a regular file")
            _copy(fd, 1)
        finally:
            os.close(fd)
    except OSError as exc:
        return _fail(f"{path}: {exc.strerror}")
    return 0


def child_mkdir(args: tuple[str, int, int, int, bool]) -> int:
    """Create a directory (an existing one is fine), then own and mode it."""
    _only_stdio()
    path, uid, gid, mode, make_parents = args
    try:
        if make_parents:
            os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
        try:
            os.mkdir(path, mode & 0o777)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return _fail(f"{path} exists and is not a directory")
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    except OSError as exc:
        return _fail(f"{path}: {exc.strerror}")
    return 0


def child_info(path: str) -> int:
    """What ``path`` is (the last component not followed), as JSON on standard output:
    type (file, directory, symlink, other), mode, uid, gid, size, and a directory's
    entries or a symlink's target."""
    _only_stdio()
    import json

    try:
        st = os.lstat(path)
        info: dict[str, object] = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                                   "gid": st.st_gid, "size": st.st_size}
        if stat.S_ISDIR(st.st_mode):
            info.update(type="directory", entries=sorted(os.listdir(path)))
        elif stat.S_ISLNK(st.st_mode):
            info.update(type="symlink", target=os.readlink(path))
        else:
            info["type"] = "file" if stat.S_ISREG(st.st_mode) else "other"
    except OSError as exc:
        return _fail(f"{path}: {exc.strerror}")
    os.write(1, json.dumps(info).encode())
    return 0


def child_delete(path: str) -> int:
    _only_stdio()
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            os.rmdir(path)
        else:
            os.unlink(path)
    except OSError as exc:
        return _fail(f"{path}: {exc.strerror}")
    return 0


