"""The LXC plugin lets liblxc write id maps itself: lxc-start's PATH (pure, tmp dirs)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lxctl_plugins.hypervisor.lxc import idmaps


def fake_tool(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / name
    tool.write_text(f'#!/bin/sh\necho {name} "$@"\n')
    tool.chmod(0o755)
    return tool


def test_plain_scripts_first_on_path_that_run_the_real_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    bin_dir = tmp_path / "bin"
    for name in idmaps.TOOLS:
        fake_tool(bin_dir, name)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    env = idmaps.start_environment(tmp_path / "lxc-tools")
    assert env == {"PATH": f"{tmp_path / 'lxc-tools'}:{bin_dir}:/usr/bin:/bin"}
    for name in idmaps.TOOLS:
        script = tmp_path / "lxc-tools" / name
        mode = script.stat().st_mode
        assert mode & 0o111 and not mode & 0o6000  # runnable, neither setuid nor setgid
        out = subprocess.run([str(script), "42", "0", "1000000", "65536"], check=True,
                             capture_output=True, text=True, timeout=10).stdout
        assert out == f"{name} 42 0 1000000 65536\n"  # what the real tool was given
    # a second daemon start rewrites them in place
    assert idmaps.start_environment(tmp_path / "lxc-tools") == env


def test_no_shadow_tools_no_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "newuidmap")  # newgidmap missing: liblxc writes the maps already
    monkeypatch.setenv("PATH", str(bin_dir))
    assert idmaps.start_environment(tmp_path / "lxc-tools") == {}
    assert not (tmp_path / "lxc-tools").exists()
    assert os.environ["PATH"] == str(bin_dir)
