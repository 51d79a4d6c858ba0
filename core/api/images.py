"""``image.*``: import (streamed), build, list, get, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of, project_name
from lxctl.api.streams import chunks
from lxctl.errors import InvalidArgument
from lxctl.objects.projects import effective_project
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "image"


async def image_import(
    ctx: CallContext, stream: str, aliases: list[str] | None = None, *, project: str = "default"
) -> dict[str, Any]:
    """Import a unified image tarball sent as ``stream.input`` notifications."""
    stdin = ctx.conn.claim_stream(stream)
    try:
        rec = await app_of(ctx).images.receive(chunks(stdin), aliases or [], project_name(project))
    finally:
        ctx.conn.release_stream(stream)
    return rec.to_api()


async def image_build(
    ctx: CallContext, kind: str, aliases: list[str] | None = None, *, project: str = "default"
) -> dict[str, Any]:
    """Build an image locally, without network: ``kind`` is ``busybox``."""
    if kind != "busybox":
        raise InvalidArgument(f"Unknown image kind {kind!r} (known: busybox)", kind=kind)
    rec = await app_of(ctx).images.build_busybox(aliases or [], project_name(project))
    return rec.to_api()


async def image_list(ctx: CallContext, *, project: str = "default") -> list[dict[str, Any]]:
    """The images of the project (the default project's without features.images)."""
    p = project_name(project)
    return [r.to_api() for r in await app_of(ctx).store.read(  # features.images off: default's
        lambda t: t.image_list(effective_project(t, p, "images")))]


async def image_get(ctx: CallContext, image: str, *, project: str = "default") -> dict[str, Any]:
    """One image by fingerprint (or a unique prefix) or alias."""
    return (await app_of(ctx).images.get(project_name(project), image)).to_api()


async def image_delete(ctx: CallContext, image: str, *, project: str = "default") -> dict[str, Any]:
    """Delete an image and its volumes on every pool."""
    app = app_of(ctx)
    rec = await app.images.delete(project_name(project), image)
    await app.pools.forget_image(rec.fingerprint)
    return rec.to_api()


METHODS: dict[str, Method] = {
    "image.import": image_import,
    "image.build": image_build,
    "image.list": image_list,
    "image.get": image_get,
    "image.delete": image_delete,
}
