"""The real client binary, without a daemon (no root): usage errors, help, waitready."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LXCTL = Path(sys.executable).with_name("lxctl")  # the launcher in the venv's bin/
DEADLINE = 20.0  # seconds any one client run may take here


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """An LXCTL_DIR without a daemon; short, so that a socket path in it fits."""
    with tempfile.TemporaryDirectory(prefix="lxt-cli-") as tmp:
        yield Path(tmp)


def lxctl(state_dir: Path, *args: str, timeout: float = DEADLINE,
          socket_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LXCTL_SOCKET"}
    env["LXCTL_DIR"] = str(state_dir)
    if socket_path is not None:
        env["LXCTL_SOCKET"] = str(socket_path)
    return subprocess.run([str(LXCTL), *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, check=False)


# ---------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize("args", [
    ["list", "--bogus"],
    ["image", "frobnicate"],
    ["nosuchverb"],
    ["--bogus"],
    ["image"],
    ["image", "show"],
    ["image", "list", "--bogus"],
    ["launch"],
    ["launch", "img", "c1", "--bogus"],
    ["stop", "--timeout", "soon", "c1"],
    ["delete"],
    ["info", "--bogus"],
    ["operation", "frobnicate"],
    ["operation", "wait"],
    ["admin", "frobnicate"],
    ["admin", "waitready", "--timeout", "abc"],
    ["storage", "list", "--bogus"],
    ["profile", "show"],
    ["monitor", "--format", "xml"],
    ["version", "--bogus"],
    ["version", "extra"],
    ["exec", "c1", "--bogus", "--", "true"],
    ["exec"],
    ["snapshot"],
    ["snapshot", "frobnicate", "c1"],
    ["snapshot", "create"],
    ["snapshot", "create", "c1", "--bogus"],
    ["snapshot", "rename", "c1", "s0"],
    ["copy", "c1"],
    ["copy", "c1", "c2/s0"],
    ["copy", "c1", "c2", "-d", "root"],
    ["move", "c1"],
    ["move", "c1/s0", "c2"],
    ["rename", "c1"],
    ["mv", "c1", "c2", "--bogus"],
], ids=" ".join)
def test_usage_error_is_one_error_line_and_exit_1(state_dir: Path, args: list[str]) -> None:
    r = lxctl(state_dir, *args)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "usage:" not in r.stderr


@pytest.mark.parametrize("args", [
    ["--help"], ["list", "--help"], ["image", "--help"], ["image", "list", "-h"],
    ["admin", "waitready", "--help"], ["version", "--help"], ["exec", "--help"],
], ids=" ".join)
def test_help_still_prints_help_and_exits_0(state_dir: Path, args: list[str]) -> None:
    r = lxctl(state_dir, *args)
    assert r.returncode == 0 and r.stderr == ""
    assert "usage" in r.stdout.lower()


# ---------------------------------------------------------------------------- waitready
class SilentServer:
    """A Unix socket that accepts connections, reads what comes, and never answers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received = bytearray()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            self.connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                self.received += data
        except OSError:
            pass

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for conn in self.connections:
            conn.close()
        self.thread.join(timeout=5)


