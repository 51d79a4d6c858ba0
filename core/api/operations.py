"""``operation.*``: list, get, wait, cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of, project_name
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "operation"


async def operation_list(ctx: CallContext, project: str = "default",
                         all_projects: bool = False) -> list[dict[str, Any]]:
    """The operations of ``project`` (or of every project with ``all_projects``):
    running ones, and those that ended in the last few seconds."""
    ops = app_of(ctx).ops.list(None if all_projects else project_name(project))
    return [op.to_api() for op in ops]


async def operation_get(ctx: CallContext, id: str) -> dict[str, Any]:
    """One operation by id (not found once it has been forgotten)."""
    return app_of(ctx).ops.get(id).to_api()


async def operation_wait(ctx: CallContext, id: str, timeout: float = -1) -> dict[str, Any]:
    """Wait until the operation ends (or ``timeout`` seconds; -1: no limit)."""
    return (await app_of(ctx).ops.wait(id, timeout)).to_api()


async def operation_cancel(ctx: CallContext, id: str) -> dict[str, Any]:
    """Cancel a running operation that may be cancelled (``lxctl operation delete``)."""
    return app_of(ctx).ops.cancel(id).to_api()


METHODS: dict[str, Method] = {
    "operation.list": operation_list,
    "operation.get": operation_get,
    "operation.wait": operation_wait,
    "operation.cancel": operation_cancel,
}
