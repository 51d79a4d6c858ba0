"""Storage pools and volumes as the core sees them: records plus their drivers.

The core asks the driver for volumes and reads its ``StorageInfo`` to know how: with
``optimized_images`` an image is unpacked once per pool into an image volume (one call
at a time per image variant) and instance volumes are made from it; otherwise the driver
builds each instance volume from the tarball. A pool that cannot be mounted at start is
Unavailable (degraded start, see ``kernel/availability``), not fatal.
"""

from __future__ import annotations

import builtins
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import cast

import trio

from lxctl.config.schema import ConfigSchema, Scope
from lxctl.drivers.registry import Drivers
from lxctl.drivers.storage import (
    ContentType,
    ImageSource,
    StorageDriver,
    StorageInfo,
    SupportsQuotas,
    SupportsSendReceive,
    SupportsSnapshots,
    Volume,
    VolumeType,
)
from lxctl.errors import AlreadyExists, InvalidArgument, InvalidState
from lxctl.kernel.availability import Availability
from lxctl.kernel.events import SERVER_WIDE, EventBus, source_path
from lxctl.objects.names import check_object_name
from lxctl.state.records import PoolRecord, VolumeRecord
from lxctl.state.store import StateStore, Tables

KIND = "storage-pool"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")  # a zpool or volume group name


def source(name: str) -> str:
    return source_path("storage-pools", name, project=SERVER_WIDE)


