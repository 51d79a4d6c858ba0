"""``storage_volume.*``: custom volumes of a pool, scoped by project
(``features.storage.volumes``), their snapshots, and their disks on instances."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of, project_name
from lxctl.errors import InvalidArgument, NotFound
from lxctl.objects.volumes import Volumes, uses
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "storage_volume"


def _volumes(ctx: CallContext) -> Volumes:
    app = app_of(ctx)

    async def is_running(project: str, name: str) -> bool:
        rec = await app.instances.get(project, name)
        return await app.instances.status(rec) not in ("Stopped", "Error")

    return Volumes(app.pools, app.store, app.bus, app.schema, is_running)


async def storage_volume_list(ctx: CallContext, pool: str | None = None, *,
                              project: str = "default") -> list[dict[str, Any]]:
    """The volumes of the project (on ``pool``, or every pool), with what uses them."""
    return await _volumes(ctx).list(project_name(project), pool)


async def storage_volume_get(ctx: CallContext, pool: str, name: str, *,
                             project: str = "default") -> dict[str, Any]:
    """One custom volume: config, description, what uses it."""
    return await _volumes(ctx).show(project_name(project), pool, name)


async def storage_volume_create(ctx: CallContext, pool: str, name: str,
                                config: dict[str, str] | None = None, description: str = "",
                                content_type: str = "filesystem", *,
                                project: str = "default") -> dict[str, Any]:
    """A new empty custom volume (``size``: its quota, where the driver has quotas)."""
    rec = await _volumes(ctx).create(project_name(project), pool, name, config or {},
                                     description, content_type)
    return rec.to_api()


async def storage_volume_update(ctx: CallContext, pool: str, name: str,
                                config: dict[str, str], description: str | None = None, *,
                                project: str = "default") -> dict[str, Any]:
    """Replace the volume's config (as Incus's PUT); ``size`` applies at once."""
    rec = await _volumes(ctx).update(project_name(project), pool, name, config, description)
    return rec.to_api()


async def storage_volume_delete(ctx: CallContext, pool: str, name: str, *,
                                project: str = "default") -> None:
    """Delete a volume nothing attaches, with its snapshots."""
    await _volumes(ctx).delete(project_name(project), pool, name)


async def storage_volume_copy(ctx: CallContext, pool: str, name: str, target_pool: str,
                              target_name: str, move: bool = False,
                              volume_only: bool = False, *,
                              project: str = "default") -> dict[str, Any]:
    """Copy (``move``: move) a volume to a pool (the same or another) under a name,
    with its snapshots unless ``volume_only``."""
    rec = await _volumes(ctx).copy(project_name(project), pool, name, target_pool,
                                   target_name, move=move, volume_only=volume_only)
    return rec.to_api()


async def storage_volume_rename(ctx: CallContext, pool: str, name: str, new_name: str, *,
                                project: str = "default") -> dict[str, Any]:
    """Rename a volume nothing attaches (its snapshots with it)."""
    rec = await _volumes(ctx).copy(project_name(project), pool, name, pool, new_name,
                                   move=True)
    return rec.to_api()


async def storage_volume_snapshot(ctx: CallContext, action: str, pool: str, name: str,
                                  snapshot: str = "", *, project: str = "default"
                                  ) -> list[str]:
    """``create``/``delete``/``restore`` a snapshot, or ``list`` them (oldest first)."""
    return await _volumes(ctx).snapshot(action, project_name(project), pool, name,
                                        snapshot)


async def storage_volume_attach(ctx: CallContext, pool: str, name: str, instance: str,
                                path: str, device: str | None = None, *,
                                project: str = "default") -> None:
    """Add a disk device (``pool=``, ``source=``, ``path=``) for the volume to the
    instance; a volume attached twice to one instance is refused."""
    app = app_of(ctx)
    p = project_name(project)
    await _volumes(ctx).get(p, pool, name)  # NotFound naming it
    rec = await app.instances.get(p, instance)
    device = device or name
    if device in rec.devices:
        raise InvalidArgument(f"Instance {instance!r} already has a device {device!r}",
                              device=device)
    if uses(rec.devices, pool, name):
        raise InvalidArgument(f"Storage volume {name!r} is already attached to instance "
                              f"{instance!r}", volume=name, instance=instance)
    if not path.startswith("/") or path == "/":
        raise InvalidArgument(f"path {path!r} must be an absolute path other than /",
                              path=path)
    conf = {"type": "disk", "pool": pool, "source": name, "path": path}
    await app.instances.update(p, instance, devices={**rec.devices, device: conf})


async def storage_volume_detach(ctx: CallContext, pool: str, name: str, instance: str,
                                device: str | None = None, *, project: str = "default"
                                ) -> None:
    """Remove the disk device(s) of the volume from the instance (or only ``device``)."""
    app = app_of(ctx)
    p = project_name(project)
    rec = await app.instances.get(p, instance)
    gone = [d for d in uses(rec.devices, pool, name) if device is None or d == device]
    if not gone:
        raise NotFound(f"Storage volume {name!r} is not attached to instance {instance!r}",
                       volume=name, instance=instance)
    await app.instances.update(p, instance, devices={
        d: c for d, c in rec.devices.items() if d not in gone})


METHODS: dict[str, Method] = {
    "storage_volume.list": storage_volume_list,
    "storage_volume.get": storage_volume_get,
    "storage_volume.create": storage_volume_create,
    "storage_volume.update": storage_volume_update,
    "storage_volume.delete": storage_volume_delete,
    "storage_volume.copy": storage_volume_copy,
    "storage_volume.rename": storage_volume_rename,
    "storage_volume.snapshot": storage_volume_snapshot,
    "storage_volume.attach": storage_volume_attach,
    "storage_volume.detach": storage_volume_detach,
}
