"""The real-daemon harness: lxctld subprocesses with private state dirs, and the CLI.

Every test resource is named with the ``lxt`` prefix and removed at teardown, also
when a test fails. These tests need root (LXC containers, cgroups, /etc/subuid).
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
LXCTL = str(VENV_BIN / "lxctl")
LXCTLD = str(VENV_BIN / "lxctld")


def cgroup_prefix(directory: Path) -> str:
    return "lxctl." + hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:8]


class Daemon:
    """One lxctld with its own LXCTL_DIR."""

    def __init__(self, directory: Path, env: Mapping[str, str] | None = None) -> None:
        """``env`` adds to the environment of the daemon and of the CLI calls."""
        self.dir = directory
        self.env = {**os.environ, **(env or {}), "LXCTL_DIR": str(directory)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory.parent / f"{directory.name}.log"

    # ------------------------------------------------------------------ process
    def start(self, timeout: float = 30) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([LXCTLD], env=self.env, stdout=log, stderr=log,
                                         start_new_session=True)
        r = self.cli("admin", "waitready", "--timeout", str(timeout), timeout=timeout + 5)
        assert r.returncode == 0, f"daemon not ready: {r.stderr}\n{self.log.read_text()[-3000:]}"

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # ------------------------------------------------------------------ client
    def cli(self, *args: str, input: bytes | str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        data = input.decode() if isinstance(input, bytes) else input
        return subprocess.run([LXCTL, *args], env=self.env, input=data, capture_output=True,
                              text=True, timeout=timeout,
                              stdin=None if data is not None else subprocess.DEVNULL)

    def ok(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        r = self.cli(*args, input=input, timeout=timeout)
        assert r.returncode == 0, f"lxctl {' '.join(args)} -> {r.returncode}: {r.stderr}"
        return r.stdout

    def rpc(self, message: bytes | dict[str, Any], *, timeout: float = 30) -> Any:
        """Send one raw message; return the decoded first response line."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.dir / "unix.socket"))
            raw = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
            s.sendall(raw)
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return json.loads(buf.split(b"\n")[0])

    def states(self) -> dict[str, str]:
        out = self.ok("list", "--format", "csv", "-c", "ns")
        return dict(line.split(",", 1) for line in out.splitlines() if line)

    def init_process(self, name: str) -> tuple[int, int]:
        """The instance's init as (host PID, start time in clock ticks since boot): a
        restarted instance has a new one, even if its PID were reused."""
        info = self.ok("info", name)
        pid = int(next(line.split()[1] for line in info.splitlines()
                       if line.startswith("PID:")))
        # /proc/PID/stat: "pid (comm) state ...", starttime is field 22
        stat = Path(f"/proc/{pid}/stat").read_text()
        return pid, int(stat.rsplit(")", 1)[1].split()[19])

    def requests(self, method: str) -> int:
        """How many ``method`` requests the daemon has logged (one line per request,
        written when the method has returned)."""
        count = 0
        for line in self.log.read_text().splitlines():
            if line.startswith("{") and '"event": "request"' in line:
                count += json.loads(line).get("method") == method
        return count

    @contextmanager
    def deleted_afterwards(self, *names: str) -> Iterator[None]:
        """Delete the instances when the block ends. Their deletion is checked only when
        the block succeeded: when it failed, its error is the one reported."""
        try:
            yield
        except BaseException:
            self.cli("delete", "--force", *names, timeout=120)
            raise
        self.ok("delete", "--force", *names, timeout=120)

    # ------------------------------------------------------------------ leftovers
    def leftovers(self, name: str) -> list[str]:
        """Everything an instance may leave behind; empty when it is truly gone."""
        found = []
        if (self.dir / "storage-pools" / "default" / "containers" / name).exists():
            found.append("root volume")
        if (self.dir / "containers" / name).exists():
            found.append("lxc dir")
        import sqlite3

        db = sqlite3.connect(self.dir / "lxctl.db")
        if db.execute("SELECT 1 FROM instances WHERE name=?", (name,)).fetchone():
            found.append("db row")
        db.close()
        cg = f"{cgroup_prefix(self.dir)}/{name}"
        found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{cg}*")]
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if f"/{cg}" in (proc / "cgroup").read_text():
                    found.append(f"process {proc.name}")
            except OSError:
                continue
        return found

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            r = self.cli("list", "--format", "csv", "-c", "n", timeout=30)
            names = r.stdout.split()
            if names:
                self.cli("delete", "--force", *names, timeout=120)
            self.terminate()
        prefix = cgroup_prefix(self.dir)
        for h in Path("/sys/fs/cgroup").iterdir():
            target = h / prefix
            if target.is_dir():
                for d in sorted(target.rglob("*"), key=lambda p: -len(str(p))):
                    if d.is_dir():
                        try:
                            d.rmdir()
                        except OSError:
                            pass
                try:
                    target.rmdir()
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


class OutputLines:
    """The stdout of a long-running process (``stdout=PIPE``), read line by line with
    deadlines."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()  # read unbuffered: select() sees what is left
        self.lines: list[str] = []
        self._partial = b""
        self._checked = 0

    def wait_for(self, until: Callable[[str], bool], timeout: float = 30) -> str:
        """The next line for which ``until`` is true; earlier ones stay in ``lines``."""
        deadline = time.monotonic() + timeout
        while True:
            *complete, self._partial = self._partial.split(b"\n")
            self.lines += [raw.decode() for raw in complete]
            while self._checked < len(self.lines):
                self._checked += 1
                if until(self.lines[self._checked - 1]):
                    return self.lines[self._checked - 1]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such line in {timeout}s; got {self.lines}")
            if select.select([self.fd], [], [], left)[0]:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise AssertionError(
                        f"output ended (exit {self.proc.wait(10)}); got {self.lines}")
                self._partial += chunk

    def stop(self, timeout: float = 10) -> list[str]:
        """Terminate the process; every line it wrote."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rest, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate(timeout=timeout)
        self._partial += rest or b""
        *complete, self._partial = self._partial.split(b"\n")
        self.lines += [raw.decode() for raw in complete]
        return self.lines


@contextmanager
def daemon_with_image(directory: Path, env: Mapping[str, str] | None = None
                      ) -> Iterator[Daemon]:
    """A started daemon of its own with the ``bb`` image; cleaned up afterwards."""
    d = Daemon(directory, env=env)
    try:
        d.start()
        d.ok("image", "build", "busybox", "--alias", "bb")
        yield d
    finally:
        d.cleanup()


def wait_for(predicate: Any, timeout: float = 10, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
