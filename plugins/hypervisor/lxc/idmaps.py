"""How liblxc writes an unprivileged container's id maps: itself, as root may, rather
than through shadow's setuid ``newuidmap``/``newgidmap`` (a ``sh -c`` fork and a setuid
exec for each map, twice per start: ~14 ms of a ~39 ms ``lxc-start`` here).

liblxc (``lxc_map_ids``) runs the shadow tools when the first ``newuidmap`` and
``newgidmap`` on its ``PATH`` are setuid (or carry the file capability); otherwise, run
by root, it writes ``/proc/PID/uid_map`` and ``gid_map`` itself (and logs a warning
that the tools lack privileges). ``lxc-start`` runs with a ``PATH`` whose first
directory holds plain, not setuid, ``newuidmap`` and ``newgidmap`` scripts that exec the
real ones: liblxc writes the maps itself, and a liblxc that ran the tools anyway would
get what the real ones do. Everything else on ``PATH`` (hooks' tools) is unchanged.

The maps are the same either way: the daemon takes them from root's ranges in
``/etc/subuid`` and ``/etc/subgid`` (:mod:`lxctl.objects.idmap`), which is what
``newuidmap`` checks.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

TOOLS = ("newuidmap", "newgidmap")


def start_environment(directory: Path) -> dict[str, str]:
    """The environment ``lxc-start`` runs with ({}: the daemon's own, when a shadow
    tool is missing and liblxc writes the maps itself already). Writes the two
    scripts into ``directory``."""
    path = os.environ.get("PATH", os.defpath)
    real = {tool: shutil.which(tool, path=path) for tool in TOOLS}
    if not all(real.values()):
        return {}
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    for tool, target in real.items():
        script = directory / tool
        tmp = script.with_suffix(".tmp")
        tmp.write_text(f'#!/bin/sh\nexec {shlex.quote(str(target))} "$@"\n')
        tmp.chmod(0o755)
        tmp.replace(script)
    return {"PATH": f"{directory}{os.pathsep}{path}"}
