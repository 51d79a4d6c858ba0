"""Instance config and devices through ``instance.update``, in process, on fake drivers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from inproc import RpcError, daemon, import_image

from lxctl.drivers.devices import DiskDevice

ROOT = {"type": "disk", "path": "/", "pool": "default"}


async def test_config_set_unset_round_trip_keeps_volatile_keys(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="c1"))
            before = await c.call("instance.get", name="c1")
            volatile = {k: v for k, v in before["config"].items() if k.startswith("volatile.")}
            assert volatile  # volatile.base_image
            new = {**before["config"], "user.a": "1", "limits.memory": "1GiB"}
            got = await c.call("instance.update", name="c1", config=new, description="hi")
            assert got["config"]["user.a"] == "1" and got["description"] == "hi"
            assert got["expanded_config"]["limits.memory"] == "1GiB"
            # unset: the user's keys go, the daemon's stay even if the caller drops them
            mine = {k: v for k, v in new.items()
                    if k not in ("user.a", "limits.memory") and not k.startswith("volatile.")}
            got = await c.call("instance.update", name="c1", config=mine)
            assert "user.a" not in got["config"]
            assert {k: got["config"][k] for k in volatile} == volatile
            with pytest.raises(RpcError, match="managed by the daemon"):
                await c.call("instance.update", name="c1",
                             config={"volatile.base_image": "x"})
            with pytest.raises(RpcError, match="managed by the daemon"):
                await c.call("instance.update", name="c1", config={"volatile.new": "x"})


async def test_bad_config_and_devices_are_refused_and_change_nothing(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="c1"))
            before = await c.call("instance.get", name="c1")
            host_dir = tmp_path / "shared"
            host_dir.mkdir()
            bad: dict[str, tuple[dict[str, Any], str]] = {
                "unknown key": ({"config": {"bogus.key": "1"}},
                                "Unknown configuration key: bogus.key"),
                "bad value": ({"config": {"limits.memory": "lots"}},
                              "Invalid value for 'limits.memory'"),
                "unknown device type": ({"devices": {"x": {"type": "floppy"}}},
                                        "unknown type 'floppy'"),
                "unknown device key": ({"devices": {"x": {"type": "disk", "path": "/a",
                                                          "source": str(host_dir),
                                                          "colour": "red"}}},
                                       "unknown key 'colour'"),
                "missing source": ({"devices": {"x": {"type": "disk", "path": "/a",
                                                      "source": str(tmp_path / "nope")}}},
                                   "does not exist"),
                "two on one path": ({"devices": {
                    "x": {"type": "disk", "path": "/a", "source": str(host_dir)},
                    "y": {"type": "disk", "path": "/a", "source": str(host_dir)}}},
                    "path /a is also used by device 'x'"),
                "no root left": ({"devices": {"root": {"type": "nic", "nictype": "p2p"}}},
                                 "no root disk"),
            }
            for what, (change, message) in bad.items():
                with pytest.raises(RpcError, match=message):
                    await c.call("instance.update", name="c1", **change)
                after = await c.call("instance.get", name="c1")
                assert (after["config"], after["devices"]) == (before["config"],
                                                             before["devices"]), what


async def test_devices_of_a_running_instance_need_hotplug(tmp_path: Path) -> None:
    """The fake hypervisor declares no hot-plug: a running instance's devices cannot
    change (and the core never asks the driver); a stopped one's can."""
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="c1", start=True))
            host_dir = tmp_path / "shared"
            host_dir.mkdir()
            data = {"data": {"type": "disk", "path": "/mnt", "source": str(host_dir)}}
            with pytest.raises(RpcError, match="cannot change disk devices of running "
                               "instance 'c1'; stop it first"):
                await c.call("instance.update", name="c1", devices=data)
            assert (await c.call("instance.get", name="c1"))["devices"] == {}
            config = (await c.call("instance.get", name="c1"))["config"]
            await c.call("instance.update", name="c1", config={**config, "user.live": "yes",
                                                               "limits.memory": "1GiB"})
            applied = [a for n, a in d.world.calls if n == "hv.apply_config"]
            assert applied == [("c1", ["limits.memory"], "1GiB")]  # only declared live keys
            await c.wait(await c.call("instance.stop", name="c1", force=True))
            got = await c.call("instance.update", name="c1", devices=data)
            assert got["devices"] == data and got["expanded_devices"]["root"] == ROOT
            await c.wait(await c.call("instance.start", name="c1"))
            assert [dev.path for dev in d.world.started_with["c1"]
                    if isinstance(dev, DiskDevice)] == ["/", "/mnt"]


