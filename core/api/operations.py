"""``operation.*``: list, get, wait, cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "operation"


async def operation_list(ctx: CallContext) -> list[dict[str, Any]]:
    return [op.to_api() for op in app_of(ctx).ops.list()]


async def operation_get(ctx: CallContext, id: str) -> dict[str, Any]:
    return app_of(ctx).ops.get(id).to_api()


async def operation_wait(ctx: CallContext, id: str, timeout: float = -1) -> dict[str, Any]:
    """Wait until the operation ends (or ``timeout`` seconds; -1: no limit)."""
    return (await app_of(ctx).ops.wait(id, timeout)).to_api()


async def operation_cancel(ctx: CallContext, id: str) -> dict[str, Any]:
    return app_of(ctx).ops.cancel(id).to_api()


METHODS: dict[str, Method] = {
    "operation.list": operation_list,
    "operation.get": operation_get,
    "operation.wait": operation_wait,
    "operation.cancel": operation_cancel,
}
