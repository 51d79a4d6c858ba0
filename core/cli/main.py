"""``lxctl``: the client, with Incus's command grammar.

Start-up is kept lean: only the module of the command that runs is imported, and only
its parser is built. Errors print one line (``Error: ...``) and exit 1, usage errors
too (an unknown command, verb or flag: :mod:`lxctl.cli.args` raises them as
ValueError, as the hand-written parsers of ``exec`` and ``version`` do); ``exec`` exits
with the command's own code.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # collections.abc and typing cost ~3 ms per start
if TYPE_CHECKING:
    from collections.abc import Callable

USAGE = """Usage: lxctl <command> [flags] [args]

Instances:
  launch IMAGE [NAME]     Create and start an instance
  init IMAGE [NAME]       Create an instance (alias: create)
  start, stop, restart    Change the power state of instances (--all, --force, --timeout)
  pause, resume           Freeze and unfreeze instances
  delete NAME...          Delete instances (--force; aliases: rm, remove)
  rebuild IMAGE NAME      A stopped instance's root anew from an image (or --empty)
  snapshot create|restore|delete|rename|list|show NAME [SNAPSHOT]
                          Instance snapshots (create: --no-expiry, --reuse)
  copy SRC[/SNAP] DST     Copy an instance or a snapshot (--storage, --instance-only,
                          -c, -d, -p, --no-profiles; alias: cp)
  move NAME [NEW] [-s POOL]  Rename a stopped instance or move it to another pool
                          (aliases: mv, rename)
  list [FILTER...]        List instances (--format, --columns; alias: ls)
  info [NAME]             Show instance or server information
  config KEY|device ...   Instance config: get, set, unset, show, edit; device add,
                          remove, set, unset, get, list, show
  file push|pull|delete   Files in an instance (NAME/PATH; paths stay inside it)
  exec NAME -- CMD...     Run a command in an instance (--env, --cwd, --user)
  console NAME            Attach to an instance's console (ctrl+a q detaches;
                          --show-log: its output so far)

Images, storage, profiles and the daemon:
  image build|import|list|show|delete
  storage create POOL DRIVER [KEY=VALUE...]; storage list|show|info|delete|set|unset|get|edit
  storage volume create|delete|list|show|info|get|set|unset|edit|rename POOL VOLUME
  storage volume copy|move POOL/VOL POOL/VOL; attach POOL VOL INSTANCE [DEVICE] PATH
  storage volume detach POOL VOL INSTANCE; snapshot create|restore|delete|list POOL VOL
  profile list|show|create|delete|copy|rename|set|unset|get|edit
  profile device add|remove|set|unset|get|list|show
  profile assign|add|remove INSTANCE PROFILE...
  network create NAME [KEY=VALUE...] [--type bridge|macvlan|ovn]
  network list|show|info|delete|rename|set|unset|get|edit|list-leases|list-allocations
  network attach|detach NETWORK INSTANCE [DEVICE]
  network acl list|show|create|delete|edit NAME; network acl rule add|remove NAME
    ingress|egress KEY=VALUE...
  monitor                 Print events (--type, --format, --all-projects, --since ID)
  operation list|show|wait|delete   (--all-projects)
  warning list|show|ack|delete      Persistent warnings (--all-projects, --status)
  query METHOD [PARAMS-JSON]        A raw JSON-RPC call (see rpc.discover)
  admin waitready|shutdown
  version

Projects:
  project create|delete|list|show|edit|get|set|unset|switch
  --project NAME          Any command, in this project (default: the current one)

Environment: LXCTL_DIR (default /var/lib/lxctl) locates the daemon's socket;
LXCTL_CONF (default ~/.config/lxctl/config.yml) is the client config (current project).
"""

COMMANDS: dict[str, tuple[str, str]] = {
    # command -> (module, function)
    "launch": ("launch", "launch"),
    "init": ("launch", "init"),
    "create": ("launch", "init"),
    "start": ("instances", "start"),
    "stop": ("instances", "stop"),
    "restart": ("instances", "restart"),
    "pause": ("instances", "pause"),
    "resume": ("instances", "resume"),
    "delete": ("instances", "delete"),
    "rm": ("instances", "delete"),
    "remove": ("instances", "delete"),
    "rebuild": ("rebuild", "rebuild"),
    "snapshot": ("snapshot", "snapshot"),
    "copy": ("move", "copy"),
    "cp": ("move", "copy"),
    "move": ("move", "move"),
    "mv": ("move", "move"),
    "rename": ("move", "move"),
    "list": ("listing", "list_"),
    "ls": ("listing", "list_"),
    "info": ("instances", "info"),
    "exec": ("exec", "exec_"),
    "console": ("console", "console"),
    "image": ("images", "image"),
    "monitor": ("monitor", "monitor"),
    "operation": ("operation", "operation"),
    "warning": ("warning", "warning"),
    "query": ("query", "query"),
    "admin": ("admin", "admin"),
    "storage": ("storage", "storage"),
    "profile": ("profile", "profile"),
    "network": ("network", "network"),
    "project": ("project", "project"),
    "config": ("config", "config"),
    "file": ("file", "file"),
    "version": ("version", "version"),
}


def fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"Error: {message}\n")
    return code


def global_flags(argv: list[str]) -> tuple[list[str], str | None]:
    """Take the global ``--project NAME`` (or ``--project=NAME``) out of ``argv``,
    before or after the command as Incus accepts it, never after ``--``."""
    rest: list[str] = []
    project = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg == "--project" or arg.startswith("--project="):
            if arg == "--project":
                if i + 1 == len(argv):
                    raise ValueError("flag --project needs a value")
                i += 1
            project = argv[i] if arg == "--project" else arg.partition("=")[2]
            if not project:
                raise ValueError("flag --project needs a value")
        else:
            rest.append(arg)
        i += 1
    return rest, project


def run(argv: list[str]) -> int:
    try:
        argv, project = global_flags(argv)
    except ValueError as exc:
        return fail(str(exc))
    if project is not None:
        from lxctl.cli import connection

        connection.project_flag = project
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if argv[0] == "--version":
        argv = ["version"]
    command = argv[0]
    if command not in COMMANDS:
        what = "flag" if command.startswith("-") else "command"
        return fail(f"unknown {what} {command!r} (see 'lxctl --help')")
    module_name, func_name = COMMANDS[command]
    module = __import__(f"lxctl.cli.commands.{module_name}", fromlist=[func_name])
    func: Callable[[str, list[str]], int] = getattr(module, func_name)

    from lxctl.cli.connection import ConnectionFailed, RpcError

    try:
        return func(command, argv[1:])
    except RpcError as exc:
        return fail(exc.message)
    except ConnectionFailed as exc:
        return fail(str(exc))
    except ValueError as exc:  # bad input, usage errors included (lxctl.cli.args)
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130


def main() -> None:
    sys.exit(run(sys.argv[1:]))
