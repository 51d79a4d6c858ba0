"""The OpenRPC document of a method table (``rpc.discover``), generated from the code.

Each method's params come from its typed signature (the hints the table enforces),
its result from its return hint, its summary and description from its docstring,
its errors from the one exception hierarchy (:mod:`lxctl.errors`). A method without a
docstring has no description: :func:`undocumented` names them (a test keeps it empty).
Read-only methods (their verb says so) carry ``x-read-only: true``.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Union

from lxctl import errors
from lxctl.rpc.methods import MethodSpec, MethodTable, _resolve

OPENRPC_VERSION = "1.2.6"
READ_ONLY_VERBS = frozenset({"list", "get", "info", "version", "ready", "discover", "status",
                             "console_log"})


def schema_of(hint: Any) -> dict[str, Any]:
    """The JSON Schema of a (simple) type hint, as :func:`~lxctl.rpc.methods.type_matches`
    reads it."""
    if hint is Any or hint is object or hint is inspect.Parameter.empty:
        return {}
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return {"anyOf": [schema_of(h) for h in typing.get_args(hint)]}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string",
              type(None): "null", list: "array", dict: "object"}
    if hint in simple:
        return {"type": simple[hint]}
    args = typing.get_args(hint)
    if origin is list:
        return {"type": "array", **({"items": schema_of(args[0])} if args else {})}
    if origin is dict:
        return {"type": "object",
                **({"additionalProperties": schema_of(args[1])} if args else {})}
    return {}


def _return_hint(spec: MethodSpec) -> Any:
    """The return hint, names imported for type checking only standing for Any."""
    annotation = inspect.signature(spec.func).return_annotation
    return _resolve(annotation, getattr(inspect.unwrap(spec.func), "__globals__", {}))


def error_objects() -> list[dict[str, Any]]:
    """Every error a method may answer with: invalid params, then the server's."""
    found = [{"code": -32602, "message": "Invalid params", "data": {"kind": "invalid_params"}},
             {"code": -32603, "message": "Internal error", "data": {"kind": "internal"}}]
    for cls in sorted((c for c in vars(errors).values() if isinstance(c, type)
                       and issubclass(c, errors.LxctlError) and c is not errors.LxctlError
                       and c is not errors.MessageTooLarge), key=lambda c: -c.code):
        doc = (inspect.getdoc(cls) or cls.__name__).split("\n")[0]
        found.append({"code": cls.code, "message": doc, "data": {"kind": cls.kind}})
    return found


def describe_method(spec: MethodSpec) -> dict[str, Any]:
    doc = spec.doc.strip()
    summary = doc.split("\n\n")[0].replace("\n", " ") if doc else ""
    return {
        "name": spec.name,
        "summary": summary,
        "description": doc,
        "paramStructure": "either",
        "params": [{"name": p.name, "required": p.required, "schema": schema_of(p.hint),
                    **({} if p.positional else {"x-keyword-only": True})}
                   for p in spec.params],
        "result": {"name": "result", "schema": schema_of(_return_hint(spec))},
        "errors": [{"$ref": f"#/components/errors/{e['data']['kind']}"}
                   for e in error_objects()],
        "x-read-only": spec.name.rsplit(".", 1)[-1] in READ_ONLY_VERBS,
    }


def document(table: MethodTable, *, version: str, title: str = "lxctl") -> dict[str, Any]:
    """The OpenRPC document of every method in ``table``."""
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": title, "version": version,
                 "description": "The JSON-RPC 2.0 API of lxctld (one JSON text per line "
                                "over its Unix socket)."},
        "methods": [describe_method(spec) for spec in table.specs()],
        "components": {"errors": {e["data"]["kind"]: e for e in error_objects()}},
    }


def undocumented(table: MethodTable) -> list[str]:
    """The methods that have no description (no docstring)."""
    return [spec.name for spec in table.specs() if not spec.doc.strip()]
