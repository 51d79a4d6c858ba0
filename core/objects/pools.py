"""Storage pools and profiles as the core sees them: records plus their drivers.

Also the first-start defaults: a ``default`` dir pool and a ``default`` profile whose
root disk is on it, and no network at all.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import structlog
import trio

from lxctl.drivers import Drivers, StorageDriver
from lxctl.errors import LxctlError, NotFound, Unavailable
from lxctl.kernel.events import EventBus, lifecycle
from lxctl.objects.idmap import IdMap
from lxctl.state.records import ImageRecord, PoolRecord, ProfileRecord
from lxctl.state.store import StateStore

log = structlog.get_logger("lxctl.objects.pools")


class Pools:
    def __init__(self, store: StateStore, drivers: Drivers, bus: EventBus) -> None:
        self.store = store
        self.drivers = drivers
        self.bus = bus
        self.unavailable: dict[str, str] = {}  # pool name -> why
        self._image_locks: defaultdict[tuple[str, str], trio.Lock] = defaultdict(trio.Lock)

    async def ensure_defaults(self) -> None:
        """On first start: a ``default`` dir pool and a ``default`` profile using it."""
        if not await self.store.pool_list():
            await self.create("default", "dir", {})
        try:
            await self.store.profile_get("default")
        except NotFound:
            await self.store.profile_create(ProfileRecord(
                "default", {}, {"root": {"type": "disk", "path": "/", "pool": "default"}},
                "Default lxctl profile"))

    async def create(self, name: str, driver_name: str, config: dict[str, str]) -> PoolRecord:
        driver = self.drivers.storage(driver_name)
        rec = PoolRecord(name, driver_name, dict(config))
        rec.config.update(await driver.create_pool(rec))
        await self.store.pool_create(rec)
        self.bus.publish(lifecycle("storage-pool-created", f"/1.0/storage-pools/{name}"))
        return rec

    async def mount_all(self) -> None:
        """Mount every pool; one that fails is marked unavailable, not fatal."""
        for rec in await self.store.pool_list():
            try:
                await self.drivers.storage(rec.driver).mount_pool(rec)
                self.unavailable.pop(rec.name, None)
            except LxctlError as exc:
                self.unavailable[rec.name] = exc.message
                log.warning("storage pool unavailable", pool=rec.name, error=exc.message)

    async def get(self, name: str) -> tuple[PoolRecord, StorageDriver]:
        rec = await self.store.pool_get(name)
        if name in self.unavailable:
            raise Unavailable(f"Storage pool {name!r} unavailable on this server: "
                              f"{self.unavailable[name]}", pool=name)
        return rec, self.drivers.storage(rec.driver)

    async def image_volume(
        self, pool: PoolRecord, driver: StorageDriver, image: ImageRecord, tarball: Path,
        idmap: IdMap | None,
    ) -> Path:
        """The image's rootfs on ``pool``, unpacked once (concurrent callers wait)."""
        key = (pool.name, f"{image.fingerprint}/{idmap.tag if idmap else 'raw'}")
        async with self._image_locks[key]:
            return await driver.ensure_image_volume(pool, image, tarball, idmap)

    async def forget_image(self, fingerprint: str) -> None:
        for rec in await self.store.pool_list():
            if rec.name not in self.unavailable:
                await self.drivers.storage(rec.driver).delete_image_volumes(rec, fingerprint)
