"""What every instance action shares: its collaborators, the lock, operations, events.

Each action checks what it can at once (the name, the transition, the lock) so that a
bad request fails with a clear error and changes nothing; the work then runs as an
operation holding the instance's lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from lxctl.config.schema import ConfigSchema
from lxctl.config.units import parse_size
from lxctl.drivers.devices import Device, MountedVolume, NicDevice
from lxctl.drivers.hypervisor import HypervisorDriver, InstanceState
from lxctl.drivers.registry import Drivers
from lxctl.drivers.storage import StorageDriver, Volume
from lxctl.errors import InvalidArgument, LxctlError
from lxctl.kernel.availability import Availability
from lxctl.kernel.events import EventBus, lifecycle
from lxctl.kernel.lifecycle import TransientStates, check_transition
from lxctl.kernel.locks import LocalLocks, Locks
from lxctl.kernel.operations import Operation, Operations
from lxctl.kernel.shield import shielded
from lxctl.objects import devices as device_rules
from lxctl.objects.images import ImageStore
from lxctl.objects.names import check_instance_name
from lxctl.objects.networks import Networks
from lxctl.objects.pools import Pools, quotas_of, root_volume
from lxctl.objects.profiles import Profiles
from lxctl.objects.volumes import mount_attached
from lxctl.state.records import InstanceRecord as InstanceRecord
from lxctl.state.records import PoolRecord
from lxctl.state.store import StateStore, Tables

log = structlog.get_logger("lxctl.instances")

DEFAULT_STOP_TIMEOUT = 600.0  # Incus: a negative timeout means 600 s
STATUS_CODES = {"Running": 103, "Stopped": 102, "Starting": 106, "Stopping": 107,
                "Frozen": 110, "Error": 112}


def source(rec: InstanceRecord) -> str:
    path = f"/1.0/instances/{rec.name}"
    return path if rec.project == "default" else f"{path}?project={rec.project}"


@dataclass
class InstanceBase:
    store: StateStore
    drivers: Drivers
    bus: EventBus
    ops: Operations
    images: ImageStore
    pools: Pools
    profiles: Profiles
    networks: Networks
    availability: Availability
    schema: ConfigSchema
    locks: Locks = field(default_factory=LocalLocks)
    transient: TransientStates = field(default_factory=TransientStates)
    seeds: Path | None = None  # where cloud-init seeds are written (None: nowhere)

    # ------------------------------------------------------------------ queries
    async def get(self, project: str, name: str) -> InstanceRecord:
        check_instance_name(name)
        return await self.store.read(lambda t: t.instance_get(project, name))

    def hypervisor(self, rec: InstanceRecord) -> HypervisorDriver:
        return self.drivers.hypervisor_for(rec.type)

    async def states(self, recs: list[InstanceRecord], *, full: bool
                     ) -> dict[tuple[str, str], InstanceState]:
        by_type: dict[str, list[InstanceRecord]] = {}
        for rec in recs:
            by_type.setdefault(rec.type, []).append(rec)
        out: dict[tuple[str, str], InstanceState] = {}
        for itype, group in by_type.items():
            states = await self.drivers.hypervisor_for(itype).states(group, full=full)
            out.update({rec.key: states[rec.qualified_name] for rec in group})
        return out

    async def status(self, rec: InstanceRecord) -> str:
        state = (await self.states([rec], full=False))[rec.key]
        return self.transient.shown(rec.key, state.status)

    async def root(self, rec: InstanceRecord, devices: Mapping[str, Any] | None = None
                   ) -> tuple[PoolRecord, StorageDriver, Volume]:
        """The instance's root volume, its pool and driver (Unavailable if the pool is);
        ``devices``: its expanded devices, when the caller has them already."""
        if devices is None:
            _, devices = await self.profiles.expand(rec)
        root = device_rules.root_disk(devices)
        if root is None:
            raise InvalidArgument(f"Instance {rec.name!r} has no root disk device",
                                  instance=rec.name)
        pool, driver = await self.pools.get(root[1]["pool"])
        return pool, driver, root_volume(rec.name, rec.project, rec.type)

    async def check_available(self, rec: InstanceRecord) -> None:
        """Refuse at once (Unavailable, naming it) when a pool or network it needs is
        down, rather than in the middle of the operation."""
        _, devices = await self.profiles.expand(rec)
        await self.root(rec, devices)
        for kind, name in self.networks.needs(rec, devices):
            self.availability.require(kind, name, f"Network {name.split('/', 1)[1]!r}")

    # ------------------------------------------------------------------ devices
    async def resize_root(self, rec: InstanceRecord, old: Mapping[str, dict[str, str]],
                          new: Mapping[str, dict[str, str]]) -> bool:
        """Set the root volume's quota when the root disk's ``size`` is what changes
        (running or not, as Incus does for containers); True if it did."""
        size = device_rules.root_size_change(old, new)
        if size is None:
            return False
        pool, driver, volume = await self.root(rec, new)
        await set_root_quota(pool, driver, volume, size)
        return True

    def custom_volumes(self, rec: InstanceRecord, config: Mapping[str, str]
                       ) -> device_rules.MountCustom:
        """Mounts the custom volumes the instance's disks attach, shifted to the id map
        of the instance with its expanded ``config``."""
        effective = replace(rec, config=dict(config))

        async def mount(conf: Mapping[str, str]) -> MountedVolume:
            return await mount_attached(self.pools, self.store, rec.project, conf,
                                        self.hypervisor(rec).rootfs_idmap(effective))

        return mount

    async def hotplug_changes(self, rec: InstanceRecord, old: Mapping[str, dict[str, str]],
                              new: Mapping[str, dict[str, str]]) -> None:
        """Take the removed and changed devices out of the running instance, then put
        the added and changed ones in; if one fails, undo what was done and raise."""
        hypervisor = self.hypervisor(rec)
        roots = {root[0] for root in (device_rules.root_disk(old), device_rules.root_disk(new))
                 if root is not None}  # never hot-plugged: its size is a quota
        names = sorted(n for n in old.keys() | new.keys()
                       if old.get(n) != new.get(n) and n not in roots)
        outgoing = {n: old[n] for n in names if n in old}
        incoming = {n: new[n] for n in names if n in new}
        unused_root = MountedVolume(Path("/"))
        plugged: list[NicDevice] = []  # NICs plugged for this change (network side)

        async def current(inst: InstanceRecord, name: str, conf: Mapping[str, str]
                          ) -> NicDevice:
            return self.networks.plugged(inst, name) or await plug(inst, name, conf)

        async def plug(inst: InstanceRecord, name: str, conf: Mapping[str, str]
                       ) -> NicDevice:
            nic = await self.networks.plug(inst, name, conf)
            plugged.append(nic)
            return nic

        config, _ = await self.profiles.expand(rec)
        volumes = self.custom_volumes(rec, config)
        gone = await device_rules.resolve(rec, outgoing, unused_root, current, volumes)
        done_out: list[Device] = []
        done_in: list[Device] = []
        try:
            for device in reversed(gone):  # children before their parents
                await hypervisor.hot_unplug(rec, device)
                done_out.append(device)
            for device in gone:  # the NICs' host side goes before a changed one returns
                if isinstance(device, NicDevice):
                    await self.networks.unplug(rec, device)
            del plugged[:]
            coming = await device_rules.resolve(rec, incoming, unused_root, plug, volumes)
            for device in coming:
                await hypervisor.hotplug(rec, device)
                done_in.append(device)
        except BaseException:
            with shielded(f"Restoring the devices of {rec.name}"):
                for device in reversed(done_in):
                    await _quietly(hypervisor.hot_unplug(rec, device))
                for nic in reversed(plugged):
                    await _quietly(self.networks.unplug(rec, nic))
                await _quietly(self._restore(rec, hypervisor, done_out, outgoing))
            raise

    async def _restore(self, rec: InstanceRecord, hypervisor: HypervisorDriver,
                       devices: list[Device],
                       configs: Mapping[str, dict[str, str]]) -> None:
        """Put hot-unplugged devices back (their NICs plugged again where released)."""
        names = {d.name for d in devices}
        for device in await device_rules.resolve(
                rec, {n: c for n, c in configs.items() if n in names},
                MountedVolume(Path("/")), self._replug):
            await _quietly(hypervisor.hotplug(rec, device))

    async def _replug(self, inst: InstanceRecord, name: str, conf: Mapping[str, str]
                      ) -> NicDevice:
        return self.networks.plugged(inst, name) or await self.networks.plug(
            inst, name, conf)


    async def undo_create(self, rec: InstanceRecord, pool: PoolRecord,
                          storage: StorageDriver, volume: Volume) -> None:
        """Remove an instance whose creation (or copy) failed half-way: the hypervisor's
        part, its root volume, its records (its snapshots' with them)."""
        try:
            await self.hypervisor(rec).delete(rec)
            await storage.delete_volume(pool, volume)
        except LxctlError as exc:
            log.warning("clean-up after a failed create", instance=rec.name,
                        error=exc.message)

        def forget(t: Tables) -> None:
            t.instance_delete(rec.project, rec.name)
            t.volume_delete(rec.project, pool.name, str(volume.type), volume.name)

        await self.store.write(forget)

    # ------------------------------------------------------------------ operations
    async def locked_op(
        self, rec: InstanceRecord, action: str, description: str,
        work: Callable[[InstanceRecord, Operation], Awaitable[None]], *, check: bool = True,
    ) -> Operation:
        """Take the lock, check the transition, then run ``work`` as an operation."""
        await self.locks.acquire(rec.key, action)  # Busy at once if another action holds it
        try:
            if check:
                check_transition(action, rec.name, await self.status(rec))
        except BaseException:
            await self.release(rec)
            raise

        async def run(op: Operation) -> None:
            try:
                await work(rec, op)
            finally:
                await self.release(rec)

        return await self.start_op(rec, description, run)

    @asynccontextmanager
    async def holding(self, rec: InstanceRecord, action: str) -> AsyncIterator[None]:
        """Hold the instance's lock (Busy at once if taken) for work run inline."""
        await self.locks.acquire(rec.key, action)
        try:
            yield
        finally:
            await self.release(rec)

    async def release(self, rec: InstanceRecord) -> None:
        self.transient.set(rec.key, None)
        await self.locks.release(rec.key)

    async def start_op(self, rec: InstanceRecord, description: str,
                       work: Callable[[Operation], Awaitable[None]], *,
                       may_cancel: bool = False) -> Operation:
        """Start an operation whose work releases the lock (held by the caller)."""
        try:
            return await self.ops.start(description, work, may_cancel=may_cancel,
                                        resources={"instances": [source(rec)]},
                                        project=rec.project)
        except BaseException:
            await self.release(rec)
            raise

    # the steps each action module provides, for the others to call
    async def do_start(self, rec: InstanceRecord) -> None:
        raise NotImplementedError

    async def do_stop(self, rec: InstanceRecord, timeout: float, force: bool) -> None:
        raise NotImplementedError

    async def do_delete(self, rec: InstanceRecord) -> None:
        raise NotImplementedError

    def event(self, action: str, rec: InstanceRecord, **context: Any) -> None:
        self.bus.publish(lifecycle(action, source(rec), project=rec.project, **context))


async def _quietly(step: Awaitable[None]) -> None:
    try:
        await step
    except LxctlError as exc:
        log.warning("restoring a device failed", error=exc.message)


async def set_root_quota(pool: PoolRecord, driver: StorageDriver, volume: Volume,
                         size: str | None) -> None:
    """The root disk's ``size`` as the volume's quota ("" or None: no limit); a driver
    without quotas refuses it."""
    await quotas_of(driver).set_quota(pool, volume, parse_size(size) if size else 0)
