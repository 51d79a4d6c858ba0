"""Persistent warnings, in process: an unavailable pool and a failed autostart raise
counted warnings that outlive a restart; list filters, ack, delete."""

from __future__ import annotations

from pathlib import Path

import pytest
from inproc import RpcError, daemon, import_image, wait_status


async def test_pool_and_autostart_warnings_persist_count_and_resolve(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    async with daemon(directory) as d:
        c = await d.client()
        await d.app.pools.create("flaky", "fake", {})
        await import_image(c, "img")
        await c.wait(await c.call("instance.create", image="img", name="boot",
                                  config={"boot.autostart": "true"}))
        world = d.world
        assert await c.call("warning.list") == []
    world.unmountable.add("flaky")
    world.fail_next["start"] = 1  # the autostart fails once
    async with daemon(directory) as d:
        c = await d.client()
        while len(await c.call("warning.list")) < 2:  # autostart runs after readiness
            await d.app.warnings.settle()
        by_type = {w["type"]: w for w in await c.call("warning.list")}
        pool = by_type["Storage pool unavailable"]
        assert (pool["entity_type"], pool["entity_name"], pool["project"]) == (
            "storage-pool", "flaky", "")
        assert "cannot be mounted" in pool["last_message"] and pool["status"] == "new"
        boot = by_type["Instance autostart failure"]
        assert (boot["entity_name"], boot["project"]) == ("boot", "default")
        assert "fake start failed" in boot["last_message"]
        await c.call("warning.ack", uuid=boot["uuid"])
        assert (await c.call("warning.get", uuid=boot["uuid"]))["status"] == "acknowledged"
        assert [w["type"] for w in await c.call("warning.list", status="new")] == [
            "Storage pool unavailable"]
        world.unmountable.clear()
        d.app.availability.hint()
        while (await c.call("warning.get", uuid=pool["uuid"]))["status"] != "resolved":
            await d.app.warnings.settle()
        await wait_status(c, "boot", "Stopped")
    world.unmountable.add("flaky")  # down again at the next start: the same row, counted
    async with daemon(directory) as d:
        c = await d.client()
        await d.app.warnings.settle()
        again = await c.call("warning.get", uuid=pool["uuid"])
        assert again["status"] == "new" and again["count"] >= 2
        assert (await c.call("warning.get", uuid=boot["uuid"]))["status"] == "acknowledged"
        await c.call("warning.delete", uuid=boot["uuid"])
        with pytest.raises(RpcError, match="not found") as exc:
            await c.call("warning.get", uuid=boot["uuid"])
        assert exc.value.code == -32001
        with pytest.raises(RpcError, match="Unknown warning status 'bogus'"):
            await c.call("warning.list", status="bogus")
        await c.call("project.create", name="p1")
        await d.app.warnings.raise_("Test", "of p1", project="p1", entity_type="instance",
                                    entity_name="x")
        assert "Test" not in {w["type"] for w in await c.call("warning.list")}
        assert "Test" in {w["type"] for w in await c.call("warning.list", project="p1")}
        assert "Test" in {w["type"] for w in await c.call("warning.list", all_projects=True)}
