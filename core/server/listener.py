"""The daemon's Unix socket."""

from __future__ import annotations

import grp
import os
import socket
from pathlib import Path

import trio

from lxctl.errors import InvalidState


def _group_id(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


async def bind_unix_socket(path: Path, group: str | None) -> trio.SocketListener:
    """Bind ``path`` (mode 0660, group ``group`` when it exists) and listen on it.

    A socket file left by a dead daemon is replaced; one that still answers is not.
    """
    if path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
        else:
            raise InvalidState(f"Another daemon is listening on {path}")
        finally:
            probe.close()
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o117)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o660)
    if group:
        # group look-ups may go through NSS (LDAP, ...): keep them off the event loop
        gid = await trio.to_thread.run_sync(_group_id, group)
        if gid is not None:
            try:
                os.chown(path, 0, gid)
            except PermissionError:
                pass
    sock.listen(128)
    return trio.SocketListener(sock)


