"""The event bus: lifecycle and operation events, fanned out to subscribers.

``publish()`` is synchronous and never blocks: each subscriber has a bounded queue, and
one that falls behind by more than its queue is disconnected (its channel closes), as
Incus does with a slow listener. Delivery is ordered per subscriber; nothing is replayed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from lxctl.state.records import iso, now

EVENT_TYPES = ("lifecycle", "operation", "logging")
SUBSCRIBER_QUEUE = 1024


@dataclass(frozen=True)
class Event:
    type: str  # lifecycle | operation | logging
    metadata: dict[str, Any]
    timestamp: float = field(default_factory=now)
    project: str = "default"
    location: str = "none"

    def to_api(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "timestamp": iso(self.timestamp),
            "project": self.project,
            "location": self.location,
            "metadata": self.metadata,
        }


def lifecycle(action: str, source: str, **context: Any) -> Event:
    """A lifecycle event: ``lifecycle("instance-started", "/1.0/instances/c1")``."""
    return Event("lifecycle", {"action": action, "source": source, "context": context})


@dataclass
class Subscription:
    types: frozenset[str]
    send: trio.MemorySendChannel[Event]
    receive: trio.MemoryReceiveChannel[Event]
    dropped: bool = False


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._consumers: list[Callable[[Event], None]] = []

    def subscribe(self, types: Iterable[str] = (), queue: int = SUBSCRIBER_QUEUE) -> Subscription:
        send, receive = trio.open_memory_channel[Event](queue if queue > 0 else math.inf)
        sub = Subscription(frozenset(types), send, receive)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        sub.send.close()

    def add_consumer(self, consumer: Callable[[Event], None]) -> None:
        """A synchronous in-process consumer; it must only enqueue (never block)."""
        self._consumers.append(consumer)

    def publish(self, event: Event) -> None:
        for sub in list(self._subs):
            if sub.types and event.type not in sub.types:
                continue
            try:
                sub.send.send_nowait(event)
            except trio.WouldBlock:
                sub.dropped = True  # too slow: disconnect rather than block the core
                self.unsubscribe(sub)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.unsubscribe(sub)
        for consumer in self._consumers:
            consumer(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
