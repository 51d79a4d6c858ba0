"""``instance.console_log`` and the hypervisors' environment in ``server.info``."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trio
from inproc import RpcError, daemon, import_image


async def test_console_log_round_trip(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="c1"))
            assert await c.call("instance.console_log", name="c1") == {"log": ""}
            d.world.console["c1"] = b"boot\nhello \xff\n"
            assert await c.call("instance.console_log", name="c1") == \
                {"log": "boot\nhello \ufffd\n"}
            with pytest.raises(RpcError, match=r"nope"):
                await c.call("instance.console_log", name="nope")


async def test_server_info_reports_hypervisor_environment(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            info = await c.call("server.info")
            assert info["environment"]["hypervisors"]["fakect"] == \
                {"seccomp": True, "apparmor": False}
            assert "instance.console_log" in info["methods"]


async def test_console_relays_until_input_ends(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="c1"))
            with pytest.raises(RpcError, match="not running"):
                await c.call("instance.console", name="c1", stream="k0")
            await c.wait(await c.call("instance.start", name="c1"))
            await c.notify("stream.input", stream="k1",
                           data=base64.b64encode(b"typed\n").decode())
            await c.notify("stream.input", stream="k1", eof=True)
            c.notifications.clear()
            assert await c.call("instance.console", name="c1", width=100, height=30,
                                stream="k1") == {"return": 0}
            out = b"".join(base64.b64decode(params["data"])
                           for method, params in c.notifications if method == "exec.output")
            assert out == b"console 100x30\ntyped\n"
