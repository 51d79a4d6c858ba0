"""Reading and cleaning the cgroups of containers (cgroup v1 hybrid or v2)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """Every mounted hierarchy once (v1 controllers, ``unified``, or the v2 root)."""
    if (ROOT / "cgroup.controllers").exists():
        return [ROOT]
    seen: dict[str, Path] = {}
    try:
        entries = sorted(ROOT.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            seen.setdefault(os.path.realpath(entry), entry)
    return list(seen.values())


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


def remove(relative: str) -> None:
    """rmdir ``relative`` in every hierarchy, deepest first; busy or absent is fine."""
    for h in hierarchies():
        target = h / relative
        if not target.is_dir():
            continue
        for dirpath, _dirnames, _files in sorted(os.walk(target), key=lambda t: -len(t[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def exists(relative: str) -> bool:
    return any((h / relative).exists() for h in hierarchies())
