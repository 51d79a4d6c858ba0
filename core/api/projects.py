"""``project.*``: projects (the ``default`` one always exists)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "project"


async def project_list(ctx: CallContext) -> list[dict[str, Any]]:
    """Every project, with ``used_by`` (the API paths of what it holds)."""
    app = app_of(ctx)
    return await app.projects.describe(await app.projects.list())


async def project_get(ctx: CallContext, name: str) -> dict[str, Any]:
    """One project, with what uses it."""
    app = app_of(ctx)
    return (await app.projects.describe([await app.projects.get(name)]))[0]


async def project_create(
    ctx: CallContext, name: str, config: dict[str, str] | None = None, description: str = ""
) -> dict[str, Any]:
    """A new project; ``features.images``, ``features.profiles`` and
    ``features.storage.volumes`` are true unless given (as in Incus)."""
    app = app_of(ctx)
    rec = await app.projects.create(name, config or {}, description, schema=app.schema,
                                    bus=app.bus)
    return (await app.projects.describe([rec]))[0]


async def project_update(
    ctx: CallContext, name: str, config: dict[str, str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Replace the config and/or the description (what is not given stays)."""
    app = app_of(ctx)
    rec = await app.projects.update(name, config, description, schema=app.schema, bus=app.bus)
    return (await app.projects.describe([rec]))[0]


async def project_delete(ctx: CallContext, name: str) -> dict[str, Any]:
    """Delete an empty project other than ``default``."""
    app = app_of(ctx)
    await app.projects.delete(name, bus=app.bus)
    return {}


async def project_rename(ctx: CallContext, name: str, new_name: str) -> dict[str, Any]:
    """Rename an empty project other than ``default``."""
    app = app_of(ctx)
    await app.projects.rename(name, new_name, bus=app.bus)
    return {}


METHODS: dict[str, Method] = {
    "project.list": project_list,
    "project.get": project_get,
    "project.create": project_create,
    "project.update": project_update,
    "project.delete": project_delete,
    "project.rename": project_rename,
}
