"""The test layers (see the README): ``unit/`` (pure, no root), ``inprocess/`` (a daemon
in this process over memory streams, fake drivers, no root), ``conformance/`` (one suite
per driver kind, run against every driver this machine supports) and ``real/`` (root,
real daemons and backends, marked ``real``).

Every trio test runs under a deadline (``trio.fail_after``), on top of any tighter one
it sets itself: a hung test fails instead of hanging CI.
"""

from __future__ import annotations

import inspect

import pytest
from deadlines import _with_deadline  # tests/inprocess is on pytest's pythonpath


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "obj", None)
        if inspect.iscoroutinefunction(fn):
            item.obj = _with_deadline(fn)  # type: ignore[attr-defined]
