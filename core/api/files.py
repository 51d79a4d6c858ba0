"""``file.*``: files of an instance; pushes arrive and pulls leave as streams."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import trio

from lxctl.api.context import app_of, project_name
from lxctl.api.streams import chunks
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "file"


async def file_push(ctx: CallContext, instance: str, path: str, stream: str, uid: int = 0,
                    gid: int = 0, mode: int = 0o644, parents: bool = False, *,
                    project: str = "default") -> dict[str, Any]:
    """Write ``path`` in the instance from ``stream.input`` data (base64, then ``eof``);
    ``parents`` creates missing directories. Paths, symlinks included, resolve inside
    the instance's root."""
    stdin = ctx.conn.claim_stream(stream)
    try:
        size = await app_of(ctx).instances.push_file(
            project_name(project), instance, path, chunks(stdin), uid=uid, gid=gid,
            mode=mode, make_parents=parents)
    finally:
        ctx.conn.release_stream(stream)
    return {"size": size}


async def file_pull(ctx: CallContext, instance: str, path: str, stream: str, *,
                    project: str = "default") -> dict[str, Any]:
    """Send ``path`` of the instance as ``file.output {stream, data}`` notifications;
    answer {size} after the last one."""
    conn = ctx.conn

    async def output(data: bytes) -> None:
        try:
            await conn.notify("file.output", {"stream": stream,
                                              "data": base64.b64encode(data).decode()})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    size = await app_of(ctx).instances.pull_file(project_name(project), instance, path,
                                                 output)
    return {"size": size}


async def file_delete(ctx: CallContext, instance: str, path: str, *,
                      project: str = "default") -> dict[str, Any]:
    """Delete a file or empty directory in the instance (resolved inside it)."""
    await app_of(ctx).instances.delete_file(project_name(project), instance, path)
    return {}


async def file_mkdir(ctx: CallContext, instance: str, path: str, uid: int = 0, gid: int = 0,
                     mode: int = 0o755, parents: bool = False, *,
                     project: str = "default") -> dict[str, Any]:
    """Create a directory in the instance (``parents``: and the missing ones above)."""
    await app_of(ctx).instances.make_directory(project_name(project), instance, path,
                                               uid=uid, gid=gid, mode=mode,
                                               make_parents=parents)
    return {}


async def file_info(ctx: CallContext, instance: str, path: str, *,
                    project: str = "default") -> dict[str, Any]:
    """What a path of the instance is: type, mode, uid, gid, size; a directory's
    ``entries``, a symlink's ``target`` (not followed)."""
    return await app_of(ctx).instances.file_info(project_name(project), instance, path)


METHODS: dict[str, Method] = {
    "file.push": file_push,
    "file.pull": file_pull,
    "file.delete": file_delete,
    "file.mkdir": file_mkdir,
    "file.info": file_info,
}
