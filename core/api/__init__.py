"""The core's RPC methods: one thin module per noun (``<noun>.<verb>``), each with a
``NOUN`` and a ``METHODS`` table; behaviour lives in ``objects/``. Method parameters are
checked against the signatures before a method runs; OpenRPC will be generated from
these tables."""

from __future__ import annotations

from types import ModuleType

from lxctl.api import (
    events,
    files,
    images,
    instance_snapshots,
    instances,
    network_acls,
    networks,
    operations,
    profiles,
    projects,
    rpc,
    server,
    storage,
    storage_volumes,
    streams,
    warnings,
)
from lxctl.rpc import MethodTable

MODULES: tuple[ModuleType, ...] = (
    server,
    instances,
    instance_snapshots,
    streams,
    images,
    operations,
    events,
    files,
    storage,
    storage_volumes,
    profiles,
    projects,
    networks,
    network_acls,
    warnings,
    rpc,
)


def register(table: MethodTable) -> None:
    for module in MODULES:
        for name, func in module.METHODS.items():
            table.add(name, func)
