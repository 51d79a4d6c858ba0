"""``lxctl image build|import|list|show|delete``."""

from __future__ import annotations

from datetime import datetime

from lxctl.cli.args import ArgumentParser
from lxctl.cli.connection import RpcError, connect
from lxctl.cli.output import check_format, render_rows, size, write

UPLOAD_CHUNK = 1 << 20


def image(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl image", description="Manage images")
    sub = p.add_subparsers(dest="verb", required=True)
    b = sub.add_parser("build", help="Build an image locally (busybox)")
    b.add_argument("kind", choices=["busybox"])
    b.add_argument("--alias", action="append", default=[])
    i = sub.add_parser("import", help="Import a unified image tarball")
    i.add_argument("file")
    i.add_argument("--alias", action="append", default=[])
    for verb in ("list", "ls"):
        ls = sub.add_parser(verb, help="List images")
        ls.add_argument("-f", "--format", default="table")
    s = sub.add_parser("show", help="Show an image")
    s.add_argument("image")
    for verb in ("delete", "rm", "remove"):
        d = sub.add_parser(verb, help="Delete images")
        d.add_argument("images", nargs="+")
    opts = p.parse_args(args)
    verb = {"ls": "list", "rm": "delete", "remove": "delete"}.get(opts.verb, opts.verb)
    if verb == "build":
        rec = connect().call("image.build", {"kind": opts.kind, "aliases": opts.alias})
        write(f"Image built with fingerprint: {rec['fingerprint']}\n")
    elif verb == "import":
        return _import(opts.file, opts.alias)
    elif verb == "list":
        check_format(opts.format)
        images = connect().call("image.list")
        rows = [[
            "\n".join(a["name"] for a in img["aliases"]), img["fingerprint"][:12],
            "yes" if img["public"] else "no", img["properties"].get("description", ""),
            img["architecture"], "CONTAINER" if img["type"] == "container" else "VIRTUAL-MACHINE",
            size(img["size"]),
            datetime.strptime(img["uploaded_at"][:19], "%Y-%m-%dT%H:%M:%S").strftime(
                "%Y/%m/%d %H:%M UTC"),
        ] for img in images]
        header = ["ALIAS", "FINGERPRINT", "PUBLIC", "DESCRIPTION", "ARCHITECTURE", "TYPE",
                  "SIZE", "UPLOAD DATE"]
        write(render_rows(opts.format, header, rows, images))
    elif verb == "show":
        import yaml

        write(yaml.safe_dump(connect().call("image.get", {"image": opts.image}),
                             sort_keys=False))
    else:
        client = connect()
        errors = []
        for ref in opts.images:
            try:
                client.call("image.delete", {"image": ref})
            except RpcError as exc:
                errors.append(exc.message)
        if errors:
            raise RpcError(-32000, "; ".join(errors))
    return 0


def _import(path: str, aliases: list[str]) -> int:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    client = connect()
    with f:
        request_id = client.request("image.import", {"stream": "image", "aliases": aliases})
        while chunk := f.read(UPLOAD_CHUNK):
            client.send_stream("image", chunk)
        client.end_stream("image")
    rec = client.wait_for(request_id)
    write(f"Image imported with fingerprint: {rec['fingerprint']}\n")
    return 0
