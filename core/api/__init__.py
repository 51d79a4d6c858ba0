"""The core's JSON-RPC methods (``noun.verb``), thin over the services.

Long actions return an operation object at once; ``operation.wait`` blocks until it
ends. Method parameters are checked against these signatures before a method runs.
"""

from __future__ import annotations

import base64
import binascii
import os
import platform
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import trio

from lxctl import API_VERSION, __version__
from lxctl.drivers import (
    ExecRequest,
    StreamData,
    StreamEOF,
    StreamInput,
    StreamResize,
    StreamSignal,
)
from lxctl.errors import InvalidArgument
from lxctl.kernel.events import EVENT_TYPES
from lxctl.objects.names import check_instance_name
from lxctl.rpc import Method, MethodTable

if TYPE_CHECKING:
    from lxctl.daemon import App
    from lxctl.server import CallContext

MAX_EXEC_ARGS = 4096


def _app(ctx: CallContext) -> App:
    app: App = ctx.app
    return app


# ---------------------------------------------------------------------------- server
async def server_info(ctx: CallContext) -> dict[str, Any]:
    """Server version, environment, loaded plugins and their drivers."""
    app = _app(ctx)
    drivers = app.drivers.describe()
    return {
        **_versions(),
        "server_pid": os.getpid(),
        "state_dir": str(app.directory),
        "auth": ctx.identity.method if ctx.identity else "untrusted",
        "environment": {
            "kernel": platform.system(),
            "kernel_version": platform.release(),
            "architectures": [platform.machine()],
            "storage_pools_unavailable": app.pools.unavailable,
            "idmap": None if app.drivers.ctx.idmap is None else {
                "uid_base": app.drivers.ctx.idmap.uid_base,
                "gid_base": app.drivers.ctx.idmap.gid_base,
                "size": app.drivers.ctx.idmap.size,
            },
        },
        "plugins": _plugins_with_drivers(app, drivers),
        "plugins_disabled": app.hooks.blocked(),
        "drivers": drivers,
        "methods": app.methods.names(),
    }


def _versions() -> dict[str, str]:
    return {"api_version": API_VERSION, "server": "lxctl", "server_version": __version__}


async def server_version(ctx: CallContext) -> dict[str, str]:
    """The versions only (cheap; ``server.info`` has everything)."""
    return _versions()


def _plugins_with_drivers(
    app: App, described: dict[str, list[dict[str, str]]]
) -> list[dict[str, Any]]:
    """Each loaded plugin with the drivers its module (or a submodule) provides."""
    drivers = [(kind, d["name"], d["class"]) for kind, items in described.items()
               for d in items]
    out = []
    for plugin in app.hooks.plugins():
        module = plugin["module"]
        plugin["drivers"] = [f"{kind}:{name}" for kind, name, cls in drivers
                             if cls.startswith(module + ".")]
        out.append(plugin)
    return out


async def server_ready(ctx: CallContext) -> dict[str, Any]:
    """Whether the daemon has finished starting (answers only once it has)."""
    app = _app(ctx)
    await app.ready.wait()
    return {"ready": True, "storage_ready": not app.pools.unavailable}


async def server_shutdown(ctx: CallContext, force: bool = False,
                          timeout: float = 30.0) -> dict[str, Any]:
    """Stop all instances (clean, then killed after ``timeout``) and exit the daemon."""
    _app(ctx).request_shutdown(stop_instances=True, force=force, timeout=timeout)
    return {"shutting_down": True}


# ---------------------------------------------------------------------------- instances
async def instance_list(ctx: CallContext, full: bool = True) -> list[dict[str, Any]]:
    """All instances with their state (``full``: with resources and addresses)."""
    app = _app(ctx)
    return await app.instances.describe(await app.store.instance_list(), full=full)


async def instance_get(ctx: CallContext, name: str) -> dict[str, Any]:
    app = _app(ctx)
    rec = await app.store.instance_get(check_instance_name(name))
    return (await app.instances.describe([rec], full=True))[0]


async def instance_create(
    ctx: CallContext, image: str, name: str | None = None,
    config: dict[str, str] | None = None, profiles: list[str] | None = None,
    storage: str | None = None, ephemeral: bool = False, start: bool = False,
    description: str = "",
) -> dict[str, Any]:
    """Create an instance from an image (and start it: ``launch``)."""
    op = await _app(ctx).instances.create(
        name=name, image=image, config=config or {}, profiles=profiles, pool=storage,
        ephemeral=ephemeral, start=start, description=description)
    return op.to_api()


