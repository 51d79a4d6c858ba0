"""Storage pools and custom volumes, in process on fake drivers: the API's logic and
what it refuses (leaving nothing behind)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import fakes
import pytest
import trio
from inproc import Client, RpcError, daemon, import_image

from lxctl.public import (
    ConfigKey,
    DiskDevice,
    MountedVolume,
    Scope,
    StorageInfo,
    VolumeType,
    impl,
)


class SnapStorage(fakes.FakeStorage):
    """The fake with snapshots, under a name of its own and with a ``source`` key."""

    info: ClassVar[StorageInfo] = StorageInfo(
        name="snapfake", volume_types=frozenset(VolumeType), optimized_images=True,
        snapshots=True, quotas=True, pool_keys=(ConfigKey("source", Scope.POOL),))


class SnapPlugin:
    @impl
    def lxctl_register_drivers(self, registry: Any) -> None:
        registry.add_storage(SnapStorage)


async def error(c: Client, method: str, **params: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        await c.call(method, **params)
    return info.value


async def test_pool_create_update_delete_and_events(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            w = await d.client()
            await w.call("events.subscribe", types=["lifecycle"], all_projects=True)
            await c.call("storage.create", name="p1", driver="fake",
                         config={"fake.size": "1"}, description="one")
            got = await c.call("storage.get", name="p1")
            assert (got["driver"], got["config"], got["description"], got["used_by"]) == \
                ("fake", {"fake.size": "1"}, "one", [])
            err = await error(c, "storage.update", name="p1", config={"fake.size": "2"})
            assert "cannot be changed" in err.message
            await c.call("storage.update", name="p1", config={"fake.size": "1", "user.a": "b"},
                         description="two")
            got = await c.call("storage.get", name="p1")
            assert (got["config"], got["description"]) == (
                {"fake.size": "1", "user.a": "b"}, "two")
            await c.call("storage.delete", name="p1")
            assert [p["name"] for p in await c.call("storage.list")] == ["default"]
            assert ("fake.delete_pool", ("p1",)) in d.world.calls
            events: list[dict[str, Any]] = []
            while len(events) < 3:
                msg = await w.message()
                if msg.get("method") == "event":
                    events.append(msg["params"])
            assert {e["metadata"]["source"] for e in events} == {"/1.0/storage-pools/p1"}
            assert [e["metadata"]["action"] for e in events] == [
                "storage-pool-created", "storage-pool-updated", "storage-pool-deleted"]


async def test_bad_pools_are_refused_with_nothing_made(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d", extra_plugins=[SnapPlugin()]) as d:
            c = await d.client()
            outer = tmp_path / "outer"
            (outer / "sub").mkdir(parents=True)
            await c.call("storage.create", name="outer", driver="snapfake",
                         config={"source": str(outer)})
            cases: list[tuple[dict[str, Any], str]] = [
                ({"name": "bad/name", "driver": "fake"}, "name"),
                ({"name": "default", "driver": "fake"}, "already exists"),
                ({"name": "p", "driver": "fake", "config": {"zfs.pool_name": "x"}},
                 "zfs.pool_name"),
                ({"name": "p", "driver": "plain", "config": {"fake.size": "1"}},
                 "fake.size"),
                ({"name": "p", "driver": "nosuch"}, "nosuch"),
                ({"name": "p", "driver": "snapfake", "config": {"source": "/dev/lxt-nosuch"}},
                 "does not exist"),
                ({"name": "p", "driver": "snapfake", "config": {"source": "/lxt-no/such"}},
                 "does not exist"),
                ({"name": "p", "driver": "snapfake", "config": {"source": str(outer / "sub")}},
                 "inside storage pool 'outer'"),
            ]
            for params, text in cases:
                err = await error(c, "storage.create", **params)
                assert text in err.message, (params, err.message)
            assert [p["name"] for p in await c.call("storage.list")] == ["default", "outer"]
            assert [call for call in d.world.calls if call[0].endswith("create_pool")] == \
                [("fake.create_pool", ("default",)), ("snapfake.create_pool", ("outer",))]


async def test_a_pool_in_use_is_not_deleted_and_names_its_users(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("storage.create", name="p1", driver="fake")
            op = await c.call("instance.create", name="c1", image="img",
                              devices={"root": {"type": "disk", "path": "/", "pool": "p1"}})
            await c.wait(op)
            await c.call("storage_volume.create", pool="p1", name="v1")
            err = await error(c, "storage.delete", name="p1")
            assert "/1.0/instances/c1" in err.message
            assert "/1.0/storage-pools/p1/volumes/custom/v1" in err.message
            err = await error(c, "storage.delete", name="default")
            assert "/1.0/profiles/default" in err.message
            assert {p["name"] for p in await c.call("storage.list")} == {"default", "p1"}
            assert ("fake.delete_pool", ("p1",)) not in d.world.calls


async def test_volumes_create_set_copy_rename_attach_delete(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("storage.create", name="p2", driver="fake")
            await c.call("storage_volume.create", pool="default", name="v1",
                         config={"size": "1GiB"})
            assert d.world.quotas[("default", "v1")] == 1 << 30
            err = await error(c, "storage_volume.create", pool="default", name="v1")
            assert "already exists" in err.message.lower() or "exists" in err.message
            await c.call("storage_volume.update", pool="default", name="v1",
                         config={"size": "2GiB"})
            assert d.world.quotas[("default", "v1")] == 2 << 30
            await c.call("storage_volume.copy", pool="default", name="v1",
                         target_pool="p2", target_name="v2")
            await c.call("storage_volume.rename", pool="p2", name="v2", new_name="v3")
            names = [(v["pool"], v["name"]) for v in await c.call("storage_volume.list")
                     if v["type"] == "custom"]
            assert names == [("default", "v1"), ("p2", "v3")]
            assert ("p2", "v3") in d.world.volumes and ("p2", "v2") not in d.world.volumes
            op = await c.call("instance.create", name="c1", image="img")
            await c.wait(op)
            await c.call("storage_volume.attach", pool="default", name="v1", instance="c1",
                         path="/data")
            err = await error(c, "storage_volume.attach", pool="default", name="v1",
                              instance="c1", path="/other", device="again")
            assert "already attached" in err.message
            err = await error(c, "storage_volume.delete", pool="default", name="v1")
            assert "/1.0/instances/c1" in err.message
            assert ("default", "v1") in d.world.volumes
            op = await c.call("instance.start", name="c1")
            await c.wait(op)
            (disk,) = [dev for dev in d.world.started_with["c1"] if dev.name == "v1"]
            assert isinstance(disk, DiskDevice) and disk.path == "/data"
            assert isinstance(disk.source, MountedVolume)
            assert str(disk.source.path) == "/fake/default/v1"
            op = await c.call("instance.stop", name="c1", force=True)
            await c.wait(op)
            await c.call("storage_volume.detach", pool="default", name="v1", instance="c1")
            await c.call("storage_volume.delete", pool="default", name="v1")
            assert ("default", "v1") not in d.world.volumes


async def test_bad_volumes_are_refused_with_nothing_made(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await c.call("storage.create", name="plain1", driver="plain")
            cases: list[tuple[dict[str, Any], str]] = [
                ({"pool": "plain1", "name": "v", "config": {"size": "1GiB"}}, "quotas"),
                ({"pool": "default", "name": "v", "config": {"size": "lots"}}, "size"),
                ({"pool": "default", "name": "v", "config": {"nope": "1"}}, "nope"),
                ({"pool": "default", "name": "a/b"}, "name"),
                ({"pool": "nosuch", "name": "v"}, "nosuch"),
                ({"pool": "default", "name": "v", "content_type": "block"}, "block"),
            ]
            for params, text in cases:
                err = await error(c, "storage_volume.create", **params)
                assert text in err.message, (params, err.message)
            assert await c.call("storage_volume.list") == []
            assert not [k for k in d.world.volumes if k[1] == "v"]
            d.world.fail_next["set_quota"] = 1
            await error(c, "storage_volume.create", pool="default", name="v",
                        config={"size": "1GiB"})
            assert await c.call("storage_volume.list") == []
            assert not [k for k in d.world.volumes if k[1] == "v"]
            err = await error(c, "storage_volume.snapshot", action="create",
                              pool="plain1", name="v", snapshot="s")
            assert "not found" in err.message


async def test_volume_snapshots_where_the_driver_declares_them(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d", extra_plugins=[SnapPlugin()]) as d:
            c = await d.client()
            await c.call("storage.create", name="s1", driver="snapfake")
            await c.call("storage_volume.create", pool="s1", name="v")
            for snap in ("a", "b"):
                await c.call("storage_volume.snapshot", action="create", pool="s1", name="v",
                             snapshot=snap)
            err = await error(c, "storage_volume.snapshot", action="create", pool="s1",
                              name="v", snapshot="a")
            assert "already exists" in err.message
            assert await c.call("storage_volume.snapshot", action="list", pool="s1",
                                name="v") == ["a", "b"]
            await c.call("storage_volume.snapshot", action="restore", pool="s1", name="v",
                         snapshot="a")
            assert ("snapfake.restore_snapshot", ("v", "a")) in d.world.calls
            await c.call("storage_volume.create", pool="s1", name="taken")
            err = await error(c, "storage_volume.rename", pool="s1", name="v",
                              new_name="taken")
            assert "already exists" in err.message
            assert ("snapfake.rename_volume", ("v", "taken")) not in d.world.calls
            await c.call("storage_volume.rename", pool="s1", name="v", new_name="w")
            assert ("snapfake.rename_volume", ("v", "w")) in d.world.calls
            assert await c.call("storage_volume.snapshot", action="list", pool="s1",
                                name="w") == ["a", "b"]  # its snapshots went with it
            await c.call("storage_volume.snapshot", action="delete", pool="s1", name="w",
                         snapshot="a")
            assert await c.call("storage_volume.snapshot", action="list", pool="s1",
                                name="w") == ["b"]
            await c.call("storage.create", name="pl", driver="plain")
            await c.call("storage_volume.create", pool="pl", name="w")
            err = await error(c, "storage_volume.snapshot", action="create",
                              pool="pl", name="w", snapshot="a")
            assert "does not support snapshots" in err.message


async def test_volumes_are_scoped_by_project(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await c.call("project.create", name="own",
                         config={"features.storage.volumes": "true"})
            await c.call("project.create", name="shared",
                         config={"features.storage.volumes": "false"})
            await c.call("storage_volume.create", pool="default", name="v", project="own")
            await c.call("storage_volume.create", pool="default", name="v")
            assert [v["project"] for v in await c.call("storage_volume.list",
                                                       project="own")] == ["own"]
            shared = await c.call("storage_volume.list", project="shared")
            assert [(v["project"], v["name"]) for v in shared] == [("default", "v")]
            assert ("default", "own_v") in d.world.volumes
