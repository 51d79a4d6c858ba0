"""Power: start, stop, restart, freeze and unfreeze; and what the daemon does with
instances when it starts (re-adopt, autostart, wait for what is unavailable) and when
``admin shutdown`` stops them all."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import trio

from lxctl.config.units import is_true
from lxctl.errors import InvalidState, LxctlError
from lxctl.kernel.operations import Operation
from lxctl.kernel.shield import shielded
from lxctl.objects import cloudinit
from lxctl.objects import devices as device_rules
from lxctl.objects.hooks import run_instance_hook
from lxctl.objects.instances.base import DEFAULT_STOP_TIMEOUT, InstanceBase, InstanceRecord, log
from lxctl.objects.instances.create import check_device_support
from lxctl.objects.pools import KIND as POOL
from lxctl.state.records import now
from lxctl.state.store import Tables


def _update(rec: InstanceRecord, t: Tables) -> None:
    t.instance_update(rec)


def _int(config: dict[str, str], key: str) -> int:
    value = config.get(key, "")
    return int(value) if value.isdigit() else 0


class Power(InstanceBase):
    async def do_start(self, rec: InstanceRecord) -> None:
        config, devices = await self.profiles.expand(rec)
        if is_true(config.get("security.protection.start")):
            raise InvalidState("The instance is protected from being started "
                               "(security.protection.start)", instance=rec.name)
        await run_instance_hook("pre-start", rec, config, self.bus)  # may veto the start
        hypervisor = self.hypervisor(rec)
        check_device_support(hypervisor, devices)
        pool, storage, volume = await self.root(rec, devices)  # Unavailable if it is down
        self.transient.set(rec.key, "Starting")
        mounted = await storage.mount_volume(pool, volume)
        try:
            effective = replace(rec, config=config)
            typed = await device_rules.resolve(rec, devices, mounted, self.networks.plug,
                                               self.custom_volumes(rec, config))
            if self.seeds is not None and cloudinit.wanted(config):
                typed.append(await trio.to_thread.run_sync(
                    cloudinit.write_seed, self.seeds / rec.qualified_name, rec.name, config,
                    hypervisor.rootfs_idmap(effective)))
            await hypervisor.start(effective, typed)
        except BaseException:
            with shielded(f"Cleaning up the failed start of {rec.name}"):
                await self.networks.unplug_all(rec)
            raise
        rec.power_state, rec.last_used_at = "Running", now()
        rec.config["volatile.last_state.power"] = "RUNNING"
        await self.store.write(lambda t: t.instance_update(rec))
        self.event("instance-started", rec)

    async def do_stop(self, rec: InstanceRecord, timeout: float, force: bool) -> None:
        self.transient.set(rec.key, "Stopping")
        # not shielded: a daemon shutting down must not wait out a 600 s clean stop
        await self.hypervisor(rec).stop(rec, timeout=timeout, force=force)
        rec.power_state = "Stopped"
        rec.config["volatile.last_state.power"] = "STOPPED"
        with shielded(f"Recording the stop of {rec.name}"):
            await self.networks.unplug_all(rec)
            await self._unmount_root(rec)
            self._remove_seed(rec)
            await self.store.write(lambda t: t.instance_update(rec))
        self.event("instance-stopped", rec)
        await run_instance_hook("post-stop", rec, (await self.profiles.expand(rec))[0], self.bus)

    def _remove_seed(self, rec: InstanceRecord) -> None:
        if self.seeds is not None:
            cloudinit.remove_seed(self.seeds / rec.qualified_name)

    async def _unmount_root(self, rec: InstanceRecord) -> None:
        try:
            pool, storage, volume = await self.root(rec)
            await storage.unmount_volume(pool, volume)
        except LxctlError as exc:  # the instance is stopped all the same
            log.warning("unmounting the root volume failed", instance=rec.name,
                        error=exc.message)

    async def start(self, project: str, name: str) -> Operation:
        rec = await self.get(project, name)
        await self.check_available(rec)
        return await self.locked_op(rec, "start",
                                    f"Starting instance {name}",
                                    lambda rec, op: self.do_start(rec))

    async def stop(self, project: str, name: str, *, timeout: float,
                   force: bool) -> Operation:
        timeout = DEFAULT_STOP_TIMEOUT if timeout < 0 else timeout

        async def work(rec: InstanceRecord, op: Operation) -> None:
            await self.do_stop(rec, timeout, force)
            if rec.ephemeral:
                await self.do_delete(rec)

        return await self.locked_op(await self.get(project, name), "stop",
                                    f"Stopping instance {name}", work)

    async def restart(self, project: str, name: str, *, timeout: float,
                      force: bool) -> Operation:
        timeout = DEFAULT_STOP_TIMEOUT if timeout < 0 else timeout

        async def work(rec: InstanceRecord, op: Operation) -> None:
            await self.do_stop(rec, timeout, force)
            await self.do_start(rec)
            self.event("instance-restarted", rec)

        return await self.locked_op(await self.get(project, name), "restart",
                                    f"Restarting instance {name}", work)

    async def set_frozen(self, project: str, name: str, frozen: bool) -> Operation:
        async def work(rec: InstanceRecord, op: Operation) -> None:
            hypervisor = self.hypervisor(rec)
            await (hypervisor.freeze(rec) if frozen else hypervisor.unfreeze(rec))
            rec.power_state = "Frozen" if frozen else "Running"
            await self.store.write(lambda t: t.instance_update(rec))
            self.event("instance-paused" if frozen else "instance-resumed", rec)

        what = f"{'Freezing' if frozen else 'Unfreezing'} instance {name}"
        return await self.locked_op(await self.get(project, name),
                                    "freeze" if frozen else "unfreeze", what, work)


    # ------------------------------------------------------------------ daemon start
    async def adopt(self) -> None:
        """After a (re)start: keep running instances; start those that should run, now
        or, when a pool or network they need is unavailable, once it is back.

        Those that can start now start in the background, in ``boot.autostart.priority``
        order (higher first, ties by name), each followed by its ``boot.autostart.delay``;
        the daemon is ready meanwhile."""
        recs = await self.store.read(lambda t: t.instance_list(None))
        if not recs:
            return
        states = await self.states(recs, full=False)
        due: list[tuple[int, InstanceRecord, int]] = []  # (priority, record, delay)
        for rec in recs:
            real = states[rec.key].status
            if real in ("Running", "Frozen"):
                log.info("re-adopted running instance", instance=rec.name, status=real)
                await self.networks.adopt(rec, (await self.profiles.expand(rec))[1])
                if rec.power_state != real:
                    rec.power_state = real
                    await self.store.write(partial(_update, rec))
                continue
            config, devices = await self.profiles.expand(rec)
            if rec.power_state in ("Running", "Frozen") or is_true(config.get("boot.autostart")):
                root = device_rules.root_disk(devices)
                needs = [(POOL, root[1]["pool"])] if root else []
                needs += self.networks.needs(rec, devices)
                if self.availability.when_available(needs, partial(self.autostart, rec),
                                                    f"start of instance {rec.name}"):
                    due.append((_int(config, "boot.autostart.priority"), rec,
                                _int(config, "boot.autostart.delay")))
        if due:
            due.sort(key=lambda d: (-d[0], d[1].name, d[1].project))
            self.ops.nursery.start_soon(self._autostart_in_order,
                                        [(rec, delay) for _, rec, delay in due])

    async def _autostart_in_order(self, due: list[tuple[InstanceRecord, int]]) -> None:
        for i, (rec, delay) in enumerate(due):
            if self.ops.closing:  # the daemon is shutting down: start nothing more
                return
            try:  # it may have changed (or gone) while earlier ones started
                rec = await self.get(rec.project, rec.name)
                if await self.status(rec) != "Stopped":
                    continue
            except LxctlError:
                continue
            if await self._start_at_boot(rec) and delay and i + 1 < len(due):
                await trio.sleep(delay)

    async def autostart(self, rec: InstanceRecord) -> None:
        await self._start_at_boot(rec)

    async def _start_at_boot(self, rec: InstanceRecord) -> bool:
        try:
            async with self.holding(rec, "start"):
                await self.do_start(rec)
        except LxctlError as exc:
            log.warning("autostart failed", instance=rec.name, error=exc.message)
            self.bus.log("warning", f"Autostart of {rec.name} failed: {exc.message}",
                         warning="Instance autostart failure", project=rec.project,
                         entity_type="instance", entity_name=rec.name)
            return False
        log.info("autostarted instance", instance=rec.name)
        return True

    async def stop_all(self, timeout: float, force: bool) -> None:
        recs = await self.store.read(lambda t: t.instance_list(None))
        states = await self.states(recs, full=False)
        async with trio.open_nursery() as nursery:
            for rec in recs:
                if states[rec.key].status in ("Running", "Frozen"):
                    nursery.start_soon(self._stop_for_shutdown, rec, timeout, force)

    async def _stop_for_shutdown(self, rec: InstanceRecord, timeout: float, force: bool) -> None:
        """As ``boot.host_shutdown_action`` says (stateful-stop is a clean stop until a
        hypervisor declares stateful stops), within ``boot.host_shutdown_timeout``."""
        config, _ = await self.profiles.expand(rec)
        action = config.get("boot.host_shutdown_action", "stop")
        if action == "stateful-stop":
            log.warning("no stateful stop: stopping cleanly", instance=rec.name,
                        driver=self.hypervisor(rec).info.name)
        force = force or action == "force-stop"
        if config.get("boot.host_shutdown_timeout", "").isdigit():
            timeout = float(config["boot.host_shutdown_timeout"])
        try:
            async with self.holding(rec, "stop"):
                await self.hypervisor(rec).stop(rec, timeout=timeout, force=force)
            self.event("instance-stopped", rec)
        except LxctlError as exc:
            log.warning("stop at shutdown failed", instance=rec.name, error=exc.message)
