"""Mount injection: bind a host path into a running container, or take it out.

Run as its own process (``python inject.py mount PID SOURCE TARGET ...``), so that
``setns`` finds a single-threaded caller; it imports nothing but the standard library.
The host side is opened first (``open_tree``, a detached copy of the mount, made
read-only with ``mount_setattr`` where asked), then the process enters the container's
mount namespace, whose root becomes its own: the target path resolves inside the
container, and a symlink there cannot lead back to the host. The copy is attached at
the target with ``move_mount``. The kernel's new mount API (5.2; ``mount_setattr`` 5.12)
does what the old one cannot: carry a host mount across namespaces.

Exit status: 0 done, 2 bad use, 1 failed (the reason on stderr, one line).
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys

SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442  # x86_64
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
CLONE_NEWNS = 0x20000
MNT_DETACH = 2

libc = ctypes.CDLL(None, use_errno=True)


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _enter(pid: int) -> None:
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(libc.setns(fd, CLONE_NEWNS), "setns")
    finally:
        os.close(fd)
    os.chdir("/")


def _make_target(target: str, is_dir: bool, uid: int, gid: int) -> None:
    """Create the mount point (and its missing parents) as the container's root: its
    root filesystem may be an idmapped mount, through which only mapped ids can write."""
    libc.setfsgid(gid)
    libc.setfsuid(uid)
    parts = [p for p in target.split("/") if p]
    path = ""
    for i, part in enumerate(parts):
        path += "/" + part
        last = i == len(parts) - 1
        if os.path.lexists(path):
            continue
        if last and not is_dir:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        else:
            os.mkdir(path, 0o755)
    libc.setfsuid(0)
    libc.setfsgid(0)


def mount(pid: int, source: str, target: str, readonly: bool, uid: int, gid: int) -> None:
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE
    tree = _check(libc.syscall(SYS_OPEN_TREE, AT_FDCWD, source.encode(), flags),
                  f"open_tree {source}")
    if readonly:
        attr = MountAttr(attr_set=MOUNT_ATTR_RDONLY)
        _check(libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH | AT_RECURSIVE,
                            ctypes.byref(attr), ctypes.sizeof(attr)), "mount_setattr")
    is_dir = os.path.isdir(source)
    _enter(pid)
    _make_target(target, is_dir, uid, gid)
    _check(libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, target.encode(),
                        MOVE_MOUNT_F_EMPTY_PATH), f"move_mount onto {target}")


def umount(pid: int, target: str, remove_file: bool) -> None:
    """Detach the mount; ``remove_file``: then delete the empty file it was on (a unix
    device's node)."""
    _enter(pid)
    _check(libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")
    if remove_file:
        st = os.lstat(target)
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(target)


def main(argv: list[str]) -> int:
    try:
        if len(argv) == 7 and argv[0] == "mount":
            mount(int(argv[1]), argv[2], argv[3], argv[4] == "ro", int(argv[5]),
                  int(argv[6]))
        elif len(argv) == 4 and argv[0] == "umount":
            umount(int(argv[1]), argv[2], argv[3] == "file")
        else:
            sys.stderr.write("usage: inject.py mount PID SOURCE TARGET ro|rw UID GID | "
                             "umount PID TARGET dir|file\n")
            return 2
    except OSError as exc:
        sys.stderr.write(f"{exc.strerror or exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
