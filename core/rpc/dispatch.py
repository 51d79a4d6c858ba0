"""Dispatch: one framed message in, zero or one response message out; and errors.

Request validation and response objects come from jsonrpcserver; methods are
coroutines run by the caller's event loop (jsonrpcserver's own async dispatcher uses
asyncio, which cannot run under trio). A batch is answered by one array in the order of
its requests; notifications get no response, not even an error.

:func:`error_object` is the one place that turns an exception into a JSON-RPC error.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonrpcserver.codes import (
    ERROR_INTERNAL_ERROR,
    ERROR_INVALID_PARAMS,
    ERROR_INVALID_REQUEST,
    ERROR_METHOD_NOT_FOUND,
    ERROR_PARSE_ERROR,
)
from jsonrpcserver.dispatcher import create_request
from jsonrpcserver.main import default_validator
from jsonrpcserver.response import (
    ErrorResponse,
    SuccessResponse,
    serialize_error,
    serialize_success,
)
from jsonrpcserver.sentinels import NODATA, NOID

from lxctl.errors import LxctlError, MessageTooLarge
from lxctl.rpc.framing import encode
from lxctl.rpc.methods import InvalidParams, MethodTable

MAX_BATCH = 256

# called with (call context, method, bound params) before a method runs
CallGuard = Callable[[Any, str, dict[str, Any]], None]
InternalErrorHook = Callable[[BaseException, str, str], None]
# called after every request: method name, seconds, error code (None: success),
# whether it was a notification
CallObserver = Callable[[str, float, int | None, bool], None]


# ---------------------------------------------------------------------------- errors
def error_object(
    exc: BaseException, request_id: Any, method: str, on_internal: InternalErrorHook | None
) -> dict[str, Any]:
    """The one place where an exception becomes a JSON-RPC error response."""
    if isinstance(exc, LxctlError):
        return _error(exc.code, exc.message, exc.to_data(), request_id)
    incident = uuid.uuid4().hex[:12]
    if on_internal is not None:
        on_internal(exc, incident, method)
    return _error(
        ERROR_INTERNAL_ERROR,
        f"Internal error (incident {incident}; see the daemon log)",
        {"kind": "internal", "incident": incident},
        request_id,
    )


def _error(code: int, message: str, data: Any, request_id: Any) -> dict[str, Any]:
    response: dict[str, Any] = serialize_error(
        ErrorResponse(code, message, NODATA if data is None else data, request_id)
    )
    return response


def too_large_error(size: int, limit: int) -> bytes:
    exc = MessageTooLarge(
        f"Message of {size} bytes exceeds the limit of {limit} bytes", size=size, limit=limit
    )
    return encode(_error(exc.code, exc.message, exc.to_data(), None))


def parse_error(reason: str) -> bytes:
    return encode(_error(ERROR_PARSE_ERROR, f"Parse error: {reason}", None, None))


# ---------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class ParseFailure:
    response: bytes


def parse(line: bytes) -> Any:
    """Decode one framed message; a parse error comes back as a :class:`ParseFailure`.

    Whatever the bytes, this returns: text nested too deep for the decoder and integers
    longer than Python converts (``sys.get_int_max_str_digits``) are parse errors too.
    """
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return ParseFailure(parse_error(str(exc)))
    except UnicodeDecodeError as exc:
        return ParseFailure(parse_error(f"not UTF-8 ({exc.reason} at byte {exc.start})"))
    except RecursionError:
        return ParseFailure(parse_error("arrays or objects nested too deep"))
    except ValueError:  # the only other one: int() refuses that many digits
        return ParseFailure(parse_error("a number has too many digits"))


def is_notification(message: Any) -> bool:
    return isinstance(message, dict) and "id" not in message


def is_request_object(message: Any) -> bool:
    """Whether ``message`` is a JSON-RPC 2.0 request or notification object."""
    if not isinstance(message, dict):
        return False
    try:
        default_validator(message)  # jsonrpcserver's schema; raises when it does not fit
    except Exception:  # jsonschema's ValidationError (jsonschema is not ours to import)
        return False
    return True


# ---------------------------------------------------------------------------- dispatch
class Dispatcher:
    """Turns one framed message into zero or one response message."""

    def __init__(
        self, table: MethodTable, on_internal: InternalErrorHook | None = None,
        on_call: CallObserver | None = None, guard: CallGuard | None = None,
    ) -> None:
        self.table = table
        self.on_internal = on_internal
        self.on_call = on_call
        self.guard = guard  # raises an LxctlError (Forbidden) to refuse a call

    parse = staticmethod(parse)

    async def handle(self, line: bytes, ctx: Any) -> bytes | None:
        message = parse(line)
        if isinstance(message, ParseFailure):
            return message.response
        return await self.handle_message(message, ctx)

    async def handle_message(self, message: Any, ctx: Any) -> bytes | None:
        """Answer one decoded message (a request, a notification or a batch)."""
        if isinstance(message, list):
            if not message:
                return encode(_error(ERROR_INVALID_REQUEST, "Invalid request: empty batch",
                                     None, None))
            if len(message) > MAX_BATCH:
                return encode(_error(ERROR_INVALID_REQUEST,
                                     f"Invalid request: batch of {len(message)} exceeds "
                                     f"{MAX_BATCH} requests", None, None))
            responses = [r for r in [await self._one(m, ctx) for m in message] if r is not None]
            return encode(responses) if responses else None
        response = await self._one(message, ctx)
        return None if response is None else encode(response)

    async def _one(self, message: Any, ctx: Any) -> dict[str, Any] | None:
        t0 = time.monotonic()
        response = await self._respond(message, ctx)
        if self.on_call is not None:
            method = message.get("method") if isinstance(message, dict) else None
            code = response["error"]["code"] if response and "error" in response else None
            self.on_call(str(method), time.monotonic() - t0, code, is_notification(message))
        return response

    async def _respond(self, message: Any, ctx: Any) -> dict[str, Any] | None:
        if not is_request_object(message):
            request_id = message.get("id") if isinstance(message, dict) else None
            if not isinstance(request_id, str | int) or isinstance(request_id, bool):
                request_id = None
            return _error(ERROR_INVALID_REQUEST,
                          "Invalid request: not a JSON-RPC 2.0 request object", None, request_id)
        request = create_request(message)
        notification = request.id is NOID
        spec = self.table.get(request.method)
        if spec is None:
            if notification:
                return None
            return _error(ERROR_METHOD_NOT_FOUND, f"Method not found: {request.method}",
                          {"kind": "method_not_found", "method": request.method}, request.id)
        try:
            kwargs = spec.bind(request.params)
        except InvalidParams as exc:
            if notification:
                return None
            data = {"kind": "invalid_params", "method": request.method}
            if exc.param is not None:
                data["param"] = exc.param
            return _error(ERROR_INVALID_PARAMS, f"Invalid params: {exc}", data, request.id)
        try:
            if self.guard is not None:
                self.guard(ctx, request.method, kwargs)
            result = await spec.func(ctx, **kwargs)
        except Exception as exc:
            if notification:
                error_object(exc, None, request.method, self.on_internal)
                return None
            return error_object(exc, request.id, request.method, self.on_internal)
        if notification:
            return None
        response: dict[str, Any] = serialize_success(SuccessResponse(result, request.id))
        return response
