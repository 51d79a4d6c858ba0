"""``profile.*``: profiles of a project."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of, project_name
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "profile"


async def profile_list(ctx: CallContext, *, project: str = "default") -> list[dict[str, Any]]:
    p = project_name(project)
    return [r.to_api() for r in await app_of(ctx).store.read(lambda t: t.profile_list(p))]


async def profile_get(ctx: CallContext, name: str, *, project: str = "default") -> dict[str, Any]:
    p = project_name(project)
    return (await app_of(ctx).store.read(lambda t: t.profile_get(p, name))).to_api()


METHODS: dict[str, Method] = {"profile.list": profile_list, "profile.get": profile_get}
