"""Warnings: persistent, counted notices of what went wrong without stopping the daemon
(a pool or network unavailable, an autostart or a hook that failed, a plugin that did
not load), as Incus keeps them.

Code that cannot await (the event bus, the availability mechanism) raises a warning
with :meth:`Warnings.notice`, which only enqueues; the writer task stores it. Each
raise of the same (project, type, entity) counts one more on its row; a resolved one
raised again is new again; an acknowledged one stays acknowledged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog
import trio

from lxctl.errors import InvalidArgument
from lxctl.kernel.events import SERVER_WIDE, Event, EventBus, LoggingEvent, source_path
from lxctl.state.records import WARNING_STATUSES, WarningRecord
from lxctl.state.store import StateStore

log = structlog.get_logger("lxctl.warnings")

QUEUE = 1024

# the types of warning the core raises (Incus names them in words, too)
STORAGE_POOL_UNAVAILABLE = "Storage pool unavailable"
NETWORK_UNAVAILABLE = "Network unavailable"
AUTOSTART_FAILURE = "Instance autostart failure"
HOOK_FAILURE = "Hook failure"
HOOK_DROPPED = "Hook run dropped"
PLUGIN_FAILURE = "Plugin load failure"
_BY_KIND = {"storage-pool": STORAGE_POOL_UNAVAILABLE, "network": NETWORK_UNAVAILABLE}


def unavailable_type(kind: str) -> str:
    """The warning type of an unavailable resource of ``kind`` (availability keys)."""
    return _BY_KIND.get(kind, f"{kind.replace('-', ' ').capitalize()} unavailable")


@dataclass(frozen=True)
class Notice:
    type: str
    message: str
    project: str = SERVER_WIDE
    entity_type: str = ""
    entity_name: str = ""
    severity: str = "moderate"
    resolved: bool = False


class Warnings:
    def __init__(self, store: StateStore, bus: EventBus) -> None:
        self.store = store
        self.bus = bus
        self._send, self._receive = trio.open_memory_channel[Notice](QUEUE)
        self.lost = 0  # notices dropped because the writer fell behind
        self._pending = 0  # notices enqueued, not yet stored

    # ------------------------------------------------------------------ raising
    def notice(self, type: str, message: str, *, project: str = SERVER_WIDE,
               entity_type: str = "", entity_name: str = "", severity: str = "moderate",
               resolved: bool = False, announce: bool = True) -> None:
        """Raise (or, ``resolved``, resolve) a warning without blocking. ``announce``:
        log it and publish it as a ``logging`` event (whose ``warning`` context the
        consumer stores); otherwise only store it (the caller announced it)."""
        if announce and not resolved:
            log.warning(message, warning=type, entity=f"{entity_type} {entity_name}".strip())
            self.bus.log("warning", message, warning=type, project=project,
                         entity_type=entity_type, entity_name=entity_name, severity=severity)
            return  # stored by consume(), as any logging event with a warning type is
        self._enqueue(Notice(type, message, project, entity_type, entity_name, severity,
                             resolved))

    def consume(self, event: Event) -> None:
        """A bus consumer: a ``logging`` event whose context names a ``warning`` type
        raises that warning (``bus.log("warning", msg, warning=TYPE, project=...,
        entity_type=..., entity_name=...)`` from any module)."""
        if not isinstance(event, LoggingEvent):
            return
        ctx = event.metadata.get("context") or {}
        if "warning" not in ctx:
            return
        self._enqueue(Notice(ctx["warning"], str(event.metadata.get("message", "")),
                             ctx.get("project", SERVER_WIDE), ctx.get("entity_type", ""),
                             ctx.get("entity_name", ""), ctx.get("severity", "moderate")))

    def availability_sink(self, kind: str, name: str, message: str, resolved: bool) -> None:
        """Where kernel.availability keeps its warnings (it announces them itself)."""
        project = SERVER_WIDE
        if kind == "network" and "/" in name:
            project, name = name.split("/", 1)
        self.notice(unavailable_type(kind), message, project=project, entity_type=kind,
                    entity_name=name, resolved=resolved, announce=False)

    def _enqueue(self, item: Notice) -> None:
        try:
            self._send.send_nowait(item)
            self._pending += 1
        except trio.WouldBlock:
            self.lost += 1

    async def raise_(self, type: str, message: str, *, project: str = SERVER_WIDE,
                     entity_type: str = "", entity_name: str = "",
                     severity: str = "moderate") -> WarningRecord:
        """Raise a warning now and return its row."""
        rec = WarningRecord(uuid.uuid4().hex, type, message, project, entity_type,
                            entity_name, severity=severity)
        return await self.store.write(lambda t: t.warning_raise(rec))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """The writer: stores the notices in order."""
        task_status.started()
        async for item in self._receive:
            try:
                await self._store(item)
            finally:
                self._pending -= 1

    async def _store(self, item: Notice) -> None:
        if item.resolved:
            await self.store.write(lambda t: t.warning_resolve(
                item.project, item.type, item.entity_type, item.entity_name))
            return
        rec = WarningRecord(uuid.uuid4().hex, item.type, item.message, item.project,
                            item.entity_type, item.entity_name, severity=item.severity)
        await self.store.write(lambda t: t.warning_raise(rec))

    async def settle(self) -> None:
        """Wait until every notice raised so far is stored (tests, shutdown)."""
        while self._pending:
            await trio.sleep(0.005)

    # ------------------------------------------------------------------ the API
    async def list(self, project: str | None = None, status: str | None = None,
                   type: str | None = None) -> list[WarningRecord]:
        """``project``: None for every project; ``""`` lists those of no project."""
        if status is not None and status not in WARNING_STATUSES:
            raise InvalidArgument(f"Unknown warning status {status!r} "
                                  f"(known: {', '.join(WARNING_STATUSES)})", status=status)
        await self.settle()
        recs = await self.store.read(lambda t: t.warning_list(project))
        return [r for r in recs if (status is None or r.status == status)
                and (type is None or r.type == type)]

    async def get(self, uuid: str) -> WarningRecord:
        await self.settle()
        return await self.store.read(lambda t: t.warning_get(uuid))

    async def set_status(self, uuid: str, status: str) -> WarningRecord:
        if status not in WARNING_STATUSES:
            raise InvalidArgument(f"Unknown warning status {status!r} "
                                  f"(known: {', '.join(WARNING_STATUSES)})", status=status)
        rec = await self.store.write(lambda t: t.warning_set_status(uuid, status))
        action = "warning-acknowledged" if status == "acknowledged" else "warning-reset"
        self.bus.emit(action, source_path("warnings", uuid), project=rec.project)
        return rec

    async def delete(self, uuid: str) -> None:
        rec = await self.get(uuid)
        await self.store.write(lambda t: t.warning_delete(uuid))
        self.bus.emit("warning-deleted", source_path("warnings", uuid), project=rec.project)

