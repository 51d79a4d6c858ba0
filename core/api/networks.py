"""``network.*``: managed networks of a project, with their state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of, project_name
from lxctl.objects.networks import KIND, key
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "network"


async def network_list(ctx: CallContext, *, project: str = "default") -> list[dict[str, Any]]:
    """Networks with ``status`` (Created or Unavailable, with the ``reason``)."""
    app = app_of(ctx)
    p = project_name(project)
    out = []
    for rec in await app.store.read(lambda t: t.network_list(p)):
        reason = app.availability.reason(KIND, key(rec.project, rec.name))
        out.append(
            {
                **rec.to_api(),
                "status": "Created" if reason is None else "Unavailable",
                "reason": reason or "",
            }
        )
    return out


METHODS: dict[str, Method] = {"network.list": network_list}