async def test_instance_types_set_cpu_and_memory(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="a",
                                      instance_type="c2-m4"))
            await c.wait(await c.call("instance.create", image="img", name="b",
                                      instance_type="aws:t2.micro",
                                      config={"limits.memory": "3GiB"}))
            a = (await c.call("instance.get", name="a"))["config"]
            b = (await c.call("instance.get", name="b"))["config"]
            assert (a["limits.cpu"], a["limits.memory"]) == ("2", "4096MiB")
            assert (b["limits.cpu"], b["limits.memory"]) == ("1", "3GiB")  # config wins
            with pytest.raises(RpcError, match="Unknown instance type 'x9-huge'"):
                await c.call("instance.create", image="img", name="c", instance_type="x9-huge")
            for bad in ("limits.cpu=0", "limits.cpu=1-", "limits.cpu.allowance=150%"):
                key, value = bad.split("=")
                with pytest.raises(RpcError, match=f"Invalid value for '{key}'"):
                    await c.call("instance.create", image="img", name="c",
                                 config={key: value})
            assert [i["name"] for i in await c.call("instance.list")] == ["a", "b"]


async def test_hotplug_changes_a_running_instance_and_undoes_a_failed_change(
        tmp_path: Path) -> None:
    """Where the driver declares hot-plug (the fake: nics), a change to a running
    instance's devices takes the old devices out, then puts the new ones in; when one
    fails, what was done is undone and nothing is recorded."""
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            n1 = {"type": "nic", "nictype": "bridged", "parent": "br0", "mtu": "1500"}
            await c.wait(await c.call("instance.create", image="img", name="c1",
                                      devices={"n1": n1}, start=True))

            def plugs() -> list[tuple[str, str, int | None]]:
                return [(call, args[0], args[1].mtu) for call, args in d.world.calls
                        if call in ("hv.hotplug", "hv.hot_unplug")]

            n1_new = {**n1, "mtu": "9000"}
            n2 = {"type": "nic", "nictype": "bridged", "parent": "br1"}
            d.world.fail_next["hotplug n2"] = 1
            with pytest.raises(RpcError, match="fake hotplug n2 failed"):
                await c.call("instance.update", name="c1", devices={"n1": n1_new, "n2": n2})
            assert plugs() == [("hv.hot_unplug", "n1", 1500), ("hv.hotplug", "n1", 9000),
                               ("hv.hot_unplug", "n1", 9000), ("hv.hotplug", "n1", 1500)]
            assert (await c.call("instance.get", name="c1"))["devices"] == {"n1": n1}

            d.world.calls.clear()
            await c.call("instance.update", name="c1", devices={"n2": n2})
            assert plugs() == [("hv.hot_unplug", "n1", 1500), ("hv.hotplug", "n2", None)]
            assert (await c.call("instance.get", name="c1"))["devices"] == {"n2": n2}


