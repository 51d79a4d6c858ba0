"""The proxy device: forwards connections between the host and a running container.

Run as its own process, detached from the daemon so that it outlives a daemon restart
(``python proxy.py PID LISTEN CONNECT BIND PIDFILE``); it imports nothing but the standard
library. Addresses are ``tcp:HOST:PORT``, ``udp:HOST:PORT`` or ``unix:PATH``.

Two processes share the work. The main one stays in the host's namespaces. Before
anything else it forks an *agent* that enters the container's network and mount
namespaces (through ``/proc/PID/ns``, so paths resolve inside the container and a
symlink there cannot reach the host). Every socket that belongs to the container's
side is made by the agent and handed to the main process over a socketpair
(SCM_RIGHTS): the listening socket once (``bind=instance``), or one connected socket
per incoming connection or UDP peer (``bind=host``). The main process copies data in
both directions, a thread per connection. It exits when the container's init does.

Exit status: 0 when the container stopped, 1 on a setup error (reason on stderr).
"""

from __future__ import annotations

import array
import ctypes
import os
import select
import socket
import sys
import threading
from typing import Any

CLONE_NEWNET, CLONE_NEWNS = 0x40000000, 0x20000
libc = ctypes.CDLL(None, use_errno=True)


def parse(address: str) -> tuple[int, int, object]:
    """(family, type, sockaddr) of ``tcp:H:P`` / ``udp:H:P`` / ``unix:PATH``."""
    kind, _, rest = address.partition(":")
    if kind == "unix":
        return socket.AF_UNIX, socket.SOCK_STREAM, rest
    host, _, port = rest.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    stype = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    return family, stype, (host, int(port))


def listener(address: str) -> socket.socket:
    family, stype, addr = parse(address)
    s = socket.socket(family, stype)
    if family == socket.AF_UNIX:
        try:
            os.unlink(str(addr))
        except FileNotFoundError:
            pass
    else:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)  # type: ignore[arg-type]
    if stype == socket.SOCK_STREAM:
        s.listen(64)
    return s


def connected(address: str) -> socket.socket:
    family, stype, addr = parse(address)
    s = socket.socket(family, stype)
    s.connect(addr)  # type: ignore[arg-type]
    return s


# ---------------------------------------------------------------- the agent
def _enter(pid: int) -> None:
    for name, flag in (("net", CLONE_NEWNET), ("mnt", CLONE_NEWNS)):
        fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, flag) != 0:
                raise OSError(ctypes.get_errno(), f"setns {name}")
        finally:
            os.close(fd)
    os.chdir("/")


def _send(channel: socket.socket, sock: socket.socket | None, error: str = "") -> None:
    fds = [sock.fileno()] if sock is not None else []
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    channel.sendmsg([(error or "ok").encode()[:500]], ancillary)


def agent(channel: socket.socket, pid: int, address: str, bind: str) -> None:
    """In the container: make the container's sockets, one per request."""
    try:
        _enter(pid)
        if bind == "instance":
            _send(channel, listener(address))
            return
        _send(channel, None)  # ready
    except OSError as exc:
        _send(channel, None, f"error: {exc.strerror or exc}")
        return
    while channel.recv(1):  # one byte a request: connect to the target
        try:
            s = connected(address)
        except OSError as exc:
            _send(channel, None, f"error: {exc.strerror or exc}")
            continue
        _send(channel, s)
        s.close()


def receive(channel: socket.socket) -> socket.socket:
    fds = array.array("i")
    msg, ancdata, _, _ = channel.recvmsg(512, socket.CMSG_LEN(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not fds:
        raise OSError(msg.decode(errors="replace") or "the agent is gone")
    return socket.socket(fileno=fds[0])


# ---------------------------------------------------------------- the copier
def pump(a: socket.socket, b: socket.socket) -> None:
    """Copy a → b until EOF, then shut b's writing side."""
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve_stream(server: socket.socket, dial: Dialer) -> None:
    while True:
        client, _ = server.accept()
        try:
            upstream = dial()
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


def serve_datagram(server: socket.socket, dial: Dialer) -> None:
    peers: dict[tuple[Any, ...], socket.socket] = {}

    def replies(peer: tuple[Any, ...], up: socket.socket) -> None:
        try:
            while True:
                server.sendto(up.recv(65536), peer)
        except OSError:
            pass

    while True:
        data, peer = server.recvfrom(65536)
        up = peers.get(peer)
        if up is None:
            try:
                up = peers[peer] = dial()
            except OSError:
                continue
            threading.Thread(target=replies, args=(peer, up), daemon=True).start()
        try:
            up.send(data)
        except OSError:
            peers.pop(peer, None)


class Dialer:
    """Makes the connecting side: in the host itself, or through the agent."""

    def __init__(self, address: str, channel: socket.socket | None) -> None:
        self.address, self.channel = address, channel
        self.lock = threading.Lock()

    def __call__(self) -> socket.socket:
        if self.channel is None:
            return connected(self.address)
        with self.lock:
            self.channel.send(b"c")
            return receive(self.channel)


def main(argv: list[str]) -> int:
    if len(argv) != 5 or argv[3] not in ("host", "instance"):
        sys.stderr.write("usage: proxy.py PID LISTEN CONNECT host|instance PIDFILE\n")
        return 2
    pid, listen, connect, bind, pidfile = int(argv[0]), argv[1], argv[2], argv[3], argv[4]
    init = os.pidfd_open(pid)  # readable once the container's init is gone
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = os.fork()
    if child == 0:  # the agent: alone in its process, as setns(CLONE_NEWNS) wants
        ours.close()
        agent(theirs, pid, listen if bind == "instance" else connect, bind)
        os._exit(0)
    theirs.close()
    try:
        if bind == "instance":
            server, dial = receive(ours), Dialer(connect, None)
            os.waitpid(child, 0)
        else:
            status = ours.recv(512).decode()
            if status != "ok":
                raise OSError(status)
            server, dial = listener(listen), Dialer(connect, ours)
    except OSError as exc:
        sys.stderr.write(f"proxy: {exc.strerror or exc}\n")
        return 1
    serve = serve_datagram if server.type == socket.SOCK_DGRAM else serve_stream
    threading.Thread(target=serve, args=(server, dial), daemon=True).start()
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(pidfile + ".tmp", pidfile)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    select.select([init], [], [])  # until the container's init exits
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
