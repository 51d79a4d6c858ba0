"""The daemon as a whole: isolation, crash recovery, concurrency, bad input, plugins
(acceptance 2, 4, 5, 6, 7)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import VENV_BIN, Daemon, cgroup_prefix, daemon_with_image, wait_for

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[2] / "contrib" / "example-plugin"


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Kill a helper process the test started, if it still runs."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def _db_counts(d: Daemon) -> dict[str, int]:
    db = sqlite3.connect(d.dir / "lxctl.db")
    try:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("instances", "images", "image_aliases", "storage_pools", "profiles")}
    finally:
        db.close()


def test_two_daemons_side_by_side(workdir: Path) -> None:
    a, b = Daemon(workdir / "two-a"), Daemon(workdir / "two-b")
    try:
        for d in (a, b):
            d.start()
            d.ok("image", "build", "busybox", "--alias", "bb")
            d.ok("launch", "bb", "lxt-same", "-q")
        assert a.states() == {"lxt-same": "RUNNING"} == b.states()
        a.ok("exec", "lxt-same", "--", "touch", "/root/only-in-a")
        assert b.cli("exec", "lxt-same", "--", "test", "-e", "/root/only-in-a").returncode == 1
        a.ok("stop", "lxt-same")
        assert a.states() == {"lxt-same": "STOPPED"} and b.states() == {"lxt-same": "RUNNING"}
        b.ok("launch", "bb", "lxt-only-b", "-q")
        assert "lxt-only-b" not in a.states()
        a.ok("delete", "lxt-same")
        assert b.ok("exec", "lxt-same", "--", "echo", "alive") == "alive\n"
        assert a.leftovers("lxt-same") == []
    finally:
        a.cleanup()
        b.cleanup()


def test_kill9_and_restart_readopts_running_containers(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    d.ok("launch", "bb", "lxt-survivor", "-q")
    d.ok("init", "bb", "lxt-slowstop", "-q", "-c", "raw.lxc=lxc.signal.halt = SIGHUP")
    d.ok("start", "lxt-slowstop")
    # a stop that cannot finish (busybox init ignores SIGHUP as a halt signal) ...
    slow = subprocess.Popen(["lxctl", "stop", "lxt-slowstop", "--timeout", "60"], env=d.env,
                            executable=str(Path(sys.executable).parent / "lxctl"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def running_ops() -> list[str]:
        ops = json.loads(d.ok("operation", "list", "-f", "json"))
        return [op["id"] for op in ops if op["status"] == "Running"]

    try:
        interrupted_ids = wait_for(running_ops)
        # one action at a time per instance: the lock answers at once, naming the holder
        r = d.cli("start", "lxt-slowstop")
        assert r.returncode == 1 and 'busy running a "stop" operation' in r.stderr
        assert d.states()["lxt-slowstop"] == "STOPPING"
        d.kill9()  # ... is interrupted by a crash of the daemon
        slow.wait(10)
    finally:
        _reap(slow)
    assert d.proc is not None and d.proc.returncode == -9
    d.start()
    assert d.states()["lxt-survivor"] == "RUNNING"
    assert d.ok("exec", "lxt-survivor", "--", "echo", "still here") == "still here\n"
    ops = json.loads(d.ok("operation", "list", "-f", "json"))
    assert not [op for op in ops if op["status"] == "Running"]
    interrupted = [op for op in ops if op["id"] in interrupted_ids]
    assert interrupted and all(op["status"] == "Failure" for op in interrupted)
    assert "stopped while this operation was running" in interrupted[0]["err"]
    d.ok("delete", "--force", "lxt-survivor", "lxt-slowstop")
    assert d.leftovers("lxt-survivor") == [] and d.leftovers("lxt-slowstop") == []


def test_sigterm_leaves_containers_running_and_shutdown_stops_them(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    d.ok("launch", "bb", "lxt-term", "-q")
    d.terminate()
    assert d.proc is not None and d.proc.returncode == 0
    assert not (d.dir / "unix.socket").exists()
    d.start()
    assert d.states()["lxt-term"] == "RUNNING"
    d.ok("admin", "shutdown", timeout=90)
    assert d.proc.wait(30) == 0
    # nothing runs: the daemon's cgroup prefix is gone with it
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{cgroup_prefix(d.dir)}"))
    d.start()  # it was running when the daemon stopped it: started again (last state),
    wait_for(lambda: d.states()["lxt-term"] == "RUNNING", timeout=20)  # after readiness
    d.ok("delete", "--force", "lxt-term")


def test_sigterm_does_not_wait_out_a_long_stop(workdir: Path) -> None:
    d = Daemon(workdir / "termslow")
    d.dir.mkdir(parents=True)
    (d.dir / "lxctld.toml").write_text("[shutdown]\ntimeout = 1\n")
    try:
        d.start()
        d.ok("image", "build", "busybox", "--alias", "bb")
        d.ok("launch", "bb", "lxt-deaf", "-q", "-c", "raw.lxc=lxc.signal.halt = SIGHUP")
        stopper = subprocess.Popen([str(Path(sys.executable).parent / "lxctl"), "stop",
                                    "lxt-deaf", "--timeout", "120"], env=d.env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: any(op["status"] == "Running" for op in
                                 json.loads(d.ok("operation", "list", "-f", "json"))))
            t0 = time.monotonic()
            d.terminate(timeout=20)
            assert d.proc is not None and d.proc.returncode == 0
            assert time.monotonic() - t0 < 10
            stopper.wait(10)
        finally:
            _reap(stopper)
        d.start()
        assert d.states()["lxt-deaf"] == "RUNNING"  # left as it was, re-adopted
    finally:
        d.cleanup()


def test_twenty_concurrent_clients(fresh_daemon: Daemon) -> None:
    d = fresh_daemon

    def life(i: int) -> tuple[int, str]:
        name = f"lxt-par{i:02d}"
        steps = [("launch", "bb", name, "-q"), ("exec", name, "--", "echo", f"hi {i}"),
                 ("delete", "--force", name)]
        out = ""
        for args in steps:
            r = d.cli(*args, timeout=120)
            if r.returncode != 0:
                return r.returncode, f"{args}: {r.stderr}"
            out += r.stdout
        return 0, out

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(life, range(20)))
    assert [rc for rc, _ in results] == [0] * 20, results
    for i, (_, out) in enumerate(results):
        assert f"hi {i}\n" in out
    assert d.states() == {}
    for i in range(20):
        assert d.leftovers(f"lxt-par{i:02d}") == []
    assert list((d.dir / "storage-pools/default/containers").iterdir()) == []


# ---------------------------------------------------------------------------- bad input
def _raw(d: Daemon, payload: bytes) -> list[Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(d.dir / "unix.socket"))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while chunk := s.recv(1 << 20):
            buf += chunk
    return [json.loads(line) for line in buf.splitlines() if line.strip()]


def test_bad_input_gets_errors_and_changes_nothing(daemon: Daemon) -> None:
    daemon.ok("init", "bb", "lxt-keep", "-q")
    with daemon.deleted_afterwards("lxt-keep"):
        _send_bad_input(daemon)


def _send_bad_input(daemon: Daemon) -> None:
    """Each kind of bad input gets its error; then the daemon is up and unchanged."""
    before, states_before = _db_counts(daemon), daemon.states()
    cases: list[tuple[bytes, int, str]] = [
        (b'{"jsonrpc": "2.0", "id": 1, "method": "instance.get", "params": {', -32700,
         "Parse error"),
        (b'{"jsonrpc": "2.0", "id": 2, "method": "instance.stop", '
         b'"params": {"name": "lxt-keep", "force": "yes"}}', -32602,
         "'force' must be a boolean, got a string"),
        (b'{"jsonrpc": "2.0", "id": 3, "method": "instance.explode", "params": {}}', -32601,
         "instance.explode"),
        (b'{"jsonrpc": "2.0", "id": 4, "method": "instance.start", '
         b'"params": {"name": "lxt-nothere"}}', -32001, "'lxt-nothere' not found"),
        (b'{"jsonrpc": "2.0", "id": 5, "method": "instance.create", '
         b'"params": {"image": "bb", "name": "foo.bar"}}', -32003, "Invalid instance name"),
        (b'{"jsonrpc": "2.0", "id": 6, "method": "instance.create", '
         b'"params": {"image": "bb", "name": "lxt-keep"}}', -32002, "already exists"),
        (b'{"jsonrpc": "2.0", "id": 7, "method": 42}', -32600, "Invalid request"),
        (b'{"jsonrpc": "2.0", "id": 8, "method": "instance.delete", "params": ["lxt-keep", '
         b'false, "extra"]}', -32602, "at most 2 positional"),
    ]
    for payload, code, needle in cases:
        (response,) = _raw(daemon, payload + b"\n")
        assert response["error"]["code"] == code, (payload, response)
        assert needle in response["error"]["message"], (payload, response)

    # a 10 MB message is refused, and the same connection keeps working
    big = b'{"jsonrpc": "2.0", "id": 9, "method": "server.info", "params": {"x": "' + \
        b"a" * (10 * 1024 * 1024) + b'"}}\n'
    ok = b'{"jsonrpc": "2.0", "id": 10, "method": "instance.get", ' \
         b'"params": {"name": "lxt-keep"}}\n'
    responses = _raw(daemon, big + ok)
    assert responses[0]["error"]["code"] == -32011
    assert "exceeds the limit" in responses[0]["error"]["message"]
    assert responses[1]["id"] == 10 and responses[1]["result"]["name"] == "lxt-keep"

    # a batch mixing good and bad requests answers each
    batch = json.dumps([
        {"jsonrpc": "2.0", "id": "a", "method": "instance.get", "params": {"name": "lxt-keep"}},
        {"jsonrpc": "2.0", "id": "b", "method": "instance.get", "params": {"name": 1}},
        {"jsonrpc": "2.0", "method": "instance.start", "params": {"name": "-bad-"}},
    ]).encode() + b"\n"
    (answers,) = _raw(daemon, batch)
    assert [a["id"] for a in answers] == ["a", "b"]
    assert answers[1]["error"]["code"] == -32602
    # the daemon is still up, and nothing changed
    assert daemon.cli("list").returncode == 0
    assert daemon.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info"})["result"]
    assert _db_counts(daemon) == before
    assert daemon.states() == states_before


def test_pipelined_requests_are_all_answered(daemon: Daemon) -> None:
    """500 requests written at once on one connection: each answered exactly once."""
    payload = b"".join(
        json.dumps({"jsonrpc": "2.0", "id": i, "method": "instance.list",
                    "params": {"full": False}}).encode() + b"\n" for i in range(500))
    responses = _raw(daemon, payload)
    assert sorted(r["id"] for r in responses) == list(range(500))
    assert all("result" in r for r in responses)


def _call_as(daemon: Daemon, *setpriv: str) -> dict[str, Any]:
    r = subprocess.run(
        ["setpriv", *setpriv, sys.executable, "-c",
         "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
         "s.sendall(b'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"instance.list\"}\\n'); "
         "print(s.recv(65536).decode())",
         str(daemon.dir / "unix.socket")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    response: dict[str, Any] = json.loads(r.stdout)
    return response


def test_peer_credentials_decide_access(daemon: Daemon) -> None:
    import grp

    assert (daemon.dir / "unix.socket").stat().st_mode & 0o777 == 0o660
    gid = grp.getgrnam("lxctl").gr_gid
    assert (daemon.dir / "unix.socket").stat().st_gid == gid
    # the socket's permissions keep others out; the daemon checks peers itself too
    (daemon.dir / "unix.socket").chmod(0o666)
    try:
        refused = _call_as(daemon, "--reuid=65534", "--regid=65534", "--clear-groups")
        assert refused["error"]["code"] == -32006
        member = _call_as(daemon, "--reuid=65534", "--regid=65534", f"--groups={gid}")
        assert isinstance(member["result"], list)
    finally:
        (daemon.dir / "unix.socket").chmod(0o660)


# ---------------------------------------------------------------------------- plugins
def _pip_list() -> list[str]:
    r = subprocess.run([str(VENV_BIN / "pip"), "list", "--format=freeze",
                        "--disable-pip-version-check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [line.split("==")[0].lower() for line in r.stdout.splitlines()]


@pytest.fixture(scope="module")
def example_plugin(workdir: Path) -> Iterator[dict[str, str]]:
    """The example third-party plugin, installed as a user would but into a directory of
    its own; yields the environment that puts it on a daemon's PYTHONPATH (entry points
    are found on sys.path). Built from a copy: building writes into the source tree.
    Nothing lands in the venv, which is checked afterwards."""
    source, target = workdir / "example-plugin", workdir / "example-plugin-site"
    shutil.copytree(EXAMPLE_PLUGIN, source, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    shutil.rmtree(target, ignore_errors=True)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--disable-pip-version-check",
                        "--target", str(target), str(source)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    path = os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH")) if p)
    yield {"PYTHONPATH": path}
    shutil.rmtree(target, ignore_errors=True)
    assert "lxctl-example" not in _pip_list()


@pytest.fixture
def plugin_daemon(workdir: Path, example_plugin: dict[str, str]) -> Iterator[Daemon]:
    """A daemon of its own that sees the example plugin, with the ``bb`` image."""
    with daemon_with_image(workdir / "plugin", env=example_plugin) as d:
        yield d


def _plugins(d: Daemon) -> dict[str, dict[str, Any]]:
    info = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info"})["result"]
    return {p["name"]: p for p in info["plugins"]}


def test_third_party_plugin_is_loaded(plugin_daemon: Daemon, daemon: Daemon) -> None:
    d = plugin_daemon
    plugins = _plugins(d)
    assert plugins["example"]["package"] == "lxctl-example"
    assert plugins["example"]["version"] == "0.1.0"
    assert "example" not in _plugins(daemon)  # only where it is on the path
    assert {"storage-dir", "hypervisor-lxc", "auth-peer"} <= set(plugins)
    assert plugins["storage-dir"]["drivers"] == ["storage:dir"]
    assert plugins["hypervisor-lxc"]["drivers"] == ["hypervisor:lxc"]
    assert plugins["auth-peer"]["drivers"] == ["auth:peer"]
    # the CLI's `info` shows what server.info says
    shown = yaml.safe_load(d.ok("info"))
    assert {p["name"]: p for p in shown["plugins"]} == plugins
    hello = d.rpc({"jsonrpc": "2.0", "id": 2, "method": "example.hello",
                   "params": {"name": "lxd"}})
    assert hello["result"] == {"greeting": "Hello, lxd!", "caller": "root"}
    bad = d.rpc({"jsonrpc": "2.0", "id": 3, "method": "example.hello", "params": {"name": 3}})
    assert bad["error"]["code"] == -32602
    d.ok("init", "bb", "lxt-plug", "-q")
    d.ok("delete", "lxt-plug")
    counts = wait_for(lambda: d.rpc({"jsonrpc": "2.0", "id": 4, "method": "example.events"})
                      ["result"].get("instance-deleted"))
    assert counts == 1


def test_plugin_can_be_disabled_by_name(example_plugin: dict[str, str], workdir: Path) -> None:
    d = Daemon(workdir / "disabled", env=example_plugin)  # found, then disabled
    d.dir.mkdir(parents=True)
    (d.dir / "lxctld.toml").write_text('[plugins]\ndisabled = ["example"]\n')
    try:
        d.start()
        info = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info"})["result"]
        assert "example" not in {p["name"] for p in info["plugins"]}
        assert info["plugins_disabled"] == ["example"]
        r = d.rpc({"jsonrpc": "2.0", "id": 2, "method": "example.hello"})
        assert r["error"]["code"] == -32601
    finally:
        d.cleanup()


def _start_fails(directory: Path, config: str) -> str:
    """Start lxctld with ``config``; it must exit 1. Returns its stderr."""
    d = Daemon(directory)
    d.dir.mkdir(parents=True)
    (d.dir / "lxctld.toml").write_text(config)
    try:
        r = subprocess.run([str(Path(sys.executable).parent / "lxctld")], env=d.env,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, r.stderr
        return r.stderr
    finally:
        d.cleanup()


def test_missing_driver_error_is_helpful(workdir: Path) -> None:
    err = _start_fails(workdir / "nodir", '[plugins]\ndisabled = ["storage-dir"]\n')
    assert "storage driver 'dir' not found" in err and "plugin" in err


def test_bad_daemon_config_is_refused(workdir: Path) -> None:
    err = _start_fails(workdir / "badcfg", "[rpc]\nmax_mesage_size = 5\n")
    assert "unknown key 'rpc.max_mesage_size'" in err


def test_waitready_times_out_clearly(workdir: Path) -> None:
    d = Daemon(workdir / "absent")
    t0 = time.monotonic()
    r = d.cli("admin", "waitready", "--timeout", "1")
    assert r.returncode == 1 and "still not running after 1s" in r.stderr
    assert time.monotonic() - t0 < 5