@pytest.mark.parametrize("via", ["LXCTL_SOCKET", "LXCTL_DIR"])
def test_waitready_timeout_covers_a_call_that_never_returns(state_dir: Path, via: str) -> None:
    path = state_dir / "unix.socket"
    server = SilentServer(path)
    try:
        t0 = time.monotonic()
        r = lxctl(state_dir, "admin", "waitready", "--timeout", "1",
                  socket_path=path if via == "LXCTL_SOCKET" else None, timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        server.close()
    assert b'"server.ready"' in server.received  # connected and called: then the wait
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "1s timeout" in lines[0]
    assert 0.9 <= elapsed < 5


def test_waitready_without_a_daemon_gives_up_at_the_timeout(state_dir: Path) -> None:
    t0 = time.monotonic()
    r = lxctl(state_dir, "admin", "waitready", "--timeout", "0.5")
    elapsed = time.monotonic() - t0
    assert r.returncode == 1
    [line] = r.stderr.splitlines()
    assert line.startswith("Error: Daemon still not running after 0.5s timeout (")
    assert 0.4 <= elapsed < 5


# ---------------------------------------------------------------------------- lean client
@pytest.mark.parametrize("args", [["version"], ["version", "--bogus"],
                                  ["exec", "c1", "--", "true"], ["exec", "c1", "--bogus"]],
                         ids=" ".join)
def test_hot_paths_import_no_argparse_typing_or_json(state_dir: Path, args: list[str]) -> None:
    """exec and version parse by hand: argparse, typing and json cost ms on every start."""
    import sysconfig

    probe = (
        "import sys\n"
        f"sys.path.append({sysconfig.get_paths()['purelib']!r})\n"
        "from lxctl.cli.main import run\n"
        f"run({args!r})\n"
        "heavy = ('argparse', 'typing', 'json', 'socket', 'lxctl.cli.args')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-S", "-c", probe], env={**os.environ,
                       "LXCTL_DIR": str(state_dir)}, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=DEADLINE, check=False)
    assert r.stdout.splitlines()[-1] == "[]", r.stdout + r.stderr


