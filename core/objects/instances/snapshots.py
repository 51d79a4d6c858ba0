"""Instance snapshots: the root volume's snapshot (through the pool's driver) plus a
record of what the instance was then (its own config, devices, profiles).

As in Incus: a snapshot of a running instance is taken live (stateless; stateful
snapshots need a hypervisor that can checkpoint, which none declares yet); its name
defaults to ``snapshots.pattern`` (``snap%d``, the lowest free number) and it expires
after ``snapshots.expiry`` if set. A restore puts the volume, config, devices and
profiles back; a running instance is stopped for it and started again after.
"""

from __future__ import annotations

import builtins
from dataclasses import replace
from typing import Any

import trio

from lxctl.config.instance import expiry_seconds
from lxctl.errors import AlreadyExists, InvalidArgument, InvalidState, LxctlError, NotFound
from lxctl.kernel.events import lifecycle, source_path
from lxctl.kernel.operations import Operation
from lxctl.kernel.shield import shielded
from lxctl.objects import devices as device_rules
from lxctl.objects.idmap import shift_tree
from lxctl.objects.instances.base import InstanceBase, InstanceRecord, log
from lxctl.objects.names import check_object_name
from lxctl.objects.pools import snapshots_of
from lxctl.state.records import SnapshotRecord, now

RESTORE_SECONDS = 600.0  # a restore's irreversible part runs shielded, up to this long
IDMAP_BASE = "volatile.idmap.base"


def snapshot_source(rec: InstanceRecord | SnapshotRecord, name: str | None = None) -> str:
    instance = rec.instance if isinstance(rec, SnapshotRecord) else rec.name
    snap = rec.name if isinstance(rec, SnapshotRecord) else name
    return source_path("instances", instance, "snapshots", snap or "", project=rec.project)


def free_name(pattern: str, taken: set[str]) -> str:
    """The first name ``pattern`` gives (``%d`` from 0 up) that is not taken."""
    if "%d" not in pattern:
        if pattern in taken:
            raise AlreadyExists(f"Snapshot {pattern!r} already exists (snapshots.pattern has "
                                "no %d)", snapshot=pattern)
        return pattern
    i = 0
    while pattern.replace("%d", str(i)) in taken:
        i += 1
    return pattern.replace("%d", str(i))


def restored(rec: InstanceRecord, snap: SnapshotRecord) -> InstanceRecord:
    """The instance as the snapshot recorded it: its config (the current ``volatile.*``
    keys kept, so identity, MACs and id maps stay), devices (the current root disk
    kept: the volume stays where it is) and profiles."""
    config = {k: v for k, v in snap.config.items() if not k.startswith("volatile.")}
    config.update({k: v for k, v in rec.config.items() if k.startswith("volatile.")})
    root = device_rules.root_disk(rec.devices)
    devices = {n: dict(c) for n, c in snap.devices.items()
               if not (c.get("type") == "disk" and c.get("path") == "/")}
    if root is not None:
        devices[root[0]] = dict(root[1])
    return replace(rec, config=config, devices=devices, profiles=list(snap.profiles))


