"""``rpc.discover`` (issue 9, acceptance 4): the OpenRPC document lists every method
the daemon serves, plugins' included, each described; a client generated from it
calls every read-only method and checks params and results against the schemas; a
method added without a description is caught."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from inproc import Client, RpcError, daemon, import_image

from lxctl.rpc import MethodTable
from lxctl.rpc.openrpc import document, undocumented

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "contrib" / "example-plugin"))
import lxctl_example  # a third-party plugin's module, from its source tree


def valid(value: Any, schema: dict[str, Any]) -> bool:
    """The JSON Schema subset rpc.discover emits: type, anyOf, items,
    additionalProperties."""
    if "anyOf" in schema:
        return any(valid(value, s) for s in schema["anyOf"])
    kind = schema.get("type")
    checks: dict[str, Callable[[Any], bool]] = {
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str), "null": lambda v: v is None,
        "array": lambda v: isinstance(v, list), "object": lambda v: isinstance(v, dict)}
    if kind is not None and not checks[kind](value):
        return False
    if kind == "array" and "items" in schema:
        return all(valid(v, schema["items"]) for v in value)
    if kind == "object" and "additionalProperties" in schema:
        return all(valid(v, schema["additionalProperties"]) for v in value.values())
    return True


class GeneratedClient:
    """A client built from an OpenRPC document: one coroutine per method, which
    checks its params before the call and its result after."""

    def __init__(self, doc: dict[str, Any], client: Client) -> None:
        self.methods = {m["name"]: m for m in doc["methods"]}
        self.client = client

    def __getitem__(self, name: str) -> Callable[..., Awaitable[Any]]:
        spec = self.methods[name]

        async def call(**params: Any) -> Any:
            known = {p["name"]: p for p in spec["params"]}
            for p in spec["params"]:
                assert not p["required"] or p["name"] in params, f"{name}: {p['name']}"
            for key, value in params.items():
                assert valid(value, known[key]["schema"]), f"{name}: {key}={value!r}"
            result = await self.client.call(name, **params)
            assert valid(result, spec["result"]["schema"]), f"{name} returned {result!r}"
            return result

        return call


async def test_discover_describes_every_method_and_a_generated_client_reads_them_all(
        tmp_path: Path) -> None:
    async with daemon(tmp_path / "d", extra_plugins=[lxctl_example]) as d:
        c = await d.client()
        doc = await c.call("rpc.discover")
        names = [m["name"] for m in doc["methods"]]
        assert names == d.app.methods.names() and "example.hello" in names
        assert undocumented(d.app.methods) == []
        for m in doc["methods"]:
            assert m["summary"] and m["description"], m["name"]
            for ref in m["errors"]:
                assert ref["$ref"].rsplit("/", 1)[1] in doc["components"]["errors"]
        status = next(m for m in doc["methods"] if m["name"] == "instance.stop")
        params = {p["name"]: p for p in status["params"]}
        assert params["name"] == {"name": "name", "required": True,
                                  "schema": {"type": "string"}}
        assert params["force"]["schema"] == {"type": "boolean"}
        assert doc["components"]["errors"]["not_found"]["code"] == -32001

        # the objects read-only methods need, then each of them through the client
        await import_image(c, "img")
        await c.wait(await c.call("instance.create", image="img", name="c1"))
        warning = await d.app.warnings.raise_("Test", "a test warning")
        op = (await c.call("operation.list", all_projects=True) or [None])[0]
        args: dict[str, Any] = {"name": "c1", "image": "img", "uuid": warning.uuid,
                                "instance": "c1", "path": "/", "pool": "default"}
        by_method = {"project.get": {"name": "default"}, "profile.get": {"name": "default"},
                     "instance.console_log": {"name": "c1"}}
        api = GeneratedClient(doc, c)
        read_only = [m for m in doc["methods"] if m["x-read-only"]]
        assert {"server.info", "instance.list", "rpc.discover", "warning.list"} <= {
            m["name"] for m in read_only}
        called = []
        for m in read_only:
            if m["name"] == "operation.get" and op is None:
                continue  # the create's operation was forgotten already
            wanted = by_method.get(m["name"]) or {
                p["name"]: (op["id"] if p["name"] == "id" and op else args[p["name"]])
                for p in m["params"] if p["required"]}
            try:
                await api[m["name"]](**wanted)
            except RpcError as exc:  # an answer (the fakes may lack a feature), but
                assert exc.code not in (-32601, -32602, -32603), (m["name"], exc.message)
            called.append(m["name"])
        assert len(called) >= len(read_only) - 1


def test_a_method_without_a_description_is_caught() -> None:
    async def documented(ctx: Any, name: str) -> dict[str, Any]:
        """Does something."""
        return {}

    async def bare(ctx: Any, name: str) -> dict[str, Any]:
        return {}

    table = MethodTable()
    table.add("x.documented", documented)
    table.add("x.bare", bare)
    assert undocumented(table) == ["x.bare"]
    doc = document(table, version="0")
    assert [m["description"] for m in doc["methods"]] == ["", "Does something."]


@pytest.mark.parametrize("hint, schema", [
    (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    (list[str], {"type": "array", "items": {"type": "string"}}),
    (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
    (Any, {}),
])
def test_schemas_from_hints(hint: Any, schema: dict[str, Any]) -> None:
    from lxctl.rpc.openrpc import schema_of

    assert schema_of(hint) == schema
