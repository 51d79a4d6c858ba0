"""Moving a volume's data from one pool to another: the one primitive behind volume and
instance copy and move (and, later, migration between hosts).

Between two pools of one driver the driver copies natively (``copy_volume``: btrfs
send/receive, zfs send/recv, a snapshot within one pool); between drivers, or when the
daemon's ``storage.native_transfers`` is false, the core rsyncs the mounted trees, each
snapshot first (oldest first, snapshotted on the target as it arrives), then the volume.
"""

from __future__ import annotations

import enum
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from lxctl.drivers.devices import MountedVolume
from lxctl.drivers.storage import StorageDriver, Volume
from lxctl.errors import InvalidState
from lxctl.execute import run
from lxctl.kernel.shield import shielded
from lxctl.objects.pools import snapshots_of
from lxctl.state.records import PoolRecord

RSYNC = ["rsync", "-aHAXS", "--numeric-ids", "--delete"]  # -S: sparse files stay sparse
RSYNC_TIMEOUT = 3600.0


class Method(enum.StrEnum):
    NATIVE = "native"
    RSYNC = "rsync"


def method(src_pool: PoolRecord, src: StorageDriver, dst_pool: PoolRecord,
           dst: StorageDriver, *, native: bool = True) -> Method:
    """How a transfer between these pools goes: natively when one driver serves both
    (always within one pool), else rsync."""
    if src is dst and (native or src_pool.name == dst_pool.name):
        return Method.NATIVE
    return Method.RSYNC


async def transfer(src_pool: PoolRecord, src: StorageDriver, volume: Volume,
                   dst_pool: PoolRecord, dst: StorageDriver, target: Volume, *,
                   snapshots: Sequence[str] = (), from_snapshot: str | None = None,
                   native: bool = True) -> Method:
    """Make ``target`` on ``dst_pool`` from ``volume``: with its ``snapshots`` (oldest
    first, same names), or only the content of its snapshot ``from_snapshot``. The
    target must not exist; if anything fails none of it is left. Returns the method."""
    how = method(src_pool, src, dst_pool, dst, native=native)
    if how is Method.NATIVE:
        await src.copy_volume(src_pool, volume, dst_pool, target, snapshots=snapshots,
                              from_snapshot=from_snapshot)
        return how
    if snapshots or from_snapshot is not None:
        snapshots_of(src)  # refused (clearly) where the source has none
    if snapshots:
        snapshots_of(dst)  # ... or the target cannot keep them
    await dst.create_volume(dst_pool, target)
    try:
        into = (await dst.mount_volume(dst_pool, target)).path
        for i, name in enumerate(snapshots):
            await _rsync_snapshot(src_pool, src, volume, name, into, again=i > 0)
            await snapshots_of(dst).create_snapshot(dst_pool, target, name)
        if from_snapshot is not None:
            await _rsync_snapshot(src_pool, src, volume, from_snapshot, into)
        else:
            async with readable(await src.mount_volume(src_pool, volume)) as tree:
                await rsync(tree, into, again=bool(snapshots))
        await dst.unmount_volume(dst_pool, target)
    except BaseException:
        with shielded(f"Removing the partial copy {target.name} on {dst_pool.name}"):
            await dst.delete_volume(dst_pool, target)
        raise
    return how


async def _rsync_snapshot(pool: PoolRecord, driver: StorageDriver, volume: Volume,
                          name: str, into: Path, *, again: bool = False) -> None:
    snaps = snapshots_of(driver)
    mounted = await snaps.mount_snapshot(pool, volume, name)
    try:
        async with readable(mounted) as tree:
            await rsync(tree, into, again=again)
    finally:
        with trio.CancelScope(shield=True):
            await snaps.unmount_snapshot(pool, volume, name)


@asynccontextmanager
async def readable(mounted: MountedVolume) -> AsyncIterator[Path]:
    """The volume's whole tree: its directory, or, for an overlay of its changes on a
    lower layer (dir's image-backed volumes), both merged in a read-only overlay mount
    (the changes layer alone holds whiteouts, not the image's files)."""
    if mounted.block:
        raise InvalidState("Block volumes cannot be copied between drivers by rsync")
    if mounted.lower is None:
        yield mounted.path
        return
    layers = (mounted.path, mounted.lower)
    if any(c in str(p) for p in layers for c in ",:"):
        raise InvalidState(f"Cannot read the overlay of {mounted.path}: a layer's path "
                           "holds ',' or ':'")
    with tempfile.TemporaryDirectory(prefix="lxctl-transfer-") as tmp:
        await run(["mount", "-t", "overlay", "overlay", "-o",
                   f"ro,lowerdir={mounted.path}:{mounted.lower}", tmp], timeout=60)
        try:
            yield Path(tmp)
        finally:
            with trio.CancelScope(shield=True):
                await run(["umount", tmp], check=False, timeout=60)


async def rsync(source: Path, target: Path, *, again: bool = False) -> None:
    """``target`` becomes a copy of ``source`` (directories), owners and ids as they are.

    ``again``: ``target`` holds an earlier state of ``source`` (the snapshot before):
    files are compared by content, as a file changed within the same second keeps its
    size and mtime, and rewriting unchanged ones would unshare them from the snapshot."""
    await run([*RSYNC, *(["--checksum"] if again else []), f"{source}/", f"{target}/"],
              timeout=RSYNC_TIMEOUT)