async def instance_start(ctx: CallContext, name: str) -> dict[str, Any]:
    return (await _app(ctx).instances.start(name)).to_api()


async def instance_stop(ctx: CallContext, name: str, timeout: float = -1,
                        force: bool = False) -> dict[str, Any]:
    """Stop cleanly within ``timeout`` seconds (-1: 600), then kill; ``force``: kill now."""
    return (await _app(ctx).instances.stop(name, timeout=timeout, force=force)).to_api()


async def instance_restart(ctx: CallContext, name: str, timeout: float = -1,
                           force: bool = False) -> dict[str, Any]:
    return (await _app(ctx).instances.restart(name, timeout=timeout, force=force)).to_api()


async def instance_freeze(ctx: CallContext, name: str) -> dict[str, Any]:
    return (await _app(ctx).instances.freeze(name)).to_api()


async def instance_unfreeze(ctx: CallContext, name: str) -> dict[str, Any]:
    return (await _app(ctx).instances.unfreeze(name)).to_api()


async def instance_delete(ctx: CallContext, name: str, force: bool = False) -> dict[str, Any]:
    return (await _app(ctx).instances.delete(name, force=force)).to_api()


async def instance_exec(
    ctx: CallContext, name: str, command: list[str],
    environment: dict[str, str] | None = None, cwd: str | None = None, user: int = 0,
    group: int = 0, interactive: bool = False, width: int = 80, height: int = 24,
    stream: str | None = None,
) -> dict[str, Any]:
    """Run a command. Input comes as ``stream.input`` notifications for ``stream``;
    output goes out as ``exec.output`` notifications {stream, fd, data (base64)}.
    Returns {"return": exit code}."""
    if not command or len(command) > MAX_EXEC_ARGS:
        raise InvalidArgument("command must be a list of 1 to 4096 strings")
    for key in environment or {}:
        if not key or "=" in key or "\0" in key:
            raise InvalidArgument(f"Invalid environment variable name {key!r}", key=key)
    if any("\0" in arg for arg in command):
        raise InvalidArgument("command arguments must not contain NUL bytes")
    request = ExecRequest(command, environment or {}, cwd, user, group, interactive,
                          width, height)
    conn = ctx.conn
    if stream is None:  # no input: stdin reads as end-of-file at once
        no_input, stdin = trio.open_memory_channel[StreamInput](0)
        no_input.close()
    else:
        stdin = conn.claim_stream(stream)

    async def output(fd: int, data: bytes) -> None:
        if not conn.closed:
            await conn.notify("exec.output", {"stream": stream, "fd": fd,
                                              "data": base64.b64encode(data).decode()})

    try:
        code = await _app(ctx).instances.exec(name, request, stdin, output)
    finally:
        if stream is not None:
            conn.release_stream(stream)
    return {"return": code}


async def stream_input(
    ctx: CallContext, stream: str, data: str | None = None, eof: bool = False,
    width: int | None = None, height: int | None = None, signal: int | None = None,
) -> None:
    """Input for a stream (a notification): base64 ``data``, ``eof``, a window size
    (``width``/``height``) or a ``signal`` number."""
    items: list[StreamInput] = []
    if data is not None:
        try:
            items.append(StreamData(base64.b64decode(data, validate=True)))
        except (binascii.Error, ValueError):
            raise InvalidArgument("stream data must be base64") from None
    if width is not None and height is not None:
        items.append(StreamResize(width, height))
    if signal is not None:
        items.append(StreamSignal(signal))
    if eof:
        items.append(StreamEOF())
    for item in items:
        await ctx.conn.stream_input(stream, item)


# ---------------------------------------------------------------------------- images
async def _chunks(stdin: trio.MemoryReceiveChannel[StreamInput]) -> AsyncIterator[bytes]:
    async for item in stdin:
        if isinstance(item, StreamEOF):
            return
        if isinstance(item, StreamData):
            yield item.data
    raise InvalidArgument("The upload ended without an end-of-file mark")


async def image_import(ctx: CallContext, stream: str,
                       aliases: list[str] | None = None) -> dict[str, Any]:
    """Import a unified image tarball sent as ``stream.input`` notifications."""
    stdin = ctx.conn.claim_stream(stream)
    try:
        rec = await _app(ctx).images.receive(_chunks(stdin), aliases or [])
    finally:
        ctx.conn.release_stream(stream)
    return rec.to_api()


