"""The daemon's end of the attach helper (``attach_helper.py``): one helper process,
started by the first ``exec`` and shared by all, started again by the next one if it
died. Any task may read the helper's socket, one message at a time under a lock, and
file what it read for whoever waits for it (an answer by request id, an exit by pid)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import trio

from lxctl.public import DriverError, start_helper

from .exec import Child

HELPER = str(Path(__file__).with_name("attach_helper.py"))
MAX_MESSAGE = 1 << 16  # answers and exits are small
GONE = "The attach helper has gone (see the daemon's log)"
T = TypeVar("T")


def _lxc_dir() -> str:
    """Where python-lxc's C module is: the helper runs without ``site`` (-S)."""
    spec = importlib.util.find_spec("_lxc")
    if spec is None or spec.origin is None:
        raise DriverError("python-lxc's _lxc module is not installed")
    return str(Path(spec.origin).parent)


class Attacher:
    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._proc: trio.Process | None = None
        self._starting = trio.Lock()
        self._reading = trio.Lock()
        self._next_id = 0
        self._answers: dict[int, tuple[dict[str, Any], list[int]]] = {}
        self._exits: dict[int, int] = {}  # pid -> wait status, until its waiter takes it

    async def attach(self, lxcpath: Path, name: str, command: Sequence[str],
                     env: Mapping[str, str], uid: int, gid: int, cwd: str | None,
                     stdio: tuple[int, int, int]) -> Child:
        """Run ``command`` in the container on the three descriptors (the caller keeps
        and closes its own); returns it running."""
        sock = await self._started()
        self._next_id += 1
        rid = self._next_id
        request = {"id": rid, "lxcpath": str(lxcpath), "name": name, "command": list(command),
                   "env": dict(env), "uid": uid, "gid": gid, "cwd": cwd}
        await self._send(sock, json.dumps(request).encode(), stdio)
        # not cancelled half-way (as a worker thread's attach is not): once sent, the
        # command is started, and the caller must get it to kill it if it was cancelled
        with trio.CancelScope(shield=True):
            answer, fds = await self._take(sock, lambda: self._answers.pop(rid, None))
        if "error" in answer:
            for fd in fds:
                os.close(fd)
            raise DriverError(f"Cannot run the command in {name}: {answer['error']}",
                              instance=name)
        pid = int(answer["pid"])
        return Child(fds[0], lambda: self._take(sock, lambda: self._exits.pop(pid, None)))

    async def aclose(self) -> None:
        """Stop the helper (commands it started carry on)."""
        if self._sock is not None:
            self._lost(self._sock)
        await self._reap()

    # ------------------------------------------------------------------ internals
    async def _started(self) -> socket.socket:
        async with self._starting:
            if self._sock is None:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    self._proc = await start_helper(
                        [sys.executable, "-S", "-I", HELPER, str(theirs.fileno()),
                         _lxc_dir()],
                        pass_fds=[theirs.fileno()])
                except BaseException:
                    ours.close()
                    raise
                finally:
                    theirs.close()
                ours.setblocking(False)
                self._sock = ours
            return self._sock

    async def _send(self, sock: socket.socket, data: bytes, fds: Sequence[int]) -> None:
        while True:
            self._check(sock)
            try:
                socket.send_fds(sock, [data], list(fds))
                return
            except BlockingIOError:
                try:
                    await trio.lowlevel.wait_writable(sock)
                except trio.ClosedResourceError:
                    raise DriverError(GONE) from None
            except OSError as exc:  # EPIPE: it died between two requests
                self._lost(sock)
                raise DriverError(f"{GONE}: {exc}") from None

    async def _take(self, sock: socket.socket, take: Callable[[], T | None]) -> T:
        """What ``take`` finds filed, reading the helper's messages until it does."""
        while True:
            found = take()
            if found is not None:
                return found
            async with self._reading:
                found = take()
                if found is not None:
                    return found
                self._check(sock)
                try:
                    await trio.lowlevel.wait_readable(sock)
                except trio.ClosedResourceError:  # closed by another task meanwhile
                    raise DriverError(GONE) from None
                try:
                    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1,
                                                      socket.MSG_CMSG_CLOEXEC)
                except BlockingIOError:
                    continue
                if not data:
                    self._lost(sock)
                    await self._reap()
                    raise DriverError(GONE)
                message = json.loads(data)
                if "exited" in message:
                    self._exits[int(message["exited"])] = int(message["status"])
                else:
                    self._answers[int(message["id"])] = (message, fds)

    def _check(self, sock: socket.socket) -> None:
        if self._sock is not sock:  # a helper that died: its commands' exits are lost
            raise DriverError(GONE)

    def _lost(self, sock: socket.socket) -> None:
        if self._sock is sock:
            self._sock = None
        trio.lowlevel.notify_closing(sock)  # a task waiting on it wakes up
        sock.close()

    async def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with trio.move_on_after(2):
            await proc.wait()
            return
        proc.send_signal(signal.SIGKILL)
        with trio.CancelScope(shield=True):
            await proc.wait()
