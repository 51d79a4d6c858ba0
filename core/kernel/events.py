"""The event bus and its typed events (lifecycle, operation, logging).

``publish()`` is synchronous and never blocks: each subscriber has a bounded queue, and
one that falls behind by more than its queue is disconnected (its channel closes), as
Incus does with a slow listener. Delivery is ordered per subscriber; nothing is replayed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import trio

from lxctl.state.records import DEFAULT_PROJECT, STANDALONE, iso, now

SUBSCRIBER_QUEUE = 1024


@dataclass(frozen=True)
class Event:
    """An event in Incus's envelope; subclasses fix ``type`` and shape ``metadata``."""

    type: ClassVar[str] = ""
    metadata: dict[str, Any]
    timestamp: float = field(default_factory=now)
    project: str = DEFAULT_PROJECT
    location: str = STANDALONE

    def to_api(self) -> dict[str, Any]:
        return {"type": self.type, "timestamp": iso(self.timestamp), "project": self.project,
                "location": self.location, "metadata": self.metadata}


@dataclass(frozen=True)
class LifecycleEvent(Event):
    """An object changed: ``metadata`` = {action, source, context}."""

    type: ClassVar[str] = "lifecycle"

    @property
    def action(self) -> str:
        return str(self.metadata["action"])

    @property
    def source(self) -> str:
        return str(self.metadata["source"])


@dataclass(frozen=True)
class OperationEvent(Event):
    """An operation started, progressed or ended: ``metadata`` is the operation."""

    type: ClassVar[str] = "operation"


@dataclass(frozen=True)
class LoggingEvent(Event):
    """A daemon log record worth showing subscribers: {message, level, context}."""

    type: ClassVar[str] = "logging"


EVENT_TYPES = tuple(cls.type for cls in (LifecycleEvent, OperationEvent, LoggingEvent))


def lifecycle(action: str, source: str, *, project: str = DEFAULT_PROJECT,
              **context: Any) -> LifecycleEvent:
    """A lifecycle event: ``lifecycle("instance-started", "/1.0/instances/c1")``."""
    return LifecycleEvent({"action": action, "source": source, "context": context},
                          project=project)


def logging_event(level: str, message: str, **context: Any) -> LoggingEvent:
    return LoggingEvent({"message": message, "level": level, "context": context})


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
