"""The one API that plugins import: ``from lxctl.public import impl, StorageInfo, ...``.

Everything a plugin may rely on is named here; the rest of the core can change without
notice. A meta-test (tests/unit/test_layout.py) fails when a plugin imports anything
else of the core, imports another plugin, or when the core imports a plugin.
"""

from __future__ import annotations

from lxctl import netlink
from lxctl.config.schema import ConfigKey, ConfigSchema, KeyType, Scope
from lxctl.config.units import is_true, parse_size
from lxctl.drivers.auth import (
    AuthDriver,
    AuthInfo,
    Identity,
    Peer,
    PeerCertificate,
    PeerCredentials,
    PeerToken,
)
from lxctl.drivers.context import DriverContext
from lxctl.drivers.devices import (
    Device,
    DiskDevice,
    MountedVolume,
    NicDevice,
    ProxyDevice,
    UnixDevice,
    UsbDevice,
    device_type,
)
from lxctl.drivers.hypervisor import (
    ExecOutput,
    ExecRequest,
    HypervisorDriver,
    HypervisorInfo,
    InstanceState,
    StreamData,
    StreamEOF,
    StreamInput,
    StreamResize,
    StreamSignal,
)
from lxctl.drivers.network import (
    AclRule,
    NetworkAcl,
    NetworkDriver,
    NetworkInfo,
    NetworkState,
    NetworkStatus,
)
from lxctl.drivers.registry import DriverRegistry
from lxctl.drivers.storage import (
    ContentType,
    ImageSource,
    StorageDriver,
    StorageInfo,
    Volume,
    VolumeType,
    VolumeUsage,
)
from lxctl.errors import (
    AlreadyExists,
    Busy,
    DriverError,
    Forbidden,
    InvalidArgument,
    InvalidState,
    LxctlError,
    NotFound,
    PluginError,
    Timeout,
    Unavailable,
)
from lxctl.execute import Outcome, run, spawn_service, start_helper
from lxctl.kernel.events import Event, LifecycleEvent, LoggingEvent, OperationEvent
from lxctl.objects.idmap import IdMap, shift_tree
from lxctl.plugin import impl
from lxctl.rpc import MethodTable
from lxctl.state.records import ImageRecord, InstanceRecord, NetworkRecord, PoolRecord

__all__ = [
    "AclRule", "AlreadyExists", "AuthDriver", "AuthInfo", "Busy", "ConfigKey", "ConfigSchema",
    "ContentType", "Device", "DiskDevice", "DriverContext", "DriverError", "DriverRegistry",
    "Event", "ExecOutput", "ExecRequest", "Forbidden", "HypervisorDriver", "HypervisorInfo",
    "IdMap", "Identity", "ImageRecord", "ImageSource", "InstanceRecord", "InstanceState",
    "InvalidArgument", "InvalidState", "KeyType", "LifecycleEvent", "LoggingEvent",
    "LxctlError", "MethodTable", "MountedVolume", "NetworkAcl", "NetworkDriver", "NetworkInfo",
    "NetworkRecord", "NetworkState", "NetworkStatus", "NicDevice", "NotFound",
    "OperationEvent", "Outcome", "Peer", "PeerCertificate", "PeerCredentials", "PeerToken",
    "PluginError", "PoolRecord", "ProxyDevice", "Scope", "StorageDriver", "StorageInfo",
    "StreamData", "StreamEOF", "StreamInput", "StreamResize", "StreamSignal", "Timeout",
    "Unavailable", "UnixDevice", "UsbDevice", "Volume", "VolumeType", "VolumeUsage",
    "device_type", "impl", "is_true", "netlink", "parse_size", "run", "shift_tree", "spawn_service",
    "start_helper",
]
