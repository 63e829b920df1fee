"""A loop-mounted ext4 image with fscrypt: one directory under a v2 policy, one without."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import require


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("f") << 8) | nr


_ADD_KEY = _ioc(3, 23, 80)  # FS_IOC_ADD_ENCRYPTION_KEY
_SET_POLICY = _ioc(2, 19, 12)  # FS_IOC_SET_ENCRYPTION_POLICY


@contextlib.contextmanager
def encrypted_ext4(tmp: Path) -> Iterator[tuple[Path, Path, Path]]:
    require(os.geteuid() == 0, "mounting a loop device needs root")
    require(shutil.which("mkfs.ext4") is not None, "mkfs.ext4 (e2fsprogs) is not installed")
    require(Path("/dev/loop-control").exists(), "this machine has no loop devices")
    image, mount = tmp / "fs.img", tmp / "mnt"
    mount.mkdir()
    with image.open("wb") as fh:
        fh.truncate(32 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "encrypt", str(image)], check=True)
    done = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True)
    require(done.returncode == 0, f"cannot loop-mount: {done.stderr.decode().strip()}")
    try:
        fd = os.open(mount, os.O_RDONLY)
        try:
            key = bytearray(struct.pack("=II32sII32s", 2, 0, bytes(32), 64, 0, bytes(32)))
            key += os.urandom(64)
            fcntl.ioctl(fd, _ADD_KEY, key, True)
        finally:
            os.close(fd)
        identifier = bytes(key[8:24])
        encrypted, plain = mount / "secret", mount / "plain"
        encrypted.mkdir()
        plain.mkdir()
        dfd = os.open(encrypted, os.O_RDONLY)
        try:
            fcntl.ioctl(
                dfd, _SET_POLICY, struct.pack("=BBBB4s16s", 2, 1, 4, 0, bytes(4), identifier)
            )
        finally:
            os.close(dfd)
        yield mount, encrypted, plain
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
