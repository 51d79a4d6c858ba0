"""The ``dir`` storage driver: plain directories under the pool's source.

Layout of a pool: ``<source>/images/<fingerprint>.<idmap tag>/rootfs`` (unpacked once
per image and id map) and ``<source>/containers/<name>/rootfs`` (a copy per instance,
like Incus's dir driver; ``cp --reflink=auto`` shares blocks where the filesystem can).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

import trio

from lxctl import execute
from lxctl.drivers import DriverContext, DriverRegistry
from lxctl.errors import InvalidArgument, Unavailable
from lxctl.idmap import IdMap, shift_tree
from lxctl.plugin import impl
from lxctl.records import ImageRecord, PoolRecord

_limiter = trio.CapacityLimiter(2)


class DirDriver:
    name: ClassVar[str] = "dir"
    optimized_images: ClassVar[bool] = False
    config_keys: ClassVar[frozenset[str]] = frozenset({"source"})

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    def _source(self, pool: PoolRecord) -> Path:
        return Path(pool.config.get("source") or self.ctx.state_dir / "storage-pools" / pool.name)

    async def create_pool(self, pool: PoolRecord) -> dict[str, str]:
        unknown = set(pool.config) - self.config_keys
        if unknown:
            raise InvalidArgument(f"Unknown dir pool config key: {sorted(unknown)[0]}")
        source = self._source(pool)
        if source.exists() and any(source.iterdir()):
            raise InvalidArgument(f"Source {source} is not empty", source=str(source))
        for sub in ("images", "containers"):
            (source / sub).mkdir(parents=True, exist_ok=True, mode=0o711)
        return {"source": str(source)}

    async def mount_pool(self, pool: PoolRecord) -> None:
        source = self._source(pool)
        if not (source / "containers").is_dir():
            raise Unavailable(f"Source {source} of pool {pool.name!r} is missing",
                              pool=pool.name)

    async def delete_pool(self, pool: PoolRecord) -> None:
        await trio.to_thread.run_sync(shutil.rmtree, self._source(pool), True)

    def _image_dir(self, pool: PoolRecord, fingerprint: str, idmap: IdMap | None) -> Path:
        return self._source(pool) / "images" / f"{fingerprint}.{idmap.tag if idmap else 'raw'}"

    async def ensure_image_volume(
        self, pool: PoolRecord, image: ImageRecord, tarball: Path, idmap: IdMap | None
    ) -> Path:
        target = self._image_dir(pool, image.fingerprint, idmap)
        rootfs = target / "rootfs"
        if rootfs.is_dir():
            return rootfs
        partial = target.with_name(target.name + ".partial")
        await trio.to_thread.run_sync(shutil.rmtree, partial, True)
        partial.mkdir(parents=True)
        try:
            await execute.run(["tar", "-xf", tarball, "-C", partial, "--numeric-owner",
                               "--xattrs", "--xattrs-include=*", "rootfs"], timeout=600)
            if idmap is not None:
                await trio.to_thread.run_sync(
                    shift_tree, partial / "rootfs", idmap.uid_base, idmap.gid_base,
                    limiter=_limiter)
            partial.rename(target)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(shutil.rmtree, partial, True)
            raise
        return rootfs

    async def delete_image_volumes(self, pool: PoolRecord, fingerprint: str) -> None:
        images = self._source(pool) / "images"
        for path in images.glob(f"{fingerprint}.*"):
            await trio.to_thread.run_sync(shutil.rmtree, path, True)

    def instance_rootfs(self, pool: PoolRecord, name: str) -> Path:
        return self._source(pool) / "containers" / name / "rootfs"

    async def create_instance_volume(self, pool: PoolRecord, name: str, source: Path) -> Path:
        rootfs = self.instance_rootfs(pool, name)
        volume = rootfs.parent
        if volume.exists():
            await trio.to_thread.run_sync(shutil.rmtree, volume, True)
        volume.mkdir(parents=True, mode=0o711)
        await execute.run(["cp", "-a", "--reflink=auto", source, rootfs], timeout=3600)
        return rootfs

    async def delete_instance_volume(self, pool: PoolRecord, name: str) -> None:
        volume = self.instance_rootfs(pool, name).parent
        await trio.to_thread.run_sync(shutil.rmtree, volume, True)


@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_storage(DirDriver)
