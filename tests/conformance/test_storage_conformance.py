"""Storage driver conformance: pools, image volumes, instance volumes, snapshots, as
each driver's ``StorageInfo`` declares them."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from drivers import driver_classes

from lxctl.config.schema import Scope
from lxctl.drivers.context import DriverContext
from lxctl.drivers.storage import ImageSource, StorageDriver, Volume, VolumeType
from lxctl.errors import InvalidArgument, NotFound
from lxctl.objects.pools import snapshots_of
from lxctl.state.records import PoolRecord

STORAGE = driver_classes("storage")


@pytest.fixture(autouse=True)
def leaves_nothing_on_failure(tmp_path: Path) -> Iterator[None]:
    """A test that fails half-way still takes its pools down: the zpools named after its
    directory, the mounts under it, the loop devices of its files (a run after a failed
    one would otherwise find them, and the machine keep them)."""
    yield
    prefixes = (f"lxt-conform-{tmp_path.name[-12:]}",  # _driver's and _pools' names
                f"lxt-cf{os.getpid()}-{tmp_path.name[-10:]}-")
    try:
        listed = subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True,
                                text=True, check=False, timeout=30)
        for zpool in listed.stdout.split() if listed.returncode == 0 else []:
            if zpool.startswith(prefixes):
                subprocess.run(["zpool", "destroy", "-f", zpool], capture_output=True,
                               check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pass  # no zfs tools, or a zfs-fuse that no longer answers: the test said so
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(tmp_path))), key=len,
                        reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=False)
    for line in loops.stdout.splitlines():
        if str(tmp_path) in line:
            subprocess.run(["losetup", "-d", line.split(":", 1)[0]], capture_output=True,
                           check=False)
REAL = {"dir", "btrfs", "zfs"}  # drivers whose volumes are real directories


def _tarball(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("metadata.yaml", b"architecture: x86_64\n"),
                           ("rootfs/etc/hostname", b"conformance\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _pool_config(name: str, tmp_path: Path) -> dict[str, str]:
    """A small pool of each driver on this machine: loop files where it needs a device."""
    if name in ("btrfs", "zfs", "lvm"):
        return {"source": str(tmp_path / "pool.img"), "size": "512MiB"}
    return {"source": str(tmp_path / "pool")}


def _driver(cls: Any, tmp_path: Path) -> tuple[StorageDriver, PoolRecord]:
    driver: StorageDriver = cls(DriverContext(tmp_path / "state", "conform", None))
    name = f"lxt-conform-{tmp_path.name[-12:]}"
    return driver, PoolRecord(name, driver.info.name, _pool_config(driver.info.name, tmp_path))


@pytest.mark.parametrize("cls", STORAGE)
def test_info_is_complete(cls: Any) -> None:
    info = cls.info
    assert info.name and info.volume_types
    assert VolumeType.IMAGE not in info.volume_types or info.optimized_images
    assert all(key.scope is Scope.POOL for key in info.pool_keys)
    assert all(key.scope is Scope.VOLUME for key in info.volume_keys)


@pytest.mark.parametrize("cls", STORAGE)
async def test_pool_and_instance_volume_lifecycle(cls: Any, tmp_path: Path) -> None:
    driver, pool = _driver(cls, tmp_path)
    image = ImageSource("f00d", _tarball(tmp_path / "img.tar.gz"), None)
    volume = Volume("c1", VolumeType.CONTAINER)
    with trio.fail_after(60):
        pool.config.update(await driver.create_pool(pool))
        await driver.mount_pool(pool)
        if driver.info.optimized_images:
            await driver.ensure_image_volume(pool, image)
            await driver.ensure_image_volume(pool, image)  # idempotent
        await driver.create_volume_from_image(pool, volume, image)
        mounted = await driver.mount_volume(pool, volume)
        if driver.info.name in REAL:  # a real filesystem: the image's files are there
            base = mounted.lower or mounted.path
            assert (base / "etc" / "hostname").read_text() == "conformance\n"
        assert (await driver.usage(pool, volume)).used >= 0
        await driver.unmount_volume(pool, volume)
        await driver.delete_volume(pool, volume)
        await driver.delete_volume(pool, volume)  # deleting what is gone is no error
        if driver.info.optimized_images:
            await driver.delete_image_volume(pool, image.fingerprint)
        await driver.unmount_pool(pool)
        await driver.delete_pool(pool)
    assert not (tmp_path / "pool").exists()
    assert not (tmp_path / "pool.img").exists()
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


@pytest.mark.parametrize("cls", STORAGE)
async def test_snapshots_where_declared(cls: Any, tmp_path: Path) -> None:
    driver, pool = _driver(cls, tmp_path)
    if not driver.info.snapshots:
        with pytest.raises(Exception, match="does not support snapshots"):
            snapshots_of(driver)
        return
    image = ImageSource("f00d", _tarball(tmp_path / "img.tar.gz"), None)
    volume = Volume("c1", VolumeType.CONTAINER)
    snaps = snapshots_of(driver)
    with trio.fail_after(60):
        pool.config.update(await driver.create_pool(pool))
        await driver.mount_pool(pool)
        if driver.info.optimized_images:
            await driver.ensure_image_volume(pool, image)
        await driver.create_volume_from_image(pool, volume, image)
        real = driver.info.name in REAL  # else its volumes are no directories (fakes)
        root = (await driver.mount_volume(pool, volume)).path
        if real:
            (root / "state").write_text("one")
        await snaps.create_snapshot(pool, volume, "snap0")
        if real:
            (root / "state").write_text("two")
        assert await snaps.list_snapshots(pool, volume) == ["snap0"]
        await snaps.restore_snapshot(pool, volume, "snap0")
        root = (await driver.mount_volume(pool, volume)).path
        if real:
            assert (root / "state").read_text() == "one"
        await snaps.delete_snapshot(pool, volume, "snap0")
        assert await snaps.list_snapshots(pool, volume) == []
        # any valid name is the user's: none is mistaken for a driver's temporary one
        for name in ("copy-1", "readonly", "snapshot-mount.x", "send-1"):
            await snaps.create_snapshot(pool, volume, name)
        assert await snaps.list_snapshots(pool, volume) == [
            "copy-1", "readonly", "snapshot-mount.x", "send-1"]
        await driver.delete_volume(pool, volume)
        await driver.delete_pool(pool)


@pytest.mark.parametrize("cls", [p for p in STORAGE if p.values[0].info.name in REAL])
async def test_custom_volume_quota_and_copy(cls: Any, tmp_path: Path) -> None:
    """A custom volume: written past its ``size`` (where quotas are declared) refused;
    copied to a second pool of the driver (send/receive where declared) with its
    content."""
    driver, pool = _driver(cls, tmp_path / "a")
    driver2 = driver  # one driver object serves every pool of its kind
    pool2 = PoolRecord(pool.name + "-2", driver.info.name,
                       _pool_config(driver.info.name, tmp_path / "b"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config = {"size": "32MiB"} if driver.info.quotas else {}
    volume = Volume("v1", VolumeType.CUSTOM, config=config)
    with trio.fail_after(120):
        pool.config.update(await driver.create_pool(pool))
        pool2.config.update(await driver2.create_pool(pool2))
        try:
            await driver.create_volume(pool, volume)
            root = (await driver.mount_volume(pool, volume)).path
            (root / "data").write_bytes(b"x" * 4096)
            if driver.info.quotas:
                with pytest.raises(OSError, match="quota"), open(root / "big", "wb") as f:
                    for _ in range(64):
                        f.write(b"\0" * 2**20)
                        f.flush()
                        os.fsync(f.fileno())
                (root / "big").unlink()
            await driver.copy_volume(pool, volume, pool2, Volume("v2", VolumeType.CUSTOM))
            copied = (await driver2.mount_volume(pool2, Volume("v2", VolumeType.CUSTOM))).path
            assert (copied / "data").read_bytes() == b"x" * 4096
            (copied / "data").write_text("mine")  # the copy is writable and apart
            assert (root / "data").read_bytes() == b"x" * 4096
        finally:
            with trio.CancelScope(shield=True):
                await driver.delete_volume(pool, volume)
                await driver2.delete_volume(pool2, Volume("v2", VolumeType.CUSTOM))
                await driver.delete_pool(pool)
                await driver2.delete_pool(pool2)
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


# ---------------------------------------------------------------------- rename, copy
# drivers with snapshots whose volumes are directories to read and write (lvm: mounted
# LVs, where the kernel has device-mapper); not the fakes
SNAPSHOTTING = [p for p in STORAGE if p.values[0].info.snapshots
                and p.values[0].info.name in REAL | {"lvm"}]
GiB = 2**30


@asynccontextmanager
async def _pools(cls: Any, tmp_path: Path, count: int
                 ) -> AsyncIterator[tuple[StorageDriver, list[PoolRecord]]]:
    """``count`` pools of one driver object (unique names: the zfs-fuse daemon is the
    machine's), with the test image where the driver keeps image volumes; deleted with
    everything on them, also on failure."""
    driver: StorageDriver = cls(DriverContext(tmp_path / "state", "conform", None))
    pools = []
    for i in range(count):
        (tmp_path / f"p{i}").mkdir()
        name = f"lxt-cf{os.getpid()}-{tmp_path.name[-10:]}-{i}"
        pools.append(PoolRecord(name, driver.info.name,
                                _pool_config(driver.info.name, tmp_path / f"p{i}")))
    image = ImageSource("f00d", _tarball(tmp_path / "img.tar.gz"), None)
    made: list[PoolRecord] = []
    try:
        for pool in pools:
            pool.config.update(await driver.create_pool(pool))
            made.append(pool)
            if driver.info.optimized_images:
                await driver.ensure_image_volume(pool, image)
        yield driver, pools
    finally:
        with trio.CancelScope(shield=True):
            for pool in made:
                await driver.delete_pool(pool)
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


async def _volume_with_snapshots(driver: StorageDriver, pool: PoolRecord, name: str
                                 ) -> Volume:
    """An instance volume from the image: ``state`` "one" in snap0, "two" in snap1,
    "three" live."""
    volume = Volume(name, VolumeType.CONTAINER)
    image = ImageSource("f00d", pool_image(pool), None)
    await driver.create_volume_from_image(pool, volume, image)
    snaps = snapshots_of(driver)
    for i, text in enumerate(("one", "two")):
        root = (await driver.mount_volume(pool, volume)).path
        (root / "state").write_text(text)
        (root / f"only{i}").write_text(text)
        await driver.unmount_volume(pool, volume)  # lvm: a clean filesystem to snapshot
        await snaps.create_snapshot(pool, volume, f"snap{i}")
    root = (await driver.mount_volume(pool, volume)).path
    (root / "state").write_text("three")
    (root / "only0").unlink()
    await driver.unmount_volume(pool, volume)
    return volume


def pool_image(pool: PoolRecord) -> Path:
    return Path(pool.config["source"]).parent.parent / "img.tar.gz"


async def _content(driver: StorageDriver, pool: PoolRecord, volume: Volume,
                   snapshot: str | None = None) -> dict[str, str]:
    """The test's files in the volume (or one of its snapshots), and the image's."""
    snaps = snapshots_of(driver)
    mounted = await (driver.mount_volume(pool, volume) if snapshot is None
                     else snaps.mount_snapshot(pool, volume, snapshot))
    try:
        out = {p.name: p.read_text() for p in mounted.path.iterdir()
               if p.name in ("state", "only0", "only1") and p.is_file()}
        hostname = (mounted.lower or mounted.path) / "etc" / "hostname"
        out["hostname"] = hostname.read_text()
        return out
    finally:
        if snapshot is None:
            await driver.unmount_volume(pool, volume)
        else:
            await snaps.unmount_snapshot(pool, volume, snapshot)


SNAP0 = {"state": "one", "only0": "one", "hostname": "conformance\n"}
SNAP1 = {"state": "two", "only0": "one", "only1": "two", "hostname": "conformance\n"}
LIVE = {"state": "three", "only1": "two", "hostname": "conformance\n"}


@pytest.mark.parametrize("cls", SNAPSHOTTING)
async def test_rename_volume_and_snapshots(cls: Any, tmp_path: Path) -> None:
    """A volume renamed with its snapshots (the old name gone), refused onto an existing
    name with nothing changed; a snapshot renamed, refused onto an existing one."""
    with trio.fail_after(120):
        async with _pools(cls, tmp_path, 1) as (driver, [pool]):
            snaps = snapshots_of(driver)
            c1 = await _volume_with_snapshots(driver, pool, "c1")
            other = Volume("other", VolumeType.CUSTOM)
            await driver.create_volume(pool, other)
            taken = Volume("taken", VolumeType.CONTAINER)
            await driver.create_volume(pool, taken)
            with pytest.raises(InvalidArgument):
                await driver.rename_volume(pool, c1, "taken")
            assert await snaps.list_snapshots(pool, c1) == ["snap0", "snap1"]
            assert await _content(driver, pool, c1) == LIVE
            assert await snaps.list_snapshots(pool, taken) == []

            await driver.rename_volume(pool, c1, "c2")
            c2 = Volume("c2", VolumeType.CONTAINER)
            assert await _content(driver, pool, c2) == LIVE
            assert await snaps.list_snapshots(pool, c2) == ["snap0", "snap1"]
            assert await _content(driver, pool, c2, "snap0") == SNAP0
            assert await _content(driver, pool, c2, "snap1") == SNAP1
            assert await snaps.list_snapshots(pool, c1) == []
            with pytest.raises(NotFound):
                await driver.mount_volume(pool, c1)
            await snaps.create_snapshot(pool, c2, "snap2")  # it still takes snapshots

            with pytest.raises(InvalidArgument):
                await snaps.rename_snapshot(pool, c2, "snap0", "snap1")
            await snaps.rename_snapshot(pool, c2, "snap0", "first")
            assert await snaps.list_snapshots(pool, c2) == ["first", "snap1", "snap2"]
            assert await _content(driver, pool, c2, "first") == SNAP0
            with pytest.raises(NotFound):
                await snaps.mount_snapshot(pool, c2, "snap0")
            await snaps.delete_snapshot(pool, c2, "first")
            assert await snaps.list_snapshots(pool, c2) == ["snap1", "snap2"]
            await driver.delete_volume(pool, c2)
            await driver.delete_volume(pool, other)
            await driver.delete_volume(pool, taken)


@pytest.mark.parametrize("pools", [1, 2], ids=["within", "between"])
@pytest.mark.parametrize("cls", SNAPSHOTTING)
async def test_copy_with_snapshots(cls: Any, pools: int, tmp_path: Path) -> None:
    """A copy with its snapshots (same names, same content, oldest first; with the
    target's quota), within one pool and between two: the source untouched, and the
    copy independent of it (it survives the source's deletion)."""
    with trio.fail_after(180):
        async with _pools(cls, tmp_path, pools) as (driver, made):
            snaps = snapshots_of(driver)
            src_pool, dst_pool = made[0], made[-1]
            c1 = await _volume_with_snapshots(driver, src_pool, "c1")
            # above lvm's default volume size (10GiB): its ext4 does not shrink online
            quota = {"size": f"{16 * GiB}"} if driver.info.quotas else {}
            c2 = Volume("c2", VolumeType.CONTAINER, config=quota)
            started = trio.current_time()
            await driver.copy_volume(src_pool, c1, dst_pool, c2,
                                     snapshots=["snap0", "snap1"])
            print(f"{driver.info.name}: copy with 2 snapshots, {pools} pool(s): "
                  f"{trio.current_time() - started:.2f} s")
            assert await snaps.list_snapshots(dst_pool, c2) == ["snap0", "snap1"]
            assert await _content(driver, dst_pool, c2) == LIVE
            assert await _content(driver, dst_pool, c2, "snap0") == SNAP0
            assert await _content(driver, dst_pool, c2, "snap1") == SNAP1
            if driver.info.quotas:
                assert (await driver.usage(dst_pool, c2)).total == 16 * GiB
            assert await snaps.list_snapshots(src_pool, c1) == ["snap0", "snap1"]
            assert await _content(driver, src_pool, c1) == LIVE

            # a copy copied again (btrfs: received subvolumes sent on)
            c4 = Volume("c4", VolumeType.CONTAINER)
            await driver.copy_volume(dst_pool, c2, src_pool, c4,
                                     snapshots=["snap0", "snap1"])
            assert await snaps.list_snapshots(src_pool, c4) == ["snap0", "snap1"]
            assert await _content(driver, src_pool, c4, "snap0") == SNAP0
            assert await _content(driver, src_pool, c4) == LIVE
            await driver.delete_volume(src_pool, c4)

            # only the snapshots asked for
            c3 = Volume("c3", VolumeType.CONTAINER)
            await driver.copy_volume(src_pool, c1, dst_pool, c3, snapshots=["snap1"])
            assert await snaps.list_snapshots(dst_pool, c3) == ["snap1"]
            assert await _content(driver, dst_pool, c3, "snap1") == SNAP1
            assert await _content(driver, dst_pool, c3) == LIVE

            # apart: writes to the copy do not reach the source, nor the reverse
            root = (await driver.mount_volume(dst_pool, c2)).path
            (root / "state").write_text("copy")
            await driver.unmount_volume(dst_pool, c2)
            assert await _content(driver, src_pool, c1) == LIVE
            await driver.delete_volume(src_pool, c1)
            if driver.info.optimized_images:  # the source's image may go too
                await driver.delete_image_volume(src_pool, "f00d")
            assert await snaps.list_snapshots(dst_pool, c2) == ["snap0", "snap1"]
            assert await _content(driver, dst_pool, c2) == {**LIVE, "state": "copy"}
            assert await _content(driver, dst_pool, c2, "snap0") == SNAP0
            assert await _content(driver, dst_pool, c3, "snap1") == SNAP1
            await snaps.restore_snapshot(dst_pool, c2, "snap1")
            assert await _content(driver, dst_pool, c2) == SNAP1
            for volume in (c2, c3):
                await driver.delete_volume(dst_pool, volume)


@pytest.mark.parametrize("pools", [1, 2], ids=["within", "between"])
@pytest.mark.parametrize("cls", SNAPSHOTTING)
async def test_copy_from_snapshot_and_failed_copies(cls: Any, pools: int,
                                                    tmp_path: Path) -> None:
    """A copy of one snapshot's content alone (no snapshots on the target); a copy onto
    an existing volume, or of a missing snapshot, refused, leaving nothing."""
    with trio.fail_after(180):
        async with _pools(cls, tmp_path, pools) as (driver, made):
            snaps = snapshots_of(driver)
            src_pool, dst_pool = made[0], made[-1]
            c1 = await _volume_with_snapshots(driver, src_pool, "c1")
            c2 = Volume("c2", VolumeType.CONTAINER)
            await driver.copy_volume(src_pool, c1, dst_pool, c2, from_snapshot="snap0")
            assert await snaps.list_snapshots(dst_pool, c2) == []
            assert await _content(driver, dst_pool, c2) == SNAP0
            root = (await driver.mount_volume(dst_pool, c2)).path
            (root / "state").write_text("mine")  # writable
            await driver.unmount_volume(dst_pool, c2)
            await snaps.create_snapshot(dst_pool, c2, "s")
            assert await snaps.list_snapshots(src_pool, c1) == ["snap0", "snap1"]
            assert await _content(driver, src_pool, c1, "snap0") == SNAP0

            with pytest.raises(InvalidArgument):  # the target exists
                await driver.copy_volume(src_pool, c1, dst_pool, c2,
                                         snapshots=["snap0", "snap1"])
            assert await snaps.list_snapshots(dst_pool, c2) == ["s"]
            assert await _content(driver, dst_pool, c2) == {**SNAP0, "state": "mine"}
            c3 = Volume("c3", VolumeType.CONTAINER)
            with pytest.raises(NotFound):
                await driver.copy_volume(src_pool, c1, dst_pool, c3,
                                         snapshots=["snap0", "nosuch"])
            with pytest.raises(NotFound):
                await driver.copy_volume(src_pool, c1, dst_pool, c3, from_snapshot="nosuch")
            with pytest.raises(NotFound):
                await driver.mount_volume(dst_pool, c3)
            assert await snaps.list_snapshots(dst_pool, c3) == []
            await driver.delete_volume(src_pool, c1)
            assert await _content(driver, dst_pool, c2) == {**SNAP0, "state": "mine"}
            await driver.delete_volume(dst_pool, c2)


async def _stray(driver: StorageDriver, pools: list[PoolRecord]) -> list[str]:
    """What a driver's copies make for a while and must not leave (white box: the
    temporary names of the real drivers here)."""
    out: list[str] = []
    for pool in pools:
        if driver.info.name == "zfs":
            zpool = pool.config.get("zfs.pool_name") or pool.name
            listed = await trio.run_process(["zfs", "list", "-H", "-t", "all", "-o", "name",
                                             "-r", zpool], capture_stdout=True)
            out += [n for n in listed.stdout.decode().split()
                    if "@lxctl:copy-" in n or "snapshot-mount." in n]
        elif driver.info.name in ("dir", "btrfs"):
            real: Any = driver
            root: Path = real._root(pool) if driver.info.name == "btrfs" \
                else Path(pool.config["source"])
            out += [str(p) for p in root.glob("**/*")
                    if any(m in p.name for m in (".send-", ".partial", ".restoring"))]
    return out


@pytest.mark.parametrize("pools", [1, 2], ids=["within", "between"])
@pytest.mark.parametrize("cls", SNAPSHOTTING)
async def test_cancelled_copy_leaves_nothing(cls: Any, pools: int, tmp_path: Path) -> None:
    """A copy with snapshots cancelled at points of its way (fractions of the time a
    whole one takes) leaves no target, and the source as it was: the same copy then
    succeeds."""
    with trio.fail_after(240):
        async with _pools(cls, tmp_path, pools) as (driver, made):
            snaps = snapshots_of(driver)
            src_pool, dst_pool = made[0], made[-1]
            c1 = await _volume_with_snapshots(driver, src_pool, "c1")
            c2 = Volume("c2", VolumeType.CONTAINER)
            started = trio.current_time()
            await driver.copy_volume(src_pool, c1, dst_pool, c2, snapshots=["snap0", "snap1"])
            whole = trio.current_time() - started
            await driver.delete_volume(dst_pool, c2)
            cut = 0
            for fraction in (0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85):
                with trio.move_on_after(whole * fraction) as scope:
                    await driver.copy_volume(src_pool, c1, dst_pool, c2,
                                             snapshots=["snap0", "snap1"])
                if not scope.cancelled_caught:  # done before the deadline
                    await driver.delete_volume(dst_pool, c2)
                    continue
                cut += 1
                with pytest.raises(NotFound):
                    await driver.mount_volume(dst_pool, c2)
                assert await snaps.list_snapshots(dst_pool, c2) == []
                assert await snaps.list_snapshots(src_pool, c1) == ["snap0", "snap1"]
                assert await _content(driver, src_pool, c1) == LIVE
            assert cut >= 2, f"only {cut} copies were cut (a whole one: {whole:.3f} s)"
            assert await _stray(driver, made) == []
            await driver.copy_volume(src_pool, c1, dst_pool, c2, snapshots=["snap0", "snap1"])
            assert await snaps.list_snapshots(dst_pool, c2) == ["snap0", "snap1"]
            assert await _content(driver, dst_pool, c2, "snap1") == SNAP1
            assert await _content(driver, dst_pool, c2) == LIVE
