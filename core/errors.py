"""The one exception hierarchy of lxctl.

Every error that may reach a client is an :class:`LxctlError` subclass with a stable
JSON-RPC error code in the server range (-32000..-32099), a stable ``kind`` string and
structured ``data``. :func:`lxctl.rpc.error_object` is the one place that turns
exceptions into JSON-RPC errors; anything that is not an ``LxctlError`` becomes -32603
with an incident id, and its traceback goes to the log only.

Codes are part of the API: never renumber one.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LxctlError(Exception):
    """Base class: an error with a stable code, a kind and structured data."""

    code: ClassVar[int] = -32000
    kind: ClassVar[str] = "error"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_data(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.data}


class NotFound(LxctlError):
    """The named object does not exist (Incus: 404)."""

    code = -32001
    kind = "not_found"


class AlreadyExists(LxctlError):
    """An object with that name exists already (Incus: 409)."""

    code = -32002
    kind = "already_exists"


class InvalidArgument(LxctlError):
    """A parameter has a value that is not acceptable (Incus: 400)."""

    code = -32003
    kind = "invalid_argument"


class InvalidState(LxctlError):
    """The object is not in a state that allows the action (Incus: 400)."""

    code = -32004
    kind = "invalid_state"


class Busy(LxctlError):
    """Another operation holds the object's lock (Incus: "Instance is busy")."""

    code = -32005
    kind = "busy"


class Forbidden(LxctlError):
    """The caller is not allowed to do this (Incus: 403)."""

    code = -32006
    kind = "forbidden"


class Unavailable(LxctlError):
    """A dependency (network, storage pool) is unavailable right now (Incus: 503)."""

    code = -32007
    kind = "unavailable"


class Cancelled(LxctlError):
    """The operation was cancelled (raised by work that notices it was interrupted; the
    operation ends as Cancelled, not Failure)."""

    code = -32008
    kind = "cancelled"


class Timeout(LxctlError):
    """The action did not finish in the time allowed."""

    code = -32009
    kind = "timeout"


class DriverError(LxctlError):
    """A backend (storage, hypervisor, ...) failed to do what it was asked."""

    code = -32010
    kind = "driver_error"


class MessageTooLarge(LxctlError):
    """A JSON-RPC message exceeded the configured size limit."""

    code = -32011
    kind = "message_too_large"


class ShuttingDown(LxctlError):
    """The daemon is shutting down and takes no new work (no new operations)."""

    code = -32012
    kind = "shutting_down"


class PluginError(LxctlError):
    """A plugin or driver is missing, disabled or misbehaves."""

    code = -32013
    kind = "plugin_error"