def test_client_needs_only_its_declared_dependencies() -> None:
    """The base distribution (no extras) is the client: lxctl.cli imports the standard
    library, PyYAML and lxctl's client modules only, and nothing else is required."""
    import ast
    import tomllib

    import lxctl.cli

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["PyYAML"]
    assert "lxc>=3.0.4" in project["optional-dependencies"]["daemon"]
    allowed = {*sys.stdlib_module_names, "yaml"}
    for path in Path(lxctl.cli.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                ok = (name.split(".")[0] in allowed or name in ("lxctl", "lxctl.paths")
                      or name == "lxctl.cli" or name.startswith("lxctl.cli."))
                assert ok, f"{path.name} imports {name}"


def test_key_values_and_targets() -> None:
    from lxctl.cli.args import UsageError, key_values, target

    assert key_values(["a=b", "raw.lxc=x=y", "empty="]) == {"a": "b", "raw.lxc": "x=y",
                                                             "empty": ""}
    with pytest.raises(UsageError, match="Bad key=value pair: 'novalue'"):
        key_values(["novalue"])
    assert target("c1") == "c1" and target("local:c1") == "c1"
    with pytest.raises(UsageError, match='The remote "far" doesn\'t exist'):
        target("far:c1")


# ---------------------------------------------------------------------------- projects
@pytest.mark.parametrize(("argv", "rest", "project"), [
    (["--project", "p1", "list"], ["list"], "p1"),
    (["list", "--project", "p1", "-c", "n"], ["list", "-c", "n"], "p1"),
    (["list", "--project=p1"], ["list"], "p1"),
    (["exec", "c1", "--project", "p1", "--", "echo", "--project", "x"],
     ["exec", "c1", "--", "echo", "--project", "x"], "p1"),
    (["exec", "c1", "--", "echo", "--project", "x"],
     ["exec", "c1", "--", "echo", "--project", "x"], None),
])
def test_the_global_project_flag_goes_before_or_after_the_command(
        argv: list[str], rest: list[str], project: str | None) -> None:
    from lxctl.cli.main import global_flags

    assert global_flags(argv) == (rest, project)


@pytest.mark.parametrize("argv", [["list", "--project"], ["--project=", "list"]])
def test_the_project_flag_needs_a_value(state_dir: Path, argv: list[str]) -> None:
    r = lxctl(state_dir, *argv)
    assert (r.returncode, r.stderr) == (1, "Error: flag --project needs a value\n")


def _sent(server: SilentServer, count: int) -> list[dict[str, object]]:
    import json

    deadline = time.monotonic() + DEADLINE
    while server.received.count(b"\n") < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return [json.loads(line) for line in bytes(server.received).splitlines()]


def test_the_client_adds_the_project_to_calls_that_take_one(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lxctl.cli import connection

    conf = state_dir / "config.yml"
    conf.write_text("project: from-conf\n")
    monkeypatch.setenv("LXCTL_CONF", str(conf))
    server = SilentServer(state_dir / "unix.socket")
    try:
        client = connection.Client(str(state_dir / "unix.socket"))
        client.request("instance.list", {"all_projects": True})
        client.request("image.get", {"image": "x", "project": "given"})
        client.request("operation.list")
        client.request("project.get", {"name": "p"})
        monkeypatch.setattr(connection, "project_flag", "from-flag")
        flagged = connection.Client(str(state_dir / "unix.socket"))
        flagged.request("profile.list")
        conf.unlink()
        monkeypatch.setattr(connection, "project_flag", None)
        plain = connection.Client(str(state_dir / "unix.socket"))
        plain.request("network.list")
        sent = _sent(server, 6)
        for c in (client, flagged, plain):
            c.close()
    finally:
        server.close()
    # three connections: their lines may interleave in any order
    assert sorted((str(m["method"]), m["params"]) for m in sent) == [
        ("image.get", {"image": "x", "project": "given"}),
        ("instance.list", {"all_projects": True, "project": "from-conf"}),
        ("network.list", {}),  # no flag, no config: the daemon's default project
        ("operation.list", {}),
        ("profile.list", {"project": "from-flag"}),
        ("project.get", {"name": "p"}),
    ]


@pytest.mark.parametrize(("text", "project", "yaml_read"), [
    ("project: lxt-p1\n", "lxt-p1", False),
    ("# mine\nproject: lxt-p1\nother: x\n", "lxt-p1", False),
    ("project: 'lxt-p1'\naliases: {}\n", "lxt-p1", True),
    (None, None, False),
])
def test_the_client_config_is_read_by_hand_when_flat(
        state_dir: Path, text: str | None, project: str | None, yaml_read: bool) -> None:
    import sysconfig

    conf = state_dir / "config.yml"
    if text is not None:
        conf.write_text(text)
    probe = (
        "import sys\n"
        f"sys.path.append({sysconfig.get_paths()['purelib']!r})\n"
        "from lxctl.cli.connection import current_project\n"
        "print(current_project(), 'yaml' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-S", "-c", probe],
                       env={**os.environ, "LXCTL_CONF": str(conf)}, capture_output=True,
                       text=True, timeout=DEADLINE, check=False)
    assert r.stdout.split() == [str(project), str(yaml_read)], r.stderr


def test_notifications_read_along_with_an_answer_are_not_lost(state_dir: Path) -> None:
    """The daemon may send a subscription's replayed events in the same write as its
    answer: the next poll must dispatch them (a monitor --since lost them)."""
    import json

    from lxctl.cli import connection

    path = state_dir / "unix.socket"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        client = connection.Client(str(path))
        peer, _ = listener.accept()
        got: list[object] = []
        client.on_notification = lambda method, params: got.append(params["id"])
        lines = [{"jsonrpc": "2.0", "method": "event", "params": {"id": 1}},
                 {"jsonrpc": "2.0", "id": 1, "result": {"last_id": 1}},
                 {"jsonrpc": "2.0", "method": "event", "params": {"id": 2}},
                 {"jsonrpc": "2.0", "method": "event", "params": {"id": 3}}]
        peer.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in lines))
        assert client.call("events.subscribe") == {"last_id": 1}
        assert got == [1]
        peer.shutdown(socket.SHUT_WR)  # the next poll dispatches the kept events first
        assert client.poll(-1) == (False, None)
        assert got == [1, 2, 3]
        with pytest.raises(connection.ConnectionFailed):
            client.poll(-1)
        client.close()
        peer.close()
    finally:
        listener.close()
