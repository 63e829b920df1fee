"""Legacy and OpenDocument office files, read through LibreOffice.

``.doc``, ``.rtf`` and ``.odt`` are converted to DOCX, ``.xls`` and ``.ods`` to XLSX, ``.ppt`` and
``.odp`` to PPTX by LibreOffice headless (``soffice --headless --convert-to``); the result is read
by the OOXML parsers of :mod:`garrison.parse.office`, so banners and portion marks are found
exactly where they are found in DOCX, XLSX and PPTX. The parsed document keeps the source's media
type; ``metadata["converted"]`` names the OOXML format it was read through and the LibreOffice
version.

How LibreOffice runs
    Each conversion is its own ``soffice`` process, started in a new session (process group) from
    inside the parser's isolated worker (:mod:`garrison.core.isolation`), so the worker's wall
    clock and address-space cap still bound the whole parse. The group is led by coreutils'
    ``timeout``, which gets SIGTERM when the worker dies (``PR_SET_PDEATHSIG``) and passes it to
    every LibreOffice process, then SIGKILL: a worker killed at its own time limit leaves no
    LibreOffice behind. On top of the worker's limits, the conversion has
    its own limits: ``office_timeout_s`` seconds (parse option; default
    :data:`CONVERT_TIMEOUT_S`), after which the whole process group is killed and the file is
    quarantined as ``timeout``; and an ``RLIMIT_AS`` of ``office_memory_mb`` MiB (default
    :data:`CONVERT_MEMORY_MB`; LibreOffice maps far more than it touches), never above the
    worker's own hard limit. A conversion that crashes or cannot load the file quarantines it as
    ``corrupt`` with a sentence saying so.

    Every run gets a throwaway profile (``-env:UserInstallation``) in a private temporary folder,
    seeded with settings that turn macros off -- ``DisableMacrosExecution`` true and
    ``MacroSecurityLevel`` 3 (only trusted locations, and there are none) -- never update links
    to other files or URLs, and block untrusted referer links. The process gets a minimal
    environment (no proxies, ``HOME`` in the temporary folder). LibreOffice itself opens no
    socket for a conversion; tests run in a loopback-only network namespace, and production
    workers are expected to run without a route out (see ``docs/parse.md``).

Where LibreOffice is absent
    The formats are quarantined as ``unsupported-type`` with a reason naming the Debian packages
    to install (:data:`INSTALL_HINT`). ``soffice`` is looked up on ``PATH``; the parse option
    ``soffice`` (a path) overrides it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from garrison.core.records import Extraction, ParsedDocument
from garrison.parse._registry import ParseContext, ParseFailure, library_version, register_parser

__all__ = [
    "CONVERTED_TYPES",
    "CONVERT_MEMORY_MB",
    "CONVERT_TIMEOUT_S",
    "INSTALL_HINT",
    "convert_office",
    "find_soffice",
    "parse_converted",
]

DOC = "application/msword"
XLS = "application/vnd.ms-excel"
PPT = "application/vnd.ms-powerpoint"
RTF = "application/rtf"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"

#: Source media type -> (file extension LibreOffice is given, OOXML target).
CONVERTED_TYPES: dict[str, tuple[str, str]] = {
    DOC: ("doc", "docx"),
    RTF: ("rtf", "docx"),
    ODT: ("odt", "docx"),
    XLS: ("xls", "xlsx"),
    ODS: ("ods", "xlsx"),
    PPT: ("ppt", "pptx"),
    ODP: ("odp", "pptx"),
}
#: The export filter of each target (naming it keeps LibreOffice from guessing).
_FILTERS = {
    "docx": "docx:MS Word 2007 XML",
    "xlsx": "xlsx:Calc MS Excel 2007 XML",
    "pptx": "pptx:Impress MS PowerPoint 2007 XML",
}

#: Seconds one conversion may take before its process group is killed.
CONVERT_TIMEOUT_S = 60.0
#: Address-space cap of the LibreOffice process, in MiB.
CONVERT_MEMORY_MB = 4096
_PR_SET_PDEATHSIG = 1
#: Seconds the guard waits after passing on a SIGTERM before it sends SIGKILL.
_GUARD_GRACE_S = 5
#: Largest converted file read back (the OOXML parsers then apply their own zip-bomb checks).
_MAX_OUTPUT = 512 * 1024 * 1024

INSTALL_HINT = (
    "apt-get install libreoffice-core libreoffice-writer-nogui "
    "libreoffice-calc-nogui libreoffice-impress-nogui"
)

# Settings of the throwaway profile: no macro ever runs, no link is ever followed or updated.
_PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
  xmlns:xs="http://www.w3.org/2001/XMLSchema"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">
  <prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">
  <prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">
  <prop oor:name="BlockUntrustedRefererLinks" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Writer/Content/Update">
  <prop oor:name="Link" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Content/Update">
  <prop oor:name="Link" oor:op="fuse"><value>1</value></prop></item>
</oor:items>
"""


def find_soffice(ctx: ParseContext | None = None) -> str | None:
    """The LibreOffice executable: the ``soffice`` parse option, else ``soffice`` on ``PATH``."""
    configured = ctx.options.get("soffice") if ctx is not None else None
    if isinstance(configured, str) and configured:
        return shutil.which(configured)
    return shutil.which("soffice") or shutil.which("libreoffice")


