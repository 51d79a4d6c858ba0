"""The attach helper: a small process of the daemon's own that runs ``exec`` commands
in containers through liblxc's attach, so that liblxc forks a small process instead of
the daemon. Run alone (``python -S -I attach_helper.py FD DIR``, DIR: where python-lxc's
``_lxc`` is); it imports a few standard modules and ``_lxc`` only (not the ``lxc``
wrapper, which pulls in subprocess and re), and must stay that small: every attach
forks it, and a fork costs in proportion to the memory it copies (the daemon's
~45 MiB made each attach ~10 ms slower on this machine kind).

It talks over FD, a SOCK_SEQPACKET socket, one JSON message per packet:

- request ``{"id", "lxcpath", "name", "command", "env", "uid", "gid", "cwd"}`` with the
  command's stdin, stdout and stderr attached (SCM_RIGHTS);
- answer ``{"id", "pid"}`` with a pidfd of the command attached (the daemon signals it
  through that), or ``{"id", "error"}``;
- ``{"exited": pid, "status": wait status}`` when a command it started has ended (it
  is the helper's child: the helper reaps it).

It exits when the daemon closes the socket; commands still running carry on.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys
from typing import Any

if __name__ == "__main__":
    sys.path.append(sys.argv[2])
import _lxc

MAX_MESSAGE = 1 << 20  # a command line with its environment


def attach(request: dict[str, Any], stdio: list[int]) -> int:
    options: dict[str, Any] = {
        "stdin": stdio[0], "stdout": stdio[1], "stderr": stdio[2],
        "env_policy": _lxc.LXC_ATTACH_CLEAR_ENV,
        "extra_env_vars": [f"{k}={v}" for k, v in request["env"].items()],
        "uid": request["uid"], "gid": request["gid"],
    }
    if request.get("cwd"):
        options["initial_cwd"] = request["cwd"]
    container = _lxc.Container(request["name"], request["lxcpath"])
    command = request["command"]  # execvp'd in the attached child
    pid: int = container.attach(_lxc.attach_run_command, (command[0], command), **options)
    return pid


def serve(sock: socket.socket) -> None:
    events = selectors.DefaultSelector()
    events.register(sock, selectors.EVENT_READ)
    children: dict[int, int] = {}  # pidfd -> pid
    while True:
        for key, _ in events.select():
            if key.fileobj is not sock:
                pidfd = int(key.fd)
                pid = children.pop(pidfd)
                events.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                sock.send(json.dumps({"exited": pid, "status": status}).encode())
                continue
            message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 3, socket.MSG_CMSG_CLOEXEC)
            if not message:
                return  # the daemon has gone
            answer: dict[str, Any] = {}
            pidfd = -1
            try:
                request = json.loads(message)
                answer["id"] = request["id"]
                if len(fds) != 3:
                    raise ValueError(f"{len(fds)} file descriptors instead of 3")
                pid = attach(request, fds)
                if pid <= 0:
                    raise OSError(f"Failed to attach to the container (error {pid})")
                pidfd = os.pidfd_open(pid)
                children[pidfd] = pid
                events.register(pidfd, selectors.EVENT_READ)
                answer["pid"] = pid
            except Exception as exc:  # the daemon gets the reason; the helper goes on
                answer["error"] = str(exc) or type(exc).__name__
            finally:
                for fd in fds:
                    os.close(fd)
            socket.send_fds(sock, [json.dumps(answer).encode()], [pidfd] if pidfd >= 0 else [])


if __name__ == "__main__":
    fd = int(sys.argv[1])
    os.set_inheritable(fd, False)  # the commands it starts never hold the daemon's socket
    serve(socket.socket(fileno=fd))
