"""``config edit``-style commands: YAML in ``$EDITOR`` (or from standard input when it
is not a terminal). Invalid YAML or a change the daemon refuses brings the editor back
with the error at the top, as Incus does; quitting without saving changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import yaml

from lxctl.cli.connection import RpcError

HELP = ("### This is a YAML representation of the {what}.\n"
        "### Any line starting with a '#' will be ignored.\n")


def edit_yaml(what: str, current: dict[str, Any], apply: Callable[[dict[str, Any]], None]
              ) -> int:
    if not sys.stdin.isatty():  # `lxctl config edit c1 < file.yaml`
        apply(_load(sys.stdin.read()))
        return 0
    text = HELP.format(what=what) + yaml.safe_dump(current, sort_keys=False)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    while True:
        with tempfile.NamedTemporaryFile("w+", suffix=".yaml", prefix="lxctl-") as f:
            f.write(text)
            f.flush()
            subprocess.run([*editor.split(), f.name], check=True)
            f.seek(0)
            edited = f.read()
        if edited == text:
            return 0  # nothing changed
        try:
            apply(_load(edited))
            return 0
        except (ValueError, RpcError) as exc:
            message = exc.message if isinstance(exc, RpcError) else str(exc)
            sys.stderr.write(f"Config parsing error: {message}\n")
            body = "\n".join(line for line in edited.splitlines()
                             if not line.startswith("#"))
            text = f"# Error: {message}\n" + HELP.format(what=what) + body + "\n"


def _load(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ValueError("the YAML must be a mapping")
    return data
