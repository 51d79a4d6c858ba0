"""Changing an instance's config, devices and description (``config set/unset/edit``,
``config device ...``): checked as at create, applied as one record update.

A running instance takes a device change only where the hypervisor declares it can
hot-plug that device type; otherwise the change is refused and nothing changes. Changed
keys the hypervisor declares in ``live_config`` (the limits, for LXC) are applied to a
running instance at once; the others take effect at its next start.
"""

from __future__ import annotations

from dataclasses import replace

import trio

from lxctl.config.schema import VOLATILE_PREFIX, Scope
from lxctl.config.units import is_true
from lxctl.errors import InvalidArgument
from lxctl.kernel.shield import shielded
from lxctl.objects import devices as device_rules
from lxctl.objects.instances.base import InstanceBase, InstanceRecord
from lxctl.objects.instances.create import check_device_support
from lxctl.objects.profiles import expand


class Update(InstanceBase):
    async def update(
        self, project: str, name: str, *, config: dict[str, str] | None = None,
        devices: dict[str, dict[str, str]] | None = None, description: str | None = None,
        ephemeral: bool | None = None,
    ) -> InstanceRecord:
        """Replace what is given (as Incus's PUT): ``config`` (its ``volatile.*`` keys
        are the daemon's and stay), ``devices``, ``description``."""
        rec = await self.get(project, name)
        hypervisor = self.hypervisor(rec)
        changed = replace(rec, config=dict(rec.config), devices=dict(rec.devices))
        if config is not None:
            volatile = {k: v for k, v in rec.config.items() if k.startswith(VOLATILE_PREFIX)}
            # a full config read back and sent again carries the daemon's keys: fine as
            # long as they are unchanged
            mine = {k: v for k, v in config.items()
                    if not (k.startswith(VOLATILE_PREFIX) and volatile.get(k) == v)}
            self.schema.check(Scope.INSTANCE, mine,
                              owners=[f"hypervisor:{hypervisor.info.name}"],
                              what=f"a {rec.type} instance")
            changed.config = {**mine, **volatile}
        if devices is not None:
            changed.devices = dict(devices)
        if description is not None:
            changed.description = description
        if ephemeral is not None:
            changed.ephemeral = ephemeral
        profiles = await self.profiles.by_name({rec.project})
        old_config, old_devices = expand(rec, profiles)
        expanded_config, new_devices = expand(changed, profiles)
        device_rules.check(new_devices)
        check_device_support(hypervisor, new_devices)
        await trio.to_thread.run_sync(device_rules.check_sources, new_devices)
        if device_rules.root_disk(new_devices) is None:
            raise InvalidArgument(f"Instance {name!r} would have no root disk device",
                                  instance=name)
        hypervisor.rootfs_idmap(replace(changed, config=expanded_config))  # still runnable
        keys = frozenset(k for k in set(old_config) | set(expanded_config)
                         if old_config.get(k) != expanded_config.get(k))
        if "security.idmap.isolated" in keys and is_true(old_config.get(
                "security.idmap.isolated")) != is_true(expanded_config.get(
                "security.idmap.isolated")):
            raise InvalidArgument(
                f"security.idmap.isolated of instance {name!r} is chosen when it is "
                f"created: copy or rebuild it to change it", instance=name,
                key="security.idmap.isolated")
        async with self.holding(rec, "update"):
            running = await self.status(rec) != "Stopped"
            if old_devices != new_devices and running:
                device_rules.check_live_change(rec.name, hypervisor.info.name,
                                               hypervisor.info.hotplug, old_devices,
                                               new_devices)
            resized = await self.resize_root(rec, old_devices, new_devices)
            try:
                if old_devices != new_devices and running:
                    await self.hotplug_changes(rec, old_devices, new_devices)
                live = keys & hypervisor.info.live_config
                if running and live:  # applied now; the other keys at the next start
                    await hypervisor.apply_config(replace(changed, config=expanded_config),
                                                  live)
                await self.store.write(lambda t: t.instance_update(changed))
            except BaseException:
                if resized:
                    with shielded(f"Restoring the root size of {name}"):
                        await self.resize_root(rec, new_devices, old_devices)
                raise
        self.event("instance-updated", changed)
        return changed
