"""An example third-party lxctl plugin.

It registers through the ``lxctl.plugins`` entry-point group (see its pyproject.toml),
exactly like the built-in plugins, and uses only lxctl's public API:

* an RPC method, ``example.hello``;
* an event consumer (``lxctl_event``) that counts lifecycle events by action,
  readable through ``example.events``.

Install it next to lxctl (``pip install contrib/example-plugin``) and restart lxctld:
``lxctl info`` lists it under ``plugins``. Disable it by name in lxctld.toml:
``[plugins] disabled = ["example"]``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lxctl.public import Event, LifecycleEvent, MethodTable, impl

__version__ = "0.1.0"

_actions: Counter[str] = Counter()


@impl
def lxctl_event(event: Event) -> None:
    if isinstance(event, LifecycleEvent):
        _actions[event.action] += 1


async def hello(ctx: Any, name: str = "world") -> dict[str, str]:
    """Say hello; shows that a plugin can add RPC methods with checked parameters."""
    who = ctx.identity.name if ctx.identity else "anonymous"
    return {"greeting": f"Hello, {name}!", "caller": who}


async def events(ctx: Any) -> dict[str, int]:
    """How many lifecycle events of each action this plugin has consumed."""
    return dict(_actions)


@impl
def lxctl_register_methods(methods: MethodTable) -> None:
    methods.add("example.hello", hello)
    methods.add("example.events", events)
