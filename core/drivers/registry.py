"""The driver registry that plugins fill through ``lxctl_register_drivers``, and the
daemon's driver objects, looked up by kind and name. The core never imports a plugin."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from lxctl.drivers.auth import AuthDriver
from lxctl.drivers.context import DriverContext
from lxctl.drivers.hypervisor import HypervisorDriver
from lxctl.drivers.network import NetworkDriver
from lxctl.drivers.storage import StorageDriver
from lxctl.errors import PluginError

KINDS = ("storage", "hypervisor", "network", "auth")


def _info(kind: str, cls: type[Any]) -> Any:
    info = getattr(cls, "info", None)
    if info is None or not dataclasses.is_dataclass(info) or not getattr(info, "name", ""):
        raise PluginError(f"{kind} driver class {cls.__module__}.{cls.__qualname__} declares "
                          "no info (a dataclass with a name)")
    return info


class DriverRegistry:
    """Driver classes by kind and name."""

    def __init__(self) -> None:
        self._classes: dict[str, dict[str, type[Any]]] = {k: {} for k in KINDS}

    def _add(self, kind: str, cls: type[Any]) -> None:
        name = _info(kind, cls).name
        if name in self._classes[kind]:
            other = self._classes[kind][name]
            raise PluginError(
                f"{kind} driver {name!r} registered twice: by {other.__module__} and "
                f"{cls.__module__}")
        self._classes[kind][name] = cls

    def add_storage(self, cls: type[StorageDriver]) -> None:
        self._add("storage", cls)

    def add_hypervisor(self, cls: type[HypervisorDriver]) -> None:
        self._add("hypervisor", cls)

    def add_network(self, cls: type[NetworkDriver]) -> None:
        self._add("network", cls)

    def add_auth(self, cls: type[AuthDriver]) -> None:
        self._add("auth", cls)

    def classes(self, kind: str) -> dict[str, type[Any]]:
        return dict(self._classes[kind])


def _plain(value: Any) -> Any:
    """Info dataclasses as JSON: sets sorted, enums by value, config keys by name."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "scope") and hasattr(value, "validate"):  # a ConfigKey
            return value.name  # type: ignore[attr-defined]
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


class Drivers:
    """Driver objects of one daemon. A driver whose ``probe()`` says this machine
    cannot run it is left out, and the reason is kept (``unsupported``)."""

    def __init__(self, registry: DriverRegistry, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.unsupported: dict[str, dict[str, str]] = {k: {} for k in KINDS}
        self._objs: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
        for kind in KINDS:
            for name, cls in registry.classes(kind).items():
                probe = getattr(cls, "probe", None)
                reason = probe() if probe is not None else None
                if reason:
                    self.unsupported[kind][name] = reason
                else:
                    self._objs[kind][name] = cls(ctx)

    def _get(self, kind: str, name: str) -> Any:
        try:
            return self._objs[kind][name]
        except KeyError:
            why = self.unsupported[kind].get(name)
            if why:
                raise PluginError(f"{kind} driver {name!r} cannot run on this machine: {why}",
                                  driver=name, driver_kind=kind) from None
            raise PluginError(
                f"{kind} driver {name!r} not found: is the plugin that provides it "
                f"installed and enabled? (available: {', '.join(self.names(kind)) or 'none'})",
                driver=name, driver_kind=kind,
            ) from None

    def storage(self, name: str) -> StorageDriver:
        driver: StorageDriver = self._get("storage", name)
        return driver

    def network(self, name: str) -> NetworkDriver:
        driver: NetworkDriver = self._get("network", name)
        return driver

    def hypervisor_for(self, instance_type: str) -> HypervisorDriver:
        for driver in self._objs["hypervisor"].values():
            if instance_type in driver.info.instance_types:
                hv: HypervisorDriver = driver
                return hv
        raise PluginError(
            f"No hypervisor driver for instance type {instance_type!r}: is the plugin "
            "installed and enabled?", instance_type=instance_type)

    def auth_for(self, peer_kind: str) -> list[AuthDriver]:
        return [d for d in self._objs["auth"].values() if peer_kind in d.info.peer_kinds]

    def all(self, kind: str) -> dict[str, Any]:
        return dict(self._objs[kind])

    def names(self, kind: str) -> list[str]:
        return sorted(self._objs[kind])

    async def close(self) -> None:
        """Tell every driver that has a ``close`` that the daemon is exiting."""
        for objs in self._objs.values():
            for obj in objs.values():
                close = getattr(obj, "close", None)
                if close is not None:
                    await close()

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        return {
            kind: [
                {"name": name, "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
                 "info": _plain(obj.info)}
                for name, obj in sorted(objs.items())
            ]
            for kind, objs in self._objs.items()
        }
