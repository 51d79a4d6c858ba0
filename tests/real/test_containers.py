"""Real LXC containers through the real daemon and CLI (acceptance 1 and 3)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

from harness import LXCTL, Daemon, OutputLines, wait_for


def test_launch_use_and_delete(daemon: Daemon) -> None:
    out = daemon.ok("launch", "bb", "lxt-c1")
    assert "lxt-c1" in out
    assert daemon.states()["lxt-c1"] == "RUNNING"
    assert "lxt-c1,RUNNING,,,CONTAINER,0" in daemon.ok("list", "--format", "csv").splitlines()
    assert daemon.ok("exec", "lxt-c1", "--", "cat", "/proc/1/comm").strip() == "init"
    assert daemon.ok("exec", "lxt-c1", "--", "cat", input="abc\n") == "abc\n"
    assert daemon.cli("exec", "lxt-c1", "--", "false").returncode == 1
    r = daemon.cli("exec", "lxt-c1", "--", "no-such-command")
    assert r.returncode == 127

    daemon.ok("stop", "lxt-c1")
    assert daemon.states()["lxt-c1"] == "STOPPED"
    daemon.ok("start", "lxt-c1")
    assert daemon.states()["lxt-c1"] == "RUNNING"
    init = daemon.init_process("lxt-c1")
    daemon.ok("restart", "lxt-c1")
    assert daemon.states()["lxt-c1"] == "RUNNING"
    assert daemon.init_process("lxt-c1") != init  # a new init
    daemon.ok("pause", "lxt-c1")
    assert daemon.states()["lxt-c1"] == "FROZEN"
    daemon.ok("resume", "lxt-c1")
    assert daemon.states()["lxt-c1"] == "RUNNING"
    daemon.ok("delete", "--force", "lxt-c1")
    assert "lxt-c1" not in daemon.states()
    assert daemon.leftovers("lxt-c1") == []
    # the daemon logs one JSON line per request
    requests = [json.loads(line) for line in daemon.log.read_text().splitlines()
                if line.startswith("{") and '"event": "request"' in line]
    assert {"instance.create", "instance.exec", "instance.delete"} <= {
        r["method"] for r in requests}
    assert all(isinstance(r["ms"], float) and r["conn_id"] for r in requests)


def test_container_is_unprivileged_by_default(daemon: Daemon) -> None:
    daemon.ok("launch", "bb", "lxt-unpriv", "-q")
    with daemon.deleted_afterwards("lxt-unpriv"):
        uid_map = daemon.ok("exec", "lxt-unpriv", "--", "cat", "/proc/self/uid_map").split()
        assert uid_map[0] == "0" and uid_map[1] != "0" and uid_map[2] == "65536"
        assert daemon.ok("exec", "lxt-unpriv", "--", "id", "-u").strip() == "0"
        # files on the host belong to the mapped range, once per image, not per launch
        info = json.loads(daemon.ok("list", "--format", "json"))
        pid = next(i for i in info if i["name"] == "lxt-unpriv")["state"]["pid"]
        assert os.stat(f"/proc/{pid}").st_uid == int(uid_map[1])
        images = [p for p in (daemon.dir / "storage-pools/default/images").iterdir()
                  if p.name.endswith(f".u{uid_map[1]}-g{uid_map[1]}-65536")]
        assert len(images) == 1
        assert os.stat(images[0] / "rootfs/bin/busybox").st_uid == int(uid_map[1])
        # the instance's own writes land in its overlay upper layer, owned by its root
        daemon.ok("exec", "lxt-unpriv", "--", "sh", "-c", "echo hi > /root/mine")
        upper = daemon.dir / "storage-pools/default/containers/lxt-unpriv/upper"
        assert os.stat(upper / "root/mine").st_uid == int(uid_map[1])
        assert not (images[0] / "rootfs/root/mine").exists()


def test_isolated_id_maps(daemon: Daemon) -> None:
    """security.idmap.isolated gives each such container a 65536-id block of its own,
    after the shared one; files it writes on the host belong to that block."""
    d = daemon
    d.ok("launch", "bb", "lxt-shared", "-q")
    d.ok("launch", "bb", "lxt-iso1", "-q", "-c", "security.idmap.isolated=true")
    d.ok("launch", "bb", "lxt-iso2", "-q", "-c", "security.idmap.isolated=true")
    with d.deleted_afterwards("lxt-shared", "lxt-iso1", "lxt-iso2"):
        bases = {}
        for name in ("lxt-shared", "lxt-iso1", "lxt-iso2"):
            uid_map = d.ok("exec", name, "--", "cat", "/proc/self/uid_map").split()
            assert uid_map[0] == "0" and uid_map[2] == "65536"
            bases[name] = int(uid_map[1])
            d.ok("exec", name, "--", "sh", "-c", "echo hi > /root/mine")
            upper = d.dir / f"storage-pools/default/containers/{name}/upper"
            assert os.stat(upper / "root/mine").st_uid == bases[name]
        ordered = sorted(bases.values())
        assert ordered[1] - ordered[0] >= 65536 and ordered[2] - ordered[1] >= 65536
        assert bases["lxt-shared"] == ordered[0]
        assert d.ok("config", "get", "lxt-iso1", "volatile.idmap.base").strip() == \
            str(bases["lxt-iso1"])
        r = d.cli("config", "set", "lxt-iso1", "security.idmap.isolated=false")
        assert r.returncode == 1 and "chosen when it is created" in r.stderr


def test_privileged_opt_in(daemon: Daemon) -> None:
    daemon.ok("launch", "bb", "lxt-priv", "-c", "security.privileged=true", "-q")
    with daemon.deleted_afterwards("lxt-priv"):
        uid_map = daemon.ok("exec", "lxt-priv", "--", "cat", "/proc/self/uid_map").split()
        assert uid_map[:2] == ["0", "0"]


def test_exec_options_and_big_streams(daemon: Daemon) -> None:
    daemon.ok("launch", "bb", "lxt-exec", "-q")
    with daemon.deleted_afterwards("lxt-exec"):
        out = daemon.ok("exec", "lxt-exec", "--env", "FOO=bar baz", "--cwd", "/tmp", "--",
                        "sh", "-c", 'echo "$FOO"; pwd; echo err >&2')
        assert out == "bar baz\n/tmp\n"
        r = daemon.cli("exec", "lxt-exec", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
        assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
        assert daemon.ok("exec", "lxt-exec", "--user", "65534", "--group", "65534", "--",
                         "id", "-u").strip() == "65534"
        payload = "x" * (2 * 1024 * 1024)
        assert daemon.ok("exec", "lxt-exec", "--", "wc", "-c", input=payload).strip() == str(
            len(payload))
        out = daemon.ok("exec", "lxt-exec", "--", "head", "-c", "3000000", "/dev/zero")
        assert len(out) == 3000000
        # the daemon's descriptors never reach the container
        fds = daemon.ok("exec", "lxt-exec", "--", "ls", "/proc/self/fd").split()
        assert sorted(fds, key=int) == ["0", "1", "2", "3"]
        r = daemon.cli("exec", "lxt-exec", "--", "sh", "-c", "kill -9 $$")
        assert r.returncode == 137


def _attach_helpers(d: Daemon) -> list[int]:
    """The daemon's attach helpers (its children running attach_helper.py)."""
    out = subprocess.run(["pgrep", "-P", str(d.pid), "-f", "attach_helper.py"],
                         capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def test_exec_through_the_attach_helper(daemon: Daemon) -> None:
    """exec's commands are started by one helper process (liblxc forks it, not the
    daemon): a short command is not held up by a long one beside it, and a helper
    that dies fails the commands it was running, clearly (and kills them), and is
    started again."""
    d = daemon
    d.ok("launch", "bb", "lxt-helper", "-q")
    with d.deleted_afterwards("lxt-helper"):
        d.ok("exec", "lxt-helper", "--", "true")
        helpers = _attach_helpers(d)
        assert len(helpers) == 1
        slow = subprocess.Popen([LXCTL, "exec", "lxt-helper", "--", "sleep", "30"],
                                env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            wait_for(lambda: "sleep 30" in d.ok("exec", "lxt-helper", "--", "ps"))
            for n in range(3):  # answered while the long one still runs
                assert d.ok("exec", "lxt-helper", "--", "echo", str(n)) == f"{n}\n"
            assert slow.poll() is None
            os.kill(helpers[0], signal.SIGKILL)
            _, err = slow.communicate(timeout=20)
        finally:
            slow.kill()
            slow.wait()
        assert slow.returncode == 1 and "The attach helper has gone" in err
        # its status can no longer be known: the command was killed, not left running
        wait_for(lambda: "sleep 30" not in d.ok("exec", "lxt-helper", "--", "ps"))
        assert d.ok("exec", "lxt-helper", "--", "echo", "again") == "again\n"
        assert len(again := _attach_helpers(d)) == 1 and again != helpers
        assert "internal error" not in d.log.read_text()


def test_interactive_exec_gets_a_new_pty(daemon: Daemon) -> None:
    daemon.ok("launch", "bb", "lxt-tty", "-q")
    with daemon.deleted_afterwards("lxt-tty"):
        master, slave = pty.openpty()
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
            try:
                proc = subprocess.Popen(
                    [LXCTL, "exec", "lxt-tty", "--", "sh", "-c",
                     'tty; stty size; read line; echo "got $line"; exit 3'],
                    env=daemon.env, stdin=slave, stdout=slave, stderr=slave,
                    start_new_session=True)
            finally:
                os.close(slave)
            try:
                data = _talk(master, proc)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        finally:
            os.close(master)
        assert proc.returncode == 3
        text = data.decode(errors="replace")
        assert "got hello" in text
        assert "/dev/pts/" in text  # a new pty inside the container, not the caller's
        assert "33 101" in text  # the caller's window size reached it


def _talk(master: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> bytes:
    """Everything the pty shows until ``proc`` ends; one line typed once the command
    runs."""
    data = b""
    sent = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sent and b"/dev/pts/" in data:
            os.write(master, b"hello\n")
            sent = True
        if select.select([master], [], [], 0.1)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: nothing holds the other end any more
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break  # ended, and everything it wrote has been read
    proc.wait(10)
    return data


def test_monitor_prints_lifecycle_in_order(daemon: Daemon) -> None:
    subscribed = daemon.requests("events.subscribe")
    mon = OutputLines(subprocess.Popen(
        [LXCTL, "monitor", "--format", "json", "--type", "lifecycle"],
        env=daemon.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE))
    try:
        # subscribed once the daemon has logged the request (it logs after the return)
        wait_for(lambda: daemon.requests("events.subscribe") > subscribed)
        daemon.ok("launch", "bb", "lxt-mon", "-q")
        daemon.ok("stop", "lxt-mon")
        daemon.ok("start", "lxt-mon")
        daemon.ok("delete", "--force", "lxt-mon")
        mon.wait_for(lambda line: '"instance-deleted"' in line and "lxt-mon" in line)
    finally:
        lines = mon.stop()
    events = [json.loads(line) for line in lines if line.strip()]
    actions = [e["metadata"]["action"] for e in events
               if e["metadata"]["source"] == "/1.0/instances/lxt-mon"
               and e["metadata"]["action"] != "instance-exec"]
    assert actions == ["instance-created", "instance-started", "instance-stopped",
                       "instance-started", "instance-stopped", "instance-deleted"]
    assert all(e["type"] == "lifecycle" and e["timestamp"] for e in events)


def test_operations_are_visible_and_waitable(daemon: Daemon) -> None:
    daemon.ok("init", "bb", "lxt-ops", "-q")
    with daemon.deleted_afterwards("lxt-ops"):
        op = daemon.rpc({"jsonrpc": "2.0", "id": 1, "method": "instance.start",
                         "params": {"name": "lxt-ops"}})["result"]
        assert op["status"] in ("Running", "Success") and op["id"]
        listed = daemon.ok("operation", "list", "--format", "csv")
        assert op["id"] in listed
        waited = daemon.ok("operation", "wait", op["id"])
        assert "status: Success" in waited
        assert daemon.states()["lxt-ops"] == "RUNNING"
        r = daemon.cli("operation", "cancel", op["id"])
        assert r.returncode != 0 and "not running" in r.stderr


def test_state_errors_are_clear_and_change_nothing(daemon: Daemon) -> None:
    daemon.ok("launch", "bb", "lxt-err", "-q")
    with daemon.deleted_afterwards("lxt-err"):
        r = daemon.cli("start", "lxt-err")
        assert r.returncode == 1 and r.stderr == "Error: The instance is already running\n"
        r = daemon.cli("delete", "lxt-err")
        assert r.returncode == 1 and "Instance is running" in r.stderr
        r = daemon.cli("launch", "bb", "lxt-err")
        assert r.returncode == 1 and "already exists" in r.stderr
        r = daemon.cli("launch", "no-such-image", "lxt-x")
        assert r.returncode == 1 and "Image 'no-such-image' not found" in r.stderr
        r = daemon.cli("launch", "bb", "lxt-y", "-c", "bogus.key=1")
        assert r.returncode == 1 and "Unknown configuration key: bogus.key" in r.stderr
        states = daemon.states()
        assert states["lxt-err"] == "RUNNING"
        assert "lxt-x" not in states and "lxt-y" not in states
        daemon.ok("stop", "lxt-err")
        r = daemon.cli("stop", "lxt-err")
        assert r.returncode == 1 and "already stopped" in r.stderr
        r = daemon.cli("exec", "lxt-err", "--", "true")
        assert r.returncode == 1 and "not running" in r.stderr


def test_launch_without_name_and_info(daemon: Daemon) -> None:
    out = daemon.ok("launch", "bb")
    name = out.split("Instance name is: ")[1].strip()
    with daemon.deleted_afterwards(name):
        info = daemon.ok("info", name)
        assert f"Name: {name}" in info and "Status: RUNNING" in info
        pid = int(next(line.split()[1] for line in info.splitlines() if line.startswith("PID:")))
        assert pid > 0
        assert "Processes:" in info and "Memory (current):" in info


def test_list_formats(daemon: Daemon) -> None:
    daemon.ok("init", "bb", "lxt-fmt", "-q")
    with daemon.deleted_afterwards("lxt-fmt"):
        table = daemon.ok("list", "lxt-fmt")
        assert "| lxt-fmt | STOPPED |" in table and "+--" in table
        assert daemon.ok("list", "lxt-fmt", "-f", "csv,header", "-c", "ns").splitlines() == [
            "NAME,STATE", "lxt-fmt,STOPPED"]
        assert json.loads(daemon.ok("list", "lxt-fmt", "-f", "json"))[0]["name"] == "lxt-fmt"
        assert "name: lxt-fmt" in daemon.ok("list", "lxt-fmt", "-f", "yaml")
        assert daemon.ok("list", "lxt-fmt", "-f", "compact", "-c", "n").split() == [
            "NAME", "lxt-fmt"]
        r = daemon.cli("list", "-c", "nL")
        assert r.returncode == 1 and "column L" in r.stderr
        r = daemon.cli("list", "-f", "xml")
        assert r.returncode == 1 and "Invalid format" in r.stderr


def test_image_import_list_delete(daemon: Daemon, image_tarball: object) -> None:
    out = daemon.ok("image", "import", str(image_tarball), "--alias", "lxt-img")
    fingerprint = out.split(": ")[1].strip()
    assert len(fingerprint) == 64
    assert fingerprint == hashlib.sha256(Path(str(image_tarball)).read_bytes()).hexdigest()
    assert "lxt-img" in daemon.ok("image", "list", "-f", "csv")
    r = daemon.cli("image", "import", str(image_tarball), "--alias", "lxt-img2")
    assert r.returncode == 1 and "same fingerprint" in r.stderr
    daemon.ok("launch", "lxt-img", "lxt-fromimg", "-q")
    assert daemon.ok("exec", "lxt-fromimg", "--", "echo", "ok") == "ok\n"
    daemon.ok("delete", "--force", "lxt-fromimg")
    daemon.ok("image", "delete", "lxt-img")
    assert "lxt-img" not in daemon.ok("image", "list", "-f", "csv")
    assert not list((daemon.dir / "storage-pools/default/images").glob(f"{fingerprint}*"))


def test_bad_image_is_refused(daemon: Daemon, workdir: object) -> None:
    bad = os.path.join(str(workdir), "bad.tar.gz")
    with open(bad, "wb") as f:
        f.write(b"not a tarball")
    r = daemon.cli("image", "import", bad, "--alias", "lxt-bad")
    assert r.returncode == 1 and "Invalid image" in r.stderr
    assert "lxt-bad" not in daemon.ok("image", "list", "-f", "csv")
    assert list((daemon.dir / "images" / "tmp").iterdir()) == []


def test_stop_all_and_start_all(daemon: Daemon) -> None:
    names = [f"lxt-all{i}" for i in range(3)]
    for n in names:
        daemon.ok("launch", "bb", n, "-q")
    with daemon.deleted_afterwards(*names):
        daemon.ok("stop", "--all")
        assert {daemon.states()[n] for n in names} == {"STOPPED"}
        daemon.ok("start", "--all")
        assert {daemon.states()[n] for n in names} == {"RUNNING"}
        daemon.ok("pause", "lxt-all0")
        daemon.ok("start", "lxt-all0")  # start on a frozen instance resumes it (Incus)
        assert daemon.states()["lxt-all0"] == "RUNNING"
    for n in names:
        wait_for(lambda n=n: daemon.leftovers(n) == [])


def test_image_deleted_under_a_running_instance(daemon: Daemon, image_tarball: Path) -> None:
    daemon.ok("image", "import", str(image_tarball), "--alias", "lxt-gone")
    fingerprint = daemon.rpc({"jsonrpc": "2.0", "id": 1, "method": "image.get",
                              "params": {"image": "lxt-gone"}})["result"]["fingerprint"]
    daemon.ok("launch", "lxt-gone", "lxt-orphan", "-q")
    images = daemon.dir / "storage-pools/default/images"
    with daemon.deleted_afterwards("lxt-orphan"):
        daemon.ok("image", "delete", "lxt-gone")
        assert "lxt-gone" not in daemon.ok("image", "list", "-f", "csv")
        daemon.ok("restart", "lxt-orphan")  # its root still rests on the image's volume
        assert daemon.ok("exec", "lxt-orphan", "--", "cat", "/etc/hostname").strip()
        assert list(images.glob(f"{fingerprint}.*"))
    assert not list(images.glob(f"{fingerprint}.*"))  # gone with its last instance


def test_exec_streams_large_input_and_output_at_once(daemon: Daemon) -> None:
    """Input and output flow together (no deadlock when both exceed the socket buffers)."""
    daemon.ok("launch", "bb", "lxt-cat", "-q")
    with daemon.deleted_afterwards("lxt-cat"):
        payload = os.urandom(24 * 1024 * 1024)
        r = subprocess.run([LXCTL, "exec", "lxt-cat", "--", "cat"], env=daemon.env,
                           input=payload, capture_output=True, timeout=120)
        assert r.returncode == 0
        assert hashlib.sha256(r.stdout).digest() == hashlib.sha256(payload).digest()


def test_addresses_are_shown(daemon: Daemon) -> None:
    """Addresses come from the container's own network namespace. Network safety: the
    container gets one end of a veth pair (created down, never addressed in the root
    namespace) whose other end lives in a namespace made for this test."""
    ns, inner, outer = "lxt-addr-ns", "lxtaddr0", "lxtaddr1"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        subprocess.run(["ip", "link", "add", inner, "type", "veth", "peer", "name", outer,
                        "netns", ns], check=True, timeout=30)
        raw = "\n".join([
            "lxc.net.0.type = phys", f"lxc.net.0.link = {inner}", "lxc.net.0.name = eth0",
            "lxc.net.0.flags = up", "lxc.net.0.ipv4.address = 10.251.77.5/24",
            "lxc.net.0.ipv6.address = fd42:77::5/64",
        ])
        daemon.ok("launch", "bb", "lxt-addr", "-q", "-c", f"raw.lxc={raw}")
        with daemon.deleted_afterwards("lxt-addr"):
            row = wait_for(lambda: (line := daemon.ok("list", "lxt-addr", "-f", "csv", "-c",
                                                      "n46")) and "fd42:77::5" in line and line)
            assert row.strip() == "lxt-addr,10.251.77.5 (eth0),fd42:77::5 (eth0)"
            info = daemon.ok("info", "lxt-addr")
            assert "inet:  10.251.77.5/24 (global)" in info
            assert "inet6:  fd42:77::5/64 (global)" in info
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False, timeout=30)
        subprocess.run(["ip", "link", "delete", inner], check=False, capture_output=True,
                       timeout=30)
    assert not Path(f"/sys/class/net/{inner}").exists()


def test_version(daemon: Daemon, workdir: Path) -> None:
    assert daemon.ok("version") == "Client version: 0.1.0\nServer version: 0.1.0\n"
    absent = Daemon(workdir / "no-daemon-here")
    assert absent.ok("version").endswith("Server version: unreachable\n")


def test_ephemeral_instance_is_deleted_on_stop(daemon: Daemon) -> None:
    daemon.ok("launch", "bb", "lxt-eph", "--ephemeral", "-q")
    assert daemon.ok("list", "lxt-eph", "-f", "csv", "-c", "nt") == \
        "lxt-eph,CONTAINER (EPHEMERAL)\n"
    daemon.ok("stop", "lxt-eph")
    assert "lxt-eph" not in daemon.states()
    assert daemon.leftovers("lxt-eph") == []