@functools.cache
def _soffice_version(soffice: str) -> str:
    """``7.4.7.2`` from ``soffice --version`` (once per worker process)."""
    # Even --version writes caches under HOME: give it a folder of its own, then drop it.
    with tempfile.TemporaryDirectory(prefix="garrison-office-") as home:
        try:
            done = subprocess.run(
                [soffice, "--version"],
                capture_output=True,
                timeout=20,
                env=_environment(Path(home)),
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return "unknown"
    words = done.stdout.decode("utf-8", "replace").split()
    return words[1] if len(words) > 1 and words[0] == "LibreOffice" else "unknown"


def _environment(home: Path) -> dict[str, str]:
    # A minimal environment: no proxy settings, no display, the profile's folder as HOME.
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "SAL_USE_VCLPLUGIN": "svp",
        "TMPDIR": str(home),
    }


def _limit_memory(memory_mb: int) -> Any:
    libc = ctypes.CDLL(None, use_errno=True)  # looked up before the fork, not in the child

    def apply() -> None:  # runs in the child between fork and exec: system calls only
        # Should the worker die (killed at its own time limit), the guard hears SIGTERM and
        # passes it to the whole group; prctl(PR_SET_PDEATHSIG) survives the exec.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        cap = memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return apply


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # soffice is a launcher: the real work happens in its children, all in this group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def convert_office(
    data: bytes,
    extension: str,
    target: str,
    *,
    soffice: str,
    timeout_s: float = CONVERT_TIMEOUT_S,
    memory_mb: int = CONVERT_MEMORY_MB,
) -> bytes:
    """``data`` (a file with ``extension``) converted by LibreOffice to ``target`` (``docx``...).

    Raises ``ParseFailure``: ``timeout`` past ``timeout_s``, ``corrupt`` when LibreOffice crashes
    or cannot load the file.
    """
    with tempfile.TemporaryDirectory(prefix="garrison-office-") as tmp:
        root = Path(tmp)
        profile = root / "profile"
        (profile / "user").mkdir(parents=True)
        (profile / "user" / "registrymodifications.xcu").write_text(
            _PROFILE_SETTINGS, encoding="utf-8"
        )
        source = root / f"source.{extension}"
        source.write_bytes(data)
        out = root / "out"
        out.mkdir()
        # coreutils' timeout guards the group from outside Python too: it kills every process
        # in it at the limit, and passes on the SIGTERM it gets when the worker dies.
        guard = shutil.which("timeout")
        command = [
            *(
                [guard, f"--kill-after={_GUARD_GRACE_S}", "--signal=KILL", f"{timeout_s + 1:g}"]
                if guard
                else []
            ),
            soffice,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--invisible",
            "--nologo",
            "--norestore",
            "--nodefault",
            "--nolockcheck",
            "--convert-to",
            _FILTERS[target],
            "--outdir",
            str(out),
            str(source),
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=root,
            env=_environment(root),
            start_new_session=True,
            # prctl and setrlimit only, between fork and exec: nothing that takes a lock.
            preexec_fn=_limit_memory(memory_mb),
        )
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise ParseFailure(
                "timeout", f"LibreOffice did not finish converting the file within {timeout_s:g} s"
            ) from None
        finally:
            if process.returncode is None:  # an interrupt while waiting
                _kill_group(process)
        _kill_group(process)  # whatever it left running
        converted = out / f"source.{target}"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            raise ParseFailure(
                "corrupt", f"LibreOffice crashed ({name}) converting the file to {target.upper()}"
            )
        if not converted.is_file() or converted.stat().st_size == 0:
            raise ParseFailure(
                "corrupt",
                f"LibreOffice could not convert the file to {target.upper()} "
                "(damaged, password-protected or not what it claims to be)",
            )
        if converted.stat().st_size > _MAX_OUTPUT:
            raise ParseFailure("too-large", "the converted file is larger than 512 MiB")
        return converted.read_bytes()


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else default


@register_parser(*CONVERTED_TYPES)
def parse_converted(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """DOC, RTF, ODT, XLS, ODS, PPT, ODP: converted by LibreOffice, read as DOCX, XLSX or PPTX."""
    from garrison.parse import office

    extension, target = CONVERTED_TYPES[ctx.media_type]
    soffice = find_soffice(ctx)
    if soffice is None:
        raise ParseFailure(
            "unsupported-type",
            f"{extension.upper()} files are read through LibreOffice, which is not installed: "
            f"{INSTALL_HINT}",
        )
    converted = convert_office(
        data,
        extension,
        target,
        soffice=soffice,
        timeout_s=_number(ctx.options.get("office_timeout_s"), CONVERT_TIMEOUT_S),
        memory_mb=int(_number(ctx.options.get("office_memory_mb"), CONVERT_MEMORY_MB)),
    )
    ooxml = {"docx": office.DOCX, "xlsx": office.XLSX, "pptx": office.PPTX}[target]
    reader = {"docx": office.parse_docx, "xlsx": office.parse_xlsx, "pptx": office.parse_pptx}
    inner = ParseContext(
        filename=ctx.filename,
        media_type=ooxml,
        max_line_chars=ctx.max_line_chars,
        options=ctx.options,
    )
    parsed = reader[target](converted, inner)
    version = _soffice_version(soffice)
    library = {"docx": "python-docx", "xlsx": "openpyxl", "pptx": "python-pptx"}[target]
    return parsed.model_copy(
        update={
            "media_type": ctx.media_type,
            "metadata": {
                **parsed.metadata,
                "converted": {"by": "libreoffice", "version": version, "as": ooxml},
            },
            "extraction": Extraction(
                method="converted",
                parser="garrison.office_convert",
                parser_version=f"libreoffice {version}; {library} {library_version(library)}",
            ),
        }
    )
