"""The real-daemon harness: lxctld subprocesses with private state dirs, and the CLI.

Every test resource is named with the ``lxt`` prefix and removed at teardown, also
when a test fails. These tests need root (LXC containers, cgroups, /etc/subuid).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
LXCTL = str(VENV_BIN / "lxctl")
LXCTLD = str(VENV_BIN / "lxctld")


def cgroup_prefix(directory: Path) -> str:
    return "lxctl." + hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:8]


class Daemon:
    """One lxctld with its own LXCTL_DIR."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.env = {**os.environ, "LXCTL_DIR": str(directory)}
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


def wait_for(predicate: Any, timeout: float = 10, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
