"""The JSON-RPC 2.0 protocol of lxctl, without I/O (sans-IO).

Framing
    One JSON text per line: every message (request, notification, batch, response) is
    UTF-8 JSON terminated by ``\\n``. JSON never needs a raw newline, so a line is a
    message. A line longer than ``max_message_size`` bytes is answered with a
    ``MessageTooLarge`` (-32011) error whose id is null, and the rest of that line is
    skipped: the connection stays usable.

Requests
    Parsing, schema validation and response objects come from jsonrpcserver; methods are
    coroutines run by the caller's event loop (jsonrpcserver's own async dispatcher uses
    asyncio, which cannot run under trio). A batch is answered by one array in the order
    of its requests; notifications get no response, not even an error. Parameters are
    checked against each method's type hints before it runs (-32602 names the parameter).

Errors
    :func:`error_response` is the one place that turns an exception into a JSON-RPC
    error: an :class:`~lxctl.errors.LxctlError` keeps its stable code, message and data;
    anything else becomes -32603 "Internal error" with an incident id that is also in
    the daemon's log, and never a traceback.
"""

from __future__ import annotations

import inspect
import json
import time
import types
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Union

from jsonrpcserver.codes import (
    ERROR_INTERNAL_ERROR,
    ERROR_INVALID_PARAMS,
    ERROR_INVALID_REQUEST,
    ERROR_METHOD_NOT_FOUND,
    ERROR_PARSE_ERROR,
)
from jsonrpcserver.dispatcher import create_request, validate_request
from jsonrpcserver.main import default_validator
from jsonrpcserver.response import (
    ErrorResponse,
    SuccessResponse,
    serialize_error,
    serialize_success,
)
from jsonrpcserver.sentinels import NODATA, NOID
from oslash.either import Left

from lxctl.errors import LxctlError, MessageTooLarge

DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024
MAX_BATCH = 256

Method = Callable[..., Awaitable[Any]]
InternalErrorHook = Callable[[BaseException, str, str], None]
# called after every request: method name, seconds, error code (None: success)
CallObserver = Callable[[str, float, int | None, bool], None]


# ---------------------------------------------------------------------------- framing
@dataclass
class Oversized:
    """Marker yielded by :class:`LineFramer` for a line over the size limit."""

    size: int


@dataclass
class LineFramer:
    """Splits a byte stream into lines, enforcing a size limit per line."""

    max_size: int = DEFAULT_MAX_MESSAGE_SIZE
    _buf: bytearray = field(default_factory=bytearray)
    _skipping: int = 0  # > 0: bytes of an oversized line seen so far

    def feed(self, data: bytes | bytearray) -> Iterator[bytes | Oversized]:
        if self._skipping:
            nl = data.find(b"\n")
            if nl < 0:
                self._skipping += len(data)
                return
            size, self._skipping = self._skipping + nl, 0
            yield Oversized(size)
            data = data[nl + 1 :]
        self._buf += data
        start = 0
        while (nl := self._buf.find(b"\n", start)) >= 0:
            line = bytes(self._buf[start:nl])
            start = nl + 1
            if len(line) > self.max_size:
                yield Oversized(len(line))
            elif line.strip():
                yield line
        del self._buf[:start]
        if len(self._buf) > self.max_size:
            self._skipping = len(self._buf)
            self._buf.clear()

    @property
    def pending(self) -> int:
        return len(self._buf) + self._skipping


