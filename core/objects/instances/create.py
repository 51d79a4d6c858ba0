"""Creating an instance: checked first, then the root volume and the hypervisor's
part as an operation; undone (shielded, with a deadline) if anything fails."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import trio

from lxctl.config.schema import Scope
from lxctl.config.units import is_true
from lxctl.drivers.hypervisor import HypervisorDriver
from lxctl.drivers.storage import ImageSource
from lxctl.errors import AlreadyExists, InvalidArgument, NotFound
from lxctl.kernel.operations import Operation
from lxctl.kernel.shield import shielded
from lxctl.objects import devices as device_rules
from lxctl.objects.idmap import isolated_block
from lxctl.objects.instances.base import InstanceBase, InstanceRecord, set_root_quota
from lxctl.objects.names import check_instance_name, random_instance_name
from lxctl.objects.pools import quotas_of, root_volume, volume_record
from lxctl.objects.projects import check_instance_limits
from lxctl.state.store import Tables

START_SECONDS = 120.0  # the start that follows a create runs shielded, up to this long


def check_device_support(hypervisor: HypervisorDriver, devices: Mapping[str, Any]) -> None:
    """Refuse devices the hypervisor declares it cannot render."""
    for name, conf in devices.items():
        if conf.get("type") not in hypervisor.info.device_types:
            raise InvalidArgument(
                f"Device {name!r}: {conf.get('type')} devices are not supported by the "
                f"{hypervisor.info.name} driver", device=name, driver=hypervisor.info.name)


class Create(InstanceBase):
    async def create(
        self, *, project: str, name: str | None, image: str, config: dict[str, str],
        devices: dict[str, dict[str, str]], profiles: list[str] | None, pool: str | None,
        ephemeral: bool, start: bool, description: str = "",
    ) -> Operation:
        name = check_instance_name(name) if name is not None else await self._free_name(project)
        img = await self.images.get(project, image)
        profiles = ["default"] if profiles is None else profiles
        await self.profiles.check_exist(project, profiles)
        rec = InstanceRecord(
            name=name, type=img.type, architecture=img.architecture, description=description,
            config={**{f"image.{k}": v for k, v in img.properties.items()}, **config,
                    "volatile.base_image": img.fingerprint, "volatile.uuid": str(uuid.uuid4())},
            devices=dict(devices), profiles=profiles, ephemeral=ephemeral, project=project)
        hypervisor = self.hypervisor(rec)
        self.schema.check(Scope.INSTANCE, config, owners=[f"hypervisor:{hypervisor.info.name}"],
                          what=f"a {rec.type} instance")
        if pool is not None:
            await self.store.read(lambda t: t.pool_get(pool))
            rec.devices["root"] = {"type": "disk", "path": "/", "pool": pool}
        expanded_config, expanded = await self.profiles.expand(rec)
        effective = replace(rec, config=expanded_config)  # what the hypervisor sees
        device_rules.check(expanded)
        check_device_support(hypervisor, expanded)
        await trio.to_thread.run_sync(device_rules.check_sources, expanded)
        root = device_rules.root_disk(expanded)
        if root is None:
            raise InvalidArgument("No root disk device: the profiles give the instance no "
                                  "storage pool (use --storage POOL)", instance=name)
        idmap = hypervisor.rootfs_idmap(effective)  # refuses before anything is written
        pool_rec, storage = await self.pools.get(root[1]["pool"])
        volume = root_volume(name, project, rec.type)
        self.pools.check_supports(storage.info, volume)
        root_size = root[1].get("size")
        if root_size:
            quotas_of(storage)  # a driver without quotas refuses it before anything
        isolated = idmap is not None and is_true(
            expanded_config.get("security.idmap.isolated"))

        def reserve(t: Tables) -> None:  # the name and the volume, in one transaction
            check_instance_limits(t, project, rec.type)  # the project's limits.instances
            if isolated and idmap is not None:  # a map no other instance has
                taken = {int(i.config["volatile.idmap.base"]) for i in t.instance_list(None)
                         if i.config.get("volatile.idmap.base", "").isdigit()}
                rec.config["volatile.idmap.base"] = str(isolated_block(idmap, taken).uid_base)
            t.instance_create(rec)
            t.volume_create(volume_record(pool_rec.name, volume))

        await self.locks.acquire(rec.key, "create")
        try:
            await self.store.write(reserve)  # AlreadyExists if the name is taken
        except BaseException:
            await self.release(rec)
            raise
        if isolated:
            effective = replace(rec, config={**expanded_config, **rec.config})
            idmap = hypervisor.rootfs_idmap(effective)
        image_source = ImageSource(img.fingerprint, self.images.path(img), idmap)

        async def work(op: Operation) -> None:
            try:
                try:
                    self.ops.progress(op, step="creating root volume")
                    await self.pools.create_from_image(pool_rec, storage, volume, image_source)
                    if root_size:
                        await set_root_quota(pool_rec, storage, volume, root_size)
                    await hypervisor.create(effective,
                                            await storage.mount_volume(pool_rec, volume))
                except BaseException:
                    with shielded(f"Undoing the creation of instance {name}"):
                        await self.undo_create(rec, pool_rec, storage, volume)
                    raise
                self.event("instance-created", rec, type=rec.type)
                if start:  # the same operation, still holding the lock, starts it;
                    # the instance exists now: a cancel no longer undoes anything
                    with shielded(f"Starting instance {name}", START_SECONDS):
                        await self.do_start(rec)
            finally:
                await self.release(rec)

        what = f"Creating instance {name}" + (" and starting it" if start else "")
        # cancelling undoes the creation (until the instance exists, then it is too late)
        return await self.start_op(rec, what, work, may_cancel=True)

    async def _free_name(self, project: str) -> str:
        for _ in range(100):
            name = random_instance_name()

            def get(t: Tables, name: str = name) -> InstanceRecord:
                return t.instance_get(project, name)

            try:
                await self.store.read(get)
            except NotFound:
                return name
        raise AlreadyExists("Could not find a free random instance name")
