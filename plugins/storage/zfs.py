"""The ``zfs`` storage driver: one dataset per volume, image volumes cloned per instance.

A pool is a zpool named ``zfs.pool_name`` (default: the pool's name): an existing zpool
(``source=NAME``, used as it is), a block device (``source=/dev/...``) or a loop file the
driver makes (``size=``, the default: ``$LXCTL_DIR/disks/NAME.img``). File vdevs are
reached through a symlink in ``$LXCTL_DIR/disks/zfs-NAME/`` so that the pool can be
imported again with ``zpool import -d`` of that directory alone.

Datasets, as in Incus: ``POOL/containers/<name>``, ``POOL/custom/<name>``,
``POOL/images/<fingerprint>.<idmap tag>`` (with a read-only ``@readonly`` snapshot that
instance volumes are cloned from: disk use stays flat) and ``POOL/deleted/...`` for
image volumes that clones still rest on. Each dataset holds a ``rootfs`` directory.
Snapshots are ``DATASET@name``; restore is ``zfs rollback`` of the latest only (Incus's
rule). ``size`` is a ``refquota``. Copies between pools are ``zfs send | zfs receive``.

Kernel ZFS (``/dev/zfs``) is used where present; otherwise the driver starts or reuses
the machine's single zfs-fuse daemon (detached, through ``spawn_service``) and waits for
its socket. A daemon that dies under a pool makes the operation fail with
``Unavailable`` naming it; the next operation starts it again and re-imports the pool.

Files are shifted into the container's id map when an image volume is made (one image
dataset per id map, as btrfs does): an idmapped mount of a FUSE filesystem needs the
FUSE server to opt in (FUSE_ALLOW_IDMAP, kernel 6.12), which zfs-fuse 0.7.0 predates.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Sequence
from functools import partial
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
    Outcome,
    PoolRecord,
    Scope,
    StorageInfo,
    Unavailable,
    Volume,
    VolumeType,
    VolumeUsage,
    impl,
    parse_size,
    run,
    shift_tree,
    spawn_service,
)

_limiter = trio.CapacityLimiter(2)
_DIRS = {VolumeType.CONTAINER: "containers", VolumeType.CUSTOM: "custom"}
_TOP = ("containers", "custom", "images", "deleted")
DEFAULT_SIZE = "5GiB"
MIN_SIZE = 64 * 2**20  # zpool create refuses smaller vdevs
SHARED = "storage"
SOCKET = Path("/var/run/zfs/zfs_socket")  # zfs-fuse's fixed control socket
ZFS_FUSE = "/usr/sbin/zfs-fuse"
READONLY = "readonly"
TEMPORARY = "lxctl:copy-"  # the prefix of a copy's own snapshots: no user snapshot name has ":"
SNAPSHOT_MOUNT = "snapshot-mount."  # a clone of DATASET@NAME: DATASET/snapshot-mount.NAME
SNAPSHOT_MOUNTS = "snapshot-mounts"  # under the pool's root: where those clones mount


def _check_size(value: str) -> None:
    if parse_size(value) < MIN_SIZE:
        raise ValueError("must be at least 64MiB")


def kernel_zfs() -> bool:
    return os.path.exists("/dev/zfs")


def fuse_alive() -> bool:
    """The zfs-fuse daemon answers on its socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(SOCKET))
        except OSError:
            return False
    return True


def _stale_mounts(root: Path) -> list[str]:
    """FUSE mounts under ``root`` (deepest first): left dead when zfs-fuse died."""
    prefix = str(root).rstrip("/") + "/"
    out: list[str] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mnt = fields[4]
            if (mnt + "/").startswith(prefix) and "fuse" in fields[fields.index("-") + 1]:
                out.append(mnt)
    return sorted(out, key=len, reverse=True)


def _send(snapshot: str, base: str | None = None) -> list[str]:
    """A full stream of ``snapshot``, or with ``base`` (an earlier snapshot of the same
    dataset) an incremental one (``zfs send -i``), to stdout."""
    return ["zfs", "send", *(["-i", base] if base is not None else []), snapshot]


