"""The trio server: a Unix socket, one task per connection, one per request.

Requests on a connection run concurrently (a long ``instance.exec`` does not hold up the
next request); notifications from the client run in order, in the reader, so that
stream input (exec stdin, image uploads) keeps its order. Writes go through a
per-connection lock. Servers take listeners, not addresses, so tests can pass any.
"""

from __future__ import annotations

import grp
import os
import socket
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import trio

from lxctl.drivers import AuthDriver, Identity, PeerCredentials, StreamInput
from lxctl.errors import Forbidden, InvalidState
from lxctl.rpc import (
    Dispatcher,
    LineFramer,
    Oversized,
    ParseFailure,
    encode,
    error_object,
    is_notification,
    notification,
    too_large_error,
)

log = structlog.get_logger("lxctl.server")

READ_SIZE = 256 * 1024
STREAM_QUEUE = 64
MAX_IN_FLIGHT = 64  # requests answered at once per connection; more wait to be read


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
    peer: PeerCredentials | None = None
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


def peer_credentials(stream: trio.abc.Stream) -> PeerCredentials | None:
    sock = getattr(stream, "socket", None)
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid, uid, gid)


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
        try:
            os.chown(path, 0, grp.getgrnam(group).gr_gid)
        except (KeyError, PermissionError):
            pass
    sock.listen(128)
    return trio.SocketListener(sock)


class Server:
    def __init__(
        self, dispatcher: Dispatcher, auth: list[AuthDriver], app: Any,
        max_message_size: int,
    ) -> None:
        self.dispatcher = dispatcher
        self.auth = auth
        self.app = app
        self.max_message_size = max_message_size
        self._conn_nursery: trio.Nursery | None = None
        self._accept_scope = trio.CancelScope()

    async def serve(
        self, listener: trio.abc.Listener[Any],
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            self._conn_nursery = nursery
            with self._accept_scope:
                task_status.started()
                async with listener:
                    while True:
                        stream = await listener.accept()
                        nursery.start_soon(self._handle, stream)
            # no new connections: the open ones end by themselves or at drain()'s deadline

    def stop_accepting(self) -> None:
        self._accept_scope.cancel()

    def drain(self, grace: float) -> None:
        """Give open connections ``grace`` seconds, then cancel them."""
        if self._conn_nursery is not None:
            self._conn_nursery.cancel_scope.deadline = trio.current_time() + grace

    async def _authenticate(self, conn: Connection) -> None:
        conn.peer = peer_credentials(conn.stream)
        if conn.peer is None:
            return
        for driver in self.auth:
            identity = await driver.authenticate(conn.peer)
            if identity is not None:
                conn.identity = identity
                return

    async def _handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection; nothing it does can take the daemon down."""
        try:
            await self._handle_connection(stream)
        except Exception as exc:
            log.error("connection failed", exc_info=exc)

    async def _handle_connection(self, stream: trio.abc.Stream) -> None:
        async with trio.open_nursery() as nursery:
            conn = Connection(stream, nursery)
            log_ = log.bind(conn_id=conn.conn_id)
            try:
                await self._authenticate(conn)
                log_.debug("connected", peer=conn.peer, identity=conn.identity)
                await self._read_loop(conn, nursery)
                # end of input: requests in flight still get their answers
                for stream_id in list(conn.streams):
                    conn.streams[stream_id][0].close()
                for scope in conn.on_eof_cancel:
                    scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                nursery.cancel_scope.cancel()
        conn.closed = True
        for stream_id in list(conn.streams):
            conn.release_stream(stream_id)
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await stream.aclose()

    async def _read_loop(self, conn: Connection, nursery: trio.Nursery) -> None:
        framer = LineFramer(self.max_message_size)
        ctx = CallContext(conn, conn.identity, self.app)
        in_flight = trio.Semaphore(MAX_IN_FLIGHT)
        while True:
            data = await conn.stream.receive_some(READ_SIZE)
            if not data:
                return
            for item in framer.feed(data):
                if isinstance(item, Oversized):
                    await conn.send(too_large_error(item.size, self.max_message_size))
                    continue
                if conn.identity is None:
                    await conn.send(self._forbidden(item, conn))
                    continue
                message = self.dispatcher.parse(item)
                if isinstance(message, ParseFailure):
                    await conn.send(message.response)
                elif is_notification(message):
                    await self._answer(conn, message, ctx)  # in order, in the reader
                else:
                    await in_flight.acquire()  # backpressure: stop reading when saturated
                    nursery.start_soon(self._answer_request, conn, message, ctx, in_flight)

    async def _answer_request(self, conn: Connection, message: Any, ctx: CallContext,
                              in_flight: trio.Semaphore) -> None:
        try:
            await self._answer(conn, message, ctx)
        finally:
            in_flight.release()

    async def _answer(self, conn: Connection, message: Any, ctx: CallContext) -> None:
        with structlog.contextvars.bound_contextvars(conn_id=conn.conn_id):
            response = await self.dispatcher.handle_message(message, ctx)
        if response is not None and not conn.closed:
            try:
                await conn.send(response)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def _forbidden(self, line: bytes, conn: Connection) -> bytes:
        message = self.dispatcher.parse(line)
        request_id = message.get("id") if isinstance(message, dict) else None
        exc = Forbidden(
            "Not authorized: root or members of the 'lxctl' group may use this socket",
            uid=conn.peer.uid if conn.peer else None)
        return encode(error_object(exc, request_id, "", None))


def request_logger() -> Callable[[str, float, int | None, bool], None]:
    """One summary line per request (notifications at debug level)."""

    def observe(method: str, seconds: float, code: int | None, is_notification: bool) -> None:
        fields = {"method": method, "ms": round(seconds * 1000, 2)}
        if code is not None:
            fields["code"] = code
        if is_notification:
            log.debug("notification", **fields)
        else:
            log.info("request", **fields)

    return observe