def encode(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def notification(method: str, params: dict[str, Any]) -> bytes:
    return encode({"jsonrpc": "2.0", "method": method, "params": params})


# ---------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class Param:
    name: str
    hint: Any
    required: bool


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: the coroutine function and its checked parameters."""

    name: str
    func: Method
    params: tuple[Param, ...]
    doc: str

    def bind(self, params: list[Any] | dict[str, Any]) -> dict[str, Any]:
        """Check ``params`` against the signature; return them as keyword arguments."""
        if isinstance(params, list):
            if len(params) > len(self.params):
                raise _InvalidParams(
                    f"{self.name} takes at most {len(self.params)} positional parameters, "
                    f"got {len(params)}"
                )
            kwargs = {p.name: v for p, v in zip(self.params, params, strict=False)}
        else:
            kwargs = dict(params)
        known = {p.name for p in self.params}
        for key in kwargs:
            if key not in known:
                raise _InvalidParams(f"unexpected parameter {key!r} for {self.name}", key)
        for p in self.params:
            if p.name not in kwargs:
                if p.required:
                    raise _InvalidParams(f"missing parameter {p.name!r} for {self.name}", p.name)
                continue
            if not type_matches(kwargs[p.name], p.hint):
                raise _InvalidParams(
                    f"parameter {p.name!r} must be {type_name(p.hint)}, "
                    f"got {json_type(kwargs[p.name])}",
                    p.name,
                )
        return kwargs


class _InvalidParams(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class MethodTable:
    """The RPC methods of a daemon: ``name -> MethodSpec``.

    A method is ``async def method(ctx, *, a: int, b: str = "x") -> JSON``; ``ctx`` is
    the per-call context supplied by the server. The type hints of the other parameters
    are enforced on every call.
    """

    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec] = {}

    def add(self, name: str, func: Method) -> None:
        if name in self._methods:
            raise ValueError(f"RPC method {name!r} is registered twice")
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"RPC method {name!r} must be a coroutine function")
        params = []
        for i, p in enumerate(inspect.signature(func).parameters.values()):
            if i == 0:
                continue  # the call context (its type may be imported only for checkers)
            hint = p.annotation
            if hint is p.empty:
                hint = Any
            elif isinstance(hint, str):
                hint = eval(hint, func.__globals__)
            params.append(Param(p.name, hint, p.default is p.empty))
        self._methods[name] = MethodSpec(name, func, tuple(params), inspect.getdoc(func) or "")

    def get(self, name: str) -> MethodSpec | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return sorted(self._methods)


# ---------------------------------------------------------------------------- types
def type_matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a (simple) type hint."""
    if hint is Any or hint is object:
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(type_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list or hint is list:
        if not isinstance(value, list):
            return False
        args = typing.get_args(hint)
        return not args or all(type_matches(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            return False
        args = typing.get_args(hint)
        return not args or all(type_matches(v, args[1]) for v in value.values())
    return isinstance(value, hint) if isinstance(hint, type) else True


def type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(h) for h in typing.get_args(hint))
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             type(None): "null"}
    if hint in names:
        return names[hint]
    if origin is list:
        args = typing.get_args(hint)
        return f"a list of {type_name(args[0]).split(' ', 1)[1]}s" if args else "a list"
    if origin is dict:
        args = typing.get_args(hint)
        return f"an object of {type_name(args[1]).split(' ', 1)[1]}s" if args else "an object"
    return getattr(hint, "__name__", str(hint))


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


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


# ---------------------------------------------------------------------------- dispatch
@dataclass(frozen=True)
class ParseFailure:
    response: bytes


def is_notification(message: Any) -> bool:
    return isinstance(message, dict) and "id" not in message


class Dispatcher:
    """Turns one framed message into zero or one response message."""

    def __init__(
        self, table: MethodTable, on_internal: InternalErrorHook | None = None,
        on_call: CallObserver | None = None,
    ) -> None:
        self.table = table
        self.on_internal = on_internal
        self.on_call = on_call

    @staticmethod
    def parse(line: bytes) -> Any:
        """Decode one framed message; a parse error comes back as response bytes."""
        try:
            return json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return ParseFailure(encode(_error(ERROR_PARSE_ERROR, f"Parse error: {exc}", None,
                                              None)))

    async def handle(self, line: bytes, ctx: Any) -> bytes | None:
        message = self.parse(line)
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
            notification = isinstance(message, dict) and "id" not in message
            self.on_call(str(method), time.monotonic() - t0, code, notification)
        return response

    async def _respond(self, message: Any, ctx: Any) -> dict[str, Any] | None:
        checked = validate_request(default_validator, message)
        if isinstance(checked, Left) or not isinstance(message, dict):
            request_id = message.get("id") if isinstance(message, dict) else None
            if not isinstance(request_id, str | int) or isinstance(request_id, bool):
                request_id = None
            return _error(ERROR_INVALID_REQUEST,
                          "Invalid request: not a JSON-RPC 2.0 request object", None, request_id)
        request = create_request(message)
        is_notification = request.id is NOID
        spec = self.table.get(request.method)
        if spec is None:
            if is_notification:
                return None
            return _error(ERROR_METHOD_NOT_FOUND, f"Method not found: {request.method}",
                          {"kind": "method_not_found", "method": request.method}, request.id)
        try:
            kwargs = spec.bind(request.params)
        except _InvalidParams as exc:
            if is_notification:
                return None
            data = {"kind": "invalid_params", "method": request.method}
            if exc.param is not None:
                data["param"] = exc.param
            return _error(ERROR_INVALID_PARAMS, f"Invalid params: {exc}", data, request.id)
        try:
            result = await spec.func(ctx, **kwargs)
        except Exception as exc:
            if is_notification:
                error_object(exc, None, request.method, self.on_internal)
                return None
            return error_object(exc, request.id, request.method, self.on_internal)
        if is_notification:
            return None
        response: dict[str, Any] = serialize_success(SuccessResponse(result, request.id))
        return response


__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ERROR_INVALID_PARAMS",
    "Dispatcher",
    "LineFramer",
    "MethodTable",
    "Oversized",
    "ParseFailure",
    "encode",
    "error_object",
    "is_notification",
    "notification",
    "too_large_error",
]
