"""``lxctl rebuild`` on a real container: a fresh root from the image, while its config
keys and devices stay; refused while it runs."""

from __future__ import annotations

import json

from harness import Daemon


def test_rebuild_gives_a_fresh_root_and_keeps_the_rest(daemon: Daemon) -> None:
    d = daemon
    name = "lxt-rebuild"
    d.ok("init", "bb", name, "-q", "-c", "user.kept=yes")
    with d.deleted_afterwards(name):
        d.ok("config", "device", "add", name, "etc", "disk", "source=/etc",
             "path=/mnt/etc", "readonly=true")
        d.ok("start", name)
        d.ok("exec", name, "--", "sh", "-c", "echo old > /root/marker")
        assert d.ok("exec", name, "--", "cat", "/root/marker") == "old\n"
        r = d.cli("rebuild", "bb", name)
        assert r.returncode == 1 and "must be stopped to be rebuilt" in r.stderr
        d.ok("stop", name, "--force")
        d.ok("rebuild", "bb", name)
        d.ok("start", name)
        r = d.cli("exec", name, "--", "cat", "/root/marker")
        assert r.returncode != 0  # the old root, and the file in it, are gone
        assert d.ok("exec", name, "--", "test", "-d", "/mnt/etc") == ""  # the device stays
        assert d.ok("config", "get", name, "user.kept") == "yes\n"
        shown = json.loads(d.ok("list", name, "--format", "json"))[0]
        assert shown["devices"]["etc"]["source"] == "/etc"
        assert shown["config"]["volatile.base_image"]
        d.ok("stop", name, "--force")
        r = d.cli("rebuild", name)
        assert r.returncode == 1 and "IMAGE NAME" in r.stderr
        d.ok("rebuild", name, "--empty")
        shown = json.loads(d.ok("list", name, "--format", "json"))[0]
        assert "volatile.base_image" not in shown["config"]
        assert not [k for k in shown["config"] if k.startswith("image.")]
        assert shown["config"]["user.kept"] == "yes"
        # --force stops a running one first
        d.ok("rebuild", "bb", name)
        d.ok("start", name)
        d.ok("exec", name, "--", "sh", "-c", "echo again > /root/marker")
        d.ok("rebuild", "bb", name, "--force")
        assert d.states()[name] == "STOPPED"
        d.ok("start", name)
        assert d.cli("exec", name, "--", "cat", "/root/marker").returncode != 0
