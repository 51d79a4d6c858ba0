"""The image store: unified Incus/LXD tarballs (``metadata.yaml`` + ``rootfs/``).

An image is one file, ``$LXCTL_DIR/images/<fingerprint>``, the fingerprint being the
sha256 of the file. Storage pools unpack it on first use, once per pool and id map.
``build_busybox`` makes an image from the host's static busybox, with no network.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import trio
import yaml

from lxctl import execute
from lxctl.errors import AlreadyExists, InvalidArgument, NotFound
from lxctl.kernel.events import EventBus, lifecycle
from lxctl.objects.names import check_object_name
from lxctl.objects.projects import effective_project
from lxctl.state.records import DEFAULT_PROJECT, ImageRecord
from lxctl.state.store import StateStore, Tables

BUSYBOX = Path("/bin/busybox")
ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64",
                 "arm64": "aarch64"}
_BUSYBOX_DIRS = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys",
                 "tmp", "run", "root", "var", "var/log", "mnt", "home")
_INITTAB = b"""# busybox init: one long-lived child keeps the container running
::respawn:/bin/sleep 2147483647
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/sbin/poweroff -f
"""


def read_metadata(path: Path) -> dict[str, Any]:
    """Check a unified image tarball and return its parsed metadata.yaml."""
    try:
        with tarfile.open(path) as tar:
            member = None
            has_rootfs = False
            for m in tar:
                name = m.name.lstrip("./")
                if name == "metadata.yaml":
                    member = m
                elif name == "rootfs" or name.startswith("rootfs/"):
                    has_rootfs = True
                if member is not None and has_rootfs:
                    break
            if member is None:
                raise InvalidArgument("Invalid image: the tarball has no metadata.yaml")
            if not has_rootfs:
                raise InvalidArgument("Invalid image: the tarball has no rootfs/ directory")
            f = tar.extractfile(member)
            raw = f.read(1024 * 1024) if f else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArgument(f"Invalid image: not a readable tarball ({exc})") from None
    try:
        meta = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"Invalid image: metadata.yaml is not valid YAML ({exc})") from None
    if not isinstance(meta, dict):
        raise InvalidArgument("Invalid image: metadata.yaml is not a mapping")
    return meta


async def busybox_facts() -> tuple[list[str], str]:
    """The host busybox's applets and version (through the subprocess helper)."""
    if not BUSYBOX.exists():
        raise InvalidArgument(
            f"{BUSYBOX} not found: install Debian's busybox-static to build this image")
    applets = (await execute.run([BUSYBOX, "--list-full"], timeout=30)).stdout.decode().split()
    banner = (await execute.run([BUSYBOX], check=False, timeout=30)).stdout.decode()
    version = banner.split()[1].lstrip("v") if banner.startswith("BusyBox") else "unknown"
    return applets, version


