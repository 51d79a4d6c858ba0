"""Hooks on a real daemon and real containers (issue 9, acceptance 1): a script in
hooks.d/instance-started/ gets the event JSON for each start; one that sleeps forever
(and leaves a child behind) is killed at hooks.timeout with all its session, raised
as a counted warning, while the daemon goes on answering; raw.hooks.pre-start vetoes
a start."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from harness import Daemon, wait_for

MARKER = "sleep 94242.25"  # a hung hook's processes, found by their command line


def _script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _sleepers() -> list[str]:
    r = subprocess.run(["pgrep", "-f", MARKER], capture_output=True, text=True)
    return r.stdout.split()


def test_hooks_get_each_start_and_a_hung_one_is_killed_at_its_timeout(
        workdir: Path) -> None:
    d = Daemon(workdir / "hooks")
    seen = workdir / "hooks-seen"
    seen.mkdir()
    try:
        d.dir.mkdir(parents=True)
        (d.dir / "lxctld.toml").write_text("[hooks]\ntimeout = 2.0\n")
        started = d.dir / "hooks.d" / "instance-started"
        _script(started / "10-record",
                f'cat > {seen}/"$LXCTL_EVENT_ID.json"\n'
                f'echo "$LXCTL_EVENT_ACTION $LXCTL_INSTANCE $LXCTL_EVENT_PROJECT" '
                f'> {seen}/"$LXCTL_EVENT_ID.env"\n')
        # sleeps forever, with a child of its own: the whole session must go at 2 s
        _script(started / "20-hang", f"sh -c '{MARKER}' &\n{MARKER}\n")
        _script(started / ".hidden", "exit 1\n")
        d.start()
        d.ok("image", "build", "busybox", "--alias", "bb")
        d.ok("launch", "bb", "lxt-hooked", "-q")
        d.ok("stop", "lxt-hooked", "--force")
        d.ok("start", "lxt-hooked")
        assert _sleepers()  # both hung hooks are running now ...
        assert "lxt-hooked" in d.ok("list", "--format", "csv", "-c", "n")  # ... unhindered
        wait_for(lambda: len(list(seen.glob("*.json"))) == 2, timeout=10)
        events = [json.loads(p.read_text()) for p in sorted(seen.glob("*.json"))]
        for event in events:
            assert event["type"] == "lifecycle"
            assert event["metadata"]["action"] == "instance-started"
            assert event["metadata"]["source"] == "/1.0/instances/lxt-hooked"
            assert event["metadata"]["requestor"]["username"] == "root"
        assert {p.read_text() for p in seen.glob("*.env")} == {
            "instance-started lxt-hooked default\n"}

        def hook_warning() -> dict[str, object] | None:
            for w in json.loads(d.ok("warning", "list", "--format", "json")):
                if w["type"] == "Hook failure" and w["count"] == 2:
                    return dict(w)
            return None

        warning = wait_for(hook_warning, timeout=15)
        assert warning["entity_name"] == "instance-started/20-hang"
        assert "did not finish within 2 s" in str(warning["last_message"])
        wait_for(lambda: not _sleepers(), timeout=5)  # the child went with it
        info = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info"})["result"]
        assert info["hooks"]["runs"] == {"done": 2, "failed": 0, "timed_out": 2,
                                         "dropped": 0}
        assert d.ok("exec", "lxt-hooked", "--", "echo", "fine") == "fine\n"
    finally:
        for pid in _sleepers():
            subprocess.run(["kill", "-9", pid], capture_output=True)
        if d.proc is not None and d.proc.poll() is not None:  # it died: stop its container
            subprocess.run(["lxc-stop", "-k", "-P", str(d.dir / "containers"), "-n",
                            "lxt-hooked"], capture_output=True, timeout=30)
        d.cleanup()


def test_a_pre_start_hook_vetoes_the_start(workdir: Path) -> None:
    d = Daemon(workdir / "veto")
    gate = workdir / "veto-gate"
    try:
        d.start()
        d.ok("image", "build", "busybox", "--alias", "bb")
        _script(gate, 'read -r line; echo "$line" > "$0.stdin"\n'
                      'test -e "$0.open" || { echo "closed for $LXCTL_INSTANCE" >&2; exit 3; }\n')
        d.ok("init", "bb", "lxt-vetoed", "-c", f"raw.hooks.pre-start={gate}")
        r = d.cli("start", "lxt-vetoed")
        assert r.returncode == 1
        assert f"pre-start hook {gate} refused to start lxt-vetoed: exit 3: " \
               "closed for lxt-vetoed" in r.stderr
        assert d.states()["lxt-vetoed"] == "STOPPED"
        assert json.loads(Path(f"{gate}.stdin").read_text())["stage"] == "pre-start"
        Path(f"{gate}.open").touch()
        d.ok("start", "lxt-vetoed")
        assert d.states()["lxt-vetoed"] == "RUNNING"
        r = d.cli("config", "set", "lxt-vetoed", "raw.hooks.post-stop=relative")
        assert r.returncode == 1 and "absolute path" in r.stderr
    finally:
        d.cleanup()
        for p in (gate, Path(f"{gate}.stdin"), Path(f"{gate}.open")):
            p.unlink(missing_ok=True)
