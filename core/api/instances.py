"""``instance.*``: list, get, create, power, delete, exec, console.

Long actions return an operation object at once; ``operation.wait`` blocks until it
ends.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import trio

from lxctl.api.context import app_of, project_name
from lxctl.config.instance_types import limits_for
from lxctl.drivers.hypervisor import ExecOutput, ExecRequest, StreamInput
from lxctl.errors import InvalidArgument
from lxctl.rpc import Method
from lxctl.state.records import InstanceRecord
from lxctl.state.store import Tables

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "instance"
MAX_EXEC_ARGS = 4096


async def instance_list(
    ctx: CallContext, full: bool = True, *, project: str = "default", all_projects: bool = False
) -> list[dict[str, Any]]:
    """All instances of a project (or of all) with their state (``full``: with
    resources and addresses)."""
    app = app_of(ctx)
    scope = None if all_projects else project_name(project)

    def read(t: Tables) -> list[InstanceRecord]:
        if scope is not None:
            t.project_get(scope)  # an unknown project is an error, not an empty list
        return t.instance_list(scope)

    return await app.instances.describe(await app.store.read(read), full=full)


async def instance_get(ctx: CallContext, name: str, *, project: str = "default") -> dict[str, Any]:
    """One instance with its state (status, processes, resources)."""
    app = app_of(ctx)
    rec = await app.instances.get(project_name(project), name)
    return (await app.instances.describe([rec], full=True))[0]


async def instance_create(
    ctx: CallContext,
    image: str,
    name: str | None = None,
    config: dict[str, str] | None = None,
    profiles: list[str] | None = None,
    storage: str | None = None,
    ephemeral: bool = False,
    start: bool = False,
    description: str = "",
    *,
    devices: dict[str, dict[str, str]] | None = None,
    instance_type: str | None = None,
    project: str = "default",
) -> dict[str, Any]:
    """Create an instance from an image (and start it: ``launch``); ``instance_type``
    (c2-m4, t2.micro ...) sets limits.cpu and limits.memory unless ``config`` does."""
    if instance_type is not None:
        config = {**limits_for(instance_type), **(config or {})}
    op = await app_of(ctx).instances.create(
        project=project_name(project),
        name=name,
        image=image,
        config=config or {},
        devices=devices or {},
        profiles=profiles,
        pool=storage,
        ephemeral=ephemeral,
        start=start,
        description=description,
    )
    return op.to_api()


async def instance_start(
    ctx: CallContext, name: str, *, project: str = "default"
) -> dict[str, Any]:
    """Start a stopped instance (an operation)."""
    return (await app_of(ctx).instances.start(project_name(project), name)).to_api()


async def instance_stop(
    ctx: CallContext,
    name: str,
    timeout: float = -1,
    force: bool = False,
    *,
    project: str = "default",
) -> dict[str, Any]:
    """Stop cleanly within ``timeout`` seconds (-1: 600), then kill; ``force``: kill now."""
    op = await app_of(ctx).instances.stop(project_name(project), name, timeout=timeout, force=force)
    return op.to_api()


async def instance_restart(
    ctx: CallContext,
    name: str,
    timeout: float = -1,
    force: bool = False,
    *,
    project: str = "default",
) -> dict[str, Any]:
    """Stop then start a running instance (an operation)."""
    op = await app_of(ctx).instances.restart(
        project_name(project), name, timeout=timeout, force=force
    )
    return op.to_api()


async def instance_freeze(
    ctx: CallContext, name: str, *, project: str = "default"
) -> dict[str, Any]:
    """Freeze (pause) a running instance (an operation)."""
    return (await app_of(ctx).instances.set_frozen(project_name(project), name, True)).to_api()


async def instance_unfreeze(
    ctx: CallContext, name: str, *, project: str = "default"
) -> dict[str, Any]:
    """Unfreeze (resume) a frozen instance (an operation)."""
    return (await app_of(ctx).instances.set_frozen(project_name(project), name, False)).to_api()


async def instance_delete(
    ctx: CallContext, name: str, force: bool = False, *, project: str = "default"
) -> dict[str, Any]:
    """Delete an instance and its root volume (an operation); ``force`` stops it first."""
    return (await app_of(ctx).instances.delete(project_name(project), name, force=force)).to_api()


async def instance_exec(
    ctx: CallContext,
    name: str,
    command: list[str],
    environment: dict[str, str] | None = None,
    cwd: str | None = None,
    user: int = 0,
    group: int = 0,
    interactive: bool = False,
    width: int = 80,
    height: int = 24,
    stream: str | None = None,
    *,
    project: str = "default",
) -> dict[str, Any]:
    """Run a command. Input comes as ``stream.input`` notifications for ``stream``;
    output goes out as ``exec.output`` notifications {stream, fd, data (base64)}.
    Returns {"return": exit code}."""
    if not command or len(command) > MAX_EXEC_ARGS:
        raise InvalidArgument("command must be a list of 1 to 4096 strings")
    for key in environment or {}:
        if not key or "=" in key or "\0" in key:
            raise InvalidArgument(f"Invalid environment variable name {key!r}", key=key)
    if any("\0" in arg for arg in command):
        raise InvalidArgument("command arguments must not contain NUL bytes")
    request = ExecRequest(command, environment or {}, cwd, user, group, interactive, width, height)
    stdin = _input_of(ctx, stream)
    try:
        code = await app_of(ctx).instances.exec(project_name(project), name, request, stdin,
                                                _output_to(ctx, stream))
    finally:
        if stream is not None:
            ctx.conn.release_stream(stream)
    return {"return": code}


def _input_of(ctx: CallContext, stream: str | None) -> trio.MemoryReceiveChannel[StreamInput]:
    """The ``stream.input`` notifications for ``stream`` (None: end-of-file at once)."""
    if stream is None:
        no_input, stdin = trio.open_memory_channel[StreamInput](0)
        no_input.close()
        return stdin
    return ctx.conn.claim_stream(stream)


def _output_to(ctx: CallContext, stream: str | None) -> ExecOutput:
    """Output as ``exec.output`` notifications {stream, fd, data (base64)}."""
    conn = ctx.conn

    async def output(fd: int, data: bytes) -> None:
        if conn.closed:
            return
        try:
            await conn.notify(
                "exec.output", {"stream": stream, "fd": fd, "data": base64.b64encode(data).decode()}
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client left mid-exec: its output goes nowhere, the command runs on

    return output


async def instance_set_profiles(ctx: CallContext, name: str, profiles: list[str], *,
                                project: str = "default") -> dict[str, Any]:
    """Replace the instance's profile list (``profile assign/add/remove``): each must
    exist and the expanded devices must keep a root disk the hypervisor can use."""
    app = app_of(ctx)
    rec = await app.instances.set_profiles(project_name(project), name, profiles)
    return (await app.instances.describe([rec], full=False))[0]


METHODS: dict[str, Method] = {
    "instance.list": instance_list,
    "instance.get": instance_get,
    "instance.create": instance_create,
    "instance.start": instance_start,
    "instance.stop": instance_stop,
    "instance.restart": instance_restart,
    "instance.freeze": instance_freeze,
    "instance.unfreeze": instance_unfreeze,
    "instance.delete": instance_delete,
    "instance.exec": instance_exec,
    "instance.set_profiles": instance_set_profiles,
}


async def instance_update(
    ctx: CallContext,
    name: str,
    config: dict[str, str] | None = None,
    devices: dict[str, dict[str, str]] | None = None,
    description: str | None = None,
    ephemeral: bool | None = None,
    *,
    project: str = "default",
) -> dict[str, Any]:
    """Replace the instance's ``config`` (its daemon-managed ``volatile.*`` keys stay),
    ``devices``, ``description`` and/or ``ephemeral``: whichever are given, checked as
    at create."""
    app = app_of(ctx)
    rec = await app.instances.update(project_name(project), name, config=config,
                                     devices=devices, description=description,
                                     ephemeral=ephemeral)
    return (await app.instances.describe([rec], full=False))[0]


METHODS["instance.update"] = instance_update


async def instance_rebuild(ctx: CallContext, name: str, image: str | None = None,
                           empty: bool = False, *, project: str = "default") -> dict[str, Any]:
    """A new root volume from ``image`` (or an empty one: ``empty``), keeping config,
    devices, profiles and identity; the instance must be stopped."""
    op = await app_of(ctx).instances.rebuild(project_name(project), name, image=image,
                                             empty=empty)
    return op.to_api()


METHODS["instance.rebuild"] = instance_rebuild


async def instance_console_log(ctx: CallContext, name: str, *,
                               project: str = "default") -> dict[str, Any]:
    """The instance's console output so far: {"log": text} (undecodable bytes replaced)."""
    data = await app_of(ctx).instances.console_log(project_name(project), name)
    return {"log": data.decode(errors="replace")}


