"""The method table: registered coroutines and the type checks of their parameters.

A method is ``async def method(ctx, *, a: int, b: str = "x") -> JSON``. Its hints are
resolved once, at registration, and enforced on every call with the small JSON subset
of typing that :func:`type_matches` knows (``bool``, ``int``, ``float``, ``str``,
``None``, unions, ``list[T]``, ``dict[str, T]``, ``Any``).

A plugin may import a parameter's type only for type checkers (``TYPE_CHECKING``).
Such a name cannot be resolved at run time; it is treated as ``Any`` wherever it
appears (``list[Record]`` still requires a list), and the rest of the hints are
resolved as usual.
"""

from __future__ import annotations

import builtins
import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union

Method = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Param:
    name: str
    hint: Any
    required: bool
    positional: bool = True  # False: keyword-only (``*, project=...``), never by position


class InvalidParams(Exception):
    """The params of a call do not fit the method's signature (-32602)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


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
            positional = [p for p in self.params if p.positional]
            if len(params) > len(positional):
                raise InvalidParams(
                    f"{self.name} takes at most {len(positional)} positional parameters, "
                    f"got {len(params)}"
                )
            kwargs = {p.name: v for p, v in zip(positional, params, strict=False)}
        else:
            kwargs = dict(params)
        known = {p.name for p in self.params}
        for key in kwargs:
            if key not in known:
                raise InvalidParams(f"unexpected parameter {key!r} for {self.name}", key)
        for p in self.params:
            if p.name not in kwargs:
                if p.required:
                    raise InvalidParams(f"missing parameter {p.name!r} for {self.name}", p.name)
                continue
            if not type_matches(kwargs[p.name], p.hint):
                raise InvalidParams(
                    f"parameter {p.name!r} must be {type_name(p.hint)}, "
                    f"got {json_type(kwargs[p.name])}",
                    p.name,
                )
        return kwargs


class MethodTable:
    """The RPC methods of a daemon: ``name -> MethodSpec``.

    ``ctx``, the first parameter, is the per-call context supplied by the server; its
    hint is never evaluated. The type hints of the other parameters are enforced on
    every call.
    """

    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec] = {}

    def add(self, name: str, func: Method) -> None:
        if name in self._methods:
            raise ValueError(f"RPC method {name!r} is registered twice")
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"RPC method {name!r} must be a coroutine function")
        hints = parameter_hints(func)
        params = tuple(
            Param(p.name, hints.get(p.name, Any), p.default is p.empty,
                  p.kind is not p.KEYWORD_ONLY)
            for p in list(inspect.signature(func).parameters.values())[1:]
        )
        self._methods[name] = MethodSpec(name, func, params, inspect.getdoc(func) or "")

    def get(self, name: str) -> MethodSpec | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return sorted(self._methods)

    def specs(self) -> list[MethodSpec]:
        """Every method, by name."""
        return [self._methods[name] for name in sorted(self._methods)]


# ---------------------------------------------------------------------------- hints
def parameter_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The run-time hints of ``func``'s parameters after the first (``ctx``).

    ``typing.get_type_hints`` when every hint resolves; otherwise each hint on its own,
    names that do not resolve standing for ``Any``. A parameter without a hint is Any.
    """
    parameters = list(inspect.signature(func).parameters.values())[1:]
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # NameError for TYPE_CHECKING-only names, or a hint typing rejects
        hints = None
    if hints is not None:
        return {p.name: hints.get(p.name, Any) for p in parameters}
    globalns = getattr(inspect.unwrap(func), "__globals__", {})
    return {p.name: _resolve(p.annotation, globalns) for p in parameters}


def _resolve(annotation: Any, globalns: dict[str, Any]) -> Any:
    if annotation is inspect.Parameter.empty:
        return Any
    if not isinstance(annotation, str):
        return annotation
    try:
        # the same evaluation as typing.get_type_hints, names unknown to the module as Any
        hint = eval(annotation, globalns, _UnknownNamesAsAny(globalns))
    except Exception:  # not an expression, an attribute of an unknown module, ...
        return Any
    return type(None) if hint is None else hint


class _UnknownNamesAsAny(Mapping[str, Any]):
    """eval's locals: a name the module and builtins lack resolves to ``Any``.

    A name lookup tries locals first; raising KeyError here lets eval go on to the
    module's globals and builtins as usual.
    """

    def __init__(self, globalns: Mapping[str, Any]) -> None:
        self._globalns = globalns

    def __getitem__(self, key: str) -> Any:
        if key in self._globalns or hasattr(builtins, key):
            raise KeyError(key)
        return Any

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


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
             type(None): "null", list: "a list", dict: "an object"}
    if hint in names:
        return names[hint]
    if origin is list:
        args = typing.get_args(hint)
        return f"a list of {_plural(args[0])}" if args and args[0] is not Any else "a list"
    if origin is dict:
        args = typing.get_args(hint)
        return f"an object of {_plural(args[1])}" if args and args[1] is not Any else "an object"
    return getattr(hint, "__name__", str(hint))


def _plural(hint: Any) -> str:
    """``str`` -> "strings": the name of an element type after "a list of"."""
    article, _, rest = type_name(hint).partition(" ")
    return f"{rest}s" if article in ("a", "an") and rest else f"{type_name(hint)} values"


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
