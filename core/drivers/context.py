"""What every driver is constructed with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxctl.objects.idmap import IdMap


@dataclass(frozen=True)
class DriverContext:
    state_dir: Path
    daemon_id: str  # short, stable per state dir: keeps names of two daemons apart
    idmap: IdMap | None  # the daemon's map for unprivileged containers (None: none found)
    # daemon settings for drivers, by their lxctld.toml keys (network.ovn.* ...)
    settings: Mapping[str, str] = field(default_factory=dict)
