"""The ``lxc`` hypervisor driver: system containers through liblxc (python-lxc).

Traps handled here (see shared/platform/lxc.md): containers are started with the
``lxc-start`` tool, never ``Container.start()`` in the daemon (it would move the daemon
into the container's monitor cgroup); the config file is written whole, never through
``set_config_item``; ``destroy()`` is never called (it deletes a ``dir:`` rootfs that
belongs to the storage driver); blocking liblxc calls run in worker threads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import lxc
import structlog
import trio

from lxctl.public import (
    ConfigKey,
    Device,
    DiskDevice,
    DriverContext,
    DriverError,
    DriverRegistry,
    ExecOutput,
    ExecRequest,
    HypervisorInfo,
    IdMap,
    InstanceRecord,
    InstanceState,
    InvalidArgument,
    InvalidState,
    MountedVolume,
    NicDevice,
    NotFound,
    ProxyDevice,
    Scope,
    StreamData,
    StreamEOF,
    StreamInput,
    UnixDevice,
    impl,
    is_true,
    run,
    spawn_service,
)

from . import addresses, cgroups, idmaps, nics
from . import config as lxc_config
from . import exec as lxc_exec
from . import files as lxc_files
from . import limits as lxc_limits
from .attacher import Attacher
from .lxcfs import Lxcfs

log = structlog.get_logger("lxctl.lxc")

STATES = {
    "RUNNING": "Running", "STOPPED": "Stopped", "FROZEN": "Frozen", "FREEZING": "Frozen",
    "THAWED": "Running", "STARTING": "Starting", "STOPPING": "Stopping", "ABORTING": "Error",
}
START_TIMEOUT = 30.0
INJECT = str(Path(__file__).with_name("inject.py"))  # run alone: setns wants one thread
PROXY = str(Path(__file__).with_name("proxy.py"))  # a proxy device's own process
PROXY_START_TIMEOUT = 10.0
T = TypeVar("T")


class LxcDriver:
    info: ClassVar[HypervisorInfo] = HypervisorInfo(
        name="lxc",
        instance_types=frozenset({"container"}),
        device_types=lxc_config.DEVICE_TYPES,
        hotplug=lxc_config.HOTPLUG_TYPES,
        live_config=lxc_limits.LIVE_KEYS,
        files=frozenset({"Running", "Frozen"}),  # from inside it, through attach
        config_keys=(
            ConfigKey("raw.lxc", Scope.INSTANCE,
                      doc="Extra LXC configuration lines, appended to the generated file"),
        ),
    )

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.lxcpath = ctx.state_dir / "containers"
        self.lxcpath.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.cgroup_dir = lxc_config.cgroup_prefix(ctx.daemon_id)
        self.limiter = trio.CapacityLimiter(8)
        self.cpus = lxc_limits.host_cpus()
        self.memory = lxc_limits.host_memory()
        self.lxcfs = Lxcfs(ctx.state_dir / "lxcfs.log")
        self.attacher = Attacher()  # runs exec's commands: liblxc forks it, not the daemon
        self._inits: dict[str, tuple[int, str]] = {}  # running name -> (init pid, start)
        # liblxc writes id maps itself, without forking the shadow tools (see idmaps)
        self.start_env = idmaps.start_environment(ctx.state_dir / "lxc-tools")

    @classmethod
    def probe(cls) -> str | None:
        if shutil.which("lxc-start") is None:
            return "the LXC tools (lxc-start, from Debian's lxc package) are not installed"
        return None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_traversable(root: MountedVolume) -> None:
        """An unprivileged container's root must be able to walk down to its rootfs:
        refuse, naming the directory and the fix, instead of liblxc's opaque failure."""
        for path in (root.path, root.lower):
            if path is None:
                continue
            for parent in path.resolve().parents:
                if not os.stat(parent).st_mode & 0o001:
                    raise InvalidState(
                        f"Unprivileged containers cannot reach their root filesystem: "
                        f"{parent} is not searchable by other users (mode "
                        f"{os.stat(parent).st_mode & 0o777:o}). Run 'chmod o+x {parent}', "
                        f"or keep LXCTL_DIR and storage pools outside it",
                        directory=str(parent))

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def _container(self, name: str) -> Any:
        return lxc.Container(name, str(self.lxcpath))

    def _dir(self, name: str) -> Path:
        return self.lxcpath / name

    def rootfs_idmap(self, inst: InstanceRecord) -> IdMap | None:
        if is_true(inst.config.get("security.privileged")):
            return None
        if self.ctx.idmap is None:
            raise InvalidState(
                "Unprivileged containers need a subordinate id range for root in "
                "/etc/subuid and /etc/subgid (e.g. root:1000000:1000000000); or set "
                "security.privileged=true", instance=inst.name)
        isolated = inst.config.get("volatile.idmap.base")  # the core's pick, at create
        return self.ctx.idmap.at(int(isolated)) if isolated else self.ctx.idmap

    def _log_tail(self, name: str, lines: int = 5) -> str:
        try:
            text = (self._dir(name) / "lxc.log").read_text(errors="replace")
        except OSError:
            return ""
        errors = [line for line in text.splitlines() if " ERROR " in line]
        return " | ".join((errors or text.splitlines())[-lines:])

    def _clean_cgroups(self, name: str) -> None:
        cgroups.remove(f"{self.cgroup_dir}/{name}.mon", f"{self.cgroup_dir}/{name}")

    # ------------------------------------------------------------------ lifecycle
    async def create(self, inst: InstanceRecord, root: MountedVolume) -> None:
        idmap = self.rootfs_idmap(inst)
        if idmap is not None:
            await trio.to_thread.run_sync(self._check_traversable, root)
        directory = self._dir(inst.qualified_name)
        directory.mkdir(mode=0o711, exist_ok=True)
        self._write_config(inst, root, [])

    def _write_config(self, inst: InstanceRecord, root: MountedVolume,
                      devices: list[Device], lxcfs: Path | None = None) -> None:
        name = inst.qualified_name
        text = lxc_config.render(
            name=inst.name, root=root, devices=devices, config=inst.config,
            idmap=self.rootfs_idmap(inst), cgroup_dir=self.cgroup_dir, cgroup_name=name,
            log_file=self._dir(name) / "lxc.log",
            console_log=self._dir(name) / lxc_config.CONSOLE_LOG,
            cgroup_limits=lxc_limits.changed_from_defaults(inst.config, self.cpus,
                                                           self.memory),
            lxcfs=lxcfs)
        path = self._dir(name) / "config"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)

    def _status(self, name: str) -> str:
        return STATES.get(self._container(name).state, "Error")

    async def start(self, inst: InstanceRecord, devices: list[Device]) -> None:
        root = lxc_config.root_of(devices)
        self._write_config(inst, root, devices, await self.lxcfs.ensure())
        await self._thread(self._clean_cgroups, inst.qualified_name)
        (self._dir(inst.qualified_name) / "lxc.log").unlink(missing_ok=True)
        # lxc-start returns once the container runs (or failed); never c.start() here
        outcome = await run(
            ["lxc-start", "-P", self.lxcpath, "-n", inst.qualified_name], check=False,
            timeout=START_TIMEOUT, env=self.start_env or None)
        status = await self._thread(self._status, inst.qualified_name)
        if not outcome.ok or status != "Running":
            await self._thread(self._clean_cgroups, inst.qualified_name)
            detail = self._log_tail(inst.qualified_name) or outcome.tail() or f"state {status}"
            raise DriverError(f"Failed to start container {inst.name}: {detail}",
                              instance=inst.name)
        try:
            for device in devices:
                if isinstance(device, ProxyDevice):
                    await self._start_proxy(inst, device)
                elif isinstance(device, NicDevice):
                    await self._thread(nics.set_limits, device)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.stop(inst, timeout=0, force=True)
            raise

    async def stop(self, inst: InstanceRecord, *, timeout: float, force: bool) -> None:
        # python-lxc holds the GIL while it waits: waiting calls go through the tools
        status = await self._thread(self._status, inst.qualified_name)
        if status == "Stopped":
            return
        argv = ["lxc-stop", "-P", str(self.lxcpath), "-n", inst.qualified_name]
        if force or timeout <= 0:
            argv.append("-k")
        else:
            if status == "Frozen":
                await self.unfreeze(inst)
            argv += ["-t", str(max(1, int(timeout + 0.999)))]
        outcome = await run(argv, check=False, timeout=timeout + 30)
        status = await self._thread(self._status, inst.qualified_name)
        if status != "Stopped":
            raise DriverError(f"Failed to stop container {inst.name}: "
                              f"{outcome.tail() or self._log_tail(inst.qualified_name)}",
                              instance=inst.name)
        await self._thread(self._clean_cgroups, inst.qualified_name)
        await self._thread(self._stop_proxies, inst.qualified_name, None)

    def environment(self) -> dict[str, Any]:
        return {"apparmor": lxc_config.apparmor_enabled(),
                "seccomp": lxc_config.SECCOMP.exists(), "seccomp_profile": str(lxc_config.SECCOMP),
                **self.lxcfs.status()}

    async def console_log(self, inst: InstanceRecord) -> bytes:
        """The console output (the current file; rotation keeps one older copy)."""
        path = self._dir(inst.qualified_name) / lxc_config.CONSOLE_LOG

        def read() -> bytes:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return b""

        return await trio.to_thread.run_sync(read, limiter=self.limiter)

    async def console(
        self, inst: InstanceRecord, *, width: int, height: int,
        stdin: trio.MemoryReceiveChannel[StreamInput], output: ExecOutput,
    ) -> int:
        """Attach to the console (``lxc-console -t 0``, whose escape is ctrl+a) on a new
        pty; the client detaches with ctrl+a q, and the end of its input sends those."""
        argv = ["lxc-console", "-P", str(self.lxcpath), "-n", inst.qualified_name, "-t", "0"]
        request = ExecRequest(argv, {}, interactive=True, width=width, height=height)
        return await lxc_exec.run_pty(argv, request, stdin, output,
                                      eof_data=lxc_exec.CONSOLE_DETACH,
                                      hangup_data=lxc_exec.CONSOLE_DETACH)

    async def apply_config(self, inst: InstanceRecord, keys: frozenset[str]) -> None:
        """Write the limits into the running container's cgroups (all of them, so an
        unset key lifts its limit); the config file is rewritten at the next start."""
        wanted = lxc_limits.settings(inst.config, self.cpus, self.memory)
        base = f"{self.cgroup_dir}/{inst.qualified_name}"
        await self._thread(cgroups.write_settings, base, wanted)

    # ------------------------------------------------------------------ files
    async def _in_container(
        self, inst: InstanceRecord, function: Callable[[Any], int], payload: Any,
        data: AsyncIterator[bytes] | None, output: Callable[[bytes], Awaitable[None]] | None,
    ) -> None:
        """Run ``function(payload)`` attached to the container (as its root), feeding it
        ``data`` on stdin and its stdout to ``output``; its stderr becomes the error."""
        errors: list[bytes] = []

        async def out(fd: int, data: bytes) -> None:
            if fd == 2:
                errors.append(data)
            elif output is not None:
                await output(data)

        def attach(stdin_fd: int, stdout_fd: int, stderr_fd: int) -> int:
            pid: int = self._container(inst.qualified_name).attach(
                function, payload, stdin=stdin_fd, stdout=stdout_fd, stderr=stderr_fd,
                env_policy=lxc.LXC_ATTACH_CLEAR_ENV, uid=0, gid=0)
            return pid

        send, stdin = trio.open_memory_channel[StreamInput](8)
        async with trio.open_nursery() as nursery:
            async def feed() -> None:
                async with send:
                    if data is not None:
                        async for chunk in data:
                            await send.send(StreamData(chunk))
                    await send.send(StreamEOF())

            nursery.start_soon(feed)
            code = await lxc_exec.run_piped(lxc_exec.in_thread(attach, self.limiter),
                                            ExecRequest(["file"], {}), stdin, out)
            nursery.cancel_scope.cancel()
        if code != 0:
            message = b"".join(errors).decode(errors="replace").strip() or f"exit {code}"
            if "No such file or directory" in message:
                raise NotFound(f"{message} (in instance {inst.name})", instance=inst.name)
            raise InvalidArgument(f"{message} (in instance {inst.name})", instance=inst.name)

    async def push_file(
        self, inst: InstanceRecord, path: str, data: AsyncIterator[bytes], *, uid: int,
        gid: int, mode: int, make_parents: bool,
    ) -> int:
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in data:
                size += len(chunk)
                yield chunk

        await self._in_container(inst, lxc_files.child_push,
                                 (path, uid, gid, mode, make_parents), counted(), None)
        return size

    async def pull_file(self, inst: InstanceRecord, path: str,
                        output: Callable[[bytes], Awaitable[None]]) -> int:
        size = 0

        async def counted(chunk: bytes) -> None:
            nonlocal size
            size += len(chunk)
            await output(chunk)

        await self._in_container(inst, lxc_files.child_pull, path, None, counted)
        return size

    async def delete_file(self, inst: InstanceRecord, path: str) -> None:
        await self._in_container(inst, lxc_files.child_delete, path, None, None)

    async def make_directory(self, inst: InstanceRecord, path: str, *, uid: int, gid: int,
                             mode: int, make_parents: bool) -> None:
        await self._in_container(inst, lxc_files.child_mkdir,
                                 (path, uid, gid, mode, make_parents), None, None)

    async def file_info(self, inst: InstanceRecord, path: str) -> dict[str, Any]:
        parts: list[bytes] = []

        async def collect(chunk: bytes) -> None:
            parts.append(chunk)

        await self._in_container(inst, lxc_files.child_info, path, None, collect)
        info: dict[str, Any] = json.loads(b"".join(parts))
        return info

    # ------------------------------------------------------------------ hot-plug
    async def _pid(self, inst: InstanceRecord) -> int:
        pid = (await self._thread(self._state, inst.qualified_name, False)).pid
        if pid <= 0:
            raise InvalidState(f"Instance {inst.name!r} is not running", instance=inst.name)
        return pid

    async def _inject(self, inst: InstanceRecord, *args: str) -> None:
        pid = await self._pid(inst)
        outcome = await run([sys.executable, "-I", INJECT, args[0], str(pid), *args[1:]],
                            check=False, timeout=30)
        if not outcome.ok:
            raise DriverError(f"Cannot change the mounts of {inst.name}: {outcome.tail()}",
                              instance=inst.name)

    def _root_owner(self, inst: InstanceRecord) -> tuple[str, str]:
        idmap = self.rootfs_idmap(inst)
        return (str(idmap.uid_base), str(idmap.gid_base)) if idmap else ("0", "0")

    async def hotplug(self, inst: InstanceRecord, device: Device) -> None:
        """A disk (a bind of a host path or volume) or a unix device (a bind of the host
        node, allowed in the devices cgroup) into the running container."""
        if isinstance(device, DiskDevice):
            await self._inject(inst, "mount", str(device.source.path), device.path,
                               "ro" if device.readonly else "rw", *self._root_owner(inst))
        elif isinstance(device, UnixDevice):
            rule = lxc_config.device_rule(device)
            base = f"{self.cgroup_dir}/{inst.qualified_name}"
            await self._thread(cgroups.write_settings, base, {"devices.allow": rule})
            await self._inject(inst, "mount", device.source, device.path, "rw",
                               *self._root_owner(inst))
        elif isinstance(device, ProxyDevice):
            await self._start_proxy(inst, device)
        elif isinstance(device, NicDevice):
            await nics.hotplug(await self._pid(inst), device)
        else:
            raise InvalidArgument(f"The lxc driver cannot add {device.type} devices live")

    async def hot_unplug(self, inst: InstanceRecord, device: Device) -> None:
        if isinstance(device, DiskDevice):
            await self._inject(inst, "umount", device.path, "dir")
        elif isinstance(device, UnixDevice):
            await self._inject(inst, "umount", device.path, "file")
            base = f"{self.cgroup_dir}/{inst.qualified_name}"
            await self._thread(cgroups.write_settings, base,
                               {"devices.deny": lxc_config.device_rule(device)})
        elif isinstance(device, ProxyDevice):
            await self._thread(self._stop_proxies, inst.qualified_name, device.name)
        elif isinstance(device, NicDevice):
            await nics.hot_unplug(await self._pid(inst), device)
        else:
            raise InvalidArgument(f"The lxc driver cannot remove {device.type} devices live")

    # ------------------------------------------------------------------ proxies
    async def _start_proxy(self, inst: InstanceRecord, device: ProxyDevice) -> None:
        """Start the device's forwarder (detached: it outlives a daemon restart, and
        ends with the container's init) and wait until it listens."""
        pid = (await self._thread(self._state, inst.qualified_name, False)).pid
        directory = self._dir(inst.qualified_name)
        pidfile = directory / f"proxy.{device.name}.pid"
        log_file = directory / f"proxy.{device.name}.log"
        await self._thread(self._stop_proxies, inst.qualified_name, device.name)
        await spawn_service([sys.executable, "-I", PROXY, str(pid), device.listen,
                             device.connect, device.bind, pidfile], log_file=log_file)
        with trio.move_on_after(PROXY_START_TIMEOUT):
            while not pidfile.exists():
                text = log_file.read_text(errors="replace") if log_file.exists() else ""
                if "proxy:" in text or "usage:" in text or "Traceback" in text:
                    break
                await trio.sleep(0.02)
        if not pidfile.exists():
            text = log_file.read_text(errors="replace").strip() if log_file.exists() else ""
            raise DriverError(f"Proxy device {device.name!r} of {inst.name} did not start: "
                              f"{text.splitlines()[-1] if text else 'no answer'}",
                              instance=inst.name, device=device.name)

    def _stop_proxies(self, name: str, device: str | None) -> None:
        """End the forwarders of a container (or of one of its devices)."""
        for pidfile in self._dir(name).glob(f"proxy.{device or '*'}.pid"):
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
            pidfile.unlink(missing_ok=True)
            pidfile.with_suffix(".log").unlink(missing_ok=True)

    async def freeze(self, inst: InstanceRecord) -> None:
        await run(["lxc-freeze", "-P", self.lxcpath, "-n", inst.qualified_name], timeout=60)

    async def unfreeze(self, inst: InstanceRecord) -> None:
        await run(["lxc-unfreeze", "-P", self.lxcpath, "-n", inst.qualified_name], timeout=60)

    async def delete(self, inst: InstanceRecord) -> None:
        await self.stop(inst, timeout=0, force=True)

        def delete() -> None:
            name = inst.qualified_name
            shutil.rmtree(self._dir(name), ignore_errors=True)
            self._clean_cgroups(name)
            lock = Path("/run/lxc/lock") / str(self.lxcpath).strip("/") / f".{name}"
            lock.unlink(missing_ok=True)
            if not any(p.is_dir() for p in self.lxcpath.iterdir()):
                # no container of this daemon left (none being created either, as its
                # directory comes first): drop the daemon's cgroup prefix too
                cgroups.remove(self.cgroup_dir)

        await trio.to_thread.run_sync(delete, limiter=self.limiter)

    async def close(self) -> None:
        """At daemon exit (no more starts): stop the attach helper (the commands it
        started carry on), drop the cgroup prefix if nothing runs."""
        await self.attacher.aclose()

        def drop_prefix_if_unused() -> None:
            names = [p.name for p in self.lxcpath.iterdir() if (p / "config").exists()]
            if all(self._status(name) == "Stopped" for name in names):
                cgroups.remove(self.cgroup_dir)

        await trio.to_thread.run_sync(drop_prefix_if_unused, limiter=self.limiter)

    # ------------------------------------------------------------------ state
    def _state(self, name: str, full: bool) -> InstanceState:
        if not (self._dir(name) / "config").exists():
            return InstanceState("Error")
        if not self._has_cgroup(name):  # stopped: no need to parse its config (list)
            self._inits.pop(name, None)
            return InstanceState("Stopped", pid=-1)
        base = f"{self.cgroup_dir}/{name}"
        known = self._known_state(name, base)
        if known is not None:
            status, pid = known
        else:  # ask liblxc: parses the config and asks the monitor (two round trips)
            c = self._container(name)
            status = STATES.get(c.state, "Error")
            if status in ("Stopped", "Error"):
                return InstanceState(status, pid=c.init_pid if status != "Stopped" else -1)
            pid = c.init_pid
            if status in ("Running", "Frozen"):
                self._remember_init(name, pid)
        if not full:
            return InstanceState(status, pid=pid)
        memory = cgroups.controller("memory") / base
        usage = cgroups.read_int(memory / "memory.usage_in_bytes")
        if usage < 0:
            usage = cgroups.read_int(memory / "memory.current")
        peak = cgroups.read_int(memory / "memory.max_usage_in_bytes")
        cpu = cgroups.read_int(cgroups.controller("cpuacct") / base / "cpuacct.usage")
        processes = cgroups.read_int(cgroups.controller("pids") / base / "pids.current")
        return InstanceState(
            status, pid=pid, processes=processes,
            memory={"usage": max(usage, 0), "usage_peak": max(peak, 0)},
            cpu={"usage": max(cpu, 0)},
            network=addresses.addresses(pid) if pid > 0 else {},
        )

    def _known_state(self, name: str, base: str) -> tuple[str, int] | None:
        """Running or Frozen, and the init pid, for a container liblxc was asked about
        before, as long as that init still lives (its start time tells a reused pid);
        None: ask liblxc."""
        known = self._inits.get(name)
        if known is None:
            return None
        pid, started = known
        frozen = cgroups.frozen(base)
        if frozen is None or cgroups.start_time(pid) != started:
            self._inits.pop(name, None)
            return None
        return ("Frozen" if frozen else "Running"), pid

    def _remember_init(self, name: str, pid: int) -> None:
        started = cgroups.start_time(pid) if pid > 0 else None
        if started is not None:
            self._inits[name] = (pid, started)

    def _has_cgroup(self, name: str) -> bool:
        """False only when the container surely is not running: liblxc makes its cgroup
        before it starts anything and removes it once it stopped. Where the pids
        hierarchy is not there to tell, True (ask liblxc)."""
        pids = cgroups.controller("pids")
        return (pids / self.cgroup_dir / name).exists() or not (pids / "cgroup.procs").exists()

    async def states(self, insts: list[InstanceRecord], *,
                     full: bool) -> dict[str, InstanceState]:
        def read() -> dict[str, InstanceState]:
            return {i.qualified_name: self._state(i.qualified_name, full) for i in insts}

        return await trio.to_thread.run_sync(read, limiter=self.limiter)

    # ------------------------------------------------------------------ exec
    async def exec(
        self, inst: InstanceRecord, request: ExecRequest,
        stdin: trio.MemoryReceiveChannel[StreamInput], output: ExecOutput,
    ) -> int:
        env = lxc_exec.environment(request)
        if request.interactive:
            argv = ["lxc-attach", "-P", str(self.lxcpath), "-n", inst.qualified_name, "--clear-env",
                    "-u", str(request.user), "-g", str(request.group)]
            for key, value in env.items():
                argv += ["-v", f"{key}={value}"]
            command = request.command
            if request.cwd:
                command = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', request.cwd, *command]
            return await lxc_exec.run_pty([*argv, "--", *command], request, stdin, output)

        async def spawn(stdin_fd: int, stdout_fd: int, stderr_fd: int) -> lxc_exec.Child:
            return await self.attacher.attach(
                self.lxcpath, inst.qualified_name, request.command, env, request.user,
                request.group, request.cwd, (stdin_fd, stdout_fd, stderr_fd))

        return await lxc_exec.run_piped(spawn, request, stdin, output)


@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_hypervisor(LxcDriver)
