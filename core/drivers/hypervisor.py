"""The hypervisor driver protocol: instances of one or more types, devices as data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from lxctl.drivers.devices import Device, MountedVolume

if TYPE_CHECKING:
    import trio

    from lxctl.config.schema import ConfigKey
    from lxctl.drivers.context import DriverContext
    from lxctl.objects.idmap import IdMap
    from lxctl.state.records import InstanceRecord


@dataclass(frozen=True)
class HypervisorInfo:
    name: str
    instance_types: frozenset[str]  # container, virtual-machine
    device_types: frozenset[str]  # what start() renders: disk, nic, unix-char, ...
    hotplug: frozenset[str] = frozenset()  # what hotplug()/hot_unplug() take live
    live_config: frozenset[str] = frozenset()  # keys apply_config() sets on a running one
    files: frozenset[str] = frozenset()  # the statuses in which its *_file() calls work
    config_keys: tuple[ConfigKey, ...] = ()  # instance keys of this driver (raw.lxc)


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
    info: ClassVar[HypervisorInfo]

    def __init__(self, ctx: DriverContext) -> None: ...

    @classmethod
    def probe(cls) -> str | None:
        """None if this machine can run the driver, else why not (names the feature)."""

    def rootfs_idmap(self, inst: InstanceRecord) -> IdMap | None:
        """The id map the instance's rootfs must be shifted to (None: unshifted).
        Raises InvalidState when the instance cannot run as configured."""

    async def create(self, inst: InstanceRecord, root: MountedVolume) -> None: ...

    async def start(self, inst: InstanceRecord, devices: list[Device]) -> None:
        """Start with these devices (the root disk among them, at path "/")."""

    async def stop(self, inst: InstanceRecord, *, timeout: float, force: bool) -> None: ...

    async def freeze(self, inst: InstanceRecord) -> None: ...

    async def unfreeze(self, inst: InstanceRecord) -> None: ...

    async def hotplug(self, inst: InstanceRecord, device: Device) -> None:
        """Add a device to the running instance (its type is in ``info.hotplug``)."""

    async def hot_unplug(self, inst: InstanceRecord, device: Device) -> None:
        """Remove a device from the running instance (its type is in ``info.hotplug``)."""

    async def apply_config(self, inst: InstanceRecord, keys: frozenset[str]) -> None:
        """Apply these changed keys (all in ``info.live_config``) to the running
        instance; ``inst.config`` is its new expanded config."""

    async def push_file(
        self, inst: InstanceRecord, path: str, data: AsyncIterator[bytes], *, uid: int,
        gid: int, mode: int, make_parents: bool,
    ) -> int:
        """Write a file in the instance (``path`` resolved inside its root, symlinks
        included); return the bytes written."""

    async def pull_file(self, inst: InstanceRecord, path: str,
                        output: Callable[[bytes], Awaitable[None]]) -> int:
        """Stream a file of the instance to ``output``; return its size."""

    async def delete_file(self, inst: InstanceRecord, path: str) -> None: ...

    async def make_directory(self, inst: InstanceRecord, path: str, *, uid: int, gid: int,
                             mode: int, make_parents: bool) -> None:
        """Create a directory in the instance (an existing one gets the owner and mode)."""

    async def file_info(self, inst: InstanceRecord, path: str) -> dict[str, Any]:
        """``{type: file|directory|symlink|other, mode, uid, gid, size}``, with
        ``entries`` (names) for a directory and ``target`` for a symlink; the last
        component of ``path`` is not followed."""

    async def states(
        self, insts: list[InstanceRecord], *, full: bool
    ) -> dict[str, InstanceState]:
        """States by ``inst.qualified_name`` (``full``: with resources and network)."""

    async def exec(
        self, inst: InstanceRecord, request: ExecRequest,
        stdin: trio.MemoryReceiveChannel[StreamInput], output: ExecOutput,
    ) -> int:
        """Run a command; stream its output; return its exit code (128+N for signal N)."""

    async def console(
        self, inst: InstanceRecord, *, width: int, height: int,
        stdin: trio.MemoryReceiveChannel[StreamInput], output: ExecOutput,
    ) -> int:
        """Attach to the running instance's console (a terminal of ``width`` x
        ``height``): relay ``stdin`` to it and its output to ``output`` (fd 1) until the
        client detaches (or input ends); return 0 then."""

    async def console_log(self, inst: InstanceRecord) -> bytes:
        """The instance's console output so far (empty if it never ran)."""

    def environment(self) -> dict[str, Any]:
        """What this host gives the driver's instances (``server.info`` shows it under
        ``environment.hypervisors.<name>``), e.g. {"apparmor": False, "seccomp": True}."""

    async def delete(self, inst: InstanceRecord) -> None:
        """Remove everything but the root volume (config, cgroups, logs)."""

    async def close(self) -> None:
        """The daemon exits: release what no running instance needs."""
