"""Custom storage volumes: filesystem volumes of a pool that instances attach as disks.

A volume belongs to a project when the project has ``features.storage.volumes``, else
to ``default`` (as Incus). Its keys are the driver's ``volume_keys``; ``size`` is a
quota, set through the driver where its info declares quotas. Attached to an instance
it is a ``disk`` device with ``pool=`` and ``source=`` (the volume's name); at start
(or hot-plug) :func:`mount_attached` mounts it and shifts its files to the instance's
id map once per map (``volatile.idmap.last``), so its root can write there.

Copy and move: :func:`lxctl.objects.transfer.transfer` (the driver's own copy between
two of its pools, send/receive where it has one; else rsync of the mounted trees).
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import trio

from lxctl.config.schema import ConfigSchema, Scope
from lxctl.config.units import parse_size
from lxctl.drivers.devices import MountedVolume
from lxctl.drivers.storage import ContentType, StorageDriver, Volume, VolumeType
from lxctl.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from lxctl.kernel.events import EventBus, source_path
from lxctl.objects.idmap import shift_tree
from lxctl.objects.names import check_object_name
from lxctl.objects.pools import Pools, quotas_of, snapshots_of
from lxctl.objects.projects import effective_project
from lxctl.objects.transfer import transfer
from lxctl.state.records import InstanceRecord, PoolRecord, VolumeRecord
from lxctl.state.store import StateStore, Tables

if TYPE_CHECKING:
    from lxctl.objects.idmap import IdMap

FEATURE = "storage.volumes"
CUSTOM = str(VolumeType.CUSTOM)
IDMAP_KEY = "volatile.idmap.last"
IsRunning = Callable[[str, str], Awaitable[bool]]


def volume_source(pool: str, name: str, project: str) -> str:
    return source_path("storage-pools", pool, "volumes", CUSTOM, name, project=project)


def as_volume(rec: VolumeRecord) -> Volume:
    return Volume(rec.name, VolumeType.CUSTOM, ContentType(rec.content_type), rec.project,
                  rec.config)


def uses(devices: Mapping[str, Mapping[str, str]], pool: str, name: str) -> list[str]:
    """The disk devices that attach the volume."""
    return sorted(d for d, c in devices.items() if c.get("type") == "disk"
                  and c.get("pool") == pool and c.get("source") == name
                  and c.get("path") != "/")


class Volumes:
    def __init__(self, pools: Pools, store: StateStore, bus: EventBus,
                 schema: ConfigSchema, is_running: IsRunning | None = None) -> None:
        """``is_running(project, instance)``: whether an instance runs (None: assume
        every instance attaching a volume does)."""
        self.pools = pools
        self.store = store
        self.bus = bus
        self.schema = schema
        self.is_running = is_running

    async def project(self, project: str) -> str:
        """The project whose volumes ``project`` uses."""
        return await self.store.read(lambda t: effective_project(t, project, FEATURE))

    async def get(self, project: str, pool: str, name: str) -> VolumeRecord:
        p = await self.project(project)
        return await self.store.read(lambda t: t.volume_get(p, pool, CUSTOM, name))

    async def show(self, project: str, pool: str, name: str) -> dict[str, object]:
        rec = await self.get(project, pool, name)
        return {**rec.to_api(), "used_by": await self.used_by(rec)}

    async def list(self, project: str, pool: str | None) -> builtins.list[dict[str, object]]:
        """Custom volumes of the project and the instance volumes of its pools."""
        p = await self.project(project)
        if pool is not None:
            await self.store.read(lambda t: t.pool_get(pool))
        recs = await self.store.read(lambda t: t.volume_list(pool, p))
        return [{**r.to_api(), "used_by": await self.used_by(r) if r.type == CUSTOM else
                 [source_path("instances", r.name, project=r.project)]} for r in recs]

    async def used_by(self, rec: VolumeRecord) -> builtins.list[str]:
        def read(t: Tables) -> builtins.list[str]:
            out = [source_path("instances", i.name, project=i.project)
                   for i in t.instance_list(None)
                   if uses(i.devices, rec.pool, rec.name)
                   and effective_project(t, i.project, FEATURE) == rec.project]
            for project in t.project_list():
                if effective_project(t, project.name, FEATURE) != rec.project:
                    continue
                out += [source_path("profiles", p.name, project=p.project)
                        for p in t.profile_list(project.name)
                        if uses(p.devices, rec.pool, rec.name)]
            return out

        return await self.store.read(read)

    def _check_config(self, pool: PoolRecord, driver: StorageDriver,
                      config: Mapping[str, str]) -> None:
        info = driver.info
        rest = {k: v for k, v in config.items()  # size: the core's key
                if k != "size" and not k.startswith("user.")}
        self.schema.check(Scope.VOLUME, rest, owners=[f"storage:{info.name}"],
                          what=f"a volume of the {info.name} pool {pool.name!r}")
        own = {k.name for k in info.volume_keys}
        for key in config:
            if key == "size":
                quotas_of(driver)  # refused where the driver has no quotas
                size = parse_size(config["size"])
                if pool.config.get("size") and size > parse_size(pool.config["size"]):
                    raise InvalidArgument(
                        f"Volume size {config['size']} is larger than storage pool "
                        f"{pool.name!r} ({pool.config['size']})", key="size", pool=pool.name)
            elif key not in own and not key.startswith("user."):
                raise InvalidArgument(f"Config key {key!r} is not supported by the "
                                      f"{info.name} storage driver", key=key)

    async def create(self, project: str, pool: str, name: str, config: dict[str, str],
                     description: str = "", content_type: str = "filesystem"
                     ) -> VolumeRecord:
        """A new empty volume with its quota; refused with nothing made if the name is
        taken or invalid, a key is not the driver's, or the size does not fit."""
        check_object_name("storage volume", name)
        if content_type != str(ContentType.FILESYSTEM):
            raise InvalidArgument(f"Volumes of content type {content_type!r} are not "
                                  "supported (filesystem only)", type=content_type)
        p = await self.project(project)
        pool_rec, driver = await self.pools.get(pool)
        self._check_config(pool_rec, driver, config)
        rec = VolumeRecord(pool, name, CUSTOM, content_type, dict(config), description,
                           project=p)
        volume = as_volume(rec)
        Pools.check_supports(driver.info, volume)
        await self.store.write(lambda t: t.volume_create(rec))  # AlreadyExists if taken
        try:
            await driver.create_volume(pool_rec, volume)
            try:
                if config.get("size"):
                    await quotas_of(driver).set_quota(pool_rec, volume,
                                                      parse_size(config["size"]))
            except BaseException:
                with trio.CancelScope(shield=True):
                    await driver.delete_volume(pool_rec, volume)
                raise
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.store.write(lambda t: t.volume_delete(p, pool, CUSTOM, name))
            raise
        self.bus.emit("storage-volume-created", volume_source(pool, name, p), project=p,
                      type=CUSTOM)
        return rec

    async def update(self, project: str, pool: str, name: str, config: dict[str, str],
                     description: str | None = None) -> VolumeRecord:
        """Replace the config (as Incus's PUT); a new ``size`` is applied at once."""
        rec = await self.get(project, pool, name)
        pool_rec, driver = await self.pools.get(pool)
        kept = {k: v for k, v in rec.config.items() if k.startswith("volatile.")}
        new = {k: v for k, v in config.items() if not k.startswith("volatile.")}
        self._check_config(pool_rec, driver, new)
        changed = replace(rec, config={**new, **kept},
                          description=rec.description if description is None else description)
        if new.get("size") != rec.config.get("size"):
            await quotas_of(driver).set_quota(pool_rec, as_volume(changed),
                                              parse_size(new["size"]) if new.get("size") else 0)
        await self.store.write(lambda t: t.volume_update(changed))
        self.bus.emit("storage-volume-updated", volume_source(pool, name, rec.project),
                      project=rec.project, type=CUSTOM)
        return changed

    async def _refuse_in_use(self, rec: VolumeRecord, doing: str) -> None:
        users = await self.used_by(rec)
        if users:
            raise InvalidState(f"Storage volume {rec.name!r} is in use by "
                               f"{', '.join(users)}: it cannot be {doing}",
                               volume=rec.name, used_by=users)

    async def _refuse_running(self, rec: VolumeRecord) -> None:
        def read(t: Tables) -> builtins.list[InstanceRecord]:
            return [i for i in t.instance_list(None) if uses(i.devices, rec.pool, rec.name)
                    and effective_project(t, i.project, FEATURE) == rec.project]

        for inst in await self.store.read(read):
            if self.is_running is None or await self.is_running(inst.project, inst.name):
                raise InvalidState(f"Storage volume {rec.name!r} is in use by running "
                                   f"instance {inst.name!r}", volume=rec.name,
                                   instance=inst.name)

    async def delete(self, project: str, pool: str, name: str) -> None:
        """Delete the volume with its snapshots; refused while an instance or profile
        attaches it."""
        rec = await self.get(project, pool, name)
        await self._refuse_in_use(rec, "deleted")
        pool_rec, driver = await self.pools.get(pool)
        await driver.delete_volume(pool_rec, as_volume(rec))
        await self.store.write(lambda t: t.volume_delete(rec.project, pool, CUSTOM, name))
        self.bus.emit("storage-volume-deleted", volume_source(pool, name, rec.project),
                      project=rec.project, type=CUSTOM)

    async def copy(self, project: str, pool: str, name: str, target_pool: str,
                   target_name: str, *, move: bool = False,
                   volume_only: bool = False) -> VolumeRecord:
        """Copy (or move) a volume to ``target_pool`` as ``target_name``, its snapshots
        with it unless ``volume_only``: renamed in place by its driver within a pool,
        else through :func:`~lxctl.objects.transfer.transfer`."""
        rec = await self.get(project, pool, name)
        if move:
            await self._refuse_in_use(rec, "moved")
        check_object_name("storage volume", target_name)
        src_pool, src_driver = await self.pools.get(pool)
        if move and pool == target_pool:
            return await self._rename(rec, src_pool, src_driver, target_name)
        snapshots = [] if volume_only or not src_driver.info.snapshots else \
            await snapshots_of(src_driver).list_snapshots(src_pool, as_volume(rec))
        dst_pool, dst_driver = await self.pools.get(target_pool)
        if (pool, name) == (target_pool, target_name):
            raise AlreadyExists(f"Storage volume {name!r} already exists on pool {pool!r}")
        config = {k: v for k, v in rec.config.items() if k != IDMAP_KEY}
        self._check_config(dst_pool, dst_driver, {k: v for k, v in config.items()
                                                   if not k.startswith("volatile.")})
        target = replace(rec, pool=target_pool, name=target_name, config=config)
        await self.store.write(lambda t: t.volume_create(target))  # AlreadyExists if taken
        try:
            await transfer(src_pool, src_driver, as_volume(rec), dst_pool, dst_driver,
                           as_volume(target), snapshots=snapshots,
                           native=self.pools.native_transfers)
            try:
                if config.get("size"):
                    await quotas_of(dst_driver).set_quota(dst_pool, as_volume(target),
                                                          parse_size(config["size"]))
            except BaseException:
                with trio.CancelScope(shield=True):
                    await dst_driver.delete_volume(dst_pool, as_volume(target))
                raise
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.store.write(lambda t: t.volume_delete(
                    target.project, target_pool, CUSTOM, target_name))
            raise
        if IDMAP_KEY in rec.config:  # the copy's files are shifted like the source's
            shifted = replace(target, config={**target.config,
                                              IDMAP_KEY: rec.config[IDMAP_KEY]})
            await self.store.write(lambda t: t.volume_update(shifted))
            target = shifted
        if move:
            await src_driver.delete_volume(src_pool, as_volume(rec))
            await self.store.write(lambda t: t.volume_delete(rec.project, pool, CUSTOM, name))
            if name != target_name:
                self.bus.emit("storage-volume-renamed",
                              volume_source(target_pool, target_name, rec.project),
                              project=rec.project, old_name=name)
            if pool != target_pool:
                self.bus.emit("storage-volume-migrated",
                              volume_source(target_pool, target_name, rec.project),
                              project=rec.project)
        else:
            self.bus.emit("storage-volume-created",
                          volume_source(target_pool, target_name, rec.project),
                          project=rec.project, type=CUSTOM)
        return target

    async def _rename(self, rec: VolumeRecord, pool: PoolRecord, driver: StorageDriver,
                      new_name: str) -> VolumeRecord:
        """Within its pool: the driver renames it, snapshots and all."""
        if rec.name == new_name:
            raise AlreadyExists(f"Storage volume {new_name!r} already exists on pool "
                                f"{pool.name!r}")
        renamed = replace(rec, name=new_name)
        # the record first: a taken name is refused before the driver is asked
        await self.store.write(lambda t: t.volume_move(rec, pool.name, new_name))
        try:
            await driver.rename_volume(pool, as_volume(rec), new_name)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.store.write(lambda t: t.volume_move(renamed, pool.name, rec.name))
            raise
        self.bus.emit("storage-volume-renamed", volume_source(pool.name, new_name, rec.project),
                      project=rec.project, old_name=rec.name)
        return renamed

    # ------------------------------------------------------------------ snapshots
    async def snapshot(self, verb: str, project: str, pool: str, name: str,
                       snapshot: str = "") -> builtins.list[str]:
        """``create``/``delete``/``restore`` a snapshot, or ``list`` them (names, oldest
        first), where the driver declares snapshots. A restore is refused while the
        volume is attached to a running instance."""
        rec = await self.get(project, pool, name)
        pool_rec, driver = await self.pools.get(pool)
        snaps = snapshots_of(driver)
        volume = as_volume(rec)
        if verb == "list":
            return await snaps.list_snapshots(pool_rec, volume)
        check_object_name("snapshot", snapshot)
        existing = await snaps.list_snapshots(pool_rec, volume)
        where = volume_source(pool, f"{name}/snapshots/{snapshot}", rec.project)
        if verb == "create":
            if snapshot in existing:
                raise AlreadyExists(f"Snapshot {snapshot!r} of volume {name!r} already "
                                    "exists", snapshot=snapshot)
            await snaps.create_snapshot(pool_rec, volume, snapshot)
            self.bus.emit("storage-volume-snapshot-created", where, project=rec.project)
            return [snapshot]
        if snapshot not in existing:
            raise NotFound(f"Snapshot {snapshot!r} of volume {name!r} not found",
                           snapshot=snapshot)
        if verb == "delete":
            await snaps.delete_snapshot(pool_rec, volume, snapshot)
            self.bus.emit("storage-volume-snapshot-deleted", where, project=rec.project)
        elif verb == "restore":
            await self._refuse_running(rec)
            await snaps.restore_snapshot(pool_rec, volume, snapshot)
            self.bus.emit("storage-volume-restored", volume_source(pool, name, rec.project),
                          project=rec.project, snapshot=snapshot)
        else:
            raise InvalidArgument(f"Unknown snapshot action {verb!r}")
        return [snapshot]


async def mount_attached(pools: Pools, store: StateStore, project: str,
                         conf: Mapping[str, str], idmap: IdMap | None) -> MountedVolume:
    """Mount the custom volume a disk device attaches (``pool=``, ``source=``), its files
    shifted to the instance's id map (None: unshifted) once per map."""
    p = await store.read(lambda t: effective_project(t, project, FEATURE))
    rec = await store.read(lambda t: t.volume_get(p, conf["pool"], CUSTOM, conf["source"]))
    pool_rec, driver = await pools.get(conf["pool"])
    mounted = await driver.mount_volume(pool_rec, as_volume(rec))
    want = (idmap.uid_base, idmap.gid_base) if idmap is not None else (0, 0)
    uid, _, gid = rec.config.get(IDMAP_KEY, "0:0").partition(":")
    last = (int(uid), int(gid))
    if want != last:
        await trio.to_thread.run_sync(shift_tree, mounted.path, want[0] - last[0],
                                      want[1] - last[1])
        shifted = replace(rec, config={**rec.config, IDMAP_KEY: f"{want[0]}:{want[1]}"})
        await store.write(lambda t: t.volume_update(shifted))
    return mounted
