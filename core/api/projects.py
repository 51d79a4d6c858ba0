"""``project.*``: projects (the ``default`` one always exists)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "project"


async def project_list(ctx: CallContext) -> list[dict[str, Any]]:
    return [r.to_api() for r in await app_of(ctx).projects.list()]


async def project_get(ctx: CallContext, name: str) -> dict[str, Any]:
    return (await app_of(ctx).projects.get(name)).to_api()


METHODS: dict[str, Method] = {"project.list": project_list, "project.get": project_get}
