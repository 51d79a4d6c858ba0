"""The storage driver protocol and its capabilities.

One driver object serves every pool that uses it. What a driver can do is data
(:class:`StorageInfo`), read by the core: it never asks a driver for what the driver
declares it cannot do. Volumes have a type (container, virtual-machine, custom,
image) and a content type (filesystem, block).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from lxctl.drivers.devices import MountedVolume

if TYPE_CHECKING:
    import trio

    from lxctl.config.schema import ConfigKey
    from lxctl.drivers.context import DriverContext
    from lxctl.objects.idmap import IdMap
    from lxctl.state.records import PoolRecord


class VolumeType(enum.StrEnum):
    CONTAINER = "container"
    VIRTUAL_MACHINE = "virtual-machine"
    CUSTOM = "custom"
    IMAGE = "image"


class ContentType(enum.StrEnum):
    FILESYSTEM = "filesystem"
    BLOCK = "block"


@dataclass(frozen=True)
class StorageInfo:
    """Capabilities as data, like Incus's driver ``Info``."""

    name: str
    volume_types: frozenset[VolumeType]
    content_types: frozenset[ContentType] = frozenset({ContentType.FILESYSTEM})
    optimized_images: bool = False  # keeps image volumes; instance volumes come from them
    clones: bool = False  # an instance volume from an image volume costs no copy
    snapshots: bool = False
    quotas: bool = False
    send_receive: bool = False  # a native stream format (btrfs send, zfs send)
    remote: bool = False  # shared by every cluster member (ceph ...)
    named_sources: bool = False  # ``source`` may name an existing zpool or volume group
    pool_keys: tuple[ConfigKey, ...] = ()
    volume_keys: tuple[ConfigKey, ...] = ()


@dataclass(frozen=True)
class Volume:
    """A volume as the core asks for it."""

    name: str  # instance or custom volume name, or an image fingerprint
    type: VolumeType
    content: ContentType = ContentType.FILESYSTEM
    project: str = "default"
    config: Mapping[str, str] = field(default_factory=dict)

    @property
    def storage_name(self) -> str:
        """The name on disk: project-qualified outside the default project."""
        return self.name if self.project == "default" else f"{self.project}_{self.name}"


@dataclass(frozen=True)
class ImageSource:
    """An image to build volumes from: its tarball and the id map its files need."""

    fingerprint: str
    tarball: Path
    idmap: IdMap | None  # None: files unshifted

    @property
    def variant(self) -> str:
        return f"{self.fingerprint}.{self.idmap.tag if self.idmap else 'raw'}"


@dataclass(frozen=True)
class VolumeUsage:
    used: int  # bytes
    total: int | None = None  # the quota, if any


class StorageDriver(Protocol):
    info: ClassVar[StorageInfo]

    def __init__(self, ctx: DriverContext) -> None: ...

    @classmethod
    def probe(cls) -> str | None:
        """None if this machine can run the driver, else why not (names the feature)."""

    # ------------------------------------------------------------------ pools
    async def create_pool(self, pool: PoolRecord) -> dict[str, str]:
        """Create the pool; return config keys to store (e.g. a default ``source``)."""

    async def mount_pool(self, pool: PoolRecord) -> None:
        """Make the pool usable after a daemon start; raise Unavailable if it is not."""

    async def unmount_pool(self, pool: PoolRecord) -> None: ...

    async def delete_pool(self, pool: PoolRecord) -> None: ...

    # ------------------------------------------------------------------ images
    async def ensure_image_volume(self, pool: PoolRecord, image: ImageSource) -> None:
        """(optimized_images) Unpack the image once per pool and id map; idempotent.
        The core serializes calls for one image variant."""

    async def delete_image_volume(self, pool: PoolRecord, fingerprint: str) -> None:
        """(optimized_images) Delete every variant of an image, or mark it for deletion
        while instance volumes still rest on it."""

    # ------------------------------------------------------------------ volumes
    async def create_volume(self, pool: PoolRecord, volume: Volume) -> None:
        """An empty volume (custom volumes; instances without an image)."""

    async def create_volume_from_image(
        self, pool: PoolRecord, volume: Volume, image: ImageSource
    ) -> None:
        """An instance volume with the image's rootfs: a clone of the image volume
        (``clones``), a copy of it (``optimized_images``), or unpacked from the tarball."""

    async def delete_volume(self, pool: PoolRecord, volume: Volume) -> None:
        """Delete it with its snapshots; one that does not exist is not an error."""

    async def mount_volume(self, pool: PoolRecord, volume: Volume) -> MountedVolume: ...

    async def unmount_volume(self, pool: PoolRecord, volume: Volume) -> None: ...

    async def rename_volume(self, pool: PoolRecord, volume: Volume, new_name: str) -> None:
        """Rename the volume, its snapshots with it (it is not in use); refused
        (InvalidArgument) if ``new_name`` exists on the pool."""

    async def copy_volume(
        self, pool: PoolRecord, source: Volume, target_pool: PoolRecord, target: Volume, *,
        snapshots: Sequence[str] = (), from_snapshot: str | None = None,
    ) -> None:
        """Copy a volume between two pools of this driver (or within one), natively
        (send/receive where ``info.send_receive``): the volume with the ``snapshots``
        named (oldest first, kept under the same names on ``target``), or only the
        content of its snapshot ``from_snapshot`` (then ``snapshots`` is empty). The
        target must not exist (InvalidArgument), nor a snapshot named be missing
        (NotFound); a failure leaves none of it, and the copy never depends on the
        source (deleting the source, or its image, leaves it whole)."""

    async def usage(self, pool: PoolRecord, volume: Volume) -> VolumeUsage: ...


class SupportsSnapshots(Protocol):
    """What a driver whose info says ``snapshots`` also implements."""

    async def create_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None: ...

    async def delete_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None: ...

    async def restore_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None:
        """The volume must not be in use."""

    async def list_snapshots(self, pool: PoolRecord, volume: Volume) -> list[str]:
        """Names, oldest first."""

    async def rename_snapshot(self, pool: PoolRecord, volume: Volume, name: str,
                              new_name: str) -> None:
        """Keeps its place in ``list_snapshots``; refused (InvalidArgument) if
        ``new_name`` exists, NotFound if ``name`` does not."""

    async def mount_snapshot(self, pool: PoolRecord, volume: Volume, name: str
                             ) -> MountedVolume:
        """The snapshot's content, read-only, laid out as ``mount_volume`` gives the
        volume's (the core rsyncs from it between pools of different drivers): on an
        overlay volume (dir) ``path`` is the snapshot's upper layer over ``lower``.
        Each call is paired with ``unmount_snapshot``."""

    async def unmount_snapshot(self, pool: PoolRecord, volume: Volume, name: str) -> None: ...


class SupportsQuotas(Protocol):
    """What a driver whose info says ``quotas`` also implements."""

    async def set_quota(self, pool: PoolRecord, volume: Volume, size: int) -> None:
        """Limit the volume to ``size`` bytes (0: no limit)."""


class SupportsSendReceive(Protocol):
    """What a driver whose info says ``send_receive`` also implements."""

    async def send_volume(
        self, pool: PoolRecord, volume: Volume, out: trio.abc.SendStream
    ) -> None:
        """Write the volume, with its snapshots, in the driver's native format."""

    async def receive_volume(
        self, pool: PoolRecord, volume: Volume, source: trio.abc.ReceiveStream
    ) -> None:
        """Create ``volume`` from a stream written by ``send_volume``."""
