"""Fake drivers of every kind, as one plugin: they keep their state in memory, record
what the core asked of them, and fail on request. They serve the in-process tests;
they prove nothing about real backends (tests/real and tests/conformance do)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import trio

from lxctl.public import (
    AuthInfo,
    ConfigKey,
    ConfigSchema,
    ContentType,
    Device,
    DriverContext,
    DriverError,
    DriverRegistry,
    ExecOutput,
    ExecRequest,
    HypervisorInfo,
    Identity,
    ImageSource,
    InstanceRecord,
    InstanceState,
    InvalidArgument,
    MountedVolume,
    NetworkInfo,
    NetworkRecord,
    NetworkState,
    NetworkStatus,
    NicDevice,
    NotFound,
    Peer,
    PeerCredentials,
    PoolRecord,
    Scope,
    StorageInfo,
    StreamData,
    StreamInput,
    Unavailable,
    Volume,
    VolumeType,
    VolumeUsage,
    impl,
)


@dataclass
class World:
    """What the fakes hold, per daemon state dir (so a restarted daemon finds it)."""

    volumes: dict[tuple[str, str], str] = field(default_factory=dict)  # (pool, name) -> img
    image_volumes: dict[tuple[str, str], int] = field(default_factory=dict)
    quotas: dict[tuple[str, str], int] = field(default_factory=dict)  # (pool, name) -> bytes
    # (pool, name) -> {snapshot: the volume's content then}, oldest first
    snapshots: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    unmountable: set[str] = field(default_factory=set)  # pools whose mount fails
    missing_links: set[str] = field(default_factory=set)  # host links that do not exist
    fail_next: dict[str, int] = field(default_factory=dict)  # call name -> failures left
    started_with: dict[str, list[Device]] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    console: dict[str, bytes] = field(default_factory=dict)  # console_log() by instance

    def fail(self, call: str) -> None:
        left = self.fail_next.get(call, 0)
        if left > 0:
            self.fail_next[call] = left - 1
            raise DriverError(f"fake {call} failed (as the test asked)")


WORLDS: dict[str, World] = {}


def world(ctx: DriverContext) -> World:
    return WORLDS.setdefault(str(ctx.state_dir), World())


class _Storage:
    info: ClassVar[StorageInfo]

    def __init__(self, ctx: DriverContext) -> None:
        self.world = world(ctx)

    @classmethod
    def probe(cls) -> str | None:
        return None

    def _call(self, name: str, *args: Any) -> None:
        self.world.calls.append((f"{self.info.name}.{name}", args))

    async def create_pool(self, pool: PoolRecord) -> dict[str, str]:
        self._call("create_pool", pool.name)
        return {}

    async def mount_pool(self, pool: PoolRecord) -> None:
        self._call("mount_pool", pool.name)
        if pool.name in self.world.unmountable:
            raise Unavailable(f"fake pool {pool.name} cannot be mounted")

    async def unmount_pool(self, pool: PoolRecord) -> None:
        self._call("unmount_pool", pool.name)

    async def delete_pool(self, pool: PoolRecord) -> None:
        self._call("delete_pool", pool.name)

    async def ensure_image_volume(self, pool: PoolRecord, image: ImageSource) -> None:
        assert self.info.optimized_images, "the core asked a driver without image volumes"
        self._call("ensure_image_volume", image.variant)
        key = (pool.name, image.variant)
        self.world.image_volumes[key] = self.world.image_volumes.get(key, 0) + 1

    async def delete_image_volume(self, pool: PoolRecord, fingerprint: str) -> None:
        assert self.info.optimized_images, "the core asked a driver without image volumes"
        self._call("delete_image_volume", fingerprint)

    async def create_volume(self, pool: PoolRecord, volume: Volume) -> None:
        self._call("create_volume", volume.storage_name)
        self.world.volumes[(pool.name, volume.storage_name)] = ""

    async def create_volume_from_image(self, pool: PoolRecord, volume: Volume,
                                       image: ImageSource) -> None:
        self._call("create_volume_from_image", volume.storage_name)
        self.world.fail("create_volume_from_image")
        await trio.sleep(0)
        self.world.volumes[(pool.name, volume.storage_name)] = image.fingerprint

    async def delete_volume(self, pool: PoolRecord, volume: Volume) -> None:
        self._call("delete_volume", volume.storage_name)
        self.world.fail("delete_volume")
        self.world.volumes.pop((pool.name, volume.storage_name), None)
        self.world.snapshots.pop((pool.name, volume.storage_name), None)

    async def mount_volume(self, pool: PoolRecord, volume: Volume) -> MountedVolume:
        from pathlib import Path

        return MountedVolume(Path("/fake") / pool.name / volume.storage_name)

    async def unmount_volume(self, pool: PoolRecord, volume: Volume) -> None:
        return None

    async def rename_volume(self, pool: PoolRecord, volume: Volume, new_name: str) -> None:
        self._call("rename_volume", volume.storage_name, new_name)
        self.world.fail("rename_volume")
        new = Volume(new_name, volume.type, volume.content, volume.project).storage_name
        if (pool.name, new) in self.world.volumes:
            raise InvalidArgument(f"fake volume {new} exists")
        for table in (self.world.volumes, self.world.snapshots):
            if (pool.name, volume.storage_name) in table:
                table[(pool.name, new)] = table.pop(  # type: ignore[assignment]
                    (pool.name, volume.storage_name))

    async def copy_volume(self, pool: PoolRecord, source: Volume, target_pool: PoolRecord,
                          target: Volume, *, snapshots: Sequence[str] = (),
                          from_snapshot: str | None = None) -> None:
        self._call("copy_volume", source.storage_name, target_pool.name, target.storage_name,
                   tuple(snapshots), from_snapshot)
        self.world.fail("copy_volume")
        key = (target_pool.name, target.storage_name)
        if key in self.world.volumes:
            raise InvalidArgument(f"fake volume {target.storage_name} exists")
        snaps = self.world.snapshots.get((pool.name, source.storage_name), {})
        missing = [n for n in (*snapshots, from_snapshot) if n is not None and n not in snaps]
        if missing:
            raise NotFound(f"fake snapshot {missing[0]} of {source.storage_name} not found")
        self.world.volumes[key] = snaps[from_snapshot] if from_snapshot is not None else \
            self.world.volumes[(pool.name, source.storage_name)]
        if snapshots:
            self.world.snapshots[key] = {n: snaps[n] for n in snapshots}

    async def usage(self, pool: PoolRecord, volume: Volume) -> VolumeUsage:
        return VolumeUsage(0)


class FakeStorage(_Storage):
    """Keeps image volumes and snapshots, like dir or btrfs. A volume's content is the
    fingerprint of its image, or what a test wrote with ``World.volumes``."""

    info: ClassVar[StorageInfo] = StorageInfo(
        name="fake", volume_types=frozenset(VolumeType), optimized_images=True, clones=True,
        quotas=True, snapshots=True, pool_keys=(ConfigKey("fake.size", Scope.POOL),))

    def _snaps(self, pool: PoolRecord, volume: Volume) -> dict[str, str]:
        return self.world.snapshots.setdefault((pool.name, volume.storage_name), {})

    async def create_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        self._call("create_snapshot", volume.storage_name, name)
        self.world.fail("create_snapshot")
        self._snaps(pool, volume)[name] = self.world.volumes[(pool.name, volume.storage_name)]

    async def delete_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        self._call("delete_snapshot", volume.storage_name, name)
        self._snaps(pool, volume).pop(name, None)

    async def restore_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        self._call("restore_snapshot", volume.storage_name, name)
        self.world.fail("restore_snapshot")
        if name not in self._snaps(pool, volume):
            raise NotFound(f"fake snapshot {name} of {volume.storage_name} not found")
        self.world.volumes[(pool.name, volume.storage_name)] = self._snaps(pool, volume)[name]

    async def list_snapshots(self, pool: PoolRecord, volume: Volume) -> list[str]:
        return list(self._snaps(pool, volume))

    async def rename_snapshot(self, pool: PoolRecord, volume: Volume, name: str,
                              new_name: str) -> None:
        self._call("rename_snapshot", volume.storage_name, name, new_name)
        snaps = self._snaps(pool, volume)
        if name not in snaps or new_name in snaps:
            raise InvalidArgument(f"fake snapshot {name} cannot be renamed {new_name}")
        renamed = {new_name if n == name else n: c for n, c in snaps.items()}
        snaps.clear()
        snaps.update(renamed)

    async def mount_snapshot(self, pool: PoolRecord, volume: Volume, name: str
                             ) -> MountedVolume:
        from pathlib import Path

        return MountedVolume(Path("/fake") / pool.name / volume.storage_name / name)

    async def unmount_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        return None

    async def set_quota(self, pool: PoolRecord, volume: Volume, size: int) -> None:
        self._call("set_quota", volume.storage_name, size)
        self.world.fail("set_quota")
        self.world.quotas[(pool.name, volume.storage_name)] = size


class PlainStorage(_Storage):
    """Builds each instance volume from the tarball: no image volumes, no snapshots."""

    info: ClassVar[StorageInfo] = StorageInfo(
        name="plain", volume_types=frozenset({VolumeType.CONTAINER, VolumeType.CUSTOM}),
        content_types=frozenset({ContentType.FILESYSTEM}))


class FakeHypervisor:
    info: ClassVar[HypervisorInfo] = HypervisorInfo(
        name="fakect", instance_types=frozenset({"container"}),
        device_types=frozenset({"disk", "nic"}), live_config=frozenset({"limits.memory"}),
        files=frozenset({"Running"}), hotplug=frozenset({"nic"}),
        config_keys=(ConfigKey("raw.fakect", Scope.INSTANCE, doc="extra fake config"),))

    def __init__(self, ctx: DriverContext) -> None:
        self.world = world(ctx)

    @classmethod
    def probe(cls) -> str | None:
        return None

    def rootfs_idmap(self, inst: InstanceRecord) -> None:
        return None

    async def create(self, inst: InstanceRecord, root: MountedVolume) -> None:
        self.world.calls.append(("hv.create", inst.qualified_name))

    async def start(self, inst: InstanceRecord, devices: list[Device]) -> None:
        self.world.fail("start")
        self.world.calls.append(("hv.start", inst.qualified_name))
        self.world.started_with[inst.qualified_name] = devices
        self.world.running.add(inst.qualified_name)

    async def stop(self, inst: InstanceRecord, *, timeout: float, force: bool) -> None:
        self.world.calls.append(("hv.stop", (inst.qualified_name, timeout, force)))
        self.world.running.discard(inst.qualified_name)

    async def freeze(self, inst: InstanceRecord) -> None: ...

    async def unfreeze(self, inst: InstanceRecord) -> None: ...

    async def apply_config(self, inst: InstanceRecord, keys: frozenset[str]) -> None:
        assert inst.qualified_name in self.world.running
        assert keys <= self.info.live_config, "the core asked for undeclared live keys"
        self.world.calls.append(("hv.apply_config", (inst.name, sorted(keys),
                                                     inst.config.get("limits.memory"))))

    async def push_file(self, inst: InstanceRecord, path: str, data: AsyncIterator[bytes], *,
                        uid: int, gid: int, mode: int, make_parents: bool) -> int:
        assert inst.qualified_name in self.world.running, "files of a stopped instance"
        content = b"".join([chunk async for chunk in data])
        self.world.files[(inst.qualified_name, path)] = content
        return len(content)

    async def pull_file(self, inst: InstanceRecord, path: str,
                        output: Callable[[bytes], Awaitable[None]]) -> int:
        assert inst.qualified_name in self.world.running, "files of a stopped instance"
        content = self.world.files[(inst.qualified_name, path)]
        await output(content)
        return len(content)

    async def delete_file(self, inst: InstanceRecord, path: str) -> None:
        self.world.files.pop((inst.qualified_name, path))

    async def make_directory(self, inst: InstanceRecord, path: str, *, uid: int, gid: int,
                             mode: int, make_parents: bool) -> None:
        self.world.calls.append(("hv.mkdir", (inst.qualified_name, path, uid, gid, mode)))

    async def file_info(self, inst: InstanceRecord, path: str) -> dict[str, Any]:
        content = self.world.files[(inst.qualified_name, path)]
        return {"type": "file", "mode": 0o644, "uid": 0, "gid": 0, "size": len(content)}

    async def hotplug(self, inst: InstanceRecord, device: Device) -> None:
        assert device.type in self.info.hotplug, "a hot-plug the driver does not declare"
        assert inst.qualified_name in self.world.running
        self.world.fail(f"hotplug {device.name}")
        self.world.calls.append(("hv.hotplug", (device.name, device)))

    async def hot_unplug(self, inst: InstanceRecord, device: Device) -> None:
        assert device.type in self.info.hotplug, "a hot-unplug the driver does not declare"
        assert inst.qualified_name in self.world.running
        self.world.calls.append(("hv.hot_unplug", (device.name, device)))

    async def states(self, insts: list[InstanceRecord], *, full: bool
                     ) -> dict[str, InstanceState]:
        return {i.qualified_name: InstanceState(
            "Running" if i.qualified_name in self.world.running else "Stopped")
            for i in insts}

    async def console(self, inst: InstanceRecord, *, width: int, height: int,
                      stdin: trio.MemoryReceiveChannel[StreamInput],
                      output: ExecOutput) -> int:
        """Echoes its input (after a line with the size) until the input ends."""
        await output(1, f"console {width}x{height}\n".encode())
        async for item in stdin:
            if isinstance(item, StreamData):
                await output(1, item.data)
            else:
                break
        return 0

    async def console_log(self, inst: InstanceRecord) -> bytes:
        return self.world.console.get(inst.qualified_name, b"")

    def environment(self) -> dict[str, Any]:
        return {"seccomp": True, "apparmor": False}

    async def exec(self, inst: InstanceRecord, request: ExecRequest,
                   stdin: trio.MemoryReceiveChannel[StreamInput], output: ExecOutput) -> int:
        """``echo`` prints its arguments; ``cat`` copies stdin; exit code = argc."""
        if request.command[0] == "cat":
            async for item in stdin:
                if isinstance(item, StreamData):
                    await output(1, item.data)
                else:
                    break
        else:
            await output(1, (" ".join(request.command[1:]) + "\n").encode())
        return len(request.command) - 1

    async def delete(self, inst: InstanceRecord) -> None:
        self.world.calls.append(("hv.delete", inst.qualified_name))
        self.world.fail("hv.delete")

    async def close(self) -> None:
        return None


class FakeVmHypervisor(FakeHypervisor):
    info: ClassVar[HypervisorInfo] = HypervisorInfo(
        name="fakevm", instance_types=frozenset({"virtual-machine"}),
        device_types=frozenset({"disk", "nic", "usb"}),
        config_keys=(ConfigKey("raw.fakevm", Scope.INSTANCE),))


class FakeNetwork:
    info: ClassVar[NetworkInfo] = NetworkInfo(
        name="fakenet", nic_types=frozenset({"bridged"}),
        config_keys=(ConfigKey("parent", Scope.NETWORK),))

    def __init__(self, ctx: DriverContext) -> None:
        self.world = world(ctx)

    @classmethod
    def probe(cls) -> str | None:
        return None

    def depends_on(self, net: NetworkRecord) -> tuple[list[str], list[str]]:
        parent = net.config.get("parent")
        return ([parent] if parent else []), []

    async def create(self, net: NetworkRecord) -> dict[str, str]:
        return {}

    async def start(self, net: NetworkRecord) -> None:
        parent = net.config.get("parent")
        if parent in self.world.missing_links:
            raise Unavailable(f"parent interface {parent} not found")
        self.world.calls.append(("net.start", net.name))

    async def stop(self, net: NetworkRecord) -> None: ...

    async def update(self, net: NetworkRecord, old_config: Mapping[str, str]) -> None: ...

    async def delete(self, net: NetworkRecord) -> None: ...

    async def state(self, net: NetworkRecord) -> NetworkState:
        return NetworkState(NetworkStatus.CREATED)

    async def plug(self, net: NetworkRecord, inst: InstanceRecord, device: str,
                   config: Mapping[str, str]) -> NicDevice:
        self.world.calls.append(("net.plug", (net.name, inst.name, device)))
        return NicDevice(device, "veth", link=f"br-{net.name}", host_name=f"v-{inst.name}",
                         mtu=1400, name_in_instance=config.get("name", device))

    async def unplug(self, net: NetworkRecord, inst: InstanceRecord, nic: NicDevice) -> None:
        self.world.calls.append(("net.unplug", (net.name, inst.name, nic.name)))


class FakeAuth:
    """uid 0: an admin; uid 1000: ``alice``, restricted to the default project."""

    info: ClassVar[AuthInfo] = AuthInfo(name="fakeauth", peer_kinds=frozenset({"unix"}))

    def __init__(self, ctx: DriverContext) -> None: ...

    @classmethod
    def probe(cls) -> str | None:
        return None

    async def authenticate(self, peer: Peer) -> Identity | None:
        if isinstance(peer, PeerCredentials) and peer.uid == 0:
            return Identity("root", "fakeauth")
        if isinstance(peer, PeerCredentials) and peer.uid == 1000:
            return Identity("alice", "fakeauth", admin=False,
                            projects=frozenset({"default"}))
        return None


@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_storage(FakeStorage)
    registry.add_storage(PlainStorage)
    registry.add_hypervisor(FakeHypervisor)
    registry.add_hypervisor(FakeVmHypervisor)
    registry.add_network(FakeNetwork)
    registry.add_auth(FakeAuth)


@impl
def lxctl_register_config_keys(schema: ConfigSchema) -> None:
    schema.add(ConfigKey("user.fake.limit", Scope.INSTANCE, validate=_digits,
                         owner="fakes", doc="a plugin's own key"))


def _digits(value: str) -> None:
    if not value.isdigit():
        raise ValueError("must be digits")


@impl
def lxctl_authorize(identity: Identity, method: str, project: str) -> bool | None:
    if method == "server.shutdown" and not identity.admin:
        return False
    return None
