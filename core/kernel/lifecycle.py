"""The instance state machine, and the transient states shown while actions run.

Persistent states come from the hypervisor (Stopped, Running, Frozen, Error); while an
action holds an instance's lock, its transient state (Starting, Stopping) is shown
instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxctl.errors import InvalidState

Key = tuple[str, str]


@dataclass(frozen=True)
class Transition:
    allowed_from: frozenset[str]
    target: str | None  # None: the instance is gone


TRANSITIONS: dict[str, Transition] = {
    "create": Transition(frozenset(), "Stopped"),
    "start": Transition(frozenset({"Stopped", "Error"}), "Running"),
    "stop": Transition(frozenset({"Running", "Frozen", "Error"}), "Stopped"),
    "restart": Transition(frozenset({"Running", "Frozen"}), "Running"),
    "freeze": Transition(frozenset({"Running"}), "Frozen"),
    "unfreeze": Transition(frozenset({"Frozen"}), "Running"),
    "delete": Transition(frozenset({"Stopped", "Error"}), None),
    "rebuild": Transition(frozenset({"Stopped"}), "Stopped"),
    "snapshot": Transition(frozenset({"Stopped", "Running", "Frozen", "Error"}), None),
    "restore": Transition(frozenset({"Stopped", "Running", "Frozen", "Error"}), None),
    "rename": Transition(frozenset({"Stopped"}), "Stopped"),
    "move": Transition(frozenset({"Stopped"}), "Stopped"),
}

# What Incus answers for a refused transition, by (action, current state).
_REFUSALS = {
    ("start", "Running"): "The instance is already running",
    ("start", "Frozen"): "The instance is frozen: resume it instead",
    ("stop", "Stopped"): "The instance is already stopped",
    ("restart", "Stopped"): "The instance isn't running",
    ("freeze", "Frozen"): "The instance is already frozen",
    ("freeze", "Stopped"): "The instance isn't running",
    ("unfreeze", "Running"): "The instance is not frozen",
    ("unfreeze", "Stopped"): "The instance isn't running",
    ("delete", "Running"): "Instance is running: stop it first, or delete with --force",
    ("delete", "Frozen"): "Instance is frozen: stop it first, or delete with --force",
    ("rebuild", "Running"): "The instance must be stopped to be rebuilt",
    ("rebuild", "Frozen"): "The instance must be stopped to be rebuilt",
    ("rename", "Running"): "Renaming of running instance not allowed",
    ("rename", "Frozen"): "Renaming of running instance not allowed",
    ("move", "Running"): "The instance must be stopped to be moved to another storage pool",
    ("move", "Frozen"): "The instance must be stopped to be moved to another storage pool",
}


def check_transition(action: str, name: str, status: str) -> Transition:
    """Return the transition for ``action`` from ``status``, or raise InvalidState."""
    transition = TRANSITIONS[action]
    if status not in transition.allowed_from:
        message = _REFUSALS.get((action, status), f"Cannot {action} an instance that is {status}")
        raise InvalidState(message, instance=name, status=status, action=action)
    return transition


class TransientStates:
    """Starting/Stopping, shown while an action runs (local to this server)."""

    def __init__(self) -> None:
        self._transient: dict[Key, str] = {}

    def set(self, key: Key, status: str | None) -> None:
        if status is None:
            self._transient.pop(key, None)
        else:
            self._transient[key] = status

    def shown(self, key: Key, real: str) -> str:
        return self._transient.get(key, real)
