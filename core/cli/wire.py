"""JSON for the client, straight from CPython's C accelerator (``_json``).

``import json`` costs ~4 ms on every command (it compiles regular expressions and builds
enum classes); the C scanner and encoder underneath it cost nothing to import. Output
is identical to ``json.dumps(obj, separators=(",", ":"))`` and ``json.loads``; where
``_json`` is missing the ``json`` module is used.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json

    class _DecodeContext:
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = float  # NaN, Infinity, -Infinity

    _scan = _json.make_scanner(_DecodeContext())  # type: ignore[arg-type]  # duck-typed

    def _unencodable(obj: Any) -> Any:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    _encode = _json.make_encoder(
        None, _unencodable, _json.encode_basestring_ascii, None, ":", ",", False, False, True)

    def dumps(obj: Any) -> bytes:
        return "".join(_encode(obj, 0)).encode()

    def loads(data: bytes | str) -> Any:
        text = data.decode() if isinstance(data, bytes) else data
        start = len(text) - len(text.lstrip())
        try:
            obj, end = _scan(text, start)
        except StopIteration as exc:
            raise ValueError(f"invalid JSON at {exc.value}") from None
        if text[end:].strip():
            raise ValueError(f"extra data after JSON at {end}")
        return obj

except (ImportError, AttributeError, TypeError):  # another Python: the plain module
    import json

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def loads(data: bytes | str) -> Any:
        return json.loads(data)
