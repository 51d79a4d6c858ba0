"""The ``btrfs`` storage driver: one subvolume per volume, snapshots for everything else.

A pool is a btrfs filesystem: on a loop file the driver makes (``size=``, the default:
``$LXCTL_DIR/disks/NAME.img``), on a block device (``source=/dev/...``, formatted when
the pool is made) or on an existing btrfs directory (``source=/path``, used as it is).
Loop files and devices are mounted at ``$LXCTL_DIR/storage-pools/NAME`` (``mount -o
loop``: the loop device goes with the unmount); the daemon mounts them again at start.

Layout of the pool's root:

* ``images/<fingerprint>.<idmap tag>/rootfs``: an image unpacked once per id map, a
  subvolume; instance volumes are writable snapshots of it (no copy, no shared state:
  the image can go while instances rest on it).
* ``containers/<name>/rootfs``, ``custom/<name>/rootfs``: one subvolume per volume, with
  a qgroup limit when it has a ``size``.
* ``snapshots/<type>/<name>/<snapshot>``: read-only snapshots.

Copies between btrfs pools go through ``btrfs send | btrfs receive`` (a FIFO between the
two commands, so both run through the one subprocess helper).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import trio

from lxctl.public import (
    ConfigKey,
    ContentType,
    DriverContext,
    DriverError,
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
    parse_size,
    run,
    shift_tree,
)

_limiter = trio.CapacityLimiter(2)
_snapshots = trio.CapacityLimiter(8)  # instance volumes being made at once (one commit each)
_DIRS = {VolumeType.CONTAINER: "containers", VolumeType.CUSTOM: "custom"}
DEFAULT_SIZE = "5GiB"
MIN_SIZE = 128 * 2**20  # mkfs.btrfs refuses smaller devices (mixed mode aside)
SHARED = "storage"  # owner of keys that several drivers declare alike


def _check_size(value: str) -> None:
    if parse_size(value) < MIN_SIZE:
        raise ValueError("must be at least 128MiB")


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def is_btrfs(path: Path) -> bool:
    if not path.exists():
        return False
    with open("/proc/self/mountinfo") as f:
        best, fstype = "", ""
        target = str(path.resolve())
        for line in f:
            fields = line.split()
            mnt = fields[4]
            sep = fields.index("-")
            if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and \
                    len(mnt) >= len(best):
                best, fstype = mnt, fields[sep + 1]
    return fstype == "btrfs"


def is_mountpoint(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


_IOC_INO_LOOKUP = 0xD0009412  # BTRFS_IOC_INO_LOOKUP: _IOWR(0x94, 18, 4096 bytes)


def subvolume_id(path: Path) -> int:
    """The id of the subvolume ``path`` is the root of (``btrfs inspect-internal
    rootid``, as that tool asks it: an INO_LOOKUP of objectid 256 with treeid 0)."""
    args = bytearray(4096)
    args[8:16] = (256).to_bytes(8, "little")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, _IOC_INO_LOOKUP, args)
    finally:
        os.close(fd)
    return int.from_bytes(args[0:8], "little")


_IOC_SNAP_CREATE_V2 = 0x50009417  # BTRFS_IOC_SNAP_CREATE_V2: _IOW(0x94, 23, 4096 bytes)
_SUBVOL_NAME_MAX = 4039
_SUBVOL_RDONLY = 1 << 1  # BTRFS_SUBVOL_RDONLY, in the args' flags


def snapshot_subvolume(source: Path, target: Path, readonly: bool = False) -> None:
    """``btrfs subvolume snapshot [-r] SOURCE TARGET`` (TARGET must not exist), asked as
    that tool asks it: a SNAP_CREATE_V2 on TARGET's parent with SOURCE's fd and
    TARGET's name (and BTRFS_SUBVOL_RDONLY for ``readonly``), without starting the tool
    (~3-8 ms less a call). Blocking (the kernel commits a transaction): run in a worker
    thread."""
    name = os.fsencode(target.name)
    if not name or len(name) > _SUBVOL_NAME_MAX or name in (b".", b".."):
        raise InvalidArgument(f"Invalid subvolume name {target.name!r}")
    # struct btrfs_ioctl_vol_args_v2: fd, transid, flags, 32 bytes of union, name
    args = bytearray(4096)
    try:
        src = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
        try:
            parent = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                args[0:8] = src.to_bytes(8, "little", signed=True)
                if readonly:
                    args[16:24] = _SUBVOL_RDONLY.to_bytes(8, "little")
                args[56:56 + len(name)] = name
                fcntl.ioctl(parent, _IOC_SNAP_CREATE_V2, args)
            finally:
                os.close(parent)
        finally:
            os.close(src)
    except OSError as exc:
        raise DriverError(f"Cannot snapshot {source} to {target}: {exc.strerror or exc}",
                          tool="btrfs") from None


def parse_qgroup_show(text: str) -> dict[str, int]:
    """``btrfs qgroup show --raw -r PATH``: qgroup id -> referenced bytes."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].count("/") == 1 and fields[1].isdigit():
            out[fields[0]] = int(fields[1])
    return out


