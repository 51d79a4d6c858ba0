"""Instance types (``launch -t c2-m4``): shorthands for ``limits.cpu`` and
``limits.memory``, as Incus accepts them: ``cN-mM`` (N CPUs, M GiB) and the common
cloud names. Keys given explicitly win over the type."""

from __future__ import annotations

import re

from lxctl.errors import InvalidArgument

_CLOUD = {  # name: (CPUs, GiB)
    "t2.nano": (1, 0.5), "t2.micro": (1, 1), "t2.small": (1, 2), "t2.medium": (2, 4),
    "t2.large": (2, 8), "t2.xlarge": (4, 16), "t2.2xlarge": (8, 32),
    "t3.nano": (2, 0.5), "t3.micro": (2, 1), "t3.small": (2, 2), "t3.medium": (2, 4),
    "t3.large": (2, 8), "t3.xlarge": (4, 16), "t3.2xlarge": (8, 32),
    "e2-micro": (2, 1), "e2-small": (2, 2), "e2-medium": (2, 4),
}


def limits_for(instance_type: str) -> dict[str, str]:
    name = instance_type.split(":", 1)[-1]  # "aws:t2.micro" and "t2.micro" alike
    m = re.fullmatch(r"c(\d+)-m(\d+(?:\.\d+)?)", name)
    if m:
        cpus, gib = int(m.group(1)), float(m.group(2))
    elif name in _CLOUD:
        cpus, gib = _CLOUD[name]
    else:
        raise InvalidArgument(f"Unknown instance type {instance_type!r} (use cN-mM, such "
                              "as c2-m4, or a cloud name such as t2.micro)",
                              instance_type=instance_type)
    if cpus < 1 or gib <= 0:
        raise InvalidArgument(f"Invalid instance type {instance_type!r}")
    return {"limits.cpu": str(cpus), "limits.memory": f"{int(gib * 1024)}MiB"}
