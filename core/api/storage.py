"""``storage.*``: storage pools (server-wide, as in Incus)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from lxctl.api.context import app_of
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext
    from lxctl.state.records import PoolRecord

NOUN = "storage"


async def _shown(ctx: CallContext, rec: PoolRecord) -> dict[str, Any]:
    app = app_of(ctx)
    item = rec.to_api()
    reason = app.pools.unavailable.get(rec.name)
    if reason is not None:
        item.update(status="Unavailable", reason=reason)
    item["used_by"] = await app.pools.used_by(rec.name)
    return item


async def storage_list(ctx: CallContext) -> list[dict[str, Any]]:
    """Every pool, with ``status`` Unavailable (and ``reason``) where it is down."""
    return [await _shown(ctx, rec) for rec in await app_of(ctx).pools.list()]


async def storage_get(ctx: CallContext, name: str) -> dict[str, Any]:
    """One pool: its config, status and what uses it."""
    rec = await app_of(ctx).store.read(lambda t: t.pool_get(name))
    return await _shown(ctx, rec)


async def storage_create(ctx: CallContext, name: str, driver: str,
                         config: dict[str, str] | None = None, description: str = ""
                         ) -> dict[str, Any]:
    """A new pool, made and mounted by its driver (refused with nothing left behind)."""
    return (await app_of(ctx).pools.create(name, driver, config or {}, description)).to_api()


async def storage_update(ctx: CallContext, name: str, config: dict[str, str],
                         description: str | None = None) -> dict[str, Any]:
    """Replace the pool's config (as Incus's PUT)."""
    return (await app_of(ctx).pools.update(name, config, description)).to_api()


async def storage_delete(ctx: CallContext, name: str) -> None:
    """Delete a pool nothing uses, with everything it holds on disk."""
    await app_of(ctx).pools.delete(name)


async def storage_info(ctx: CallContext, name: str) -> dict[str, Any]:
    """The pool with its space: used and total bytes where the driver can tell."""
    app = app_of(ctx)
    item = await storage_get(ctx, name)
    rec, _ = await app.pools.get(name)  # Unavailable if it is down
    candidates = [app.drivers.ctx.state_dir / "storage-pools" / name,
                  Path(rec.config.get("source") or "/nonexistent")]

    def space() -> dict[str, int] | None:
        for path in candidates:
            if path.is_dir():
                st = os.statvfs(path)
                return {"total": st.f_blocks * st.f_frsize,
                        "used": (st.f_blocks - st.f_bfree) * st.f_frsize}
        return None

    item["space"] = await trio.to_thread.run_sync(space)
    return item


METHODS: dict[str, Method] = {
    "storage.list": storage_list,
    "storage.get": storage_get,
    "storage.create": storage_create,
    "storage.update": storage_update,
    "storage.delete": storage_delete,
    "storage.info": storage_info,
}