METHODS["instance.console_log"] = instance_console_log


async def instance_console(ctx: CallContext, name: str, width: int = 80, height: int = 24,
                           stream: str | None = None, *,
                           project: str = "default") -> dict[str, Any]:
    """Attach to the running instance's console: input as ``stream.input`` for
    ``stream`` (its end detaches), output as ``exec.output`` (fd 1). Returns
    {"return": 0} once detached."""
    stdin = _input_of(ctx, stream)
    try:
        code = await app_of(ctx).instances.console(
            project_name(project), name, width=width, height=height, stdin=stdin,
            output=_output_to(ctx, stream))
    finally:
        if stream is not None:
            ctx.conn.release_stream(stream)
    return {"return": code}


METHODS["instance.console"] = instance_console


async def instance_copy(ctx: CallContext, source: str, name: str, snapshot: str | None = None,
                        storage: str | None = None, instance_only: bool = False,
                        config: dict[str, str] | None = None,
                        devices: dict[str, dict[str, str]] | None = None,
                        profiles: list[str] | None = None, ephemeral: bool | None = None,
                        start: bool = False, *, project: str = "default") -> dict[str, Any]:
    """A new instance ``name`` from ``source`` (running or not) or from its ``snapshot``:
    on pool ``storage`` if given, with the source's snapshots unless ``instance_only``;
    ``config``/``devices`` override, ``profiles`` replace (an operation)."""
    op = await app_of(ctx).instances.copy(
        project_name(project), source, name, snapshot=snapshot, pool=storage,
        instance_only=instance_only, config=config, devices=devices, profiles=profiles,
        ephemeral=ephemeral, start=start)
    return op.to_api()


async def instance_move(ctx: CallContext, name: str, new_name: str | None = None,
                        storage: str | None = None, instance_only: bool = False, *,
                        project: str = "default") -> dict[str, Any]:
    """Rename a stopped instance and/or move it to pool ``storage`` (its snapshots with
    it unless ``instance_only``) (an operation)."""
    op = await app_of(ctx).instances.move(project_name(project), name, new_name=new_name,
                                          pool=storage, instance_only=instance_only)
    return op.to_api()


METHODS["instance.copy"] = instance_copy
METHODS["instance.move"] = instance_move
