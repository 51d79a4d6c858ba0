"""Event hooks: the administrator's executables, run for each matching event.

``<hooks dir>/<name>/`` holds executables (dot-files and ``*~`` are skipped), run in
name order for every event whose *name* is ``<name>``: a lifecycle event's action
(``instance-started``) or an event's type (``lifecycle``, ``operation``, ``logging``).
Each run gets the event's JSON on stdin and its main fields in the environment
(``LXCTL_EVENT_ID``, ``_TYPE``, ``_ACTION``, ``_SOURCE``, ``_PROJECT``, ``_LOCATION``,
``_TIMESTAMP``, ``LXCTL_INSTANCE`` for an instance's events, ``LXCTL_DIR``), in a
session of its own that is killed at ``hooks.timeout``.

Nothing here can hold up the daemon: the bus consumer only enqueues; one task starts
the runs, at most ``hooks.concurrency`` at once; a run over that limit is dropped, and
a dropped, failed or timed-out run is logged, published as a ``logging`` event with a
``warning`` type (which the warnings table keeps, counted) and counted in
:attr:`HookRunner.stats`, so that every run is accounted for.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import structlog
import trio

from lxctl import execute
from lxctl.errors import LxctlError, Timeout
from lxctl.kernel.events import Event, EventBus, LifecycleEvent, LoggingEvent

log = structlog.get_logger("lxctl.hooks")

QUEUE = 10000  # events waiting for their hooks to be started
HOOK_FAILURE = "Hook failure"
HOOK_DROPPED = "Hook run dropped"


def event_names(event: Event) -> list[str]:
    """The hook directories an event runs: its action (lifecycle), then its type."""
    names = [event.action] if isinstance(event, LifecycleEvent) else []
    return [*names, event.type]


def event_environment(event: Event, directory: Path) -> dict[str, str]:
    meta = event.metadata
    env = {"LXCTL_EVENT_ID": str(event.id), "LXCTL_EVENT_TYPE": event.type,
           "LXCTL_EVENT_PROJECT": event.project, "LXCTL_EVENT_LOCATION": event.location,
           "LXCTL_EVENT_TIMESTAMP": event.to_api()["timestamp"], "LXCTL_DIR": str(directory)}
    if isinstance(event, LifecycleEvent):
        env["LXCTL_EVENT_ACTION"] = event.action
        env["LXCTL_EVENT_SOURCE"] = event.source
        if event.source.startswith("/1.0/instances/"):
            env["LXCTL_INSTANCE"] = event.source[len("/1.0/instances/"):].split("?")[0] \
                .split("/")[0]
    elif isinstance(event, LoggingEvent):
        env["LXCTL_EVENT_LEVEL"] = str(meta.get("level", ""))
    return env


@dataclass
class HookRunner:
    bus: EventBus
    directory: Path  # <dir>/<event name>/<executable>
    state_dir: Path
    timeout: float = 30.0
    concurrency: int = 8
    stats: Counter[str] = field(default_factory=Counter)  # done, failed, timed_out, dropped
    running: int = 0
    _listing: dict[str, tuple[float, list[Path]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[tuple[Event, list[Path]]](QUEUE)

    # ------------------------------------------------------------------ the consumer
    def scripts(self, name: str) -> list[Path]:
        """The executables of ``<dir>/<name>/``, re-listed when the folder changes."""
        folder = self.directory / name
        try:
            mtime = folder.stat().st_mtime
        except OSError:
            return []
        cached = self._listing.get(name)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        found = sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                       and not p.name.endswith("~") and p.is_file() and os.access(p, os.X_OK))
        self._listing[name] = (mtime, found)
        return found

    def consume(self, event: Event) -> None:
        """A bus consumer: enqueue the event with its scripts (never blocks)."""
        if isinstance(event, LoggingEvent) and (event.metadata.get("context") or {}).get(
                "warning") in (HOOK_FAILURE, HOOK_DROPPED):
            return  # a hook's own failure runs no hook (no loops)
        scripts = [s for name in event_names(event) for s in self.scripts(name)]
        if not scripts:
            return
        try:
            self._send.send_nowait((event, scripts))
        except trio.WouldBlock:
            self.stats["dropped"] += len(scripts)
            log.warning("hook queue full: runs dropped", event_id=event.id, runs=len(scripts))

    # ------------------------------------------------------------------ the runs
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for event, scripts in self._receive:
                for script in scripts:
                    if self.running >= self.concurrency:
                        self._dropped(event, script)
                        continue
                    self.running += 1
                    nursery.start_soon(self._run_one, event, script)

    def _dropped(self, event: Event, script: Path) -> None:
        self.stats["dropped"] += 1
        message = (f"Hook {self._name(script)} not run for event {event.id}: "
                   f"{self.concurrency} hooks were already running (hooks.concurrency)")
        log.warning("hook dropped", hook=self._name(script), event_id=event.id)
        self.bus.log("warning", message, warning=HOOK_DROPPED, entity_type="hook",
                     entity_name=self._name(script))

    def _name(self, script: Path) -> str:
        try:
            return str(script.relative_to(self.directory))
        except ValueError:
            return str(script)

    async def _run_one(self, event: Event, script: Path) -> None:
        try:
            data = json.dumps(event.to_api()).encode() + b"\n"
            try:
                outcome = await execute.run([script], check=False, timeout=self.timeout,
                                            stdin=data, own_session=True,
                                            env=event_environment(event, self.state_dir))
            except LxctlError as exc:  # timed out (killed), or could not be run
                self.stats["timed_out" if isinstance(exc, Timeout) else "failed"] += 1
                self._failed(event, script, exc.message)
                return
            if outcome.ok:
                self.stats["done"] += 1
                return
            self.stats["failed"] += 1
            tail = outcome.tail()
            self._failed(event, script, f"exit {outcome.returncode}"
                         + (f": {tail}" if tail else ""))
        except Exception as exc:  # a bug here must not take the daemon down
            self.stats["failed"] += 1
            log.error("hook run failed", hook=self._name(script), exc_info=exc)
        finally:
            self.running -= 1

    def _failed(self, event: Event, script: Path, why: str) -> None:
        name = self._name(script)
        log.warning("hook failed", hook=name, event_id=event.id, error=why)
        self.bus.log("warning", f"Hook {name} failed for event {event.id}: {why}",
                     warning=HOOK_FAILURE, entity_type="hook", entity_name=name)

    def describe(self) -> dict[str, object]:
        return {"directory": str(self.directory), "timeout": self.timeout,
                "concurrency": self.concurrency, "running": self.running,
                "runs": {k: self.stats.get(k, 0)
                         for k in ("done", "failed", "timed_out", "dropped")}}
