"""The deadline every trio test runs under (applied by tests/conftest.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import trio

TRIO_TEST_DEADLINE = 120.0


def _with_deadline(fn: Callable[..., Any],
                   seconds: float = TRIO_TEST_DEADLINE) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        with trio.fail_after(seconds):
            return await fn(*args, **kwargs)

    run.lxctl_deadline = seconds  # type: ignore[attr-defined]
    return run
