"""The project keys (Incus's names): which namespaces a project keeps of its own
(``features.*``) and its quotas (``limits.*``).

``project create`` pre-sets ``features.images``, ``features.profiles`` and
``features.storage.volumes`` to true (:data:`CREATE_DEFAULTS`), as Incus does; a key that
is not set reads as false. Of the limits, ``limits.instances``, ``limits.containers`` and
``limits.virtual-machines`` are enforced at instance creation; the others are accepted
and checked for their type, not enforced yet.
"""

from __future__ import annotations

from lxctl.config.schema import ConfigKey, KeyType, Scope

_P = Scope.PROJECT
FEATURES = ("images", "profiles", "storage.volumes", "networks")
"""The namespaces a project may keep of its own (``features.<name>``)."""

PROJECT_KEYS = (
    ConfigKey("features.images", _P, KeyType.BOOL, "false", live=True,
              doc="Whether to use a separate set of images for the project"),
    ConfigKey("features.profiles", _P, KeyType.BOOL, "false", live=True,
              doc="Whether to use a separate set of profiles for the project"),
    ConfigKey("features.storage.volumes", _P, KeyType.BOOL, "false", live=True,
              doc="Whether to use a separate set of storage volumes for the project"),
    ConfigKey("features.networks", _P, KeyType.BOOL, "false", live=True,
              doc="Whether to use a separate set of networks for the project"),
    ConfigKey("limits.instances", _P, KeyType.INTEGER, live=True,
              doc="Maximum number of instances that can be created in the project"),
    ConfigKey("limits.containers", _P, KeyType.INTEGER, live=True,
              doc="Maximum number of containers that can be created in the project"),
    ConfigKey("limits.virtual-machines", _P, KeyType.INTEGER, live=True,
              doc="Maximum number of VMs that can be created in the project"),
    ConfigKey("limits.cpu", _P, KeyType.INTEGER, live=True,
              doc="Maximum number of CPUs to use in the project (not enforced yet)"),
    ConfigKey("limits.memory", _P, KeyType.SIZE, live=True,
              doc="Usage limit for the host's memory for the project (not enforced yet)"),
    ConfigKey("limits.processes", _P, KeyType.INTEGER, live=True,
              doc="Maximum number of processes within the project (not enforced yet)"),
    ConfigKey("limits.disk", _P, KeyType.SIZE, live=True,
              doc="Maximum disk space used by the project (not enforced yet)"),
    ConfigKey("limits.networks", _P, KeyType.INTEGER, live=True,
              doc="Maximum number of networks that the project can have (not enforced yet)"),
    ConfigKey("user.", _P, live=True, doc="Free-form user keys"),
)

CREATE_DEFAULTS = {"features.images": "true", "features.profiles": "true",
                   "features.storage.volumes": "true"}
"""What ``project create`` sets unless given (Incus: networks stays false)."""
