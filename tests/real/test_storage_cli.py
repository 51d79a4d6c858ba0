"""Storage pools and custom volumes through the CLI on a real daemon, once per storage
driver installed (the ``storage-*`` plugins' entry points: zfs and lvm join when they
land; one whose kernel feature is missing skips with the daemon's reason): create a
pool, a volume with a quota, attach it to a container launched on the pool, write in
it, snapshot, restore, copy, delete, and delete the pool leaving nothing behind."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from harness import Daemon

DRIVERS = sorted(ep.name.removeprefix("storage-") for ep in
                 entry_points(group="lxctl.plugins") if ep.name.startswith("storage-"))
POOL_CONFIG = {"btrfs": ["size=512MiB"], "zfs": ["size=512MiB"], "lvm": ["size=512MiB"]}
"""Keys each driver's pool is made with (a loop file of its own where it takes one)."""


def _storage_info(d: Daemon) -> dict[str, object]:
    reply = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info", "params": {}})
    result: dict[str, object] = reply["result"]
    return result


def _driver_info(d: Daemon, driver: str) -> dict[str, object]:
    info = _storage_info(d)
    unsupported = info["drivers_unsupported"]
    assert isinstance(unsupported, dict)
    if driver in unsupported.get("storage", {}):
        pytest.skip(f"{driver}: {unsupported['storage'][driver]}")
    drivers = info["drivers"]
    assert isinstance(drivers, dict)
    found = [x["info"] for x in drivers["storage"] if x["name"] == driver]
    assert found, f"storage driver {driver} installed but not loaded"
    result: dict[str, object] = found[0]
    return result


def _mounted_under(path: Path) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(str(path))]


def _loops_of(file: Path) -> str:
    return subprocess.run(["losetup", "-j", str(file)], capture_output=True,
                          text=True).stdout.strip()


def _error(d: Daemon, *args: str) -> str:
    r = d.cli(*args)
    assert r.returncode == 1, f"lxctl {' '.join(args)} succeeded: {r.stdout}"
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    return r.stderr


@pytest.fixture
def pool_cleanup(daemon: Daemon) -> Iterator[list[str]]:
    """Pools (and instances, as ``instance:NAME``) deleted at the end, even on failure."""
    made: list[str] = []
    yield made
    for item in reversed(made):
        if item.startswith("instance:"):
            daemon.cli("delete", "--force", item.split(":", 1)[1], timeout=120)
        elif item.startswith("volume:"):
            _, pool, vol = item.split(":")
            daemon.cli("storage", "volume", "delete", pool, vol)
        else:
            daemon.cli("storage", "delete", item)


