"""Autostart after a host reboot: ``boot.autostart.priority`` orders the starts (higher
first, ties by name) and ``boot.autostart.delay`` waits after one, in the background:
the daemon is ready meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from inproc import RpcError, daemon, import_image, wait_status


def _starts(calls: list[tuple[str, object]]) -> list[object]:
    return [arg for name, arg in calls if name == "hv.start"]


async def test_instances_start_in_priority_order_then_name(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    wanted = {"a": "1", "b": "5", "c": "5", "d": None, "e": "7"}
    with trio.fail_after(20):
        async with daemon(directory) as d:
            c = await d.client()
            await import_image(c, "img")
            for name, priority in wanted.items():
                config = {} if priority is None else {"boot.autostart.priority": priority}
                # "e" was stopped, but boot.autostart brings it up too
                await c.wait(await c.call("instance.create", image="img", name=name,
                                          config=config, start=name != "e"))
            await c.call("instance.update", name="e",
                         config={"boot.autostart": "true", "boot.autostart.priority": "7"})
            world = d.world
        world.running.clear()  # the host rebooted
        world.calls.clear()
        async with daemon(directory) as d:
            c = await d.client()
            for name in wanted:
                await wait_status(c, name, "Running")
            assert _starts(world.calls) == ["e", "b", "c", "a", "d"]


async def test_a_delay_does_not_hold_up_readiness(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    with trio.fail_after(20):
        async with daemon(directory) as d:
            c = await d.client()
            await import_image(c, "img")
            await c.wait(await c.call("instance.create", image="img", name="first", start=True,
                                      config={"boot.autostart.priority": "2",
                                              "boot.autostart.delay": "3600"}))
            await c.wait(await c.call("instance.create", image="img", name="second",
                                      start=True))
            world = d.world
        world.running.clear()
        world.calls.clear()
        async with daemon(directory) as d:
            assert d.app.ready.is_set()  # ready, while the hour's delay has just begun
            c = await d.client()
            await c.call("server.info")
            await wait_status(c, "first", "Running")
            await trio.sleep(0.3)
            assert _starts(world.calls) == ["first"]
            assert (await c.call("instance.get", name="second"))["status"] == "Stopped"
            # a start by hand goes ahead, and the sequence will not start it twice
            await c.wait(await c.call("instance.start", name="second"))
        # the daemon shut down in the middle of the delay, without waiting it out


async def test_the_keys_are_integers(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with daemon(tmp_path / "d") as d:
            c = await d.client()
            await import_image(c, "img")
            for key in ("boot.autostart.priority", "boot.autostart.delay"):
                with pytest.raises(RpcError, match=key) as exc:
                    await c.call("instance.create", image="img", name="x",
                                 config={key: "soon"})
                assert exc.value.data["kind"] == "invalid_argument"
