"""Benchmarks of issue 9 (events and hooks), against a daemon of their own.

    .venv/bin/python contrib/bench/events.py subscribers   # acceptance 2
    .venv/bin/python contrib/bench/events.py hooks         # acceptance 6

``subscribers``: `lxctl exec NAME -- true` latency (median of R_EXEC=60 runs) without
event subscribers, then with 100 of them subscribed to every event of every project,
one of which never reads. Before the second series a burst of events (profile create
and delete, B_BURST=3000 of each) makes the stuck one fall behind: it must be dropped,
and the 99 others must have received every event, in order (ids without a gap).
Prints the ratio with/without.

``hooks``: R_STARTS=200 starts in a row of one container (each `lxctl start`, timed,
then `stop --force`), without hooks, then with an `instance-started` hook that sleeps
1 s (hooks.concurrency=8): the ratio of the median start times, and every hook run
accounted for (done + failed + timed out + dropped == starts; the dropped ones each
counted in the `Hook run dropped` warning).

Names: the daemon's dir is /tmp/lxb-events-*, its objects lxb-*; all removed at the
end, also on failure.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LXCTL = str(REPO / ".venv" / "bin" / "lxctl")
LXCTLD = str(REPO / ".venv" / "bin" / "lxctld")
R_EXEC = int(os.environ.get("R_EXEC", "60"))
B_BURST = int(os.environ.get("B_BURST", "3000"))
R_STARTS = int(os.environ.get("R_STARTS", "200"))


class Daemon:
    def __init__(self, config: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lxb-events-"))
        self.dir.chmod(0o711)
        (self.dir / "lxctld.toml").write_text(config)
        self.env = {**os.environ, "LXCTL_DIR": str(self.dir)}
        self.log = open(self.dir.with_suffix(".log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([LXCTLD], env=self.env, stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        self.ok("admin", "waitready", "--timeout", "30")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([LXCTL, *args], env=self.env, capture_output=True, text=True,
                              timeout=120)

    def ok(self, *args: str) -> str:
        r = self.cli(*args)
        if r.returncode != 0:
            raise SystemExit(f"lxctl {' '.join(args)}: {r.stderr}")
        return r.stdout

    def connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.dir / "unix.socket"))
        return sock

    def call(self, method: str, **params: Any) -> Any:
        with self.connect() as sock:
            return _call(sock, method, params)

    def close(self) -> None:
        try:
            names = self.ok("list", "--format", "csv", "-c", "n").split()
            if names:
                self.cli("delete", "--force", *names)
            self.cli("admin", "shutdown")
            self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.with_suffix(".log").unlink(missing_ok=True)


def _call(sock: socket.socket, method: str, params: dict[str, Any]) -> Any:
    sock.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                             "params": params}).encode() + b"\n")
    buf = b""
    while True:
        data = sock.recv(65536)
        if not data:
            raise SystemExit(f"{method}: connection closed")
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = json.loads(line)
            if msg.get("id") == 1:
                if "error" in msg:
                    raise SystemExit(f"{method}: {msg['error']['message']}")
                return msg["result"]


def _timed(d: Daemon, *args: str) -> float:
    t0 = time.perf_counter()
    d.ok(*args)
    return time.perf_counter() - t0


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms (n={len(samples)}, " \
           f"min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f})"


# ---------------------------------------------------------------------------- subscribers
class Readers:
    """99 subscribers read by one thread; each checks that ids arrive without a gap."""

    def __init__(self, socks: list[socket.socket], first_ids: list[int]) -> None:
        self.socks = socks
        self.last = dict(zip((s.fileno() for s in socks), first_ids, strict=True))
        self.bufs = {s.fileno(): b"" for s in socks}
        self.gaps = 0
        self.received = 0
        self.closed = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        for s in self.socks:
            sel.register(s, selectors.EVENT_READ)
        while not self.stop:
            for key, _ in sel.select(0.2):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                data = sock.recv(1 << 20)
                fd = sock.fileno()
                if not data:
                    sel.unregister(sock)
                    self.closed += 1
                    continue
                self.bufs[fd] += data
                *lines, self.bufs[fd] = self.bufs[fd].split(b"\n")
                for line in lines:  # {"jsonrpc":..,"method":"event","params":{..,"id":N}}
                    if not line.startswith(b'{"jsonrpc":"2.0","method":"event"'):
                        continue
                    event_id = int(line.rsplit(b'"id":', 1)[1].rstrip(b"}"))
                    if event_id != self.last[fd] + 1:
                        self.gaps += 1
                    self.last[fd] = event_id
                    self.received += 1


def _subscribe_100(d: Daemon) -> tuple[Readers, socket.socket]:
    socks, first = [], []
    for _ in range(99):
        s = d.connect()
        first.append(_call(s, "events.subscribe", {"all_projects": True})["last_id"])
        socks.append(s)
    stuck = d.connect()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    _call(stuck, "events.subscribe", {"all_projects": True})
    return Readers(socks, first), stuck


def _unsubscribe(readers: Readers, stuck: socket.socket) -> None:
    readers.stop = True
    readers.thread.join(5)
    for s in [*readers.socks, stuck]:
        s.close()


def bench_subscribers() -> None:
    """Alternating rounds (R_ROUNDS=6) of R_EXEC/R_ROUNDS execs without, then with, the
    100 subscribers, so that host load hits both alike; then the burst."""
    rounds = int(os.environ.get("R_ROUNDS", "6"))
    d = Daemon()
    subs: tuple[Readers, socket.socket] | None = None
    try:
        d.ok("image", "build", "busybox", "--alias", "bb")
        d.ok("launch", "bb", "lxb-exec", "-q")
        for _ in range(5):
            d.ok("exec", "lxb-exec", "--", "true")  # warm caches
        without: list[float] = []
        with_subs: list[float] = []
        per_round = max(R_EXEC // rounds, 1)
        for _ in range(rounds):
            without += [_timed(d, "exec", "lxb-exec", "--", "true") for _ in range(per_round)]
            subs = _subscribe_100(d)
            with_subs += [_timed(d, "exec", "lxb-exec", "--", "true")
                          for _ in range(per_round)]
            _unsubscribe(*subs)
            subs = None
        subs = _subscribe_100(d)
        readers, stuck = subs
        with d.connect() as burst:
            for i in range(B_BURST):
                _call(burst, "profile.create", {"name": f"lxb-p{i % 10}"})
                _call(burst, "profile.delete", {"name": f"lxb-p{i % 10}"})
        info = d.call("server.info")
        deadline = time.monotonic() + 30
        target = max(readers.last.values())
        while time.monotonic() < deadline and min(readers.last.values()) < target:
            time.sleep(0.05)
        dropped = _stuck_was_dropped(stuck)
        ratio = statistics.median(with_subs) / statistics.median(without)
        print(f"exec -- true without subscribers: {_median_ms(without)}")
        print(f"exec -- true with 100 subscribers (1 stuck): {_median_ms(with_subs)}")
        print(f"ratio with/without: {ratio:.2f}")
        print(f"events in the burst: {2 * B_BURST}; received by the 99 readers: "
              f"{readers.received} ({readers.received / 99:.0f} each), gaps: {readers.gaps}, "
              f"readers all at the same last id: {len(set(readers.last.values())) == 1}")
        print(f"stuck subscriber dropped: {dropped}; daemon still answering: "
              f"{info['server'] == 'lxctl'}")
        if readers.gaps or not dropped:
            raise SystemExit("FAILED: a reader missed events or the stuck one was kept")
    finally:
        if subs is not None:
            _unsubscribe(*subs)
        d.close()


def _stuck_was_dropped(sock: socket.socket) -> bool:
    """Drain the stuck subscriber: the daemon must have closed it (EOF)."""
    sock.settimeout(10)
    try:
        while sock.recv(1 << 20):
            pass
    except TimeoutError:
        return False
    return True


# ---------------------------------------------------------------------------- hooks
def _start_series(d: Daemon) -> list[float]:
    times = []
    for _ in range(R_STARTS):
        times.append(_timed(d, "start", "lxb-hooked"))
        d.ok("stop", "lxb-hooked", "--force")
    return times


def bench_hooks() -> None:
    d = Daemon("[hooks]\ntimeout = 30.0\nconcurrency = 8\n")
    try:
        d.ok("image", "build", "busybox", "--alias", "bb")
        d.ok("init", "bb", "lxb-hooked")
        d.ok("start", "lxb-hooked")
        d.ok("stop", "lxb-hooked", "--force")
        without = _start_series(d)
        hook = d.dir / "hooks.d" / "instance-started" / "sleep1"
        hook.parent.mkdir(parents=True)
        hook.write_text("#!/bin/sh\ncat > /dev/null\nsleep 1\n")
        hook.chmod(0o755)
        t0 = time.perf_counter()
        with_hook = _start_series(d)
        series = time.perf_counter() - t0
        deadline = time.monotonic() + 60
        while d.call("server.info")["hooks"]["running"] and time.monotonic() < deadline:
            time.sleep(0.2)
        runs = d.call("server.info")["hooks"]["runs"]
        warnings = {w["type"]: w for w in d.call("warning.list", all_projects=True)}
        dropped_warning = warnings.get("Hook run dropped", {}).get("count", 0)
        total = sum(runs.values())
        print(f"start without hook: {_median_ms(without)}")
        print(f"start with a 1 s instance-started hook: {_median_ms(with_hook)} "
              f"({series:.1f} s for the {R_STARTS} starts and stops)")
        ratio = statistics.median(with_hook) / statistics.median(without)
        print(f"ratio with/without: {ratio:.2f}")
        print(f"hook runs: {runs} = {total} of {R_STARTS} starts; "
              f"'Hook run dropped' warning count: {dropped_warning}")
        if total != R_STARTS or dropped_warning != runs["dropped"]:
            raise SystemExit("FAILED: hook runs not all accounted for")
    finally:
        d.close()


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which == "subscribers":
        bench_subscribers()
    elif which == "hooks":
        bench_hooks()
    else:
        raise SystemExit("usage: events.py subscribers|hooks")
