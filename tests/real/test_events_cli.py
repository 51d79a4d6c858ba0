"""The client side of issue 9 on a real daemon: lxctl monitor with its filters and a
resume with --since, operation list --all-projects, warning list/show/ack/delete and
lxctl query."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from harness import LXCTL, Daemon, OutputLines, daemon_with_image, wait_for


def _monitor(d: Daemon, *args: str) -> OutputLines:
    before = d.requests("events.subscribe")
    mon = OutputLines(subprocess.Popen([LXCTL, "monitor", "--format", "json", *args],
                                       env=d.env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE))
    wait_for(lambda: d.requests("events.subscribe") > before)
    return mon


def test_monitor_filters_and_resumes_from_an_id(workdir: Path) -> None:
    with daemon_with_image(workdir / "monitor") as d:
        d.ok("project", "create", "lxt-p1")
        every = _monitor(d, "--all-projects", "--type", "lifecycle")
        p1 = _monitor(d, "--project", "lxt-p1", "--type", "lifecycle")
        one = _monitor(d, "--instance", "lxt-mon1", "--type", "lifecycle")
        try:
            d.ok("profile", "create", "lxt-prof", "--project", "lxt-p1")
            d.ok("launch", "bb", "lxt-mon1", "-q")
            d.ok("launch", "bb", "lxt-mon2", "-q")
            every.wait_for(lambda line: "lxt-mon2" in line and "instance-started" in line)
            one.wait_for(lambda line: "instance-started" in line)
        finally:
            seen = {name: [json.loads(x) for x in m.stop() if x.strip()]
                    for name, m in (("every", every), ("p1", p1), ("one", one))}
        assert [e["metadata"]["action"] for e in seen["p1"]] == ["profile-created"]
        assert {e["project"] for e in seen["every"]} == {"default", "lxt-p1"}
        assert {e["metadata"]["source"] for e in seen["one"]} == {"/1.0/instances/lxt-mon1"}
        # resume: everything after the first event the full monitor saw, once each
        first = seen["every"][0]["id"]
        resumed = _monitor(d, "--all-projects", "--type", "lifecycle", "--since", str(first))
        try:
            d.ok("stop", "lxt-mon1", "--force")
            resumed.wait_for(lambda line: "instance-stopped" in line)
        finally:
            again = [json.loads(x) for x in resumed.stop() if x.strip()]
        ids = [e["id"] for e in again]
        assert ids[:len(seen["every"]) - 1] == [e["id"] for e in seen["every"][1:]]
        assert len(ids) == len(set(ids)) and ids == sorted(ids)
        r = d.cli("monitor", "--since", "999999999")
        assert r.returncode == 1 and "was not published by this daemon" in r.stderr


def test_operation_warning_and_query_commands(workdir: Path) -> None:
    with daemon_with_image(workdir / "opswarn") as d:
        d.ok("project", "create", "lxt-p2")
        assert d.ok("operation", "list", "--all-projects", "--format", "csv") == ""
        listed = json.loads(d.ok("operation", "list", "--all-projects", "-f", "json"))
        assert listed == []
        version = json.loads(d.ok("query", "server.version"))
        assert version["server"] == "lxctl"
        images = json.loads(d.ok("query", "image.list", '{"project": "default"}'))
        assert [[a["name"] for a in i["aliases"]] for i in images] == [["bb"]]
        doc = json.loads(d.ok("query", "rpc.discover"))
        assert "warning.ack" in {m["name"] for m in doc["methods"]}
        r = d.cli("query", "server.infoo")
        assert r.returncode == 1 and "did you mean: server.info" in r.stderr
        r = d.cli("query", "server.info", "{not json")
        assert r.returncode == 1 and r.stderr.startswith("Error: params are not JSON")
        # a warning of the daemon's own: an autostart that fails (no such pool any more)
        gate = workdir / "opswarn-gate"
        gate.write_text("#!/bin/sh\nexit 7\n")
        gate.chmod(0o755)
        d.ok("init", "bb", "lxt-boot", "-c", "boot.autostart=true", "-c",
             f"raw.hooks.pre-start={gate}")
        d.terminate()
        d.start()

        def autostart_warning() -> dict[str, str] | None:
            for w in json.loads(d.ok("warning", "list", "--format", "json")):
                if w["type"] == "Instance autostart failure":
                    return dict(w)
            return None

        warning = wait_for(autostart_warning, timeout=20)
        assert "refused to start lxt-boot: exit 7" in warning["last_message"]
        shown = d.ok("warning", "show", warning["uuid"])
        assert "entity_name: lxt-boot" in shown
        d.ok("warning", "ack", warning["uuid"])
        assert d.ok("warning", "list", "--status", "new", "--format", "csv") == ""
        assert "ACKNOWLEDGED" in d.ok("warning", "list", "--format", "csv")
        d.ok("warning", "delete", warning["uuid"])
        assert d.ok("warning", "list", "--all", "--format", "csv") == ""
        r = d.cli("warning", "show", warning["uuid"])
        assert r.returncode == 1 and "not found" in r.stderr
        gate.unlink()
