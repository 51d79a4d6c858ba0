"""Instance snapshots, copy, move and rename through the CLI on a real daemon with real
LXC containers, once per storage driver with snapshots that runs here (two pools of
it: the driver's native copy between them), and once across drivers (rsync): a live
snapshot of a running container, restore, copy with snapshots and from one, move to
another pool, rename, what is refused, and nothing left behind."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from harness import Daemon
from test_storage_cli import DRIVERS, POOL_CONFIG, _driver_info, _error

SNAPSHOT_DRIVERS = DRIVERS  # every one has snapshots; lvm skips (no device-mapper here)


def cat(d: Daemon, inst: str) -> str:
    return d.ok("exec", inst, "--", "cat", "/root/f").strip()


def snapshots(d: Daemon, inst: str) -> list[str]:
    return [s["name"] for s in json.loads(d.ok("snapshot", "list", inst, "--format", "json"))]


@pytest.fixture
def made(daemon: Daemon) -> Iterator[list[str]]:
    """Instances and pools (``pool:NAME``) removed at the end, even on failure."""
    names: list[str] = []
    yield names
    for item in reversed(names):
        if item.startswith("pool:"):
            daemon.cli("storage", "delete", item[5:])
        else:
            daemon.cli("delete", "--force", item, timeout=120)


@pytest.mark.parametrize("driver", SNAPSHOT_DRIVERS)
def test_snapshots_copy_move_rename(daemon: Daemon, driver: str, made: list[str]) -> None:
    d = daemon
    _driver_info(d, driver)
    a, b = f"lxt-cp-{driver}-a", f"lxt-cp-{driver}-b"
    for pool in (a, b):
        made.append(f"pool:{pool}")
        d.ok("storage", "create", pool, driver, *POOL_CONFIG.get(driver, []))
    c1, c2, c3, r1 = (f"lxt-cp-{driver}-{n}" for n in ("c1", "c2", "c3", "r1"))
    made += [c1, c2, c3, r1]
    d.ok("launch", "bb", c1, "-s", a, timeout=120)
    d.ok("exec", c1, "--", "sh", "-c", "echo one > /root/f")

    # live snapshots of the running container, named by snapshots.pattern
    d.ok("snapshot", "create", c1, timeout=60)
    d.ok("exec", c1, "--", "sh", "-c", "echo two > /root/f")
    d.ok("snapshot", "create", c1, "s1", timeout=60)
    d.ok("exec", c1, "--", "sh", "-c", "echo three > /root/f")
    assert snapshots(d, c1) == ["snap0", "s1"]
    assert d.states()[c1] == "RUNNING"
    info = d.ok("info", c1)
    assert "Snapshots:" in info and "| snap0 |" in info.replace("  ", " ")
    assert "already exists" in _error(d, "snapshot", "create", c1, "s1")
    assert "Stateful" in _error(d, "snapshot", "create", c1, "s2", "--stateful")

    # restore of a running container: stopped, restored, running again
    if driver == "zfs":  # zfs rolls back to the latest snapshot only (Incus's rule)
        assert "latest" in _error(d, "snapshot", "restore", c1, "snap0")
        d.ok("snapshot", "restore", c1, "s1", timeout=120)
        assert cat(d, c1) == "two"
    else:
        d.ok("snapshot", "restore", c1, "snap0", timeout=120)
        assert cat(d, c1) == "one"
    assert d.states()[c1] == "RUNNING"

    # copy of the running instance to the other pool, its snapshots with it (native)
    d.ok("copy", c1, c2, "--storage", b, timeout=180)
    shown = d.ok("config", "show", c2, "--expanded")
    assert f"pool: {b}" in shown
    assert snapshots(d, c2) == ["snap0", "s1"]
    d.ok("start", c2, timeout=60)
    assert cat(d, c2) == cat(d, c1)
    d.ok("stop", c2, "--force", timeout=60)
    d.ok("snapshot", "restore", c2, "s1", timeout=120)  # the copied snapshot holds "two"
    d.ok("start", c2, timeout=60)
    assert cat(d, c2) == "two"
    d.ok("delete", "--force", c2, timeout=120)

    # copy from a snapshot, on the same pool: its content, no snapshots
    d.ok("copy", f"{c1}/s1", c3, timeout=180)
    assert snapshots(d, c3) == []
    d.ok("start", c3, timeout=60)
    assert cat(d, c3) == "two"

    # move to the other pool and rename: only stopped
    assert "Renaming of running instance not allowed" in _error(d, "rename", c1, r1)
    assert "must be stopped" in _error(d, "move", c1, "--storage", b)
    d.ok("stop", c1, "--force", timeout=60)
    assert "already on storage pool" in _error(d, "move", c1, "--storage", a)
    assert "already exists" in _error(d, "rename", c1, c3)
    d.ok("move", c1, "--storage", b, timeout=180)
    assert f"pool: {b}" in d.ok("config", "show", c1, "--expanded")
    assert snapshots(d, c1) == ["snap0", "s1"]
    vols = {(v["pool"], v["name"]) for v in json.loads(
        d.ok("storage", "volume", "list", "--format", "json")) if v["type"] == "container"}
    assert (b, c1) in vols and (a, c1) not in vols
    d.ok("rename", c1, r1, timeout=120)
    assert c1 not in d.states() and d.states()[r1] == "STOPPED"
    assert snapshots(d, r1) == ["snap0", "s1"]
    d.ok("start", r1, timeout=60)
    assert cat(d, r1) in ("one", "two")  # as restored above
    d.ok("stop", r1, "--force", timeout=60)
    d.ok("snapshot", "restore", r1, "s1", timeout=120)
    d.ok("start", r1, timeout=60)
    assert cat(d, r1) == "two"
    d.ok("snapshot", "rename", r1, "s1", "second", timeout=60)
    d.ok("snapshot", "delete", r1, "snap0", timeout=60)
    assert snapshots(d, r1) == ["second"]

    # everything goes with the instances: both pools can be deleted, leaving nothing
    for inst in (r1, c3):
        d.ok("delete", "--force", inst, timeout=120)
    for pool in (a, b):
        d.ok("storage", "delete", pool)
        assert not (d.dir / "storage-pools" / pool).exists()


def test_copy_between_drivers_goes_through_rsync(daemon: Daemon, made: list[str]) -> None:
    """btrfs to dir: the snapshots arrive one by one, each snapshotted on arrival."""
    d = daemon
    if "btrfs" not in DRIVERS:
        pytest.fail("the btrfs plugin is not installed")
    _driver_info(d, "btrfs")
    pool, src, dst = "lxt-cpx-btrfs", "lxt-cpx-src", "lxt-cpx-dst"
    made += [f"pool:{pool}", src, dst]
    d.ok("storage", "create", pool, "btrfs", "size=512MiB")
    d.ok("launch", "bb", src, "-s", pool, timeout=120)
    d.ok("exec", src, "--", "sh", "-c", "echo one > /root/f")
    d.ok("snapshot", "create", src, "s0", timeout=60)
    d.ok("exec", src, "--", "sh", "-c", "echo two > /root/f")
    d.ok("stop", src, "--force", timeout=60)
    d.ok("copy", src, dst, "-s", "default", timeout=180)
    assert snapshots(d, dst) == ["s0"]
    assert "pool: default" in d.ok("config", "show", dst, "--expanded")
    d.ok("start", dst, timeout=60)
    assert cat(d, dst) == "two"
    d.ok("stop", dst, "--force", timeout=60)
    d.ok("snapshot", "restore", dst, "s0", timeout=120)
    d.ok("start", dst, timeout=60)
    assert cat(d, dst) == "one"
    # and back, by a move: dir to btrfs
    d.ok("delete", "--force", src, timeout=120)
    d.ok("stop", dst, "--force", timeout=60)
    d.ok("move", dst, "--storage", pool, timeout=180)
    d.ok("start", dst, timeout=60)
    assert cat(d, dst) == "one" and snapshots(d, dst) == ["s0"]
    d.ok("delete", "--force", dst, timeout=120)

    # an image-backed dir volume (an overlay of its changes on the image): both layers
    ov, ov2 = "lxt-cpx-ov", "lxt-cpx-ov2"
    made += [ov, ov2]
    d.ok("launch", "bb", ov, timeout=120)  # the default pool: dir, overlay where it can
    d.ok("exec", ov, "--", "sh", "-c", "echo one > /root/f && rm /etc/hostname")
    d.ok("snapshot", "create", ov, "s0", timeout=60)
    d.ok("exec", ov, "--", "sh", "-c", "echo two > /root/f")
    d.ok("copy", ov, ov2, "-s", pool, timeout=180)
    d.ok("start", ov2, timeout=60)
    assert cat(d, ov2) == "two"
    assert d.cli("exec", ov2, "--", "test", "-x", "/bin/busybox").returncode == 0
    assert d.cli("exec", ov2, "--", "test", "-e", "/etc/hostname").returncode != 0
    d.ok("stop", ov2, "--force", timeout=60)
    d.ok("snapshot", "restore", ov2, "s0", timeout=120)
    d.ok("start", ov2, timeout=60)
    assert cat(d, ov2) == "one"
    assert d.cli("exec", ov2, "--", "test", "-x", "/bin/busybox").returncode == 0
    for inst in (ov, ov2):
        d.ok("delete", "--force", inst, timeout=120)
    d.ok("storage", "delete", pool)
