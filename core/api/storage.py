"""``storage.*``: storage pools (server-wide, as in Incus)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "storage"


async def storage_list(ctx: CallContext) -> list[dict[str, Any]]:
    """Every pool, with ``status`` Unavailable (and ``reason``) where it is down."""
    app = app_of(ctx)
    out = []
    for rec in await app.pools.list():
        item = rec.to_api()
        reason = app.pools.unavailable.get(rec.name)
        if reason is not None:
            item.update(status="Unavailable", reason=reason)
        out.append(item)
    return out


METHODS: dict[str, Method] = {"storage.list": storage_list}
