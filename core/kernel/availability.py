"""Degraded start, as one mechanism for every kind of dependency.

A resource (a storage pool, a network, a driver) is *brought up* by a coroutine. When
that fails, the resource is recorded as Unavailable with the reason, a warning is logged
and published, and the daemon goes on. Whatever needs it registers a *waiter*; a retry
loop, woken by a hint (``hint()``, e.g. from a netlink watcher) or by its timer
(backing off up to ``max_interval``), brings the resource up and then runs the waiters
whose resources are all available. Nothing here knows what a pool or a network is.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog
import trio

from lxctl.errors import LxctlError, Unavailable
from lxctl.kernel.events import EventBus, lifecycle, logging_event

log = structlog.get_logger("lxctl.availability")

Key = tuple[str, str]  # (kind, name): ("storage-pool", "fast"), ("network", "default/br0")
BringUp = Callable[[], Awaitable[None]]
Waiter = Callable[[], Awaitable[None]]
# (kind, name, message, resolved): where warnings go to be kept (objects/warnings.py)
WarningSink = Callable[[str, str, str, bool], None]


@dataclass
class Resource:
    kind: str
    name: str
    bring_up: BringUp
    source: str  # the API path of the object, for events
    available: bool = False
    reason: str = ""
    attempts: int = 0
    next_try: float = 0.0


@dataclass
class _Waiting:
    keys: frozenset[Key]
    run: Waiter
    label: str


@dataclass
class AvailabilityWarning:
    kind: str
    name: str
    message: str
    count: int = 1
    resolved: bool = False


@dataclass
class Availability:
    bus: EventBus
    min_interval: float = 1.0
    max_interval: float = 30.0
    _resources: dict[Key, Resource] = field(default_factory=dict)
    _waiting: list[_Waiting] = field(default_factory=list)
    _wake: trio.Event = field(default_factory=trio.Event)
    _nursery: trio.Nursery | None = None
    warnings: dict[Key, AvailabilityWarning] = field(default_factory=dict)
    sink: WarningSink | None = None

    # ------------------------------------------------------------------ resources
    async def add(self, kind: str, name: str, bring_up: BringUp, source: str = "") -> bool:
        """Register a resource and try to bring it up now; False: it is Unavailable."""
        res = Resource(kind, name, bring_up, source)
        self._resources[(kind, name)] = res
        return await self._try(res)

    def remove(self, kind: str, name: str) -> None:
        self._resources.pop((kind, name), None)
        self.warnings.pop((kind, name), None)

    async def _try(self, res: Resource) -> bool:
        res.attempts += 1
        try:
            await res.bring_up()
        except LxctlError as exc:
            self._down(res, exc.message)
            return False
        was_down = not res.available and res.attempts > 1
        res.available, res.reason = True, ""
        warning = self.warnings.get((res.kind, res.name))
        if warning is not None:
            warning.resolved = True
            if self.sink is not None:
                self.sink(res.kind, res.name, "", True)
        if was_down:
            log.info("resource available again", kind=res.kind, name=res.name,
                     attempts=res.attempts)
            self.bus.publish(lifecycle(f"{res.kind}-updated", res.source, status="Created"))
        return True

    def _down(self, res: Resource, reason: str) -> None:
        first = res.available or res.attempts == 1
        res.available, res.reason = False, reason
        delay = min(self.max_interval, self.min_interval * 2 ** min(res.attempts - 1, 16))
        res.next_try = trio.current_time() + delay
        self._wake.set()  # the loop recomputes its next deadline
        key = (res.kind, res.name)
        warning = self.warnings.get(key)
        if warning is None or warning.resolved:
            self.warnings[key] = AvailabilityWarning(res.kind, res.name, reason)
        else:
            warning.count += 1
            warning.message = reason
        if self.sink is not None:
            self.sink(res.kind, res.name, f"{res.kind} {res.name} unavailable: {reason}", False)
        if first:
            log.warning("resource unavailable", kind=res.kind, name=res.name, reason=reason)
            self.bus.publish(logging_event("warning", f"{res.kind} {res.name} unavailable: "
                                           f"{reason}", kind=res.kind, name=res.name))

    def is_available(self, kind: str, name: str) -> bool:
        res = self._resources.get((kind, name))
        return res is None or res.available  # unknown to the mechanism: not its concern

    def reason(self, kind: str, name: str) -> str | None:
        res = self._resources.get((kind, name))
        return None if res is None or res.available else res.reason

    def require(self, kind: str, name: str, what: str) -> None:
        """Raise Unavailable, naming ``what`` and the reason, unless it is available."""
        reason = self.reason(kind, name)
        if reason is not None:
            raise Unavailable(f"{what} unavailable: {reason}", resource=kind, name=name)

    def unavailable(self, kind: str | None = None) -> dict[str, str]:
        return {res.name: res.reason for res in self._resources.values()
                if not res.available and (kind is None or res.kind == kind)}

    # ------------------------------------------------------------------ waiters
    def when_available(self, keys: Iterable[Key], run: Waiter, label: str) -> bool:
        """Run ``run`` once every resource in ``keys`` is available: now (returns True;
        the caller runs it) or later, from the retry loop (returns False)."""
        keys = frozenset(keys)
        if all(self.is_available(*k) for k in keys):
            return True
        missing = sorted(f"{k} {n}" for k, n in keys if not self.is_available(k, n))
        log.info("waiting for resources", what=label, missing=missing)
        self._waiting.append(_Waiting(keys, run, label))
        return False

    def waiting(self) -> list[str]:
        return [w.label for w in self._waiting]

    def hint(self) -> None:
        """Something changed (a link appeared, a file came back): retry now."""
        for res in self._resources.values():
            res.next_try = 0.0
        self._wake.set()

    # ------------------------------------------------------------------ the loop
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                down = [r for r in self._resources.values() if not r.available]
                deadline = min((r.next_try for r in down), default=math.inf)
                with trio.move_on_at(deadline):
                    await self._wake.wait()
                self._wake = trio.Event()
                await trio.sleep(0)  # let the one who woke us finish first
                now = trio.current_time()
                for res in [r for r in self._resources.values()
                            if not r.available and r.next_try <= now]:
                    await self._try(res)
                self._release(nursery)

    def _release(self, nursery: trio.Nursery) -> None:
        ready = [w for w in self._waiting if all(self.is_available(*k) for k in w.keys)]
        for waiter in ready:
            self._waiting.remove(waiter)
            log.info("resources available: resuming", what=waiter.label)
            nursery.start_soon(self._run_waiter, waiter)

    async def _run_waiter(self, waiter: _Waiting) -> None:
        try:
            await waiter.run()
        except LxctlError as exc:
            log.warning("waiting action failed", what=waiter.label, error=exc.message)
