"""The daemon's API and lifecycle, in process, over memory streams, on fake drivers."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from inproc import RpcError, daemon, import_image, wait_status

from lxctl.drivers.auth import PeerCredentials
from lxctl.drivers.devices import DiskDevice, NicDevice
from lxctl.state.records import NetworkRecord, ProfileRecord, ProjectRecord

ALICE = PeerCredentials(pid=2, uid=1000, gid=1000)


async def test_launch_exec_list_delete(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="c1", start=True))
            (item,) = await c.call("instance.list")
            assert (item["name"], item["status"], item["project"]) == ("c1", "Running",
                                                                        "default")
            assert await c.call("instance.exec", name="c1", command=["echo", "hi"]) == \
                {"return": 1}
            assert [n for n, _ in c.notifications] == ["exec.output"]
            await c.wait(await c.call("instance.delete", name="c1", force=True))
            assert await c.call("instance.list") == []
            assert d.world.volumes == {}


async def test_the_core_reads_storage_info(tmp_path: Path) -> None:
    """Image volumes only where the driver keeps them; volume types it declares."""
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            await d.app.pools.create("plainpool", "plain", {})
            c = await d.client()
            await import_image(c, "img")
            for name, pool in (("a1", "default"), ("a2", "default"), ("p1", "plainpool")):
                await c.wait(await c.call("instance.create", image="img", name=name,
                                          storage=pool))
            calls = [name for name, _ in d.world.calls]
            assert calls.count("fake.ensure_image_volume") == 2  # one per create, serialized
            assert len(d.world.image_volumes) == 1  # one variant of one image on one pool
            assert "plain.ensure_image_volume" not in calls
            assert "plain.create_volume_from_image" in calls
            await c.call("image.delete", image="img")
            calls = [name for name, _ in d.world.calls]
            assert "fake.delete_image_volume" in calls
            assert "plain.delete_image_volume" not in calls


async def test_devices_the_hypervisor_cannot_render_are_refused(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            with pytest.raises(RpcError, match="'u1': usb devices are not supported by the "
                               "fakect driver") as exc:
                await c.call("instance.create", image="img", name="c1",
                             devices={"u1": {"type": "usb", "vendorid": "1234"}})
            assert exc.value.data["kind"] == "invalid_argument"
            with pytest.raises(RpcError, match="unknown type 'floppy'"):
                await c.call("instance.create", image="img", name="c1",
                             devices={"f": {"type": "floppy"}})
            assert await c.call("instance.list") == []
            assert d.world.volumes == {}


async def test_config_keys_come_from_drivers_and_plugins(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="ok", config={
                "raw.fakect": "x", "user.fake.limit": "12", "limits.memory": "1GiB"}))
            refusals = {
                "raw.lxc": "Unknown configuration key: raw.lxc",  # the lxc plugin is absent
                "raw.fakevm": "'raw.fakevm' belongs to the fakevm hypervisor driver, which a "
                              "container instance does not use",
                "user.fake.limit": "Invalid value for 'user.fake.limit'",
            }
            for key, message in refusals.items():
                with pytest.raises(RpcError, match=message) as exc:
                    await c.call("instance.create", image="img", name="no",
                                 config={key: "abc"})
                assert exc.value.data["key"] == key
            with pytest.raises(Exception, match=r"'fake\.size'.*fake storage"):
                await d.app.pools.create("p2", "plain", {"fake.size": "1GiB"})
            assert [i["name"] for i in await c.call("instance.list")] == ["ok"]


async def test_a_failed_delete_leaks_nothing_and_can_be_retried(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="c1"))
            assert list(d.world.volumes) == [("default", "c1")]

            d.world.fail_next["hv.delete"] = 1  # the hypervisor's part fails first
            with pytest.raises(RpcError, match=r"fake hv\.delete failed"):
                await c.wait(await c.call("instance.delete", name="c1"))
            assert [i["name"] for i in await c.call("instance.list")] == ["c1"]
            assert list(d.world.volumes) == [("default", "c1")]

            d.world.fail_next["delete_volume"] = 1  # then the volume's
            with pytest.raises(RpcError, match="fake delete_volume failed"):
                await c.wait(await c.call("instance.delete", name="c1"))
            assert [i["name"] for i in await c.call("instance.list")] == ["c1"]
            assert list(d.world.volumes) == [("default", "c1")]

            await c.wait(await c.call("instance.delete", name="c1"))
            assert await c.call("instance.list") == []
            assert d.world.volumes == {}
            assert await d.app.store.read(lambda t: t.volume_list(None, None)) == []


async def test_degraded_start_waits_for_a_pool_then_starts_its_instances(
        tmp_path: Path) -> None:
    directory = tmp_path / "d"
    with trio.fail_after(30):
        async with daemon(directory) as d:
            c = await d.client()
            await d.app.pools.create("flaky", "fake", {})
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="on-flaky",
                                      storage="flaky", start=True))
            await c.wait(await c.call("instance.create", image="img", name="on-default",
                                      start=True))
            world = d.world
        world.running.clear()  # the host rebooted: nothing runs, both should come back
        world.unmountable.add("flaky")
        async with daemon(directory) as d:
            c = await d.client()
            await wait_status(c, "on-default", "Running")  # started after readiness
            states = {i["name"]: i["status"] for i in await c.call("instance.list")}
            assert states == {"on-default": "Running", "on-flaky": "Stopped"}
            pools = {p["name"]: p for p in await c.call("storage.list")}
            assert pools["flaky"]["status"] == "Unavailable"
            assert "cannot be mounted" in pools["flaky"]["reason"]
            info = await c.call("server.info")
            assert info["environment"]["storage_pools_unavailable"] == {
                "flaky": "fake pool flaky cannot be mounted"}
            assert info["warnings"][0]["name"] == "flaky"
            with pytest.raises(RpcError, match="Storage pool 'flaky' unavailable") as exc:
                await c.call("instance.start", name="on-flaky")
            assert exc.value.code == -32007 and exc.value.data["kind"] == "unavailable"
            with pytest.raises(RpcError, match="Storage pool 'flaky' unavailable"):
                await c.call("instance.delete", name="on-flaky")
            events = await d.client()
            await events.call("events.subscribe", types=["lifecycle"])
            world.unmountable.clear()  # the pool comes back: retried, then its instance starts
            seen = []
            while "instance-started" not in seen:
                msg = await events.message()
                seen.append(msg["params"]["metadata"]["action"])
            assert seen == ["storage-pool-updated", "instance-started"]
            states = {i["name"]: i["status"] for i in await c.call("instance.list")}
            assert states == {"on-default": "Running", "on-flaky": "Running"}
            assert (await c.call("server.info"))["warnings"] == []


async def test_networks_come_up_in_tiers_and_plug_nics_as_data(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    with trio.fail_after(30):
        async with daemon(directory) as d:
            c = await d.client()
            await d.app.store.write(lambda t: t.network_create(
                NetworkRecord("net1", "fakenet", {"parent": "lxtlink0"})))
            await d.app.store.write(lambda t: t.network_create(NetworkRecord("net0",
                                                                             "fakenet")))
            await import_image(c, "img")
            d.world.missing_links.add("lxtlink0")
        async with daemon(directory) as d:
            c = await d.client()
            nets = {n["name"]: n for n in await c.call("network.list")}
            assert nets["net0"]["status"] == "Created"
            assert nets["net1"]["status"] == "Unavailable"
            assert "lxtlink0 not found" in nets["net1"]["reason"]
            starts = [a for n, a in d.world.calls if n == "net.start"]
            assert starts == ["net0"]  # the standalone tier first; net1 failed
            nic = {"eth0": {"type": "nic", "network": "net1", "name": "eth0"}}
            await c.wait(await c.call("instance.create", image="img", name="c1", devices=nic))
            with pytest.raises(RpcError, match="Network 'net1' unavailable: parent interface"):
                await c.call("instance.start", name="c1")
            d.world.missing_links.clear()
            d.app.availability.hint()  # as a netlink watcher will when the link appears
            with trio.fail_after(5):
                while (await c.call("network.list"))[1]["status"] != "Created":
                    await trio.sleep(0.01)
            await c.wait(await c.call("instance.create", image="img", name="c2", devices={
                "eth0": {"type": "nic", "network": "net1", "nictype": "macvlan"}}))
            with pytest.raises(RpcError, match="network 'net1' \\(fakenet\\) takes no macvlan"):
                await c.wait(await c.call("instance.start", name="c2"))
            assert not any(n == "net.plug" and a[1] == "c2" for n, a in d.world.calls)
            await c.wait(await c.call("instance.start", name="c1"))
            devices = d.world.started_with["c1"]
            assert isinstance(devices[0], DiskDevice) and devices[0].path == "/"
            (plugged,) = [dev for dev in devices if isinstance(dev, NicDevice)]
            assert (plugged.link, plugged.host_name, plugged.mtu) == ("br-net1", "v-c1", 1400)
            await c.wait(await c.call("instance.stop", name="c1", force=True))
            assert ("net.unplug", ("net1", "c1", "eth0")) in d.world.calls


async def test_authorization_decides_per_call(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            alice = await d.client(ALICE)
            assert await alice.call("instance.list") == []
            with pytest.raises(RpcError, match=r"alice may not call instance\.list in project "
                               r"'other'") as exc:
                await alice.call("instance.list", project="other")
            assert exc.value.code == -32006
            with pytest.raises(RpcError, match=r"may not call server\.shutdown"):
                await alice.call("server.shutdown")  # the plugin's lxctl_authorize says no
            nobody = await d.client(PeerCredentials(3, 4242, 4242))
            with pytest.raises(RpcError, match="Not authorized"):
                await nobody.call("server.version")
            root = await d.client()
            assert (await root.call("server.version"))["server"] == "lxctl"
            await root.call("project.create", name="other")
            with pytest.raises(RpcError, match=r"alice may not call project\.delete in "
                               r"project 'other'"):  # a project.* call: the one it names
                await alice.call("project.delete", name="other")
            with pytest.raises(RpcError, match="Project 'nope' not found"):
                await root.call("instance.list", project="nope")


async def test_projects_keep_instances_apart(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await d.app.store.write(lambda t: t.project_create(ProjectRecord("p2", {
                "features.images": "true", "features.profiles": "true"})))  # its own
            await d.app.store.write(lambda t: t.profile_create(ProfileRecord(
                "default", devices={"root": {"type": "disk", "path": "/", "pool": "default"}},
                project="p2")))
            await import_image(c, "img")
            await import_image(c, "img2", project="p2")
            for project in ("default", "p2"):
                image = "img" if project == "default" else "img2"
                await c.wait(await c.call("instance.create", image=image, name="c1",
                                          start=True, project=project))
            assert sorted(d.world.running) == ["c1", "p2_c1"]
            both = await c.call("instance.list", all_projects=True)
            assert [(i["project"], i["name"]) for i in both] == [("default", "c1"),
                                                                 ("p2", "c1")]
            await c.wait(await c.call("instance.delete", name="c1", force=True, project="p2"))
            assert [i["project"] for i in await c.call("instance.list", all_projects=True)] \
                == ["default"]
            with pytest.raises(RpcError, match="not found in project 'p2'"):
                await c.call("instance.get", name="c1", project="p2")
            assert [p["name"] for p in await c.call("project.list")] == ["default", "p2"]


async def test_a_daemon_starts_on_a_foundation_database(tmp_path: Path) -> None:
    """A state dir written by the foundation's daemon (schema 1): migrated at start, its
    running instance started again, its image and profile still there."""
    import json

    from lxctl.state.sqlite import connect, migrate

    directory = tmp_path / "d"
    directory.mkdir()
    db = connect(directory / "lxctl.db")
    migrate(db, directory / "lxctl.db", target=1)
    root = {"root": {"type": "disk", "path": "/", "pool": "default"}}
    db.execute("INSERT INTO storage_pools VALUES ('default', 'fake', '{}', '')")
    db.execute("INSERT INTO profiles VALUES ('default', '{}', ?, '')", (json.dumps(root),))
    db.execute("INSERT INTO images VALUES ('abc', 'abc.tar', 1, 'x86_64', 'container', '{}', "
               "0, 0, 0)")
    db.execute("INSERT INTO image_aliases VALUES ('old', 'abc')")
    db.execute("INSERT INTO instances VALUES ('c1', 'container', 'x86_64', '', '{}', '{}', "
               "'[\"default\"]', 0, 1, 2, 'Running')")
    db.close()
    with trio.fail_after(20):
        async with daemon(directory) as d:
            c = await d.client()
            await wait_status(c, "c1", "Running")  # started after readiness
            (inst,) = await c.call("instance.list")
            assert (inst["name"], inst["project"], inst["status"]) == ("c1", "default",
                                                                        "Running")
            assert (await c.call("image.get", image="old"))["fingerprint"] == "abc"
            await c.wait(await c.call("instance.delete", name="c1", force=True))
            assert await d.app.store.read(lambda t: t.volume_list(None, None)) == []
