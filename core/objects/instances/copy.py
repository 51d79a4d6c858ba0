"""Copy, rename and move: an instance's root volume (with its snapshots) moved by
:func:`lxctl.objects.transfer.transfer` and its records following.

``copy`` makes a new instance from another (running or not) or from one of its
snapshots: the config without the source's ``volatile.*`` keys (a new identity and new
MACs, as Incus does), on another pool with ``pool``, with the source's snapshots unless
``instance_only``. ``rename`` and ``move`` need a stopped instance; a move to another
pool copies the root volume there with its snapshots, then removes the old one.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import trio

from lxctl.config.schema import Scope
from lxctl.config.units import is_true
from lxctl.drivers.storage import StorageDriver, Volume
from lxctl.errors import AlreadyExists, InvalidArgument, LxctlError
from lxctl.kernel.operations import Operation
from lxctl.kernel.shield import shielded
from lxctl.objects import devices as device_rules
from lxctl.objects.idmap import isolated_block, shift_tree
from lxctl.objects.instances.base import InstanceBase, InstanceRecord, log, set_root_quota
from lxctl.objects.instances.create import START_SECONDS, check_device_support
from lxctl.objects.names import check_instance_name
from lxctl.objects.pools import volume_record
from lxctl.objects.projects import check_instance_limits
from lxctl.objects.transfer import transfer
from lxctl.state.records import PoolRecord, SnapshotRecord
from lxctl.state.store import Tables

MOVE_SECONDS = 600.0  # the records and the hypervisor's part follow a moved volume


def copied_config(config: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    """A copy's own config: the source's without ``volatile.*`` (but its base image),
    then ``overrides``, and a new ``volatile.uuid``."""
    kept = {k: v for k, v in config.items()
            if not k.startswith("volatile.") or k == "volatile.base_image"}
    return {**kept, **overrides, "volatile.uuid": str(uuid.uuid4())}


def on_pool(devices: dict[str, dict[str, str]], expanded: dict[str, dict[str, str]],
            pool: str) -> dict[str, dict[str, str]]:
    """The instance's own devices with its root disk on ``pool``: its own root disk
    changed, or the one its profiles give copied in with the new pool (as Incus does)."""
    root = device_rules.root_disk(expanded)
    name, conf = root if root is not None else ("root", {"type": "disk", "path": "/"})
    return {**devices, name: {**devices.get(name, conf), "pool": pool}}


def refuse_snapshots(pool: PoolRecord, storage: StorageDriver, doing: str) -> None:
    """Before anything is made: a pool whose driver keeps no snapshots cannot take an
    instance's."""
    if not storage.info.snapshots:
        raise InvalidArgument(
            f"Storage pool {pool.name!r} ({storage.info.name}) has no snapshots: the "
            f"instance's snapshots cannot be {doing} there (--instance-only leaves them)",
            pool=pool.name)


