"""Profiles through the CLI on a real daemon and a real container: a profile's key and
host-dir disk reach the instance launched with it; ``profile edit`` refuses a bad key
and changes nothing."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import LXCTL, Daemon, cgroup_prefix

EDITED = """\
description: edited
config:
  limits.processes: 60
devices:
  data:
    type: disk
    source: {source}
    path: /mnt/data
    readonly: true
"""


def _rpc(d: Daemon, method: str, **params: object) -> dict[str, object]:
    reply = d.rpc({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    assert "result" in reply, reply
    result: dict[str, object] = reply["result"]
    return result


def _pids_max(d: Daemon, name: str) -> str:
    path = Path("/sys/fs/cgroup/pids") / cgroup_prefix(d.dir) / name / "pids.max"
    return path.read_text().strip()


@contextmanager
def _profiles_deleted_afterwards(d: Daemon, *names: str) -> Iterator[None]:
    try:
        yield
    finally:
        for name in names:
            d.cli("profile", "delete", name)


def test_a_profile_key_and_disk_reach_the_container(daemon: Daemon, workdir: Path) -> None:
    d = daemon
    data = workdir / "lxt-profile-data"
    data.mkdir(exist_ok=True)
    data.chmod(0o755)
    (data / "hello").write_text("from the host\n")
    (data / "hello").chmod(0o644)
    with _profiles_deleted_afterwards(d, "lxt-prof", "lxt-prof2"):
        assert d.ok("profile", "create", "lxt-prof", "--description", "lxt test") == \
            "Profile lxt-prof created\n"
        d.ok("profile", "set", "lxt-prof", "limits.processes=50")
        assert d.ok("profile", "get", "lxt-prof", "limits.processes") == "50\n"
        d.ok("profile", "device", "add", "lxt-prof", "data", "disk", f"source={data}",
             "path=/mnt/data", "readonly=true")
        assert d.ok("profile", "device", "list", "lxt-prof") == "data\n"
        assert d.ok("profile", "device", "get", "lxt-prof", "data", "path") == "/mnt/data\n"
        with d.deleted_afterwards("lxt-profiled"):
            d.ok("launch", "bb", "lxt-profiled", "-q", "-p", "default", "-p", "lxt-prof")
            inst = _rpc(d, "instance.get", name="lxt-profiled")
            assert inst["profiles"] == ["default", "lxt-prof"]
            config = inst["expanded_config"]
            assert isinstance(config, dict) and config["limits.processes"] == "50"
            assert _pids_max(d, "lxt-profiled") == "50"  # the profile's key, at start
            assert d.ok("exec", "lxt-profiled", "--", "cat", "/mnt/data/hello") == \
                "from the host\n"
            r = d.cli("exec", "lxt-profiled", "--", "touch", "/mnt/data/nope")
            assert r.returncode != 0  # readonly
            assert not (data / "nope").exists()

            rows = d.ok("profile", "list", "--format", "csv").splitlines()
            assert "lxt-prof,lxt test,1" in rows
            rows = d.ok("profile", "list", "--all-projects", "-f", "csv").splitlines()
            assert "default,lxt-prof,lxt test,1" in rows
            listed = json.loads(d.ok("profile", "list", "--format", "json"))
            assert {p["name"] for p in listed} >= {"default", "lxt-prof"}

            r = d.cli("profile", "delete", "lxt-prof")
            assert r.returncode == 1
            assert r.stderr.strip() == ("Error: Profile 'lxt-prof' is currently in use by "
                                        "instance(s) lxt-profiled")

            # edit from stdin: a bad key is refused, naming it, and nothing changes
            before = d.ok("profile", "show", "lxt-prof")
            bad = EDITED.format(source=data).replace("config:\n",
                                                     "config:\n  bogus.key: '1'\n")
            r = d.cli("profile", "edit", "lxt-prof", input=bad)
            assert r.returncode == 1
            assert r.stderr.strip() == "Error: Unknown configuration key: bogus.key"
            assert d.ok("profile", "show", "lxt-prof") == before
            r = d.cli("profile", "edit", "lxt-prof", input="config: [not, a, map\n")
            assert r.returncode == 1 and r.stderr.startswith("Error: invalid YAML")
            assert d.ok("profile", "show", "lxt-prof") == before

            d.ok("profile", "edit", "lxt-prof", input=EDITED.format(source=data))
            assert d.ok("profile", "get", "lxt-prof", "description", "-p") == "edited\n"
            inst = _rpc(d, "instance.get", name="lxt-profiled")
            config = inst["expanded_config"]
            assert isinstance(config, dict) and config["limits.processes"] == "60"
            assert _pids_max(d, "lxt-profiled") == "60"  # live, on the running container
            devices = inst["expanded_devices"]
            assert isinstance(devices, dict) and devices["data"]["readonly"] == "true"
            # a disk change reaches the running container at once (hot-plugged anew)
            d.ok("profile", "device", "unset", "lxt-prof", "data", "readonly")
            assert _mount_flag(d, "lxt-profiled", "/mnt/data") == "rw"
            d.ok("profile", "device", "set", "lxt-prof", "data", "readonly=true")
            assert _mount_flag(d, "lxt-profiled", "/mnt/data") == "ro"
            assert d.ok("profile", "device", "get", "lxt-prof", "data", "readonly") == "true\n"

            # rename follows into the instance; assign/remove/add change its list
            d.ok("profile", "rename", "lxt-prof", "lxt-prof2")
            assert _rpc(d, "instance.get", name="lxt-profiled")["profiles"] == \
                ["default", "lxt-prof2"]
            assert d.ok("profile", "remove", "lxt-profiled", "lxt-prof2") == \
                "Profile lxt-prof2 removed from lxt-profiled\n"  # its disk goes at once
            r = d.cli("exec", "lxt-profiled", "--", "cat", "/mnt/data/hello")
            assert r.returncode != 0
            d.ok("profile", "add", "lxt-profiled", "lxt-prof2")  # and comes back
            assert d.ok("exec", "lxt-profiled", "--", "cat", "/mnt/data/hello") == \
                "from the host\n"
            d.ok("stop", "--force", "lxt-profiled")
            d.ok("profile", "remove", "lxt-profiled", "lxt-prof2")
            r = d.cli("profile", "assign", "lxt-profiled", "lxt-nope")
            assert r.returncode == 1 and "Profile 'lxt-nope' not found" in r.stderr
            d.ok("profile", "add", "lxt-profiled", "lxt-prof2")
            d.ok("profile", "assign", "lxt-profiled", "default,lxt-prof2")
            assert _rpc(d, "instance.get", name="lxt-profiled")["profiles"] == \
                ["default", "lxt-prof2"]
        r = d.cli("profile", "delete", "default")
        assert r.returncode == 1
        assert r.stderr.strip() == "Error: The 'default' profile cannot be deleted"


def _mount_flag(d: Daemon, name: str, path: str) -> str:
    """ro or rw: the first mount option of ``path`` inside the instance."""
    for line in d.ok("exec", name, "--", "cat", "/proc/mounts").splitlines():
        fields = line.split()
        if fields[1] == path:
            return fields[3].split(",")[0]
    raise AssertionError(f"{path} is not mounted in {name}")


EDITOR = """\
import sys
from pathlib import Path

