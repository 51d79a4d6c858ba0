"""cloud-init: the ``cloud-init.*`` keys rendered as a NoCloud seed.

The seed is a directory the daemon writes at each start (``meta-data`` with the
instance's UUID as ``instance-id``, as LXD 5.0 does, so a rename is not a new instance
to cloud-init; ``user-data``, ``vendor-data`` and ``network-config`` from the keys)
and hands to the hypervisor as one more read-only disk device at
``/var/lib/cloud/seed/nocloud-net``. Nothing is written into the instance's root
filesystem: a symlink there cannot redirect the daemon's writes. LXC binds the
directory; a VM driver can serve the same device as a config drive.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from lxctl.drivers.devices import DiskDevice, MountedVolume
from lxctl.objects.idmap import IdMap

SEED_PATH = "/var/lib/cloud/seed/nocloud-net"
DEVICE_NAME = "cloud-init:seed"  # not a valid user device name: it cannot clash
FILES = {
    "cloud-init.user-data": "user-data",
    "cloud-init.vendor-data": "vendor-data",
    "cloud-init.network-config": "network-config",
}


def wanted(config: Mapping[str, str]) -> bool:
    return any(config.get(key) for key in FILES)


def meta_data(config: Mapping[str, str], hostname: str) -> str:
    return f"instance-id: {config.get('volatile.uuid', hostname)}\nlocal-hostname: {hostname}\n"


def write_seed(directory: Path, hostname: str, config: Mapping[str, str],
               idmap: IdMap | None) -> DiskDevice:
    """Write the seed afresh (mode 0700/0600, owned by the instance's root: user-data
    may hold secrets) and return the device that shows it to the instance."""
    tmp = directory.with_name(directory.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    contents = {"meta-data": meta_data(config, hostname)}
    contents.update({name: config[key] for key, name in FILES.items() if config.get(key)})
    uid, gid = (idmap.uid_base, idmap.gid_base) if idmap else (0, 0)
    for name, text in contents.items():
        fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chown(tmp / name, uid, gid)
    os.chown(tmp, uid, gid)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return DiskDevice(DEVICE_NAME, SEED_PATH, MountedVolume(directory), readonly=True)


def remove_seed(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