class Pools:
    def __init__(self, store: StateStore, drivers: Drivers, bus: EventBus,
                 availability: Availability, schema: ConfigSchema) -> None:
        self.store = store
        self.drivers = drivers
        self.bus = bus
        self.availability = availability
        self.schema = schema
        self._image_locks: defaultdict[tuple[str, str], trio.Lock] = defaultdict(trio.Lock)
        self.native_transfers = True  # storage.native_transfers (see objects/transfer)

    @property
    def unavailable(self) -> dict[str, str]:
        return self.availability.unavailable(KIND)

    async def ensure_default(self, driver: str = "dir") -> None:
        """On first start: a ``default`` pool of ``driver`` (``storage.default_driver``).

        Never another driver in its place: one that is missing is an error naming it."""
        if not await self.store.read(lambda t: t.pool_list()):
            await self.create("default", driver, {})

    async def create(self, name: str, driver_name: str, config: dict[str, str],
                     description: str = "") -> PoolRecord:
        """A new pool, made by its driver; refused with nothing made for an invalid or
        taken name, keys the driver does not declare, or a source that does not exist
        or lies inside another pool."""
        check_object_name("storage pool", name)
        driver = self.drivers.storage(driver_name)
        self.check_config(driver.info, config)
        existing = await self.list()
        if any(p.name == name for p in existing):
            raise AlreadyExists(f"Storage pool {name!r} already exists", pool=name)
        src = config.get("source", "")
        if src and not (driver.info.named_sources and _NAME.fullmatch(src)):
            await trio.to_thread.run_sync(self._check_source, config, existing)
        rec = PoolRecord(name, driver_name, dict(config), description)
        rec.config.update(await driver.create_pool(rec))
        try:
            await self.store.write(lambda t: t.pool_create(rec))
        except BaseException:
            with trio.CancelScope(shield=True):
                await driver.delete_pool(rec)
            raise
        await self.availability.add(KIND, name, self._mounter(rec), source(name))
        self.bus.emit("storage-pool-created", source(name), project=SERVER_WIDE)
        return rec

    def check_config(self, info: StorageInfo, config: Mapping[str, str]) -> None:
        """Pool keys: declared, valid, and declared by this driver (``size`` on dir and
        ``zfs.*`` on btrfs are refused)."""
        declared = {k: v for k, v in config.items() if not k.startswith("user.")}
        self.schema.check(Scope.POOL, declared, owners=[f"storage:{info.name}"],
                          what=f"a {info.name} pool")
        own = {k.name for k in info.pool_keys}
        for key in config:
            if key not in own and not key.startswith(("volatile.", "user.")):
                raise InvalidArgument(f"Config key {key!r} is not supported by the "
                                      f"{info.name} storage driver", key=key)

    def _check_source(self, config: Mapping[str, str], existing: list[PoolRecord]) -> None:
        """A source that exists (or whose directory exists, for a loop file or a dir
        pool's new directory) and is not inside another pool (blocking)."""
        src = config["source"]
        path = Path(src)
        if not path.is_absolute():
            raise InvalidArgument(f"source {src!r} must be an absolute path (or, for zfs and "
                                  "lvm, the name of an existing pool or volume group)",
                                  source=src)
        if not path.exists() and (src.startswith("/dev/") or not path.parent.is_dir()):
            raise InvalidArgument(f"source {src} does not exist", source=src)
        real = path.resolve()
        for other in existing:
            roots = [self.drivers.ctx.state_dir / "storage-pools" / other.name]
            if other.config.get("source"):
                roots.append(Path(other.config["source"]))
            for root in roots:
                root = root.resolve()
                if real == root or root in real.parents:
                    raise InvalidArgument(f"source {src} is inside storage pool "
                                          f"{other.name!r}", source=src, pool=other.name)

    async def used_by(self, name: str) -> builtins.list[str]:
        """Incus-style paths of what uses the pool: instances, custom volumes, profiles."""
        def read(t: Tables) -> builtins.list[str]:
            out = []
            for vol in t.volume_list(name, None):
                kind = "instances" if vol.type in ("container", "virtual-machine") \
                    else "storage-pools/" + name + "/volumes/" + vol.type
                out.append(source_path(*kind.split("/"), vol.name, project=vol.project))
            for project in t.project_list():
                for prof in t.profile_list(project.name):
                    if any(d.get("type") == "disk" and d.get("pool") == name
                           for d in prof.devices.values()):
                        out.append(source_path("profiles", prof.name, project=project.name))
            return out

        return await self.store.read(read)

    async def update(self, name: str, config: dict[str, str],
                     description: str | None = None) -> PoolRecord:
        """Replace the pool's config (as Incus's PUT). The driver's keys apply when the
        pool is made (the protocol has no call to change a pool): only ``user.*`` keys
        and the description change later; the volatile keys stay."""
        rec, driver = await self.get(name)
        kept = {k: v for k, v in rec.config.items() if k.startswith("volatile.")}
        given = {k: v for k, v in config.items() if not k.startswith("volatile.")}
        self.check_config(driver.info, given)
        new = {**given, **kept}
        for key in sorted(new.keys() | rec.config.keys()):
            if new.get(key) != rec.config.get(key) and not key.startswith("user."):
                raise InvalidArgument(f"Config key {key!r} of storage pool {name!r} cannot "
                                      "be changed", key=key, pool=name)
        changed = PoolRecord(name, rec.driver, new,
                             rec.description if description is None else description)
        await self.store.write(lambda t: t.pool_update(changed))
        self.bus.emit("storage-pool-updated", source(name), project=SERVER_WIDE)
        return changed

    async def delete(self, name: str) -> None:
        """Delete the pool and everything of it on disk; refused (naming them) while
        instances, volumes or profiles use it."""
        rec = await self.store.read(lambda t: t.pool_get(name))
        users = await self.used_by(name)
        if users:
            raise InvalidState(f"Storage pool {name!r} is in use by " + ", ".join(users),
                               pool=name, used_by=users)
        driver = self.drivers.storage(rec.driver)
        if self.availability.is_available(KIND, name):
            await driver.delete_pool(rec)
        self.availability.remove(KIND, name)
        await self.store.write(lambda t: t.pool_delete(name))
        self.bus.emit("storage-pool-deleted", source(name), project=SERVER_WIDE)

    async def bring_up_all(self) -> None:
        """Mount every pool; one that fails is Unavailable and retried in the background."""
        for rec in await self.store.read(lambda t: t.pool_list()):
            await self.availability.add(KIND, rec.name, self._mounter(rec), source(rec.name))

    def _mounter(self, rec: PoolRecord) -> Callable[[], Awaitable[None]]:
        async def mount() -> None:
            # a missing or disabled driver plugin makes the pool Unavailable, not fatal
            await self.drivers.storage(rec.driver).mount_pool(rec)

        return mount

    async def get(self, name: str) -> tuple[PoolRecord, StorageDriver]:
        rec = await self.store.read(lambda t: t.pool_get(name))
        self.availability.require(KIND, name, f"Storage pool {name!r}")
        return rec, self.drivers.storage(rec.driver)

    async def list(self) -> list[PoolRecord]:
        return await self.store.read(lambda t: t.pool_list())

    @staticmethod
    def check_supports(info: StorageInfo, volume: Volume) -> None:
        if volume.type not in info.volume_types:
            raise InvalidArgument(f"Storage driver {info.name} does not support "
                                  f"{volume.type} volumes", driver=info.name)
        if volume.content not in info.content_types:
            raise InvalidArgument(f"Storage driver {info.name} does not support "
                                  f"{volume.content} content", driver=info.name)

    # ------------------------------------------------------------------ volumes
    async def create_from_image(self, pool: PoolRecord, driver: StorageDriver, volume: Volume,
                                image: ImageSource) -> None:
        """A volume with an image's content: from the image volume where the driver
        keeps one (made once per variant, concurrent callers wait), else the tarball."""
        self.check_supports(driver.info, volume)
        if driver.info.optimized_images:
            async with self._image_locks[(pool.name, image.variant)]:
                await driver.ensure_image_volume(pool, image)
        await driver.create_volume_from_image(pool, volume, image)

    async def forget_image(self, fingerprint: str) -> None:
        """An image is gone: drop its image volumes where the drivers keep them."""
        for rec in await self.list():
            if rec.name in self.unavailable:
                continue
            driver = self.drivers.storage(rec.driver)
            if driver.info.optimized_images:
                await driver.delete_image_volume(rec, fingerprint)


def snapshots_of(driver: StorageDriver) -> SupportsSnapshots:
    """The driver's snapshot calls, if its info says it has them."""
    if not driver.info.snapshots:
        raise InvalidArgument(f"Storage driver {driver.info.name} does not support snapshots")
    return cast(SupportsSnapshots, driver)


def quotas_of(driver: StorageDriver) -> SupportsQuotas:
    if not driver.info.quotas:
        raise InvalidArgument(f"Storage driver {driver.info.name} does not support quotas "
                              "(size)")
    return cast(SupportsQuotas, driver)


def send_receive_of(driver: StorageDriver) -> SupportsSendReceive | None:
    """The native transfer calls, or None: the caller falls back to a file copy."""
    return cast(SupportsSendReceive, driver) if driver.info.send_receive else None


def root_volume(name: str, project: str, instance_type: str) -> Volume:
    vtype = VolumeType.VIRTUAL_MACHINE if instance_type == "virtual-machine" \
        else VolumeType.CONTAINER
    content = ContentType.BLOCK if vtype is VolumeType.VIRTUAL_MACHINE \
        else ContentType.FILESYSTEM
    return Volume(name, vtype, content, project)


def volume_record(pool: str, volume: Volume) -> VolumeRecord:
    return VolumeRecord(pool, volume.name, str(volume.type), str(volume.content),
                        project=volume.project)
