"""Running commands in a container: pipes (python-lxc ``attach``) or a new pty.

Non-interactive: liblxc's attach with three pipes, run by the attach helper
(``attacher``) for commands, or by the daemon itself (a Python function for file
access; the process is then our child, liblxc uses CLONE_PARENT). Either way it is a
:class:`Child`: a pidfd to signal it and a way to wait for its status. Output is
drained as it comes (no 64 KiB pipe deadlock).

Interactive: the daemon allocates a *new* pty and runs ``lxc-attach`` on its slave;
lxc-attach then allocates a pty inside the container. The caller's terminal never
reaches the container, so TIOCSTI cannot inject into it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import termios
import tty
from collections.abc import Awaitable, Callable

import trio

from lxctl.public import (
    DriverError,
    ExecOutput,
    ExecRequest,
    StreamData,
    StreamEOF,
    StreamInput,
    StreamResize,
    StreamSignal,
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READ = 65536
CONSOLE_DETACH = b"\x01q"  # lxc-console's escape (ctrl+a), then q
DRAIN_AFTER_EXIT = 2.0  # seconds to keep reading output a background child holds open
KILL_WAIT = 10.0  # seconds to wait for a process killed because its caller went away


def environment(request: ExecRequest) -> dict[str, str]:
    """Incus's defaults, then the caller's variables."""
    home = "/root" if request.user == 0 else "/"
    env = {"PATH": DEFAULT_PATH, "HOME": home, "LANG": "C.UTF-8"}
    if request.user == 0:
        env["USER"] = "root"
    if request.interactive:
        env["TERM"] = "xterm"
    env.update(request.environment)
    return env


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _set_winsize(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def _pump_output(fd: int, number: int, output: ExecOutput) -> None:
    stream = trio.lowlevel.FdStream(fd)
    async with stream:
        while True:
            try:
                data = await stream.receive_some(READ)
            except (trio.BrokenResourceError, OSError):  # EIO on a pty whose slave closed
                return
            if not data:
                return
            await output(number, data)


async def _pump_input(
    stdin: trio.MemoryReceiveChannel[StreamInput], write_fd: int | None,
    on_control: Callable[[StreamInput], None], eof_data: bytes | None = None,
    hangup_data: bytes | None = None,
) -> None:
    """Feed input to ``write_fd``; end-of-file closes it (or writes ``eof_data``); the
    input's end without one (the client left) writes ``hangup_data`` if given."""
    stream = trio.lowlevel.FdStream(write_fd) if write_fd is not None else None
    try:
        async for item in stdin:
            if isinstance(item, StreamData):
                if stream is not None:
                    try:
                        await stream.send_all(item.data)
                    except (trio.BrokenResourceError, OSError):
                        stream = None  # the command closed its stdin
            elif isinstance(item, StreamEOF):
                if stream is not None and eof_data is not None:
                    await stream.send_all(eof_data)
                elif stream is not None:
                    await stream.aclose()
                    stream = None
            else:
                on_control(item)
        if stream is not None and hangup_data is not None:  # the client has gone
            with contextlib.suppress(trio.BrokenResourceError, OSError):
                await stream.send_all(hangup_data)
    except (trio.ClosedResourceError, trio.EndOfChannel):
        pass
    finally:
        if stream is not None:
            await stream.aclose()


class Child:
    """An attached process: ``pidfd`` (owned: :func:`run_piped` closes it) to signal it,
    ``reap()`` to wait for its wait status (awaited once; ``wait`` keeps the status)."""

    def __init__(self, pidfd: int, reap: Callable[[], Awaitable[int]]) -> None:
        self.pidfd = pidfd
        self._reap = reap
        self._status: int | None = None

    async def wait(self) -> int:
        if self._status is None:
            self._status = await self._reap()
        return self._status

    def signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # it has ended
            signal.pidfd_send_signal(self.pidfd, number)


