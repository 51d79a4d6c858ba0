"""``instance_snapshot.*``: an instance's snapshots (list, get, create, delete, rename,
restore, update). Changes return an operation object at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of, project_name
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "instance_snapshot"


async def instance_snapshot_list(ctx: CallContext, instance: str, *,
                                 project: str = "default") -> list[dict[str, Any]]:
    """The instance's snapshots, oldest first."""
    snaps = await app_of(ctx).instances.snapshot_list(project_name(project), instance)
    return [s.to_api() for s in snaps]


async def instance_snapshot_get(ctx: CallContext, instance: str, name: str, *,
                                project: str = "default") -> dict[str, Any]:
    """One snapshot: its config, devices and profiles as they were, its times."""
    snap = await app_of(ctx).instances.snapshot_get(project_name(project), instance, name)
    return snap.to_api()


async def instance_snapshot_create(ctx: CallContext, instance: str, name: str | None = None,
                                   stateful: bool = False, expires_at: float | None = None,
                                   description: str = "", reuse: bool = False, *,
                                   project: str = "default") -> dict[str, Any]:
    """Snapshot the instance, running or not (``name``: else ``snapshots.pattern``;
    ``expires_at``: Unix time, 0 never, else ``snapshots.expiry``; ``reuse``: replace
    one of that name)."""
    op = await app_of(ctx).instances.snapshot_create(
        project_name(project), instance, name, stateful=stateful, expires_at=expires_at,
        description=description, reuse=reuse)
    return op.to_api()


async def instance_snapshot_delete(ctx: CallContext, instance: str, name: str, *,
                                   project: str = "default") -> dict[str, Any]:
    """Delete a snapshot, its volume snapshot with it (an operation)."""
    op = await app_of(ctx).instances.snapshot_delete(project_name(project), instance, name)
    return op.to_api()


async def instance_snapshot_rename(ctx: CallContext, instance: str, name: str,
                                   new_name: str, *, project: str = "default"
                                   ) -> dict[str, Any]:
    """Rename a snapshot (an operation)."""
    op = await app_of(ctx).instances.snapshot_rename(project_name(project), instance, name,
                                                     new_name)
    return op.to_api()


async def instance_snapshot_restore(ctx: CallContext, instance: str, name: str,
                                    stateful: bool = False, *, project: str = "default"
                                    ) -> dict[str, Any]:
    """Put the instance back as the snapshot has it (a running one is stopped for it
    and started again after)."""
    op = await app_of(ctx).instances.snapshot_restore(project_name(project), instance, name,
                                                      stateful=stateful)
    return op.to_api()


async def instance_snapshot_update(ctx: CallContext, instance: str, name: str,
                                   description: str | None = None,
                                   expires_at: float | None = None, *,
                                   project: str = "default") -> dict[str, Any]:
    """Change a snapshot's description or expiry (Unix time, 0: never)."""
    snap = await app_of(ctx).instances.snapshot_update(
        project_name(project), instance, name, description=description, expires_at=expires_at)
    return snap.to_api()


METHODS: dict[str, Method] = {
    "instance_snapshot.list": instance_snapshot_list,
    "instance_snapshot.get": instance_snapshot_get,
    "instance_snapshot.create": instance_snapshot_create,
    "instance_snapshot.delete": instance_snapshot_delete,
    "instance_snapshot.rename": instance_snapshot_rename,
    "instance_snapshot.restore": instance_snapshot_restore,
    "instance_snapshot.update": instance_snapshot_update,
}
