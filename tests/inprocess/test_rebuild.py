"""``instance.rebuild``: a new root from an image (or empty), identity kept; refused on a
running instance; a failed rebuild leaves an instance that ``delete`` removes."""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
import trio
from inproc import Client, RpcError, daemon, import_image


def _tarball(os_name: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        meta = (f"architecture: x86_64\ncreation_date: 2\nproperties:\n  os: {os_name}\n"
                "  release: two\n").encode()
        info = tarfile.TarInfo("metadata.yaml")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
        root = tarfile.TarInfo("rootfs")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
    return out.getvalue()


async def _import_other(client: Client, alias: str) -> dict[str, Any]:
    stream = f"upload-{alias}"
    await client.notify("stream.input", stream=stream,
                        data=base64.b64encode(_tarball("other")).decode())
    await client.notify("stream.input", stream=stream, eof=True)
    image: dict[str, Any] = await client.call("image.import", stream=stream, aliases=[alias])
    return image


async def _make(c: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    first = await import_image(c, "img")
    second = await _import_other(c, "other")
    assert first["fingerprint"] != second["fingerprint"]
    await c.wait(await c.call("instance.create", image="img", name="c1",
                              config={"user.keep": "yes", "limits.memory": "1GiB"},
                              devices={"data": {"type": "disk", "source": "/",
                                                "path": "/mnt"}}))
    return first, second


async def test_rebuild_from_another_image_keeps_config_devices_and_profiles(
        tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            first, second = await _make(c)
            before = await c.call("instance.get", name="c1")
            assert before["config"]["volatile.base_image"] == first["fingerprint"]
            assert before["config"]["image.os"] == "fake"
            d.world.calls.clear()
            await c.wait(await c.call("instance.rebuild", name="c1", image="other"))
            after = await c.call("instance.get", name="c1")
            assert after["config"]["volatile.base_image"] == second["fingerprint"]
            assert (after["config"]["image.os"], after["config"]["image.release"]) == \
                ("other", "two")
            assert after["config"]["user.keep"] == "yes"
            assert after["config"]["volatile.uuid"] == before["config"]["volatile.uuid"]
            assert after["config"]["limits.memory"] == "1GiB"
            assert after["devices"] == before["devices"]
            assert after["profiles"] == before["profiles"]
            assert after["created_at"] == before["created_at"]
            assert after["status"] == "Stopped"
            calls = [n for n, _ in d.world.calls]
            assert calls.index("fake.delete_volume") < calls.index(
                "fake.create_volume_from_image") < calls.index("hv.create")
            assert list(d.world.volumes.values()) == [second["fingerprint"]]
            await c.wait(await c.call("instance.start", name="c1"))


async def test_rebuild_empty_drops_the_image_keys(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await _make(c)
            await c.wait(await c.call("instance.rebuild", name="c1", empty=True))
            config = (await c.call("instance.get", name="c1"))["config"]
            assert not [k for k in config if k.startswith("image.")]
            assert "volatile.base_image" not in config
            assert config["user.keep"] == "yes"
            assert list(d.world.volumes.values()) == [""]  # an empty volume


async def test_rebuild_is_refused_while_running_and_without_a_source(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await _make(c)
            await c.wait(await c.call("instance.start", name="c1"))
            with pytest.raises(RpcError, match="must be stopped to be rebuilt") as exc:
                await c.call("instance.rebuild", name="c1", image="other")
            assert exc.value.data["kind"] == "invalid_state"
            await c.wait(await c.call("instance.stop", name="c1", force=True))
            for params in ({}, {"image": "other", "empty": True}):
                with pytest.raises(RpcError) as exc:
                    await c.call("instance.rebuild", name="c1", **params)
                assert exc.value.data["kind"] == "invalid_argument"
            with pytest.raises(RpcError) as exc:
                await c.call("instance.rebuild", name="c1", image="nope")
            assert exc.value.data["kind"] == "not_found"


async def test_a_failed_rebuild_leaves_an_instance_that_delete_removes(
        tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            first, _ = await _make(c)
            d.world.fail_next["create_volume_from_image"] = 1
            with pytest.raises(RpcError, match=r"fake create_volume_from_image failed.*"
                               r"no root volume now"):
                await c.wait(await c.call("instance.rebuild", name="c1", image="other"))
            rec = await c.call("instance.get", name="c1")  # the record stays, unchanged
            assert rec["config"]["volatile.base_image"] == first["fingerprint"]
            assert d.world.volumes == {}
            await c.wait(await c.call("instance.delete", name="c1"))
            assert await c.call("instance.list") == []
            assert await d.app.store.read(lambda t: t.volume_list(None, None)) == []