class Snapshots(InstanceBase):
    # ------------------------------------------------------------------ queries
    async def snapshot_list(self, project: str, name: str) -> builtins.list[SnapshotRecord]:
        rec = await self.get(project, name)
        return await self.store.read(lambda t: t.snapshot_list(project, rec.name))

    async def snapshot_get(self, project: str, name: str, snapshot: str) -> SnapshotRecord:
        await self.get(project, name)
        return await self.store.read(lambda t: t.snapshot_get(project, name, snapshot))

    # ------------------------------------------------------------------ create
    async def snapshot_create(self, project: str, name: str, snapshot: str | None = None, *,
                              stateful: bool = False, expires_at: float | None = None,
                              description: str = "", reuse: bool = False) -> Operation:
        """Snapshot the instance (running or not). ``expires_at``: a Unix time, 0 for
        never, None for ``snapshots.expiry``; ``reuse``: replace a snapshot of that
        name."""
        rec = await self.get(project, name)
        if stateful:
            raise InvalidArgument(
                f"Stateful snapshots are not supported by the {self.hypervisor(rec).info.name}"
                " driver (it cannot checkpoint a running instance)", instance=name)
        config, devices = await self.profiles.expand(rec)
        pool, storage, volume = await self.root(rec, devices)
        snaps = snapshots_of(storage)  # refused where the driver has none
        existing = {s.name for s in await self.store.read(
            lambda t: t.snapshot_list(project, name))}
        if snapshot is None:
            snapshot = free_name(config.get("snapshots.pattern") or "snap%d", existing)
        check_object_name("snapshot", snapshot)
        if snapshot in existing and not reuse:
            raise AlreadyExists(f"Snapshot {snapshot!r} of instance {name!r} already exists",
                                instance=name, snapshot=snapshot)
        if expires_at is None:
            expiry = config.get("snapshots.expiry", "")
            expires_at = now() + expiry_seconds(expiry) if expiry else 0.0
        record = SnapshotRecord(name, snapshot, dict(rec.config),
                                {n: dict(c) for n, c in rec.devices.items()},
                                list(rec.profiles), description, now(), expires_at,
                                project=project)

        async def work(rec: InstanceRecord, op: Operation) -> None:
            if snapshot in existing:  # reuse: the old one goes first
                await self._drop_snapshot(rec, snapshot)
            await snaps.create_snapshot(pool, volume, snapshot)
            try:
                await self.store.write(lambda t: t.snapshot_create(record))
            except BaseException:
                with shielded(f"Removing snapshot {snapshot} of {name}"):
                    await snaps.delete_snapshot(pool, volume, snapshot)
                raise
            self._snapshot_event("instance-snapshot-created", record)

        return await self.locked_op(rec, "snapshot",
                                    f"Snapshotting instance {name} as {snapshot}", work)

    def _snapshot_event(self, action: str, snap: SnapshotRecord, **context: Any) -> None:
        self.bus.publish(lifecycle(action, snapshot_source(snap), project=snap.project,
                                   **context))

    async def _drop_snapshot(self, rec: InstanceRecord, snapshot: str) -> None:
        pool, storage, volume = await self.root(rec)
        snaps = snapshots_of(storage)
        if snapshot in await snaps.list_snapshots(pool, volume):
            await snaps.delete_snapshot(pool, volume, snapshot)
        await self.store.write(lambda t: t.snapshot_delete(rec.project, rec.name, snapshot))

    # ------------------------------------------------------------------ delete, rename
    async def snapshot_delete(self, project: str, name: str, snapshot: str) -> Operation:
        snap = await self.snapshot_get(project, name, snapshot)
        rec = await self.get(project, name)
        await self.root(rec)  # Unavailable now if its pool is down

        async def work(rec: InstanceRecord, op: Operation) -> None:
            with shielded(f"Deleting snapshot {snapshot} of {name}"):
                await self._drop_snapshot(rec, snapshot)
            self._snapshot_event("instance-snapshot-deleted", snap)

        return await self.locked_op(rec, "snapshot",
                                    f"Deleting snapshot {snapshot} of instance {name}", work)

    async def snapshot_rename(self, project: str, name: str, snapshot: str,
                              new_name: str) -> Operation:
        snap = await self.snapshot_get(project, name, snapshot)
        check_object_name("snapshot", new_name)
        rec = await self.get(project, name)
        pool, storage, volume = await self.root(rec)
        snaps = snapshots_of(storage)
        if any(s.name == new_name for s in await self.snapshot_list(project, name)):
            raise AlreadyExists(f"Snapshot {new_name!r} of instance {name!r} already exists",
                                instance=name, snapshot=new_name)

        async def work(rec: InstanceRecord, op: Operation) -> None:
            await snaps.rename_snapshot(pool, volume, snapshot, new_name)
            try:
                await self.store.write(
                    lambda t: t.snapshot_rename(project, name, snapshot, new_name))
            except BaseException:
                with shielded(f"Renaming snapshot {new_name} of {name} back"):
                    await snaps.rename_snapshot(pool, volume, new_name, snapshot)
                raise
            self._snapshot_event("instance-snapshot-renamed", replace(snap, name=new_name),
                                 old_name=snapshot)

        return await self.locked_op(rec, "snapshot",
                                    f"Renaming snapshot {snapshot} of instance {name}", work)

    async def snapshot_update(self, project: str, name: str, snapshot: str, *,
                              description: str | None = None,
                              expires_at: float | None = None) -> SnapshotRecord:
        snap = await self.snapshot_get(project, name, snapshot)
        snap = replace(snap, description=snap.description if description is None
                       else description,
                       expires_at=snap.expires_at if expires_at is None else expires_at)
        await self.store.write(lambda t: t.snapshot_update(snap))
        self._snapshot_event("instance-snapshot-updated", snap)
        return snap

    # ------------------------------------------------------------------ expiry
    async def prune_expired(self) -> int:
        """Delete the snapshots whose ``expires_at`` has passed; return how many. One
        whose instance is busy or whose pool is down waits for the next round."""
        due = [s for s in await self.store.read(lambda t: t.snapshot_list(None))
               if 0 < s.expires_at <= now()]
        deleted = 0
        for snap in due:
            try:
                op = await self.snapshot_delete(snap.project, snap.instance, snap.name)
                await op.done.wait()
            except LxctlError as exc:
                log.info("expired snapshot kept for now", instance=snap.instance,
                         snapshot=snap.name, error=exc.message)
                continue
            if op.status == "Success":
                deleted += 1
        return deleted

    async def prune_expired_forever(self, interval: float) -> None:
        """Every ``interval`` seconds, as Incus's snapshot expiry task does each minute."""
        while not self.ops.closing:
            await trio.sleep(interval)
            await self.prune_expired()

    # ------------------------------------------------------------------ restore
    async def snapshot_restore(self, project: str, name: str, snapshot: str, *,
                               stateful: bool = False) -> Operation:
        """Put the instance back as the snapshot has it; a running one is stopped for
        it and started again after (as Incus does)."""
        if stateful:
            raise InvalidArgument("Stateful restores are not supported: no snapshot is "
                                  "stateful", instance=name)
        snap = await self.snapshot_get(project, name, snapshot)
        rec = await self.get(project, name)
        pool, storage, volume = await self.root(rec)
        snaps = snapshots_of(storage)
        if snapshot not in await snaps.list_snapshots(pool, volume):
            raise NotFound(f"Snapshot {snapshot!r} of instance {name!r} has no volume "
                           f"snapshot on pool {pool.name!r}", instance=name, snapshot=snapshot)
        new = restored(rec, snap)
        missing = [p for p in new.profiles if p not in
                   {r.name for r in await self.store.read(lambda t: t.profile_list(project))}]
        if missing:
            raise InvalidState(f"Snapshot {snapshot!r} uses profiles that no longer exist: "
                               f"{', '.join(missing)}", instance=name, snapshot=snapshot)
        _, devices = await self.profiles.expand(new)
        device_rules.check(devices)
        delta = self._idmap_delta(rec, snap)

        async def work(rec: InstanceRecord, op: Operation) -> None:
            was = (await self.states([rec], full=False))[rec.key].status
            if was not in ("Stopped", "Error"):
                self.ops.progress(op, step="stopping")
                await self.do_stop(rec, 0, True)
            with shielded(f"Restoring instance {name} from {snapshot}", RESTORE_SECONDS):
                self.ops.progress(op, step="restoring root volume")
                try:
                    await snaps.restore_snapshot(pool, volume, snapshot)
                except LxctlError:  # nothing restored: it runs again as it was
                    if was in ("Running", "Frozen"):
                        await self._start_quietly(rec)
                    raise
                if delta != (0, 0):  # the snapshot's files are in another id map
                    mounted = await storage.mount_volume(pool, volume)
                    await trio.to_thread.run_sync(shift_tree, mounted.path, *delta)
                rec.config, rec.devices, rec.profiles = new.config, new.devices, new.profiles
                await self.store.write(lambda t: t.instance_update(rec))
            self.event("instance-restored", rec, snapshot=snapshot)
            if was in ("Running", "Frozen"):
                self.ops.progress(op, step="starting")
                await self.do_start(rec)

        return await self.locked_op(rec, "restore",
                                    f"Restoring instance {name} from snapshot {snapshot}", work)

    async def _start_quietly(self, rec: InstanceRecord) -> None:
        try:
            await self.do_start(rec)
        except LxctlError as exc:
            log.warning("restarting after a failed restore failed", instance=rec.name,
                        error=exc.message)

    def _idmap_delta(self, rec: InstanceRecord, snap: SnapshotRecord) -> tuple[int, int]:
        """How far the snapshot's files are from the instance's id map (a copy of an
        isolated instance got a map of its own; its snapshots kept the source's)."""
        if rec.config.get(IDMAP_BASE) == snap.config.get(IDMAP_BASE):
            return (0, 0)
        hypervisor = self.hypervisor(rec)
        now_map = hypervisor.rootfs_idmap(rec)
        then_map = hypervisor.rootfs_idmap(replace(rec, config=snap.config))
        if now_map is None or then_map is None:
            return (0, 0)
        return (now_map.uid_base - then_map.uid_base, now_map.gid_base - then_map.gid_base)
