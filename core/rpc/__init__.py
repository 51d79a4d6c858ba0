"""The JSON-RPC 2.0 protocol of lxctl, without I/O (sans-IO): no trio, no sockets.

Framing (:mod:`lxctl.rpc.framing`)
    One JSON text per line: every message (request, notification, batch, response) is
    UTF-8 JSON terminated by ``\\n``. A line longer than ``max_message_size`` bytes is
    answered with a ``MessageTooLarge`` (-32011) error whose id is null, and the rest of
    that line is skipped: the connection stays usable.

Methods (:mod:`lxctl.rpc.methods`)
    The method table. Parameters are checked against each method's type hints before
    it runs (-32602 names the parameter).

Dispatch and errors (:mod:`lxctl.rpc.dispatch`)
    Parsing (any line that is not JSON, however malformed, gets -32700), validation,
    batches (one array in the order of the requests; notifications get no response,
    not even an error). :func:`error_object` is the one place that turns an exception
    into a JSON-RPC error: an :class:`~lxctl.errors.LxctlError` keeps its stable code,
    message and data; anything else becomes -32603 "Internal error" with an incident id
    that is also in the daemon's log, and never a traceback.

This package re-exports what the rest of lxctl imports, so ``from lxctl.rpc import X``
keeps working whichever module ``X`` lives in.
"""

from __future__ import annotations

from jsonrpcserver.codes import ERROR_INVALID_PARAMS

from lxctl.rpc.dispatch import (
    MAX_BATCH,
    CallObserver,
    Dispatcher,
    InternalErrorHook,
    ParseFailure,
    error_object,
    is_notification,
    parse,
    parse_error,
    too_large_error,
)
from lxctl.rpc.framing import DEFAULT_MAX_MESSAGE_SIZE, LineFramer, Oversized, encode, notification
from lxctl.rpc.methods import (
    InvalidParams,
    Method,
    MethodSpec,
    MethodTable,
    Param,
    json_type,
    type_matches,
    type_name,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ERROR_INVALID_PARAMS",
    "MAX_BATCH",
    "CallObserver",
    "Dispatcher",
    "InternalErrorHook",
    "InvalidParams",
    "LineFramer",
    "Method",
    "MethodSpec",
    "MethodTable",
    "Oversized",
    "Param",
    "ParseFailure",
    "encode",
    "error_object",
    "is_notification",
    "json_type",
    "notification",
    "parse",
    "parse_error",
    "too_large_error",
    "type_matches",
    "type_name",
]
