"""Irreversible steps: shielded from cancellation, but never without a deadline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from lxctl.errors import Timeout

DEFAULT_SHIELD_SECONDS = 120.0


@contextmanager
def shielded(what: str, seconds: float = DEFAULT_SHIELD_SECONDS) -> Iterator[None]:
    """Run the block shielded from outside cancellation; a hung step fails with Timeout
    after ``seconds`` instead of holding the shield forever."""
    try:
        with trio.fail_after(seconds, shield=True):
            yield
    except trio.TooSlowError:
        raise Timeout(f"{what} did not finish within {seconds:g} s") from None
