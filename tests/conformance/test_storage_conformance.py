"""Storage driver conformance: pools, image volumes, instance volumes, snapshots, as
each driver's ``StorageInfo`` declares them."""

from __future__ import annotations

import io
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


def _tarball(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("metadata.yaml", b"architecture: x86_64\n"),
                           ("rootfs/etc/hostname", b"conformance\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _driver(cls: Any, tmp_path: Path) -> tuple[StorageDriver, PoolRecord]:
    driver: StorageDriver = cls(DriverContext(tmp_path / "state", "conform", None))
    return driver, PoolRecord("lxt-conform", driver.info.name,
                              {"source": str(tmp_path / "pool")})


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
        if driver.info.name == "dir":  # a real filesystem: the image's files are there
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
    if driver.info.name == "dir":
        assert not (tmp_path / "pool").exists()


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
