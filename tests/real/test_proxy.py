"""Proxy devices on real containers: the host's side listens (unix socket) and each
connection reaches a server inside the container; ``bind=instance`` the other way;
removal stops the forwarder; UDP through the same forwarder, in a private netns."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Daemon

# busybox's init leaves lo down in a container without NICs
WEB_SERVER = ("ip link set lo up && mkdir -p /www && echo hello > /www/index.html && "
              "httpd -p 127.0.0.1:8080 -h /www")
PROXY = Path(__file__).resolve().parents[2] / "plugins/hypervisor/lxc/proxy.py"


def _ask_unix(path: Path, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def _echo_server(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)

    def serve() -> None:
        try:
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.sendall(b"echo:" + conn.recv(1024))
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_proxy_devices(daemon: Daemon, workdir: Path) -> None:
    d = daemon
    host_sock = workdir / "lxt-proxy.sock"
    echo_sock = workdir / "lxt-echo.sock"
    echo = _echo_server(echo_sock)
    d.ok("launch", "bb", "lxt-proxy", "-q")
    try:
        with d.deleted_afterwards("lxt-proxy"):
            d.ok("exec", "lxt-proxy", "--", "sh", "-c", WEB_SERVER)
            d.ok("config", "device", "add", "lxt-proxy", "web", "proxy",
                 f"listen=unix:{host_sock}", "connect=tcp:127.0.0.1:8080")  # hot-plugged
            reply = _ask_unix(host_sock, b"GET /index.html HTTP/1.0\r\n\r\n")
            assert reply.startswith(b"HTTP/1.") and reply.endswith(b"hello\n")
            # the other way: a port on the container's loopback reaches the host's socket
            d.ok("config", "device", "add", "lxt-proxy", "back", "proxy", "bind=instance",
                 "listen=tcp:127.0.0.1:9000", f"connect=unix:{echo_sock}")
            out = d.ok("exec", "lxt-proxy", "--", "sh", "-c", "echo ping | nc 127.0.0.1 9000")
            assert out == "echo:ping\n"
            # bad addresses are refused when set, and nothing changes
            r = d.cli("config", "device", "add", "lxt-proxy", "bad", "proxy",
                      "listen=tcp:127.0.0.1:99999", "connect=tcp:127.0.0.1:80")
            assert r.returncode == 1 and "listen must be" in r.stderr
            r = d.cli("config", "device", "add", "lxt-proxy", "bad", "proxy",
                      "listen=udp:127.0.0.1:53", "connect=tcp:127.0.0.1:53")
            assert r.returncode == 1 and "udp proxies to udp only" in r.stderr
            # a restart brings both back; a removal stops the forwarder at once
            d.ok("restart", "lxt-proxy", "--force")
            d.ok("exec", "lxt-proxy", "--", "sh", "-c", WEB_SERVER)
            assert _ask_unix(host_sock, b"GET /index.html HTTP/1.0\r\n\r\n").endswith(
                b"hello\n")
            d.ok("config", "device", "remove", "lxt-proxy", "web")
            with pytest.raises(OSError):
                _ask_unix(host_sock, b"GET / HTTP/1.0\r\n\r\n")
            assert list(d.dir.glob("containers/lxt-proxy/proxy.web.*")) == []
            d.ok("stop", "lxt-proxy", "--force")
            assert list(d.dir.glob("containers/lxt-proxy/proxy.*.pid")) == []
    finally:
        echo.close()


@pytest.fixture
def netns() -> Iterator[str]:
    name = "lxt-proxy-ns"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_udp_forwarding_in_a_private_netns(netns: str, tmp_path: Path) -> None:
    """The forwarder's datagram path, with a process of the netns standing in for a
    container's init: each peer gets its own upstream socket, replies come back."""
    inside = ["ip", "netns", "exec", netns]
    init = subprocess.Popen([*inside, "sleep", "120"])
    echo = subprocess.Popen([*inside, sys.executable, "-c", """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5002))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"echo:" + data, peer)
"""])
    pidfile = tmp_path / "proxy.pid"
    proxy = subprocess.Popen([*inside, sys.executable, "-I", str(PROXY), str(init.pid),
                              "udp:127.0.0.1:5001", "udp:127.0.0.1:5002", "host",
                              str(pidfile)], stdout=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None and proxy.stdout.readline() == "ready\n"
        client = subprocess.run([*inside, sys.executable, "-c", """
import socket
out = []
for word in (b"a", b"b"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(word, ("127.0.0.1", 5001))
    out.append(s.recv(100).decode())
print(" ".join(out))
"""], capture_output=True, text=True, timeout=30)
        assert client.stdout == "echo:a echo:b\n", client.stderr
        init.kill()  # the "container" stops: the forwarder ends by itself
        assert proxy.wait(10) == 0
    finally:
        for p in (proxy, echo, init):
            p.kill()
            p.wait(10)
