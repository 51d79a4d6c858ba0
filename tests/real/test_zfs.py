"""The zfs driver on a real daemon (kernel ZFS or the machine's zfs-fuse): containers
launched on a zfs pool are clones (disk use stays flat), and a zfs-fuse daemon killed
under a running pool is reported clearly, the lxctl daemon stays up, and the next
operation starts zfs-fuse again and re-imports the pool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Daemon, wait_for


def _zfs_fuse_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "zfs-fuse"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]




def _used(dataset: str) -> int:
    out = subprocess.run(["zfs", "get", "-Hp", "-o", "value", "used", dataset],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


@pytest.fixture
def zpool(daemon: Daemon) -> Iterator[str]:
    name = f"lxt-zfs-{os.getpid()}"
    yield name
    for inst in ("lxt-zc1", "lxt-zc2", "lxt-zc3"):
        daemon.cli("delete", "--force", inst, timeout=120)
    daemon.cli("storage", "delete", name)
    subprocess.run(["zpool", "destroy", "-f", name], capture_output=True)


def test_launch_clones_and_a_dead_zfs_fuse(daemon: Daemon, zpool: str) -> None:
    """(tests/conftest.py stops the zfs-fuse a session started.)"""
    d = daemon
    unsupported = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info",
                         "params": {}})["result"]["drivers_unsupported"]
    if "zfs" in unsupported.get("storage", {}):
        pytest.skip(f"zfs: {unsupported['storage']['zfs']}")
    r = d.cli("storage", "create", "lxt-zbad", "zfs", "source=/dev/lxt-nope")
    assert r.returncode == 1 and "does not exist" in r.stderr, r.stderr
    r = d.cli("storage", "create", "lxt-zbad", "zfs", "source=lxt-nope-zp")  # a zpool name
    assert r.returncode == 1 and "no imported zpool" in r.stderr, r.stderr  # the driver's
    assert "lxt-zbad" not in d.ok("storage", "list")
    d.ok("storage", "create", zpool, "zfs", "size=512MiB")
    # rollback restores only the latest snapshot (Incus): an older one is refused
    d.ok("storage", "volume", "create", zpool, "v0")
    d.ok("storage", "volume", "snapshot", "create", zpool, "v0", "s1")
    d.ok("storage", "volume", "snapshot", "create", zpool, "v0", "s2")
    r = d.cli("storage", "volume", "snapshot", "restore", zpool, "v0", "s1")
    assert r.returncode == 1 and "not the latest" in r.stderr, r.stderr
    d.ok("storage", "volume", "snapshot", "restore", zpool, "v0", "s2")
    d.ok("storage", "volume", "delete", zpool, "v0")
    d.ok("launch", "bb", "lxt-zc1", "-s", zpool, timeout=120)
    assert d.ok("exec", "lxt-zc1", "--", "cat", "/etc/hostname").strip()
    d.ok("exec", "lxt-zc1", "--", "sh", "-c", "echo kept > /root/f")
    base = _used(f"{zpool}/containers")
    d.ok("launch", "bb", "lxt-zc2", "-s", zpool, timeout=120)
    d.ok("launch", "bb", "lxt-zc3", "-s", zpool, timeout=120)
    # clones of the image's snapshot: two more instances cost almost nothing
    assert _used(f"{zpool}/containers") - base < 4 * 2**20

    if not _zfs_fuse_pids():
        pytest.skip("kernel ZFS: no zfs-fuse daemon to kill")
    for pid in _zfs_fuse_pids():
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _zfs_fuse_pids())
    r = d.cli("storage", "volume", "create", zpool, "v1")
    assert r.returncode == 1 and "zfs-fuse daemon died" in r.stderr, r.stderr
    assert d.ok("list", "--format", "json")  # the lxctl daemon is up
    # the next operation starts zfs-fuse again and re-imports the pool
    d.ok("storage", "volume", "create", zpool, "v1")
    assert _zfs_fuse_pids()
    assert "v1" in d.ok("storage", "volume", "list", zpool)
    d.ok("restart", "lxt-zc1", "--force", timeout=120)
    assert d.ok("exec", "lxt-zc1", "--", "cat", "/root/f") == "kept\n"
    d.ok("storage", "volume", "delete", zpool, "v1")
    listed = json.loads(d.ok("storage", "list", "--format", "json"))
    assert [p["status"] for p in listed if p["name"] == zpool] == ["Created"]


async def test_pool_on_an_existing_zpool_and_re_import(tmp_path: Path) -> None:
    """``source=NAME`` of a zpool made outside: the driver's datasets go with the lxctl
    pool, the zpool stays; a pool of its own, exported, comes back at mount_pool
    (``zpool import -d`` of its vdev directory)."""
    from lxctl.public import (
        DriverContext,
        InvalidArgument,
        PoolRecord,
        Unavailable,
        Volume,
        VolumeType,
    )
    from lxctl_plugins.storage.zfs import ZfsDriver
    if ZfsDriver.probe():
        pytest.skip(f"zfs: {ZfsDriver.probe()}")
    driver = ZfsDriver(DriverContext(tmp_path / "state", "lxt", None))
    outer, own = f"lxt-zout-{os.getpid()}", f"lxt-zown-{os.getpid()}"
    vdev = tmp_path / "outer.img"
    vdev.write_bytes(b"")
    os.truncate(vdev, 256 * 2**20)
    own_pool = PoolRecord(own, "zfs", {"size": "256MiB", "source": str(tmp_path / "own.img")})
    await driver._daemon()
    subprocess.run(["zpool", "create", "-m", "none", outer, str(vdev)], check=True)
    try:
        with pytest.raises(InvalidArgument, match="no imported zpool"):
            await driver.create_pool(PoolRecord("lxt-x", "zfs", {"source": "lxt-nope-zp"}))
        pool = PoolRecord(outer, "zfs", {"source": outer})
        pool = PoolRecord(outer, "zfs", await driver.create_pool(pool))
        await driver.create_volume(pool, Volume("v", VolumeType.CUSTOM))
        await driver.delete_pool(pool)
        left = subprocess.run(["zfs", "list", "-H", "-r", "-o", "name", outer],
                              capture_output=True, text=True, check=True).stdout.split()
        assert left == [outer]

        own_pool = PoolRecord(own, "zfs", await driver.create_pool(own_pool))
        await driver.create_volume(own_pool, Volume("w", VolumeType.CUSTOM))
        await driver.unmount_pool(own_pool)
        await driver.mount_pool(own_pool)  # zpool import -d DIR
        assert (await driver.mount_volume(own_pool, Volume("w", VolumeType.CUSTOM))).path.is_dir()
        (tmp_path / "own.img").rename(tmp_path / "gone.img")
        await driver.unmount_pool(own_pool)
        with pytest.raises(Unavailable, match="missing"):
            await driver.mount_pool(own_pool)
        (tmp_path / "gone.img").rename(tmp_path / "own.img")
        await driver.mount_pool(own_pool)
    finally:
        subprocess.run(["zpool", "destroy", "-f", outer], capture_output=True)
        subprocess.run(["zpool", "destroy", "-f", own], capture_output=True)


async def test_a_deleted_image_goes_with_its_last_clone(tmp_path: Path) -> None:
    """An image deleted while instance volumes are clones of it waits in ``deleted/``
    (Incus's layout) and is destroyed with the last of them."""
    import io
    import tarfile

    from lxctl.public import DriverContext, ImageSource, PoolRecord, Volume, VolumeType
    from lxctl_plugins.storage.zfs import ZfsDriver
    if ZfsDriver.probe():
        pytest.skip(f"zfs: {ZfsDriver.probe()}")
    tarball = tmp_path / "img.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        info = tarfile.TarInfo("rootfs/etc/hostname")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"zc\n"))
    driver = ZfsDriver(DriverContext(tmp_path / "state", "lxt", None))
    name = f"lxt-zgc-{os.getpid()}"
    pool = PoolRecord(name, "zfs", {"size": "256MiB", "source": str(tmp_path / "p.img")})
    image = ImageSource("f00d", tarball, None)
    a, b = (Volume(n, VolumeType.CONTAINER) for n in ("a", "b"))

    def deleted() -> list[str]:
        out = subprocess.run(["zfs", "list", "-H", "-r", "-o", "name", f"{name}/deleted"],
                             capture_output=True, text=True, check=True).stdout.split()
        return [n for n in out if n != f"{name}/deleted"]

    pool = PoolRecord(name, "zfs", await driver.create_pool(pool))
    try:
        await driver.ensure_image_volume(pool, image)
        for volume in (a, b):
            await driver.create_volume_from_image(pool, volume, image)
        await driver.delete_image_volume(pool, "f00d")
        assert len(deleted()) == 1  # kept: a and b rest on it
        await driver.delete_volume(pool, a)
        assert len(deleted()) == 1
        await driver.delete_volume(pool, b)
        assert deleted() == []
    finally:
        await driver.delete_pool(pool)
        subprocess.run(["zpool", "destroy", "-f", name], capture_output=True)
