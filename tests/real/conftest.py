"""Fixtures of the real layer: real daemons, real LXC containers (root only)."""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from harness import Daemon, daemon_with_image


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.real)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(
                    reason="needs root: real LXC containers, cgroups and /etc/subuid"))


DEADLINE = 240.0
"""Seconds a test may take, its function-scoped fixtures included."""


class DeadlineExceeded(Exception):
    """The test ran past its deadline (raised in the main thread by SIGALRM)."""


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    """Fail a hung test instead of hanging the run: at the deadline every thread's stack
    goes to stderr, then SIGALRM raises in the main thread (a blocking wait, lock, select
    or subprocess call is interrupted by it)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise DeadlineExceeded(f"test still running after {DEADLINE:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    faulthandler.dump_traceback_later(DEADLINE, exit=False)
    signal.setitimer(signal.ITIMER_REAL, DEADLINE)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="lxt-"))
    d.chmod(0o711)  # unprivileged container roots must traverse to their rootfs
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def image_tarball(workdir: Path) -> Path:
    """A unified busybox image, as the peer benchmark builds it."""
    out = workdir / "busybox.tar.gz"
    script = Path(__file__).resolve().parents[3] / "shared" / "bench" / "build-busybox-image.sh"
    if script.exists():
        subprocess.run(["bash", str(script), str(out)], check=True, capture_output=True,
                       timeout=300)
    else:  # build it with lxctl's own builder, in-process
        import trio

        from lxctl.objects.images import busybox_facts, busybox_tarball

        busybox_tarball(out, *trio.run(busybox_facts))
    return out


def _new_daemon(workdir: Path, name: str) -> Daemon:
    d = Daemon(workdir / name)
    d.start()
    return d


@pytest.fixture(scope="session")
def daemon(workdir: Path) -> Iterator[Daemon]:
    """A shared daemon with a busybox image aliased ``bb``."""
    d = _new_daemon(workdir, "main")
    try:
        d.ok("image", "build", "busybox", "--alias", "bb")
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def fresh_daemon(workdir: Path, request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A daemon of the test's own, with the ``bb`` image."""
    with daemon_with_image(workdir / f"d-{request.node.name[:40]}") as d:
        yield d




def _lxcfs_pids() -> set[int]:
    r = subprocess.run(["pgrep", "-x", "lxcfs"], capture_output=True, text=True)
    return {int(p) for p in r.stdout.split()}


@pytest.fixture(scope="session", autouse=True)
def host_lxcfs() -> Iterator[None]:
    """The LXC driver starts LXCFS, a host service, when it is not running, and leaves it
    running: a session stops the one its daemons started."""
    before = _lxcfs_pids()
    yield
    started = _lxcfs_pids() - before
    for pid in started:
        os.kill(pid, signal.SIGTERM)
    if started:
        subprocess.run(["umount", "-l", "/var/lib/lxcfs"], capture_output=True)