@pytest.mark.parametrize("driver", DRIVERS)
def test_pool_volumes_and_an_instance_on_each_driver(daemon: Daemon, driver: str,
                                                     pool_cleanup: list[str]) -> None:
    d = daemon
    info = _driver_info(d, driver)
    pool, inst = f"lxt-st-{driver}", f"lxt-st-c-{driver}"
    pool_cleanup.append(pool)
    assert d.ok("storage", "create", pool, driver, *POOL_CONFIG.get(driver, []),
                "--description", "lxt") == f"Storage pool {pool} created\n"
    listed = json.loads(d.ok("storage", "list", "--format", "json"))
    (mine,) = [p for p in listed if p["name"] == pool]
    assert (mine["driver"], mine["status"], mine["description"]) == (driver, "Created", "lxt")
    assert "total space:" in d.ok("storage", "info", pool)
    d.ok("storage", "set", pool, "user.lxt=1")
    assert d.ok("storage", "get", pool, "user.lxt") == "1\n"
    d.ok("storage", "unset", pool, "user.lxt")
    assert "user.lxt" not in d.ok("storage", "show", pool)
    assert "already exists" in _error(d, "storage", "create", pool, driver)

    # a custom volume with a quota where the driver has quotas
    quota = ["size=32MiB"] if info["quotas"] else []
    if not info["quotas"]:
        assert "quotas" in _error(d, "storage", "volume", "create", pool, "v1", "size=32MiB")
    pool_cleanup.append(f"volume:{pool}:v1")
    d.ok("storage", "volume", "create", pool, "v1", *quota)
    d.ok("storage", "volume", "set", pool, "v1", "user.note=hi")
    assert d.ok("storage", "volume", "get", pool, "v1", "user.note") == "hi\n"
    edited = "description: notes\nconfig:\n  user.note: edited\n" + \
        "".join(f"  {q.replace('=', ': ')}\n" for q in quota)
    d.ok("storage", "volume", "edit", pool, "custom/v1", input=edited)
    r = d.cli("storage", "volume", "edit", pool, "v1", input="config:\n  nope: 1\n")
    assert r.returncode == 1 and "nope" in r.stderr, r.stderr
    shown = d.ok("storage", "volume", "show", pool, "v1")
    assert "user.note: edited" in shown and "description: notes" in shown

    # an instance on the pool with the volume attached: written to from inside
    pool_cleanup.append(f"instance:{inst}")
    d.ok("launch", "bb", inst, "-s", pool, timeout=120)
    d.ok("storage", "volume", "attach", pool, "v1", inst, "/data")  # hot-plugged
    assert "already attached" in _error(d, "storage", "volume", "attach", pool, "v1", inst,
                                        "again", "/other")
    d.ok("restart", inst, "--force", timeout=60)  # mounted at start as well
    assert f"pool: {pool}" in d.ok("config", "show", inst, "--expanded")
    d.ok("exec", inst, "--", "sh", "-c", "echo one > /data/f")
    assert d.ok("exec", inst, "--", "cat", "/data/f") == "one\n"
    if info["quotas"]:  # writing past the quota fails inside the container
        r = d.cli("exec", inst, "--", "sh", "-c",
                  "dd if=/dev/urandom of=/data/big bs=1M count=64 && sync", timeout=60)
        assert r.returncode != 0, "64 MiB written into a 32 MiB volume"
        d.ok("exec", inst, "--", "rm", "-f", "/data/big")
    assert "in use" in _error(d, "storage", "volume", "delete", pool, "v1")
    assert inst in _error(d, "storage", "delete", pool)

    if info["snapshots"]:
        d.ok("storage", "volume", "snapshot", "create", pool, "v1", "s1")
        d.ok("exec", inst, "--", "sh", "-c", "echo two > /data/f")
        assert "running" in _error(d, "storage", "volume", "snapshot", "restore", pool,
                                   "v1", "s1")
        d.ok("stop", inst, "--force", timeout=60)
        d.ok("storage", "volume", "snapshot", "restore", pool, "v1", "s1")
        assert d.ok("storage", "volume", "snapshot", "list", pool, "v1",
                    "--format", "csv") == "s1\n"
        d.ok("start", inst, timeout=60)
        assert d.ok("exec", inst, "--", "cat", "/data/f") == "one\n"
    d.ok("stop", inst, "--force", timeout=60)

    # copy on the pool and to the default pool, rename, then detach and delete
    pool_cleanup += [f"volume:{pool}:v2", "volume:default:lxt-st-v3"]
    d.ok("storage", "volume", "copy", f"{pool}/v1", f"{pool}/v2")
    if info["quotas"]:  # the dir default pool has no quotas: the copy would be refused
        assert "quotas" in _error(d, "storage", "volume", "copy", f"{pool}/v2",
                                  "default/lxt-st-v3")
        d.ok("storage", "volume", "unset", pool, "v2", "size")
    d.ok("storage", "volume", "copy", f"{pool}/v2", "default/lxt-st-v3")
    d.ok("storage", "volume", "detach", pool, "v1", inst)
    d.ok("storage", "volume", "attach", pool, "v2", inst, "/data")
    d.ok("start", inst, timeout=60)
    # hot-plugged into the running container, and out again
    d.ok("storage", "volume", "attach", "default", "lxt-st-v3", inst, "copy", "/copy")
    assert d.ok("exec", inst, "--", "cat", "/data/f", "/copy/f") == "one\none\n"
    d.ok("exec", inst, "--", "sh", "-c", "echo three > /copy/g")
    d.ok("storage", "volume", "detach", "default", "lxt-st-v3", inst)
    assert d.cli("exec", inst, "--", "cat", "/copy/g").returncode != 0
    d.ok("delete", "--force", inst, timeout=120)
    d.ok("storage", "volume", "rename", pool, "v2", "v4")
    pool_cleanup += [f"volume:{pool}:v4", "volume:default:lxt-st-v5"]
    d.ok("storage", "volume", "move", "default/lxt-st-v3", f"{pool}/v5")
    d.ok("storage", "volume", "move", f"{pool}/v5", "default/lxt-st-v5")
    # snapshots travel with copies and moves (rsync between drivers), unless --volume-only
    assert "Snapshots:\n  s1" in d.ok("storage", "volume", "info", "default", "lxt-st-v5")
    pool_cleanup.append(f"volume:{pool}:v6")
    d.ok("storage", "volume", "copy", f"{pool}/v1", f"{pool}/v6", "--volume-only")
    assert "Snapshots:" not in d.ok("storage", "volume", "info", pool, "v6")
    d.ok("storage", "volume", "delete", pool, "v6")
    names = {(v["pool"], v["name"]) for v in json.loads(
        d.ok("storage", "volume", "list", "--format", "json")) if v["type"] == "custom"}
    assert {(pool, "v1"), (pool, "v4"), ("default", "lxt-st-v5")} <= names
    assert not {(pool, "v2"), (pool, "v5"), ("default", "lxt-st-v3")} & names
    for vol_pool, vol in ((pool, "v1"), (pool, "v4"), ("default", "lxt-st-v5")):
        d.ok("storage", "volume", "delete", vol_pool, vol)

    # the pool goes with everything it made: no mount, no loop device, no files
    d.ok("storage", "delete", pool)
    assert pool not in d.ok("storage", "list", "--format", "csv")
    assert _mounted_under(d.dir / "storage-pools" / pool) == []
    assert not (d.dir / "storage-pools" / pool).exists()
    image = d.dir / "disks" / f"{pool}.img"
    assert not image.exists() and _loops_of(image) == ""


