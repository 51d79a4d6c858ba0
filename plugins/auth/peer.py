"""Local access by peer credentials: root, and members of the ``lxctl`` group."""

from __future__ import annotations

import grp
import pwd
from typing import ClassVar

import trio

from lxctl.public import (
    AuthInfo,
    DriverContext,
    DriverRegistry,
    Identity,
    Peer,
    PeerCredentials,
    impl,
)

GROUP = "lxctl"


def _groups_of(pid: int) -> set[int]:
    """Supplementary groups of a process, from /proc (the peer may have dropped some)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class PeerAuth:
    info: ClassVar[AuthInfo] = AuthInfo(name="peer", peer_kinds=frozenset({"unix"}))

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    def _member(self, peer: PeerCredentials) -> Identity | None:
        try:
            gid = grp.getgrnam(GROUP).gr_gid
        except KeyError:
            return None
        if peer.gid == gid or gid in _groups_of(peer.pid):
            return Identity(_user(peer.uid), self.info.name)
        return None

    @classmethod
    def probe(cls) -> str | None:
        return None

    async def authenticate(self, peer: Peer) -> Identity | None:
        if not isinstance(peer, PeerCredentials):
            return None
        if peer.uid == 0:
            return Identity("root", self.info.name)
        # user and group look-ups may go through NSS (LDAP, ...): keep them off the loop
        return await trio.to_thread.run_sync(self._member, peer)


@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_auth(PeerAuth)
