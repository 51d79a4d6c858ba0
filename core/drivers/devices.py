"""Devices as typed data: what the core hands a hypervisor to render.

The core turns an instance's expanded ``devices`` (string maps, as Incus stores them)
into these objects; a NIC on a managed network comes from the network driver's
``plug``. The hypervisor renders them its own way (LXC config lines, QMP
``device_add``), so no plugin needs another plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class MountedVolume:
    """A volume ready for use: a directory, or an overlay of ``lower`` (read-only,
    e.g. the image) under ``path`` (the volume's own changes); or a block device."""

    path: Path
    lower: Path | None = None
    block: bool = False


@dataclass(frozen=True)
class DiskDevice:
    type: ClassVar[str] = "disk"
    name: str
    path: str  # where it appears in the instance; "/" for the root disk
    source: MountedVolume  # a host path or a storage volume, made ready by the core
    readonly: bool = False
    required: bool = True


@dataclass(frozen=True)
class NicDevice:
    """A network interface, fully resolved (the network driver fills this in)."""

    type: ClassVar[str] = "nic"
    name: str
    kind: str = "veth"  # veth | macvlan | phys | ipvlan
    link: str | None = None  # the bridge (veth) or the parent interface (macvlan, phys)
    host_name: str | None = None  # the host end of a veth pair
    hwaddr: str | None = None
    mtu: int | None = None
    vlan: int | None = None
    name_in_instance: str = "eth0"
    mode: str | None = None  # macvlan mode (bridge, vepa, ...)
    ipv4_address: str | None = None  # static addresses the hypervisor may set itself
    ipv6_address: str | None = None
    limits_ingress: int | None = None  # bit/s into the instance (shaped on the host end)
    limits_egress: int | None = None  # bit/s out of the instance (policed on the host end)


@dataclass(frozen=True)
class UnixDevice:
    type: ClassVar[str] = "unix"
    name: str
    kind: str  # unix-char | unix-block
    path: str  # inside the instance
    source: str  # the host's device node
    major: int
    minor: int
    uid: int = 0
    gid: int = 0
    mode: int = 0o660


@dataclass(frozen=True)
class UsbDevice:
    type: ClassVar[str] = "usb"
    name: str
    vendorid: str
    productid: str
    busnum: int | None = None
    devnum: int | None = None


@dataclass(frozen=True)
class ProxyDevice:
    type: ClassVar[str] = "proxy"
    name: str
    listen: str  # tcp:ADDR:PORT | udp:ADDR:PORT | unix:PATH
    connect: str
    bind: str = "host"  # which side listens: host | instance


Device = DiskDevice | NicDevice | UnixDevice | UsbDevice | ProxyDevice


def device_type(device: Device) -> str:
    """The Incus device type: disk, nic, unix-char, unix-block, usb, proxy."""
    return device.kind if isinstance(device, UnixDevice) else device.type
