"""Real daemons and containers across the core's seams: degraded start of a ``dir`` pool,
the error for an untraversable state dir, a client leaving mid-exec, projects."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from harness import LXCTL, Daemon, wait_for


def _pools(d: Daemon) -> dict[str, dict[str, str]]:
    reply = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "storage.list"})
    return {p["name"]: p for p in reply["result"]}


def test_a_missing_dir_pool_is_unavailable_then_comes_back_with_its_instance(
        workdir: Path) -> None:
    d = Daemon(workdir / "degraded")
    source = workdir / "degraded-pool2"
    try:
        d.dir.mkdir(parents=True)
        (d.dir / "lxctld.toml").write_text("[retry]\nmax_interval = 0.5\n")
        d.start()
        d.ok("image", "build", "busybox", "--alias", "bb")
        db = sqlite3.connect(d.dir / "lxctl.db")  # a second pool, as storage create will
        db.execute("INSERT INTO storage_pools VALUES ('pool2', 'dir', ?, '')",
                   (json.dumps({"source": str(source), "overlay": "true"}),))
        db.commit()
        db.close()
        for sub in ("images", "containers", "custom", "snapshots"):
            (source / sub).mkdir(parents=True)
        source.chmod(0o711)
        d.terminate()
        d.start()
        d.ok("launch", "bb", "lxt-on-pool2", "-q", "--storage", "pool2")
        d.ok("launch", "bb", "lxt-on-default", "-q")
        d.ok("admin", "shutdown", timeout=90)  # both stop; both were running
        d.proc.wait(30)  # type: ignore[union-attr]
        source.rename(source.with_name("degraded-pool2.away"))  # the pool's disk is gone
        d.start()  # the daemon starts anyway; autostart runs after readiness
        wait_for(lambda: d.states() == {"lxt-on-default": "RUNNING",
                                        "lxt-on-pool2": "STOPPED"}, timeout=20)
        pool2 = _pools(d)["pool2"]
        assert pool2["status"] == "Unavailable" and "is missing" in pool2["reason"]
        r = d.cli("start", "lxt-on-pool2")
        assert r.returncode == 1
        assert "Storage pool 'pool2' unavailable" in r.stderr
        source.with_name("degraded-pool2.away").rename(source)  # it comes back
        wait_for(lambda: d.states().get("lxt-on-pool2") == "RUNNING", timeout=20)
        assert _pools(d)["pool2"]["status"] == "Created"
        assert d.ok("exec", "lxt-on-pool2", "--", "echo", "back") == "back\n"
    finally:
        d.cleanup()
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(source.with_name("degraded-pool2.away"), ignore_errors=True)


def test_a_state_dir_the_container_root_cannot_traverse_is_named(workdir: Path) -> None:
    private = Path(tempfile.mkdtemp(prefix="lxt-private-"))  # mode 0700, like mktemp -d
    d = Daemon(private / "state")
    try:
        d.start()
        d.ok("image", "build", "busybox", "--alias", "bb")
        r = d.cli("launch", "bb", "lxt-hidden")
        assert r.returncode == 1
        assert f"{private} is not searchable by other users (mode 700)" in r.stderr
        assert f"chmod o+x {private}" in r.stderr
        assert d.ok("list", "-f", "csv") == ""  # nothing was left behind
        private.chmod(0o711)  # the fix the message names works
        d.ok("launch", "bb", "lxt-hidden", "-q")
        assert d.states() == {"lxt-hidden": "RUNNING"}
    finally:
        d.cleanup()
        shutil.rmtree(private, ignore_errors=True)


def test_a_client_leaving_mid_exec_is_no_internal_error(daemon: Daemon) -> None:
    daemon.ok("launch", "bb", "lxt-leave", "-q")
    try:
        before = daemon.requests("instance.exec")
        proc = subprocess.Popen([LXCTL, "exec", "lxt-leave", "--", "sh", "-c",
                                 "for i in $(seq 20); do echo tick; sleep 0.05; done"],
                                env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"tick\n"
        proc.kill()  # the client disappears while the command writes output
        proc.wait(10)
        # the command runs to its end; its request is then answered (to nobody) and logged
        wait_for(lambda: daemon.requests("instance.exec") > before, timeout=20)
        assert daemon.ok("exec", "lxt-leave", "--", "echo", "alive") == "alive\n"
        assert "internal error" not in daemon.log.read_text()
    finally:
        daemon.ok("delete", "--force", "lxt-leave")


def test_projects_through_the_socket(daemon: Daemon) -> None:
    projects = daemon.rpc({"jsonrpc": "2.0", "id": 1, "method": "project.list"})["result"]
    assert [p["name"] for p in projects] == ["default"]
    r = daemon.rpc({"jsonrpc": "2.0", "id": 2, "method": "instance.list",
                    "params": {"project": "nope/x"}})
    assert r["error"]["code"] == -32003 and "Invalid project name" in r["error"]["message"]


def _create(d: Daemon, name: str, devices: dict[str, dict[str, str]]) -> None:
    reply = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "instance.create",
                   "params": {"image": "bb", "name": name, "start": True,
                              "devices": devices}})
    assert "result" in reply, reply
    done = d.rpc({"jsonrpc": "2.0", "id": 2, "method": "operation.wait",
                  "params": {"id": reply["result"]["id"], "timeout": 60}}, timeout=90)
    assert done["result"]["status"] == "Success", done


def test_lxc_renders_the_devices_it_declares(daemon: Daemon, workdir: Path) -> None:
    """Typed devices from the core, rendered by the LXC driver: a read-only host
    directory, a character device, and a physical NIC (one end of a veth pair whose
    other end lives in a namespace of this test; nothing is addressed or routed)."""
    shared = workdir / "lxt-shared-dir"
    shared.mkdir(mode=0o755)
    (shared / "hello").write_text("from the host\n")
    ns, inner, outer = "lxt-dev-ns", "lxtdev0", "lxtdev1"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        subprocess.run(["ip", "link", "add", inner, "type", "veth", "peer", "name", outer,
                        "netns", ns], check=True, timeout=30)
        with daemon.deleted_afterwards("lxt-devices"):
            _create(daemon, "lxt-devices", {
                "data": {"type": "disk", "source": str(shared), "path": "/mnt/data",
                         "readonly": "true"},
                "zero": {"type": "unix-char", "source": "/dev/zero", "path": "/dev/lxtzero"},
                "eth1": {"type": "nic", "nictype": "physical", "parent": inner,
                         "name": "eth1"},
            })
            run = ["exec", "lxt-devices", "--"]
            assert daemon.ok(*run, "cat", "/mnt/data/hello") == "from the host\n"
            r = daemon.cli(*run, "touch", "/mnt/data/new")
            assert r.returncode != 0 and not (shared / "new").exists()  # read-only
            assert daemon.ok(*run, "sh", "-c", "head -c 4 /dev/lxtzero | od -An -tx1") \
                .split() == ["00", "00", "00", "00"]
            assert "eth1" in daemon.ok(*run, "ip", "link", "show", "eth1")
        wait_for(lambda: Path(f"/sys/class/net/{inner}").exists())  # back on the host
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False, timeout=30)
        subprocess.run(["ip", "link", "delete", inner], check=False, capture_output=True,
                       timeout=30)
        shutil.rmtree(shared, ignore_errors=True)
