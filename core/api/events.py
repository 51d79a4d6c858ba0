"""``events.subscribe``: the connection becomes an event stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
import trio

from lxctl.api.context import app_of, project_name
from lxctl.kernel.events import EVENT_TYPES, EventFilter
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "events"

log = structlog.get_logger("lxctl.api.events")


async def events_subscribe(ctx: CallContext, types: list[str] | None = None,
                           project: str = "default", all_projects: bool = False,
                           instance: str | None = None, loglevel: str | None = None,
                           since: int | None = None) -> dict[str, Any]:
    """Stream events as ``event`` notifications on this connection until it closes.

    ``types``: lifecycle, operation, logging (default: all); ``project`` (events of
    no project, such as logging and storage pools, always pass) or ``all_projects``;
    ``instance``: only its lifecycle events and operations; ``loglevel``: the lowest
    level of logging events; ``since``: first every event after this id still in the
    backlog (an id older than the backlog is refused). A subscriber that falls behind
    its queue gets ``events.dropped {reason, last_id}`` and the connection closes.
    Returns the types, and ``last_id``: the id of the last event published so far."""
    filt = EventFilter(frozenset(types or ()),
                       None if all_projects else frozenset({project_name(project)}),
                       instance, loglevel)
    app = app_of(ctx)
    sub = app.bus.subscribe(filter=filt, since=since, queue=app.config.events_queue)
    conn = ctx.conn
    last_id = since if since is not None else app.bus.last_id

    scope = trio.CancelScope()
    conn.on_eof_cancel.append(scope)

    async def forward() -> None:
        delivered, sending = last_id, False
        relay = trio.CancelScope()

        async def cut_when_dropped() -> None:
            await sub.dropped_event.wait()
            relay.cancel()  # stop at once, even in the middle of a send to a stuck reader

        with scope:
            try:
                async with trio.open_nursery() as watch:
                    watch.start_soon(cut_when_dropped)
                    with relay:
                        async for event in sub.receive:
                            sending = True
                            await conn.send(event.notification)
                            sending, delivered = False, event.id
                    watch.cancel_scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                app.bus.unsubscribe(sub)
        if sub.dropped and not conn.closed and not scope.cancel_called:
            log.warning("event subscriber dropped", conn_id=conn.conn_id, reason=sub.reason,
                        last_id=delivered)
            with trio.move_on_after(1):
                try:
                    if not sending:  # a cut-off line would garble the reason
                        await conn.notify("events.dropped", {"reason": sub.reason,
                                                             "last_id": delivered})
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            with trio.move_on_after(1):
                await conn.stream.aclose()

    conn.nursery.start_soon(forward)
    return {"subscribed": sorted(filt.types) or list(EVENT_TYPES), "last_id": last_id}


METHODS: dict[str, Method] = {"events.subscribe": events_subscribe}
