"""Resource limits as cgroup (v1) settings: from instance config keys to controller
files, the same values written into the LXC config at start and into the live cgroup
when a key changes on a running container. Pure: no I/O but ``/proc/meminfo``."""

from __future__ import annotations

from lxctl.public import InvalidArgument, parse_size

LIVE_KEYS = frozenset({"limits.memory", "limits.memory.swap", "limits.processes",
                       "limits.cpu", "limits.cpu.allowance"})
UNLIMITED = "-1"


def cpu_set(value: str | None, online: list[int]) -> str:
    """``limits.cpu`` as a cpuset: a count takes the first CPUs, a set is checked."""
    if not value:
        return _ranges(online)
    if value.isdigit():
        count = int(value)
        if count > len(online):
            raise InvalidArgument(f"limits.cpu={value}: this host has {len(online)} CPUs")
        return _ranges(online[:count])
    wanted: list[int] = []
    for part in value.split(","):
        first, _, last = part.partition("-")
        wanted += range(int(first), int(last or first) + 1)
    missing = sorted(set(wanted) - set(online))
    if missing:
        raise InvalidArgument(f"limits.cpu={value}: CPU {missing[0]} is not online here")
    return _ranges(sorted(set(wanted)))


def _ranges(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    runs: list[list[int]] = []
    for cpu in cpus:
        if runs and cpu == runs[-1][-1] + 1:
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def memory_bytes(value: str, total: int) -> int:
    if value.endswith("%"):
        return total * int(value[:-1]) // 100
    return parse_size(value)


def settings(config: dict[str, str], online: list[int], mem_total: int) -> dict[str, str]:
    """Every limit as ``controller.file -> value``, unlimited where no key is set (so
    that unsetting a key on a running container lifts the limit)."""
    out: dict[str, str] = {}
    memory = config.get("limits.memory")
    limit = str(memory_bytes(memory, mem_total)) if memory else UNLIMITED
    out["memory.limit_in_bytes"] = limit
    no_swap = config.get("limits.memory.swap", "true").lower() in ("false", "0", "no", "off")
    out["memory.memsw.limit_in_bytes"] = limit if memory and no_swap else UNLIMITED
    out["pids.max"] = config.get("limits.processes") or "max"
    out["cpuset.cpus"] = cpu_set(config.get("limits.cpu"), online)
    allowance = config.get("limits.cpu.allowance", "")
    if allowance.endswith("%"):
        out["cpu.shares"] = str(max(2, 1024 * int(allowance[:-1]) // 100))
        out["cpu.cfs_quota_us"], out["cpu.cfs_period_us"] = UNLIMITED, "100000"
    elif allowance:
        quota, period = (int(part[:-2]) * 1000 for part in allowance.split("/"))
        out["cpu.shares"] = "1024"
        out["cpu.cfs_quota_us"], out["cpu.cfs_period_us"] = str(quota), str(period)
    else:
        out["cpu.shares"] = "1024"
        out["cpu.cfs_quota_us"], out["cpu.cfs_period_us"] = UNLIMITED, "100000"
    return out


def changed_from_defaults(config: dict[str, str], online: list[int],
                          mem_total: int) -> dict[str, str]:
    """Only the settings a key actually sets (what goes into the config at start)."""
    defaults = settings({}, online, mem_total)
    return {k: v for k, v in settings(config, online, mem_total).items() if defaults[k] != v}


def host_cpus() -> list[int]:
    try:
        with open("/sys/devices/system/cpu/online") as f:
            text = f.read().strip()
    except OSError:
        return [0]
    cpus: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus += range(int(first), int(last or first) + 1)
    return cpus


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0
