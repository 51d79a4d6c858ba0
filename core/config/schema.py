"""Declared config keys: name, scope, type, default, whether live-updatable, doc.

The core declares its own keys; drivers declare theirs in their ``Info`` (owner
``storage:dir``, ``hypervisor:lxc``) and plugins through ``lxctl_register_config_keys``.
Checking a config names the first bad key: unknown, invalid, or belonging to a driver
the object does not use.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from lxctl.config.units import BOOLEAN, SIZE
from lxctl.errors import InvalidArgument, PluginError

VOLATILE_PREFIX = "volatile."


class Scope(enum.StrEnum):
    INSTANCE = "instance"  # instances and profiles
    POOL = "storage-pool"
    VOLUME = "storage-volume"
    NETWORK = "network"
    PROJECT = "project"
    SERVER = "server"


class KeyType(enum.StrEnum):
    STRING = "string"
    BOOL = "bool"
    INTEGER = "integer"
    SIZE = "size"  # 256MiB, or a percentage where allowed


def _check_type(key_type: KeyType, value: str) -> None:
    if key_type is KeyType.BOOL and value.lower() not in BOOLEAN:
        raise ValueError("must be true or false")
    if key_type is KeyType.INTEGER and not value.isdigit():
        raise ValueError("must be a non-negative integer")
    if key_type is KeyType.SIZE and not SIZE.match(value) and not re.fullmatch(
            r"\d{1,3}%", value):
        raise ValueError("must be a size such as 256MiB or a percentage")


@dataclass(frozen=True)
class ConfigKey:
    name: str  # a key, or a namespace ending in "." (user.) that takes any suffix
    scope: Scope
    type: KeyType = KeyType.STRING
    default: str | None = None
    live: bool = False  # can change on a running instance / an up network
    doc: str = ""
    validate: Callable[[str], None] | None = None  # raises ValueError with the reason
    owner: str = "core"  # core, "<kind>:<driver>" or a plugin's name

    @property
    def is_namespace(self) -> bool:
        return self.name.endswith(".")

    def check(self, value: str) -> None:
        _check_type(self.type, value)
        if self.validate is not None:
            self.validate(value)


def _same_kind(a: ConfigKey, b: ConfigKey) -> bool:
    """Both keys declared by drivers of one kind (``network:bridge``, ``network:ovn``)."""
    return ":" in a.owner and ":" in b.owner and \
        a.owner.partition(":")[0] == b.owner.partition(":")[0]


class ConfigSchema:
    def __init__(self) -> None:
        self._keys: dict[tuple[Scope, str], ConfigKey] = {}
        # a key two drivers of one kind both declare (ipv4.address of bridge and ovn
        # networks): each owner's declaration, checked for the objects of that driver
        self._shared: dict[tuple[Scope, str, str], ConfigKey] = {}

    def add(self, key: ConfigKey) -> None:
        slot = (key.scope, key.name)
        first = self._keys.get(slot)
        if first is not None and first.owner != key.owner and _same_kind(first, key):
            self._shared.setdefault((*slot, first.owner), first)
            self._shared[(*slot, key.owner)] = key
            return
        if slot in self._keys and self._keys[slot].owner != key.owner:
            raise PluginError(f"Config key {key.name!r} ({key.scope}) declared twice: by "
                              f"{self._keys[slot].owner} and {key.owner}")
        self._keys[slot] = key

    def add_all(self, keys: Iterable[ConfigKey], owner: str | None = None) -> None:
        for key in keys:
            if owner is not None and key.owner == "core":
                key = ConfigKey(key.name, key.scope, key.type, key.default, key.live,
                                key.doc, key.validate, owner)
            self.add(key)

    def keys(self, scope: Scope | None = None) -> list[ConfigKey]:
        return sorted((k for k in self._keys.values() if scope is None or k.scope == scope),
                      key=lambda k: (k.scope, k.name))

    def find(self, scope: Scope, name: str) -> ConfigKey | None:
        key = self._keys.get((scope, name))
        if key is not None and not key.is_namespace:
            return key
        for (s, n), candidate in self._keys.items():
            if s == scope and candidate.is_namespace and name.startswith(n) and name != n:
                return candidate
        return None

    def check(
        self, scope: Scope, config: Mapping[str, object], *, owners: Iterable[str] | None = None,
        allow_volatile: bool = False, what: str = "",
    ) -> None:
        """Raise InvalidArgument naming the first unknown, invalid or foreign key.

        ``owners``: the drivers the object uses ("<kind>:<name>"); keys of other drivers
        are refused, keys of the core and of plugins are not. None allows keys of every
        driver (profiles, which any instance may use)."""
        allowed = None if owners is None else {"core", *owners}
        for name, value in config.items():
            if not isinstance(value, str):
                raise InvalidArgument(f"Config key {name!r} must have a string value", key=name)
            if name.startswith(VOLATILE_PREFIX):
                if allow_volatile:
                    continue
                raise InvalidArgument(f"Config key {name!r} is managed by the daemon", key=name)
            key = self.find(scope, name)
            if key is None:
                raise InvalidArgument(f"Unknown configuration key: {name}", key=name)
            if allowed is not None and ":" in key.owner and key.owner not in allowed:
                key = next((self._shared[(scope, key.name, o)] for o in sorted(allowed)
                            if (scope, key.name, o) in self._shared), key)
            if allowed is not None and ":" in key.owner and key.owner not in allowed:
                kind, _, driver = key.owner.partition(":")
                raise InvalidArgument(
                    f"Config key {name!r} belongs to the {driver or kind} {kind} driver, "
                    f"which {what or 'this object'} does not use", key=name, owner=key.owner)
            try:
                key.check(value)
            except ValueError as exc:
                raise InvalidArgument(f"Invalid value for {name!r}: {value!r} {exc}",
                                      key=name) from None

    def defaults(self, scope: Scope) -> dict[str, str]:
        return {k.name: k.default for k in self.keys(scope)
                if k.default is not None and not k.is_namespace}
