"""LXCFS: the host service that makes ``/proc/meminfo``, ``/proc/cpuinfo`` and their
siblings inside a container follow its cgroup limits (``free``, ``top``, ``uptime``).

It runs once per host at ``/var/lib/lxcfs``, where every LXC user (Incus, lxc-start)
looks for it. The driver reuses a running one, or starts it before the first container
start when the ``lxcfs`` binary is installed, and leaves it running as the host service
it is: containers that run keep their bind mounts into it. A dead one (its mount gives
ENOTCONN) is unmounted and started again. Its files reach a container through plain
``lxc.mount.entry`` binds, rendered in the config; Debian's mount hook (a shell script
forked on every start) is cleared.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import structlog
import trio

from lxctl.public import run, spawn_service

log = structlog.get_logger("lxctl.lxc.lxcfs")

MOUNTPOINT = Path("/var/lib/lxcfs")
# the files LXCFS serves that a container's /proc and /sys carry too
PROC_FILES = ("cpuinfo", "diskstats", "loadavg", "meminfo", "slabinfo", "stat", "swaps",
              "uptime")
SYS_CPU = "sys/devices/system/cpu"
START_TIMEOUT = 10.0


def _alive(mountpoint: Path) -> bool | None:
    """True if LXCFS serves ``mountpoint``, False if it is mounted but dead (ENOTCONN),
    None if nothing is mounted there."""
    try:
        return (mountpoint / "proc" / "meminfo").is_file() or None
    except OSError as e:
        return False if e.errno == errno.ENOTCONN else None


def mount_entries(mountpoint: Path) -> list[str]:
    """The config lines that bind its files over the container's own (``optional``: a
    file this LXCFS does not serve is skipped, and the container starts)."""
    lines = ["lxc.hook.mount ="]  # Debian's hook would fork a shell to do the same
    lines += [f"lxc.mount.entry = {mountpoint}/proc/{name} proc/{name} none "
              f"bind,optional 0 0" for name in PROC_FILES]
    lines.append(f"lxc.mount.entry = {mountpoint}/{SYS_CPU} {SYS_CPU} none bind,optional 0 0")
    return lines


class Lxcfs:
    """The host's LXCFS as this driver sees it: where it is mounted, or why it is not."""

    def __init__(self, log_file: Path, mountpoint: Path = MOUNTPOINT) -> None:
        self.mountpoint = mountpoint
        self.log_file = log_file
        self.reason: str | None = None
        self._lock = trio.Lock()

    def status(self) -> dict[str, object]:
        """For ``server.info``'s environment."""
        running = _alive(self.mountpoint) is True
        return {"lxcfs": running, **({"lxcfs_reason": self.reason}
                                     if not running and self.reason else {})}

    async def ensure(self) -> Path | None:
        """The mountpoint, with LXCFS serving it (started if need be), or None if this
        host cannot have it (the reason is logged once and kept for ``status()``)."""
        state = _alive(self.mountpoint)
        if state:
            return self.mountpoint
        async with self._lock:
            state = _alive(self.mountpoint)
            if state:
                return self.mountpoint
            binary = shutil.which("lxcfs")
            if binary is None:
                if self.reason is None:
                    log.warning("lxcfs_missing", hint="install Debian's lxcfs package so "
                                "free and top inside containers show their limits")
                self.reason = "the lxcfs binary is not installed"
                return None
            if state is False:  # a dead LXCFS left its mount behind
                await run(["umount", "-l", str(self.mountpoint)], check=False)
            os.makedirs(self.mountpoint, exist_ok=True)
            await spawn_service([binary, "-f", str(self.mountpoint)], log_file=self.log_file)
            with trio.move_on_after(START_TIMEOUT):
                while not _alive(self.mountpoint):
                    await trio.sleep(0.02)
            if not _alive(self.mountpoint):
                self.reason = f"lxcfs did not mount {self.mountpoint} (see {self.log_file})"
                log.warning("lxcfs_failed", reason=self.reason)
                return None
            log.info("lxcfs_started", mountpoint=str(self.mountpoint))
            self.reason = None
            return self.mountpoint
