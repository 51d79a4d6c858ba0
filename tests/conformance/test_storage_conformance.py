"""Storage driver conformance: pools, image volumes, instance volumes, snapshots, as
each driver's ``StorageInfo`` declares them."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
import trio
from drivers import driver_classes

from lxctl.config.schema import Scope
from lxctl.drivers.context import DriverContext
from lxctl.drivers.storage import ImageSource, StorageDriver, Volume, VolumeType
from lxctl.objects.pools import snapshots_of
from lxctl.state.records import PoolRecord

STORAGE = driver_classes("storage")
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
    if name in ("btrfs", "zfs"):
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
        root = (await driver.mount_volume(pool, volume)).path
        (root / "state").write_text("one")
        await snaps.create_snapshot(pool, volume, "snap0")
        (root / "state").write_text("two")
        assert await snaps.list_snapshots(pool, volume) == ["snap0"]
        await snaps.restore_snapshot(pool, volume, "snap0")
        root = (await driver.mount_volume(pool, volume)).path
        assert (root / "state").read_text() == "one"
        await snaps.delete_snapshot(pool, volume, "snap0")
        assert await snaps.list_snapshots(pool, volume) == []
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
