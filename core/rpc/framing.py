"""Framing: one JSON text per line, with a size limit per line.

JSON never needs a raw newline, so a line is a message. A line longer than the limit
is reported as :class:`Oversized` and the rest of it skipped, so that the connection
stays usable; the caller answers it (see :func:`lxctl.rpc.dispatch.too_large_error`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024


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
    """One message as a framed line: compact UTF-8 JSON and ``\\n``."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def notification(method: str, params: dict[str, Any]) -> bytes:
    return encode({"jsonrpc": "2.0", "method": method, "params": params})
