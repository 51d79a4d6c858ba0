"""Pure units of the core: names, lifecycle, config, id maps, the store, the event bus."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from lxctl.config import check_instance_config, load_daemon_config, parse_size
from lxctl.errors import AlreadyExists, Busy, InvalidArgument, InvalidState, NotFound
from lxctl.kernel.events import EventBus, lifecycle
from lxctl.kernel.lifecycle import Lifecycle, check_transition
from lxctl.objects.idmap import IdMap, from_subid
from lxctl.objects.names import check_instance_name, random_instance_name
from lxctl.state.records import InstanceRecord, OperationRecord
from lxctl.state.store import SCHEMA_VERSION, SQLiteStore


@pytest.mark.parametrize("name", ["-abc", "abc-", "1234", "foo.bar", "a_b", "a" * 64, "",
                                  "a/b", "a b"])
def test_invalid_instance_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_instance_name(name)


@pytest.mark.parametrize("name", ["c1", "0abc", "a", "a" * 63, "web-01"])
def test_valid_instance_names(name: str) -> None:
    assert check_instance_name(name) == name


def test_random_names_are_valid() -> None:
    for _ in range(50):
        check_instance_name(random_instance_name())


def test_transitions_follow_incus_messages() -> None:
    assert check_transition("start", "c1", "Stopped").target == "Running"
    with pytest.raises(InvalidState, match="already running"):
        check_transition("start", "c1", "Running")
    with pytest.raises(InvalidState, match="already stopped"):
        check_transition("stop", "c1", "Stopped")
    with pytest.raises(InvalidState, match="already frozen"):
        check_transition("freeze", "c1", "Frozen")
    with pytest.raises(InvalidState, match="Instance is running"):
        check_transition("delete", "c1", "Running")


async def test_lock_is_exclusive_per_instance() -> None:
    lc = Lifecycle()
    async with lc.locked("c1", "start"):
        with pytest.raises(Busy, match='busy running a "start"'):
            lc.acquire("c1", "stop")
        lc.acquire("c2", "stop")  # other instances are independent
        lc.release("c2")
    lc.acquire("c1", "stop")


def test_instance_config_validation() -> None:
    check_instance_config({"security.privileged": "true", "user.x": "y",
                           "limits.memory": "256MiB"})
    with pytest.raises(InvalidArgument, match=r"Unknown configuration key: bogus\.key"):
        check_instance_config({"bogus.key": "1"})
    with pytest.raises(InvalidArgument, match=r"security\.privileged"):
        check_instance_config({"security.privileged": "maybe"})
    with pytest.raises(InvalidArgument, match="managed by the daemon"):
        check_instance_config({"volatile.base_image": "x"})
    assert parse_size("256MiB") == 256 * 2**20
    assert parse_size("1GB") == 10**9


def test_daemon_config_rejects_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "lxctld.toml").write_text(
        '[plugins]\ndisabled = ["x"]\n[rpc]\nmax_message_size = 10\n')
    cfg = load_daemon_config(tmp_path)
    assert cfg.disabled_plugins == ["x"] and cfg.max_message_size == 10
    (tmp_path / "lxctld.toml").write_text("[bogus]\nkey = 1\n")
    with pytest.raises(InvalidArgument, match=r"unknown key 'bogus\.key'"):
        load_daemon_config(tmp_path)


def test_idmap_uses_one_range(tmp_path: Path) -> None:
    (tmp_path / "subuid").write_text("alice:100000:65536\nroot:1000000:1000000000\n"
                                     "root:2000000000:65536\n")
    (tmp_path / "subgid").write_text("root:1000000:1000000000\n")
    m = from_subid(etc=tmp_path)
    assert m == IdMap(1000000, 1000000, 65536)
    assert m.lxc_config() == ["lxc.idmap = u 0 1000000 65536", "lxc.idmap = g 0 1000000 65536"]
    (tmp_path / "subgid").write_text("root:5:10\n")
    with pytest.raises(InvalidState, match="subordinate id range"):
        from_subid(etc=tmp_path)


async def test_store_roundtrip_and_migrations(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db")
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rec = InstanceRecord("c1", config={"user.a": "b"})
    await store.instance_create(rec)
    with pytest.raises(AlreadyExists):
        await store.instance_create(rec)
    rec.power_state = "Running"
    await store.instance_update(rec)
    assert (await store.instance_get("c1")).power_state == "Running"
    await store.instance_delete("c1")
    with pytest.raises(NotFound):
        await store.instance_get("c1")
    await store.operation_put(OperationRecord("op1", "Starting c1"))
    failed = await store.operations_fail_running("daemon restarted")
    assert [op.id for op in failed] == ["op1"] and failed[0].status == "Failure"
    assert await store.operations_fail_running("again") == []
    await store.close()
    # a database from a newer daemon is refused, not touched
    store = SQLiteStore(tmp_path / "db")
    store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(InvalidState, match="newer"):
        store.migrate()


async def test_event_bus_never_blocks_and_drops_slow_subscribers() -> None:
    bus = EventBus()
    fast = bus.subscribe(["lifecycle"])
    slow = bus.subscribe([], queue=2)
    seen: list[str] = []
    bus.add_consumer(lambda e: seen.append(e.metadata["action"]))
    for i in range(5):
        bus.publish(lifecycle(f"a{i}", "/x"))
    assert seen == [f"a{i}" for i in range(5)]
    assert slow.dropped and bus.subscriber_count == 1
    got = [fast.receive.receive_nowait().metadata["action"] for _ in range(5)]
    assert got == seen
    with pytest.raises(trio.WouldBlock):
        fast.receive.receive_nowait()


async def test_operations_progress_cancel_wait(tmp_path: Path) -> None:
    from lxctl.kernel.operations import Operation, Operations

    store = SQLiteStore(tmp_path / "db")
    bus = EventBus()
    events = bus.subscribe(["operation"])
    async with trio.open_nursery() as nursery:
        ops = Operations(store, bus, nursery)
        started = trio.Event()

        async def forever(op: Operation) -> None:
            ops.progress(op, step="waiting")
            started.set()
            await trio.sleep_forever()

        async def quick(op: Operation) -> dict[str, int]:
            return {"answer": 42}

        long_op = await ops.start("Waiting forever", forever, may_cancel=True)
        fixed_op = await ops.start("Cannot be cancelled", forever)
        done_op = await ops.start("Quick", quick)
        await started.wait()
        assert (await ops.wait(done_op.id, 5)).to_api()["metadata"] == {"answer": 42}
        assert long_op.to_api()["metadata"] == {"step": "waiting"}
        assert (await ops.wait(long_op.id, 0.05)).status == "Running"  # timed out waiting
        with pytest.raises(InvalidState, match="cannot be cancelled"):
            ops.cancel(fixed_op.id)
        ops.cancel(long_op.id)
        waited = await ops.wait(long_op.id, 5)
        assert waited.status == "Cancelled" and waited.to_api()["status_code"] == 401
        with pytest.raises(InvalidState, match="not running"):
            ops.cancel(long_op.id)
        with pytest.raises(NotFound):
            ops.get("nope")
        statuses = []
        while True:
            try:
                ev = events.receive.receive_nowait()
            except trio.WouldBlock:
                break
            if ev.metadata["id"] == long_op.id:
                statuses.append(ev.metadata["status"])
        assert statuses[0] == "Running" and statuses[-1] == "Cancelled"
        nursery.cancel_scope.cancel()
    # the store saw them: one still "Running" would be failed by the next daemon start
    failed = await store.operations_fail_running("restart")
    assert [op.id for op in failed] == [fixed_op.id]


def test_every_hook_is_documented() -> None:
    """Each hookspec states its contract, and the README shows plugin authors each hook."""
    import inspect

    from lxctl import hookspecs

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    specs = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("lxctl_")]
    assert len(specs) >= 3
    for spec in specs:
        assert len(inspect.getdoc(spec) or "") > 80, spec.__name__
        assert spec.__name__ in readme, spec.__name__
