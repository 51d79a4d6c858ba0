"""``stream.input``: client input for a stream (exec stdin, uploads)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import trio

from lxctl.drivers.hypervisor import (
    StreamData,
    StreamEOF,
    StreamInput,
    StreamResize,
    StreamSignal,
)
from lxctl.errors import InvalidArgument
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "stream"


async def stream_input(
    ctx: CallContext,
    stream: str,
    data: str | None = None,
    eof: bool = False,
    width: int | None = None,
    height: int | None = None,
    signal: int | None = None,
) -> None:
    """Input for a stream (a notification): base64 ``data``, ``eof``, a window size
    (``width``/``height``) or a ``signal`` number."""
    items: list[StreamInput] = []
    if data is not None:
        try:
            items.append(StreamData(base64.b64decode(data, validate=True)))
        except (binascii.Error, ValueError):
            raise InvalidArgument("stream data must be base64") from None
    if width is not None and height is not None:
        items.append(StreamResize(width, height))
    if signal is not None:
        items.append(StreamSignal(signal))
    if eof:
        items.append(StreamEOF())
    for item in items:
        await ctx.conn.stream_input(stream, item)


async def chunks(stdin: trio.MemoryReceiveChannel[StreamInput]) -> AsyncIterator[bytes]:
    """The data of an upload stream, up to its end-of-file mark."""
    async for item in stdin:
        if isinstance(item, StreamEOF):
            return
        if isinstance(item, StreamData):
            yield item.data
    raise InvalidArgument("The upload ended without an end-of-file mark")


METHODS: dict[str, Method] = {"stream.input": stream_input}
