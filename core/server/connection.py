"""One client connection: its streams (exec input, uploads), its identity, and the
context every RPC method gets."""

from __future__ import annotations

import socket
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

import trio

from lxctl.drivers.auth import Identity, Peer, PeerCredentials
from lxctl.drivers.hypervisor import StreamInput
from lxctl.errors import InvalidState
from lxctl.rpc import notification

STREAM_QUEUE = 64


@dataclass
class CallContext:
    """What an RPC method gets as its first argument."""

    conn: Connection
    identity: Identity | None
    app: Any  # lxctl.daemon.App (kept untyped here to avoid an import cycle)


@dataclass(eq=False)
class Connection:
    stream: trio.abc.Stream
    nursery: trio.Nursery
    conn_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    peer: Peer | None = None
    identity: Identity | None = None
    send_lock: trio.Lock = field(default_factory=trio.Lock)
    streams: dict[str, tuple[trio.MemorySendChannel[StreamInput],
                             trio.MemoryReceiveChannel[StreamInput]]] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)  # streams whose reader is gone
    # scopes of tasks that only make sense while the client reads (event streams)
    on_eof_cancel: list[trio.CancelScope] = field(default_factory=list)
    closed: bool = False

    async def send(self, data: bytes) -> None:
        async with self.send_lock:
            await self.stream.send_all(data)

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        await self.send(notification(method, params))

    def _channel(self, stream_id: str) -> tuple[trio.MemorySendChannel[StreamInput],
                                                trio.MemoryReceiveChannel[StreamInput]]:
        if stream_id not in self.streams:
            if len(self.streams) >= 64:
                raise InvalidState("Too many open streams on this connection")
            self.streams[stream_id] = trio.open_memory_channel[StreamInput](STREAM_QUEUE)
        return self.streams[stream_id]

    async def stream_input(self, stream_id: str, item: StreamInput) -> None:
        """Route client input to a stream; blocks (backpressure) when its queue is full.

        Input for a stream whose reader has finished is dropped."""
        if stream_id in self.released:
            return
        send, _ = self._channel(stream_id)
        try:
            await send.send(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # its reader went away: drop the input

    def claim_stream(self, stream_id: str) -> trio.MemoryReceiveChannel[StreamInput]:
        """The receiving end of a stream; input sent before the claim is kept."""
        self.released.discard(stream_id)
        return self._channel(stream_id)[1]

    def release_stream(self, stream_id: str) -> None:
        self.released.add(stream_id)
        pair = self.streams.pop(stream_id, None)
        if pair:
            pair[0].close()
            pair[1].close()


def peer_of(stream: trio.abc.Stream) -> Peer | None:
    """Who is on the other end: a listener may attach it (``stream.lxctl_peer``: memory
    listeners in tests, TLS later), else SO_PEERCRED of a Unix socket."""
    peer: Peer | None = getattr(stream, "lxctl_peer", None)
    return peer if peer is not None else peer_credentials(stream)


def peer_credentials(stream: trio.abc.Stream) -> PeerCredentials | None:
    sock = getattr(stream, "socket", None)
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid, uid, gid)