def busybox_tarball(out: Path, applets: list[str], version: str) -> None:
    """Write a unified busybox image to ``out`` (blocking: run in a thread)."""
    now = int(time.time())
    meta = {
        "architecture": os.uname().machine,
        "creation_date": now,
        "expiry_date": 0,
        "properties": {
            "architecture": os.uname().machine,
            "description": f"busybox {version} (static, from the host)",
            "os": "busybox",
            "release": version,
            "variant": "default",
        },
        "templates": {},
    }

    def add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o644,
            kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.mtime, info.type, info.mode, info.linkname = now, kind, mode, link
        if data is not None:
            info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data is not None else None)

    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        add(tar, "metadata.yaml", data=yaml.safe_dump(meta).encode())
        add(tar, "rootfs", mode=0o755, kind=tarfile.DIRTYPE)
        for d in _BUSYBOX_DIRS:
            add(tar, f"rootfs/{d}", mode=0o1777 if d == "tmp" else 0o755, kind=tarfile.DIRTYPE)
        add(tar, "rootfs/bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755)
        for applet in applets:
            path = applet.lstrip("/")
            if path != "bin/busybox":
                add(tar, f"rootfs/{path}", kind=tarfile.SYMTYPE, link="/bin/busybox", mode=0o777)
        add(tar, "rootfs/etc/inittab", data=_INITTAB)
        add(tar, "rootfs/etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
        add(tar, "rootfs/etc/group", data=b"root:x:0:\n")
        add(tar, "rootfs/etc/hostname", data=b"busybox\n")
        add(tar, "rootfs/etc/fstab", data=b"")


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _image_get(project: str, ref: str, t: Tables) -> ImageRecord:
    return t.image_get(project, ref)


class ImageStore:
    def __init__(self, directory: Path, store: StateStore, bus: EventBus) -> None:
        self.dir = directory
        self.tmp = directory / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.bus = bus

    def path(self, image: ImageRecord) -> Path:
        return self.dir / image.fingerprint

    async def _check_aliases(self, project: str, aliases: list[str]) -> None:
        for alias in aliases:
            check_object_name("image alias", alias)
            try:
                existing = await self.store.read(partial(_image_get, project, alias))
            except NotFound:
                continue
            if alias in existing.aliases:
                raise AlreadyExists(f"Image alias {alias!r} already exists", alias=alias)

    async def add_file(self, tmp_path: Path, aliases: list[str],
                       project: str = DEFAULT_PROJECT) -> ImageRecord:
        """Take ownership of a tarball in ``self.tmp``: check, hash, store, record."""
        try:  # without features.images, a project's images are the default project's
            project = await self.store.read(partial(effective_project, project=project,
                                                    feature="images"))
            await self._check_aliases(project, aliases)
            meta = await trio.to_thread.run_sync(read_metadata, tmp_path)
            fingerprint = await trio.to_thread.run_sync(_hash_file, tmp_path)
            try:
                await self.store.read(lambda t: t.image_get(project, fingerprint))
            except NotFound:
                pass
            else:
                raise AlreadyExists("Image with same fingerprint already exists",
                                    fingerprint=fingerprint)
            props = {str(k): str(v) for k, v in (meta.get("properties") or {}).items()}
            arch = str(meta.get("architecture") or props.get("architecture") or "x86_64")
            rec = ImageRecord(
                fingerprint=fingerprint,
                filename=f"{fingerprint}.tar",
                size=tmp_path.stat().st_size,
                architecture=ARCHITECTURES.get(arch, arch),
                properties=props,
                aliases=sorted(aliases),
                created_at=float(meta.get("creation_date") or 0),
                project=project,
            )
            os.replace(tmp_path, self.dir / fingerprint)
        finally:
            tmp_path.unlink(missing_ok=True)

        def record(t: Tables) -> None:  # the image and its aliases: all or nothing
            t.image_create(rec)
            for alias in aliases:
                t.image_alias_set(project, alias, fingerprint)

        try:
            await self.store.write(record)
        except BaseException:
            (self.dir / fingerprint).unlink(missing_ok=True)
            raise
        self.bus.publish(lifecycle("image-created", f"/1.0/images/{fingerprint}",
                                   project=project))
        return rec

    def new_tmp(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="upload-")
        os.close(fd)
        return Path(name)

    async def receive(self, chunks: AsyncIterator[bytes], aliases: list[str],
                      project: str = DEFAULT_PROJECT) -> ImageRecord:
        tmp = self.new_tmp()
        try:
            f = await trio.open_file(tmp, "wb")
            async with f:
                async for chunk in chunks:
                    await f.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return await self.add_file(tmp, aliases, project)

    async def build_busybox(self, aliases: list[str],
                            project: str = DEFAULT_PROJECT) -> ImageRecord:
        await self._check_aliases(project, aliases)
        applets, version = await busybox_facts()
        tmp = self.new_tmp()
        try:
            await trio.to_thread.run_sync(busybox_tarball, tmp, applets, version)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return await self.add_file(tmp, aliases, project)

    async def get(self, project: str, ref: str) -> ImageRecord:
        return await self.store.read(
            lambda t: t.image_get(effective_project(t, project, "images"), ref))

    async def delete(self, project: str, ref: str) -> ImageRecord:
        rec = await self.get(project, ref)

        def forget(t: Tables) -> bool:  # True: no project uses the file any more
            t.image_delete(rec.project, rec.fingerprint)
            return not any(i.fingerprint == rec.fingerprint
                           for p in t.project_list() for i in t.image_list(p.name))

        if await self.store.write(forget):
            (self.dir / rec.fingerprint).unlink(missing_ok=True)
        self.bus.publish(lifecycle("image-deleted", f"/1.0/images/{rec.fingerprint}",
                                   project=project))
        return rec

    async def cleanup_tmp(self) -> None:
        """Drop uploads a previous daemon left half-done (off the event loop)."""
        await trio.to_thread.run_sync(shutil.rmtree, self.tmp, True)
        self.tmp.mkdir(parents=True, exist_ok=True)
