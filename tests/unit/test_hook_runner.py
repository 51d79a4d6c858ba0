"""The event hook runner: which scripts an event runs, the concurrency limit (a run
over it dropped with a warning), failures counted and announced; every run accounted
for."""

from __future__ import annotations

from pathlib import Path

import trio

from lxctl.kernel.events import EventBus, LoggingEvent, lifecycle
from lxctl.kernel.hooks import HOOK_DROPPED, HOOK_FAILURE, HookRunner, event_names


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_an_event_runs_its_action_then_its_type(tmp_path: Path) -> None:
    event = lifecycle("instance-started", "/1.0/instances/c1")
    assert event_names(event) == ["instance-started", "lifecycle"]
    runner = HookRunner(EventBus(), tmp_path, tmp_path)
    _script(tmp_path / "instance-started" / "b", "")
    _script(tmp_path / "instance-started" / "a", "")
    _script(tmp_path / "instance-started" / "c~", "")
    (tmp_path / "instance-started" / "not-executable").write_text("")
    assert [p.name for p in runner.scripts("instance-started")] == ["a", "b"]
    assert runner.scripts("instance-stopped") == []


async def test_over_the_limit_runs_are_dropped_with_a_warning_all_accounted(
        tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    _script(tmp_path / "hooks" / "instance-started" / "wait",
            f"while ! test -e {gate}; do sleep 0.01; done\n")
    _script(tmp_path / "hooks" / "instance-stopped" / "fail", "echo broken >&2; exit 2\n")
    bus = EventBus()
    warnings = bus.subscribe(["logging"])
    runner = HookRunner(bus, tmp_path / "hooks", tmp_path, timeout=20, concurrency=1)
    bus.add_consumer(runner.consume)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        for _ in range(3):
            bus.publish(lifecycle("instance-started", "/1.0/instances/c1"))
        while runner.stats["dropped"] < 2:
            await trio.sleep(0.01)
        gate.touch()
        while runner.running:
            await trio.sleep(0.01)
        bus.publish(lifecycle("instance-stopped", "/1.0/instances/c1"))
        while runner.stats["failed"] < 1:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert runner.describe()["runs"] == {"done": 1, "failed": 1, "timed_out": 0,
                                         "dropped": 2}
    got = []
    while True:
        try:
            event = warnings.receive.receive_nowait()
        except trio.WouldBlock:
            break
        assert isinstance(event, LoggingEvent)
        got.append((event.metadata["context"]["warning"], event.metadata["message"]))
    assert [w for w, _ in got] == [HOOK_DROPPED, HOOK_DROPPED, HOOK_FAILURE]
    assert "hooks.concurrency" in got[0][1]
    assert got[2][1].endswith("exit 2: broken")
