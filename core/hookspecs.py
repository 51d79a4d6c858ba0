"""Every hook lxctl calls, in one module. Hooks are synchronous.

pluggy has no async hooks (an ``async def`` implementation would return a coroutine that
pluggy counts as a result), so async work lives on driver objects that a hook
*registers*; the core awaits their methods. Types are imported only for type checking,
so this module stays at the bottom of the import graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from lxctl.config.schema import ConfigSchema
    from lxctl.drivers.auth import Identity
    from lxctl.drivers.registry import DriverRegistry
    from lxctl.kernel.events import Event
    from lxctl.rpc import MethodTable

hookspec = pluggy.HookspecMarker("lxctl")


# ---------------------------------------------------------------------------- drivers
@hookspec
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    """Register driver classes: ``registry.add_storage(DirDriver)``, ``add_hypervisor``,
    ``add_network``, ``add_auth``.

    Called once at daemon start, before any state is loaded. A driver class declares
    its capabilities as an ``info`` dataclass (``StorageInfo``, ``HypervisorInfo``,
    ``NetworkInfo``, ``AuthInfo``) whose ``name`` is unique within its kind, may have a
    ``probe()`` classmethod saying why this machine cannot run it, and is constructed
    with the daemon's :class:`~lxctl.drivers.context.DriverContext`. Registering two
    drivers with the same kind and name is an error that names both plugins.
    """


# ---------------------------------------------------------------------------- config
@hookspec
def lxctl_register_config_keys(schema: ConfigSchema) -> None:
    """Declare config keys: ``schema.add(ConfigKey("user.x", Scope.INSTANCE, ...,
    owner="myplugin"))``.

    Called once at daemon start, after the drivers' own keys (from their ``info``) are
    in the schema. Each key has a scope, a type, a default, a validator and whether it
    can change live; an instance, pool or network config with a key nobody declared is
    refused with a message that names the key.
    """


# ---------------------------------------------------------------------------- api
@hookspec
def lxctl_register_methods(methods: MethodTable) -> None:
    """Add JSON-RPC methods: ``methods.add("example.hello", coroutine_function)``.

    Called once at daemon start, after the core's own methods are in the table.
    Method names are dotted (``noun.verb``); a name already taken is an error.
    The coroutine gets the call context first and keyword parameters whose type hints
    are enforced before the call.
    """


@hookspec(firstresult=True)
def lxctl_authorize(identity: Identity, method: str, project: str) -> bool | None:
    """Decide whether ``identity`` may call ``method`` in ``project``.

    Called before every call by an authenticated peer. Return True to allow, False to
    refuse (the caller gets a ``forbidden`` error), or None to let the next plugin
    decide. When every implementation returns None, admins (``identity.admin``) are
    allowed and others only in the projects of ``identity.projects``.
    """


# ---------------------------------------------------------------------------- events
@hookspec
def lxctl_event(event: Event) -> None:
    """Consume one event (lifecycle, operation, logging) after it was published.

    Called from a single consumer task, in publication order, never from the code that
    published the event: a slow implementation delays only other plugin consumers, and
    when it falls more than the queue's length behind, events are dropped for plugins
    (and a warning is logged). It must not block for long; exceptions are logged and
    otherwise ignored.
    """
