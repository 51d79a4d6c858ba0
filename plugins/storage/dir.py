"""The ``dir`` storage driver: plain directories under the pool's source.

Layout of a pool's source:

* ``images/<fingerprint>.<idmap tag>/rootfs``: an image unpacked once per id map (the
  rootfs shifted for unprivileged containers, or ``raw``).
* ``containers/<name>/``: an instance. With ``overlay=true`` (the default where the
  kernel has overlayfs) it holds ``upper/`` and ``work/``, stacked by LXC on the image's
  rootfs at start: no copy, so a launch costs no more for a big image than for a small
  one. With ``overlay=false`` it holds ``rootfs/``, a full copy, as Incus's dir driver
  does. A file ``lower`` names the image volume an overlay instance rests on; an image
  deleted while instances rest on it keeps its volume (marked ``.deleted``) until the
  last of them is gone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import ClassVar

import trio

from lxctl import execute
from lxctl.config import is_true
from lxctl.drivers import DriverContext, DriverRegistry, RootVolume
from lxctl.errors import InvalidArgument, Unavailable
from lxctl.objects.idmap import IdMap, shift_tree
from lxctl.plugin import impl
from lxctl.state.records import ImageRecord, PoolRecord

_limiter = trio.CapacityLimiter(2)
DELETED = ".deleted"


def _overlayfs_available() -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


class DirDriver:
    name: ClassVar[str] = "dir"
    optimized_images: ClassVar[bool] = True  # overlay instances share the image volume
    config_keys: ClassVar[frozenset[str]] = frozenset({"source", "overlay"})

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    def _source(self, pool: PoolRecord) -> Path:
        return Path(pool.config.get("source") or self.ctx.state_dir / "storage-pools" / pool.name)

    # ------------------------------------------------------------------ pools
    async def create_pool(self, pool: PoolRecord) -> dict[str, str]:
        unknown = set(pool.config) - self.config_keys
        if unknown:
            raise InvalidArgument(f"Unknown dir pool config key: {sorted(unknown)[0]}")
        overlay = pool.config.get("overlay", "true" if _overlayfs_available() else "false")
        if overlay.lower() not in ("true", "false"):
            raise InvalidArgument("Pool key 'overlay' must be true or false")
        source = self._source(pool)
        if source.exists() and any(source.iterdir()):
            raise InvalidArgument(f"Source {source} is not empty", source=str(source))
        for sub in ("images", "containers"):
            (source / sub).mkdir(parents=True, exist_ok=True, mode=0o711)
        return {"source": str(source), "overlay": overlay.lower()}

    async def mount_pool(self, pool: PoolRecord) -> None:
        source = self._source(pool)
        if not (source / "containers").is_dir():
            raise Unavailable(f"Source {source} of pool {pool.name!r} is missing",
                              pool=pool.name)

    async def delete_pool(self, pool: PoolRecord) -> None:
        await trio.to_thread.run_sync(shutil.rmtree, self._source(pool), True)

    # ------------------------------------------------------------------ images
    def _image_dir(self, pool: PoolRecord, fingerprint: str, idmap: IdMap | None) -> Path:
        return self._source(pool) / "images" / f"{fingerprint}.{idmap.tag if idmap else 'raw'}"

    async def ensure_image_volume(
        self, pool: PoolRecord, image: ImageRecord, tarball: Path, idmap: IdMap | None
    ) -> Path:
        target = self._image_dir(pool, image.fingerprint, idmap)
        rootfs = target / "rootfs"
        if rootfs.is_dir():
            (target / DELETED).unlink(missing_ok=True)  # the same image came back
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

    def _users_of(self, pool: PoolRecord, image_dir: Path) -> list[str]:
        users = []
        for lower in (self._source(pool) / "containers").glob("*/lower"):
            try:
                if Path(lower.read_text().strip()).parent == image_dir:
                    users.append(lower.parent.name)
            except OSError:
                continue
        return users

    async def delete_image_volumes(self, pool: PoolRecord, fingerprint: str) -> None:
        for path in (self._source(pool) / "images").glob(f"{fingerprint}.*"):
            if self._users_of(pool, path):
                (path / DELETED).touch()  # removed with its last instance
            else:
                await trio.to_thread.run_sync(shutil.rmtree, path, True)

    # ------------------------------------------------------------------ instances
    async def create_instance_volume(
        self, pool: PoolRecord, name: str, source: Path
    ) -> RootVolume:
        volume = self._source(pool) / "containers" / name
        if volume.exists():
            await trio.to_thread.run_sync(shutil.rmtree, volume, True)
        volume.mkdir(parents=True, mode=0o711)
        if is_true(pool.config.get("overlay")):
            st = os.stat(source)
            for sub in ("upper", "work"):  # owned like the image's root: the container's root
                (volume / sub).mkdir(mode=0o755)
                os.chown(volume / sub, st.st_uid, st.st_gid)
            os.chmod(volume / "upper", st.st_mode & 0o7777)
            (volume / "lower").write_text(f"{source}\n")
            return RootVolume(volume / "upper", lower=source)
        await execute.run(["cp", "-a", "--reflink=auto", source, volume / "rootfs"],
                          timeout=3600)
        return RootVolume(volume / "rootfs")

    async def delete_instance_volume(self, pool: PoolRecord, name: str) -> None:
        volume = self._source(pool) / "containers" / name
        lower = None
        try:
            lower = Path((volume / "lower").read_text().strip()).parent
        except OSError:
            pass
        await trio.to_thread.run_sync(shutil.rmtree, volume, True)
        if lower is not None and (lower / DELETED).exists() and not self._users_of(pool, lower):
            await trio.to_thread.run_sync(shutil.rmtree, lower, True)


@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_storage(DirDriver)
