"""The ``lvm`` storage driver: one logical volume per volume, in one volume group.

A pool is a volume group (``lvm.vg_name``, default: the pool's name): on a block device
(``source=/dev/...``, made a PV), on an existing volume group (``source=VG``; one that
already holds LVs only with ``lvm.vg.force_reuse=true``) or on a loop file the driver
makes (``size=``, the default: ``$LXCTL_DIR/disks/NAME.img``, attached with ``losetup``
again at each daemon start). By default the volumes are thin LVs of one thin pool
(``lvm.thinpool_name``, default ``IncusThinPool`` as Incus; ``lvm.thinpool_metadata_size``
as LXD 5.0, passed as ``--poolmetadatasize``); with ``lvm.use_thinpool=false`` they are
thick LVs and snapshots are classic copy-on-write snapshots with a size of their own.

Each LV holds a filesystem (``block.filesystem``: ext4, xfs or btrfs, default ext4),
mounted at ``$LXCTL_DIR/storage-pools/NAME/<type>/<volume>``. An image is unpacked once
into a thin LV ``images_<fingerprint>`` and each instance volume is a thin snapshot of it.

LV names follow Incus: ``containers_NAME``, ``custom_NAME``, ``images_FP``, snapshots
``containers_NAME-SNAP``, with ``-`` in names doubled so the separator stays unique.

A copy within one thin pool is thin snapshots (of each snapshot, then of the volume);
any other (another VG, thick LVs) is a new LV filled by rsync from each snapshot in turn,
snapshotted under its name, then from the volume. Snapshots are listed by creation
(``lv_time``, then ``thin_id``) and mounted read-only after ``lvchange -ay -K`` (ext4
with ``noload``, xfs with ``norecovery,nouuid``; btrfs LVs refused: a duplicate fsid).

The command lines and the parsing of ``pvs``/``vgs``/``lvs`` are pure functions (unit
tested against real outputs). This kernel has no device-mapper, so ``probe`` says so and
the driver is not loaded here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    InvalidState,
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
    is_true,
    parse_size,
    run,
    shift_tree,
)

SHARED = "storage"  # owner of keys that several drivers declare alike (see btrfs)
DEFAULT_POOL_SIZE = "5GiB"
DEFAULT_VOLUME_SIZE = "10GiB"  # Incus's default for block-backed volumes
DEFAULT_THINPOOL = "IncusThinPool"
DEFAULT_FILESYSTEM = "ext4"
MIN_POOL_SIZE = 128 * 2**20
# man lvmthin: thin pool metadata is between 2MiB and 16GiB
MIN_METADATA, MAX_METADATA = 2 * 2**20, 16 * 2**30
FILESYSTEMS = ("ext4", "xfs", "btrfs")
THIN_ONLY_KEYS = ("lvm.thinpool_name", "lvm.thinpool_metadata_size")
_TYPES = {VolumeType.CONTAINER: "containers", VolumeType.CUSTOM: "custom",
          VolumeType.IMAGE: "images"}
_limiter = trio.CapacityLimiter(2)

# man lvm, VALID NAMES
_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")
_RESERVED_LV_PARTS = ("_cdata", "_cmeta", "_corig", "_iorig", "_mlog", "_mimage",
                      "_pmspare", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata",
                      "_vorigin", "_wcorig")


# ---------------------------------------------------------------------- validation
def check_vg_name(value: str) -> None:
    if not _NAME.fullmatch(value) or value in (".", ".."):
        raise ValueError("must be 1-127 characters of a-z A-Z 0-9 + _ . -, not starting "
                         "with -, and not . or ..")


def check_lv_name(value: str) -> None:
    check_vg_name(value)
    if value.startswith(("snapshot", "pvmove")) or any(p in value for p in
                                                       _RESERVED_LV_PARTS):
        raise ValueError("is reserved by LVM (snapshot*, pvmove*, _tmeta, _tdata ...)")


def check_metadata_size(value: str) -> None:
    size = parse_size(value)
    if not MIN_METADATA <= size <= MAX_METADATA:
        raise ValueError("must be between 2MiB and 16GiB (man lvmthin)")


def check_pool_size(value: str) -> None:
    if parse_size(value) < MIN_POOL_SIZE:
        raise ValueError("must be at least 128MiB")


def check_filesystem(value: str) -> None:
    if value not in FILESYSTEMS:
        raise ValueError(f"must be one of {', '.join(FILESYSTEMS)}")


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None else is_true(value)


def check_pool_config(config: Mapping[str, str]) -> None:
    """What the per-key checks cannot see: keys that contradict each other."""
    if not _flag(config.get("lvm.use_thinpool"), True):
        for key in THIN_ONLY_KEYS:
            if key in config:
                raise InvalidArgument(f"{key} needs lvm.use_thinpool=true", key=key)
    source = config.get("source", "")
    if source and not source.startswith("/"):
        try:
            check_vg_name(source)
        except ValueError as exc:
            raise InvalidArgument(f"source {source!r} is neither a path nor a volume "
                                  f"group name: it {exc}", source=source) from None
        vg = config.get("lvm.vg_name")
        if vg and vg != source:
            raise InvalidArgument(f"lvm.vg_name {vg!r} differs from the volume group of "
                                  f"source {source!r}", key="lvm.vg_name")


# ---------------------------------------------------------------------- names
def escape(name: str) -> str:
    return name.replace("-", "--")


def lv_name(volume_type: VolumeType, storage_name: str, snapshot: str | None = None) -> str:
    base = f"{_TYPES[volume_type]}_{escape(storage_name)}"
    return base if snapshot is None else f"{base}-{escape(snapshot)}"


def lv_path(vg: str, lv: str) -> str:
    return f"/dev/{vg}/{lv}"


def snapshot_of(lv: str, base: str) -> str | None:
    """The snapshot name if ``lv`` is a snapshot LV of ``base``, else None."""
    prefix = base + "-"
    if not lv.startswith(prefix):
        return None
    rest = lv[len(prefix):]
    # '-' in names are doubled: a single one left over (or a leading one) means the LV
    # belongs to a longer volume name ("a-b" is containers_a--b, not a snapshot of a)
    if not rest or rest.startswith("-") or "-" in rest.replace("--", ""):
        return None
    return rest.replace("--", "-")


# ---------------------------------------------------------------------- commands
def pvcreate_argv(device: str) -> list[str]:
    return ["pvcreate", "--yes", "--force", device]


def vgcreate_argv(vg: str, device: str) -> list[str]:
    return ["vgcreate", "--yes", vg, device]


def thinpool_create_argv(vg: str, thinpool: str, metadata_size: str | None) -> list[str]:
    """The thin pool over all the VG's free space. No ``--wipesignatures``: lvcreate
    2.03.16 refuses it with thin pools (fixture lvcreate-thinpool-wipesignatures.txt)."""
    argv = ["lvcreate", "--yes", "--type", "thin-pool", "--thinpool", thinpool,
            "--extents", "100%FREE"]
    if metadata_size:
        argv += ["--poolmetadatasize", f"{parse_size(metadata_size)}b"]
    return [*argv, vg]


def lvcreate_argv(vg: str, lv: str, size: str, thinpool: str | None) -> list[str]:
    """A thin LV of ``thinpool`` (virtual size) or a thick LV (allocated size)."""
    nbytes = f"{parse_size(size)}b"
    if thinpool is not None:
        return ["lvcreate", "--yes", "--wipesignatures", "y", "--type", "thin",
                "--thinpool", thinpool, "--virtualsize", nbytes, "--name", lv, vg]
    return ["lvcreate", "--yes", "--wipesignatures", "y", "--size", nbytes,
            "--name", lv, vg]


def snapshot_argv(vg: str, origin: str, name: str, *, thin: bool, size: str | None = None,
                  readonly: bool = True) -> list[str]:
    """``lvcreate -s``: on a thin pool without a size (a thin snapshot, activated with
    ``--setactivationskip n`` since thin snapshots skip activation by default), on thick
    LVs a classic COW snapshot, which needs ``--size`` for its exception store."""
    argv = ["lvcreate", "--yes", "--snapshot", "--name", name]
    if thin:
        argv += ["--setactivationskip", "n"]
    else:
        if not size:
            raise InvalidArgument("A snapshot of a thick LV needs a size")
        argv += ["--size", f"{parse_size(size)}b"]
    if readonly:
        argv += ["--permission", "r"]
    return [*argv, f"{vg}/{origin}"]


def lvextend_argv(vg: str, lv: str, size: int) -> list[str]:
    return ["lvextend", "--yes", "--size", f"{size}b", f"{vg}/{lv}"]


def lvreduce_argv(vg: str, lv: str, size: int) -> list[str]:
    return ["lvreduce", "--yes", "--force", "--size", f"{size}b", f"{vg}/{lv}"]


def lvremove_argv(vg: str, lv: str) -> list[str]:
    return ["lvremove", "--yes", "--force", f"{vg}/{lv}"]


def lvrename_argv(vg: str, old: str, new: str) -> list[str]:
    return ["lvrename", vg, old, new]


def activate_argv(vg: str, lv: str) -> list[str]:
    """``lvchange -ay -K``: also an LV whose activation is skipped (thin snapshots made
    by other tools default to it)."""
    return ["lvchange", "--activate", "y", "--ignoreactivationskip", f"{vg}/{lv}"]


def snapshot_mount_options(filesystem: str, options: str) -> str:
    """Options to mount a read-only snapshot LV: ``ro``, and what lets each filesystem
    mount a device it cannot write. ext4: ``noload`` (no journal replay); xfs:
    ``norecovery`` and ``nouuid`` (the origin, mounted, has the same UUID). btrfs is
    refused: a copy of a btrfs device has its origin's fsid, which the kernel (before
    6.7's temp-fsid) will not mount twice, and a read-only LV cannot take a new one."""
    extra = {"ext4": ["noload"], "xfs": ["norecovery", "nouuid"]}.get(filesystem)
    if extra is None:
        raise InvalidState(f"Snapshots of {filesystem} LVs cannot be mounted read-only "
                           "beside their origin (same filesystem UUID)")
    kept = [o for o in options.split(",") if o and o not in ("rw", "discard")]
    return ",".join(["ro", *kept, *extra])


