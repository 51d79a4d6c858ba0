"""Per-instance hooks: ``raw.hooks.pre-start`` and ``raw.hooks.post-stop``.

Each names an executable on the host (``raw.``: it runs as the daemon, outside the
instance, as ``raw.lxc`` reaches past the core). It runs synchronously, with the
instance as JSON on stdin (name, project, stage, expanded config) and ``LXCTL_HOOK``,
``LXCTL_INSTANCE``, ``LXCTL_PROJECT`` in its environment, in a session of its own
killed after ``INSTANCE_HOOK_TIMEOUT`` seconds. A pre-start hook that exits non-zero
(or times out) vetoes the start, with its output's tail in the error; a failed
post-stop hook is logged and raised as a warning, the stop stands.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from lxctl import execute
from lxctl.config.schema import ConfigKey, Scope
from lxctl.errors import InvalidState, LxctlError
from lxctl.kernel.events import EventBus
from lxctl.state.records import InstanceRecord

INSTANCE_HOOK_TIMEOUT = 30.0
STAGES = ("pre-start", "post-stop")


def _absolute(value: str) -> None:
    if not value.startswith("/"):
        raise ValueError("must be an absolute path to an executable on the host")


HOOK_KEYS = tuple(
    ConfigKey(f"raw.hooks.{stage}", Scope.INSTANCE, validate=_absolute, live=True,
              doc=f"An executable on the host run synchronously at {stage}"
              + (" (exit non-zero to veto the start)" if stage == "pre-start" else ""))
    for stage in STAGES)


async def run_instance_hook(stage: str, rec: InstanceRecord, config: Mapping[str, str],
                            bus: EventBus) -> None:
    """Run the instance's ``raw.hooks.<stage>`` if it has one (see the module)."""
    path = config.get(f"raw.hooks.{stage}")
    if not path:
        return
    data = json.dumps({"name": rec.name, "project": rec.project, "stage": stage,
                       "config": dict(config)}).encode() + b"\n"
    env = {"LXCTL_HOOK": stage, "LXCTL_INSTANCE": rec.name, "LXCTL_PROJECT": rec.project}
    try:
        outcome = await execute.run([path], check=False, stdin=data, env=env,
                                    timeout=INSTANCE_HOOK_TIMEOUT, own_session=True)
        why = "" if outcome.ok else f"exit {outcome.returncode}" + (
            f": {outcome.tail()}" if outcome.tail() else "")
    except LxctlError as exc:
        why = exc.message
    if not why:
        return
    if stage == "pre-start":
        raise InvalidState(f"The {stage} hook {path} refused to start {rec.name}: {why}",
                           instance=rec.name, hook=path)
    bus.log("warning", f"The {stage} hook {path} of {rec.name} failed: {why}",
            warning="Hook failure", project=rec.project, entity_type="instance",
            entity_name=rec.name)
