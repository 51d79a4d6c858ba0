"""The one subprocess helper: argv lists (never a shell), an outcome, one log line."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
import trio

from lxctl.errors import DriverError, Timeout

log = structlog.get_logger("lxctl.execute")


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, limit: int = 400) -> str:
        text = (self.stderr or self.stdout).decode(errors="replace").strip()
        return text[-limit:]


async def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    timeout: float = 60.0,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Outcome:
    """Run ``argv``; return its outcome. ``check``: raise DriverError when it fails."""
    args = tuple(str(a) for a in argv)
    t0 = time.monotonic()
    try:
        with trio.fail_after(timeout):
            proc = await trio.run_process(
                args, stdin=stdin, capture_stdout=True, capture_stderr=True, check=False,
                env=None if env is None else {**os.environ, **env}, cwd=cwd,
            )
    except trio.TooSlowError:
        log.warning("command timed out", argv=args[:6], timeout=timeout)
        raise Timeout(f"{args[0]} did not finish within {timeout:g} s", argv=list(args)) from None
    except OSError as exc:
        raise DriverError(f"cannot run {args[0]}: {exc.strerror}", argv=list(args)) from None
    outcome = Outcome(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)
    log.debug("command", argv=args[:6], rc=outcome.returncode,
              ms=round(outcome.seconds * 1000, 1))
    if check and not outcome.ok:
        raise DriverError(
            f"{args[0]} failed (exit {outcome.returncode}): {outcome.tail()}",
            argv=list(args), returncode=outcome.returncode,
        )
    return outcome
