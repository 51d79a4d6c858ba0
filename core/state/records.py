"""The persistent objects of the state store, as plain dataclasses.

They carry data only; behaviour lives in ``objects/``. ``to_api()`` gives the JSON shape
the API returns, close to Incus's objects. Objects are keyed by (project, name);
``location`` is the cluster member that holds them ("none" on a standalone server).
Storage pools are server-wide, as in Incus; their volumes belong to projects.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_PROJECT = "default"
STANDALONE = "none"


def now() -> float:
    return time.time()


def iso(ts: float | None) -> str:
    if not ts:
        return "1970-01-01T00:00:00Z"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class InstanceRecord:
    name: str
    type: str = "container"
    architecture: str = "x86_64"
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=lambda: ["default"])
    ephemeral: bool = False
    created_at: float = field(default_factory=now)
    last_used_at: float = 0.0
    # the power state the daemon last put it in ("Running"/"Stopped"/"Frozen"): used to
    # re-adopt or autostart after a restart, like Incus's volatile.last_state.power
    power_state: str = "Stopped"
    project: str = DEFAULT_PROJECT
    location: str = STANDALONE

    @property
    def key(self) -> tuple[str, str]:
        return (self.project, self.name)

    @property
    def qualified_name(self) -> str:
        """Unique on this server: project-prefixed outside the default project."""
        return self.name if self.project == DEFAULT_PROJECT else f"{self.project}_{self.name}"

    def to_api(self) -> dict[str, Any]:
        # by hand, not asdict(): this runs for every instance of every list
        return {
            "name": self.name, "type": self.type, "architecture": self.architecture,
            "description": self.description, "config": dict(self.config),
            "devices": {name: dict(conf) for name, conf in self.devices.items()},
            "profiles": list(self.profiles), "ephemeral": self.ephemeral,
            "created_at": iso(self.created_at), "last_used_at": iso(self.last_used_at),
            "project": self.project, "location": self.location,
        }


@dataclass
class SnapshotRecord:
    """An instance snapshot: the instance's own config, devices and profiles when its
    root volume's snapshot ``name`` was taken."""

    instance: str
    name: str
    config: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    description: str = ""
    created_at: float = field(default_factory=now)
    expires_at: float = 0.0  # 0: never
    stateful: bool = False
    project: str = DEFAULT_PROJECT

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.project, self.instance, self.name)

    def summary(self) -> dict[str, Any]:
        """What an instance's ``snapshots`` list shows of it (``to_api`` has the rest)."""
        return {"name": self.name, "description": self.description,
                "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
                "stateful": self.stateful}

    def to_api(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "config": dict(self.config),
                "devices": {n: dict(c) for n, c in self.devices.items()},
                "profiles": list(self.profiles), "created_at": iso(self.created_at),
                "expires_at": iso(self.expires_at), "stateful": self.stateful}


@dataclass
class ImageRecord:
    fingerprint: str
    filename: str
    size: int
    architecture: str = "x86_64"
    type: str = "container"
    properties: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    created_at: float = 0.0
    uploaded_at: float = field(default_factory=now)
    public: bool = False
    project: str = DEFAULT_PROJECT

    def to_api(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = iso(self.created_at)
        d["uploaded_at"] = iso(self.uploaded_at)
        d["aliases"] = [{"name": a, "description": ""} for a in self.aliases]
        return d


@dataclass
class PoolRecord:
    name: str
    driver: str
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def to_api(self) -> dict[str, Any]:
        return {**asdict(self), "status": "Created", "locations": [STANDALONE]}


@dataclass
class VolumeRecord:
    """A storage volume the daemon created (instance roots and, later, custom ones)."""

    pool: str
    name: str
    type: str  # container | virtual-machine | custom (image volumes are the driver's)
    content_type: str = "filesystem"
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""
    project: str = DEFAULT_PROJECT
    location: str = STANDALONE
    created_at: float = field(default_factory=now)

    def to_api(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = iso(self.created_at)
        return d


@dataclass
class ProfileRecord:
    name: str
    config: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    description: str = ""
    project: str = DEFAULT_PROJECT

    def to_api(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProjectRecord:
    name: str
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def to_api(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NetworkRecord:
    name: str
    type: str  # the network driver: bridge, macvlan, ovn ...
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""
    project: str = DEFAULT_PROJECT
    location: str = STANDALONE

    def to_api(self) -> dict[str, Any]:
        return {**asdict(self), "managed": True}


@dataclass
class NetworkAclRecord:
    """A network ACL: rules (dicts of Incus's rule keys) for ingress and egress."""

    name: str
    ingress: list[dict[str, str]] = field(default_factory=list)
    egress: list[dict[str, str]] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""
    project: str = DEFAULT_PROJECT

    def to_api(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OperationRecord:
    id: str
    description: str
    status: str = "Running"
    created_at: float = field(default_factory=now)
    updated_at: float = field(default_factory=now)
    resources: dict[str, list[str]] = field(default_factory=dict)
    err: str = ""
    project: str = DEFAULT_PROJECT
    location: str = STANDALONE


WARNING_STATUSES = ("new", "acknowledged", "resolved")
WARNING_SEVERITIES = ("low", "moderate", "high")


@dataclass
class WarningRecord:
    """A persistent warning: one row per (project, type, entity, location), counted."""

    uuid: str
    type: str
    last_message: str
    project: str = ""  # "": of no project (a storage pool, the daemon itself)
    entity_type: str = ""
    entity_name: str = ""
    count: int = 1
    first_seen: float = field(default_factory=now)
    last_seen: float = field(default_factory=now)
    severity: str = "moderate"
    status: str = "new"
    location: str = STANDALONE

    def to_api(self) -> dict[str, Any]:
        return {**asdict(self), "first_seen_at": iso(self.first_seen),
                "last_seen_at": iso(self.last_seen)}
