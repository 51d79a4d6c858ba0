"""Projects, in process on the fake drivers: create, list, update, delete; names;
isolation; features.images/profiles; limits.instances."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from inproc import Client, RpcError, daemon, import_image

ROOT_DISK = {"root": {"type": "disk", "path": "/", "pool": "default"}}


async def _launch(c: Client, name: str, project: str, **params: object) -> None:
    await c.wait(await c.call("instance.create", image="img", name=name, project=project,
                              **params))


async def test_create_list_update_delete(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            p = await c.call("project.create", name="p1", description="first",
                             config={"limits.instances": "3"})
            assert p["config"] == {"features.images": "true", "features.profiles": "true",
                                   "features.storage.volumes": "true",
                                   "limits.instances": "3"}
            assert p["used_by"] == ["/1.0/profiles/default?project=p1"]
            (profile,) = await c.call("profile.list", project="p1")
            assert (profile["name"], profile["devices"]) == ("default", {})
            assert [x["name"] for x in await c.call("project.list")] == ["default", "p1"]
            with pytest.raises(RpcError, match="'p1' already exists"):
                await c.call("project.create", name="p1")
            await c.call("project.update", name="p1", description="renamed")
            got = await c.call("project.get", name="p1")
            assert got["description"] == "renamed" and got["config"]["limits.instances"] == "3"
            await c.call("project.update", name="p1", config={"features.images": "true"})
            assert (await c.call("project.get", name="p1"))["config"] == {
                "features.images": "true"}
            await c.call("project.delete", name="p1")
            assert [x["name"] for x in await c.call("project.list")] == ["default"]
            assert await c.call("profile.list", project="p1") == []
            with pytest.raises(RpcError, match="Project 'p1' not found"):
                await c.call("project.delete", name="p1")


@pytest.mark.parametrize(("name", "why"), [
    ("a_b", "may not contain underscores"), ("a/b", "may not contain slashes"),
    ("a b", "may not contain spaces"), ("", "no name provided"), ("..", "must be 1-63"),
])
async def test_bad_names_are_refused_naming_the_name(tmp_path: Path, name: str,
                                                     why: str) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            with pytest.raises(RpcError, match=why) as exc:
                await c.call("project.create", name=name)
            assert exc.value.data["kind"] == "invalid_argument"
            assert not name or repr(name) in exc.value.message
            assert [x["name"] for x in await c.call("project.list")] == ["default"]


async def test_bad_config_is_refused_and_nothing_created(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            for config, message in (({"limits.memory": "lots"}, "'limits.memory'"),
                                    ({"limits.instances": "-1"}, "'limits.instances'"),
                                    ({"features.bogus": "true"}, "features.bogus"),
                                    ({"features.images": "maybe"}, "'features.images'")):
                with pytest.raises(RpcError, match=message):
                    await c.call("project.create", name="p1", config=config)
            assert [x["name"] for x in await c.call("project.list")] == ["default"]
            await c.call("project.create", name="p1", config={"limits.memory": "1GiB"})
            with pytest.raises(RpcError, match=r"'limits\.memory'"):
                await c.call("project.update", name="p1", config={"limits.memory": "lots"})
            assert (await c.call("project.get", name="p1"))["config"]["limits.memory"] == \
                "1GiB"


async def test_the_default_project_cannot_be_deleted(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            with pytest.raises(RpcError, match="'default' project cannot be deleted"):
                await c.call("project.delete", name="default")
            with pytest.raises(RpcError, match="features of the default project"):
                await c.call("project.update", name="default",
                             config={"features.images": "false"})
            assert [x["name"] for x in await c.call("project.list")] == ["default"]


async def test_a_project_that_holds_something_cannot_be_deleted(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await c.call("project.create", name="p1")
            image = await import_image(c, "img", project="p1")
            with pytest.raises(RpcError, match=f"'p1' is not empty: it holds images: "
                               f"{image['fingerprint']}") as exc:
                await c.call("project.delete", name="p1")
            assert exc.value.data["kind"] == "invalid_state"
            await _launch(c, "c1", "p1", storage="default")
            with pytest.raises(RpcError, match="instances: c1; images: "):
                await c.call("project.delete", name="p1")
            with pytest.raises(RpcError, match="Features can only be changed on empty"):
                await c.call("project.update", name="p1",
                             config={"features.images": "false"})
            await c.wait(await c.call("instance.delete", name="c1", project="p1"))
            await c.call("image.delete", image="img", project="p1")
            await c.call("project.delete", name="p1")
            assert [x["name"] for x in await c.call("project.list")] == ["default"]


async def test_one_name_in_two_projects(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("project.create", name="p1", config={"features.images": "false"})
            await _launch(c, "c1", "default", start=True)
            await _launch(c, "c1", "p1", start=True, storage="default")  # image: default's
            both = await c.call("instance.list", all_projects=True)
            assert [(i["project"], i["name"]) for i in both] == [("default", "c1"),
                                                                 ("p1", "c1")]
            assert [i["name"] for i in await c.call("instance.list", project="p1")] == ["c1"]
            assert sorted(d.world.running) == ["c1", "p1_c1"]
            used = (await c.call("project.get", name="p1"))["used_by"]
            assert "/1.0/instances/c1?project=p1" in used
            await c.wait(await c.call("instance.delete", name="c1", force=True, project="p1"))
            assert [i["project"] for i in await c.call("instance.list", all_projects=True)] \
                == ["default"]


async def test_limits_instances_refuses_one_too_many(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("project.create", name="p1", config={
                "features.images": "false", "features.profiles": "false",
                "limits.instances": "1"})
            await _launch(c, "c1", "p1")
            volumes = dict(d.world.volumes)
            with pytest.raises(RpcError, match="Reached maximum number of instances in "
                               "project 'p1'") as exc:
                await c.call("instance.create", image="img", name="c2", project="p1")
            assert exc.value.data["kind"] == "invalid_state"
            assert [i["name"] for i in await c.call("instance.list", project="p1")] == ["c1"]
            assert d.world.volumes == volumes  # nothing created for c2
            assert [v.name for v in await d.app.store.read(
                lambda t: t.volume_list(None, "p1"))] == ["c1"]
            await _launch(c, "c2", "default")  # the default project has no limit
            config = (await c.call("project.get", name="p1"))["config"]
            with pytest.raises(RpcError, match=r"Cannot set limits\.instances=0"):
                await c.call("project.update", name="p1",
                             config={**config, "limits.instances": "0"})
            await c.call("project.update", name="p1", config={**config,
                                                               "limits.instances": "2"})
            await _launch(c, "c2", "p1")
            assert len(await c.call("instance.list", project="p1")) == 2


async def test_concurrent_creates_cannot_both_take_the_last_place(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("project.create", name="p1", config={
                "features.images": "false", "features.profiles": "false",
                "limits.instances": "1"})
            outcomes: list[str] = []

            async def create(name: str) -> None:
                client = await d.client()
                try:
                    await _launch(client, name, "p1")
                    outcomes.append("ok")
                except RpcError as exc:
                    outcomes.append(exc.message)

            async with trio.open_nursery() as nursery:
                for name in ("c1", "c2", "c3"):
                    nursery.start_soon(create, name)
            assert sorted(outcomes)[-1] == "ok" and outcomes.count("ok") == 1, outcomes
            assert len(await c.call("instance.list", project="p1")) == 1


async def test_without_features_profiles_the_default_projects_profiles_apply(
        tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.call("project.create", name="shared", config={
                "features.profiles": "false", "features.images": "false"})
            await c.call("project.create", name="own", config={"features.images": "false"})
            assert [p["name"] for p in await c.call("profile.list", project="own")] == \
                ["default"]
            # the default project's default profile has the root disk: no --storage needed
            await _launch(c, "c1", "shared")
            inst = await c.call("instance.get", name="c1", project="shared")
            assert inst["expanded_devices"]["root"] == ROOT_DISK["root"]
            # a project of its own profiles: its default profile has no devices
            with pytest.raises(RpcError, match="No root disk device"):
                await c.call("instance.create", image="img", name="c1", project="own")
            assert await c.call("instance.list", project="own") == []
            # images: without features.images they are the default project's
            assert (await c.call("image.get", image="img", project="shared"))["project"] == \
                "default"
            assert [i["aliases"] for i in await c.call("image.list", project="shared")] == \
                [[{"name": "img", "description": ""}]]
            await c.call("project.create", name="isolated")
            with pytest.raises(RpcError, match="not found in project 'isolated'"):
                await c.call("image.get", image="img", project="isolated")
            await c.wait(await c.call("instance.delete", name="c1", project="shared"))
            for name in ("shared", "own", "isolated"):
                await c.call("project.delete", name=name)


async def test_project_events(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            actions: list[str] = []
            c = await d.client()
            watcher = await d.client()
            await watcher.call("events.subscribe", types=["lifecycle"])
            await c.call("project.create", name="p1")
            await c.call("project.update", name="p1", description="x")
            await c.call("project.delete", name="p1")
            while len(actions) < 3:
                msg = await watcher.message()
                if msg.get("method") == "event":
                    actions.append(msg["params"]["metadata"]["action"])
            assert actions == ["project-created", "project-updated", "project-deleted"]


async def test_rename_an_empty_project(tmp_path: Path) -> None:
    """An empty project renames with its own default profile; one that holds something,
    the default project, a taken or bad new name: refused, nothing changed."""
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await c.call("project.create", name="p1", config={"limits.instances": "2"})
            await c.call("project.create", name="p2")
            await c.call("project.rename", name="p1", new_name="p3")
            assert [x["name"] for x in await c.call("project.list")] == [
                "default", "p2", "p3"]
            got = await c.call("project.get", name="p3")
            assert got["config"]["limits.instances"] == "2"
            assert [p["name"] for p in await c.call("profile.list", project="p3")] == [
                "default"]
            assert await c.call("profile.list", project="p1") == []
            for new, why in (("p2", "'p2' already exists"),
                             ("a_b", "may not contain underscores")):
                with pytest.raises(RpcError, match=why):
                    await c.call("project.rename", name="p3", new_name=new)
            with pytest.raises(RpcError, match="'default' project cannot be renamed"):
                await c.call("project.rename", name="default", new_name="p9")
            await import_image(c, "img", project="p3")
            with pytest.raises(RpcError, match="Only empty projects can be renamed"):
                await c.call("project.rename", name="p3", new_name="p4")
            assert [x["name"] for x in await c.call("project.list")] == [
                "default", "p2", "p3"]
