"""``events.subscribe``: the connection becomes an event stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from lxctl.api.context import app_of
from lxctl.errors import InvalidArgument
from lxctl.kernel.events import EVENT_TYPES
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "events"


async def events_subscribe(ctx: CallContext, types: list[str] | None = None) -> dict[str, Any]:
    """Stream events as ``event`` notifications on this connection until it closes."""
    types = types or []
    for t in types:
        if t not in EVENT_TYPES:
            raise InvalidArgument(f"Unknown event type {t!r} (known: {', '.join(EVENT_TYPES)})")
    app = app_of(ctx)
    sub = app.bus.subscribe(types)
    conn = ctx.conn

    scope = trio.CancelScope()
    conn.on_eof_cancel.append(scope)

    async def forward() -> None:
        with scope:
            try:
                async for event in sub.receive:
                    await conn.notify("event", event.to_api())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                app.bus.unsubscribe(sub)
        if sub.dropped and not conn.closed and not scope.cancel_called:
            await conn.notify("events.dropped", {"reason": "subscriber fell behind"})
            await conn.stream.aclose()

    conn.nursery.start_soon(forward)
    return {"subscribed": types or list(EVENT_TYPES)}


METHODS: dict[str, Method] = {"events.subscribe": events_subscribe}