def test_bad_pools_are_refused_leaving_nothing(daemon: Daemon, workdir: Path,
                                               pool_cleanup: list[str]) -> None:
    d = daemon
    assert "size" in _error(d, "storage", "create", "lxt-st-bad", "dir", "size=1GiB")
    assert "does not exist" in _error(d, "storage", "create", "lxt-st-bad", "btrfs",
                                      "source=/dev/lxt-no-such-disk")
    assert "does not exist" in _error(d, "storage", "create", "lxt-st-bad", "dir",
                                      "source=/lxt-no/such/dir")
    assert "zfs.pool_name" in _error(d, "storage", "create", "lxt-st-bad", "btrfs",
                                     "zfs.pool_name=x")
    assert "name" in _error(d, "storage", "create", "lxt st", "dir")
    assert "profiles/default" in _error(d, "storage", "delete", "default")
    outer = workdir / "lxt-st-outer"
    pool_cleanup.append("lxt-st-outer")
    d.ok("storage", "create", "lxt-st-outer", "dir", f"source={outer}")
    bad = f"description: x\nconfig:\n  source: {outer}\n  zfs.pool_name: x\n"
    r = d.cli("storage", "edit", "lxt-st-outer", input=bad)
    assert r.returncode == 1 and "zfs.pool_name" in r.stderr, r.stderr
    overlay = d.ok("storage", "get", "lxt-st-outer", "overlay").strip()
    flipped = "false" if overlay == "true" else "true"
    r = d.cli("storage", "set", "lxt-st-outer", f"overlay={flipped}")
    assert r.returncode == 1 and "cannot be changed" in r.stderr, r.stderr
    d.ok("storage", "edit", "lxt-st-outer", input=f"description: edited\nconfig:\n"
         f"  source: {outer}\n  overlay: '{overlay}'\n  user.x: y\n")
    shown = d.ok("storage", "show", "lxt-st-outer")
    assert "description: edited" in shown and "user.x: y" in shown and "zfs" not in shown
    assert "inside storage pool 'lxt-st-outer'" in _error(
        d, "storage", "create", "lxt-st-bad", "dir", f"source={outer}/containers/x")
    if "btrfs" in DRIVERS:
        _driver_info(d, "btrfs")
        # a pool too small for the volume asked for
        pool_cleanup.append("lxt-st-small")
        d.ok("storage", "create", "lxt-st-small", "btrfs", "size=256MiB")
        assert "larger than storage pool" in _error(d, "storage", "volume", "create",
                                                    "lxt-st-small", "v", "size=1GiB")
        assert json.loads(d.ok("storage", "volume", "list", "lxt-st-small",
                               "--format", "json")) == []
    pools = {p["name"] for p in json.loads(d.ok("storage", "list", "--format", "json"))}
    assert "lxt-st-bad" not in pools
    assert not (d.dir / "storage-pools" / "lxt-st-bad").exists()
    d.ok("storage", "delete", "lxt-st-outer")
    assert not outer.exists()
    assert not (d.dir / "disks" / "lxt-st-bad.img").exists()
