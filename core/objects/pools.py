"""Storage pools and volumes as the core sees them: records plus their drivers.

The core asks the driver for volumes and reads its ``StorageInfo`` to know how: with
``optimized_images`` an image is unpacked once per pool into an image volume (one call
at a time per image variant) and instance volumes are made from it; otherwise the driver
builds each instance volume from the tarball. A pool that cannot be mounted at start is
Unavailable (degraded start, see ``kernel/availability``), not fatal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
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
from lxctl.errors import InvalidArgument
from lxctl.kernel.availability import Availability
from lxctl.kernel.events import EventBus, lifecycle
from lxctl.objects.names import check_object_name
from lxctl.state.records import PoolRecord, VolumeRecord
from lxctl.state.store import StateStore

KIND = "storage-pool"


def source(name: str) -> str:
    return f"/1.0/storage-pools/{name}"


class Pools:
    def __init__(self, store: StateStore, drivers: Drivers, bus: EventBus,
                 availability: Availability, schema: ConfigSchema) -> None:
        self.store = store
        self.drivers = drivers
        self.bus = bus
        self.availability = availability
        self.schema = schema
        self._image_locks: defaultdict[tuple[str, str], trio.Lock] = defaultdict(trio.Lock)

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
        check_object_name("storage pool", name)
        driver = self.drivers.storage(driver_name)
        self.schema.check(Scope.POOL, config, owners=[f"storage:{driver_name}"],
                          what=f"a {driver_name} pool")
        rec = PoolRecord(name, driver_name, dict(config), description)
        rec.config.update(await driver.create_pool(rec))
        try:
            await self.store.write(lambda t: t.pool_create(rec))
        except BaseException:
            with trio.CancelScope(shield=True):
                await driver.delete_pool(rec)
            raise
        await self.availability.add(KIND, name, self._mounter(rec), source(name))
        self.bus.publish(lifecycle("storage-pool-created", source(name)))
        return rec

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
