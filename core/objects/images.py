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
import subprocess
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio
import yaml

from lxctl.errors import AlreadyExists, InvalidArgument, NotFound
from lxctl.kernel.events import EventBus, lifecycle
from lxctl.state.records import ImageRecord
from lxctl.state.store import StateStore

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


def _busybox_tarball(out: Path) -> None:
    """Write a unified busybox image to ``out`` (blocking: run in a thread)."""
    if not BUSYBOX.exists():
        raise InvalidArgument(
            f"{BUSYBOX} not found: install Debian's busybox-static to build this image")
    applets = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    version = subprocess.run([str(BUSYBOX)], capture_output=True, text=True).stdout
    version = version.split()[1].lstrip("v") if version.startswith("BusyBox") else "unknown"
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


class ImageStore:
    def __init__(self, directory: Path, store: StateStore, bus: EventBus) -> None:
        self.dir = directory
        self.tmp = directory / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.bus = bus

    def path(self, image: ImageRecord) -> Path:
        return self.dir / image.fingerprint

    async def _check_aliases(self, aliases: list[str]) -> None:
        from lxctl.objects.names import check_object_name

        for alias in aliases:
            check_object_name("image alias", alias)
            try:
                existing = await self.store.image_get(alias)
            except NotFound:
                continue
            if alias in existing.aliases:
                raise AlreadyExists(f"Image alias {alias!r} already exists", alias=alias)

    async def add_file(self, tmp_path: Path, aliases: list[str]) -> ImageRecord:
        """Take ownership of a tarball in ``self.tmp``: check, hash, store, record."""
        try:
            await self._check_aliases(aliases)
            meta = await trio.to_thread.run_sync(read_metadata, tmp_path)
            fingerprint = await trio.to_thread.run_sync(_hash_file, tmp_path)
            try:
                await self.store.image_get(fingerprint)
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
            )
            os.replace(tmp_path, self.dir / fingerprint)
        finally:
            tmp_path.unlink(missing_ok=True)
        try:
            await self.store.image_create(rec)
            for alias in aliases:
                await self.store.image_alias_set(alias, fingerprint)
        except BaseException:
            (self.dir / fingerprint).unlink(missing_ok=True)
            raise
        self.bus.publish(lifecycle("image-created", f"/1.0/images/{fingerprint}"))
        return rec

    def new_tmp(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="upload-")
        os.close(fd)
        return Path(name)

    async def receive(self, chunks: AsyncIterator[bytes], aliases: list[str]) -> ImageRecord:
        tmp = self.new_tmp()
        try:
            f = await trio.open_file(tmp, "wb")
            async with f:
                async for chunk in chunks:
                    await f.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return await self.add_file(tmp, aliases)

    async def build_busybox(self, aliases: list[str]) -> ImageRecord:
        await self._check_aliases(aliases)
        tmp = self.new_tmp()
        try:
            await trio.to_thread.run_sync(_busybox_tarball, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return await self.add_file(tmp, aliases)

    async def delete(self, ref: str) -> ImageRecord:
        rec = await self.store.image_get(ref)
        await self.store.image_delete(rec.fingerprint)
        (self.dir / rec.fingerprint).unlink(missing_ok=True)
        self.bus.publish(lifecycle("image-deleted", f"/1.0/images/{rec.fingerprint}"))
        return rec

    def cleanup_tmp(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
