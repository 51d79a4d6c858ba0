"""The console log of a real container, LXC's default seccomp policy on every
container, and security.nesting on an unprivileged one."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import LXCTL, Daemon, OutputLines, wait_for

SECCOMP = "/usr/share/lxc/config/common.seccomp"


def test_console_log_shows_what_the_container_writes(daemon: Daemon) -> None:
    d = daemon
    d.ok("launch", "bb", "lxt-console", "-q")
    with d.deleted_afterwards("lxt-console"):
        assert (d.dir / "containers" / "lxt-console" / "console.log").exists()
        d.ok("exec", "lxt-console", "--", "sh", "-c", "echo hello-console > /dev/console")
        assert wait_for(lambda: "hello-console" in d.ok("console", "lxt-console",
                                                        "--show-log"))


def test_console_attach_relays_and_detaches_with_ctrl_a_q(daemon: Daemon) -> None:
    d = daemon
    d.ok("launch", "bb", "lxt-conatt", "-q")
    with d.deleted_afterwards("lxt-conatt"):
        proc = subprocess.Popen([LXCTL, "console", "lxt-conatt"], env=d.env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        out = OutputLines(proc)
        try:
            # the attach takes a moment: write until the attached console shows it
            def shown() -> bool:
                d.ok("exec", "lxt-conatt", "--", "sh", "-c", "echo attached-x > /dev/console")
                try:
                    out.wait_for(lambda line: "attached-x" in line, timeout=0.5)
                except AssertionError:
                    return False
                return True

            assert wait_for(shown, timeout=20)
            assert proc.stdin is not None
            proc.stdin.write(b"\x01q")
            proc.stdin.flush()
            assert proc.wait(20) == 0
        finally:
            out.stop()
        assert d.ok("exec", "lxt-conatt", "--", "echo", "still") == "still\n"
        r = d.cli("console", "lxt-no-such")
        assert r.returncode == 1 and "Error:" in r.stderr


def test_seccomp_policy_applies_and_is_reported(daemon: Daemon) -> None:
    d = daemon
    env = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info"})["result"]["environment"]
    assert env["hypervisors"]["lxc"]["seccomp"] is True
    apparmor = Path("/sys/module/apparmor/parameters/enabled")
    assert env["hypervisors"]["lxc"]["apparmor"] is \
        (apparmor.exists() and apparmor.read_text().startswith("Y"))
    d.ok("launch", "bb", "lxt-seccomp", "-q")
    with d.deleted_afterwards("lxt-seccomp"):
        config = (d.dir / "containers" / "lxt-seccomp" / "config").read_text()
        assert f"lxc.seccomp.profile = {SECCOMP}" in config
        pid, _ = d.init_process("lxt-seccomp")
        status = Path(f"/proc/{pid}/status").read_text()
        assert "Seccomp:\t2" in status
        inside = d.ok("exec", "lxt-seccomp", "--", "grep", "Seccomp:", "/proc/self/status")
        assert inside.split() == ["Seccomp:", "2"]
        assert "ro" in _mount_options(d, "lxt-seccomp")["/proc/sys"]  # no nesting: mixed


def test_nesting_unprivileged_mounts_proc_and_sys_rw(daemon: Daemon) -> None:
    d = daemon
    d.ok("launch", "bb", "lxt-nest", "-q", "-c", "security.nesting=true")
    with d.deleted_afterwards("lxt-nest"):
        config = (d.dir / "containers" / "lxt-nest" / "config").read_text()
        assert "lxc.mount.auto = proc:rw sys:rw cgroup:rw" in config
        assert "lxc.idmap" in config  # still unprivileged
        options = _mount_options(d, "lxt-nest")
        assert "rw" in options["/proc"]
        assert "rw" in options["/sys"]
        assert "/proc/sys" not in options  # proc:mixed would mount it read-only


def _mount_options(d: Daemon, name: str) -> dict[str, list[str]]:
    mounts = d.ok("exec", name, "--", "cat", "/proc/mounts").splitlines()
    return {fields[1]: fields[3].split(",") for fields in map(str.split, mounts)
            if len(fields) > 3}
