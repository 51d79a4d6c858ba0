"""Devices: from an instance's expanded ``devices`` (string maps, Incus's keys) to the
typed data a hypervisor renders.

``check`` validates shapes without I/O (at create time); ``resolve`` builds the typed
devices at start: the root disk from the storage volume, host paths as they are, NICs on
a managed network from the network driver (through ``objects/networks``).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from lxctl.config.units import is_true, parse_size
from lxctl.drivers.devices import (
    Device,
    DiskDevice,
    MountedVolume,
    NicDevice,
    ProxyDevice,
    UnixDevice,
    UsbDevice,
)
from lxctl.errors import InvalidArgument, InvalidState
from lxctl.state.records import InstanceRecord

DEVICE_TYPES = ("disk", "nic", "unix-char", "unix-block", "usb", "proxy")
NIC_TYPES = {"bridged": "veth", "macvlan": "macvlan", "physical": "phys", "p2p": "veth"}
_KEYS: dict[str, set[str]] = {
    "disk": {"path", "source", "pool", "readonly", "required", "size", "propagation"},
    "nic": {"network", "nictype", "parent", "name", "hwaddr", "mtu", "vlan", "host_name",
            "ipv4.address", "ipv6.address", "limits.ingress", "limits.egress", "mode",
            "security.acls"},
    "unix-char": {"source", "path", "major", "minor", "uid", "gid", "mode", "required"},
    "unix-block": {"source", "path", "major", "minor", "uid", "gid", "mode", "required"},
    "usb": {"vendorid", "productid", "busnum", "devnum", "required"},
    "proxy": {"listen", "connect", "bind", "nat"},
}

MountCustom = Callable[[Mapping[str, str]], Awaitable[MountedVolume]]
PlugNic = Callable[[InstanceRecord, str, Mapping[str, str]], Awaitable[NicDevice]]


def _fail(name: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"Invalid device {name!r}: {message}", device=name)


def check(devices: Mapping[str, Any]) -> None:
    """Raise InvalidArgument naming the first device with a bad shape."""
    for name, conf in devices.items():
        if not isinstance(conf, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in conf.items()):
            raise _fail(name, "a device is a map of string keys to string values")
        dtype = conf.get("type")
        if dtype not in DEVICE_TYPES:
            raise _fail(name, f"unknown type {dtype!r} (known: {', '.join(DEVICE_TYPES)})")
        unknown = set(conf) - _KEYS[dtype] - {"type"}
        if unknown:
            raise _fail(name, f"unknown key {sorted(unknown)[0]!r} for a {dtype} device")
        if dtype == "disk":
            if "path" not in conf:
                raise _fail(name, "a disk needs a path")
            if conf["path"] != "/" and "source" not in conf:
                raise _fail(name, "a disk other than the root needs a source")
            if conf["path"] == "/" and "pool" not in conf:
                raise _fail(name, "the root disk needs a pool")
            if "size" in conf:
                try:
                    parse_size(conf["size"])
                except InvalidArgument:
                    raise _fail(name, f"size must be a size such as 10GiB, not "
                                f"{conf['size']!r}") from None
        elif dtype == "nic":
            if "network" not in conf and conf.get("nictype") not in NIC_TYPES:
                raise _fail(name, "a nic needs network=NAME or nictype="
                            f"{'|'.join(NIC_TYPES)}")
            if "network" not in conf and conf.get("nictype") != "p2p" and "parent" not in conf:
                raise _fail(name, f"a {conf.get('nictype')} nic needs a parent")
            for key in ("mtu", "vlan"):
                if key in conf and not conf[key].isdigit():
                    raise _fail(name, f"{key} must be a number")
        elif dtype in ("unix-char", "unix-block"):
            if "source" not in conf and "path" not in conf:
                raise _fail(name, "a unix device needs a source or a path")
        elif dtype == "usb":
            if "vendorid" not in conf:
                raise _fail(name, "a usb device needs a vendorid")
        elif dtype == "proxy":
            _check_proxy(name, conf)


_PROXY_ADDRESS = re.compile(r"(tcp|udp):(\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(\d{1,5})|unix:(/.+)")


def _check_proxy(name: str, conf: Mapping[str, str]) -> None:
    """``listen``/``connect``: tcp:ADDR:PORT, udp:ADDR:PORT or unix:/PATH; a datagram
    end needs a datagram end on the other side; ``bind`` host or instance."""
    kinds = []
    for key in ("listen", "connect"):
        if key not in conf:
            raise _fail(name, "a proxy needs listen and connect")
        m = _PROXY_ADDRESS.fullmatch(conf[key])
        if m is None or (m.group(3) and not 0 < int(m.group(3)) < 65536):
            raise _fail(name, f"{key} must be tcp:ADDR:PORT, udp:ADDR:PORT or unix:/PATH, "
                        f"not {conf[key]!r}")
        kinds.append(m.group(1) == "udp")
    if kinds[0] != kinds[1]:
        raise _fail(name, "udp proxies to udp only (and tcp or unix to tcp or unix)")
    if conf.get("bind", "host") not in ("host", "instance"):
        raise _fail(name, "bind must be host or instance")
    if is_true(conf.get("nat")):
        raise _fail(name, "nat=true is not supported: the proxy forwards connections")


def check_sources(devices: Mapping[str, Any]) -> None:
    """Host paths the devices name must exist, and no two devices share a path in the
    instance (blocking: stats; run in a worker thread)."""
    paths: dict[str, str] = {}
    for name, conf in sorted(devices.items()):
        dtype = conf.get("type")
        path = conf.get("path")
        if dtype in ("disk", "unix-char", "unix-block") and path:
            if path in paths:
                raise _fail(name, f"path {path} is also used by device {paths[path]!r}")
            paths[path] = name
        source = conf.get("source")
        if dtype == "disk" and source and "pool" not in conf and not os.path.exists(source):
            raise _fail(name, f"source {source} does not exist")


def check_live_change(instance: str, driver: str, hotplug: frozenset[str],
                      old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Refuse a change to a running instance's devices unless the hypervisor declares
    it can hot-plug each device type involved."""
    for device in sorted(old.keys() | new.keys()):
        if old.get(device) == new.get(device):
            continue
        conf = new.get(device) or old.get(device) or {}
        kind = conf.get("type", "")
        if kind == "disk" and "/" in (new.get(device, {}).get("path"),
                                      old.get(device, {}).get("path")):
            if root_size_change(old, new) is not None:
                continue  # a quota: the storage driver changes it live
            raise InvalidState(
                f"Device {device!r}: the root disk of running instance {instance!r} "
                f"cannot change; stop it first", instance=instance, device=device)
        if kind not in hotplug:
            raise InvalidState(
                f"Device {device!r}: the {driver} driver cannot change {kind} devices of "
                f"running instance {instance!r}; stop it first", instance=instance,
                device=device)


