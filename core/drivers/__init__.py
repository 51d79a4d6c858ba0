"""Driver protocols and the registry that plugins fill through ``lxctl_register_drivers``.

Drivers are async objects (their methods may block on the kernel or on tools); the hook
that registers them is synchronous. The core never imports a plugin: it looks drivers up
here by kind and name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from lxctl.errors import PluginError

if TYPE_CHECKING:
    import trio

    from lxctl.objects.idmap import IdMap
    from lxctl.state.records import ImageRecord, InstanceRecord, PoolRecord


@dataclass(frozen=True)
class DriverContext:
    """What every driver is constructed with."""

    state_dir: Path
    daemon_id: str  # short, stable per state dir: keeps names of two daemons apart
    idmap: IdMap | None  # the daemon's map for unprivileged containers (None: none found)


# ---------------------------------------------------------------------------- storage
@dataclass(frozen=True)
class RootVolume:
    """An instance's root filesystem: a directory, or an overlay of ``lower`` (the
    image, read-only) and ``path`` (the instance's own changes)."""

    path: Path
    lower: Path | None = None


class StorageDriver(Protocol):
    """A storage backend. One object serves every pool that uses this driver."""

    name: ClassVar[str]
    # capabilities, as data (like Incus's driver Info)
    optimized_images: ClassVar[bool]
    config_keys: ClassVar[frozenset[str]]

    def __init__(self, ctx: DriverContext) -> None: ...

    async def create_pool(self, pool: PoolRecord) -> dict[str, str]:
        """Create the pool; return config keys to store (e.g. a default ``source``)."""

    async def mount_pool(self, pool: PoolRecord) -> None:
        """Make the pool usable after a daemon start; raise Unavailable if it is not."""

    async def delete_pool(self, pool: PoolRecord) -> None: ...

    async def ensure_image_volume(
        self, pool: PoolRecord, image: ImageRecord, tarball: Path, idmap: IdMap | None
    ) -> Path:
        """Unpack an image once per pool and id map; return its rootfs directory."""

    async def delete_image_volumes(self, pool: PoolRecord, fingerprint: str) -> None: ...

    async def create_instance_volume(
        self, pool: PoolRecord, name: str, source: Path
    ) -> RootVolume:
        """Create an instance's root volume from an image rootfs."""

    async def delete_instance_volume(self, pool: PoolRecord, name: str) -> None:
        """Delete it; deleting one that does not exist is not an error."""


# ---------------------------------------------------------------------------- hypervisor
@dataclass(frozen=True)
class InstanceState:
    """What the hypervisor reports about one instance right now."""

    status: str  # Running, Stopped, Frozen, Error
    pid: int = -1
    processes: int = -1
    memory: dict[str, int] = field(default_factory=dict)  # usage, usage_peak (bytes)
    cpu: dict[str, int] = field(default_factory=dict)  # usage (ns)
    network: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecRequest:
    command: list[str]
    environment: dict[str, str]
    cwd: str | None = None
    user: int = 0
    group: int = 0
    interactive: bool = False
    width: int = 80
    height: int = 24


@dataclass(frozen=True)
class StreamData:
    data: bytes


@dataclass(frozen=True)
class StreamEOF:
    pass


@dataclass(frozen=True)
class StreamResize:
    width: int
    height: int


@dataclass(frozen=True)
class StreamSignal:
    signal: int


StreamInput = StreamData | StreamEOF | StreamResize | StreamSignal


class ExecOutput(Protocol):
    async def __call__(self, fd: int, data: bytes) -> None: ...


class HypervisorDriver(Protocol):
    """A hypervisor: runs instances of one type (container, virtual-machine)."""

    name: ClassVar[str]
    instance_type: ClassVar[str]

    def __init__(self, ctx: DriverContext) -> None: ...

    def rootfs_idmap(self, inst: InstanceRecord) -> IdMap | None:
        """The id map the instance's rootfs must be shifted to (None: unshifted)."""

    async def create(self, inst: InstanceRecord, root: RootVolume) -> None: ...

    async def start(self, inst: InstanceRecord) -> None: ...

    async def stop(self, inst: InstanceRecord, *, timeout: float, force: bool) -> None: ...

    async def freeze(self, inst: InstanceRecord) -> None: ...

    async def unfreeze(self, inst: InstanceRecord) -> None: ...

    async def states(
        self, insts: list[InstanceRecord], *, full: bool
    ) -> dict[str, InstanceState]:
        """States of several instances at once (``full``: with resources and network)."""

    async def exec(
        self,
        inst: InstanceRecord,
        request: ExecRequest,
        stdin: trio.MemoryReceiveChannel[StreamInput],
        output: ExecOutput,
    ) -> int:
        """Run a command; stream its output; return its exit code (128+N for signal N)."""

    async def delete(self, inst: InstanceRecord) -> None:
        """Remove everything but the root volume (config, cgroups, logs)."""

    async def close(self) -> None:
        """The daemon exits: release what no running instance needs."""


# ---------------------------------------------------------------------------- network
class NetworkDriver(Protocol):
    """A network backend (bridge, OVN, ...). No driver ships yet: see later issues."""

    name: ClassVar[str]

    def __init__(self, ctx: DriverContext) -> None: ...


# ---------------------------------------------------------------------------- auth
@dataclass(frozen=True)
class PeerCredentials:
    """Who is on the other end of a Unix socket (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    name: str
    method: str  # which auth driver said yes
    admin: bool = True


class AuthDriver(Protocol):
    name: ClassVar[str]

    def __init__(self, ctx: DriverContext) -> None: ...

    async def authenticate(self, peer: PeerCredentials) -> Identity | None:
        """An identity if this driver vouches for the peer, None to let others decide."""


# ---------------------------------------------------------------------------- registry
D = TypeVar("D")


class DriverRegistry:
    """Driver classes by kind and name, filled by ``lxctl_register_drivers``."""

    KINDS = ("storage", "hypervisor", "network", "auth")

    def __init__(self) -> None:
        self._classes: dict[str, dict[str, type[Any]]] = {k: {} for k in self.KINDS}

    def _add(self, kind: str, cls: type[Any]) -> None:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{kind} driver class {cls.__qualname__} has no name")
        if name in self._classes[kind]:
            other = self._classes[kind][name]
            raise PluginError(
                f"{kind} driver {name!r} registered twice: by {other.__module__} and "
                f"{cls.__module__}"
            )
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


class Drivers:
    """Driver instances of one daemon, by kind and name."""

    def __init__(self, registry: DriverRegistry, ctx: DriverContext) -> None:
        self.ctx = ctx
        self._objs: dict[str, dict[str, Any]] = {
            kind: {name: cls(ctx) for name, cls in registry.classes(kind).items()}
            for kind in DriverRegistry.KINDS
        }

    def _get(self, kind: str, name: str) -> Any:
        try:
            return self._objs[kind][name]
        except KeyError:
            raise PluginError(
                f"{kind} driver {name!r} not found: is the plugin that provides it "
                f"installed and enabled? (available: {', '.join(self.names(kind)) or 'none'})",
                driver=name,
                driver_kind=kind,
            ) from None

    def storage(self, name: str) -> StorageDriver:
        driver: StorageDriver = self._get("storage", name)
        return driver

    def hypervisor_for(self, instance_type: str) -> HypervisorDriver:
        for driver in self._objs["hypervisor"].values():
            if driver.instance_type == instance_type:
                hv: HypervisorDriver = driver
                return hv
        raise PluginError(
            f"No hypervisor driver for instance type {instance_type!r}: is the plugin "
            "installed and enabled?",
            instance_type=instance_type,
        )

    async def close(self) -> None:
        """Tell every driver that has a ``close`` that the daemon is exiting."""
        for objs in self._objs.values():
            for obj in objs.values():
                close = getattr(obj, "close", None)
                if close is not None:
                    await close()

    def auth(self) -> list[AuthDriver]:
        return list(self._objs["auth"].values())

    def names(self, kind: str) -> list[str]:
        return sorted(self._objs[kind])

    def describe(self) -> dict[str, list[dict[str, str]]]:
        return {
            kind: [
                {"name": name, "class": f"{type(obj).__module__}.{type(obj).__qualname__}"}
                for name, obj in sorted(objs.items())
            ]
            for kind, objs in self._objs.items()
        }
