"""Operations over RPC, in process: listed per project or across projects, shown,
waited for, cancelled (with an operation-cancelled event), kept after they end."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from inproc import RpcError, daemon

from lxctl.kernel.operations import Operation


async def test_list_per_project_wait_cancel(tmp_path: Path) -> None:
    async with daemon(tmp_path / "d") as d:
        c = await d.client()
        await c.call("project.create", name="p1")
        watcher = await d.client()
        await watcher.call("events.subscribe", types=["lifecycle"], project="p1")

        async def forever(op: Operation) -> None:
            await trio.sleep_forever()

        op = await d.app.ops.start("Waiting", forever, may_cancel=True, project="p1")
        assert [o["id"] for o in await c.call("operation.list")] == []
        assert [o["id"] for o in await c.call("operation.list", project="p1")] == [op.id]
        listed = await c.call("operation.list", all_projects=True)
        assert [(o["id"], o["project"]) for o in listed] == [(op.id, "p1")]
        shown = await c.call("operation.get", id=op.id)
        assert shown["status"] == "Running" and shown["may_cancel"] is True
        assert (await c.call("operation.wait", id=op.id, timeout=0.01))["status"] == "Running"
        await c.call("operation.cancel", id=op.id)
        done = await c.call("operation.wait", id=op.id, timeout=5)
        assert (done["status"], done["status_code"]) == ("Cancelled", 401)
        assert [o["status"] for o in await c.call("operation.list", project="p1")] == [
            "Cancelled"]  # kept a few seconds after it ended
        with pytest.raises(RpcError, match="not running"):
            await c.call("operation.cancel", id=op.id)
        with pytest.raises(RpcError, match="not found"):
            await c.call("operation.get", id="nope")
        msg = await watcher.message()
        while msg.get("method") != "event":
            msg = await watcher.message()
        meta = msg["params"]["metadata"]
        assert (meta["action"], meta["source"]) == (
            "operation-cancelled", f"/1.0/operations/{op.id}")
