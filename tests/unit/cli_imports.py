"""What a client command imports: run in a fresh interpreter (``-S``, as the client's
launcher does) against a state dir with no daemon, so it stops at the connection."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
import tempfile

HEAVY = ("argparse", "typing", "re", "json", "csv", "datetime", "socket", "lxctl.cli.args",
         "lxctl.cli.output", "lxctl.cli.commands.instances")
"""Modules a lean command path does without (argparse, re and typing cost ~25 ms)."""


def heavy_imports(argv: list[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The modules of ``heavy`` that ``lxctl ARGV`` imported; it must have failed at
    the connection (no daemon), not before."""
    probe = (
        "import sys\n"
        f"sys.path.append({sysconfig.get_paths()['purelib']!r})\n"
        "from lxctl.cli.main import run\n"
        f"run({argv!r})\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    with tempfile.TemporaryDirectory(prefix="lxt-imports-") as tmp:
        r = subprocess.run([sys.executable, "-S", "-c", probe],
                           env={**os.environ, "LXCTL_DIR": tmp}, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=30, check=False)
    assert "cannot connect to lxctld" in r.stderr, r.stdout + r.stderr
    imported: list[str] = ast.literal_eval(r.stdout.splitlines()[-1])
    return imported
