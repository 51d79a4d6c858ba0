"""The trio server: a Unix socket, one task per connection, one per request.

Requests on a connection run concurrently (a long ``instance.exec`` does not hold up the
next request); notifications from the client run in order, in the reader, so that
stream input (exec stdin, image uploads) keeps its order. Writes go through a
per-connection lock. Servers take listeners, not addresses, so tests can pass any.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
import trio

from lxctl.drivers.registry import Drivers
from lxctl.errors import Forbidden
from lxctl.kernel.events import set_requestor
from lxctl.plugin import Hooks
from lxctl.rpc import (
    Dispatcher,
    LineFramer,
    Oversized,
    ParseFailure,
    encode,
    error_object,
    is_notification,
    too_large_error,
)
from lxctl.server.connection import CallContext, Connection, peer_of
from lxctl.server.listener import bind_unix_socket

log = structlog.get_logger("lxctl.server")

READ_SIZE = 256 * 1024
MAX_IN_FLIGHT = 64  # requests answered at once per connection; more wait to be read


class Server:
    def __init__(
        self, dispatcher: Dispatcher, drivers: Drivers, hooks: Hooks, app: Any,
        max_message_size: int,
    ) -> None:
        self.dispatcher = dispatcher
        self.drivers = drivers
        self.hooks = hooks
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
        conn.peer = peer_of(conn.stream)
        if conn.peer is None:
            return
        for driver in self.drivers.auth_for(conn.peer.kind):
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
            uid=getattr(conn.peer, "uid", None))
        return encode(error_object(exc, request_id, "", None))


def authorizer(hooks: Hooks) -> Callable[[CallContext, str, dict[str, Any]], None]:
    """The per-call check: the ``lxctl_authorize`` hook decides (identity, method,
    project); refusals are ``forbidden`` errors naming what was refused."""

    def authorize(ctx: CallContext, method: str, params: dict[str, Any]) -> None:
        identity = ctx.identity
        if identity is None:
            raise Forbidden("Not authorized")
        set_requestor(identity.name, identity.method)  # for the events this call causes
        # a project.* call acts on the project it names
        project = params.get("name" if method.startswith("project.") else "project",
                             "default")
        if not hooks.authorize(identity, method, str(project)):
            raise Forbidden(f"Not authorized: {identity.name} may not call {method} in "
                            f"project {project!r}", method=method, project=project)

    return authorize


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


__all__ = ["CallContext", "Connection", "Server", "authorizer", "bind_unix_socket",
           "request_logger"]