def _receive(dataset: str, *, force: bool = False) -> list[str]:
    """From stdin. ``force``: ``zfs receive -F`` (rolls the target back to its latest
    snapshot first), for the incremental streams of a copy onto the dataset it has just
    made."""
    return ["zfs", "receive", *(["-F"] if force else []), dataset]


class ZfsDriver:
    info: ClassVar[StorageInfo] = StorageInfo(
        named_sources=True,
        name="zfs",
        volume_types=frozenset({VolumeType.CONTAINER, VolumeType.CUSTOM, VolumeType.IMAGE}),
        content_types=frozenset({ContentType.FILESYSTEM}),  # zfs-fuse has no zvols
        optimized_images=True,
        clones=True,  # an instance volume is a clone of the image's @readonly snapshot
        snapshots=True,
        quotas=True,  # refquota
        send_receive=True,
        pool_keys=(
            ConfigKey("source", Scope.POOL, owner=SHARED,
                      doc="Existing zpool, block device or loop file of the pool "
                      "(default: a loop file in $LXCTL_DIR/disks)"),
            ConfigKey("size", Scope.POOL, KeyType.SIZE, owner=SHARED, validate=_check_size,
                      doc=f"Size of the loop file the driver creates (default {DEFAULT_SIZE})"),
            ConfigKey("zfs.pool_name", Scope.POOL,
                      doc="Name of the zpool (default: the pool's name)"),
        ),
        volume_keys=(
            ConfigKey("size", Scope.VOLUME, KeyType.SIZE, owner=SHARED,
                      doc="Quota of the volume (a zfs refquota)"),
        ),
    )

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self._seen_alive = False
        self._verified: dict[str, int] = {}  # pool -> socket inode it was imported under
        self._lock = trio.Lock()

    @classmethod
    def probe(cls) -> str | None:
        import shutil
        if shutil.which("zfs") is None or shutil.which("zpool") is None:
            return "the ZFS tools (zfs, zpool) are not installed"
        if not kernel_zfs() and not os.path.exists(ZFS_FUSE):
            return "neither kernel ZFS (/dev/zfs) nor zfs-fuse is available"
        if not kernel_zfs() and not os.path.exists("/dev/fuse"):
            return "zfs-fuse needs /dev/fuse"
        return None

    # ------------------------------------------------------------------ daemon
    async def _daemon(self) -> None:
        """Kernel ZFS, or a zfs-fuse daemon answering: reused, or started and waited for.
        One that died since it was last seen fails this call; the next starts it."""
        if kernel_zfs() or fuse_alive():
            self._seen_alive = True
            return
        if self._seen_alive:
            self._seen_alive = False
            self._verified.clear()
            raise Unavailable("The zfs-fuse daemon died (its socket "
                              f"{SOCKET} does not answer); it is restarted on the next "
                              "storage operation")
        log = self.ctx.state_dir / "zfs-fuse.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        await spawn_service([ZFS_FUSE, "--no-daemon", "--no-kstat-mount"], log_file=log)
        with trio.move_on_after(15):
            while not fuse_alive():
                await trio.sleep(0.05)
        if not fuse_alive():
            raise Unavailable(f"zfs-fuse did not open {SOCKET} within 15 s (see {log})")
        self._seen_alive = True
        self._verified.clear()

    async def _zfs(self, *args: str | Path, check: bool = True,
                   timeout: float = 120) -> Outcome:
        """``zfs``/``zpool`` (first argument) through the one helper; a failure with the
        daemon gone is reported as the daemon's death."""
        outcome = await run(list(args), check=False, timeout=timeout)
        if not outcome.ok and not kernel_zfs() and not fuse_alive():
            self._seen_alive = False
            self._verified.clear()
            raise Unavailable(f"The zfs-fuse daemon died during {args[0]} {args[1]}; it is "
                              "restarted on the next storage operation")
        if check and not outcome.ok:
            await run(list(args), timeout=timeout)  # raises DriverError with its output
        return outcome

    async def _destroy(self, dataset: str, *flags: str) -> None:
        """``zfs destroy``, retried while zfs-fuse says "busy" just after a create."""
        for _ in range(30):
            outcome = await self._zfs("zfs", "destroy", *flags, dataset, check=False)
            if outcome.ok or b"does not exist" in outcome.stderr \
                    or b"could not find" in outcome.stderr:
                return
            if b"busy" not in outcome.stderr:
                break
            await trio.sleep(0.1)
        await self._zfs("zfs", "destroy", *flags, dataset)

    async def _rename(self, dataset: str, new: str) -> None:
        """``zfs rename`` of an unmounted dataset (zfs-fuse refuses a mounted one),
        retried while zfs-fuse still says "busy" just after the unmount."""
        await self._zfs("zfs", "unmount", dataset, check=False)
        for _ in range(30):
            outcome = await self._zfs("zfs", "rename", dataset, new, check=False)
            if outcome.ok or b"busy" not in outcome.stderr:
                break
            await trio.sleep(0.1)
            await self._zfs("zfs", "unmount", dataset, check=False)
        if not outcome.ok:
            await self._zfs("zfs", "rename", dataset, new)

    async def _exists(self, name: str) -> bool:
        return (await self._zfs("zfs", "list", "-H", "-o", "name", name, check=False)).ok

    async def _ready(self, pool: PoolRecord) -> None:
        async with self._lock:
            await self._daemon()
            inode = 0 if kernel_zfs() else os.stat(SOCKET).st_ino
            if self._verified.get(pool.name) != inode:
                await self._import(pool)
                self._verified[pool.name] = inode

    # ------------------------------------------------------------------ names
    def _zpool(self, pool: PoolRecord) -> str:
        return pool.config.get("zfs.pool_name") or pool.name

    def _root(self, pool: PoolRecord) -> Path:
        return self.ctx.state_dir / "storage-pools" / pool.name

    def _vdev_dir(self, pool: PoolRecord) -> Path:
        return self.ctx.state_dir / "disks" / f"zfs-{pool.name}"

    def _dataset(self, pool: PoolRecord, volume: Volume) -> str:
        if volume.type not in _DIRS:
            raise InvalidArgument(f"zfs pools hold no {volume.type} volumes")
        return f"{self._zpool(pool)}/{_DIRS[volume.type]}/{volume.storage_name}"

    def _path(self, pool: PoolRecord, volume: Volume) -> Path:
        return self._root(pool) / _DIRS[volume.type] / volume.storage_name

    def _image(self, pool: PoolRecord, image: ImageSource) -> str:
        return f"{self._zpool(pool)}/images/{image.variant}"

    # ------------------------------------------------------------------ pools
    async def create_pool(self, pool: PoolRecord) -> dict[str, str]:
        source = pool.config.get("source", "")
        zpool = self._zpool(pool)
        created_file: Path | None = None
        await self._daemon()
        if source and not source.startswith("/"):
            kind = "existing"
            zpool = pool.config.get("zfs.pool_name") or source
            if zpool != source:
                raise InvalidArgument(f"zfs.pool_name {zpool!r} differs from source "
                                      f"{source!r}", key="zfs.pool_name")
            if not (await self._zfs("zpool", "list", "-H", "-o", "name", zpool,
                                    check=False)).ok:
                raise InvalidArgument(f"source {source!r} is no imported zpool",
                                      source=source)
            for top in _TOP:
                if await self._exists(f"{zpool}/{top}"):
                    raise InvalidArgument(f"zpool {zpool!r} holds {top}/ already "
                                          "(used by another pool?)", source=source)
        else:
            if (await self._zfs("zpool", "list", "-H", "-o", "name", zpool,
                                check=False)).ok:
                raise InvalidArgument(f"A zpool named {zpool!r} exists already",
                                      key="zfs.pool_name")
            if not source or (not Path(source).exists() and not source.startswith("/dev/")):
                kind = "loop"
                image = Path(source) if source else \
                    self.ctx.state_dir / "disks" / f"{pool.name}.img"
                size = parse_size(pool.config.get("size", DEFAULT_SIZE))
                if size < MIN_SIZE:
                    raise InvalidArgument("size must be at least 64MiB", key="size")
                if not source:
                    image.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                if not image.parent.is_dir():
                    raise InvalidArgument(f"directory {image.parent} does not exist",
                                          source=str(image))
                fd = os.open(image, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                created_file = image
                try:
                    os.ftruncate(fd, size)
                finally:
                    os.close(fd)
                source = str(image)
            else:
                try:
                    st = Path(source).stat()
                except FileNotFoundError:
                    raise InvalidArgument(f"source {source} does not exist",
                                          source=source) from None
                if stat.S_ISBLK(st.st_mode):
                    kind = "device"
                elif stat.S_ISREG(st.st_mode):
                    kind = "loop"
                else:
                    raise InvalidArgument(f"source {source} is not a block device, a file "
                                          "or a zpool name", source=source)
        config = {"source": source, "zfs.pool_name": zpool, "volatile.kind": kind}
        if kind == "loop":
            config["size"] = pool.config.get("size", DEFAULT_SIZE)
        rec = PoolRecord(pool.name, pool.driver, {**pool.config, **config})
        root = self._root(rec)
        made_pool = False
        try:
            if kind != "existing":
                vdev: str | Path = source
                if kind == "loop":
                    vdir = self._vdev_dir(rec)
                    vdir.mkdir(parents=True, exist_ok=True, mode=0o700)
                    vdev = vdir / "vdev"
                    vdev.unlink(missing_ok=True)
                    vdev.symlink_to(Path(source).resolve())
                await self._zfs("zpool", "create", "-f", "-m", "none", zpool, vdev)
                made_pool = True
            root.mkdir(parents=True, exist_ok=True, mode=0o711)
            for top in _TOP:
                await self._zfs("zfs", "create", "-o", f"mountpoint={root / top}",
                                f"{zpool}/{top}")
            await self._zfs("zfs", "set", "canmount=off", f"{zpool}/deleted")
        except BaseException:
            with trio.CancelScope(shield=True):
                if made_pool:
                    await self._zfs("zpool", "destroy", "-f", zpool, check=False)
                elif kind == "existing":
                    for top in _TOP:
                        await self._destroy(f"{zpool}/{top}", "-r")
                if created_file is not None:
                    created_file.unlink(missing_ok=True)
                self._cleanup_dirs(rec)
            raise
        self._verified[pool.name] = 0 if kernel_zfs() else os.stat(SOCKET).st_ino
        return config

    def _cleanup_dirs(self, pool: PoolRecord) -> None:
        vdir = self._vdev_dir(pool)
        (vdir / "vdev").unlink(missing_ok=True)
        mounts = self._root(pool) / SNAPSHOT_MOUNTS  # mount points of snapshots left shown
        for parent, dirs, _ in os.walk(mounts, topdown=False):
            for d in dirs:
                try:
                    os.rmdir(os.path.join(parent, d))
                except OSError:
                    pass
        for path in (vdir, mounts, *(self._root(pool) / t for t in _TOP), self._root(pool)):
            try:
                path.rmdir()
            except OSError:
                pass

    async def _import(self, pool: PoolRecord) -> None:
        zpool, kind = self._zpool(pool), pool.config.get("volatile.kind", "loop")
        listed = await self._zfs("zpool", "list", "-H", "-o", "name", zpool, check=False)
        if not listed.ok:
            source = pool.config.get("source", "")
            if kind == "existing":
                raise Unavailable(f"zpool {zpool!r} of pool {pool.name!r} is not imported",
                                  pool=pool.name)
            if not os.path.exists(source):
                raise Unavailable(f"Source {source} of pool {pool.name!r} is missing",
                                  pool=pool.name)
            argv: list[str | Path] = ["zpool", "import"]
            if kind == "loop":
                vdir = self._vdev_dir(pool)
                vdir.mkdir(parents=True, exist_ok=True, mode=0o700)
                if not (vdir / "vdev").is_symlink():
                    (vdir / "vdev").symlink_to(Path(source).resolve())
                argv += ["-d", vdir]
            outcome = await self._zfs(*argv, zpool, check=False)
            if not outcome.ok:
                raise Unavailable(f"Cannot import zpool {zpool!r} of pool {pool.name!r}: "
                                  f"{outcome.tail()}", pool=pool.name)
        for mnt in _stale_mounts(self._root(pool)):
            await run(["umount", "-l", mnt], check=False)
        # zfs-fuse imports from its cache at start but mounts nothing (``zfs mount -a``)
        datasets = await self._zfs("zfs", "list", "-H", "-r", "-o", "name,canmount,mounted",
                                   zpool)
        for line in datasets.stdout.decode().splitlines():
            name, canmount, mounted = line.split("\t")
            if canmount == "on" and mounted == "no" and "/" in name:
                await self._zfs("zfs", "mount", name, check=False)

    async def mount_pool(self, pool: PoolRecord) -> None:
        self._verified.pop(pool.name, None)
        await self._ready(pool)

    async def unmount_pool(self, pool: PoolRecord) -> None:
        self._verified.pop(pool.name, None)
        if pool.config.get("volatile.kind") == "existing":
            return
        await self._daemon()
        zpool = self._zpool(pool)
        if (await self._zfs("zpool", "list", "-H", "-o", "name", zpool, check=False)).ok:
            await self._zfs("zpool", "export", zpool)

    async def delete_pool(self, pool: PoolRecord) -> None:
        self._verified.pop(pool.name, None)
        zpool, kind = self._zpool(pool), pool.config.get("volatile.kind", "loop")
        await self._daemon()
        if kind == "existing":
            for top in _TOP:
                await self._destroy(f"{zpool}/{top}", "-r")
        else:
            listed = await self._zfs("zpool", "list", "-H", "-o", "name", zpool, check=False)
            if not listed.ok:
                try:
                    await self._import(pool)
                except Unavailable:
                    pass
            if (await self._zfs("zpool", "list", "-H", "-o", "name", zpool,
                                check=False)).ok:
                for _ in range(30):
                    outcome = await self._zfs("zpool", "destroy", "-f", zpool, check=False)
                    if outcome.ok:
                        break
                    await trio.sleep(0.1)
                else:
                    await self._zfs("zpool", "destroy", "-f", zpool)
            source = Path(pool.config.get("source", ""))
            if kind == "loop" and source.is_file():
                source.unlink()
            elif kind == "device":
                await run(["wipefs", "-a", "-q", source], check=False, timeout=60)
        self._cleanup_dirs(pool)

    # ------------------------------------------------------------------ images
    async def ensure_image_volume(self, pool: PoolRecord, image: ImageSource) -> None:
        await self._ready(pool)
        dataset = self._image(pool, image)
        if await self._exists(f"{dataset}@{READONLY}"):
            return
        await self._destroy(dataset, "-r")
        await self._zfs("zfs", "create", dataset)
        try:
            path = self._root(pool) / "images" / image.variant
            await run(["tar", "-xf", image.tarball, "-C", path, "--numeric-owner",
                       "--xattrs", "--xattrs-include=*", "rootfs"], timeout=600)
            if image.idmap is not None:
                await trio.to_thread.run_sync(
                    shift_tree, path / "rootfs", image.idmap.uid_base,
                    image.idmap.gid_base, limiter=_limiter)
            await self._zfs("zfs", "snapshot", f"{dataset}@{READONLY}")
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._destroy(dataset, "-r")
            raise

    async def delete_image_volume(self, pool: PoolRecord, fingerprint: str) -> None:
        await self._ready(pool)
        zpool = self._zpool(pool)
        listed = await self._zfs("zfs", "list", "-H", "-r", "-o", "name", f"{zpool}/images")
        for name in listed.stdout.decode().split():
            if not name.startswith(f"{zpool}/images/{fingerprint}."):
                continue
            if await self._clones(zpool, f"{name}@{READONLY}"):
                # instances rest on it: kept out of sight until they go (Incus: deleted/)
                gone = f"{zpool}/deleted/{name.rsplit('/', 1)[1]}-{os.urandom(4).hex()}"
                await self._rename(name, gone)
                await self._zfs("zfs", "set", "canmount=off", gone)
            else:
                await self._destroy(name, "-r")

    # ------------------------------------------------------------------ volumes
    async def create_volume(self, pool: PoolRecord, volume: Volume) -> None:
        await self._ready(pool)
        dataset = self._dataset(pool, volume)
        if await self._exists(dataset):
            raise InvalidArgument(f"Volume {volume.name!r} exists on pool {pool.name!r}")
        await self._zfs("zfs", "create", dataset)
        try:
            (self._path(pool, volume) / "rootfs").mkdir(mode=0o711)
            await self._apply_size(pool, volume)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._destroy(dataset, "-r")
            raise

    async def create_volume_from_image(
        self, pool: PoolRecord, volume: Volume, image: ImageSource
    ) -> None:
        await self._ready(pool)
        dataset = self._dataset(pool, volume)
        await self._destroy(dataset, "-r")
        await self._zfs("zfs", "clone", f"{self._image(pool, image)}@{READONLY}", dataset)
        try:
            await self._apply_size(pool, volume)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._destroy(dataset, "-r")
            raise

    async def _apply_size(self, pool: PoolRecord, volume: Volume) -> None:
        size = volume.config.get("size")
        if size:
            await self.set_quota(pool, volume, parse_size(size))

    async def delete_volume(self, pool: PoolRecord, volume: Volume) -> None:
        await self._ready(pool)
        dataset = self._dataset(pool, volume)
        origin = await self._zfs("zfs", "get", "-H", "-o", "value", "origin", dataset,
                                 check=False)
        await self._destroy(dataset, "-r")
        image = origin.stdout.decode().strip().partition("@")[0] if origin.ok else ""
        if image.startswith(f"{self._zpool(pool)}/deleted/"):
            await self._destroy_unused(pool, image)

    async def _destroy_unused(self, pool: PoolRecord, image: str) -> None:
        """A deleted image kept for its clones goes with the last of them."""
        if not await self._clones(self._zpool(pool), f"{image}@{READONLY}"):
            await self._destroy(image, "-r")

    async def _clones(self, zpool: str, snapshot: str) -> list[str]:
        """The datasets cloned from ``snapshot``, by their ``origin`` (zfs-fuse 0.7 has
        no ``clones`` property)."""
        listed = await self._zfs("zfs", "list", "-H", "-r", "-t", "filesystem", "-o",
                                 "name,origin", zpool)
        rows = (line.split("\t") for line in listed.stdout.decode().splitlines())
        return [row[0] for row in rows if len(row) == 2 and row[1] == snapshot]

    async def mount_volume(self, pool: PoolRecord, volume: Volume) -> MountedVolume:
        await self._ready(pool)
        path = self._path(pool, volume) / "rootfs"
        if not await self._exists(self._dataset(pool, volume)) or not path.is_dir():
            raise NotFound(f"Volume {volume.name!r} not found on pool {pool.name!r}")
        return MountedVolume(path)

    async def unmount_volume(self, pool: PoolRecord, volume: Volume) -> None:
        return None  # datasets stay mounted while the pool is imported

    async def rename_volume(self, pool: PoolRecord, volume: Volume, new_name: str) -> None:
        await self._ready(pool)
        new = Volume(new_name, volume.type, volume.content, volume.project, volume.config)
        src, dst = self._dataset(pool, volume), self._dataset(pool, new)
        if not await self._exists(src):
            raise NotFound(f"Volume {volume.name!r} not found on pool {pool.name!r}")
        if await self._exists(dst):
            raise InvalidArgument(f"Volume {new_name!r} exists on pool {pool.name!r}")
        try:  # the snapshots go with the dataset
            await self._rename(src, dst)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._zfs("zfs", "mount", src, check=False)
            raise
        await self._zfs("zfs", "mount", dst, check=False)

    async def copy_volume(self, pool: PoolRecord, source: Volume, target_pool: PoolRecord,
                          target: Volume, *, snapshots: Sequence[str] = (),
                          from_snapshot: str | None = None) -> None:
        """``zfs send | zfs receive``, within a pool too (a clone would tie the copy to
        its source's snapshot): the first snapshot in full, each next one incremental
        on the one before (``-i``: only those asked for, where ``-I`` would bring the
        ones between), then the volume (a temporary snapshot of it) on the last; from a
        snapshot, that one alone. The target's temporary snapshot is destroyed."""
        await self._ready(pool)
        await self._ready(target_pool)
        src, dst = self._dataset(pool, source), self._dataset(target_pool, target)
        if not await self._exists(src):
            raise NotFound(f"Volume {source.name!r} not found on pool {pool.name!r}")
        existing = await self.list_snapshots(pool, source)
        for name in (*snapshots, *([from_snapshot] if from_snapshot else [])):
            if name not in existing:
                raise NotFound(f"Snapshot {name!r} of {source.name!r} not found")
        if await self._exists(dst):
            raise InvalidArgument(f"Volume {target.name!r} exists on pool {target_pool.name!r}")
        stamp = from_snapshot or f"{TEMPORARY}{os.urandom(4).hex()}"
        chain = [f"{src}@{n}" for n in existing if n in snapshots] + [f"{src}@{stamp}"]
        try:
            if from_snapshot is None:  # in the try: a cancelled zfs may have made it
                await self._zfs("zfs", "snapshot", f"{src}@{stamp}")
            base: str | None = None
            for snap in chain:
                await self._stream(snap, dst, base)
                base = snap
            await self._destroy(f"{dst}@{stamp}")
            await self._zfs("zfs", "mount", dst, check=False)
            await self._apply_size(target_pool, target)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._destroy(dst, "-r")
            raise
        finally:
            if from_snapshot is None:
                with trio.CancelScope(shield=True):
                    await self._destroy(f"{src}@{stamp}")

    async def _stream(self, snapshot: str, dataset: str, base: str | None) -> None:
        """``zfs send [-i base] snapshot | zfs receive dataset``, through a pipe."""
        read, write = os.pipe()  # each end is owned (and closed) by the run() it goes to
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(run, _receive(dataset, force=base is not None),
                                       timeout=3600, stdin_fd=read))
            await run(_send(snapshot, base), timeout=3600, stdout_fd=write)

    async def usage(self, pool: PoolRecord, volume: Volume) -> VolumeUsage:
        await self._ready(pool)
        outcome = await self._zfs("zfs", "get", "-Hp", "-o", "value", "used,refquota",
                                  self._dataset(pool, volume))
        used, quota = [*outcome.stdout.decode().split(), "0", "0"][:2]
        total = int(quota) if quota.isdigit() and int(quota) > 0 else None
        return VolumeUsage(int(used) if used.isdigit() else 0, total)

    # ------------------------------------------------------------------ quotas
    async def set_quota(self, pool: PoolRecord, volume: Volume, size: int) -> None:
        await self._zfs("zfs", "set", f"refquota={size if size else 'none'}",
                        self._dataset(pool, volume))

    # ------------------------------------------------------------------ snapshots
    async def create_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        await self._ready(pool)
        snap = f"{self._dataset(pool, volume)}@{name}"
        if await self._exists(snap):
            raise InvalidArgument(f"Snapshot {name!r} of {volume.name!r} exists")
        await self._zfs("zfs", "snapshot", snap)

    async def delete_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        await self._ready(pool)
        await self._destroy(f"{self._dataset(pool, volume)}@{name}")

    async def restore_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        names = await self.list_snapshots(pool, volume)
        if name not in names:
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        later = names[names.index(name) + 1:]
        if later:
            raise InvalidArgument(
                f"Snapshot {name!r} of {volume.name!r} is not the latest: zfs can only roll "
                f"back to the latest; delete {', '.join(later)} first")
        await self._zfs("zfs", "rollback", f"{self._dataset(pool, volume)}@{name}")

    async def list_snapshots(self, pool: PoolRecord, volume: Volume) -> list[str]:
        await self._ready(pool)
        dataset = self._dataset(pool, volume)
        outcome = await self._zfs("zfs", "list", "-H", "-r", "-t", "snapshot", "-o", "name",
                                  "-s", "creation", dataset, check=False)
        prefix = dataset + "@"
        return [n[len(prefix):] for n in outcome.stdout.decode().split()
                if n.startswith(prefix) and not n[len(prefix):].startswith(TEMPORARY)]

    # ------------------------------------------------------------------ send / receive
    async def send_volume(self, pool: PoolRecord, volume: Volume,
                          out: trio.abc.SendStream) -> None:
        await self._ready(pool)
        src = self._dataset(pool, volume)
        stamp = f"{TEMPORARY}{os.urandom(4).hex()}"
        try:
            await self._zfs("zfs", "snapshot", f"{src}@{stamp}")
            read, write = os.pipe()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(run, _send(f"{src}@{stamp}"), timeout=3600,
                                           stdout_fd=write))
                async with trio.lowlevel.FdStream(read) as stream:
                    while chunk := await stream.receive_some(1 << 20):
                        await out.send_all(chunk)
        finally:
            with trio.CancelScope(shield=True):
                await self._destroy(f"{src}@{stamp}")

    async def receive_volume(self, pool: PoolRecord, volume: Volume,
                             source: trio.abc.ReceiveStream) -> None:
        await self._ready(pool)
        dst = self._dataset(pool, volume)
        read, write = os.pipe()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(run, _receive(dst), timeout=3600, stdin_fd=read))
            async with trio.lowlevel.FdStream(write) as stream:
                while chunk := await source.receive_some(1 << 20):
                    await stream.send_all(chunk)
        listed = await self._zfs("zfs", "list", "-H", "-r", "-t", "snapshot", "-o", "name",
                                 dst, check=False)
        for name in listed.stdout.decode().split():
            if name.startswith(f"{dst}@{TEMPORARY}"):
                await self._destroy(name)
        await self._zfs("zfs", "mount", dst, check=False)
        await self._apply_size(pool, volume)


    async def rename_snapshot(self, pool: PoolRecord, volume: Volume, name: str,
                              new_name: str) -> None:
        """``zfs rename DS@a DS@b`` (its creation, hence its place, is kept)."""
        names = await self.list_snapshots(pool, volume)
        if name not in names:
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        if new_name in names:
            raise InvalidArgument(f"Snapshot {new_name!r} of {volume.name!r} exists")
        dataset = self._dataset(pool, volume)
        await self._zfs("zfs", "rename", f"{dataset}@{name}", f"{dataset}@{new_name}")

    def _snapshot_mount(self, pool: PoolRecord, volume: Volume, name: str
                        ) -> tuple[str, Path]:
        """The read-only clone that shows a snapshot (zfs-fuse has no ``.zfs/snapshot``
        and cannot mount a snapshot): a child of the volume's dataset, so that deleting
        the volume takes it along, mounted apart from the volume."""
        return (f"{self._dataset(pool, volume)}/{SNAPSHOT_MOUNT}{name}",
                self._root(pool) / SNAPSHOT_MOUNTS / _DIRS[volume.type] /
                volume.storage_name / name)

    async def mount_snapshot(self, pool: PoolRecord, volume: Volume, name: str
                             ) -> MountedVolume:
        await self._ready(pool)
        snap = f"{self._dataset(pool, volume)}@{name}"
        if not await self._exists(snap):
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        clone, path = self._snapshot_mount(pool, volume, name)
        try:
            if not await self._exists(clone):
                path.mkdir(parents=True, exist_ok=True, mode=0o700)
                await self._zfs("zfs", "clone", "-o", "readonly=on", "-o",
                                f"mountpoint={path}", snap, clone)
            await self._zfs("zfs", "mount", clone, check=False)
            if not (path / "rootfs").is_dir():
                raise NotFound(f"Snapshot {name!r} of {volume.name!r} holds no rootfs")
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.unmount_snapshot(pool, volume, name)
            raise
        return MountedVolume(path / "rootfs")

    async def unmount_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        await self._ready(pool)
        clone, path = self._snapshot_mount(pool, volume, name)
        await self._destroy(clone)
        top = self._root(pool) / SNAPSHOT_MOUNTS
        while path != top.parent:  # the empty directories up to snapshot-mounts/
            try:
                path.rmdir()
            except OSError:
                break
            path = path.parent

@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_storage(ZfsDriver)
