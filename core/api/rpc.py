"""``rpc.discover``: the OpenRPC description of every method this daemon serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl import __version__
from lxctl.api.context import app_of
from lxctl.rpc import Method
from lxctl.rpc.openrpc import document

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "rpc"


async def rpc_discover(ctx: CallContext) -> dict[str, Any]:
    """The OpenRPC document of every method (the core's and the plugins'): params from
    the typed signatures, results, errors, descriptions from the docstrings;
    ``x-read-only`` marks the methods that change nothing."""
    return document(app_of(ctx).methods, version=__version__)


METHODS: dict[str, Method] = {"rpc.discover": rpc_discover}