def in_thread(attach: Callable[[int, int, int], int], limiter: trio.CapacityLimiter
              ) -> Callable[[int, int, int], Awaitable[Child]]:
    """``attach(stdin_fd, stdout_fd, stderr_fd) -> pid`` run in a worker thread of the
    daemon: the process is the daemon's child."""
    async def spawn(stdin_fd: int, stdout_fd: int, stderr_fd: int) -> Child:
        pid = await trio.to_thread.run_sync(attach, stdin_fd, stdout_fd, stderr_fd,
                                            limiter=limiter)
        if pid <= 0:
            raise DriverError(f"Failed to attach to the container (error {pid})")
        pidfd = os.pidfd_open(pid)

        async def reap() -> int:
            await trio.lowlevel.wait_readable(pidfd)
            return os.waitpid(pid, 0)[1]

        return Child(pidfd, reap)

    return spawn


async def run_piped(
    spawn: Callable[[int, int, int], Awaitable[Child]], request: ExecRequest,
    stdin: trio.MemoryReceiveChannel[StreamInput], output: ExecOutput,
) -> int:
    """``spawn(stdin_fd, stdout_fd, stderr_fd)`` starts the process on the pipes' ends
    (closed here once it has); its input and output are relayed until it ends."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        child = await spawn(in_r, out_w, err_w)
    except BaseException:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)

    def control(item: StreamInput) -> None:
        if isinstance(item, StreamSignal):
            child.signal(item.signal)

    lost: DriverError | None = None  # raised as itself, not in a nursery's group
    status = 0
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump_input, stdin, in_w, control)
            async with trio.open_nursery() as readers:
                readers.start_soon(_pump_output, out_r, 1, output)
                readers.start_soon(_pump_output, err_r, 2, output)
                try:
                    status = await child.wait()
                except DriverError as exc:  # its status cannot be known: it is killed
                    lost = exc
                    child.signal(signal.SIGKILL)
                    readers.cancel_scope.cancel()
                else:
                    readers.cancel_scope.deadline = trio.current_time() + DRAIN_AFTER_EXIT
            nursery.cancel_scope.cancel()
    except BaseException:
        with trio.CancelScope(shield=True), trio.move_on_after(KILL_WAIT):
            child.signal(signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, DriverError):
                await child.wait()
        raise
    finally:
        os.close(child.pidfd)
    if lost is not None:
        raise lost
    return exit_code(status)


async def run_pty(
    argv: list[str], request: ExecRequest, stdin: trio.MemoryReceiveChannel[StreamInput],
    output: ExecOutput, eof_data: bytes = b"\x04", hangup_data: bytes | None = None,
) -> int:
    """Run ``argv`` (an ``lxc-attach`` or ``lxc-console`` command line) on a new pty's
    slave; an EOF item writes ``eof_data`` (ctrl+d; ``lxc-console``: its detach keys),
    the end of the input (the client left) ``hangup_data``."""
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        _set_winsize(slave, request.width, request.height)
        process = await trio.lowlevel.open_process(
            ["setsid", "--ctty", *argv], stdin=slave, stdout=slave, stderr=slave,
            close_fds=True)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)

    def control(item: StreamInput) -> None:
        if isinstance(item, StreamResize):
            _set_winsize(master, item.width, item.height)
        elif isinstance(item, StreamSignal):
            try:
                os.killpg(process.pid, item.signal)
            except ProcessLookupError:
                pass

    master_in = os.dup(master)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump_input, stdin, master_in, control, eof_data,
                               hangup_data)
            async with trio.open_nursery() as readers:
                readers.start_soon(_pump_output, master, 1, output)
                code = await process.wait()
                readers.cancel_scope.deadline = trio.current_time() + DRAIN_AFTER_EXIT
            nursery.cancel_scope.cancel()
    except BaseException:
        with trio.CancelScope(shield=True):
            process.kill()
            await process.wait()
        raise
    return 128 - code if code < 0 else code
