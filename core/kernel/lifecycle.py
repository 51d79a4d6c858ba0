"""The instance state machine and the per-instance lock.

Persistent states come from the hypervisor (Stopped, Running, Frozen, Error); while an
action holds an instance's lock, its transient state (Starting, Stopping) is shown
instead. One action at a time per instance: a second one fails at once with ``Busy``
naming the action in progress, as Incus's operation lock does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from lxctl.errors import Busy, InvalidState

STATES = ("Stopped", "Starting", "Running", "Stopping", "Frozen", "Error")


@dataclass(frozen=True)
class Transition:
    allowed_from: frozenset[str]
    transient: str | None  # shown while the action runs
    target: str | None  # None: the instance is gone


TRANSITIONS: dict[str, Transition] = {
    "create": Transition(frozenset(), None, "Stopped"),
    "start": Transition(frozenset({"Stopped", "Error"}), "Starting", "Running"),
    "stop": Transition(frozenset({"Running", "Frozen", "Error"}), "Stopping", "Stopped"),
    "restart": Transition(frozenset({"Running", "Frozen"}), "Stopping", "Running"),
    "freeze": Transition(frozenset({"Running"}), None, "Frozen"),
    "unfreeze": Transition(frozenset({"Frozen"}), None, "Running"),
    "delete": Transition(frozenset({"Stopped", "Error"}), None, None),
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
}


def check_transition(action: str, name: str, status: str) -> Transition:
    """Return the transition for ``action`` from ``status``, or raise InvalidState."""
    transition = TRANSITIONS[action]
    if status not in transition.allowed_from:
        message = _REFUSALS.get((action, status), f"Cannot {action} an instance that is {status}")
        raise InvalidState(message, instance=name, status=status, action=action)
    return transition


class Lifecycle:
    """Per-instance locks and transient states, in memory."""

    def __init__(self) -> None:
        self._held: dict[str, str] = {}  # instance name -> action holding its lock
        self._transient: dict[str, str] = {}

    def acquire(self, name: str, action: str) -> None:
        """Take the instance's lock for ``action`` or raise Busy at once (never waits)."""
        held = self._held.get(name)
        if held is not None:
            raise Busy(f'Instance is busy running a "{held}" operation', instance=name,
                       action=held)
        self._held[name] = action

    def release(self, name: str) -> None:
        self._held.pop(name, None)
        self._transient.pop(name, None)

    @asynccontextmanager
    async def locked(self, name: str, action: str) -> AsyncIterator[None]:
        self.acquire(name, action)
        try:
            yield
        finally:
            self.release(name)

    def set_transient(self, name: str, status: str | None) -> None:
        if status is None:
            self._transient.pop(name, None)
        else:
            self._transient[name] = status

    def shown_status(self, name: str, real: str) -> str:
        return self._transient.get(name, real)

    def busy(self, name: str) -> str | None:
        return self._held.get(name)
