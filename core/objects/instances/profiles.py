"""Profiles and the instances that use them: assigning profiles to an instance
(``profile assign/add/remove``) and a profile's change reaching the running instances
that use it (``profile set/edit/device ...``), as Incus propagates it.

Either is checked as a create would check the result. On a running instance, a device
change needs a hypervisor that hot-plugs that type (else it is refused and nothing
changes), and changed keys the hypervisor declares live are applied at once; the rest
takes effect at the next start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import trio

from lxctl.errors import InvalidArgument, LxctlError, NotFound, PluginError
from lxctl.kernel.shield import shielded
from lxctl.objects import devices as device_rules
from lxctl.objects.instances.base import InstanceBase, InstanceRecord, log
from lxctl.objects.profiles import Known, expand, profile_project
from lxctl.state.records import ProfileRecord
from lxctl.state.store import Tables


@dataclass(frozen=True)
class Live:
    """What an instance must take at once: its live keys that change (``rec`` carries
    its new expanded config), its expanded devices before and after (hot-plugged if it
    runs), and a new root size (a quota, running or not)."""

    rec: InstanceRecord
    keys: frozenset[str]
    old_devices: dict[str, dict[str, str]]
    new_devices: dict[str, dict[str, str]]
    running: bool = True

    async def devices(self, instances: InstanceBase, *, undo: bool = False) -> None:
        if self.old_devices == self.new_devices:
            return
        old, new = (self.new_devices, self.old_devices) if undo else (
            self.old_devices, self.new_devices)
        resized = await instances.resize_root(self.rec, old, new)
        if not self.running:
            return
        try:
            await instances.hotplug_changes(self.rec, old, new)
        except BaseException:
            if resized:
                with shielded(f"Restoring the root size of {self.rec.name}"):
                    await instances.resize_root(self.rec, new, old)
            raise


class ProfileAssignment(InstanceBase):
    async def set_profiles(self, project: str, name: str, profiles: list[str]
                           ) -> InstanceRecord:
        """Every profile must exist; the expanded devices must keep a root disk and be
        ones the instance's hypervisor renders."""
        for dup in {p for p in profiles if profiles.count(p) > 1}:
            raise InvalidArgument(f"Profile {dup!r} is listed twice", profile=dup)
        rec = await self.get(project, name)
        async with self.holding(rec, "update"):
            known = await self.profiles.by_name({project})
            for profile in profiles:
                if (project, profile) not in known:
                    raise NotFound(f"Profile {profile!r} not found", profile=profile)
            changed = replace(rec, profiles=list(profiles))
            hypervisor = self.hypervisor(rec)
            self.profiles.check_instance(changed, known, hypervisor)
            new_config, new_devices = expand(changed, known)
            await trio.to_thread.run_sync(device_rules.check_sources, new_devices)
            hypervisor.rootfs_idmap(replace(changed, config=new_config))  # still runnable
            running = await self.status(rec) != "Stopped"
            live = self._running_change(rec, known, changed, known, running)

            def write(t: Tables) -> InstanceRecord:
                current = t.instance_get(project, name)
                scope = profile_project(t, project)
                for profile in profiles:  # none deleted since the check
                    t.profile_get(scope, profile)
                current.profiles = list(profiles)
                t.instance_update(current)
                return current

            plans = [] if live is None else [live]
            await self._devices(plans, f"instance {name}")  # first: a failure changes nothing
            try:
                if live is not None and live.keys:
                    await hypervisor.apply_config(live.rec, live.keys)
                updated = await self.store.write(write)
            except BaseException:
                await self._undo_devices(plans, f"instance {name}")
                raise
        self.event("instance-updated", updated)
        return updated

    async def update_profile(
        self, project: str, name: str, *, config: dict[str, str] | None = None,
        devices: dict[str, dict[str, str]] | None = None, description: str | None = None,
    ) -> ProfileRecord:
        """``profile.update``, refused if a running instance using the profile would
        need a device change its hypervisor cannot make live; live keys applied."""
        self.profiles.check_content(config or {}, devices or {})  # the keys named first
        old, users, profiles = await self.profiles.users(project, name)
        new = replace(old, config=old.config if config is None else dict(config),
                      devices=old.devices if devices is None else dict(devices))
        after = {**profiles, name: new}
        plans: list[Live] = []
        states = await self.states([i for i in users if self._has_driver(i)], full=False)
        for inst in users:
            await trio.to_thread.run_sync(device_rules.check_sources,
                                          expand(inst, _known(inst, after))[1])
            running = inst.key in states and \
                self.transient.shown(inst.key, states[inst.key].status) != "Stopped"
            live = self._running_change(inst, _known(inst, profiles), inst,
                                        _known(inst, after), running)
            if live is not None:
                plans.append(live)
        await self._devices(plans, f"profile {name}")  # on every user that needs it, first
        try:
            rec = await self.profiles.update(project, name, config=config, devices=devices,
                                             description=description)
        except BaseException:
            await self._undo_devices(plans, f"profile {name}")
            raise
        for plan in plans:  # the profile is the record: a driver failure is logged
            if not plan.keys or not plan.running:
                continue
            try:
                await self.hypervisor(plan.rec).apply_config(plan.rec, plan.keys)
            except LxctlError as exc:
                log.warning("profile change not applied to a running instance",
                            instance=plan.rec.name, profile=name, error=exc.message)
        return rec

    async def _devices(self, plans: list[Live], what: str) -> None:
        """Each plan's device changes; one that fails undoes those made before it."""
        done: list[Live] = []
        try:
            for plan in plans:
                await plan.devices(self)
                done.append(plan)
        except BaseException:
            await self._undo_devices(done, what)
            raise

    async def _undo_devices(self, plans: list[Live], what: str) -> None:
        with shielded(f"Restoring the devices changed for {what}"):
            for plan in reversed(plans):
                try:
                    await plan.devices(self, undo=True)
                except LxctlError as exc:
                    log.warning("restoring devices failed", instance=plan.rec.name,
                                error=exc.message)

    def _has_driver(self, inst: InstanceRecord) -> bool:
        try:
            self.hypervisor(inst)
        except PluginError:  # its plugin is disabled: it cannot be running
            return False
        return True

    def _running_change(self, old: InstanceRecord, old_known: Known, new: InstanceRecord,
                        new_known: Known, running: bool) -> Live | None:
        """For a running instance: refuse device changes it cannot take live; what it
        must take at once (live keys, devices, root size), if anything. For a stopped
        one: only a new root size."""
        old_config, old_devices = expand(old, old_known)
        new_config, new_devices = expand(new, new_known)
        if not running:
            if device_rules.root_size_change(old_devices, new_devices) is None:
                return None
            return Live(new, frozenset(), old_devices, new_devices, running=False)
        hypervisor = self.hypervisor(old)
        device_rules.check_live_change(old.name, hypervisor.info.name,
                                       hypervisor.info.hotplug, old_devices, new_devices)
        keys = frozenset(k for k in old_config.keys() | new_config.keys()
                         if old_config.get(k) != new_config.get(k))
        live = keys & hypervisor.info.live_config
        if not live and old_devices == new_devices:
            return None
        return Live(replace(new, config=new_config), live, old_devices, new_devices)


def _known(inst: InstanceRecord, profiles: Mapping[str, ProfileRecord]) -> Known:
    return {(inst.project, p.name): p for p in profiles.values()}
