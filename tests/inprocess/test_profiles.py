"""Profiles, in process on fake drivers: their keys and devices, cascading into the
instances that use them, and what is refused (changing nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from inproc import Client, RpcError, daemon, import_image


def disk(source: Path, path: str = "/mnt") -> dict[str, str]:
    source.mkdir(parents=True, exist_ok=True)
    return {"type": "disk", "source": str(source), "path": path}


async def expanded(c: Client, name: str) -> tuple[dict[str, str], dict[str, Any]]:
    inst = await c.call("instance.get", name=name)
    return inst["expanded_config"], inst["expanded_devices"]


async def test_set_and_unset_round_trip(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            created = await c.call("profile.create", name="p1", description="first",
                                   config={"limits.processes": "100"})
            assert created["config"] == {"limits.processes": "100"}
            await c.call("profile.update", name="p1",
                         config={"limits.processes": "100", "user.a": "b"})
            got = await c.call("profile.get", name="p1")
            assert got["config"] == {"limits.processes": "100", "user.a": "b"}
            assert (got["description"], got["devices"], got["used_by"]) == ("first", {}, [])
            await c.call("profile.update", name="p1", config={"user.a": "b"})  # unset
            await c.call("profile.update", name="p1", description="second")  # config stays
            got = await c.call("profile.get", name="p1")
            assert (got["config"], got["description"]) == ({"user.a": "b"}, "second")
            dev = disk(tmp_path / "src")
            await c.call("profile.update", name="p1", devices={"data": dev})
            assert (await c.call("profile.get", name="p1"))["devices"] == {"data": dev}
            await c.call("profile.update", name="p1", devices={})
            assert (await c.call("profile.get", name="p1"))["devices"] == {}
            listed = {p["name"]: p for p in await c.call("profile.list")}
            assert sorted(listed) == ["default", "p1"]
            assert listed["default"]["devices"]["root"]["pool"] == "default"


async def test_profiles_cascade_in_order_and_the_instance_wins(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("profile.create", name="a", config={"user.x": "a", "user.a": "1"},
                         devices={"d1": disk(tmp_path / "a")})
            await c.call("profile.create", name="b", config={"user.x": "b"},
                         devices={"d1": disk(tmp_path / "b")})
            await c.wait(await c.call("instance.create", image="img", name="ab",
                                      profiles=["default", "a", "b"]))
            await c.wait(await c.call("instance.create", image="img", name="ba",
                                      profiles=["default", "b", "a"]))
            await c.wait(await c.call("instance.create", image="img", name="own",
                                      profiles=["default", "a", "b"],
                                      config={"user.x": "own"},
                                      devices={"d1": disk(tmp_path / "own")}))
            config, devices = await expanded(c, "ab")
            assert (config["user.x"], config["user.a"]) == ("b", "1")
            assert devices["d1"]["source"] == str(tmp_path / "b")
            assert devices["root"]["pool"] == "default"
            config, devices = await expanded(c, "ba")
            assert config["user.x"] == "a"
            assert devices["d1"]["source"] == str(tmp_path / "a")
            config, devices = await expanded(c, "own")
            assert config["user.x"] == "own"
            assert devices["d1"]["source"] == str(tmp_path / "own")
            # a change to a profile shows in every instance that uses it
            await c.call("profile.update", name="b", config={"user.x": "b2"})
            assert (await expanded(c, "ab"))[0]["user.x"] == "b2"
            assert (await expanded(c, "ba"))[0]["user.x"] == "a"
            used = (await c.call("profile.get", name="a"))["used_by"]
            assert used == ["/1.0/instances/ab", "/1.0/instances/ba", "/1.0/instances/own"]
            # assign reorders: later wins
            await c.call("instance.set_profiles", name="ab", profiles=["default", "b", "a"])
            assert (await expanded(c, "ab"))[0]["user.x"] == "a"
            assert (await c.call("instance.get", name="ab"))["profiles"] == ["default", "b",
                                                                             "a"]


async def test_unknown_keys_and_bad_devices_are_refused_naming_them(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            with pytest.raises(RpcError, match=r"Unknown configuration key: nope\.key") as exc:
                await c.call("profile.create", name="p1", config={"nope.key": "1"})
            assert (exc.value.data["kind"], exc.value.data["key"]) == ("invalid_argument",
                                                                       "nope.key")
            with pytest.raises(RpcError, match=r"'volatile\.uuid' is managed by the daemon"):
                await c.call("profile.create", name="p1", config={"volatile.uuid": "x"})
            with pytest.raises(RpcError, match=r"Invalid value for 'limits\.processes'"):
                await c.call("profile.create", name="p1", config={"limits.processes": "many"})
            with pytest.raises(RpcError, match="unknown type 'floppy'"):
                await c.call("profile.create", name="p1", devices={"f": {"type": "floppy"}})
            with pytest.raises(RpcError, match="Storage pool 'nopool' not found"):
                await c.call("profile.create", name="p1", devices={
                    "root": {"type": "disk", "path": "/", "pool": "nopool"}})
            assert [p["name"] for p in await c.call("profile.list")] == ["default"]
            # a driver's key is fine on a profile (any instance type may use it)
            await c.call("profile.create", name="p1", config={"raw.fakevm": "x"})
            with pytest.raises(RpcError, match="Unknown configuration key: nope"):
                await c.call("profile.update", name="p1", config={"nope": "1"})
            assert (await c.call("profile.get", name="p1"))["config"] == {"raw.fakevm": "x"}
            for bad in ("", "a/b", ".", "..", "a b"):
                with pytest.raises(RpcError, match="Invalid profile name") as exc:
                    await c.call("profile.create", name=bad)
                assert exc.value.data["kind"] == "invalid_argument"
            with pytest.raises(RpcError, match="already exists") as exc:
                await c.call("profile.create", name="p1")
            assert exc.value.data["kind"] == "already_exists"


async def test_the_default_profile_is_protected(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            before = await c.call("profile.get", name="default")
            with pytest.raises(RpcError, match="The 'default' profile cannot be deleted"):
                await c.call("profile.delete", name="default")
            with pytest.raises(RpcError, match="The 'default' profile cannot be renamed"):
                await c.call("profile.rename", name="default", new_name="other")
            assert await c.call("profile.get", name="default") == before
            assert [p["name"] for p in await c.call("profile.list")] == ["default"]


async def test_a_profile_in_use_is_not_deleted_and_nothing_changes(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("profile.create", name="p1", config={"user.k": "v"})
            for name in ("c1", "c2"):
                await c.wait(await c.call("instance.create", image="img", name=name,
                                          profiles=["default", "p1"]))
            with pytest.raises(RpcError, match=r"'p1' is currently in use by instance\(s\) "
                               "c1, c2") as exc:
                await c.call("profile.delete", name="p1")
            assert exc.value.data["kind"] == "invalid_state"
            assert (await c.call("profile.get", name="p1"))["config"] == {"user.k": "v"}
            assert (await c.call("instance.get", name="c1"))["profiles"] == ["default", "p1"]
            # a change that would leave an instance without a root disk is refused too
            with pytest.raises(RpcError, match="'c1' would have no root disk"):
                await c.call("profile.update", name="default", devices={})
            assert "root" in (await c.call("profile.get", name="default"))["devices"]
            for name in ("c1", "c2"):
                await c.call("instance.set_profiles", name=name, profiles=["default"])
            await c.call("profile.delete", name="p1")
            assert [p["name"] for p in await c.call("profile.list")] == ["default"]
            with pytest.raises(RpcError, match="Profile 'p1' not found"):
                await c.call("profile.delete", name="p1")


async def test_a_profile_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            with pytest.raises(RpcError, match="Profile 'nope' not found") as exc:
                await c.call("instance.create", image="img", name="c1",
                             profiles=["default", "nope"])
            assert exc.value.data["kind"] == "not_found"
            assert await c.call("instance.list") == []
            await c.wait(await c.call("instance.create", image="img", name="c1"))
            with pytest.raises(RpcError, match="Profile 'nope' not found"):
                await c.call("instance.set_profiles", name="c1", profiles=["default", "nope"])
            with pytest.raises(RpcError, match="'c1' would have no root disk"):
                await c.call("instance.set_profiles", name="c1", profiles=[])
            with pytest.raises(RpcError, match="listed twice"):
                await c.call("instance.set_profiles", name="c1",
                             profiles=["default", "default"])
            # a device the container's hypervisor cannot render, and a VM driver's key
            await c.call("profile.create", name="usb",
                         devices={"u": {"type": "usb", "vendorid": "1234"}})
            with pytest.raises(RpcError, match="usb devices are not supported by the fakect"):
                await c.call("instance.set_profiles", name="c1", profiles=["default", "usb"])
            await c.call("profile.create", name="vm", config={"raw.fakevm": "x"})
            with pytest.raises(RpcError, match=r"'raw\.fakevm' belongs to the fakevm"):
                await c.call("instance.set_profiles", name="c1", profiles=["default", "vm"])
            assert (await c.call("instance.get", name="c1"))["profiles"] == ["default"]


async def test_rename_and_copy(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            events = await d.client()
            await events.call("events.subscribe", types=["lifecycle"])
            await import_image(c, "img")
            await c.call("profile.create", name="p1", config={"user.k": "v"},
                         description="one")
            await c.wait(await c.call("instance.create", image="img", name="c1",
                                      profiles=["default", "p1"]))
            await c.call("profile.rename", name="p1", new_name="p2")
            assert (await c.call("instance.get", name="c1"))["profiles"] == ["default", "p2"]
            assert (await expanded(c, "c1"))[0]["user.k"] == "v"
            assert (await c.call("profile.get", name="p2"))["used_by"] == ["/1.0/instances/c1"]
            with pytest.raises(RpcError, match="Profile 'p1' not found"):
                await c.call("profile.get", name="p1")
            copied = await c.call("profile.copy", name="p2", new_name="p3")
            assert (copied["config"], copied["description"]) == ({"user.k": "v"}, "one")
            assert (await c.call("profile.get", name="p3"))["used_by"] == []
            with pytest.raises(RpcError, match="'p3' already exists"):
                await c.call("profile.rename", name="p2", new_name="p3")
            with pytest.raises(RpcError, match="already exists"):
                await c.call("profile.copy", name="p2", new_name="default")
            assert (await c.call("instance.get", name="c1"))["profiles"] == ["default", "p2"]
            await c.call("profile.delete", name="p3")
            seen: list[tuple[str, str]] = []
            while len(seen) < 4 or seen[-1][0] != "profile-deleted":
                meta = (await events.message())["params"]["metadata"]
                if meta["action"].startswith("profile-"):
                    seen.append((meta["action"], meta["source"]))
            assert seen == [("profile-created", "/1.0/profiles/p1"),
                            ("profile-renamed", "/1.0/profiles/p2"),
                            ("profile-created", "/1.0/profiles/p3"),
                            ("profile-deleted", "/1.0/profiles/p3")]


async def test_a_project_without_its_own_profiles_shares_the_default_ones(
        tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("project.create", name="shared", config={
                "features.profiles": "false", "features.images": "false"})
            await c.call("profile.create", name="web", config={"user.k": "v"})
            names = [p["name"] for p in await c.call("profile.list", project="shared")]
            assert names == ["default", "web"]
            await c.wait(await c.call("instance.create", image="img", name="c1",
                                      profiles=["default", "web"], project="shared"))
            inst = await c.call("instance.get", name="c1", project="shared")
            assert inst["expanded_config"]["user.k"] == "v"
            assert (await c.call("profile.get", name="web"))["used_by"] == \
                ["/1.0/instances/c1?project=shared"]
            with pytest.raises(RpcError, match=r"in use by instance\(s\) c1 \(project shared\)"):
                await c.call("profile.delete", name="web")
            await c.call("profile.rename", name="web", new_name="web2", project="shared")
            assert (await c.call("instance.get", name="c1", project="shared"))["profiles"] == \
                ["default", "web2"]
            assert [p["name"] for p in await c.call("profile.list")] == ["default", "web2"]
            await c.call("instance.set_profiles", name="c1", profiles=["default"],
                         project="shared")
            await c.call("profile.delete", name="web2", project="shared")
            assert [p["name"] for p in await c.call("profile.list")] == ["default"]
            await c.wait(await c.call("instance.delete", name="c1", project="shared"))


async def test_a_profile_change_reaches_running_instances(tmp_path: Path) -> None:
    """Live keys apply at once; a device change the driver cannot hot-plug is refused
    while an instance using the profile runs, and nothing changes."""
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("profile.create", name="mem", config={"limits.memory": "1GiB"})
            await c.wait(await c.call("instance.create", image="img", name="c1",
                                      profiles=["default", "mem"], start=True))
            await c.wait(await c.call("instance.create", image="img", name="off",
                                      profiles=["default", "mem"]))
            await c.call("profile.update", name="mem", config={"limits.memory": "2GiB",
                                                               "user.x": "1"})
            applied = [args for name, args in d.world.calls if name == "hv.apply_config"]
            assert applied == [("c1", ["limits.memory"], "2GiB")]  # not the stopped one
            with pytest.raises(RpcError, match="cannot change disk devices of running "
                               "instance 'c1'") as exc:
                await c.call("profile.update", name="mem",
                             devices={"data": disk(tmp_path / "data")})
            assert exc.value.data["kind"] == "invalid_state"
            assert (await c.call("profile.get", name="mem"))["devices"] == {}
            # assigning: live keys too, and the same refusal
            await c.call("profile.create", name="big", config={"limits.memory": "4GiB"})
            await c.call("instance.set_profiles", name="c1", profiles=["default", "big"])
            applied = [args for name, args in d.world.calls if name == "hv.apply_config"]
            assert applied[-1] == ("c1", ["limits.memory"], "4GiB")
            await c.call("profile.create", name="disk",
                         devices={"data": disk(tmp_path / "data")})
            with pytest.raises(RpcError, match="cannot change disk devices"):
                await c.call("instance.set_profiles", name="c1", profiles=["default", "disk"])
            await c.call("instance.set_profiles", name="off", profiles=["default", "disk"])
            inst = await c.call("instance.get", name="c1")
            assert inst["profiles"] == ["default", "big"]
            assert "data" not in inst["expanded_devices"]
            gone = {"data": {"type": "disk", "source": str(tmp_path / "gone"), "path": "/mnt"}}
            with pytest.raises(RpcError, match=r"source .*gone does not exist"):
                await c.call("profile.update", name="disk", devices=gone)
            assert (await c.call("profile.get", name="disk"))["devices"]["data"]["source"] == \
                str(tmp_path / "data")


async def test_list_all_projects(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("project.create", name="own", config={"features.images": "false"})
            await c.call("project.create", name="shared", config={
                "features.profiles": "false", "features.images": "false"})
            await c.call("profile.create", name="web", project="own")
            await c.wait(await c.call("instance.create", image="img", name="c1",
                                      project="shared"))
            listed = [(p["project"], p["name"], p["used_by"])
                      for p in await c.call("profile.list", all_projects=True)]
            assert listed == [("default", "default", ["/1.0/instances/c1?project=shared"]),
                              ("own", "default", []), ("own", "web", [])]
            assert [p["name"] for p in await c.call("profile.list", project="own")] == \
                ["default", "web"]
            await c.wait(await c.call("instance.delete", name="c1", project="shared"))
