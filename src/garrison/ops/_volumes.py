"""Is a path on an encrypted volume? dm-crypt (LUKS) under its block device, or fscrypt on it.

Two independent ways Linux encrypts data at rest, detected without privileges:

- **dm-crypt / LUKS**: the filesystem holding the path is mounted from a device-mapper device
  whose ``dm/uuid`` in sysfs starts with ``CRYPT-`` (``CRYPT-LUKS2-...`` for LUKS), or from one
  stacked on such a device (LVM on LUKS: the ``slaves`` of each device are followed down).
- **fscrypt**: the directory itself carries an encryption policy
  (``FS_IOC_GET_ENCRYPTION_POLICY_EX`` answers with a policy instead of ``ENODATA``), as on ext4,
  F2FS or UBIFS with per-directory encryption.

The mount table and sysfs root are parameters, so recorded fixtures test every branch on a
machine that has neither.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Mount",
    "VolumeEncryption",
    "dm_crypt_kind",
    "encryption_of",
    "fscrypt_policy_version",
    "mount_for",
    "parse_mountinfo",
]

#: Stacked filesystems that encrypt what they store.
_ENCRYPTING_FILESYSTEMS = frozenset({"ecryptfs", "gocryptfs", "fuse.gocryptfs", "fuse.cryfs"})


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``."""

    major: int
    minor: int
    mount_point: str
    fs_type: str
    source: str


@dataclass(frozen=True)
class VolumeEncryption:
    """What protects a path at rest: ``kind`` is ``dm-crypt``, ``fscrypt``, a stacked
    encrypting filesystem's type, or ``None`` when nothing was found."""

    path: str
    mount_point: str
    fs_type: str
    source: str
    kind: str | None
    detail: str

    @property
    def encrypted(self) -> bool:
        return self.kind is not None


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a ``mountinfo`` text (proc(5)); malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        major, _, minor = fields[2].partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        mounts.append(
            Mount(
                major=int(major),
                minor=int(minor),
                mount_point=_unescape(fields[4]),
                fs_type=tail[0],
                source=_unescape(tail[1]),
            )
        )
    return mounts


def mount_for(path: Path, mounts: list[Mount]) -> Mount | None:
    """The mount a path lies on: the last-mounted of the longest mount points containing it."""
    target = os.path.realpath(path)
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point.rstrip("/") or "/"
        inside = target == point or target.startswith(point + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = mount
    return best


def dm_crypt_kind(major: int, minor: int, sysfs: Path = Path("/sys")) -> str | None:
    """``LUKS1``/``LUKS2``/``PLAIN`` when the block device is, or sits on, a dm-crypt target."""
    seen: set[tuple[int, int]] = set()
    pending = [(major, minor)]
    while pending:
        dev = pending.pop()
        if dev in seen or len(seen) > 64:
            continue
        seen.add(dev)
        base = sysfs / "dev" / "block" / f"{dev[0]}:{dev[1]}"
        try:
            uuid = (base / "dm" / "uuid").read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            uuid = ""
        if uuid.startswith("CRYPT-"):
            return uuid.split("-")[1] if uuid.count("-") >= 2 else "dm-crypt"
        try:
            slaves = list((base / "slaves").iterdir())
        except OSError:
            slaves = []
        for slave in slaves:
            try:
                number = (slave / "dev").read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                continue
            maj, _, mi = number.partition(":")
            if maj.isdigit() and mi.isdigit():
                pending.append((int(maj), int(mi)))
    return None


#: ``_IOWR('f', 22, __u8[9])``: the extended get-policy call (policy v1 and v2).
_FS_IOC_GET_ENCRYPTION_POLICY_EX = (3 << 30) | (9 << 16) | (ord("f") << 8) | 22
_POLICY_BUFFER = 64


def fscrypt_policy_version(path: Path) -> int | None:
    """The fscrypt policy version of a directory, or ``None`` when it carries none (or the
    filesystem has no fscrypt support)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        buffer = bytearray(struct.pack("=Q", _POLICY_BUFFER) + bytes(_POLICY_BUFFER))
        fcntl.ioctl(fd, _FS_IOC_GET_ENCRYPTION_POLICY_EX, buffer, True)
    except OSError:  # ENODATA: no policy; ENOTTY, EOPNOTSUPP: no fscrypt on this filesystem
        return None
    finally:
        os.close(fd)
    # FSCRYPT_POLICY_V1 is stored as 0, FSCRYPT_POLICY_V2 as 2.
    return 1 if buffer[8] == 0 else int(buffer[8])


def encryption_of(
    path: Path, *, mountinfo: str | None = None, sysfs: Path = Path("/sys")
) -> VolumeEncryption:
    """What encrypts ``path`` at rest (the nearest existing directory of it is examined)."""
    probe = Path(os.path.realpath(path))
    while not probe.is_dir() and probe != probe.parent:
        probe = probe.parent
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
        except OSError:
            mountinfo = ""
    mount = mount_for(probe, parse_mountinfo(mountinfo))
    where = dict(
        path=str(path),
        mount_point=mount.mount_point if mount else "?",
        fs_type=mount.fs_type if mount else "?",
        source=mount.source if mount else "?",
    )
    if mount is not None and mount.fs_type in _ENCRYPTING_FILESYSTEMS:
        return VolumeEncryption(
            **where, kind=mount.fs_type, detail=f"{mount.fs_type} at {mount.mount_point}"
        )
    if mount is not None:
        luks = dm_crypt_kind(mount.major, mount.minor, sysfs)
        if luks is not None:
            return VolumeEncryption(
                **where,
                kind="dm-crypt",
                detail=f"{mount.source} is a dm-crypt device ({luks}) mounted at "
                f"{mount.mount_point}",
            )
    version = fscrypt_policy_version(probe)
    if version is not None:
        return VolumeEncryption(
            **where, kind="fscrypt", detail=f"{probe} has an fscrypt policy (v{version})"
        )
    fs = (
        f"{mount.fs_type} on {mount.source} at {mount.mount_point}" if mount else "an unknown mount"
    )
    return VolumeEncryption(**where, kind=None, detail=f"{fs}, neither dm-crypt nor fscrypt")
