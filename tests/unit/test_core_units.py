"""Pure units of the core: names, lifecycle, config, id maps, the store, the event bus."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from lxctl.config.daemon import load_daemon_config
from lxctl.config.instance import INSTANCE_KEYS
from lxctl.config.schema import ConfigKey, ConfigSchema, KeyType, Scope
from lxctl.config.units import parse_size
from lxctl.errors import Busy, InvalidArgument, InvalidState, NotFound, PluginError
from lxctl.kernel.events import EventBus, LifecycleEvent, lifecycle
from lxctl.kernel.lifecycle import check_transition
from lxctl.kernel.locks import LocalLocks, locked
from lxctl.objects.idmap import IdMap, from_subid, isolated_block
from lxctl.objects.names import check_instance_name, random_instance_name
from lxctl.state.sqlite import SQLiteStore


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
    locks = LocalLocks()
    async with locked(locks, ("default", "c1"), "start"):
        with pytest.raises(Busy, match='busy running a "start"'):
            await locks.acquire(("default", "c1"), "stop")
        assert locks.holder(("default", "c1")) == "start"
        await locks.acquire(("default", "c2"), "stop")  # other instances are independent
        await locks.acquire(("other", "c1"), "stop")  # and so are other projects
        await locks.release(("default", "c2"))
    await locks.acquire(("default", "c1"), "stop")
    assert locks.holder(("default", "c1")) == "stop"


def _schema() -> ConfigSchema:
    schema = ConfigSchema()
    schema.add_all(INSTANCE_KEYS)
    schema.add_all([ConfigKey("raw.lxc", Scope.INSTANCE)], owner="hypervisor:lxc")
    schema.add_all([ConfigKey("raw.qemu", Scope.INSTANCE)], owner="hypervisor:qemu")
    schema.add_all([ConfigKey("zfs.pool_name", Scope.POOL)], owner="storage:zfs")
    schema.add_all([ConfigKey("source", Scope.POOL)], owner="storage:dir")
    return schema


def test_instance_config_validation() -> None:
    schema = _schema()
    lxc = ["hypervisor:lxc"]
    schema.check(Scope.INSTANCE, {"security.privileged": "true", "user.x": "y",
                                  "limits.memory": "256MiB", "raw.lxc": "x"}, owners=lxc)
    with pytest.raises(InvalidArgument, match=r"Unknown configuration key: bogus\.key"):
        schema.check(Scope.INSTANCE, {"bogus.key": "1"}, owners=lxc)
    with pytest.raises(InvalidArgument, match=r"security\.privileged"):
        schema.check(Scope.INSTANCE, {"security.privileged": "maybe"}, owners=lxc)
    with pytest.raises(InvalidArgument, match="managed by the daemon"):
        schema.check(Scope.INSTANCE, {"volatile.base_image": "x"}, owners=lxc)
    with pytest.raises(InvalidArgument, match="must be a non-negative integer"):
        schema.check(Scope.INSTANCE, {"limits.processes": "-1"}, owners=lxc)
    with pytest.raises(InvalidArgument, match=r"Unknown configuration key: user\.$"):
        schema.check(Scope.INSTANCE, {"user.": "namespace alone"}, owners=lxc)
    assert parse_size("256MiB") == 256 * 2**20
    assert parse_size("1GB") == 10**9


def test_a_key_of_a_driver_the_object_does_not_use_is_refused() -> None:
    schema = _schema()
    with pytest.raises(InvalidArgument, match=r"'raw\.qemu' belongs to the qemu hypervisor "
                       r"driver, which a container instance does not use") as exc:
        schema.check(Scope.INSTANCE, {"raw.qemu": "-m 1G"}, owners=["hypervisor:lxc"],
                     what="a container instance")
    assert exc.value.data["key"] == "raw.qemu"
    with pytest.raises(InvalidArgument, match=r"'zfs\.pool_name' belongs to the zfs storage"):
        schema.check(Scope.POOL, {"zfs.pool_name": "tank"}, owners=["storage:dir"])
    schema.check(Scope.POOL, {"source": "/srv"}, owners=["storage:dir"])
    # profiles may be used by any instance: any declared key, whoever declared it
    schema.check(Scope.INSTANCE, {"raw.qemu": "x", "raw.lxc": "y"}, owners=None)
    # keys are scoped: a pool key is no instance key
    with pytest.raises(InvalidArgument, match="Unknown configuration key: source"):
        schema.check(Scope.INSTANCE, {"source": "/srv"}, owners=None)


def test_config_keys_declared_twice_name_both_owners() -> None:
    schema = _schema()
    with pytest.raises(PluginError, match="by hypervisor:lxc and myplugin"):
        schema.add(ConfigKey("raw.lxc", Scope.INSTANCE, owner="myplugin"))
    schema.add(ConfigKey("user.thing", Scope.INSTANCE, KeyType.BOOL, owner="myplugin"))
    with pytest.raises(InvalidArgument, match="must be true or false"):
        schema.check(Scope.INSTANCE, {"user.thing": "x"}, owners=None)


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
    # isolated maps: the first free block after the shared one, within the range
    assert isolated_block(m, set()) == IdMap(1065536, 1065536)
    assert isolated_block(m, {1065536, 1196608}) == IdMap(1131072, 1131072)
    assert m.at(1131072) == IdMap(1131072, 1131072)
    small = IdMap(10, 20, 65536, room=3 * 65536)
    assert small.at(10 + 2 * 65536) == IdMap(10 + 2 * 65536, 20 + 2 * 65536)
    with pytest.raises(InvalidState, match="room for 3 maps"):
        isolated_block(small, {10 + 65536, 10 + 2 * 65536})
    (tmp_path / "subgid").write_text("root:5:10\n")
    with pytest.raises(InvalidState, match="subordinate id range"):
        from_subid(etc=tmp_path)


async def test_event_bus_never_blocks_and_drops_slow_subscribers() -> None:
    bus = EventBus()
    fast = bus.subscribe(["lifecycle"])
    slow = bus.subscribe([], queue=2)
    seen: list[str] = []
    bus.add_consumer(lambda e: seen.append(e.metadata["action"]))
    assert isinstance(lifecycle("a", "/x"), LifecycleEvent)
    assert lifecycle("a", "/x").to_api()["type"] == "lifecycle"
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

    store = await SQLiteStore.open(tmp_path / "db")
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
    failed = await store.write(lambda t: t.operations_fail_running("restart"))
    assert [op.id for op in failed] == [fixed_op.id]


async def test_operations_end_cancelled_and_none_start_at_shutdown(tmp_path: Path) -> None:
    from lxctl.errors import Cancelled, ShuttingDown
    from lxctl.kernel.operations import Operation, Operations

    with trio.fail_after(10):
        store = await SQLiteStore.open(tmp_path / "db")
        async with trio.open_nursery() as nursery:
            ops = Operations(store, EventBus(), nursery)

            async def interrupted(op: Operation) -> None:
                raise Cancelled("the tool was interrupted")

            op = await ops.start("Interrupted", interrupted)
            done = await ops.wait(op.id, 5)
            assert (done.status, done.record.err) == ("Cancelled", "the tool was interrupted")
            ops.close()
            with pytest.raises(ShuttingDown, match="shutting down") as exc:
                await ops.start("Too late", interrupted)
            assert exc.value.code == -32012
            nursery.cancel_scope.cancel()
        await store.close()


def test_the_link_watcher_sees_new_links_and_addresses_among_other_messages() -> None:
    import struct

    from lxctl.objects.networks import RTM_NEWADDR, RTM_NEWLINK, _new_link_or_address

    def msg(kind: int, payload: bytes = b"\0" * 5) -> bytes:
        body = struct.pack("=IHHII", 16 + len(payload), kind, 0, 0, 0) + payload
        return body + b"\0" * (-len(body) % 4)  # aligned as the kernel sends them

    assert not _new_link_or_address(msg(17) + msg(21))  # DELLINK, DELADDR
    assert _new_link_or_address(msg(17) + msg(RTM_NEWLINK))
    assert _new_link_or_address(msg(RTM_NEWADDR, b""))
    assert not _new_link_or_address(b"\x03\0")  # too short to hold a header
