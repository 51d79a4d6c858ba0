"""The test layers (see the README): ``unit/`` (pure, no root), ``inprocess/`` (a daemon
in this process over memory streams, fake drivers, no root), ``conformance/`` (one suite
per driver kind, run against every driver this machine supports) and ``real/`` (root,
real daemons and backends, marked ``real``).

Every trio test runs under a deadline (``trio.fail_after``), on top of any tighter one
it sets itself: a hung test fails instead of hanging CI.
"""

from __future__ import annotations

import inspect
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator

import pytest
from deadlines import _with_deadline  # tests/inprocess is on pytest's pythonpath


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "obj", None)
        if inspect.iscoroutinefunction(fn):
            item.obj = _with_deadline(fn)  # type: ignore[attr-defined]


def _zfs_fuse_pids() -> set[int]:
    r = subprocess.run(["pgrep", "-x", "zfs-fuse"], capture_output=True, text=True)
    return {int(p) for p in r.stdout.split()}


@pytest.fixture(scope="session", autouse=True)
def host_zfs_fuse() -> Iterator[None]:
    """The zfs driver starts the machine's one zfs-fuse daemon when it is not running and
    leaves it running: a session stops the zfs-fuse it started (its tests destroy their
    own pools). One running before is left alone, and so is one still holding pools:
    another session on the machine may be using it."""
    if shutil.which("zpool") is None:
        yield
        return
    before = _zfs_fuse_pids()
    yield
    r = subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True, text=True)
    mine = [n for n in r.stdout.split() if n.startswith("lxt-") and str(os.getpid()) in n]
    for name in mine:  # this session's test pools (named with its pid): a zfs-fuse
        # restarted by a test re-imports from its cache what it had before it died
        subprocess.run(["zpool", "destroy", "-f", name], capture_output=True, timeout=60)
    r = subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True, text=True)
    if r.stdout.strip():
        return
    for pid in _zfs_fuse_pids() - before:
        os.kill(pid, signal.SIGTERM)