def snapshot_order(rows: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """Snapshot LVs oldest first: by ``lv_time`` (seconds), then ``thin_id`` (thin LVs:
    the pool numbers its devices in the order they are made), then name. ``lvs`` itself
    lists by name."""
    def key(row: Mapping[str, str]) -> tuple[str, int, str]:
        thin_id = row.get("thin_id", "")
        return (row.get("lv_time", ""), int(thin_id) if thin_id.isdigit() else 0,
                row["lv_name"])
    return sorted(rows, key=key)


def mkfs_argv(filesystem: str, device: str) -> list[str]:
    if filesystem == "ext4":  # as LXD/Incus: all inode tables now, no discard pass
        return ["mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
                device]
    if filesystem == "xfs":
        return ["mkfs.xfs", "-q", "-f", device]
    if filesystem == "btrfs":
        return ["mkfs.btrfs", "-q", "-f", device]
    raise InvalidArgument(f"Unsupported filesystem {filesystem!r}", key="block.filesystem")


def default_mount_options(filesystem: str) -> str:
    return "discard" if filesystem in ("ext4", "xfs") else ""


def resize_plan(filesystem: str, device: str, mountpoint: str, old: int, new: int,
                vg: str, lv: str) -> list[list[str]]:
    """Commands to take a mounted volume from ``old`` to ``new`` bytes. Growing: the LV,
    then the filesystem (resize2fs and btrfs online, xfs_growfs on the mount point).
    Shrinking: btrfs online, then the LV; ext4 only offline and xfs never: refused."""
    if new == old:
        return []
    if new > old:
        grow = {"ext4": ["resize2fs", device],
                "xfs": ["xfs_growfs", mountpoint],
                "btrfs": ["btrfs", "filesystem", "resize", "max", mountpoint]}[filesystem]
        return [lvextend_argv(vg, lv, new), grow]
    if filesystem == "btrfs":
        return [["btrfs", "filesystem", "resize", str(new), mountpoint],
                lvreduce_argv(vg, lv, new)]
    why = "xfs cannot shrink" if filesystem == "xfs" else \
        "ext4 shrinks only unmounted, and the volume is in use"
    raise InvalidArgument(f"Cannot shrink the volume from {old} to {new} bytes: {why}",
                          key="size")


REPORT_OPTIONS = ("--units", "b", "--nosuffix")


def report_argv(tool: str, fields: Sequence[str], *targets: str, json_format: bool = True
                ) -> list[str]:
    fmt = ["--reportformat", "json"] if json_format else \
        ["--noheadings", "--separator", ","]
    return [tool, *fmt, *REPORT_OPTIONS, "-o", ",".join(fields), *targets]


# ---------------------------------------------------------------------- parsing
def parse_report_json(text: str, kind: str) -> list[dict[str, str]]:
    """``pvs/vgs/lvs --reportformat json``: {"report": [{"pv"|"vg"|"lv": [rows]}]}."""
    rows: list[dict[str, str]] = []
    for report in json.loads(text).get("report", []):
        rows.extend({k: str(v) for k, v in row.items()} for row in report.get(kind, []))
    return rows


def parse_report_separated(text: str, fields: Sequence[str], separator: str = ","
                           ) -> list[dict[str, str]]:
    """``--noheadings --separator SEP``: one row a line, indented by two spaces."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = line.strip().split(separator)
        if len(values) != len(fields):
            raise ValueError(f"expected {len(fields)} fields, got {line!r}")
        rows.append(dict(zip(fields, values, strict=True)))
    return rows


def as_bytes(value: str) -> int:
    """A size of a ``--units b --nosuffix`` report (possibly empty)."""
    return int(float(value)) if value.strip() else 0


def missing_kernel_feature(error: str) -> str | None:
    """The device-mapper reason in an LVM tool's error text, if that is the cause."""
    m = re.search(r"(\S+): Required device-mapper target\(s\) not detected", error)
    if m:
        return f"the kernel has no device-mapper {m.group(1)} target"
    if "Failure to communicate with kernel device-mapper driver" in error:
        return "the kernel has no device-mapper"
    return None


# ---------------------------------------------------------------------- probe
def device_mapper_missing(misc: str | None, control_exists: bool) -> str | None:
    if misc is not None and not any(line.split()[-1:] == ["device-mapper"]
                                    for line in misc.splitlines()):
        return "the kernel has no device-mapper (not in /proc/misc)"
    if not control_exists:
        return "the kernel has no device-mapper (/dev/mapper/control is missing)"
    return None


async def _dmsetup_version() -> Outcome:
    return await run(["dmsetup", "version"], check=False, timeout=10)


_VG_FIELDS = ("vg_name", "vg_size", "vg_free", "lv_count")
_LV_FIELDS = ("lv_name", "lv_attr", "lv_size", "pool_lv", "origin", "data_percent",
              "lv_time", "thin_id")


class LvmDriver:
    info: ClassVar[StorageInfo] = StorageInfo(
        named_sources=True,
        name="lvm",
        volume_types=frozenset({VolumeType.CONTAINER, VolumeType.CUSTOM, VolumeType.IMAGE}),
        content_types=frozenset({ContentType.FILESYSTEM}),
        optimized_images=True,
        clones=True,  # thin snapshots of the image LV (thin pools only; thick: copies)
        snapshots=True,
        quotas=True,  # the LV's size
        send_receive=False,
        pool_keys=(
            ConfigKey("source", Scope.POOL, owner=SHARED,
                      doc="Block device, existing volume group or loop file of the pool "
                      "(default: a loop file in $LXCTL_DIR/disks)"),
            ConfigKey("size", Scope.POOL, KeyType.SIZE, owner=SHARED,
                      validate=check_pool_size,
                      doc=f"Size of the loop file the driver creates (default "
                      f"{DEFAULT_POOL_SIZE})"),
            ConfigKey("lvm.vg_name", Scope.POOL, validate=check_vg_name,
                      doc="Name of the volume group (default: the pool's name)"),
            ConfigKey("lvm.use_thinpool", Scope.POOL, KeyType.BOOL, default=None,
                      doc="Thin LVs of one thin pool (default true); false: thick LVs"),
            ConfigKey("lvm.thinpool_name", Scope.POOL, validate=check_lv_name,
                      doc=f"Name of the thin pool (default {DEFAULT_THINPOOL})"),
            ConfigKey("lvm.thinpool_metadata_size", Scope.POOL, KeyType.SIZE,
                      validate=check_metadata_size,
                      doc="Size of the thin pool's metadata LV (--poolmetadatasize; "
                      "default: lvcreate's choice)"),
            ConfigKey("lvm.vg.force_reuse", Scope.POOL, KeyType.BOOL,
                      doc="Use an existing volume group that already holds LVs"),
            ConfigKey("volume.size", Scope.POOL, KeyType.SIZE,
                      doc=f"Default size of new volumes (default {DEFAULT_VOLUME_SIZE})"),
            ConfigKey("volume.block.filesystem", Scope.POOL, validate=check_filesystem,
                      doc="Default filesystem of new volumes (ext4, xfs, btrfs)"),
            ConfigKey("volume.block.mount_options", Scope.POOL,
                      doc="Default mount options of new volumes"),
        ),
        volume_keys=(
            ConfigKey("size", Scope.VOLUME, KeyType.SIZE, owner=SHARED,
                      doc=f"Size of the LV (default {DEFAULT_VOLUME_SIZE})"),
            ConfigKey("block.filesystem", Scope.VOLUME, validate=check_filesystem,
                      doc="Filesystem of the LV (ext4, xfs, btrfs; default ext4)"),
            ConfigKey("block.mount_options", Scope.VOLUME,
                      doc="Mount options of the LV's filesystem"),
        ),
    )

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    @classmethod
    def probe(cls) -> str | None:
        try:  # the kernel first: it is what no package can add
            misc: str | None = Path("/proc/misc").read_text()
        except OSError:
            misc = None
        control = Path("/dev/mapper/control").exists() or \
            Path("/sys/class/misc/device-mapper").exists()
        reason = device_mapper_missing(misc, control)
        if reason is not None:
            return reason
        search = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"  # sbin: not every PATH
        for tool in ("lvm", "lvcreate", "vgcreate", "pvcreate", "dmsetup"):
            if shutil.which(tool, path=search) is None:
                return f"lvm2 is not installed ({tool} is missing)"
        # probe is synchronous and may be called from the event loop: the one
        # subprocess helper runs in a loop of its own, in a thread of its own
        with ThreadPoolExecutor(1) as pool:
            done = pool.submit(trio.run, _dmsetup_version).result()
        if not done.ok or b"Driver version" not in done.stdout:
            return f"the kernel has no device-mapper (dmsetup version: {done.tail(200)})"
        return None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _vg(pool: PoolRecord) -> str:
        return pool.config.get("lvm.vg_name") or pool.name

    @staticmethod
    def _thinpool(pool: PoolRecord) -> str | None:
        if not _flag(pool.config.get("lvm.use_thinpool"), True):
            return None
        return pool.config.get("lvm.thinpool_name") or DEFAULT_THINPOOL

    def _mountpoint(self, pool: PoolRecord, volume: Volume) -> Path:
        return (self.ctx.state_dir / "storage-pools" / pool.name / _TYPES[volume.type] /
                volume.storage_name)

    def _lv(self, volume: Volume, snapshot: str | None = None) -> str:
        if volume.type not in _TYPES:
            raise InvalidArgument(f"lvm pools hold no {volume.type} volumes")
        return lv_name(volume.type, volume.storage_name, snapshot)

    @staticmethod
    def _filesystem(pool: PoolRecord, volume: Volume) -> str:
        return volume.config.get("block.filesystem") or \
            pool.config.get("volume.block.filesystem") or DEFAULT_FILESYSTEM

    @staticmethod
    def _size(pool: PoolRecord, volume: Volume) -> str:
        return volume.config.get("size") or pool.config.get("volume.size") or \
            DEFAULT_VOLUME_SIZE

    async def _lvm(self, argv: list[str], *, timeout: float = 120) -> str:
        outcome = await run(argv, check=False, timeout=timeout,
                            env={**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"})
        if not outcome.ok:
            text = outcome.stderr.decode(errors="replace")
            reason = missing_kernel_feature(text)
            if reason is not None:
                raise Unavailable(f"{argv[0]} failed: {reason}")
            raise InvalidArgument(f"{argv[0]} failed: {outcome.tail()}")
        return outcome.stdout.decode()

    async def _vg_info(self, vg: str) -> dict[str, str] | None:
        outcome = await run(report_argv("vgs", _VG_FIELDS, vg), check=False)
        rows = parse_report_json(outcome.stdout.decode() or "{}", "vg")
        return rows[0] if outcome.ok and rows else None

    async def _lvs(self, vg: str) -> list[dict[str, str]]:
        return parse_report_json(await self._lvm(report_argv("lvs", _LV_FIELDS, vg)), "lv")

    # ------------------------------------------------------------------ pools
    async def create_pool(self, pool: PoolRecord) -> dict[str, str]:
        check_pool_config(pool.config)
        source = pool.config.get("source", "")
        vg = self._vg(pool)
        if source and not source.startswith("/"):
            vg = source  # an existing volume group
        config: dict[str, str] = {"lvm.vg_name": vg}
        thinpool = self._thinpool(pool)
        created_file: Path | None = None
        loop: str | None = None
        made_vg = False
        try:
            if source and not source.startswith("/"):
                info = await self._vg_info(vg)
                if info is None:
                    raise InvalidArgument(f"Volume group {vg!r} does not exist", source=vg)
                if int(info["lv_count"]) and not is_true(pool.config.get("lvm.vg.force_reuse")):
                    raise InvalidArgument(f"Volume group {vg!r} is not empty (set "
                                          "lvm.vg.force_reuse=true to use it)", source=vg)
                config.update({"source": vg, "volatile.kind": "vg"})
            else:
                if await self._vg_info(vg) is not None:
                    raise InvalidArgument(f"Volume group {vg!r} exists already",
                                          key="lvm.vg_name")
                if source.startswith("/dev/"):
                    if not stat.S_ISBLK(os.stat(source).st_mode):
                        raise InvalidArgument(f"source {source} is not a block device",
                                              source=source)
                    device, kind = source, "device"
                else:
                    image = Path(source) if source else \
                        self.ctx.state_dir / "disks" / f"{pool.name}.img"
                    size = pool.config.get("size", DEFAULT_POOL_SIZE)
                    check_pool_size(size)
                    image.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    fd = os.open(image, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                    created_file = image
                    try:
                        os.ftruncate(fd, parse_size(size))
                    finally:
                        os.close(fd)
                    loop = await self._attach_loop(str(image))
                    device, kind, source = loop, "loop", str(image)
                    config["size"] = size
                await self._lvm(pvcreate_argv(device))
                await self._lvm(vgcreate_argv(vg, device))
                made_vg = True
                config.update({"source": source, "volatile.kind": kind})
            if thinpool is not None:
                lvs = {row["lv_name"] for row in await self._lvs(vg)}
                if thinpool not in lvs:
                    await self._lvm(thinpool_create_argv(
                        vg, thinpool, pool.config.get("lvm.thinpool_metadata_size")))
                config["lvm.thinpool_name"] = thinpool
        except BaseException:
            with trio.CancelScope(shield=True):
                if made_vg:
                    await run(["vgremove", "--yes", "--force", vg], check=False)
                    await run(["pvremove", "--yes", "--force", loop or source], check=False)
                if loop is not None:
                    await run(["losetup", "-d", loop], check=False)
                if created_file is not None:
                    created_file.unlink(missing_ok=True)
            raise
        return config

    async def _attach_loop(self, image: str) -> str:
        outcome = await run(["losetup", "--find", "--show", image])
        return outcome.stdout.decode().strip()

    async def mount_pool(self, pool: PoolRecord) -> None:
        vg, source = self._vg(pool), pool.config.get("source", "")
        if pool.config.get("volatile.kind") == "loop":
            if not os.path.exists(source):
                raise Unavailable(f"Source {source} of pool {pool.name!r} is missing",
                                  pool=pool.name)
            listed = await run(["losetup", "--associated", source, "--noheadings",
                                "--output", "NAME"], check=False)
            if not listed.stdout.strip():
                await self._attach_loop(source)
            await run(["pvscan", "--cache"], check=False)
        if await self._vg_info(vg) is None:
            raise Unavailable(f"Volume group {vg!r} of pool {pool.name!r} is missing",
                              pool=pool.name)
        try:
            await self._lvm(["vgchange", "--activate", "y", vg])
        except InvalidArgument as exc:
            raise Unavailable(str(exc), pool=pool.name) from None

    async def unmount_pool(self, pool: PoolRecord) -> None:
        vg = self._vg(pool)
        await run(["vgchange", "--activate", "n", vg], check=False)
        if pool.config.get("volatile.kind") == "loop":
            listed = await run(["losetup", "--associated", pool.config["source"],
                                "--noheadings", "--output", "NAME"], check=False)
            for dev in listed.stdout.decode().split():
                await run(["losetup", "-d", dev], check=False)

    async def delete_pool(self, pool: PoolRecord) -> None:
        vg, kind = self._vg(pool), pool.config.get("volatile.kind", "loop")
        if kind == "vg":  # not ours: only the thin pool we made goes
            thinpool = self._thinpool(pool)
            if thinpool is not None:
                await run(lvremove_argv(vg, thinpool), check=False)
            return
        listed = await run(report_argv("pvs", ("pv_name", "vg_name")), check=False)
        pvs = [r["pv_name"] for r in parse_report_json(listed.stdout.decode() or "{}", "pv")
               if r.get("vg_name") == vg]
        await run(["vgremove", "--yes", "--force", vg], check=False)
        for pv in pvs:
            await run(["pvremove", "--yes", "--force", pv], check=False)
        await self.unmount_pool(pool)
        if kind == "loop":
            Path(pool.config.get("source", "")).unlink(missing_ok=True)
        shutil.rmtree(self.ctx.state_dir / "storage-pools" / pool.name, ignore_errors=True)

    # ------------------------------------------------------------------ volumes
    async def _new_lv(self, pool: PoolRecord, volume: Volume, lv: str) -> None:
        vg = self._vg(pool)
        await self._lvm(lvcreate_argv(vg, lv, self._size(pool, volume),
                                      self._thinpool(pool)))
        try:
            await run(mkfs_argv(self._filesystem(pool, volume), lv_path(vg, lv)),
                      timeout=300)
        except BaseException:
            with trio.CancelScope(shield=True):
                await run(lvremove_argv(vg, lv), check=False)
            raise

    async def _mount(self, pool: PoolRecord, volume: Volume, lv: str, target: Path) -> None:
        fs = self._filesystem(pool, volume)
        options = volume.config.get("block.mount_options") or \
            pool.config.get("volume.block.mount_options") or default_mount_options(fs)
        target.mkdir(parents=True, exist_ok=True, mode=0o711)
        if os.path.ismount(target):
            return
        await run(["mount", "-t", fs, *(["-o", options] if options else []),
                   lv_path(self._vg(pool), lv), target], timeout=60)

    async def create_volume(self, pool: PoolRecord, volume: Volume) -> None:
        lv = self._lv(volume)
        await self._new_lv(pool, volume, lv)
        target = self._mountpoint(pool, volume)
        try:
            await self._mount(pool, volume, lv, target)
            (target / "rootfs").mkdir(mode=0o711, exist_ok=True)
        finally:
            with trio.CancelScope(shield=True):
                await run(["umount", target], check=False)

    async def _unpack(self, pool: PoolRecord, volume: Volume, lv: str,
                      image: ImageSource) -> None:
        """A new LV holding the image's rootfs, shifted to its id map; left unmounted."""
        await self._new_lv(pool, volume, lv)
        target = self._mountpoint(pool, volume)
        try:
            await self._mount(pool, volume, lv, target)
            await run(["tar", "-xf", image.tarball, "-C", target, "--numeric-owner",
                       "--xattrs", "--xattrs-include=*", "rootfs"], timeout=600)
            if image.idmap is not None:
                await trio.to_thread.run_sync(shift_tree, target / "rootfs",
                                              image.idmap.uid_base, image.idmap.gid_base,
                                              limiter=_limiter)
            await run(["umount", target])
        except BaseException:
            with trio.CancelScope(shield=True):
                await run(["umount", target], check=False)
                await run(lvremove_argv(self._vg(pool), lv), check=False)
            raise

    async def ensure_image_volume(self, pool: PoolRecord, image: ImageSource) -> None:
        """On a thin pool: a thin LV per image and id map, renamed into place once
        complete. Thick LVs cannot be cloned cheaply: there, each instance unpacks."""
        if self._thinpool(pool) is None:
            return
        vg = self._vg(pool)
        lv = lv_name(VolumeType.IMAGE, image.variant)
        if any(row["lv_name"] == lv for row in await self._lvs(vg)):
            return
        partial = lv + "_partial"
        await run(lvremove_argv(vg, partial), check=False)
        await self._unpack(pool, Volume(image.variant, VolumeType.IMAGE), partial, image)
        await self._lvm(lvrename_argv(vg, partial, lv))

    async def delete_image_volume(self, pool: PoolRecord, fingerprint: str) -> None:
        vg = self._vg(pool)
        prefix = lv_name(VolumeType.IMAGE, fingerprint + ".")
        for row in await self._lvs(vg):
            if row["lv_name"].startswith(prefix):
                # thin snapshots do not depend on their origin: instances keep theirs
                await run(lvremove_argv(vg, row["lv_name"]), check=False)

    async def create_volume_from_image(self, pool: PoolRecord, volume: Volume,
                                       image: ImageSource) -> None:
        vg, lv = self._vg(pool), self._lv(volume)
        origin = lv_name(VolumeType.IMAGE, image.variant)
        if self._thinpool(pool) is None:
            await self._unpack(pool, volume, lv, image)
            return
        await self._lvm(snapshot_argv(vg, origin, lv, thin=True, readonly=False))
        size = volume.config.get("size")
        if size:
            try:
                await self.set_quota(pool, volume, parse_size(size))
            except BaseException:
                with trio.CancelScope(shield=True):
                    await run(lvremove_argv(vg, lv), check=False)
                raise

    async def delete_volume(self, pool: PoolRecord, volume: Volume) -> None:
        vg, lv = self._vg(pool), self._lv(volume)
        await self.unmount_volume(pool, volume)
        for row in await self._lvs(vg):
            snap = snapshot_of(row["lv_name"], lv)
            if snap is not None:
                await self.unmount_snapshot(pool, volume, snap)
            if row["lv_name"] == lv or snap is not None:
                await run(lvremove_argv(vg, row["lv_name"]), check=False)

    async def mount_volume(self, pool: PoolRecord, volume: Volume) -> MountedVolume:
        lv = self._lv(volume)
        if not os.path.exists(lv_path(self._vg(pool), lv)):
            raise NotFound(f"Volume {volume.name!r} not found on pool {pool.name!r}")
        target = self._mountpoint(pool, volume)
        await self._mount(pool, volume, lv, target)
        return MountedVolume(target / "rootfs")

    async def unmount_volume(self, pool: PoolRecord, volume: Volume) -> None:
        target = self._mountpoint(pool, volume)
        if os.path.ismount(target):
            await run(["umount", target], timeout=60)

    async def rename_volume(self, pool: PoolRecord, volume: Volume, new_name: str) -> None:
        vg, lv = self._vg(pool), self._lv(volume)
        new = Volume(new_name, volume.type, volume.content, volume.project, volume.config)
        names = [row["lv_name"] for row in await self._lvs(vg)]
        if lv not in names:
            raise NotFound(f"Volume {volume.name!r} not found on pool {pool.name!r}")
        if self._lv(new) in names or any(snapshot_of(n, self._lv(new)) for n in names):
            raise InvalidArgument(f"Volume {new_name!r} exists on pool {pool.name!r}")
        await self.unmount_volume(pool, volume)
        for name in names:
            snap = snapshot_of(name, lv)
            if snap is not None:
                await self._lvm(lvrename_argv(vg, name, self._lv(new, snap)))
        await self._lvm(lvrename_argv(vg, lv, self._lv(new)))

    async def copy_volume(self, pool: PoolRecord, source: Volume, target_pool: PoolRecord,
                          target: Volume, *, snapshots: Sequence[str] = (),
                          from_snapshot: str | None = None) -> None:
        """Within one thin pool: thin snapshots (of each snapshot, read-only, then of
        the volume or of ``from_snapshot``, writable), which share blocks but do not
        depend on their origin. Otherwise (another VG, or thick LVs, where no LV can
        be a snapshot of a snapshot): a new LV filled by rsync from each snapshot in
        turn (mounted read-only), snapshotted under its name, then from the volume."""
        vg, tvg = self._vg(pool), self._vg(target_pool)
        names = [row["lv_name"] for row in await self._lvs(vg)]
        if self._lv(source) not in names:
            raise NotFound(f"Volume {source.name!r} not found on pool {pool.name!r}")
        for name in (*snapshots, *([from_snapshot] if from_snapshot else [])):
            if self._lv(source, name) not in names:
                raise NotFound(f"Snapshot {name!r} of {source.name!r} not found")
        tnames = names if tvg == vg else [row["lv_name"] for row in await self._lvs(tvg)]
        lv = self._lv(target)
        if lv in tnames or any(snapshot_of(n, lv) for n in tnames):
            raise InvalidArgument(f"Volume {target.name!r} exists on pool {target_pool.name!r}")
        origin = self._lv(source, from_snapshot) if from_snapshot else self._lv(source)
        try:
            if tvg == vg and self._thinpool(pool) is not None:
                for name in snapshots:
                    await self._lvm(snapshot_argv(vg, self._lv(source, name),
                                                  self._lv(target, name), thin=True))
                await self._lvm(snapshot_argv(vg, origin, lv, thin=True, readonly=False))
                size = target.config.get("size")
                if size:
                    await self.set_quota(target_pool, target, parse_size(size))
                return
            await self.create_volume(target_pool, target)
            for name in snapshots:
                mounted = await self.mount_snapshot(pool, source, name)
                try:
                    await self._fill(target_pool, target, mounted.path)
                finally:
                    with trio.CancelScope(shield=True):
                        await self.unmount_snapshot(pool, source, name)
                await self.create_snapshot(target_pool, target, name)
            if from_snapshot:
                mounted = await self.mount_snapshot(pool, source, from_snapshot)
                try:
                    await self._fill(target_pool, target, mounted.path)
                finally:
                    with trio.CancelScope(shield=True):
                        await self.unmount_snapshot(pool, source, from_snapshot)
            else:
                was_mounted = os.path.ismount(self._mountpoint(pool, source))
                src = await self.mount_volume(pool, source)
                try:
                    await self._fill(target_pool, target, src.path)
                finally:
                    if not was_mounted:
                        with trio.CancelScope(shield=True):
                            await self.unmount_volume(pool, source)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.delete_volume(target_pool, target)
            raise

    async def _fill(self, pool: PoolRecord, volume: Volume, content: Path) -> None:
        """The volume's content made that of ``content`` (rsync --delete); left
        unmounted, so that a snapshot of it is taken of a clean filesystem."""
        dst = await self.mount_volume(pool, volume)
        try:
            await run(["rsync", "-aHAX", "--numeric-ids", "--delete", f"{content}/",
                       f"{dst.path}/"], timeout=3600)
        finally:
            with trio.CancelScope(shield=True):
                await self.unmount_volume(pool, volume)

    async def usage(self, pool: PoolRecord, volume: Volume) -> VolumeUsage:
        target = self._mountpoint(pool, volume)
        lv = self._lv(volume)
        total = next((as_bytes(r["lv_size"]) for r in await self._lvs(self._vg(pool))
                      if r["lv_name"] == lv), None)
        if os.path.ismount(target):
            st = os.statvfs(target)
            return VolumeUsage((st.f_blocks - st.f_bfree) * st.f_frsize, total)
        return VolumeUsage(0, total)

    # ------------------------------------------------------------------ quotas
    async def set_quota(self, pool: PoolRecord, volume: Volume, size: int) -> None:
        vg, lv = self._vg(pool), self._lv(volume)
        size = size or parse_size(DEFAULT_VOLUME_SIZE)
        old = next((as_bytes(r["lv_size"]) for r in await self._lvs(vg)
                    if r["lv_name"] == lv), None)
        if old is None:
            raise NotFound(f"Volume {volume.name!r} not found on pool {pool.name!r}")
        target = self._mountpoint(pool, volume)
        await self._mount(pool, volume, lv, target)
        for argv in resize_plan(self._filesystem(pool, volume), lv_path(vg, lv), str(target),
                                old, size, vg, lv):
            await self._lvm(argv) if argv[0].startswith("lv") else await run(argv)

    # ------------------------------------------------------------------ snapshots
    async def create_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        thin = self._thinpool(pool) is not None
        await self._lvm(snapshot_argv(self._vg(pool), self._lv(volume),
                                      self._lv(volume, name), thin=thin,
                                      size=None if thin else self._size(pool, volume)))

    async def delete_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        await self.unmount_snapshot(pool, volume, name)
        await run(lvremove_argv(self._vg(pool), self._lv(volume, name)), check=False)

    async def restore_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        vg, lv, snap = self._vg(pool), self._lv(volume), self._lv(volume, name)
        await self.unmount_volume(pool, volume)
        if self._thinpool(pool) is None:  # merge a COW snapshot back (it goes)
            raise InvalidArgument("Restoring a snapshot on thick LVs would merge it away: "
                                  "use lvm.use_thinpool=true")
        staging = lv + "_restoring"
        await self._lvm(snapshot_argv(vg, snap, staging, thin=True, readonly=False))
        await self._lvm(lvremove_argv(vg, lv))
        await self._lvm(lvrename_argv(vg, staging, lv))

    async def list_snapshots(self, pool: PoolRecord, volume: Volume) -> list[str]:
        lv = self._lv(volume)
        return [s for r in snapshot_order(await self._lvs(self._vg(pool)))
                if (s := snapshot_of(r["lv_name"], lv)) is not None]


    async def rename_snapshot(self, pool: PoolRecord, volume: Volume, name: str,
                              new_name: str) -> None:
        vg = self._vg(pool)
        names = await self.list_snapshots(pool, volume)
        if name not in names:
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        if new_name in names:
            raise InvalidArgument(f"Snapshot {new_name!r} of {volume.name!r} exists")
        await self.unmount_snapshot(pool, volume, name)
        await self._lvm(lvrename_argv(vg, self._lv(volume, name), self._lv(volume, new_name)))

    def _snapshot_mountpoint(self, pool: PoolRecord, volume: Volume, name: str) -> Path:
        return (self.ctx.state_dir / "storage-pools" / pool.name / "snapshots" /
                _TYPES[volume.type] / volume.storage_name / name)

    async def mount_snapshot(self, pool: PoolRecord, volume: Volume, name: str
                             ) -> MountedVolume:
        """The snapshot LV activated (``-ay -K``) and mounted read-only."""
        vg, lv = self._vg(pool), self._lv(volume, name)
        if name not in await self.list_snapshots(pool, volume):
            raise NotFound(f"Snapshot {name!r} of {volume.name!r} not found")
        fs = self._filesystem(pool, volume)
        configured = volume.config.get("block.mount_options") or \
            pool.config.get("volume.block.mount_options") or default_mount_options(fs)
        options = snapshot_mount_options(fs, configured)
        target = self._snapshot_mountpoint(pool, volume, name)
        await self._lvm(activate_argv(vg, lv))
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.path.ismount(target):
            await run(["mount", "-t", fs, "-o", options, lv_path(vg, lv), target],
                      timeout=60)
        return MountedVolume(target / "rootfs")

    async def unmount_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        target = self._snapshot_mountpoint(pool, volume, name)
        if os.path.ismount(target):
            await run(["umount", target], timeout=60)
        try:
            target.rmdir()
        except OSError:
            pass

@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_storage(LvmDriver)
