"""``lxctld``: the daemon's main: build the kernel, load plugins, serve, shut down.

Start-up order: state dir and lock, plugins and drivers, config schema, state store
(migrations), defaults on first start (a ``default`` dir pool and profile, no network),
listener; then, under one nursery: the plugin event feed, the availability loop,
operations (interrupted ones marked failed), pools and networks brought up (one that
fails is Unavailable and retried: degraded start), RPC methods, the server, running
instances re-adopted and due ones started (or left waiting for what they need), ready.
Everything that can refuse to start happens before the nursery opens, so its error
reaches ``main`` as itself.

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
from lxctl.config.daemon import DaemonConfig, load_daemon_config, socket_path, state_dir
from lxctl.config.instance import INSTANCE_KEYS
from lxctl.config.project import PROJECT_KEYS
from lxctl.config.schema import ConfigSchema
from lxctl.drivers.context import DriverContext
from lxctl.drivers.registry import DriverRegistry, Drivers
from lxctl.errors import InvalidState, LxctlError
from lxctl.kernel.availability import Availability
from lxctl.kernel.events import Event, EventBus
from lxctl.kernel.hooks import HookRunner
from lxctl.kernel.operations import Operations
from lxctl.objects.hooks import HOOK_KEYS
from lxctl.objects.idmap import IdMap, from_subid
from lxctl.objects.images import ImageStore
from lxctl.objects.instances import Instances
from lxctl.objects.networks import Networks, watch_links
from lxctl.objects.pools import Pools
from lxctl.objects.profiles import Profiles
from lxctl.objects.projects import Projects
from lxctl.objects.warnings import Warnings
from lxctl.plugin import Hooks, get_plugin_manager
from lxctl.rpc import Dispatcher, MethodTable
from lxctl.server import Server, authorizer, bind_unix_socket, request_logger
from lxctl.state.sqlite import SQLiteStore
from lxctl.state.store import StateStore

log = structlog.get_logger("lxctl.daemon")

PLUGIN_EVENT_QUEUE = 4096


@dataclass
class App:
    """Everything one daemon holds; RPC methods reach it through their call context."""

    directory: Path
    config: DaemonConfig
    hooks: Hooks
    drivers: Drivers
    schema: ConfigSchema
    store: StateStore
    bus: EventBus
    availability: Availability
    images: ImageStore
    pools: Pools
    profiles: Profiles
    projects: Projects
    networks: Networks
    methods: MethodTable
    ops: Operations = field(init=False)
    instances: Instances = field(init=False)
    warnings: Warnings = field(init=False)
    event_hooks: HookRunner = field(init=False)
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


def build_schema(drivers: Drivers, hooks: Hooks) -> ConfigSchema:
    """The core's keys, each driver's (owned by it), then the plugins'."""
    schema = ConfigSchema()
    schema.add_all((*INSTANCE_KEYS, *HOOK_KEYS, *PROJECT_KEYS))
    for name, driver in drivers.all("storage").items():
        schema.add_all((*driver.info.pool_keys, *driver.info.volume_keys),
                       owner=f"storage:{name}")
    for name, driver in drivers.all("hypervisor").items():
        schema.add_all(driver.info.config_keys, owner=f"hypervisor:{name}")
    for name, driver in drivers.all("network").items():
        schema.add_all(driver.info.config_keys, owner=f"network:{name}")
    hooks.register_config_keys(schema)
    return schema


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


def _event_hooks(app: App) -> HookRunner:
    """The administrator's hook scripts (``hooks.directory``, else hooks.d), fed by the
    bus."""
    cfg = app.config
    app.event_hooks = HookRunner(
        app.bus, Path(cfg.hooks_dir) if cfg.hooks_dir else app.directory / "hooks.d",
        app.directory, cfg.hooks_timeout, cfg.hooks_concurrency)
    app.bus.add_consumer(app.event_hooks.consume)
    return app.event_hooks


def _log_incident(exc: BaseException, incident: str, method: str) -> None:
    log.error("internal error", incident=incident, method=method, exc_info=exc)


async def run_daemon(
    directory: Path,
    config: DaemonConfig | None = None,
    *,
    plugins: Iterable[Any] | None = None,
    extra_plugins: Iterable[Any] = (),
    listener: trio.abc.Listener[Any] | None = None,
    task_status: trio.TaskStatus[App] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a daemon on ``directory``. ``plugins``: use exactly these (no entry points);
    ``extra_plugins``: add these to the entry points'; ``listener``: serve it instead
    of the Unix socket (tests pass memory listeners)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o711)
    config = config or load_daemon_config(directory)
    lock_fd = _lock(directory)
    try:
        app = await _build(directory, config, plugins, extra_plugins)
        try:
            if listener is None:
                listener = await bind_unix_socket(socket_path(directory), config.socket_group)
            await _serve(app, listener, task_status)
        finally:
            socket_path(directory).unlink(missing_ok=True)
            with trio.CancelScope(shield=True):
                await app.store.close()
            log.info("daemon stopped")
    finally:
        os.close(lock_fd)


