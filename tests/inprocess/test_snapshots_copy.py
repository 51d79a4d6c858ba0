"""Instance snapshots, copy, move and rename, in process on the fake drivers: the
records, what the drivers are asked, the events, and what is refused with nothing
changed. (tests/real/test_instance_copy.py does the same on real btrfs and LXC.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import trio
from inproc import Client, InProcessDaemon, RpcError, daemon, import_image


async def error(c: Client, method: str, **params: Any) -> str:
    with pytest.raises(RpcError) as info:
        await c.wait(await c.call(method, **params))
    return info.value.message


async def launched(d: InProcessDaemon, name: str = "c1", **params: Any) -> Client:
    c = await d.client()
    await import_image(c, "img")
    await c.wait(await c.call("instance.create", image="img", name=name, start=True, **params))
    return c


async def test_snapshot_create_list_rename_delete(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with daemon(tmp_path / "d") as d:
            c = await launched(d)
            events = await d.client()
            await events.call("events.subscribe", types=["lifecycle"])
            await c.wait(await c.call("instance_snapshot.create", instance="c1"))  # running
            await c.wait(await c.call("instance_snapshot.create", instance="c1"))
            await c.wait(await c.call("instance_snapshot.create", instance="c1", name="mine"))
            names = [s["name"] for s in await c.call("instance_snapshot.list", instance="c1")]
            assert names == ["snap0", "snap1", "mine"]  # snapshots.pattern, oldest first
            assert d.world.snapshots[("default", "c1")].keys() == {"snap0", "snap1", "mine"}
            listed = (await c.call("instance.list"))[0]
            assert [s["name"] for s in listed["snapshots"]] == names
            assert listed["status"] == "Running"  # a live snapshot leaves it running

            assert "already exists" in await error(c, "instance_snapshot.create",
                                                   instance="c1", name="mine")
            assert "Invalid snapshot name" in await error(c, "instance_snapshot.create",
                                                          instance="c1", name="a/b")
            assert "Stateful" in await error(c, "instance_snapshot.create", instance="c1",
                                             stateful=True)
            await c.wait(await c.call("instance_snapshot.rename", instance="c1", name="mine",
                                      new_name="theirs"))
            assert "already exists" in await error(c, "instance_snapshot.rename",
                                                   instance="c1", name="theirs",
                                                   new_name="snap0")
            await c.wait(await c.call("instance_snapshot.delete", instance="c1", name="snap1"))
            assert "not found" in await error(c, "instance_snapshot.delete", instance="c1",
                                              name="snap1")
            names = [s["name"] for s in await c.call("instance_snapshot.list", instance="c1")]
            assert names == ["snap0", "theirs"]
            assert list(d.world.snapshots[("default", "c1")]) == ["snap0", "theirs"]
            seen: list[tuple[str, str]] = []
            while len(seen) < 5:
                msg = await events.message()
                if msg.get("method") == "event":
                    seen.append((msg["params"]["metadata"]["action"],
                                 msg["params"]["metadata"]["source"]))
            assert seen[0] == ("instance-snapshot-created", "/1.0/instances/c1/snapshots/snap0")
            assert ("instance-snapshot-renamed", "/1.0/instances/c1/snapshots/theirs") in seen

            # delete of the instance takes its snapshots (records and volume snapshots)
            await c.wait(await c.call("instance.delete", name="c1", force=True))
            assert ("default", "c1") not in d.world.snapshots
            assert await d.app.store.read(lambda t: t.snapshot_list(None)) == []


async def test_snapshot_expiry_and_reuse(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with daemon(tmp_path / "d") as d:
            c = await launched(d, config={"snapshots.expiry": "2d",
                                          "snapshots.pattern": "auto-%d"})
            await c.wait(await c.call("instance_snapshot.create", instance="c1"))
            snap = await c.call("instance_snapshot.get", instance="c1", name="auto-0")
            assert snap["expires_at"] > snap["created_at"]  # ISO strings compare in order
            await c.wait(await c.call("instance_snapshot.create", instance="c1",
                                      name="auto-0", reuse=True, expires_at=0))
            snap = await c.call("instance_snapshot.get", instance="c1", name="auto-0")
            assert snap["expires_at"].startswith("1970")  # never
            with pytest.raises(RpcError, match=r"snapshots\.expiry"):
                await c.call("instance.update", name="c1",
                             config={"snapshots.expiry": "tomorrow"})


async def test_expired_snapshots_are_deleted(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with daemon(tmp_path / "d", snapshots_prune_interval=0.05) as d:
            c = await launched(d)
            await c.wait(await c.call("instance_snapshot.create", instance="c1", name="old",
                                      expires_at=time.time() + 0.2))
            await c.wait(await c.call("instance_snapshot.create", instance="c1", name="kept"))
            while len(await c.call("instance_snapshot.list", instance="c1")) > 1:
                await trio.sleep(0.05)
            assert [s["name"] for s in await c.call("instance_snapshot.list",
                                                    instance="c1")] == ["kept"]
            assert list(d.world.snapshots[("default", "c1")]) == ["kept"]


async def test_restore_puts_config_and_volume_back_and_restarts(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with daemon(tmp_path / "d") as d:
            c = await launched(d, config={"user.state": "old"})
            uuid = (await c.call("instance.get", name="c1"))["config"]["volatile.uuid"]
            await c.wait(await c.call("instance_snapshot.create", instance="c1", name="s0"))
            await c.call("instance.update", name="c1", config={"user.state": "new"})
            d.world.volumes[("default", "c1")] = "changed"
            await c.wait(await c.call("instance_snapshot.restore", instance="c1", name="s0"))
            inst = await c.call("instance.get", name="c1")
            assert inst["config"]["user.state"] == "old"
            assert inst["config"]["volatile.uuid"] == uuid  # identity kept
            assert d.world.volumes[("default", "c1")] != "changed"
            assert inst["status"] == "Running"  # stopped for it, started again
            calls = [n for n, _ in d.world.calls]
            restore = calls.index("fake.restore_snapshot")
            assert calls[restore - 1] == "hv.stop" and "hv.start" in calls[restore:]

            # a failing restore keeps the record and reports the driver's error
            d.world.fail_next["restore_snapshot"] = 1
            await c.call("instance.update", name="c1", config={"user.state": "newer"})
            assert "fake restore_snapshot failed" in await error(
                c, "instance_snapshot.restore", instance="c1", name="s0")
            inst = await c.call("instance.get", name="c1")
            assert inst["config"]["user.state"] == "newer"
            assert inst["status"] == "Running"  # started again as it was
            assert "not found" in await error(c, "instance_snapshot.restore", instance="c1",
                                              name="nope")


async def test_copy_with_and_without_snapshots_and_from_a_snapshot(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with daemon(tmp_path / "d") as d:
            c = await launched(d)
            await d.app.pools.create("p2", "fake", {})
            src = await c.call("instance.get", name="c1")
            await c.wait(await c.call("instance_snapshot.create", instance="c1", name="s0"))
            await c.wait(await c.call("instance.copy", source="c1", name="c2", storage="p2"))
            c2 = await c.call("instance.get", name="c2")
            assert c2["status"] == "Stopped"
            assert c2["expanded_devices"]["root"]["pool"] == "p2"
            assert c2["devices"]["root"] == {"type": "disk", "path": "/", "pool": "p2"}
            assert c2["config"]["volatile.uuid"] != src["config"]["volatile.uuid"]
            assert c2["config"]["volatile.base_image"] == src["config"]["volatile.base_image"]
            assert [s["name"] for s in c2["snapshots"]] == ["s0"]
            assert list(d.world.snapshots[("p2", "c2")]) == ["s0"]
            volumes = await c.call("storage_volume.list", pool="p2")
            assert [v["name"] for v in volumes] == ["c2"]

            await c.wait(await c.call("instance.copy", source="c1", name="c3",
                                      instance_only=True, config={"user.x": "1"}))
            c3 = await c.call("instance.get", name="c3")
            assert c3["snapshots"] == [] and c3["config"]["user.x"] == "1"
            assert c3["expanded_devices"]["root"]["pool"] == "default"

            d.world.volumes[("default", "c1")] = "later"
            await c.wait(await c.call("instance.copy", source="c1", snapshot="s0", name="c4"))
            assert d.world.volumes[("default", "c4")] == d.world.snapshots[
                ("default", "c1")]["s0"] != "later"

            # refused with nothing made
            before = (await d.app.store.read(lambda t: t.volume_list(None, None)))
            assert "already exists" in await error(c, "instance.copy", source="c1", name="c2")
            assert "not found" in await error(c, "instance.copy", source="c1", name="c9",
                                              snapshot="nope")
            assert "not found" in await error(c, "instance.copy", source="c1", name="c9",
                                              storage="nopool")
            await d.app.pools.create("plainpool", "plain", {})
            assert "has no snapshots" in await error(c, "instance.copy", source="c1",
                                                     name="c9", storage="plainpool")
            d.world.fail_next["copy_volume"] = 1
            assert "fake copy_volume failed" in await error(c, "instance.copy", source="c1",
                                                            name="c9")
            assert await d.app.store.read(lambda t: t.volume_list(None, None)) == before
            assert "c9" not in {i["name"] for i in await c.call("instance.list")}


async def test_rename_and_move_between_pools(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with daemon(tmp_path / "d") as d:
            c = await launched(d)
            await d.app.pools.create("p2", "fake", {})
            await c.wait(await c.call("instance_snapshot.create", instance="c1", name="s0"))
            assert "Renaming of running instance not allowed" in await error(
                c, "instance.move", name="c1", new_name="r1")
            await c.wait(await c.call("instance.stop", name="c1", force=True))
            await c.wait(await c.call("instance.move", name="c1", new_name="r1"))
            r1 = await c.call("instance.get", name="r1")
            assert [s["name"] for s in r1["snapshots"]] == ["s0"]
            assert ("default", "r1") in d.world.volumes and ("default", "c1") not in \
                d.world.volumes
            assert list(d.world.snapshots[("default", "r1")]) == ["s0"]
            assert [v["name"] for v in await c.call("storage_volume.list", pool="default")
                    if v["type"] == "container"] == ["r1"]

            await c.wait(await c.call("instance.move", name="r1", storage="p2"))
            r1 = await c.call("instance.get", name="r1")
            assert r1["expanded_devices"]["root"]["pool"] == "p2"
            assert ("default", "r1") not in d.world.volumes
            assert list(d.world.snapshots[("p2", "r1")]) == ["s0"]
            assert [v["name"] for v in await c.call("storage_volume.list", pool="p2")] == ["r1"]
            assert "already on storage pool" in await error(c, "instance.move", name="r1",
                                                            storage="p2")
            await c.wait(await c.call("instance.start", name="r1"))  # it runs from p2
            await c.wait(await c.call("instance.stop", name="r1", force=True))

            # a rename onto a taken name changes nothing
            await c.wait(await c.call("instance.create", image="img", name="other"))
            assert "already exists" in await error(c, "instance.move", name="r1",
                                                   new_name="other")
            copies = [n for n, _ in d.world.calls].count("fake.copy_volume")
            assert "already exists" in await error(c, "instance.move", name="r1",
                                                   new_name="other", storage="default")
            assert [n for n, _ in d.world.calls].count("fake.copy_volume") == copies
            assert ("p2", "r1") in d.world.volumes and ("default", "other") in \
                d.world.volumes and ("default", "r1") not in d.world.volumes
            # snapshots restore on the moved instance (its root stays on p2)
            await c.wait(await c.call("instance_snapshot.restore", instance="r1", name="s0"))
            r1 = await c.call("instance.get", name="r1")
            assert r1["expanded_devices"]["root"]["pool"] == "p2"
