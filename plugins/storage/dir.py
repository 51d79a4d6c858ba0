"""The ``dir`` storage driver: plain directories under the pool's source.

Layout of a pool's source:

* ``images/<fingerprint>.<idmap tag>/rootfs``: an image unpacked once per id map (the
  rootfs shifted for unprivileged containers, or ``raw``); ``users/`` beside it holds
  one empty file per instance volume resting on it.
* ``containers/<name>/``: an instance volume. With ``overlay=true`` (the default where
  the kernel has overlayfs) it holds ``upper/`` and ``work/``, stacked by the hypervisor
  on the image's rootfs (named in the file ``lower``): no copy, so a launch costs no
  more for a big image than for a small one. With ``overlay=false`` it holds
  ``rootfs/``, a full copy, as Incus's dir driver does. An image deleted while
  instances rest on it keeps its volume (marked ``.deleted``) until the last is gone.
* ``custom/<name>/``: custom filesystem volumes.
* ``snapshots/<type>/<name>/<snapshot>/``: copies (reflinks where the filesystem can).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import trio

from lxctl.public import (
    ConfigKey,
    ContentType,
    DriverContext,
    DriverRegistry,
    ImageSource,
    InvalidArgument,
    KeyType,
    MountedVolume,
    NotFound,
    PoolRecord,
    Scope,
    StorageInfo,
    Unavailable,
    Volume,
    VolumeType,
    VolumeUsage,
    impl,
    is_true,
    run,
    shift_tree,
)

_limiter = trio.CapacityLimiter(2)
DELETED = ".deleted"
_DIRS = {VolumeType.CONTAINER: "containers", VolumeType.CUSTOM: "custom"}


def _overlayfs_available() -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class DirDriver:
    info: ClassVar[StorageInfo] = StorageInfo(
        name="dir",
        volume_types=frozenset({VolumeType.CONTAINER, VolumeType.CUSTOM, VolumeType.IMAGE}),
        content_types=frozenset({ContentType.FILESYSTEM}),
        optimized_images=True,  # image volumes are kept; instances rest on them
        clones=True,  # with overlay=true (the default): an instance volume is two mkdirs
        snapshots=True,  # as copies
        pool_keys=(
            ConfigKey("source", Scope.POOL, owner="storage",  # btrfs, zfs, lvm have it too
                      doc="Directory holding the pool (default: "
                      "$LXCTL_DIR/storage-pools/NAME); must be empty when the pool is made"),
            ConfigKey("overlay", Scope.POOL, KeyType.BOOL,
                      doc="Stack instance volumes on the image volume with overlayfs "
                      "(default: true where the kernel has overlayfs)"),
        ),
    )

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    @classmethod
    def probe(cls) -> str | None:
        return None  # a directory works everywhere

    def _source(self, pool: PoolRecord) -> Path:
        return Path(pool.config.get("source") or self.ctx.state_dir / "storage-pools" / pool.name)

    def _volume_dir(self, pool: PoolRecord, volume: Volume) -> Path:
        if volume.type not in _DIRS:
            raise InvalidArgument(f"dir pools hold no {volume.type} volumes")
        return self._source(pool) / _DIRS[volume.type] / volume.storage_name

    def _snapshot_dir(self, pool: PoolRecord, volume: Volume) -> Path:
        return self._source(pool) / "snapshots" / _DIRS[volume.type] / volume.storage_name

    # ------------------------------------------------------------------ pools
    async def create_pool(self, pool: PoolRecord) -> dict[str, str]:
        overlay = pool.config.get("overlay", "true" if _overlayfs_available() else "false")
        source = self._source(pool)

        def make() -> None:
            if source.exists() and any(source.iterdir()):
                raise InvalidArgument(f"Source {source} is not empty", source=str(source))
            for sub in ("images", *_DIRS.values(), "snapshots"):
                (source / sub).mkdir(parents=True, exist_ok=True, mode=0o711)

        await trio.to_thread.run_sync(make)
        return {"source": str(source), "overlay": "true" if is_true(overlay) else "false"}

    async def mount_pool(self, pool: PoolRecord) -> None:
        source = self._source(pool)

        def check() -> None:
            if not (source / "containers").is_dir():
                raise Unavailable(f"Source {source} of pool {pool.name!r} is missing",
                                  pool=pool.name)
            for sub in ("custom", "snapshots"):  # pools made before these existed
                (source / sub).mkdir(exist_ok=True, mode=0o711)
            self._index_users(source)

        await trio.to_thread.run_sync(check)

    @staticmethod
    def _index_users(source: Path) -> None:
        """Pools made before ``users/`` existed: index each image's instances once."""
        for image_dir in (source / "images").iterdir():
            if not image_dir.is_dir() or (image_dir / "users").is_dir() or \
                    image_dir.name.endswith(".partial"):
                continue
            users = image_dir / "users"
            users.mkdir()
            for lower in (source / "containers").glob("*/lower"):
                try:
                    if Path(lower.read_text().strip()).parent == image_dir:
                        (users / lower.parent.name).touch()
                except OSError:
                    continue

    async def unmount_pool(self, pool: PoolRecord) -> None:
        return None

    async def delete_pool(self, pool: PoolRecord) -> None:
        await trio.to_thread.run_sync(_rmtree, self._source(pool))

    # ------------------------------------------------------------------ images
    def _image_dir(self, pool: PoolRecord, image: ImageSource) -> Path:
        return self._source(pool) / "images" / image.variant

    async def ensure_image_volume(self, pool: PoolRecord, image: ImageSource) -> None:
        target = self._image_dir(pool, image)
        if (target / "rootfs").is_dir():
            (target / DELETED).unlink(missing_ok=True)  # the same image came back
            return
        partial = target.with_name(target.name + ".partial")
        await trio.to_thread.run_sync(_rmtree, partial)
        (partial / "users").mkdir(parents=True)
        try:
            await run(["tar", "-xf", image.tarball, "-C", partial, "--numeric-owner",
                       "--xattrs", "--xattrs-include=*", "rootfs"], timeout=600)
            if image.idmap is not None:
                await trio.to_thread.run_sync(
                    shift_tree, partial / "rootfs", image.idmap.uid_base,
                    image.idmap.gid_base, limiter=_limiter)
            partial.rename(target)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_rmtree, partial)
            raise

    async def delete_image_volume(self, pool: PoolRecord, fingerprint: str) -> None:
        for path in (self._source(pool) / "images").glob(f"{fingerprint}.*"):
            users = path / "users"
            if users.is_dir() and any(users.iterdir()):
                (path / DELETED).touch()  # removed with its last instance
            else:
                await trio.to_thread.run_sync(_rmtree, path)

    # ------------------------------------------------------------------ volumes
    async def create_volume(self, pool: PoolRecord, volume: Volume) -> None:
        path = self._volume_dir(pool, volume)
        if path.exists():
            raise InvalidArgument(f"Volume {volume.name!r} exists on pool {pool.name!r}")
        (path / "rootfs").mkdir(parents=True, mode=0o711)

    async def create_volume_from_image(
        self, pool: PoolRecord, volume: Volume, image: ImageSource
    ) -> None:
        path = self._volume_dir(pool, volume)
        image_dir = self._image_dir(pool, image)
        lower = image_dir / "rootfs"
        await trio.to_thread.run_sync(_rmtree, path)
        path.mkdir(parents=True, mode=0o711)
        if is_true(pool.config.get("overlay")):
            st = os.stat(lower)
            for sub in ("upper", "work"):  # owned like the image's root: the container's root
                (path / sub).mkdir(mode=0o755)
                os.chown(path / sub, st.st_uid, st.st_gid)
            os.chmod(path / "upper", st.st_mode & 0o7777)
            (path / "lower").write_text(f"{lower}\n")
            (image_dir / "users" / volume.storage_name).touch()
            return
        await run(["cp", "-a", "--reflink=auto", lower, path / "rootfs"], timeout=3600)

    def _lower(self, path: Path) -> Path | None:
        try:
            return Path((path / "lower").read_text().strip())
        except OSError:
            return None

    async def delete_volume(self, pool: PoolRecord, volume: Volume) -> None:
        path = self._volume_dir(pool, volume)
        lower = await trio.to_thread.run_sync(self._lower, path)
        await trio.to_thread.run_sync(_rmtree, self._snapshot_dir(pool, volume))
        await trio.to_thread.run_sync(_rmtree, path)
        if lower is None:
            return
        image_dir = lower.parent
        (image_dir / "users" / volume.storage_name).unlink(missing_ok=True)
        users = image_dir / "users"
        if (image_dir / DELETED).exists() and not any(users.iterdir()):
            await trio.to_thread.run_sync(_rmtree, image_dir)

    async def mount_volume(self, pool: PoolRecord, volume: Volume) -> MountedVolume:
        path = self._volume_dir(pool, volume)
        lower = await trio.to_thread.run_sync(self._lower, path)
        if lower is not None:
            return MountedVolume(path / "upper", lower=lower)
        if not (path / "rootfs").is_dir():
            raise NotFound(f"Volume {volume.name!r} not found on pool {pool.name!r}")
        return MountedVolume(path / "rootfs")

    async def unmount_volume(self, pool: PoolRecord, volume: Volume) -> None:
        return None  # directories need no mounting; overlays are the hypervisor's

    def _content(self, path: Path) -> Path:
        return path / ("upper" if (path / "lower").exists() else "rootfs")

    def _check_free(self, pool: PoolRecord, volume: Volume) -> None:
        """``volume`` is no volume on ``pool``, nor are snapshots of that name left."""
        if self._volume_dir(pool, volume).exists() or \
                self._snapshot_dir(pool, volume).exists():
            raise InvalidArgument(f"Volume {volume.name!r} exists on pool {pool.name!r}")

    async def rename_volume(self, pool: PoolRecord, volume: Volume, new_name: str) -> None:
        new = Volume(new_name, volume.type, volume.content, volume.project, volume.config)
        src, dst = self._volume_dir(pool, volume), self._volume_dir(pool, new)
        if not src.is_dir():
            raise NotFound(f"Volume {volume.name!r} not found on pool {pool.name!r}")
        self._check_free(pool, new)
        lower = await trio.to_thread.run_sync(self._lower, src)
        snaps, new_snaps = self._snapshot_dir(pool, volume), self._snapshot_dir(pool, new)
        if lower is not None:  # the image's index of its users: the new name first
            (lower.parent / "users" / new.storage_name).touch()
        try:
            src.rename(dst)
            try:
                if snaps.exists():
                    snaps.rename(new_snaps)
            except BaseException:
                dst.rename(src)
                raise
        except BaseException:
            if lower is not None:
                (lower.parent / "users" / new.storage_name).unlink(missing_ok=True)
            raise
        if lower is not None:
            (lower.parent / "users" / volume.storage_name).unlink(missing_ok=True)

    async def copy_volume(self, pool: PoolRecord, source: Volume, target_pool: PoolRecord,
                          target: Volume, *, snapshots: Sequence[str] = (),
                          from_snapshot: str | None = None) -> None:
        """``cp -a --reflink=auto`` of the volume's directory (an overlay volume keeps
        resting on the image: same ``lower``, one more user) and of each snapshot named;
        from a snapshot: a fresh volume whose content is a copy of it."""
        src, dst = self._volume_dir(pool, source), self._volume_dir(target_pool, target)
        src_snaps = self._snapshot_dir(pool, source)
        dst_snaps = self._snapshot_dir(target_pool, target)
        if not src.is_dir():
            raise NotFound(f"Volume {source.name!r} not found on pool {pool.name!r}")
        for name in (*snapshots, *([from_snapshot] if from_snapshot else [])):
            if not (src_snaps / name).is_dir():
                raise NotFound(f"Snapshot {name!r} of {source.name!r} not found")
        self._check_free(target_pool, target)
        lower = await trio.to_thread.run_sync(self._lower, src)
        image_copy: Path | None = None
        try:
            if lower is not None:  # another pool's copy rests on an image of its own
                lower, image_copy = await self._image_on(target_pool, lower)
            if from_snapshot is None:
                await run(["cp", "-a", "--reflink=auto", src, dst], timeout=3600)
            else:
                dst.mkdir(mode=0o711)
                if lower is not None:
                    (dst / "work").mkdir(mode=0o755)
                    st = os.stat(src / "work")
                    os.chown(dst / "work", st.st_uid, st.st_gid)
                await run(["cp", "-a", "--reflink=auto", src_snaps / from_snapshot,
                           dst / ("upper" if lower is not None else "rootfs")],
                          timeout=3600)
            if lower is not None:
                (dst / "lower").write_text(f"{lower}\n")
                (lower.parent / "users" / target.storage_name).touch()
            if snapshots:
                dst_snaps.mkdir(parents=True, mode=0o711)
            for name in snapshots:  # cp -a keeps each one's mtime: the order
                await run(["cp", "-a", "--reflink=auto", src_snaps / name,
                           dst_snaps / name], timeout=3600)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_rmtree, dst_snaps)
                await trio.to_thread.run_sync(_rmtree, dst)
                if lower is not None:
                    (lower.parent / "users" / target.storage_name).unlink(missing_ok=True)
                if image_copy is not None:
                    await trio.to_thread.run_sync(_rmtree, image_copy)
            raise

    async def _image_on(self, pool: PoolRecord, lower: Path) -> tuple[Path, Path | None]:
        """The image rootfs ``lower`` on ``pool``: itself, the same variant already on
        ``pool``, or a copy of it made now (and returned second) that is marked deleted,
        so it goes with its last user unless the core ensures that image there."""
        image_dir = self._source(pool) / "images" / lower.parent.name
        if (image_dir / "rootfs").is_dir():
            return image_dir / "rootfs", None
        partial = image_dir.with_name(image_dir.name + ".partial")
        await trio.to_thread.run_sync(_rmtree, partial)
        try:
            partial.mkdir(mode=0o711)
            await run(["cp", "-a", "--reflink=auto", lower, partial / "rootfs"],
                      timeout=3600)
            (partial / "users").mkdir()
            (partial / DELETED).touch()
            partial.rename(image_dir)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_rmtree, partial)
            raise
        return image_dir / "rootfs", image_dir

    async def usage(self, pool: PoolRecord, volume: Volume) -> VolumeUsage:
        path = self._content(self._volume_dir(pool, volume))
        outcome = await run(["du", "-s", "-B1", "-x", path], timeout=600)
        return VolumeUsage(int(outcome.stdout.split()[0]))

    # ------------------------------------------------------------------ snapshots
    async def create_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        snap = self._snapshot_dir(pool, volume) / name
        if snap.exists():
            raise InvalidArgument(f"Snapshot {name!r} of {volume.name!r} exists")
        snap.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        await run(["cp", "-a", "--reflink=auto",
                   self._content(self._volume_dir(pool, volume)), snap], timeout=3600)
        # cp -a kept the content's mtime; the snapshot's own is its creation time, which
        # orders list_snapshots (and survives renames and copies)
        os.utime(snap, ns=(os.stat(snap).st_atime_ns, time.time_ns()))

    async def delete_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        await trio.to_thread.run_sync(_rmtree, self._snapshot_dir(pool, volume) / name)

    async def restore_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        snap = self._snapshot_dir(pool, volume) / name
        if not snap.is_dir():
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        content = self._content(self._volume_dir(pool, volume))
        staging = content.with_name(content.name + ".restoring")
        await trio.to_thread.run_sync(_rmtree, staging)
        await run(["cp", "-a", "--reflink=auto", snap, staging], timeout=3600)
        old = content.with_name(content.name + ".old")
        content.rename(old)
        staging.rename(content)
        await trio.to_thread.run_sync(_rmtree, old)

    async def list_snapshots(self, pool: PoolRecord, volume: Volume) -> list[str]:
        base = self._snapshot_dir(pool, volume)
        if not base.is_dir():
            return []
        return [p.name for p in sorted(base.iterdir(),
                                       key=lambda p: (p.stat().st_mtime_ns, p.name))]

    async def rename_snapshot(self, pool: PoolRecord, volume: Volume, name: str,
                              new_name: str) -> None:
        base = self._snapshot_dir(pool, volume)
        if not (base / name).is_dir():
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        if (base / new_name).exists():
            raise InvalidArgument(f"Snapshot {new_name!r} of {volume.name!r} exists")
        (base / name).rename(base / new_name)

    async def mount_snapshot(self, pool: PoolRecord, volume: Volume, name: str
                             ) -> MountedVolume:
        """The snapshot's directory (not enforced read-only: nothing mounts it); on an
        overlay volume it holds the upper layer, over the volume's ``lower``."""
        snap = self._snapshot_dir(pool, volume) / name
        if not snap.is_dir():
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        lower = await trio.to_thread.run_sync(self._lower, self._volume_dir(pool, volume))
        return MountedVolume(snap, lower=lower)

    async def unmount_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        return None


@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_storage(DirDriver)
