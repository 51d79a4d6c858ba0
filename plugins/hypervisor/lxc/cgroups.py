"""Reading and cleaning the cgroups of containers (cgroup v1 hybrid or v2)."""

from __future__ import annotations

import os
from pathlib import Path

from lxctl.public import DriverError

ROOT = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """Every mounted hierarchy once (v1 controllers, ``unified``, or the v2 root): the
    directories of ``/sys/fs/cgroup``, not the symlinks that name co-mounted ones."""
    if (ROOT / "cgroup.controllers").exists():
        return [ROOT]
    try:
        with os.scandir(ROOT) as entries:  # no stat per entry, nor realpath (~0.4 ms)
            names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []
    return [ROOT / name for name in names]


def controller(name: str) -> Path:
    """The hierarchy that holds ``name`` (memory, pids, cpuacct) or the v2 root."""
    if (ROOT / "cgroup.controllers").exists():
        return ROOT
    return ROOT / name


def read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def frozen(relative: str) -> bool | None:
    """Whether the cgroup's tasks are frozen (v1 freezer or v2 cgroup.events); None
    when neither can be read."""
    try:
        return (ROOT / "freezer" / relative / "freezer.state").read_text().strip() != "THAWED"
    except OSError:
        pass
    for base in (ROOT, ROOT / "unified"):
        try:
            events = (base / relative / "cgroup.events").read_text()
        except OSError:
            continue
        return "frozen 1" in events
    return None


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat): with the
    pid, it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def remove(*relatives: str) -> None:
    """rmdir each of ``relatives`` in every hierarchy, deepest first; busy or absent is
    fine."""
    for h in hierarchies():
        for relative in relatives:
            target = h / relative
            if not target.is_dir():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(target), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


def exists(relative: str) -> bool:
    return any((h / relative).exists() for h in hierarchies())


def write_settings(relative: str, settings: dict[str, str]) -> None:
    """Write ``controller.file -> value`` into a cgroup. The memory limit and the
    memory+swap limit are written in whichever order the kernel accepts (memsw may
    never be below the memory limit)."""
    def write(key: str, value: str) -> None:
        path = controller(key.split(".", 1)[0]) / relative / key
        if path.exists():
            path.write_text(value)

    pair = [k for k in ("memory.memsw.limit_in_bytes", "memory.limit_in_bytes")
            if k in settings]
    try:
        for key, value in settings.items():
            if key not in pair:
                write(key, value)
        try:
            for key in pair:
                write(key, settings[key])
        except OSError:
            for key in reversed(pair):
                write(key, settings[key])
    except OSError as exc:
        raise DriverError(f"Cannot apply the limits to {relative}: {exc.strerror}") from None