class Copy(InstanceBase):
    # ------------------------------------------------------------------ copy
    async def copy(self, project: str, source: str, name: str, *,
                   snapshot: str | None = None, pool: str | None = None,
                   instance_only: bool = False, config: dict[str, str] | None = None,
                   devices: dict[str, dict[str, str]] | None = None,
                   profiles: list[str] | None = None, ephemeral: bool | None = None,
                   start: bool = False) -> Operation:
        src = await self.get(project, source)
        check_instance_name(name)
        snap = (await self.store.read(lambda t: t.snapshot_get(project, source, snapshot))
                if snapshot is not None else None)
        base: InstanceRecord | SnapshotRecord = snap or src
        if profiles is not None:
            await self.profiles.check_exist(project, profiles)
        rec = InstanceRecord(
            name=name, type=src.type, architecture=src.architecture,
            description=src.description, config=copied_config(base.config, config or {}),
            devices={**{n: dict(c) for n, c in base.devices.items()}, **(devices or {})},
            profiles=list(base.profiles if profiles is None else profiles),
            ephemeral=src.ephemeral if ephemeral is None else ephemeral, project=project)
        hypervisor = self.hypervisor(rec)
        self.schema.check(Scope.INSTANCE, config or {},
                          owners=[f"hypervisor:{hypervisor.info.name}"],
                          what=f"a {rec.type} instance")
        src_pool, src_storage, src_volume = await self.root(src)
        if pool is not None:
            await self.store.read(lambda t: t.pool_get(pool))
            _, expanded = await self.profiles.expand(rec)
            rec.devices = on_pool(rec.devices, expanded, pool)
        expanded_config, expanded = await self.profiles.expand(rec)
        device_rules.check(expanded)
        check_device_support(hypervisor, expanded)
        await trio.to_thread.run_sync(device_rules.check_sources, expanded)
        dst_pool, dst_storage, volume = await self.root(rec, expanded)
        self.pools.check_supports(dst_storage.info, volume)
        snapshots = [] if instance_only or snap is not None else await self.store.read(
            lambda t: t.snapshot_list(project, source))
        if snapshots:
            refuse_snapshots(dst_pool, dst_storage, "copied")
        isolated = is_true(expanded_config.get("security.idmap.isolated"))
        effective = replace(rec, config=expanded_config)
        hypervisor.rootfs_idmap(effective)  # refuses before anything is written

        def reserve(t: Tables) -> None:
            check_instance_limits(t, project, rec.type)
            idmap = hypervisor.rootfs_idmap(effective)
            if isolated and idmap is not None:
                taken = {int(i.config["volatile.idmap.base"]) for i in t.instance_list(None)
                         if i.config.get("volatile.idmap.base", "").isdigit()}
                rec.config["volatile.idmap.base"] = str(isolated_block(idmap, taken).uid_base)
            t.instance_create(rec)
            t.volume_create(volume_record(dst_pool.name, volume))

        await self.locks.acquire(src.key, "copy")  # Busy at once if another action runs
        try:
            await self.locks.acquire(rec.key, "create")
        except BaseException:
            await self.release(src)
            raise
        try:
            await self.store.write(reserve)  # AlreadyExists if the name is taken
        except BaseException:
            await self.release(rec)
            await self.release(src)
            raise
        effective = replace(rec, config={**expanded_config, **rec.config})

        async def work(op: Operation) -> None:
            try:
                try:
                    self.ops.progress(op, step="copying root volume")
                    await transfer(src_pool, src_storage, src_volume, dst_pool, dst_storage,
                                   volume, snapshots=[s.name for s in snapshots],
                                   from_snapshot=snapshot,
                                   native=self.pools.native_transfers)
                    await self._shift_copy(src, snap, effective, dst_pool, dst_storage, volume)
                    root = device_rules.root_disk(expanded)
                    if root is not None and root[1].get("size"):
                        await set_root_quota(dst_pool, dst_storage, volume, root[1]["size"])
                    await hypervisor.create(effective,
                                            await dst_storage.mount_volume(dst_pool, volume))
                    copies = [replace(s, instance=name) for s in snapshots]
                    await self.store.write(lambda t: _create_snapshots(t, copies))
                except BaseException:
                    with shielded(f"Undoing the copy of {source} as {name}"):
                        await self.undo_create(rec, dst_pool, dst_storage, volume)
                    raise
                self.event("instance-created", rec, type=rec.type, copied_from=source)
                if start:
                    with shielded(f"Starting instance {name}", START_SECONDS):
                        await self.do_start(rec)
            finally:
                await self.release(rec)
                await self.release(src)

        what = f"Copying instance {source}" + (f"/{snapshot}" if snapshot else "") + \
            f" to {name}"
        try:
            return await self.start_op(rec, what, work, may_cancel=True)
        except BaseException:  # no operation: start_op released the copy's lock only
            await self.release(src)
            raise

    async def _shift_copy(self, src: InstanceRecord, snap: SnapshotRecord | None,
                          rec: InstanceRecord, pool: PoolRecord, storage: StorageDriver,
                          volume: Volume) -> None:
        """Shift the copy's files when its id map is not the source's (isolated maps)."""
        hypervisor = self.hypervisor(rec)
        config, _ = await self.profiles.expand(src)
        then = hypervisor.rootfs_idmap(replace(src, config={
            **config, **(snap.config if snap is not None else {})}))
        want = hypervisor.rootfs_idmap(rec)
        before = (then.uid_base, then.gid_base) if then is not None else (0, 0)
        after = (want.uid_base, want.gid_base) if want is not None else (0, 0)
        if before != after:
            mounted = await storage.mount_volume(pool, volume)
            await trio.to_thread.run_sync(shift_tree, mounted.path, after[0] - before[0],
                                          after[1] - before[1])

    # ------------------------------------------------------------------ rename, move
    async def move(self, project: str, name: str, *, new_name: str | None = None,
                   pool: str | None = None, instance_only: bool = False) -> Operation:
        """Rename a stopped instance (``new_name``), move it to another pool
        (``pool``: its root volume with its snapshots, unless ``instance_only``), or
        both."""
        rec = await self.get(project, name)
        if new_name is not None:
            check_instance_name(new_name)
        if new_name in (None, name) and pool is None:
            raise InvalidArgument("Give a new name or a storage pool to move the instance to",
                                  instance=name)
        src_pool, storage, volume = await self.root(rec)
        moved = rec
        if pool is not None:
            if pool == src_pool.name:
                raise InvalidArgument(f"Instance {name!r} is already on storage pool "
                                      f"{pool!r}", instance=name, pool=pool)
            await self.store.read(lambda t: t.pool_get(pool))
            _, expanded = await self.profiles.expand(rec)
            moved = replace(rec, devices=on_pool(rec.devices, expanded, pool))
            _, expanded = await self.profiles.expand(moved)
            device_rules.check(expanded)
            dst_pool, dst_storage, _ = await self.root(moved, expanded)
            self.pools.check_supports(dst_storage.info, volume)
        else:
            dst_pool, dst_storage = src_pool, storage
        final = new_name or name
        target = replace(volume, name=final)
        snapshots = await self.store.read(lambda t: t.snapshot_list(project, name))
        if snapshots and pool is not None and not instance_only:
            refuse_snapshots(dst_pool, dst_storage, "moved")
        action = "move" if pool is not None else "rename"

        async def work(rec: InstanceRecord, op: Operation) -> None:
            hypervisor = self.hypervisor(rec)
            if final != name:  # before anything moves (the records' rename checks again)
                await self._refuse_taken(rec, final)
            if pool is None:
                await storage.rename_volume(src_pool, volume, final)
            else:
                self.ops.progress(op, step="copying root volume")
                await transfer(src_pool, storage, volume, dst_pool, dst_storage, target,
                               snapshots=[] if instance_only else [s.name for s in snapshots],
                               native=self.pools.native_transfers)
            with shielded(f"Moving instance {name}", MOVE_SECONDS):
                try:
                    await self.store.write(lambda t: _moved(t, rec, moved, final, dst_pool,
                                                            instance_only))
                except BaseException:
                    await self._drop_target(rec, pool, dst_pool, dst_storage, target,
                                            src_pool, storage, volume)
                    raise
                await hypervisor.delete(rec)
                renamed = replace(moved, name=final)
                config, _ = await self.profiles.expand(renamed)
                await hypervisor.create(replace(renamed, config=config),
                                        await dst_storage.mount_volume(dst_pool, target))
                if pool is not None:
                    await self._drop_source(rec, src_pool, storage, volume)
            if final != name:
                self.event("instance-renamed", replace(rec, name=final), old_name=name)
            if pool is not None:
                self.event("instance-updated", replace(rec, name=final), pool=pool)

        what = f"{'Moving' if pool else 'Renaming'} instance {name}"
        return await self.locked_op(rec, action, what, work)

    async def _refuse_taken(self, rec: InstanceRecord, new_name: str) -> None:
        taken = await self.store.read(lambda t: {i.name for i in t.instance_list(rec.project)})
        if new_name in taken:
            raise AlreadyExists(f"Instance {new_name!r} already exists", instance=new_name)

    async def _drop_target(self, rec: InstanceRecord, pool: str | None, dst_pool: PoolRecord,
                           dst_storage: StorageDriver, target: Volume, src_pool: PoolRecord,
                           storage: StorageDriver, volume: Volume) -> None:
        """The records could not follow: undo the volume's move or rename."""
        try:
            if pool is not None:
                await dst_storage.delete_volume(dst_pool, target)
            else:
                await storage.rename_volume(src_pool, target, volume.name)
        except LxctlError as exc:
            log.warning("undoing a move failed", instance=rec.name, error=exc.message)

    async def _drop_source(self, rec: InstanceRecord, pool: PoolRecord,
                           storage: StorageDriver, volume: Volume) -> None:
        try:
            await storage.delete_volume(pool, volume)
        except LxctlError as exc:  # the instance moved all the same
            self.bus.log("warning", f"Instance {rec.name} moved, but its old root volume on "
                         f"pool {pool.name} could not be deleted: {exc.message}",
                         project=rec.project, entity_type="instance", entity_name=rec.name)


def _moved(t: Tables, rec: InstanceRecord, moved: InstanceRecord, name: str,
           pool: PoolRecord, instance_only: bool) -> None:
    """The records of a moved or renamed instance, in one transaction."""
    volumes = [v for v in t.volume_list(None, rec.project)
               if v.name == rec.name and v.type in ("container", "virtual-machine")]
    if name != rec.name:
        t.instance_rename(rec.project, rec.name, name)  # snapshots and volume record too
    if moved.devices != rec.devices:
        t.instance_update(replace(moved, name=name))
        for v in volumes:
            t.volume_move(replace(v, name=name), pool.name, name)
        if instance_only:
            for s in t.snapshot_list(rec.project, name):
                t.snapshot_delete(rec.project, name, s.name)



def _create_snapshots(t: Tables, snapshots: list[SnapshotRecord]) -> None:
    for snap in snapshots:
        t.snapshot_create(snap)
