"""A small synchronous JSON-RPC client for the daemon's Unix socket.

Framing as in :mod:`lxctl.rpc`: one JSON message per line. Notifications that arrive
while waiting for a response go to ``on_notification``. Imports stay light: this runs
on every ``lxctl`` command.
"""

from __future__ import annotations

import binascii
import os

# the C module: ``socket`` adds enum classes that cost ~1.5 ms on every command
from _socket import AF_UNIX, MSG_DONTWAIT, SOCK_STREAM
from _socket import socket as _unix_socket

from lxctl.cli import wire
from lxctl.paths import socket_path

TYPE_CHECKING = False  # typing costs ~2 ms per client start; checkers see True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Notification = Callable[[str, dict[str, Any]], None]


PROJECT_METHODS = ("instance.", "image.", "profile.", "network.")
"""Methods that take a ``project`` param: :meth:`Client.request` adds the current
project to them unless the caller gave one."""

project_flag: str | None = None
"""The global ``--project NAME`` flag (set by :mod:`lxctl.cli.main`); it wins over the
client config's current project."""

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def config_path() -> str:
    """The client config (Incus keeps its own in ``~/.config/incus/config.yml``):
    ``$LXCTL_CONF``, or ``~/.config/lxctl/config.yml``."""
    return os.environ.get("LXCTL_CONF") or os.path.join(
        os.path.expanduser("~"), ".config", "lxctl", "config.yml")


def read_config(path: str | None = None) -> dict[str, Any]:
    """The client config as a map ({} when there is no file: nothing else is read).

    ``project: NAME`` is all it holds now. Flat ``key: value`` lines of plain words, as
    ``project switch`` writes them, are read by hand (PyYAML costs ~10 ms a start);
    anything else goes to PyYAML."""
    try:
        with open(path or config_path(), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConnectionFailed(f"cannot read the client config {path or config_path()}: "
                               f"{exc.strerror}") from None
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        value = value.strip()
        if not (sep and key and _PLAIN.issuperset(key) and _PLAIN.issuperset(value)):
            return _read_yaml(text)
        out[key] = value
    return out


def _read_yaml(text: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConnectionFailed(f"invalid client config {config_path()}: {exc}") from None
    return data if isinstance(data, dict) else {}


def current_project() -> str | None:
    """``--project``, else the client config's ``project``, else None (the daemon's
    default project)."""
    if project_flag is not None:
        return project_flag
    project = read_config().get("project")
    return None if project in (None, "") else str(project)


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data if isinstance(data, dict) else {}

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))


class ConnectionFailed(Exception):
    pass


