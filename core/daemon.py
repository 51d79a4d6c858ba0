"""``lxctld``: the daemon's main: build the kernel, load plugins, serve, shut down.

Start-up order: state dir and lock, plugins and drivers, state store (migrations),
interrupted operations marked failed, default pool and profile on first start, pools
mounted (a failing one is marked unavailable, never fatal), RPC methods, the socket,
running instances re-adopted and due ones started, then ready.

SIGTERM/SIGINT: stop accepting, let running operations finish (``shutdown.timeout``),
close connections and exit; instances keep running (liblxc containers outlive the
daemon) and are re-adopted at the next start. ``server.shutdown`` (``lxctl admin
shutdown``) stops the instances first, as Incus does.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import trio

from lxctl import __version__, api, logs
from lxctl.config import DaemonConfig, load_daemon_config, socket_path, state_dir
from lxctl.drivers import DriverContext, DriverRegistry, Drivers
from lxctl.errors import InvalidState, LxctlError
from lxctl.kernel.events import Event, EventBus
from lxctl.kernel.operations import Operations
from lxctl.objects.idmap import IdMap, from_subid
from lxctl.objects.images import ImageStore
from lxctl.objects.instances import Instances
from lxctl.objects.pools import Pools
from lxctl.plugin import Hooks, get_plugin_manager
from lxctl.rpc import Dispatcher, MethodTable
from lxctl.server import Server, bind_unix_socket, request_logger
from lxctl.state.store import SQLiteStore, StateStore

log = structlog.get_logger("lxctl.daemon")

PLUGIN_EVENT_QUEUE = 4096


@dataclass
class App:
    """Everything one daemon holds; RPC methods reach it through their call context."""

    directory: Path
    config: DaemonConfig
    hooks: Hooks
    drivers: Drivers
    store: StateStore
    bus: EventBus
    ops: Operations
    images: ImageStore
    pools: Pools
    instances: Instances
    methods: MethodTable
    ready: trio.Event = field(default_factory=trio.Event)
    shutdown_requested: trio.Event = field(default_factory=trio.Event)
    shutdown_options: dict[str, Any] = field(default_factory=dict)

    def request_shutdown(self, *, stop_instances: bool, force: bool = False,
                         timeout: float = 30.0) -> None:
        self.shutdown_options = {"stop_instances": stop_instances, "force": force,
                                 "timeout": timeout}
        self.shutdown_requested.set()


def daemon_id(directory: Path) -> str:
    return hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:8]


def _lock(directory: Path) -> int:
    fd = os.open(directory / "lxctld.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InvalidState(f"Another lxctld is running with LXCTL_DIR={directory}") from None
    return fd


def _idmap() -> IdMap | None:
    try:
        return from_subid()
    except InvalidState as exc:
        log.warning("unprivileged containers unavailable", reason=exc.message)
        return None


def _plugin_events(hooks: Hooks, nursery: trio.Nursery, bus: EventBus) -> None:
    """Feed plugin ``lxctl_event`` hooks from one task, never from the publisher."""
    send, receive = trio.open_memory_channel[Event](PLUGIN_EVENT_QUEUE)
    dropped = 0

    def enqueue(event: Event) -> None:
        nonlocal dropped
        try:
            send.send_nowait(event)
        except trio.WouldBlock:
            dropped += 1
            if dropped in (1, 10, 100) or dropped % 1000 == 0:
                log.warning("plugin event consumers fell behind; events dropped",
                            dropped=dropped)

    async def consume() -> None:
        async for event in receive:
            try:
                hooks.event(event)
            except Exception as exc:
                log.error("plugin event consumer failed", exc_info=exc)

    bus.add_consumer(enqueue)
    nursery.start_soon(consume)


def _log_incident(exc: BaseException, incident: str, method: str) -> None:
    log.error("internal error", incident=incident, method=method, exc_info=exc)


async def run_daemon(
    directory: Path,
    config: DaemonConfig | None = None,
    *,
    extra_plugins: Iterable[Any] = (),
    task_status: trio.TaskStatus[App] = trio.TASK_STATUS_IGNORED,
) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o711)
    config = config or load_daemon_config(directory)
    lock_fd = _lock(directory)
    try:
        await _serve(directory, config, extra_plugins, task_status)
    finally:
        os.close(lock_fd)


async def _serve(directory: Path, config: DaemonConfig, extra_plugins: Iterable[Any],
                 task_status: trio.TaskStatus[App]) -> None:
    hooks = Hooks(get_plugin_manager(disabled=config.disabled_plugins, extra=extra_plugins))
    registry = DriverRegistry()
    hooks.register_drivers(registry)
    drivers = Drivers(registry, DriverContext(directory, daemon_id(directory), _idmap()))
    store = SQLiteStore(directory / "lxctl.db")
    bus = EventBus()
    try:
        async with trio.open_nursery() as nursery:
            _plugin_events(hooks, nursery, bus)
            ops = Operations(store, bus, nursery)
            ops.adopt_failed(await store.operations_fail_running(
                "The daemon stopped while this operation was running"))
            images = ImageStore(directory / "images", store, bus)
            images.cleanup_tmp()
            pools = Pools(store, drivers, bus)
            await pools.ensure_defaults()
            await pools.mount_all()
            instances = Instances(store, drivers, bus, ops, images, pools)
            methods = MethodTable()
            app = App(directory, config, hooks, drivers, store, bus, ops, images, pools,
                      instances, methods)
            api.register(methods)
            hooks.register_methods(methods)
            dispatcher = Dispatcher(methods, on_internal=_log_incident, on_call=request_logger())
            server = Server(dispatcher, drivers.auth(), app, config.max_message_size)
            listener = await bind_unix_socket(socket_path(directory), config.socket_group)
            await nursery.start(server.serve, listener)
            await instances.adopt()
            app.ready.set()
            log.info("daemon started", version=__version__, dir=str(directory),
                     plugins=[p["name"] for p in hooks.plugins()], pid=os.getpid())
            task_status.started(app)
            await _wait_for_shutdown(app)
            await _shut_down(app, server, ops)
            with trio.move_on_after(10):
                await drivers.close()
            nursery.cancel_scope.cancel()
    finally:
        socket_path(directory).unlink(missing_ok=True)
        await store.close()
        log.info("daemon stopped")


async def _wait_for_shutdown(app: App) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            async def on_signal() -> None:
                async for signum in signals:
                    log.info("signal received", signal=signal.Signals(signum).name)
                    app.request_shutdown(stop_instances=False)
                    return

            nursery.start_soon(on_signal)
            await app.shutdown_requested.wait()
            nursery.cancel_scope.cancel()


async def _shut_down(app: App, server: Server, ops: Operations) -> None:
    opts = app.shutdown_options
    server.stop_accepting()
    if opts.get("stop_instances"):
        log.info("stopping all instances before exit")
        await app.instances.stop_all(0 if opts.get("force") else opts.get("timeout", 30.0),
                                     bool(opts.get("force")))
    with trio.move_on_after(app.config.shutdown_timeout):
        for op in ops.list():
            await op.done.wait()
    server.drain(0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lxctld", description="The lxctl daemon")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--log-level", default=None, help="debug, info, warning, error")
    args = parser.parse_args(argv)
    directory = state_dir()
    try:
        config = load_daemon_config(directory) if directory.exists() else DaemonConfig()
    except LxctlError as exc:
        print(f"lxctld: {exc.message}", file=sys.stderr)
        sys.exit(1)
    logs.configure(args.log_level or config.log_level)
    try:
        trio.run(run_daemon, directory, config)
    except* LxctlError as group:
        messages = [e.message for e in _leaves(group) if isinstance(e, LxctlError)]
        log.error("daemon failed", error="; ".join(messages))
        print(f"lxctld: {'; '.join(messages)}", file=sys.stderr)
        sys.exit(1)
    except* KeyboardInterrupt:
        pass


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]