class BtrfsDriver:
    info: ClassVar[StorageInfo] = StorageInfo(
        name="btrfs",
        volume_types=frozenset({VolumeType.CONTAINER, VolumeType.CUSTOM, VolumeType.IMAGE}),
        content_types=frozenset({ContentType.FILESYSTEM}),
        optimized_images=True,
        clones=True,  # an instance volume is a writable snapshot of the image volume
        snapshots=True,
        quotas=True,  # qgroup limits
        send_receive=True,
        pool_keys=(
            ConfigKey("source", Scope.POOL, owner=SHARED,
                      doc="Block device, loop file or existing directory of the pool "
                      "(default: a loop file in $LXCTL_DIR/disks)"),
            ConfigKey("size", Scope.POOL, KeyType.SIZE, owner=SHARED, validate=_check_size,
                      doc=f"Size of the loop file the driver creates (default {DEFAULT_SIZE})"),
            ConfigKey("btrfs.mount_options", Scope.POOL,
                      doc="Mount options of the pool's filesystem "
                      "(default: user_subvol_rm_allowed)"),
        ),
        volume_keys=(
            ConfigKey("size", Scope.VOLUME, KeyType.SIZE, owner=SHARED,
                      doc="Quota of the volume (a btrfs qgroup limit)"),
        ),
    )

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self._quotas: set[str] = set()  # roots of mounted pools known to have quotas on

    @classmethod
    def probe(cls) -> str | None:
        if shutil.which("btrfs") is None or shutil.which("mkfs.btrfs") is None:
            return "btrfs-progs (btrfs, mkfs.btrfs) is not installed"
        try:
            with open("/proc/filesystems") as f:
                if not any(line.split()[-1] == "btrfs" for line in f if line.strip()):
                    return "the kernel has no btrfs filesystem"
        except OSError:
            return "cannot read /proc/filesystems"
        return None

    # ------------------------------------------------------------------ paths
    def _mountpoint(self, pool: PoolRecord) -> Path:
        return self.ctx.state_dir / "storage-pools" / pool.name

    def _root(self, pool: PoolRecord) -> Path:
        source = pool.config.get("source", "")
        if pool.config.get("volatile.kind") == "directory":
            return Path(source)
        return self._mountpoint(pool)

    def _volume_dir(self, pool: PoolRecord, volume: Volume) -> Path:
        if volume.type not in _DIRS:
            raise InvalidArgument(f"btrfs pools hold no {volume.type} volumes")
        return self._root(pool) / _DIRS[volume.type] / volume.storage_name

    def _snapshot_dir(self, pool: PoolRecord, volume: Volume) -> Path:
        return self._root(pool) / "snapshots" / _DIRS[volume.type] / volume.storage_name

    def _image_dir(self, pool: PoolRecord, image: ImageSource) -> Path:
        return self._root(pool) / "images" / image.variant

    # ------------------------------------------------------------------ pools
    async def create_pool(self, pool: PoolRecord) -> dict[str, str]:
        source = pool.config.get("source", "")
        options = pool.config.get("btrfs.mount_options", "user_subvol_rm_allowed")
        if source and not source.startswith("/"):
            raise InvalidArgument(f"source {source!r} must be an absolute path")
        kind: str
        created_file: Path | None = None
        if not source or (not Path(source).exists() and "size" in pool.config
                          and not source.startswith("/dev/")):
            kind = "loop"
            image = Path(source) if source else \
                self.ctx.state_dir / "disks" / f"{pool.name}.img"
            if image.exists():
                raise InvalidArgument(f"Loop file {image} exists already", source=str(image))
            size = parse_size(pool.config.get("size", DEFAULT_SIZE))
            if size < MIN_SIZE:
                raise InvalidArgument("size must be at least 128MiB", key="size")
            image.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(image, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            created_file = image
            try:
                os.ftruncate(fd, size)
            finally:
                os.close(fd)
            source = str(image)
        else:
            path = Path(source)
            try:
                st = path.stat()
            except FileNotFoundError:
                raise InvalidArgument(f"source {source} does not exist",
                                      source=source) from None
            if stat.S_ISBLK(st.st_mode):
                kind = "device"
            elif stat.S_ISDIR(st.st_mode):
                if not is_btrfs(path):
                    raise InvalidArgument(f"source {source} is not on a btrfs filesystem",
                                          source=source)
                if any(path.iterdir()):
                    raise InvalidArgument(f"source {source} is not empty", source=source)
                kind = "directory"
            elif stat.S_ISREG(st.st_mode):
                kind = "loop"  # an existing file: formatted like a device
            else:
                raise InvalidArgument(f"source {source} is not a block device, file or "
                                      "directory", source=source)
        config = {"source": source, "volatile.kind": kind}
        if kind != "directory":
            config["btrfs.mount_options"] = options
        if kind == "loop":
            config["size"] = pool.config.get("size", DEFAULT_SIZE)
        rec = PoolRecord(pool.name, pool.driver, {**pool.config, **config})
        try:
            if kind != "directory":
                await run(["mkfs.btrfs", "-q", "-f", "-L", pool.name, source], timeout=120)
            await self.mount_pool(rec)
            root = self._root(rec)  # quotas: enabled by the first size (set_quota)
            for sub in ("images", *_DIRS.values(), "snapshots"):
                (root / sub).mkdir(exist_ok=True, mode=0o711)
        except BaseException:
            with trio.CancelScope(shield=True):
                if kind != "directory":
                    await self.unmount_pool(rec)
                else:
                    for sub in ("images", *_DIRS.values(), "snapshots"):
                        _rmtree(Path(source) / sub)
                if created_file is not None:
                    created_file.unlink(missing_ok=True)
            raise
        return config

    async def mount_pool(self, pool: PoolRecord) -> None:
        source = pool.config.get("source", "")
        kind = pool.config.get("volatile.kind", "loop")
        if kind == "directory":
            if not is_btrfs(Path(source)):
                raise Unavailable(f"Source {source} of pool {pool.name!r} is not on btrfs",
                                  pool=pool.name)
            return
        target = self._mountpoint(pool)
        if is_mountpoint(target):
            return
        if not os.path.exists(source):
            raise Unavailable(f"Source {source} of pool {pool.name!r} is missing",
                              pool=pool.name)
        target.mkdir(parents=True, exist_ok=True, mode=0o711)
        options = pool.config.get("btrfs.mount_options", "user_subvol_rm_allowed")
        if kind == "loop":
            options = ",".join(o for o in ("loop", options) if o)
        argv: list[str | Path] = ["mount", "-t", "btrfs",
                                  *(["-o", options] if options else []), source, target]
        outcome = await run(argv, check=False, timeout=60)
        if not outcome.ok:
            raise Unavailable(f"Cannot mount pool {pool.name!r} from {source}: "
                              f"{outcome.tail()}", pool=pool.name)

    async def unmount_pool(self, pool: PoolRecord) -> None:
        self._quotas.discard(str(self._root(pool)))
        if pool.config.get("volatile.kind") == "directory":
            return
        target = self._mountpoint(pool)
        if is_mountpoint(target):
            await run(["umount", target], timeout=60)
        try:
            target.rmdir()
        except OSError:
            pass

    async def delete_pool(self, pool: PoolRecord) -> None:
        self._quotas.discard(str(self._root(pool)))
        kind = pool.config.get("volatile.kind", "loop")
        source = Path(pool.config.get("source", ""))
        if kind == "directory":
            for sub in ("images", *_DIRS.values(), "snapshots"):
                await self._delete_tree(source / sub)
            return
        await self.unmount_pool(pool)
        if kind == "loop" and source.is_file():
            source.unlink()
        elif kind == "device":
            await run(["wipefs", "-a", "-q", source], check=False, timeout=60)

    # ------------------------------------------------------------------ subvolumes
    async def _delete_subvolume(self, path: Path) -> None:
        if not path.exists():
            return
        await run(["btrfs", "property", "set", "-ts", path, "ro", "false"], check=False)
        await run(["btrfs", "subvolume", "delete", path], timeout=120)

    async def _delete_tree(self, path: Path) -> None:
        """A directory that may hold subvolumes (one level down, or snapshot dirs)."""
        if not path.is_dir():
            return
        for entry in sorted(path.iterdir()):
            if entry.is_dir() and entry.stat().st_ino == 256:
                await self._delete_subvolume(entry)
            elif entry.is_dir():
                await self._delete_tree(entry)
        await trio.to_thread.run_sync(_rmtree, path)

    # ------------------------------------------------------------------ images
    async def ensure_image_volume(self, pool: PoolRecord, image: ImageSource) -> None:
        target = self._image_dir(pool, image)
        if (target / "rootfs").is_dir():
            return
        partial = target.with_name(target.name + ".partial")
        await self._delete_subvolume(partial)
        await run(["btrfs", "subvolume", "create", partial])
        try:
            await run(["tar", "-xf", image.tarball, "-C", partial, "--numeric-owner",
                       "--xattrs", "--xattrs-include=*", "rootfs"], timeout=600)
            if image.idmap is not None:
                await trio.to_thread.run_sync(
                    shift_tree, partial / "rootfs", image.idmap.uid_base,
                    image.idmap.gid_base, limiter=_limiter)
            partial.rename(target)
            await run(["btrfs", "property", "set", "-ts", target, "ro", "true"])
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._delete_subvolume(partial)
            raise

    async def delete_image_volume(self, pool: PoolRecord, fingerprint: str) -> None:
        for path in (self._root(pool) / "images").glob(f"{fingerprint}.*"):
            await self._delete_subvolume(path)

    # ------------------------------------------------------------------ volumes
    async def create_volume(self, pool: PoolRecord, volume: Volume) -> None:
        path = self._volume_dir(pool, volume)
        if path.exists():
            raise InvalidArgument(f"Volume {volume.name!r} exists on pool {pool.name!r}")
        await run(["btrfs", "subvolume", "create", path])
        try:
            (path / "rootfs").mkdir(mode=0o711)
            await self._apply_size(pool, volume)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._delete_subvolume(path)
            raise

    async def create_volume_from_image(
        self, pool: PoolRecord, volume: Volume, image: ImageSource
    ) -> None:
        path = self._volume_dir(pool, volume)
        await self._delete_subvolume(path)
        await trio.to_thread.run_sync(snapshot_subvolume, self._image_dir(pool, image), path,
                                      limiter=_snapshots)
        try:
            await self._apply_size(pool, volume)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._delete_subvolume(path)
            raise

    async def _apply_size(self, pool: PoolRecord, volume: Volume) -> None:
        size = volume.config.get("size")
        if size:
            await self.set_quota(pool, volume, parse_size(size))

    async def delete_volume(self, pool: PoolRecord, volume: Volume) -> None:
        await self._delete_tree(self._snapshot_dir(pool, volume))
        await self._delete_subvolume(self._volume_dir(pool, volume))

    async def mount_volume(self, pool: PoolRecord, volume: Volume) -> MountedVolume:
        path = self._volume_dir(pool, volume) / "rootfs"
        if not path.is_dir():
            raise NotFound(f"Volume {volume.name!r} not found on pool {pool.name!r}")
        return MountedVolume(path)

    async def unmount_volume(self, pool: PoolRecord, volume: Volume) -> None:
        return None  # subvolumes are reachable while the pool is mounted

    async def rename_volume(self, pool: PoolRecord, volume: Volume, new_name: str) -> None:
        new = Volume(new_name, volume.type, volume.content, volume.project, volume.config)
        src, dst = self._volume_dir(pool, volume), self._volume_dir(pool, new)
        snaps, new_snaps = self._snapshot_dir(pool, volume), self._snapshot_dir(pool, new)
        if not src.is_dir():
            raise NotFound(f"Volume {volume.name!r} not found on pool {pool.name!r}")
        if dst.exists() or new_snaps.exists():
            raise InvalidArgument(f"Volume {new_name!r} exists on pool {pool.name!r}")
        src.rename(dst)  # subvolumes (read-only ones too) move as directory entries
        if snaps.exists():
            try:
                snaps.rename(new_snaps)
            except BaseException:
                dst.rename(src)
                raise

    async def copy_volume(self, pool: PoolRecord, source: Volume, target_pool: PoolRecord,
                          target: Volume, *, snapshots: Sequence[str] = (),
                          from_snapshot: str | None = None) -> None:
        """Within a pool: snapshots of each snapshot (read-only) and of the volume, which
        share extents and nothing else. Between pools: a ``btrfs send`` chain, each
        snapshot incremental on the one before (the first in full), then the volume (a
        read-only snapshot of it) on the last, received and snapshotted writable."""
        src, dst = self._volume_dir(pool, source), self._volume_dir(target_pool, target)
        src_snaps = self._snapshot_dir(pool, source)
        dst_snaps = self._snapshot_dir(target_pool, target)
        if not src.is_dir():
            raise NotFound(f"Volume {source.name!r} not found on pool {pool.name!r}")
        for name in (*snapshots, *([from_snapshot] if from_snapshot else [])):
            if not (src_snaps / name).is_dir():
                raise NotFound(f"Snapshot {name!r} of {source.name!r} not found")
        if dst.exists() or dst_snaps.exists():
            raise InvalidArgument(f"Volume {target.name!r} exists on pool {target_pool.name!r}")
        origin = src if from_snapshot is None else src_snaps / from_snapshot
        try:
            if snapshots:
                dst_snaps.mkdir(parents=True, mode=0o711)
            if pool.name == target_pool.name:
                for name in snapshots:
                    await run(["btrfs", "subvolume", "snapshot", "-r", src_snaps / name,
                               dst_snaps / name])
                await run(["btrfs", "subvolume", "snapshot", origin, dst])
            else:
                parent: Path | None = None
                for name in snapshots:
                    await self._send_receive(src_snaps / name, dst_snaps, parent)
                    parent = src_snaps / name
                await self._send_writable(origin, dst, parent,
                                          readonly=from_snapshot is not None)
            await self._apply_size(target_pool, target)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._delete_tree(dst_snaps)
                await self._delete_subvolume(dst)
            raise

    async def _send_writable(self, src: Path, dst: Path, parent: Path | None, *,
                             readonly: bool) -> None:
        """``src`` (a volume, or a ``readonly`` snapshot) sent to ``dst``'s pool,
        incrementally on ``parent`` (already received there) if given, arriving at
        ``dst`` writable: a stream is made of a read-only subvolume, and what arrives is
        made writable (``ro false``, forced: it drops the received UUID, which only
        incremental streams onto it would need) and moved into place. (A writable
        snapshot of it instead would wait for all of its data to reach the disk: 0.6-1 s
        for 200 MiB, where rsync returns with its writes still in memory.)"""
        stamp = f".send-{os.getpid()}-{os.urandom(4).hex()}"
        frozen = None if readonly else src.parent / (src.name + stamp)
        inbox = dst.parent / stamp
        try:
            if frozen is not None:  # in the try: a cancelled snapshot may have made it
                await trio.to_thread.run_sync(snapshot_subvolume, src, frozen, True,
                                              limiter=_snapshots)
            inbox.mkdir(mode=0o700)
            received = await self._send_receive(frozen or src, inbox, parent)
            await run(["btrfs", "property", "set", "-f", "-ts", received, "ro", "false"])
            received.rename(dst)
        finally:
            with trio.CancelScope(shield=True):
                await self._delete_tree(inbox)
                if frozen is not None:
                    await self._delete_subvolume(frozen)

    async def _send_receive(self, src: Path, into: Path, parent: Path | None) -> Path:
        """``btrfs send [-p parent] src | btrfs receive into`` through a FIFO: the
        received read-only subvolume, ``into/<src's name>``."""
        with tempfile.TemporaryDirectory(prefix="lxctl-send-") as tmp:
            fifo = Path(tmp) / "stream"
            os.mkfifo(fifo, 0o600)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: run(["btrfs", "receive", "-f", fifo, into],
                                               timeout=3600))
                argv: list[str | Path] = ["btrfs", "send", "-q", "-f", fifo]
                if parent is not None:
                    argv += ["-p", parent]
                await run([*argv, src], timeout=3600)
        return into / src.name

    async def usage(self, pool: PoolRecord, volume: Volume) -> VolumeUsage:
        path = self._volume_dir(pool, volume)
        if not await self._quotas_enabled(pool):  # no qgroups to ask: count the files
            outcome = await run(["du", "-s", "-B1", "-x", path], timeout=600)
            return VolumeUsage(int(outcome.stdout.split()[0]))
        await run(["btrfs", "quota", "rescan", "-w", self._root(pool)], check=False,
                  timeout=120)
        outcome = await run(["btrfs", "qgroup", "show", "--raw", "-r", "-f", path])
        rows = outcome.stdout.decode().splitlines()
        total: int | None = None
        for line in rows:
            fields = line.split()
            if len(fields) >= 3 and fields[0].startswith("0/") and fields[1].isdigit():
                limit = fields[3] if len(fields) > 3 else "none"
                total = int(limit) if limit.isdigit() else None
                return VolumeUsage(int(fields[1]), total)
        return VolumeUsage(0, total)

    # ------------------------------------------------------------------ quotas
    async def set_quota(self, pool: PoolRecord, volume: Volume, size: int) -> None:
        """A qgroup limit. Quotas are enabled on the pool by its first size (as Incus
        does): qgroup accounting makes every snapshot cost about twice as much, so a
        pool without sizes goes without it."""
        path = self._volume_dir(pool, volume)
        if not await self._quotas_enabled(pool):
            if not size:
                return
            root = self._root(pool)
            await run(["btrfs", "quota", "enable", root], timeout=60)
            # the accounting of what is there already, before the limit counts on it
            await run(["btrfs", "quota", "rescan", "-W", root], check=False, timeout=600)
            self._quotas.add(str(root))
        await run(["btrfs", "qgroup", "limit", str(size) if size else "none", path])

    async def _quotas_enabled(self, pool: PoolRecord) -> bool:
        root = self._root(pool)
        if str(root) in self._quotas:
            return True
        outcome = await run(["btrfs", "qgroup", "show", "-f", root], check=False)
        if outcome.ok:
            self._quotas.add(str(root))
        return outcome.ok

    # ------------------------------------------------------------------ snapshots
    async def create_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        snap = self._snapshot_dir(pool, volume) / name
        if snap.exists():
            raise InvalidArgument(f"Snapshot {name!r} of {volume.name!r} exists")
        snap.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        await trio.to_thread.run_sync(snapshot_subvolume, self._volume_dir(pool, volume),
                                      snap, True, limiter=_snapshots)

    async def delete_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        await self._delete_subvolume(self._snapshot_dir(pool, volume) / name)

    async def restore_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        snap = self._snapshot_dir(pool, volume) / name
        if not snap.is_dir():
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        path = self._volume_dir(pool, volume)
        staging = path.with_name(path.name + ".restoring")
        await self._delete_subvolume(staging)
        await run(["btrfs", "subvolume", "snapshot", snap, staging])
        old = path.with_name(path.name + ".old")
        path.rename(old)
        staging.rename(path)
        await self._delete_subvolume(old)
        await self._apply_size(pool, volume)

    async def list_snapshots(self, pool: PoolRecord, volume: Volume) -> list[str]:
        base = self._snapshot_dir(pool, volume)
        if not base.is_dir():
            return []
        # by subvolume id, which grows with each subvolume made (the order of creation,
        # and of receipt on a copy) and stays with it through a rename; every snapshot
        # root has the volume root's times
        return [p.name for p in sorted(base.iterdir(), key=subvolume_id)]

    # ------------------------------------------------------------------ send / receive
    async def send_volume(self, pool: PoolRecord, volume: Volume,
                          out: trio.abc.SendStream) -> None:
        src = self._volume_dir(pool, volume)
        frozen = src.parent / (src.name + f".send-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            await run(["btrfs", "subvolume", "snapshot", "-r", src, frozen])
            with tempfile.TemporaryDirectory(prefix="lxctl-send-") as tmp:
                fifo = Path(tmp) / "stream"
                os.mkfifo(fifo, 0o600)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(lambda: run(["btrfs", "send", "-q", "-f", fifo, frozen],
                                                   timeout=3600))
                    async with await trio.open_file(fifo, "rb") as f:
                        while chunk := await f.read(1 << 20):
                            await out.send_all(chunk)
        finally:
            with trio.CancelScope(shield=True):
                await self._delete_subvolume(frozen)

    async def receive_volume(self, pool: PoolRecord, volume: Volume,
                             source: trio.abc.ReceiveStream) -> None:
        dst = self._volume_dir(pool, volume)
        with tempfile.TemporaryDirectory(prefix="lxctl-recv-", dir=dst.parent) as tmp:
            fifo = Path(tmp) / "stream"
            os.mkfifo(fifo, 0o600)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: run(["btrfs", "receive", "-f", fifo, tmp],
                                               timeout=3600))
                async with await trio.open_file(fifo, "wb") as f:
                    while chunk := await source.receive_some(1 << 20):
                        await f.write(chunk)
            received = [p for p in Path(tmp).iterdir() if p.name != "stream"]
            if len(received) != 1:
                raise InvalidArgument("The stream held no subvolume")
            await run(["btrfs", "subvolume", "snapshot", received[0], dst])
            await self._delete_subvolume(received[0])
        await self._apply_size(pool, volume)


    async def rename_snapshot(self, pool: PoolRecord, volume: Volume, name: str,
                              new_name: str) -> None:
        base = self._snapshot_dir(pool, volume)
        if not (base / name).is_dir():
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        if (base / new_name).exists():
            raise InvalidArgument(f"Snapshot {new_name!r} of {volume.name!r} exists")
        (base / name).rename(base / new_name)  # read-only subvolume, writable parent

    async def mount_snapshot(self, pool: PoolRecord, volume: Volume, name: str
                             ) -> MountedVolume:
        path = self._snapshot_dir(pool, volume) / name / "rootfs"
        if not path.is_dir():
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        return MountedVolume(path)  # a read-only subvolume, reachable with the pool

    async def unmount_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        return None

@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_storage(BtrfsDriver)
