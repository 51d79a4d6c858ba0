"""Operations: long-running work with an id, a status, progress, cancel and wait.

Each operation runs in the daemon's nursery (not the caller's connection, so a client
that goes away does not cancel it). Its record is written to the state store when it
starts and when it ends, so that a daemon killed mid-operation marks it failed on the
next start. Finished operations stay visible for ``RETENTION`` seconds, as in Incus.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from lxctl.errors import Cancelled, InvalidState, LxctlError, NotFound, ShuttingDown
from lxctl.kernel.events import EventBus, OperationEvent, source_path
from lxctl.state.records import OperationRecord, iso, now
from lxctl.state.store import StateStore

log = structlog.get_logger("lxctl.kernel.operations")

RETENTION = 5.0
INTERRUPTED_RETENTION = 300.0  # an operation a crash cut short stays visible longer
STATUS_CODES = {"Running": 103, "Success": 200, "Failure": 400, "Cancelled": 401}

Work = Callable[["Operation"], Awaitable[dict[str, Any] | None]]


@dataclass
class Operation:
    record: OperationRecord
    may_cancel: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def status(self) -> str:
        return self.record.status

    def to_api(self) -> dict[str, Any]:
        r = self.record
        return {
            "id": r.id,
            "class": "task",
            "description": r.description,
            "created_at": iso(r.created_at),
            "updated_at": iso(r.updated_at),
            "status": r.status,
            "status_code": STATUS_CODES.get(r.status, 400),
            "resources": r.resources,
            "metadata": self.metadata,
            "may_cancel": self.may_cancel and r.status == "Running",
            "err": r.err,
            "location": r.location,
            "project": r.project,
        }


class Operations:
    def __init__(self, store: StateStore, bus: EventBus, nursery: trio.Nursery) -> None:
        self.store = store
        self.bus = bus
        self.nursery = nursery
        self._ops: dict[str, Operation] = {}
        self.closing = False  # the daemon is shutting down: no new operations

    def close(self) -> None:
        """Refuse new operations from now on; running ones go on to their end."""
        self.closing = True

    async def start(
        self,
        description: str,
        work: Work,
        *,
        resources: dict[str, list[str]] | None = None,
        may_cancel: bool = False,
        project: str = "default",
    ) -> Operation:
        if self.closing:
            raise ShuttingDown("The daemon is shutting down: it starts no new operations")
        op = Operation(
            OperationRecord(uuid.uuid4().hex, description, resources=resources or {},
                            project=project),
            may_cancel,
        )
        self._ops[op.id] = op
        await self.store.write(lambda t: t.operation_put(op.record))
        self._publish(op)
        self.nursery.start_soon(self._run, op, work)
        return op

    async def _run(self, op: Operation, work: Work) -> None:
        status, err = "Success", ""
        with op.scope:
            try:
                result = await work(op)
                if result:
                    op.metadata.update(result)
            except Cancelled as exc:
                status, err = "Cancelled", exc.message
            except LxctlError as exc:
                status, err = "Failure", exc.message
            except Exception as exc:
                incident = uuid.uuid4().hex[:12]
                log.error("operation failed", operation=op.id, incident=incident,
                          description=op.record.description, exc_info=exc)
                status, err = "Failure", f"Internal error (incident {incident})"
        if op.scope.cancelled_caught:
            status, err = "Cancelled", "Operation cancelled"
        op.record.status, op.record.err, op.record.updated_at = status, err, now()
        with trio.CancelScope(shield=True):
            await self.store.write(lambda t: t.operation_put(op.record))
        self._publish(op)
        op.done.set()
        self.nursery.start_soon(self._forget, op)

    async def _forget(self, op: Operation, after: float = RETENTION) -> None:
        await trio.sleep(after)
        self._ops.pop(op.id, None)
        await self.store.write(lambda t: t.operation_delete(op.id))

    def _publish(self, op: Operation) -> None:
        self.bus.publish(OperationEvent(op.to_api(), project=op.record.project))

    def progress(self, op: Operation, **metadata: Any) -> None:
        op.metadata.update(metadata)
        op.record.updated_at = now()
        self._publish(op)

    def adopt_failed(self, records: list[OperationRecord]) -> None:
        """Show operations that a previous daemon left running as failed, for a while."""
        for rec in records:
            op = Operation(rec, False)
            op.done.set()
            self._ops[rec.id] = op
            self._publish(op)
            self.nursery.start_soon(self._forget, op, INTERRUPTED_RETENTION)

    def get(self, op_id: str) -> Operation:
        try:
            return self._ops[op_id]
        except KeyError:
            raise NotFound(f"Operation {op_id!r} not found", operation=op_id) from None

    def list(self, project: str | None = None) -> list[Operation]:
        """The operations of ``project`` (None: of every project), oldest first."""
        return sorted((o for o in self._ops.values()
                       if project is None or o.record.project == project),
                      key=lambda o: o.record.created_at)

    async def wait(self, op_id: str, timeout: float) -> Operation:
        op = self.get(op_id)
        with trio.move_on_after(timeout if timeout >= 0 else float("inf")):
            await op.done.wait()
        return op

    def cancel(self, op_id: str) -> Operation:
        op = self.get(op_id)
        if op.status != "Running":
            raise InvalidState(f"Operation {op_id} is not running ({op.status})",
                               operation=op_id)
        if not op.may_cancel:
            raise InvalidState(f"Operation {op_id} cannot be cancelled", operation=op_id)
        op.scope.cancel()
        self.bus.emit("operation-cancelled", source_path("operations", op.id),
                      project=op.record.project)
        return op
