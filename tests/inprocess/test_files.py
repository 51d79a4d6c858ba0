"""``file.*`` in process: streams both ways, and the hypervisor's declared statuses."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trio
from inproc import RpcError, daemon, import_image


async def test_push_pull_delete_and_where_files_are_reachable(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="c1"))
            payload = b"x" * 300_000
            with pytest.raises(RpcError, match="reaches the files of running instances "
                               "only; c1 is Stopped"):
                await c.call("file.push", instance="c1", path="/etc/x", stream="s0")
            await c.wait(await c.call("instance.start", name="c1"))
            await c.notify("stream.input", stream="s1", data=base64.b64encode(payload).decode())
            await c.notify("stream.input", stream="s1", eof=True)
            assert await c.call("file.push", instance="c1", path="/etc/x", stream="s1",
                                mode=0o600) == {"size": len(payload)}
            c.notifications.clear()
            assert await c.call("file.pull", instance="c1", path="/etc/x", stream="p") == \
                {"size": len(payload)}
            pulled = b"".join(base64.b64decode(params["data"])
                              for method, params in c.notifications if method == "file.output")
            assert pulled == payload
            with pytest.raises(RpcError, match="must be absolute"):
                await c.call("file.delete", instance="c1", path="etc/x")
            await c.call("file.delete", instance="c1", path="/etc/x")
            assert d.world.files == {}