def root_disk(devices: Mapping[str, Any]) -> tuple[str, dict[str, str]] | None:
    for name, conf in devices.items():
        if conf.get("type") == "disk" and conf.get("path") == "/":
            return name, conf
    return None


def root_size_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The root disk's new ``size`` ("" for none) when that is all that changes in it."""
    before, after = root_disk(old), root_disk(new)
    if before is None or after is None or before[0] != after[0]:
        return None
    a = {k: v for k, v in before[1].items() if k != "size"}
    b = {k: v for k, v in after[1].items() if k != "size"}
    if a != b or before[1].get("size") == after[1].get("size"):
        return None
    return after[1].get("size", "")


def _nic(name: str, conf: Mapping[str, str]) -> NicDevice:
    nictype = conf["nictype"]
    return NicDevice(
        name=name, kind=NIC_TYPES[nictype], link=conf.get("parent"),
        host_name=conf.get("host_name"), hwaddr=conf.get("hwaddr"),
        mtu=int(conf["mtu"]) if "mtu" in conf else None,
        vlan=int(conf["vlan"]) if "vlan" in conf else None,
        name_in_instance=conf.get("name", name), mode=conf.get("mode"),
        ipv4_address=conf.get("ipv4.address"), ipv6_address=conf.get("ipv6.address"))


def _unix(name: str, conf: Mapping[str, str]) -> UnixDevice:
    source = conf.get("source") or conf["path"]
    major, minor = conf.get("major"), conf.get("minor")
    if major is None or minor is None:
        try:
            st = os.stat(source)
        except OSError as exc:
            raise _fail(name, f"cannot read {source}: {exc.strerror}") from None
        want = stat.S_ISCHR if conf["type"] == "unix-char" else stat.S_ISBLK
        if not want(st.st_mode):
            raise _fail(name, f"{source} is not a {conf['type'][5:]} device")
        major, minor = str(os.major(st.st_rdev)), str(os.minor(st.st_rdev))
    return UnixDevice(name, conf["type"], conf.get("path") or source, source, int(major),
                      int(minor), int(conf.get("uid", "0")), int(conf.get("gid", "0")),
                      int(conf.get("mode", "0660"), 8))


async def resolve(inst: InstanceRecord, devices: Mapping[str, Any], root: MountedVolume,
                  plug_nic: PlugNic, mount_custom: MountCustom | None = None
                  ) -> list[Device]:
    """Typed devices for a start: the root disk first, then by path, so that a mount
    comes before the mounts inside it (``/srv`` before ``/srv/data``). A disk with
    ``pool=`` other than the root is a custom volume, mounted by ``mount_custom``."""
    out: list[Device] = []
    for name, conf in sorted(devices.items(), key=lambda item: (
            item[1].get("path") != "/", item[1].get("path") or "", item[0])):
        dtype = conf["type"]
        if dtype == "disk":
            if conf["path"] == "/":
                src = root
            elif "pool" in conf:
                if mount_custom is None:
                    raise InvalidState(f"Device {name!r}: storage volume {conf['source']!r}"
                                       " cannot be mounted here", device=name)
                src = await mount_custom(conf)
            else:
                src = MountedVolume(Path(conf["source"]))
            out.append(DiskDevice(name, conf["path"], src, is_true(conf.get("readonly")),
                                  conf.get("required", "true") != "false"))
        elif dtype == "nic":
            out.append(await plug_nic(inst, name, conf) if "network" in conf
                       else _nic(name, conf))
        elif dtype in ("unix-char", "unix-block"):
            out.append(_unix(name, conf))
        elif dtype == "usb":
            out.append(UsbDevice(name, conf["vendorid"], conf.get("productid", "")))
        else:
            out.append(ProxyDevice(name, conf["listen"], conf["connect"],
                                   conf.get("bind", "host")))
    return out