path, state = Path(sys.argv[1]), Path(sys.argv[0]).with_suffix(".seen")
text = path.read_text()
seen = state.read_text() if state.exists() else ""
state.write_text(seen + "=== call\\n" + text)
if not seen:  # first call: a key the daemon refuses
    path.write_text(text.replace("config:\\n", "config:\\n  bogus.key: '1'\\n"))
else:  # second call: the error is at the top; fix it
    path.write_text(text.replace("  bogus.key: '1'\\n", "").replace(
        "description: ''", "description: fixed"))
"""


def test_edit_brings_the_editor_back_with_the_error(daemon: Daemon, workdir: Path) -> None:
    """On a terminal: a refused key reopens $EDITOR with the error as a comment at the
    top; the fixed YAML is then applied."""
    d = daemon
    editor = workdir / "lxt-editor.py"
    editor.write_text(EDITOR)
    editor.with_suffix(".seen").unlink(missing_ok=True)
    with _profiles_deleted_afterwards(d, "lxt-edited"):
        d.ok("profile", "create", "lxt-edited")
        d.ok("profile", "set", "lxt-edited", "limits.processes=50")
        leader, follower = pty.openpty()
        try:
            r = subprocess.run([LXCTL, "profile", "edit", "lxt-edited"],
                               env={**d.env, "EDITOR": f"{sys.executable} {editor}"},
                               stdin=follower, capture_output=True, text=True, timeout=60)
        finally:
            os.close(follower)
            os.close(leader)
        assert r.returncode == 0, r.stderr
        calls = editor.with_suffix(".seen").read_text().split("=== call\n")[1:]
        assert len(calls) == 2
        assert not calls[0].startswith("# Error")
        assert calls[1].startswith("# Error: Unknown configuration key: bogus.key\n")
        shown = d.ok("profile", "show", "lxt-edited")
        assert "description: fixed" in shown and "bogus" not in shown
        assert d.ok("profile", "get", "lxt-edited", "limits.processes") == "50\n"


def test_profile_usage_errors_are_one_line(daemon: Daemon) -> None:
    for args in (["profile", "assign", "lxt-x"], ["profile", "device", "add", "default"],
                 ["profile", "assign", "lxt-x", "a,b", "--no-profiles"],
                 ["profile", "set", "default"], ["profile", "frobnicate"]):
        r = daemon.cli(*args)
        assert r.returncode == 1 and r.stdout == "", args
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (args, r.stderr)
