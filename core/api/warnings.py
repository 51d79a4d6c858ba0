"""``warning.*``: list, get, ack, delete the daemon's persistent warnings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of, project_name
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "warning"


async def warning_list(ctx: CallContext, project: str = "default", all_projects: bool = False,
                       status: str | None = None, type: str | None = None
                       ) -> list[dict[str, Any]]:
    """The warnings of ``project`` and those of no project (a pool, the daemon), or
    every one with ``all_projects``; ``status`` (new, acknowledged, resolved) and
    ``type`` filter them. Oldest last seen first."""
    warnings = app_of(ctx).warnings
    if all_projects:
        recs = await warnings.list(None, status, type)
    else:
        name = project_name(project)
        recs = [r for r in await warnings.list(None, status, type) if r.project in ("", name)]
    return [r.to_api() for r in recs]


async def warning_get(ctx: CallContext, uuid: str) -> dict[str, Any]:
    """One warning by its uuid."""
    return (await app_of(ctx).warnings.get(uuid)).to_api()


async def warning_ack(ctx: CallContext, uuid: str) -> dict[str, Any]:
    """Acknowledge a warning: it stays, counted, but is no longer new."""
    return (await app_of(ctx).warnings.set_status(uuid, "acknowledged")).to_api()


async def warning_update(ctx: CallContext, uuid: str, status: str) -> dict[str, Any]:
    """Set a warning's status: new, acknowledged or resolved."""
    return (await app_of(ctx).warnings.set_status(uuid, status)).to_api()


async def warning_delete(ctx: CallContext, uuid: str) -> dict[str, Any]:
    """Delete a warning (raised again, it starts a new row)."""
    await app_of(ctx).warnings.delete(uuid)
    return {"deleted": uuid}


METHODS: dict[str, Method] = {
    "warning.list": warning_list,
    "warning.get": warning_get,
    "warning.ack": warning_ack,
    "warning.update": warning_update,
    "warning.delete": warning_delete,
}
