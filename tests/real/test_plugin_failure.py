"""A third-party plugin that fails to load is reported (server.info and a warning) and
the daemon starts without it, its other plugins loaded."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness import Daemon


def _broken_plugin(site: Path) -> None:
    """An installed distribution whose entry point raises at import."""
    dist = site / "lxt_broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lxt-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lxctl.plugins]\nlxt-broken = lxt_broken_plugin\n")
    (site / "lxt_broken_plugin.py").write_text(
        "raise RuntimeError('this plugin cannot load here')\n")


def test_a_plugin_that_fails_to_load_is_reported_and_left_out(workdir: Path) -> None:
    site = workdir / "broken-site"
    _broken_plugin(site)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    d = Daemon(workdir / "broken-plugin", env={"PYTHONPATH": path})
    try:
        d.start()
        info = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info"})["result"]
        assert info["plugins_failed"] == {
            "lxt-broken": "RuntimeError: this plugin cannot load here"}
        assert {"storage-dir", "hypervisor-lxc", "auth-peer"} <= {
            p["name"] for p in info["plugins"]}
        (warning,) = [w for w in json.loads(d.ok("warning", "list", "--format", "json"))
                      if w["type"] == "Plugin load failure"]
        assert (warning["entity_type"], warning["entity_name"]) == ("plugin", "lxt-broken")
        assert "left out: RuntimeError" in warning["last_message"]
        d.ok("image", "build", "busybox", "--alias", "bb")
        d.ok("launch", "bb", "lxt-despite")
        assert d.ok("exec", "lxt-despite", "--", "echo", "up") == "up\n"
    finally:
        d.cleanup()
