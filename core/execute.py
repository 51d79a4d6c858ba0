"""The one subprocess helper: argv lists (never a shell), an outcome, one log line.

What reaches a client is redacted: a failed command's error names the tool (the base
name of ``argv[0]``) and its exit code and carries a short tail of its output, from
which secrets are masked (:func:`redact`). The whole argv goes to the daemon log only,
at debug level, redacted by the same function.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
import trio

from lxctl.errors import DriverError, Timeout

log = structlog.get_logger("lxctl.execute")

MASK = "***"
TAIL_LIMIT = 300  # characters of output that an error carries

SECRET_WORDS = ("password", "passwd", "passphrase", "token", "secret", "key")
# a word right before "=" (matched from the start of the word, possessively: linear
# time on any output); when it names a secret, the rest of its line goes, whatever it
# is ("password=a b" loses "a b"); any prefix counts (api_key=, lxc.secret=, --token=)
_ASSIGNMENT = re.compile(r"(?<![\w.-])([\w.-]++)\s*+=")
# an argument that takes the next one as its value: --password VALUE, --api-key VALUE
_FLAG = re.compile(r"--?[\w.-]+")
# credentials in a URL: scheme://user:password@host
_URL_CREDENTIALS = re.compile(r"(\w://)[^/\s@]++@")


def _names_secret(word: str) -> bool:
    word = word.lower()
    return any(s in word for s in SECRET_WORDS)


def _mask_assignments(line: str) -> str:
    for m in _ASSIGNMENT.finditer(line):
        if _names_secret(m.group(1)):
            return line[: m.end()] + MASK
    return line


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with secrets masked: each string of ``extra``, the value of every
    ``password=``/``token=``/``secret=``/``key=``-style assignment up to the end of its
    line, and the credentials of ``scheme://user:pass@host`` URLs."""
    for secret in sorted((s for s in extra if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = "\n".join(_mask_assignments(line) for line in text.split("\n"))
    return _URL_CREDENTIALS.sub(rf"\1{MASK}@", text)


def redact_argv(argv: Sequence[str], extra: Iterable[str] = ()) -> list[str]:
    """Each argument through :func:`redact`; the argument after a secret-naming flag
    (``--password VALUE``) is masked whole."""
    extra = tuple(extra)
    out: list[str] = []
    for i, arg in enumerate(argv):
        previous = argv[i - 1] if i else ""
        if _FLAG.fullmatch(previous) and _names_secret(previous) and not arg.startswith("-"):
            out.append(MASK)
        else:
            out.append(redact(arg, extra))
    return out


def tool_name(argv: Sequence[str]) -> str:
    return os.path.basename(argv[0]) if argv else "?"


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float
    mask: tuple[str, ...] = field(default=(), repr=False)  # extra strings to redact

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def tool(self) -> str:
        return tool_name(self.argv)

    def tail(self, limit: int = TAIL_LIMIT) -> str:
        """The end of stderr (stdout if stderr is empty), redacted, at most ``limit``
        characters: safe to put in an error that reaches a client."""
        text = redact((self.stderr or self.stdout).decode(errors="replace"), self.mask)
        text = text.strip()
        if len(text) > limit:
            text = "..." + text[-(limit - 3):].lstrip()
        return text


async def _kill_session(proc: trio.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    timeout: float = 60.0,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    redact: Sequence[str] = (),
    own_session: bool = False,
    stdin_fd: int | None = None,
    stdout_fd: int | None = None,
) -> Outcome:
    """Run ``argv``; return its outcome. ``check``: raise DriverError when it fails.

    ``redact``: strings to mask (beyond the secret-looking assignments that are always
    masked) in the log line and in the output tail of errors. ``own_session``: run it
    in a session of its own, whose every process is killed at the timeout (for
    administrators' scripts, which may leave children behind). ``stdin_fd`` /
    ``stdout_fd``: a file descriptor (a pipe's end) the command reads or writes
    instead (``stdin`` and the captured stdout are then unused); ``run`` owns it and
    closes it once the command is started, so that the pipe's other end sees EOF when
    the command ends.
    """
    args = tuple(str(a) for a in argv)
    extra = tuple(s for s in redact if s)
    tool = tool_name(args)
    t0 = time.monotonic()
    environ = None if env is None else {**os.environ, **env}
    try:
        with trio.fail_after(timeout):
            if stdin_fd is None and stdout_fd is None:
                proc = await trio.run_process(
                    args, stdin=stdin, capture_stdout=True, capture_stderr=True,
                    check=False, env=environ, cwd=cwd, start_new_session=own_session,
                    deliver_cancel=_kill_session if own_session else None,
                )
                returncode, out, err = proc.returncode, proc.stdout, proc.stderr
            else:
                returncode, out, err = await _run_on_fds(args, stdin_fd, stdout_fd,
                                                         environ, cwd)
    except trio.TooSlowError:
        log.debug("command", argv=redact_argv(args, extra), timeout=timeout, timed_out=True)
        log.warning("command timed out", tool=tool, timeout=timeout)
        raise Timeout(f"{tool} did not finish within {timeout:g} s", tool=tool,
                      timeout=timeout) from None
    except OSError as exc:
        log.debug("command", argv=redact_argv(args, extra), error=exc.strerror)
        raise DriverError(f"cannot run {tool}: {exc.strerror or exc}", tool=tool) from None
    outcome = Outcome(args, returncode, out, err, time.monotonic() - t0, extra)
    fields: dict[str, object] = {"rc": outcome.returncode,
                                 "ms": round(outcome.seconds * 1000, 1)}
    if not outcome.ok:
        fields["output"] = outcome.tail()
    log.debug("command", argv=redact_argv(args, extra), **fields)
    if check and not outcome.ok:
        tail = outcome.tail()
        raise DriverError(
            f"{tool} failed (exit {outcome.returncode})" + (f": {tail}" if tail else ""),
            tool=tool, returncode=outcome.returncode,
        )
    return outcome


async def _run_on_fds(args: tuple[str, ...], stdin_fd: int | None, stdout_fd: int | None,
                      env: Mapping[str, str] | None, cwd: str | os.PathLike[str] | None
                      ) -> tuple[int, bytes, bytes]:
    """:func:`run` with the command's stdin and/or stdout on the given descriptors
    (closed here once it started); killed if the caller is cancelled."""
    try:
        proc = await trio.lowlevel.open_process(
            args, stdin=subprocess.DEVNULL if stdin_fd is None else stdin_fd,
            stdout=subprocess.PIPE if stdout_fd is None else stdout_fd,
            stderr=subprocess.PIPE, env=env, cwd=cwd)
    finally:
        for fd in (stdin_fd, stdout_fd):
            if fd is not None:
                os.close(fd)
    chunks: dict[str, bytearray] = {"out": bytearray(), "err": bytearray()}

    async def drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        async with stream:
            while chunk := await stream.receive_some(1 << 16):
                into += chunk

    try:
        async with trio.open_nursery() as nursery:
            if proc.stdout is not None:
                nursery.start_soon(drain, proc.stdout, chunks["out"])
            if proc.stderr is not None:
                nursery.start_soon(drain, proc.stderr, chunks["err"])
        code = await proc.wait()
    except BaseException:
        proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()
        raise
    return code, bytes(chunks["out"]), bytes(chunks["err"])


async def start_helper(argv: Sequence[str | os.PathLike[str]], *,
                       pass_fds: Sequence[int]) -> trio.Process:
    """Start a helper process of the daemon's own that talks over descriptors it
    inherits (``pass_fds``, a socket's end) and ends when the daemon closes them, the
    daemon's exit included: stdin from /dev/null, its output the daemon's. The caller
    owns the process (``aclose`` it)."""
    args = tuple(str(a) for a in argv)
    try:
        proc = await trio.lowlevel.open_process(args, stdin=subprocess.DEVNULL,
                                                pass_fds=tuple(pass_fds))
    except OSError as exc:
        raise DriverError(f"cannot run {tool_name(args)}: {exc.strerror or exc}",
                          tool=tool_name(args)) from None
    log.debug("helper", argv=redact_argv(args), pid=proc.pid)
    return proc


async def spawn_service(argv: Sequence[str | os.PathLike[str]], *,
                        log_file: str | os.PathLike[str]) -> None:
    """Start a host service that outlives the daemon (LXCFS, a FUSE filesystem daemon):
    detached by ``setsid -f`` (its own session; init, not the daemon, is its parent),
    stdin from /dev/null, its output appended to ``log_file``. Returns once it is
    forked: the caller checks that it came up in its own terms (a mount, a socket)."""
    args = tuple(str(a) for a in argv)
    with open(log_file, "ab") as out:
        try:
            proc = await trio.run_process(("setsid", "-f", *args), stdin=subprocess.DEVNULL,
                                          stdout=out,
                                          stderr=out, check=False)
        except OSError as exc:
            raise DriverError(f"cannot run {tool_name(args)}: {exc.strerror or exc}",
                              tool=tool_name(args)) from None
    log.debug("service", argv=redact_argv(args), rc=proc.returncode)
    if proc.returncode != 0:
        raise DriverError(f"cannot start {tool_name(args)} (setsid exit {proc.returncode})",
                          tool=tool_name(args))
