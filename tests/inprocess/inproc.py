"""A daemon in this process: the real kernel, API and server over memory streams, with
the fake drivers. No root, no sockets, no subprocesses."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakes
import trio
import trio.testing

from lxctl.config.daemon import DaemonConfig
from lxctl.daemon import App, run_daemon
from lxctl.drivers.auth import Peer, PeerCredentials

ROOT = PeerCredentials(pid=1, uid=0, gid=0)


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """Hands the server one end of a memory stream pair per ``connect``."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](0)

    async def accept(self) -> trio.abc.Stream:
        return await self._receive.receive()

    async def aclose(self) -> None:
        self._receive.close()

    async def connect(self, peer: Peer | None = ROOT, *,
                      lockstep: bool = False) -> trio.abc.Stream:
        """``lockstep``: the daemon's writes block until the client reads (as a full
        socket buffer does), else they are buffered without limit."""
        client: trio.abc.Stream
        server: trio.abc.Stream
        if lockstep:
            client, server = trio.testing.lockstep_stream_pair()
        else:
            client, server = trio.testing.memory_stream_pair()
        server.lxctl_peer = peer  # type: ignore[union-attr]
        await self._send.send(server)
        return client


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.code: int = error["code"]
        self.message: str = error["message"]
        self.data: dict[str, Any] = error.get("data") or {}


@dataclass
class Client:
    stream: trio.abc.Stream
    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _buf: bytes = b""
    _next: int = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.stream.send_all(json.dumps(message).encode() + b"\n")

    async def notify(self, method: str, **params: Any) -> None:
        await self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def message(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            data = await self.stream.receive_some(1 << 16)
            if not data:
                raise EOFError("the daemon closed the connection")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        decoded: dict[str, Any] = json.loads(line)
        return decoded

    async def call(self, method: str, **params: Any) -> Any:
        self._next += 1
        await self.send({"jsonrpc": "2.0", "id": self._next, "method": method,
                         "params": params})
        while True:
            msg = await self.message()
            if "method" in msg:
                self.notifications.append((msg["method"], msg["params"]))
            elif msg.get("id") == self._next:
                if "error" in msg:
                    raise RpcError(msg["error"])
                return msg["result"]

    async def wait(self, op: dict[str, Any]) -> dict[str, Any]:
        """Wait for an operation; raise RpcError with its message if it failed."""
        done: dict[str, Any] = await self.call("operation.wait", id=op["id"], timeout=10)
        if done["status"] != "Success":
            raise RpcError({"code": -32000, "message": done["err"] or done["status"]})
        return done


@dataclass
class InProcessDaemon:
    app: App
    listener: MemoryListener
    world: fakes.World

    async def client(self, peer: Peer | None = ROOT, *, lockstep: bool = False) -> Client:
        return Client(await self.listener.connect(peer, lockstep=lockstep))


def busybox_like_tarball() -> bytes:
    """A tiny unified image: metadata.yaml and an empty rootfs/."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        meta = b"architecture: x86_64\ncreation_date: 1\nproperties:\n  os: fake\n"
        info = tarfile.TarInfo("metadata.yaml")
        info.size, info.mtime = len(meta), int(time.time())
        tar.addfile(info, io.BytesIO(meta))
        root = tarfile.TarInfo("rootfs")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
    return out.getvalue()


async def import_image(client: Client, alias: str, project: str = "default") -> dict[str, Any]:
    import base64

    stream = f"upload-{alias}"
    await client.notify("stream.input", stream=stream,
                        data=base64.b64encode(busybox_like_tarball()).decode())
    await client.notify("stream.input", stream=stream, eof=True)
    image: dict[str, Any] = await client.call("image.import", stream=stream, aliases=[alias],
                                              project=project)
    return image


async def wait_status(client: Client, name: str, status: str,
                      project: str = "default") -> None:
    """Poll until the instance shows ``status`` (autostart runs after readiness)."""
    while (await client.call("instance.get", name=name, project=project))["status"] != status:
        await trio.sleep(0.01)


@asynccontextmanager
async def daemon(directory: Path, *, extra_plugins: tuple[Any, ...] | list[Any] = (),
                 **config: Any) -> AsyncIterator[InProcessDaemon]:
    """Run one daemon on ``directory`` until the block ends (then it shuts down);
    ``extra_plugins``: plugins beside the fakes."""
    listener = MemoryListener()
    cfg = DaemonConfig(**{"retry_max_interval": 0.2, "default_pool_driver": "fake", **config})
    async with trio.open_nursery() as nursery:
        app: App = await nursery.start(
            lambda task_status: run_daemon(directory, cfg, plugins=[fakes, *extra_plugins],
                                           listener=listener,
                                           task_status=task_status))
        try:
            yield InProcessDaemon(app, listener, fakes.WORLDS[str(directory)])
        finally:
            app.request_shutdown(stop_instances=False)
