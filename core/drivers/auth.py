"""The auth driver protocol: who is calling (authenticate); what they may do is
decided per call by the ``lxctl_authorize`` hook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from lxctl.drivers.context import DriverContext


@dataclass(frozen=True)
class PeerCredentials:
    """The other end of a Unix socket (SO_PEERCRED)."""

    kind: ClassVar[str] = "unix"
    pid: int
    uid: int
    gid: int


@dataclass(frozen=True)
class PeerCertificate:
    """A TLS client certificate (remotes, cluster members)."""

    kind: ClassVar[str] = "certificate"
    fingerprint: str  # sha256 of the DER, hex
    subject: str = ""


@dataclass(frozen=True)
class PeerToken:
    """A bearer token presented by the client (join tokens, API tokens)."""

    kind: ClassVar[str] = "token"
    token: str


Peer = PeerCredentials | PeerCertificate | PeerToken


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    name: str
    method: str  # which auth driver said yes
    admin: bool = True  # full access unless an authorize hook says otherwise
    projects: frozenset[str] | None = None  # restricted to these projects (None: all)


@dataclass(frozen=True)
class AuthInfo:
    name: str
    peer_kinds: frozenset[str]  # the peers it can vouch for: unix, certificate, token


class AuthDriver(Protocol):
    info: ClassVar[AuthInfo]

    def __init__(self, ctx: DriverContext) -> None: ...

    @classmethod
    def probe(cls) -> str | None: ...

    async def authenticate(self, peer: Peer) -> Identity | None:
        """An identity if this driver vouches for the peer, None to let others decide."""
