"""The public plugin API marker and the plugin manager factory.

A plugin is any importable object (usually a module) with functions decorated by
:data:`impl` and named after a hook in :mod:`lxctl.hookspecs`. Built-in plugins and
third-party ones are found the same way: through the ``lxctl.plugins`` entry-point
group. A plugin is disabled by its entry-point name (``plugins.disabled`` in the daemon
config), before it is imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from lxctl.config.schema import ConfigSchema
    from lxctl.drivers.auth import Identity
    from lxctl.drivers.registry import DriverRegistry
    from lxctl.kernel.events import Event
    from lxctl.rpc import MethodTable

PROJECT = "lxctl"
ENTRY_POINT_GROUP = "lxctl.plugins"

impl = pluggy.HookimplMarker(PROJECT)
"""Decorate a plugin's hook implementations with this: ``@impl``."""


def get_plugin_manager(
    *, load_entrypoints: bool = True, disabled: Iterable[str] = (), extra: Iterable[Any] = (),
    failures: dict[str, str] | None = None,
) -> pluggy.PluginManager:
    """Build a plugin manager: hookspecs, blocked names, entry points, then ``extra``.

    ``extra`` plugins (objects) are registered after the entry points; tests use it.
    Load order is deterministic; ``check_pending`` rejects hooks nobody specified.
    ``failures``: an entry point that fails to load (import, or registration) is left
    out and recorded there, name -> reason; without it, the failure is raised.
    """
    from lxctl import hookspecs

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    if load_entrypoints:
        _load_entrypoints(pm, failures)
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return pm


def _load_entrypoints(pm: pluggy.PluginManager, failures: dict[str, str] | None) -> None:
    """Each entry point on its own, so that one that fails leaves the others loaded."""
    from importlib.metadata import entry_points

    for name in dict.fromkeys(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)):
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
        except Exception as exc:
            if failures is None:
                raise
            if pm.has_plugin(name):
                pm.unregister(name=name)
            failures[name] = f"{type(exc).__name__}: {exc}"


class Hooks:
    """A small typed facade over ``pm.hook`` for the core's calls. ``failed``: the
    plugins that did not load, name -> reason."""

    def __init__(self, pm: pluggy.PluginManager, failed: dict[str, str] | None = None) -> None:
        self.pm = pm
        self.failed = dict(failed or {})

    def register_drivers(self, registry: DriverRegistry) -> None:
        self.pm.hook.lxctl_register_drivers(registry=registry)

    def register_methods(self, methods: MethodTable) -> None:
        self.pm.hook.lxctl_register_methods(methods=methods)

    def register_config_keys(self, schema: ConfigSchema) -> None:
        self.pm.hook.lxctl_register_config_keys(schema=schema)

    def authorize(self, identity: Identity, method: str, project: str) -> bool:
        verdict = self.pm.hook.lxctl_authorize(identity=identity, method=method,
                                               project=project)
        if verdict is not None:
            return bool(verdict)
        return identity.admin or (identity.projects is not None
                                  and project in identity.projects)

    def event(self, event: Event) -> None:
        self.pm.hook.lxctl_event(event=event)

    def plugins(self) -> list[dict[str, Any]]:
        """Loaded plugins: name, the distribution that ships them and its version."""
        dists = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        out = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist = dists.get(id(plugin))
            out.append({
                "name": name,
                "module": getattr(plugin, "__name__", type(plugin).__name__),
                "package": dist.project_name if dist else None,
                "version": dist.version if dist else None,
            })
        return out

    def blocked(self) -> list[str]:
        return sorted(name for name, plugin in self.pm.list_name_plugin() if plugin is None)