class Client:
    """``timeout``: seconds that connecting may take (default: no limit). ``deadline``
    (a ``time.monotonic()`` value, default None: none): reading a response past it
    raises TimeoutError."""

    def __init__(self, path: str | None = None, timeout: float | None = None,
                 project: str | None = None) -> None:
        self.path = path or socket_path()
        self._project = project  # None: looked up on the first call that takes one
        self._project_known = project is not None
        self.sock = _unix_socket(AF_UNIX, SOCK_STREAM)
        self.deadline: float | None = None
        try:
            if timeout is not None:
                self.sock.settimeout(max(timeout, 0.001))  # 0 would mean non-blocking
            self.sock.connect(self.path)
            self.sock.settimeout(None)
        except OSError as exc:
            self.sock.close()
            hint = " (is lxctld running?)" if isinstance(
                exc, FileNotFoundError | ConnectionRefusedError) else ""
            raise ConnectionFailed(f"cannot connect to lxctld at {self.path}: "
                                   f"{exc.strerror or exc}{hint}") from None
        self._buf = b""
        self._pending: list[dict[str, Any]] = []  # read after an answer, not dispatched yet
        self._next_id = 0
        # buffered: send() queues and the caller flushes when select() says writable, so
        # that a client streaming input never blocks while the daemon waits for it to read
        self.buffered = False
        self.outbox = bytearray()
        self.on_notification: Notification | None = None

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    # ------------------------------------------------------------------ sending
    def send(self, message: dict[str, Any]) -> None:
        data = wire.dumps(message) + b"\n"
        if self.buffered:
            self.outbox += data
        else:
            self.sock.sendall(data)

    def flush_some(self) -> None:
        """Send what the socket takes now, without blocking (buffered mode)."""
        try:
            sent = self.sock.send(self.outbox, MSG_DONTWAIT)
        except BlockingIOError:
            return
        del self.outbox[:sent]

    @property
    def project(self) -> str | None:
        """The project added to calls of :data:`PROJECT_METHODS` (None: none is added,
        the daemon uses ``default``): ``--project``, else the client config's."""
        if not self._project_known:
            self._project, self._project_known = current_project(), True
        return self._project

    def request(self, method: str, params: dict[str, Any] | None = None) -> int:
        params = params or {}
        if "project" not in params and method.startswith(PROJECT_METHODS):
            project = self.project
            if project is not None:
                params = {**params, "project": project}
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method,
                   "params": params})
        return self._next_id

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def send_stream(self, stream: str, data: bytes) -> None:
        """Stream input: base64 ``data`` for ``stream`` (exec stdin, uploads)."""
        self.notify("stream.input", {"stream": stream,
                                     "data": binascii.b2a_base64(data, newline=False).decode()})

    def end_stream(self, stream: str) -> None:
        """Stream input: end of file for ``stream``."""
        self.notify("stream.input", {"stream": stream, "eof": True})

    # ------------------------------------------------------------------ receiving
    def read_messages(self) -> list[dict[str, Any]] | None:
        """Read what is available (blocking for at least one chunk); None at EOF.

        Past ``deadline``, TimeoutError."""
        if self.deadline is not None:
            from time import monotonic  # a built-in module: no cost to speak of

            remaining = self.deadline - monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            self.sock.settimeout(remaining)
        data = self.sock.recv(1 << 20)
        if not data:
            return None
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        return [wire.loads(line) for line in lines if line.strip()]

    def handle(self, message: dict[str, Any], want: int) -> tuple[bool, Any]:
        """Dispatch one message; (True, result) when it answers request ``want``."""
        if "method" in message:
            if self.on_notification is not None:
                self.on_notification(message["method"], message.get("params") or {})
            return False, None
        if message.get("id") == want or message.get("id") is None:
            error = message.get("error")
            if error is not None:
                raise RpcError(error.get("code", -32000), error.get("message", "error"),
                               error.get("data"))
            return True, message.get("result")
        return False, None

    def poll(self, request_id: int) -> tuple[bool, Any]:
        """Read once and dispatch; (True, result) when request ``request_id`` is answered.

        Messages that came in the same read after the answer (the events that a
        subscription replays, say) are kept and dispatched first by the next poll."""
        if self._pending:
            messages, self._pending = self._pending, []
        else:
            read = self.read_messages()
            if read is None:
                raise ConnectionFailed("the daemon closed the connection")
            messages = read
        for i, message in enumerate(messages):
            done, result = self.handle(message, request_id)
            if done:
                self._pending = messages[i + 1:]
                return True, result
        return False, None

    def wait_for(self, request_id: int) -> Any:
        while True:
            done, result = self.poll(request_id)
            if done:
                return result

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.wait_for(self.request(method, params))

    def wait_operation(self, op: dict[str, Any], timeout: float = -1) -> dict[str, Any]:
        """Wait for an operation; raise RpcError if it failed or was cancelled."""
        result: dict[str, Any] = self.call("operation.wait", {"id": op["id"], "timeout": timeout})
        if result["status"] in ("Failure", "Cancelled"):
            raise RpcError(-32000, result.get("err") or result["status"], {"kind": "operation"})
        return result


def connect(timeout: float | None = None) -> Client:
    """A client of ``$LXCTL_SOCKET``, or of the socket in ``$LXCTL_DIR``."""
    return Client(os.environ.get("LXCTL_SOCKET") or None, timeout)
