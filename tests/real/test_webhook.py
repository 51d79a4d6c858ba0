"""The webhook plugin, a third-party package in contrib/ (issue 9, acceptance 3):
installed into the venv, it POSTs the daemon's events to an HTTP server; uninstalled,
the daemon starts and works without it. The daemon and the server share a network
namespace made for the test (its own loopback): no traffic in the host's."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import LXCTLD, Daemon, wait_for

WEBHOOK = Path(__file__).resolve().parents[2] / "contrib" / "lxctl-plugin-webhook"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
SECRET = "lxt-webhook-secret"

RECEIVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port_file, out = sys.argv[1], sys.argv[2]
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(out, "a") as f:
            f.write(json.dumps({"headers": dict(self.headers), "body": body.decode()}) + "\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_port))
import os; os.rename(port_file + ".tmp", port_file)
server.serve_forever()
"""


class NetnsDaemon(Daemon):
    """A daemon started inside a network namespace (its Unix socket works as usual)."""

    def __init__(self, directory: Path, netns: str, env: dict[str, str]) -> None:
        super().__init__(directory, env=env)
        self.netns = netns

    def start(self, timeout: float = 30) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns, LXCTLD],
                                         env=self.env, stdout=log, stderr=log,
                                         start_new_session=True)
        r = self.cli("admin", "waitready", "--timeout", str(timeout), timeout=timeout + 5)
        assert r.returncode == 0, f"daemon not ready: {r.stderr}\n{self.log.read_text()[-3000:]}"


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"lxt-webhook-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def receiver(netns: str, workdir: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server in the namespace; yields its URL and the file of what it got."""
    port_file, out = workdir / "webhook-port", workdir / "webhook-received"
    port_file.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", RECEIVER,
                             str(port_file), str(out)])
    try:
        wait_for(port_file.exists, timeout=10)
        yield f"http://127.0.0.1:{port_file.read_text()}/events", out
    finally:
        proc.kill()
        proc.wait(10)


def _installed() -> bool:
    r = subprocess.run([*PIP, "show", "lxctl-plugin-webhook"], capture_output=True)
    return r.returncode == 0


def _received(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_webhook_delivers_events_and_uninstalling_it_leaves_the_daemon_working(
        workdir: Path, netns: str, receiver: tuple[str, Path]) -> None:
    url, out = receiver
    source = workdir / "lxctl-plugin-webhook"  # building writes into the source tree
    shutil.copytree(WEBHOOK, source, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    d = NetnsDaemon(workdir / "webhook", netns, {"LXCTL_WEBHOOK_URL": url,
                                                 "LXCTL_WEBHOOK_TYPES": "lifecycle",
                                                 "LXCTL_WEBHOOK_SECRET": SECRET})
    try:
        subprocess.run([*PIP, "install", "-q", "--no-deps", "--no-build-isolation",
                        str(source)], check=True, capture_output=True, timeout=300)
        d.start()
        info = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info"})["result"]
        plugin = {p["name"]: p for p in info["plugins"]}["webhook"]
        assert (plugin["package"], plugin["version"]) == ("lxctl-plugin-webhook", "0.1.0")
        d.ok("image", "build", "busybox", "--alias", "bb")
        d.ok("launch", "bb", "lxt-webhooked", "-q")

        def started() -> list[dict[str, Any]]:
            return [r for r in _received(out)
                    if json.loads(r["body"])["metadata"]["action"] == "instance-started"]

        (delivery,) = wait_for(started, timeout=15)
        event = json.loads(delivery["body"])
        assert event["metadata"]["source"] == "/1.0/instances/lxt-webhooked"
        assert delivery["headers"]["X-Lxctl-Event-Type"] == "lifecycle"
        assert delivery["headers"]["X-Lxctl-Event-Id"] == str(event["id"])
        signature = hmac.new(SECRET.encode(), delivery["body"].encode(),
                             hashlib.sha256).hexdigest()
        assert delivery["headers"]["X-Lxctl-Signature"] == f"sha256={signature}"
        actions = [json.loads(r["body"])["metadata"]["action"] for r in _received(out)]
        assert actions[:3] == ["image-created", "instance-created", "instance-started"]
        assert {json.loads(r["body"])["type"] for r in _received(out)} == {"lifecycle"}
        status = json.loads(d.ok("query", "webhook.status"))
        assert status["delivered"] >= 3 and status["failed"] == 0

        d.terminate()
        subprocess.run([*PIP, "uninstall", "-y", "-q", "lxctl-plugin-webhook"], check=True,
                       capture_output=True, timeout=120)
        assert not _installed()
        before = len(_received(out))
        d.start()  # without the plugin: the daemon starts, the instance is still there
        info = d.rpc({"jsonrpc": "2.0", "id": 2, "method": "server.info"})["result"]
        assert "webhook" not in {p["name"] for p in info["plugins"]}
        assert info["plugins_failed"] == {}
        d.ok("restart", "lxt-webhooked", "--force")
        assert d.ok("exec", "lxt-webhooked", "--", "echo", "fine") == "fine\n"
        r = d.cli("query", "webhook.status")
        assert r.returncode == 1 and "Method not found: webhook.status" in r.stderr
        assert len(_received(out)) == before  # nothing forwards any more
    finally:
        if _installed():
            subprocess.run([*PIP, "uninstall", "-y", "-q", "lxctl-plugin-webhook"],
                           capture_output=True, timeout=120)
        d.cleanup()
        shutil.rmtree(source, ignore_errors=True)
