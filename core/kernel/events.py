"""The event bus and its typed events (lifecycle, operation, logging).

``publish()`` is synchronous and never blocks: it numbers the event (ids grow by one
per daemon run), keeps it in a bounded backlog and hands it to each matching
subscriber's bounded queue. A subscriber that falls behind by more than its queue is
disconnected with a reason (its channel closes), as Incus does with a slow listener;
delivery is ordered per subscriber. A subscriber may start from an event id: it first
gets every event of the backlog after that id that matches its filter, none twice; an
id older than the backlog is refused, naming the oldest one kept.

Emitting a lifecycle event (the helpers every object module calls)::

    bus.emit("storage-volume-created",
             source_path("storage-pools", pool, "volumes", "custom", name, project=project),
             project=project, type="custom")

``emit`` refuses an action outside :data:`LIFECYCLE_ACTIONS` (Incus's names) and adds
the requestor of the RPC call that caused it (:func:`set_requestor`, set per call by
the server). Server-wide objects (storage pools, certificates, cluster members) and
logging events carry the project ``""`` (:data:`SERVER_WIDE`), which every project
filter lets through.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar
from urllib.parse import quote

import trio

from lxctl.errors import InvalidArgument
from lxctl.rpc.framing import notification
from lxctl.state.records import DEFAULT_PROJECT, STANDALONE, iso, now

SUBSCRIBER_QUEUE = 1024
BACKLOG = 4096  # events kept for subscribers that resume from an id
SERVER_WIDE = ""  # the project of events that belong to no project
LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

# Incus's lifecycle actions, by object (``<object>-<verb>``)
_VERBS = {
    "instance": ("created", "started", "stopped", "shutdown", "restarted", "paused",
                 "resumed", "deleted", "updated", "renamed", "restored", "exec", "console",
                 "console-retrieved", "console-reset", "file-pushed", "file-retrieved",
                 "file-deleted", "log-retrieved", "log-deleted", "metadata-updated",
                 "metadata-retrieved", "backup-created", "backup-deleted", "rebuilt"),
    "instance-snapshot": ("created", "deleted", "renamed", "updated"),
    "image": ("created", "deleted", "updated", "refreshed", "retrieved", "secret-created"),
    "image-alias": ("created", "deleted", "updated", "renamed"),
    "profile": ("created", "deleted", "updated", "renamed"),
    "project": ("created", "deleted", "updated", "renamed"),
    "storage-pool": ("created", "deleted", "updated"),
    "storage-volume": ("created", "deleted", "updated", "renamed", "restored", "migrated"),
    "storage-volume-snapshot": ("created", "deleted", "updated", "renamed"),
    "storage-volume-backup": ("created", "deleted", "renamed", "retrieved"),
    "network": ("created", "deleted", "updated", "renamed"),
    "network-acl": ("created", "deleted", "updated", "renamed"),
    "network-zone": ("created", "deleted", "updated"),
    "network-forward": ("created", "deleted", "updated"),
    "network-peer": ("created", "deleted", "updated"),
    "certificate": ("created", "deleted", "updated"),
    "cluster-member": ("added", "removed", "renamed", "updated"),
    "operation": ("cancelled",),
    "config": ("updated",),
    "warning": ("acknowledged", "reset", "deleted"),
}
LIFECYCLE_ACTIONS: frozenset[str] = frozenset(
    f"{obj}-{verb}" for obj, verbs in _VERBS.items() for verb in verbs)

_requestor: ContextVar[dict[str, str] | None] = ContextVar("lxctl_requestor", default=None)


def set_requestor(username: str, protocol: str, address: str = "") -> None:
    """Who caused what the current task (and the tasks it starts) does: events
    emitted from here on carry it as ``metadata.requestor``."""
    _requestor.set({"username": username, "protocol": protocol, "address": address})


def current_requestor() -> dict[str, str] | None:
    return _requestor.get()


def source_path(collection: str, *names: str, project: str = DEFAULT_PROJECT) -> str:
    """An object's API path, as Incus names it in ``metadata.source``:
    ``source_path("instances", "c1", "snapshots", "s1", project="p1")`` is
    ``/1.0/instances/c1/snapshots/s1?project=p1`` (no query for ``default``)."""
    path = "/".join(("/1.0", collection, *(quote(n, safe="") for n in names)))
    return path if project in (DEFAULT_PROJECT, SERVER_WIDE) else f"{path}?project={project}"


@dataclass(frozen=True)
class Event:
    """An event in Incus's envelope; subclasses fix ``type`` and shape ``metadata``.

    ``id`` is given by the bus when it publishes (0 before)."""

    type: ClassVar[str] = ""
    metadata: dict[str, Any]
    timestamp: float = field(default_factory=now)
    project: str = DEFAULT_PROJECT
    location: str = STANDALONE
    id: int = 0

    def to_api(self) -> dict[str, Any]:
        return {"type": self.type, "timestamp": iso(self.timestamp), "project": self.project,
                "location": self.location, "metadata": self.metadata, "id": self.id}

    @cached_property
    def notification(self) -> bytes:
        """The framed ``event`` notification, encoded once for all its subscribers."""
        return notification("event", self.to_api())


@dataclass(frozen=True)
class LifecycleEvent(Event):
    """An object changed: ``metadata`` = {action, source, context, requestor}."""

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
              location: str = STANDALONE, **context: Any) -> LifecycleEvent:
    """A lifecycle event: ``lifecycle("instance-started", "/1.0/instances/c1")``."""
    metadata: dict[str, Any] = {"action": action, "source": source, "context": context}
    requestor = _requestor.get()
    if requestor is not None:
        metadata["requestor"] = requestor
    return LifecycleEvent(metadata, project=project, location=location)


def logging_event(level: str, message: str, **context: Any) -> LoggingEvent:
    return LoggingEvent({"message": message, "level": level,
                         "context": {k: str(v) for k, v in context.items()}},
                        project=SERVER_WIDE)


# ---------------------------------------------------------------------------- filters
def _instance_of(event: Event) -> set[str]:
    """The instances an event is about (``/1.0/instances/NAME...`` paths)."""
    if isinstance(event, LifecycleEvent):
        paths = [event.source]
    elif isinstance(event, OperationEvent):
        paths = list(event.metadata.get("resources", {}).get("instances", []))
    else:
        return set()
    out = set()
    for path in paths:
        if path.startswith("/1.0/instances/"):
            out.add(path[len("/1.0/instances/"):].split("?")[0].split("/")[0])
    return out


@dataclass(frozen=True)
class EventFilter:
    """What a subscriber wants: types (empty: all), projects (None: every project),
    one instance (its lifecycle events and operations), a minimum log level."""

    types: frozenset[str] = frozenset()
    projects: frozenset[str] | None = None
    instance: str | None = None
    loglevel: str | None = None

    def __post_init__(self) -> None:
        for t in self.types:
            if t not in EVENT_TYPES:
                raise InvalidArgument(f"Unknown event type {t!r} "
                                      f"(known: {', '.join(EVENT_TYPES)})", type=t)
        if self.loglevel is not None and self.loglevel not in LOG_LEVELS:
            raise InvalidArgument(f"Unknown log level {self.loglevel!r} "
                                  f"(known: {', '.join(LOG_LEVELS)})", loglevel=self.loglevel)

    def matches(self, event: Event) -> bool:
        if self.types and event.type not in self.types:
            return False
        if (self.projects is not None and event.project != SERVER_WIDE
                and event.project not in self.projects):
            return False
        if self.instance is not None and self.instance not in _instance_of(event):
            return False
        if self.loglevel is not None and isinstance(event, LoggingEvent):
            level = LOG_LEVELS.get(str(event.metadata.get("level")), 20)
            return level >= LOG_LEVELS[self.loglevel]
        return True


@dataclass(eq=False)
class Subscription:
    filter: EventFilter
    send: trio.MemorySendChannel[Event]
    receive: trio.MemoryReceiveChannel[Event]
    queue: int
    dropped: bool = False
    reason: str = ""  # why the bus disconnected it
    dropped_event: trio.Event = field(default_factory=trio.Event)

    @property
    def types(self) -> frozenset[str]:
        return self.filter.types


class EventBus:
    def __init__(self, backlog: int = BACKLOG) -> None:
        self._subs: list[Subscription] = []
        self._consumers: list[Callable[[Event], None]] = []
        self._backlog: deque[Event] = deque(maxlen=max(backlog, 1))
        self._last_id = 0

    @property
    def last_id(self) -> int:
        return self._last_id

    def subscribe(self, types: Iterable[str] = (), queue: int = SUBSCRIBER_QUEUE, *,
                  filter: EventFilter | None = None, since: int | None = None
                  ) -> Subscription:
        """A subscription to the events that match ``filter`` (or ``types``); with
        ``since``, first the backlog's matching events after that id."""
        filt = filter if filter is not None else EventFilter(frozenset(types))
        replay = self._replay(filt, since) if since is not None else []
        size = (queue + len(replay)) if queue > 0 else math.inf
        send, receive = trio.open_memory_channel[Event](size)
        for event in replay:
            send.send_nowait(event)
        sub = Subscription(filt, send, receive, queue)
        self._subs.append(sub)
        return sub

    def _replay(self, filt: EventFilter, since: int) -> list[Event]:
        if since > self._last_id or since < 0:
            raise InvalidArgument(
                f"Event id {since} was not published by this daemon (the last is "
                f"{self._last_id}; did it restart?): subscribe without an id", since=since,
                last=self._last_id)
        oldest = self._backlog[0].id if self._backlog else self._last_id + 1
        if since < oldest - 1:
            raise InvalidArgument(
                f"Event id {since} is older than the backlog (it keeps the last "
                f"{self._backlog.maxlen} events; the oldest is {oldest}): the events after "
                f"it are lost, subscribe without an id", since=since, oldest=oldest)
        return [e for e in self._backlog if e.id > since and filt.matches(e)]

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        sub.send.close()

    def add_consumer(self, consumer: Callable[[Event], None]) -> None:
        """A synchronous in-process consumer; it must only enqueue (never block)."""
        self._consumers.append(consumer)

    def publish(self, event: Event) -> Event:
        """Number ``event``, keep it in the backlog, hand it to every matching
        subscriber and consumer; returns it numbered. Never blocks."""
        self._last_id += 1
        event = replace(event, id=self._last_id)
        self._backlog.append(event)
        for sub in list(self._subs):
            if not sub.filter.matches(event):
                continue
            try:
                sub.send.send_nowait(event)
            except trio.WouldBlock:
                # too slow: disconnect rather than block the core
                sub.dropped = True
                sub.reason = (f"the subscriber fell more than {sub.queue} events behind "
                              f"(at event {event.id})")
                sub.dropped_event.set()
                self.unsubscribe(sub)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.unsubscribe(sub)
        for consumer in self._consumers:
            consumer(event)
        return event

    def emit(self, action: str, source: str, *, project: str = DEFAULT_PROJECT,
             location: str = STANDALONE, **context: Any) -> Event:
        """Publish a lifecycle event; ``action`` must be one of Incus's names."""
        if action not in LIFECYCLE_ACTIONS:
            raise ValueError(f"unknown lifecycle action {action!r}")
        return self.publish(lifecycle(action, source, project=project, location=location,
                                      **context))

    def log(self, level: str, message: str, **context: Any) -> Event:
        """Publish a ``logging`` event (``level``: debug, info, warning, error)."""
        return self.publish(logging_event(level, message, **context))

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