async def test_volatile_keys_and_the_host_shutdown_action(tmp_path: Path) -> None:
    """The daemon keeps volatile.uuid (set once) and volatile.last_state.power; at
    'admin shutdown' each instance is stopped as its boot.host_shutdown_action and
    boot.host_shutdown_timeout say; a bad action is refused at set time."""
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            actions = {"c1": {}, "c2": {"boot.host_shutdown_action": "force-stop"},
                       "c3": {"boot.host_shutdown_action": "stateful-stop",
                              "boot.host_shutdown_timeout": "7"}}
            for name, config in actions.items():
                await c.wait(await c.call("instance.create", image="img", name=name,
                                          config=config, start=True))
            got = (await c.call("instance.get", name="c1"))["config"]
            assert len(got["volatile.uuid"]) == 36
            assert got["volatile.last_state.power"] == "RUNNING"
            await c.wait(await c.call("instance.restart", name="c1", force=True))
            again = (await c.call("instance.get", name="c1"))["config"]
            assert again["volatile.uuid"] == got["volatile.uuid"]
            with pytest.raises(RpcError, match=r"boot.host_shutdown_action.*must be one of"):
                await c.call("instance.update", name="c1",
                             config={**again, "boot.host_shutdown_action": "hibernate"})
            d.world.calls.clear()
            await d.app.instances.stop_all(30.0, False)
            stops = sorted(args for call, args in d.world.calls if call == "hv.stop")
            assert stops == [("c1", 30.0, False), ("c2", 30.0, True), ("c3", 7.0, False)]
            await c.wait(await c.call("instance.start", name="c1"))
            await c.wait(await c.call("instance.stop", name="c1", force=True))
            got = (await c.call("instance.get", name="c1"))["config"]
            assert got["volatile.last_state.power"] == "STOPPED"


async def test_the_root_disk_size_is_the_root_volume_quota(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            quotas = d.world.quotas
            sized = {"root": {**ROOT, "size": "1GiB"}}
            await c.wait(await c.call("instance.create", image="img", name="c1",
                                      devices=sized, start=True))
            assert quotas[("default", "c1")] == 1 << 30  # set at create
            got = await c.call("instance.update", name="c1",
                               devices={"root": {**ROOT, "size": "2GiB"}})
            assert quotas[("default", "c1")] == 2 << 30  # on the running instance
            assert got["expanded_devices"]["root"]["size"] == "2GiB"
            with pytest.raises(RpcError, match="size must be a size such as 10GiB"):
                await c.call("instance.update", name="c1",
                             devices={"root": {**ROOT, "size": "lots"}})
            # a hot-plug in the same change fails: the quota goes back
            d.world.fail_next["hotplug n1"] = 1
            n1 = {"type": "nic", "nictype": "bridged", "parent": "br0"}
            with pytest.raises(RpcError, match="fake hotplug n1 failed"):
                await c.call("instance.update", name="c1",
                             devices={"root": {**ROOT, "size": "3GiB"}, "n1": n1})
            assert quotas[("default", "c1")] == 2 << 30
            await c.call("instance.update", name="c1", devices={"root": ROOT})
            assert quotas[("default", "c1")] == 0  # no size: no limit
            # any other change of a running instance's root disk is still refused
            with pytest.raises(RpcError, match="root disk of running instance"):
                await c.call("instance.update", name="c1",
                             devices={"root": {**ROOT, "readonly": "true"}})
            # a driver without quotas refuses a size before anything is made
            await d.app.pools.create("plainpool", "plain", {})
            with pytest.raises(RpcError, match="does not support quotas"):
                await c.call("instance.create", image="img", name="c2",
                             devices={"root": {"type": "disk", "path": "/",
                                               "pool": "plainpool", "size": "1GiB"}})
            assert [i["name"] for i in await c.call("instance.list")] == ["c1"]
            d.world.fail_next["set_quota"] = 1  # a driver failure changes nothing
            with pytest.raises(RpcError, match="fake set_quota failed"):
                await c.call("instance.update", name="c1", devices=sized)
            got = await c.call("instance.get", name="c1")
            assert "size" not in got["devices"]["root"] and quotas[("default", "c1")] == 0


async def test_a_profile_root_size_is_the_quota_of_every_instance_using_it(
        tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="up", start=True))
            await c.wait(await c.call("instance.create", image="img", name="down"))
            await c.call("profile.update", name="default",
                         devices={"root": {**ROOT, "size": "1GiB"}})
            quotas = d.world.quotas
            assert quotas[("default", "up")] == quotas[("default", "down")] == 1 << 30
            d.world.fail_next["set_quota"] = 1  # the first user fails: nothing changes
            with pytest.raises(RpcError, match="fake set_quota failed"):
                await c.call("profile.update", name="default",
                             devices={"root": {**ROOT, "size": "2GiB"}})
            assert quotas[("default", "up")] == quotas[("default", "down")] == 1 << 30
            profile = await c.call("profile.get", name="default")
            assert profile["devices"]["root"]["size"] == "1GiB"
