"""Every driver of a kind that this machine's plugins provide, for parametrizing a
conformance suite: built-in and installed plugins (entry points) and the test fakes.
A driver whose ``probe()`` names a missing feature is skipped with that reason."""

from __future__ import annotations

import os
from typing import Any

import fakes  # tests/inprocess is on pytest's pythonpath (pyproject.toml)
import pytest

from lxctl.drivers.registry import DriverRegistry
from lxctl.plugin import Hooks, get_plugin_manager

# drivers whose conformance needs root on any machine
NEEDS_ROOT = {"hypervisor": {"lxc"}, "network": {"bridge", "macvlan"}}


def driver_classes(kind: str) -> list[Any]:
    hooks = Hooks(get_plugin_manager(extra=[fakes]))
    registry = DriverRegistry()
    hooks.register_drivers(registry)
    params = []
    for name, cls in sorted(registry.classes(kind).items()):
        marks = []
        reason = cls.probe()
        if reason:
            marks.append(pytest.mark.skip(reason=f"{name}: {reason}"))
        elif name in NEEDS_ROOT.get(kind, set()):
            marks.append(pytest.mark.real)
            if os.geteuid() != 0:
                marks.append(pytest.mark.skip(reason=f"{name} needs root (containers)"))
        params.append(pytest.param(cls, id=name, marks=marks))
    return params
