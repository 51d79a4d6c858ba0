"""Rebuilding an instance: a new root volume from an image (or an empty one) while the
config, devices, profiles and identity stay. The instance must be stopped.

The old root goes first, then the new one is made and the hypervisor's part rewritten
to point at it; the record changes (``volatile.base_image``, ``image.*``) only once
that worked. If making the new root fails, the record stays, with no root volume:
``rebuild`` again or ``delete`` then both work."""

from __future__ import annotations

from dataclasses import replace

from lxctl.drivers.storage import ImageSource, StorageDriver, Volume
from lxctl.errors import InvalidArgument, LxctlError
from lxctl.kernel.operations import Operation
from lxctl.kernel.shield import shielded
from lxctl.objects import devices as device_rules
from lxctl.objects.instances.base import InstanceBase, InstanceRecord, log, set_root_quota
from lxctl.objects.instances.create import check_device_support
from lxctl.objects.pools import quotas_of
from lxctl.state.records import ImageRecord, PoolRecord

REBUILD_SECONDS = 600.0  # deleting and remaking a root runs shielded, up to this long


def rebuilt_config(config: dict[str, str], image: ImageRecord | None) -> dict[str, str]:
    """The instance's own config with the old image's keys replaced by the new one's."""
    kept = {k: v for k, v in config.items()
            if not k.startswith("image.") and k != "volatile.base_image"}
    if image is None:
        return kept
    return {**{f"image.{k}": v for k, v in image.properties.items()}, **kept,
            "volatile.base_image": image.fingerprint}


class Rebuild(InstanceBase):
    async def rebuild(self, project: str, name: str, *, image: str | None,
                      empty: bool) -> Operation:
        if (image is not None) == empty:
            raise InvalidArgument("Give either an image or empty=true, not both" if empty
                                  else "Give an image to rebuild from, or empty=true")
        rec = await self.get(project, name)
        img = await self.images.get(project, image) if image is not None else None
        if img is not None and img.type != rec.type:
            raise InvalidArgument(f"Image {image!r} is for a {img.type}, instance {name!r} "
                                  f"is a {rec.type}", instance=name, image=image)
        hypervisor = self.hypervisor(rec)
        new = replace(rec, config=rebuilt_config(rec.config, img))
        expanded_config, devices = await self.profiles.expand(new)
        check_device_support(hypervisor, devices)
        effective = replace(new, config=expanded_config)  # what the hypervisor sees
        idmap = hypervisor.rootfs_idmap(effective)
        pool, storage, volume = await self.root(rec, devices)  # Unavailable if it is down
        self.pools.check_supports(storage.info, volume)
        root = device_rules.root_disk(devices)
        root_size = root[1].get("size") if root is not None else None
        if root_size:
            quotas_of(storage)  # a driver without quotas refuses it before anything

        async def work(rec: InstanceRecord, op: Operation) -> None:
            with shielded(f"Rebuilding instance {name}", REBUILD_SECONDS):
                self.ops.progress(op, step="deleting root volume")
                await storage.delete_volume(pool, volume)
                try:
                    self.ops.progress(op, step="creating root volume")
                    if img is None:
                        await storage.create_volume(pool, volume)
                    else:
                        await self.pools.create_from_image(
                            pool, storage, volume,
                            ImageSource(img.fingerprint, self.images.path(img), idmap))
                    if root_size:
                        await set_root_quota(pool, storage, volume, root_size)
                    await hypervisor.create(effective, await storage.mount_volume(pool, volume))
                except LxctlError as exc:
                    await self._drop_partial_root(rec, pool, storage, volume)
                    raise type(exc)(
                        f"{exc.message} (instance {name} has no root volume now: rebuild "
                        "it again or delete it)", **exc.data) from exc
                rec.config = new.config
                await self.store.write(lambda t: t.instance_update(rec))
            self.event("instance-updated", rec)

        return await self.locked_op(rec, "rebuild", f"Rebuilding instance {name}", work)

    async def _drop_partial_root(self, rec: InstanceRecord, pool: PoolRecord,
                                 storage: StorageDriver, volume: Volume) -> None:
        try:
            await storage.delete_volume(pool, volume)
        except LxctlError as exc:
            log.warning("clean-up after failed rebuild", instance=rec.name,
                        error=exc.message)
