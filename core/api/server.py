"""``server.*``: versions, environment, plugins and drivers, readiness, shutdown."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from lxctl import API_VERSION, __version__
from lxctl.api.context import app_of
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.daemon import App
    from lxctl.server import CallContext

NOUN = "server"


def _versions() -> dict[str, str]:
    return {"api_version": API_VERSION, "server": "lxctl", "server_version": __version__}


async def server_info(ctx: CallContext) -> dict[str, Any]:
    """Server version, environment, loaded plugins and their drivers (with their
    capabilities), and what is unavailable (degraded start)."""
    app = app_of(ctx)
    drivers = app.drivers.describe()
    idmap = app.drivers.ctx.idmap
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
            "unavailable": app.availability.unavailable(),
            "waiting": app.availability.waiting(),
            "idmap": None
            if idmap is None
            else {"uid_base": idmap.uid_base, "gid_base": idmap.gid_base, "size": idmap.size},
            "hypervisors": {name: driver.environment()
                            for name, driver in app.drivers.all("hypervisor").items()},
        },
        "plugins": _plugins_with_drivers(app, drivers),
        "plugins_disabled": app.hooks.blocked(),
        "plugins_failed": app.hooks.failed,
        "drivers": drivers,
        "drivers_unsupported": app.drivers.unsupported,
        "warnings": [asdict(w) for w in app.availability.warnings.values() if not w.resolved],
        "methods": app.methods.names(),
        "hooks": app.event_hooks.describe(),
    }


def _plugins_with_drivers(
    app: App, described: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Each loaded plugin with the drivers its module (or a submodule) provides."""
    drivers = [(kind, d["name"], d["class"]) for kind, items in described.items() for d in items]
    out = []
    for plugin in app.hooks.plugins():
        module = plugin["module"]
        plugin["drivers"] = [
            f"{kind}:{name}" for kind, name, cls in drivers if cls.startswith(module + ".")
        ]
        out.append(plugin)
    return out


async def server_version(ctx: CallContext) -> dict[str, str]:
    """The versions only (cheap; ``server.info`` has everything)."""
    return _versions()


async def server_ready(ctx: CallContext) -> dict[str, Any]:
    """Whether the daemon has finished starting (answers only once it has)."""
    app = app_of(ctx)
    await app.ready.wait()
    return {
        "ready": True,
        "storage_ready": not app.pools.unavailable,
        "unavailable": app.availability.unavailable(),
    }


async def server_shutdown(
    ctx: CallContext, force: bool = False, timeout: float = 30.0
) -> dict[str, Any]:
    """Stop all instances (clean, then killed after ``timeout``) and exit the daemon."""
    app_of(ctx).request_shutdown(stop_instances=True, force=force, timeout=timeout)
    return {"shutting_down": True}


METHODS: dict[str, Method] = {
    "server.info": server_info,
    "server.version": server_version,
    "server.ready": server_ready,
    "server.shutdown": server_shutdown,
}
