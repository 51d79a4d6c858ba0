"""The event bus: ids, the backlog and resuming from an id, filters, slow subscribers
dropped with a reason, the lifecycle catalogue and the requestor."""

from __future__ import annotations

import pytest
import trio

from lxctl.errors import InvalidArgument
from lxctl.kernel.events import (
    LIFECYCLE_ACTIONS,
    SERVER_WIDE,
    Event,
    EventBus,
    EventFilter,
    OperationEvent,
    Subscription,
    lifecycle,
    logging_event,
    set_requestor,
    source_path,
)


def _drain(sub: Subscription) -> list[Event]:
    out = []
    while True:
        try:
            out.append(sub.receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return out


def test_ids_grow_and_resume_gets_every_missed_event_once() -> None:
    bus = EventBus(backlog=10)
    first = bus.subscribe()
    for i in range(4):
        bus.publish(lifecycle("instance-started", f"/1.0/instances/c{i}"))
    seen = _drain(first)
    assert [e.id for e in seen] == [1, 2, 3, 4]
    bus.unsubscribe(first)  # it goes away after event 2 ... say it saw up to 2
    for i in range(3):
        bus.publish(lifecycle("instance-stopped", f"/1.0/instances/c{i}"))
    again = bus.subscribe(since=2)
    bus.publish(lifecycle("instance-deleted", "/1.0/instances/c0"))
    assert [e.id for e in _drain(again)] == [3, 4, 5, 6, 7, 8]  # none twice, in order


def test_an_id_older_than_the_backlog_is_refused_clearly() -> None:
    bus = EventBus(backlog=3)
    for _ in range(5):
        bus.publish(lifecycle("instance-started", "/1.0/instances/c1"))
    bus.subscribe(since=2)  # 3, 4, 5 are kept: resuming after 2 loses nothing
    with pytest.raises(InvalidArgument, match=r"older than the backlog .* oldest is 3"):
        bus.subscribe(since=1)
    with pytest.raises(InvalidArgument, match="not published by this daemon"):
        bus.subscribe(since=6)


def test_filters_types_projects_instance_and_loglevel() -> None:
    bus = EventBus()
    p1 = bus.subscribe(filter=EventFilter(projects=frozenset({"p1"})))
    c1 = bus.subscribe(filter=EventFilter(instance="c1"))
    warn = bus.subscribe(filter=EventFilter(frozenset({"logging"}), loglevel="warning"))
    bus.publish(lifecycle("instance-started", "/1.0/instances/c1?project=p1", project="p1"))
    bus.publish(lifecycle("instance-started", "/1.0/instances/c2"))
    bus.publish(lifecycle("instance-snapshot-created", "/1.0/instances/c1/snapshots/s"))
    bus.publish(OperationEvent({"resources": {"instances": ["/1.0/instances/c1"]}}))
    bus.publish(logging_event("info", "chatter"))
    bus.publish(logging_event("error", "hook failed"))
    assert [e.id for e in _drain(p1)] == [1, 5, 6]  # logging is of no project: it passes
    assert [e.id for e in _drain(c1)] == [1, 3, 4]
    assert [e.metadata["message"] for e in _drain(warn)] == ["hook failed"]
    assert logging_event("info", "x").project == SERVER_WIDE
    with pytest.raises(InvalidArgument, match="Unknown event type 'nope'"):
        EventFilter(frozenset({"nope"}))
    with pytest.raises(InvalidArgument, match="Unknown log level 'loud'"):
        EventFilter(loglevel="loud")


def test_a_slow_subscriber_is_dropped_with_a_reason_the_others_keep_order() -> None:
    bus = EventBus()
    fast = bus.subscribe(queue=100)
    slow = bus.subscribe(queue=3)
    for _ in range(10):
        bus.publish(lifecycle("instance-started", "/1.0/instances/c1"))
    assert slow.dropped and slow.dropped_event.is_set()
    assert "more than 3 events behind (at event 4)" in slow.reason
    assert [e.id for e in _drain(fast)] == list(range(1, 11))
    assert bus.subscriber_count == 1


async def test_emit_checks_the_action_and_carries_the_requestor() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    with pytest.raises(ValueError, match="unknown lifecycle action"):
        bus.emit("instance-exploded", "/1.0/instances/c1")

    async def call() -> None:  # a call's context: its requestor stays in it
        set_requestor("root", "unix")
        bus.emit("storage-volume-created",
                 source_path("storage-pools", "p", "volumes", "custom", "v", project="p1"),
                 project="p1", type="custom")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
    bus.emit("certificate-created", source_path("certificates", "ab"), project=SERVER_WIDE)
    first, second = _drain(sub)
    api = first.to_api()
    assert api["metadata"] == {
        "action": "storage-volume-created", "context": {"type": "custom"},
        "source": "/1.0/storage-pools/p/volumes/custom/v?project=p1",
        "requestor": {"username": "root", "protocol": "unix", "address": ""}}
    assert (api["project"], api["location"], api["id"]) == ("p1", "none", 1)
    assert api["timestamp"].endswith("Z") or "T" in api["timestamp"]
    assert "requestor" not in second.metadata  # not emitted from a call
    for noun in ("instance", "instance-snapshot", "image", "profile", "project",
                 "storage-pool", "storage-volume", "network", "certificate"):
        assert f"{noun}-created" in LIFECYCLE_ACTIONS
    assert "cluster-member-added" in LIFECYCLE_ACTIONS