async def _build(directory: Path, config: DaemonConfig, plugins: Iterable[Any] | None,
                 extra_plugins: Iterable[Any]) -> App:
    """Everything that may refuse to start: plugins, drivers, schema, store, defaults."""
    failed: dict[str, str] = {}  # plugins that did not load: left out, with a warning
    hooks = Hooks(get_plugin_manager(
        load_entrypoints=plugins is None, disabled=config.disabled_plugins,
        extra=[*(plugins or ()), *extra_plugins], failures=failed), failed)
    registry = DriverRegistry()
    hooks.register_drivers(registry)
    idmap = await trio.to_thread.run_sync(_idmap)
    drivers = Drivers(registry, DriverContext(directory, daemon_id(directory), idmap,
                                                 config.driver_settings()))
    schema = build_schema(drivers, hooks)
    store = await SQLiteStore.open(directory / "lxctl.db")
    try:
        bus = EventBus(backlog=config.events_backlog)
        availability = Availability(bus, max_interval=config.retry_max_interval)
        warnings = Warnings(store, bus)  # before anything can raise one
        availability.sink = warnings.availability_sink
        bus.add_consumer(warnings.consume)
        for name, reason in failed.items():
            warnings.notice("Plugin load failure", f"Plugin {name} failed to load and is left "
                            f"out: {reason}", entity_type="plugin", entity_name=name)
        images = ImageStore(directory / "images", store, bus)
        await images.cleanup_tmp()
        pools = Pools(store, drivers, bus, availability, schema)
        pools.native_transfers = config.native_transfers
        await pools.ensure_default(config.default_pool_driver)
        profiles = Profiles(store, schema, bus, drivers)
        await profiles.ensure_default()
        app = App(directory, config, hooks, drivers, schema, store, bus, availability,
                  images, pools, profiles, Projects(store),
                  Networks(store, drivers, bus, availability), MethodTable())
        app.warnings = warnings
        return app
    except BaseException:
        await store.close()
        raise


async def _serve(app: App, listener: trio.abc.Listener[Any],
                 task_status: trio.TaskStatus[App]) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(app.warnings.run)
        await nursery.start(_event_hooks(app).run)
        _plugin_events(app.hooks, nursery, app.bus)
        await nursery.start(app.availability.run)
        app.ops = Operations(app.store, app.bus, nursery)
        app.ops.adopt_failed(await app.store.write(lambda t: t.operations_fail_running(
            "The daemon stopped while this operation was running")))
        await app.pools.bring_up_all()
        await app.networks.bring_up_all()
        await nursery.start(watch_links, app.availability)
        app.instances = Instances(app.store, app.drivers, app.bus, app.ops, app.images,
                                  app.pools, app.profiles, app.networks, app.availability,
                                  app.schema, seeds=app.directory / "cloud-init")
        api.register(app.methods)
        app.hooks.register_methods(app.methods)
        dispatcher = Dispatcher(app.methods, on_internal=_log_incident,
                                on_call=request_logger(), guard=authorizer(app.hooks))
        server = Server(dispatcher, app.drivers, app.hooks, app, app.config.max_message_size)
        await nursery.start(server.serve, listener)
        await app.instances.adopt()
        nursery.start_soon(app.instances.prune_expired_forever,
                           app.config.snapshots_prune_interval)
        app.ready.set()
        log.info("daemon started", version=__version__, dir=str(app.directory),
                 plugins=[p["name"] for p in app.hooks.plugins()], pid=os.getpid())
        task_status.started(app)
        await _wait_for_shutdown(app)
        await _shut_down(app, server)
        with trio.move_on_after(10):
            await app.drivers.close()
        nursery.cancel_scope.cancel()


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


async def _shut_down(app: App, server: Server) -> None:
    opts = app.shutdown_options
    server.stop_accepting()
    app.ops.close()
    if opts.get("stop_instances"):
        log.info("stopping all instances before exit")
        await app.instances.stop_all(0 if opts.get("force") else opts.get("timeout", 30.0),
                                     bool(opts.get("force")))
    with trio.move_on_after(app.config.shutdown_timeout):
        for op in app.ops.list():
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
        logs.configure(args.log_level or config.log_level)
        trio.run(run_daemon, directory, config)
    except LxctlError as exc:  # refused to start (raised before the nursery opened)
        log.error("daemon failed", error=exc.message)
        print(f"lxctld: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
