"""Per-object locks: one action at a time per instance.

A second action fails at once with ``Busy`` naming the action in progress, as Incus's
operation lock does; nothing ever waits for a lock. :class:`Locks` is the interface a
cluster store implements (a lease per key); :class:`LocalLocks` serves one server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from lxctl.errors import Busy

Key = tuple[str, str]  # (project, name)


class Locks(Protocol):
    async def acquire(self, key: Key, action: str) -> None:
        """Take the lock for ``action`` or raise Busy at once (never waits)."""

    async def release(self, key: Key) -> None: ...

    def holder(self, key: Key) -> str | None:
        """The action holding the lock, as far as this server knows."""


class LocalLocks:
    def __init__(self) -> None:
        self._held: dict[Key, str] = {}

    async def acquire(self, key: Key, action: str) -> None:
        held = self._held.get(key)
        if held is not None:
            raise Busy(f'Instance is busy running a "{held}" operation', instance=key[1],
                       project=key[0], action=held)
        self._held[key] = action

    async def release(self, key: Key) -> None:
        self._held.pop(key, None)

    def holder(self, key: Key) -> str | None:
        return self._held.get(key)


@asynccontextmanager
async def locked(locks: Locks, key: Key, action: str) -> AsyncIterator[None]:
    await locks.acquire(key, action)
    try:
        yield
    finally:
        await locks.release(key)
