"""``lxctl query METHOD [PARAMS-JSON]``: a raw JSON-RPC call (as ``incus query``).

The params are a JSON object (or array); the result is printed as JSON. A method the
daemon does not have is named with the closest ones its ``rpc.discover`` lists. An
operation is waited for with ``--wait``."""

from __future__ import annotations

import json
from typing import Any

from lxctl.cli.args import ArgumentParser
from lxctl.cli.connection import RpcError, connect
from lxctl.cli.output import write


def query(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl query", description="Call a JSON-RPC method")
    p.add_argument("method")
    p.add_argument("params", nargs="?", default="{}")
    p.add_argument("--wait", action="store_true", help="wait for a returned operation")
    opts = p.parse_args(args)
    try:
        params: Any = json.loads(opts.params)
    except json.JSONDecodeError as exc:
        raise ValueError(f"params are not JSON: {exc}") from None
    if not isinstance(params, dict | list):
        raise ValueError("params must be a JSON object or array")
    client = connect()
    try:
        result = client.call(opts.method, params)  # type: ignore[arg-type]
    except RpcError as exc:
        if exc.code == -32601:
            raise RpcError(exc.code, f"{exc.message}{_suggest(client, opts.method)}",
                           exc.data) from None
        raise
    if opts.wait and isinstance(result, dict) and "status_code" in result and "id" in result:
        result = client.wait_operation(result)
    write(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return 0


def _suggest(client: Any, method: str) -> str:
    import difflib

    doc = client.call("rpc.discover")
    names = [m["name"] for m in doc.get("methods", [])]
    close = difflib.get_close_matches(method, names, n=3)
    return f" (did you mean: {', '.join(close)}?)" if close else " (see: lxctl query rpc.discover)"