async def image_build(ctx: CallContext, kind: str,
                      aliases: list[str] | None = None) -> dict[str, Any]:
    """Build an image locally, without network: ``kind`` is ``busybox``."""
    if kind != "busybox":
        raise InvalidArgument(f"Unknown image kind {kind!r} (known: busybox)", kind=kind)
    return (await _app(ctx).images.build_busybox(aliases or [])).to_api()


async def image_list(ctx: CallContext) -> list[dict[str, Any]]:
    return [r.to_api() for r in await _app(ctx).store.image_list()]


async def image_get(ctx: CallContext, image: str) -> dict[str, Any]:
    return (await _app(ctx).store.image_get(image)).to_api()


async def image_delete(ctx: CallContext, image: str) -> dict[str, Any]:
    app = _app(ctx)
    rec = await app.images.delete(image)
    await app.pools.forget_image(rec.fingerprint)
    return rec.to_api()


# ---------------------------------------------------------------------------- operations
async def operation_list(ctx: CallContext) -> list[dict[str, Any]]:
    return [op.to_api() for op in _app(ctx).ops.list()]


async def operation_get(ctx: CallContext, id: str) -> dict[str, Any]:
    return _app(ctx).ops.get(id).to_api()


async def operation_wait(ctx: CallContext, id: str, timeout: float = -1) -> dict[str, Any]:
    """Wait until the operation ends (or ``timeout`` seconds; -1: no limit)."""
    return (await _app(ctx).ops.wait(id, timeout)).to_api()


async def operation_cancel(ctx: CallContext, id: str) -> dict[str, Any]:
    return _app(ctx).ops.cancel(id).to_api()


# ---------------------------------------------------------------------------- events
async def events_subscribe(ctx: CallContext, types: list[str] | None = None) -> dict[str, Any]:
    """Stream events as ``event`` notifications on this connection until it closes."""
    types = types or []
    for t in types:
        if t not in EVENT_TYPES:
            raise InvalidArgument(f"Unknown event type {t!r} (known: {', '.join(EVENT_TYPES)})")
    app = _app(ctx)
    sub = app.bus.subscribe(types)
    conn = ctx.conn

    scope = trio.CancelScope()
    conn.on_eof_cancel.append(scope)

    async def forward() -> None:
        with scope:
            try:
                async for event in sub.receive:
                    await conn.notify("event", event.to_api())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                app.bus.unsubscribe(sub)
        if sub.dropped and not conn.closed and not scope.cancel_called:
            await conn.notify("events.dropped", {"reason": "subscriber fell behind"})
            await conn.stream.aclose()

    conn.nursery.start_soon(forward)
    return {"subscribed": types or list(EVENT_TYPES)}


# ---------------------------------------------------------------------------- storage
async def storage_list(ctx: CallContext) -> list[dict[str, Any]]:
    app = _app(ctx)
    out = []
    for rec in await app.store.pool_list():
        item = rec.to_api()
        if rec.name in app.pools.unavailable:
            item["status"] = "Unavailable"
        out.append(item)
    return out


async def profile_list(ctx: CallContext) -> list[dict[str, Any]]:
    return [r.to_api() for r in await _app(ctx).store.profile_list()]


async def profile_get(ctx: CallContext, name: str) -> dict[str, Any]:
    return (await _app(ctx).store.profile_get(name)).to_api()


METHODS: dict[str, Method] = {
    "server.info": server_info,
    "server.version": server_version,
    "server.ready": server_ready,
    "server.shutdown": server_shutdown,
    "instance.list": instance_list,
    "instance.get": instance_get,
    "instance.create": instance_create,
    "instance.start": instance_start,
    "instance.stop": instance_stop,
    "instance.restart": instance_restart,
    "instance.freeze": instance_freeze,
    "instance.unfreeze": instance_unfreeze,
    "instance.delete": instance_delete,
    "instance.exec": instance_exec,
    "stream.input": stream_input,
    "image.import": image_import,
    "image.build": image_build,
    "image.list": image_list,
    "image.get": image_get,
    "image.delete": image_delete,
    "operation.list": operation_list,
    "operation.get": operation_get,
    "operation.wait": operation_wait,
    "operation.cancel": operation_cancel,
    "events.subscribe": events_subscribe,
    "storage.list": storage_list,
    "profile.list": profile_list,
    "profile.get": profile_get,
}


def register(table: MethodTable) -> None:
    for name, func in METHODS.items():
        table.add(name, func)
