"""Instances: create, start, stop, freeze, delete and exec, with locks and events.

Each action checks what it can synchronously (the name, the transition, the lock) so
that bad requests fail at once with a clear error and change nothing; the work then
runs as an operation holding the instance's lock. Drivers do the work; this module
orders it, records the result and publishes the lifecycle events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from lxctl.config import check_instance_config, is_true
from lxctl.drivers import Drivers, ExecOutput, ExecRequest, InstanceState, StreamInput
from lxctl.errors import AlreadyExists, InvalidArgument, InvalidState, LxctlError, NotFound
from lxctl.kernel.events import EventBus, lifecycle
from lxctl.kernel.lifecycle import Lifecycle, check_transition
from lxctl.kernel.operations import Operation, Operations
from lxctl.objects.images import ImageStore
from lxctl.objects.names import check_instance_name, random_instance_name
from lxctl.objects.pools import Pools
from lxctl.state.records import InstanceRecord, now
from lxctl.state.store import StateStore

log = structlog.get_logger("lxctl.objects.instances")

DEFAULT_STOP_TIMEOUT = 600.0  # Incus: a negative timeout means 600 s


def source(name: str) -> str:
    return f"/1.0/instances/{name}"


class Instances:
    def __init__(
        self, store: StateStore, drivers: Drivers, bus: EventBus, ops: Operations,
        images: ImageStore, pools: Pools,
    ) -> None:
        self.store = store
        self.drivers = drivers
        self.bus = bus
        self.ops = ops
        self.images = images
        self.pools = pools
        self.lifecycle = Lifecycle()

    # ------------------------------------------------------------------ queries
    async def expanded(self, rec: InstanceRecord) -> tuple[dict[str, str], dict[str, Any]]:
        config: dict[str, str] = {}
        devices: dict[str, Any] = {}
        for name in rec.profiles:
            try:
                profile = await self.store.profile_get(name)
            except NotFound:
                continue
            config.update(profile.config)
            devices.update(profile.devices)
        config.update(rec.config)
        devices.update(rec.devices)
        return config, devices

    async def states(self, recs: list[InstanceRecord], *, full: bool) -> dict[str, InstanceState]:
        by_type: dict[str, list[InstanceRecord]] = {}
        for rec in recs:
            by_type.setdefault(rec.type, []).append(rec)
        out: dict[str, InstanceState] = {}
        for itype, group in by_type.items():
            out.update(await self.drivers.hypervisor_for(itype).states(group, full=full))
        return out

    async def status(self, rec: InstanceRecord) -> str:
        state = (await self.states([rec], full=False))[rec.name]
        return self.lifecycle.shown_status(rec.name, state.status)

    async def describe(self, recs: list[InstanceRecord], *, full: bool) -> list[dict[str, Any]]:
        states = await self.states(recs, full=full)
        out = []
        for rec in recs:
            state = states[rec.name]
            status = self.lifecycle.shown_status(rec.name, state.status)
            config, devices = await self.expanded(rec)
            item = rec.to_api()
            item.update(status=status, status_code=STATUS_CODES.get(status, 112),
                        expanded_config=config, expanded_devices=devices)
            item["state"] = {
                "status": status, "status_code": STATUS_CODES.get(status, 112),
                "pid": state.pid, "processes": state.processes, "memory": state.memory,
                "cpu": state.cpu, "network": state.network,
            }
            item["snapshots"] = []
            out.append(item)
        return out

    # ------------------------------------------------------------------ helpers
    async def _locked_op(
        self, name: str, action: str, description: str,
        work: Callable[[InstanceRecord, Operation], Awaitable[None]],
        *, check: bool = True,
    ) -> Operation:
        """Take the lock, check the transition, then run ``work`` as an operation."""
        rec = await self.store.instance_get(check_instance_name(name))
        self.lifecycle.acquire(name, action)  # Busy at once if another action holds it
        try:
            if check:
                check_transition(action, name, await self.status(rec))
        except BaseException:
            self.lifecycle.release(name)
            raise

        async def run(op: Operation) -> None:
            try:
                await work(rec, op)
            finally:
                self.lifecycle.release(name)

        return await self._start_op(name, description, run)

    async def _start_op(
        self, name: str, description: str, work: Callable[[Operation], Awaitable[None]],
        *, may_cancel: bool = False,
    ) -> Operation:
        """Start an operation whose work releases ``name``'s lock (held by the caller)."""
        try:
            return await self.ops.start(description, work, may_cancel=may_cancel,
                                        resources={"instances": [source(name)]})
        except BaseException:
            self.lifecycle.release(name)
            raise

    def _event(self, action: str, name: str, **context: Any) -> None:
        self.bus.publish(lifecycle(action, source(name), **context))

    # ------------------------------------------------------------------ create
    async def create(
        self, *, name: str | None, image: str, config: dict[str, str],
        profiles: list[str] | None, pool: str | None, ephemeral: bool, start: bool,
        description: str = "",
    ) -> Operation:
        name = check_instance_name(name) if name is not None else await self._free_name()
        check_instance_config(config)
        img = await self.store.image_get(image)
        profiles = ["default"] if profiles is None else profiles
        for p in profiles:
            await self.store.profile_get(p)
        rec = InstanceRecord(
            name=name, type=img.type, architecture=img.architecture, description=description,
            config={**{f"image.{k}": v for k, v in img.properties.items()}, **config,
                    "volatile.base_image": img.fingerprint},
            profiles=profiles, ephemeral=ephemeral,
        )
        _, devices = await self.expanded(rec)
        root = devices.get("root")
        if pool is not None:
            await self.store.pool_get(pool)
            rec.devices["root"] = {"type": "disk", "path": "/", "pool": pool}
        elif not root or not root.get("pool"):
            raise InvalidArgument("No root disk device: the profiles give the instance no "
                                  "storage pool (use --storage POOL)", instance=name)
        hypervisor = self.drivers.hypervisor_for(rec.type)
        idmap = hypervisor.rootfs_idmap(rec)  # refuses before anything is written
        pool_rec, storage = await self.pools.get(pool or (root or {})["pool"])
        self.lifecycle.acquire(name, "create")
        try:
            await self.store.instance_create(rec)  # reserves the name, or AlreadyExists
        except BaseException:
            self.lifecycle.release(name)
            raise

        async def work(op: Operation) -> None:
            try:
                try:
                    image_rootfs = await self.pools.image_volume(
                        pool_rec, storage, img, self.images.path(img), idmap)
                    self.ops.progress(op, step="creating root volume")
                    root = await storage.create_instance_volume(pool_rec, name, image_rootfs)
                    await hypervisor.create(rec, root)
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await self._undo_create(rec)
                    raise
                self._event("instance-created", name, type=rec.type)
                if start:  # the same operation, still holding the lock, starts it;
                    with trio.CancelScope(shield=True):  # the instance exists: no undo now
                        await self._do_start(rec)
            finally:
                self.lifecycle.release(name)

        description = f"Creating instance {name}" + (" and starting it" if start else "")
        # cancelling undoes the creation (until the instance exists, then it is too late)
        return await self._start_op(name, description, work, may_cancel=True)

    async def _free_name(self) -> str:
        for _ in range(100):
            name = random_instance_name()
            try:
                await self.store.instance_get(name)
            except NotFound:
                return name
        raise AlreadyExists("Could not find a free random instance name")

    async def _undo_create(self, rec: InstanceRecord) -> None:
        try:
            await self.drivers.hypervisor_for(rec.type).delete(rec)
            _, devices = await self.expanded(rec)
            pool_rec, storage = await self.pools.get(devices["root"]["pool"])
            await storage.delete_instance_volume(pool_rec, rec.name)
        except LxctlError as exc:
            log.warning("clean-up after failed create", instance=rec.name, error=exc.message)
        await self.store.instance_delete(rec.name)

    # ------------------------------------------------------------------ power
    async def _do_start(self, rec: InstanceRecord) -> None:
        config, _ = await self.expanded(rec)
        if is_true(config.get("security.protection.start")):
            raise InvalidState("The instance is protected from being started "
                               "(security.protection.start)", instance=rec.name)
        self.lifecycle.set_transient(rec.name, "Starting")
        await self.drivers.hypervisor_for(rec.type).start(rec)
        rec.power_state, rec.last_used_at = "Running", now()
        await self.store.instance_update(rec)
        self._event("instance-started", rec.name)

    async def _do_stop(self, rec: InstanceRecord, timeout: float, force: bool) -> None:
        self.lifecycle.set_transient(rec.name, "Stopping")
        # not shielded: a daemon shutting down must not wait out a 600 s clean stop
        await self.drivers.hypervisor_for(rec.type).stop(rec, timeout=timeout, force=force)
        rec.power_state = "Stopped"
        with trio.CancelScope(shield=True):
            await self.store.instance_update(rec)
        self._event("instance-stopped", rec.name)

    async def start(self, name: str) -> Operation:
        return await self._locked_op(name, "start", f"Starting instance {name}",
                                     lambda rec, op: self._do_start(rec))

    async def stop(self, name: str, *, timeout: float, force: bool) -> Operation:
        timeout = DEFAULT_STOP_TIMEOUT if timeout < 0 else timeout

        async def work(rec: InstanceRecord, op: Operation) -> None:
            await self._do_stop(rec, timeout, force)
            if rec.ephemeral:
                await self._do_delete(rec)

        return await self._locked_op(name, "stop", f"Stopping instance {name}", work)

    async def restart(self, name: str, *, timeout: float, force: bool) -> Operation:
        timeout = DEFAULT_STOP_TIMEOUT if timeout < 0 else timeout

        async def work(rec: InstanceRecord, op: Operation) -> None:
            await self._do_stop(rec, timeout, force)
            await self._do_start(rec)
            self._event("instance-restarted", rec.name)

        return await self._locked_op(name, "restart", f"Restarting instance {name}", work)

    async def freeze(self, name: str) -> Operation:
        return await self._set_frozen(name, True)

    async def unfreeze(self, name: str) -> Operation:
        return await self._set_frozen(name, False)

    async def _set_frozen(self, name: str, frozen: bool) -> Operation:
        action = "freeze" if frozen else "unfreeze"

        async def work(rec: InstanceRecord, op: Operation) -> None:
            hypervisor = self.drivers.hypervisor_for(rec.type)
            await (hypervisor.freeze(rec) if frozen else hypervisor.unfreeze(rec))
            rec.power_state = "Frozen" if frozen else "Running"
            await self.store.instance_update(rec)
            self._event("instance-paused" if frozen else "instance-resumed", rec.name)

        description = f"{'Freezing' if frozen else 'Unfreezing'} instance {name}"
        return await self._locked_op(name, action, description, work)

    # ------------------------------------------------------------------ delete
    async def _do_delete(self, rec: InstanceRecord) -> None:
        with trio.CancelScope(shield=True):
            _, devices = await self.expanded(rec)
            await self.drivers.hypervisor_for(rec.type).delete(rec)
            pool_rec, storage = await self.pools.get(devices["root"]["pool"])
            await storage.delete_instance_volume(pool_rec, rec.name)
            await self.store.instance_delete(rec.name)
        self._event("instance-deleted", rec.name)

    async def delete(self, name: str, *, force: bool) -> Operation:
        rec = await self.store.instance_get(check_instance_name(name))
        config, _ = await self.expanded(rec)
        if is_true(config.get("security.protection.delete")):
            raise InvalidState("The instance is protected from being deleted "
                               "(security.protection.delete)", instance=name)
        status = await self.status(rec)
        if not force:
            check_transition("delete", name, status)

        async def work(rec: InstanceRecord, op: Operation) -> None:
            current = (await self.states([rec], full=False))[rec.name].status
            if current != "Stopped":
                await self._do_stop(rec, 0, True)
            await self._do_delete(rec)

        return await self._locked_op(name, "delete", f"Deleting instance {name}", work,
                                     check=False)

    # ------------------------------------------------------------------ exec
    async def exec(
        self, name: str, request: ExecRequest, stdin: trio.MemoryReceiveChannel[StreamInput],
        output: ExecOutput,
    ) -> int:
        rec = await self.store.instance_get(check_instance_name(name))
        status = await self.status(rec)
        if status != "Running":
            raise InvalidState(f"Instance is not running ({status})", instance=name,
                               status=status)
        self._event("instance-exec", name, command=request.command)
        return await self.drivers.hypervisor_for(rec.type).exec(rec, request, stdin, output)

    # ------------------------------------------------------------------ daemon start
    async def adopt(self) -> None:
        """After a (re)start: keep running instances, start those that should run."""
        recs = await self.store.instance_list()
        if not recs:
            return
        states = await self.states(recs, full=False)
        for rec in recs:
            real = states[rec.name].status
            if real in ("Running", "Frozen"):
                log.info("re-adopted running instance", instance=rec.name, status=real)
                if rec.power_state != real:
                    rec.power_state = real
                    await self.store.instance_update(rec)
            elif rec.power_state in ("Running", "Frozen") or is_true(
                    rec.config.get("boot.autostart")):
                try:
                    async with self.lifecycle.locked(rec.name, "start"):
                        await self._do_start(rec)
                    log.info("autostarted instance", instance=rec.name)
                except LxctlError as exc:
                    log.warning("autostart failed", instance=rec.name, error=exc.message)

    async def stop_all(self, timeout: float, force: bool) -> None:
        recs = await self.store.instance_list()
        states = await self.states(recs, full=False)
        async with trio.open_nursery() as nursery:
            for rec in recs:
                if states[rec.name].status in ("Running", "Frozen"):
                    nursery.start_soon(self._stop_for_shutdown, rec, timeout, force)

    async def _stop_for_shutdown(self, rec: InstanceRecord, timeout: float, force: bool) -> None:
        try:
            async with self.lifecycle.locked(rec.name, "stop"):
                await self.drivers.hypervisor_for(rec.type).stop(rec, timeout=timeout,
                                                                  force=force)
            self._event("instance-stopped", rec.name)
        except LxctlError as exc:
            log.warning("stop at shutdown failed", instance=rec.name, error=exc.message)


STATUS_CODES = {"Running": 103, "Stopped": 102, "Starting": 106, "Stopping": 107,
                "Frozen": 110, "Error": 112}
