"""DOC, RTF, ODT, XLS, ODS, PPT and ODP, read through LibreOffice (``parse._office_convert``).

The files are real: the tests build a marked DOCX, XLSX and PPTX and have LibreOffice save them in
the legacy and OpenDocument formats (one ``soffice`` run per format, all at once, once per module).
Each is then ingested (two workers, one conversion per file) and previewed with ``garrison
parse``. The failure paths -- LibreOffice absent, hanging, crashing -- use stand-in scripts and
start no LibreOffice at all.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.cli.main import main
from garrison.core.errors import NotFound
from garrison.ingest.engine import IngestOptions, IngestReport, ingest_paths
from garrison.parse import ParseFailure, detect_media_type, parse_bytes
from garrison.parse._office_convert import CONVERTED_TYPES, INSTALL_HINT
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.conftest import require

SECRET = "SECRET//NOFORN"
CANARY = {
    "docx": "Convoy HERON 5521 leaves the depot at dawn.",
    "xlsx": "Pallet OSPREY 7730 holds the spares.",
    "pptx": "Relay PLOVER 3309 goes dark at noon.",
}
OPEN_TEXT = "The canteen opens at nine."
#: Made format -> the OOXML file it is saved from.
SOURCES = {
    "doc": "docx",
    "odt": "docx",
    "rtf": "docx",
    "xls": "xlsx",
    "ods": "xlsx",
    "ppt": "pptx",
    "odp": "pptx",
}
MEDIA_TYPES = {ext: media_type for media_type, (ext, _target) in CONVERTED_TYPES.items()}


def _docx() -> bytes:
    import docx

    d = docx.Document()
    d.sections[0].header.paragraphs[0].text = SECRET
    d.sections[0].footer.paragraphs[0].text = SECRET
    d.add_paragraph(f"(U) {OPEN_TEXT}")
    d.add_paragraph(f"(S//NF) {CANARY['docx']}")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _xlsx() -> bytes:
    import openpyxl  # type: ignore[import-untyped]

    wb = openpyxl.Workbook()
    ws = wb.active
    for row in (
        [SECRET],
        ["Item", "Note"],
        ["(U) canteen", f"(U) {OPEN_TEXT}"],
        ["(S//NF) pallet", f"(S//NF) {CANARY['xlsx']}"],
        [SECRET],
    ):
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _pptx() -> bytes:
    import pptx

    prs = pptx.Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = f"(U) {OPEN_TEXT}"
    slide.placeholders[1].text_frame.text = f"(S//NF) {CANARY['pptx']}"
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every format, saved by LibreOffice from the OOXML files built here: ext -> path."""
    soffice = shutil.which("soffice")
    require(soffice is not None, f"LibreOffice is not installed ({INSTALL_HINT})")
    assert soffice is not None
    root = tmp_path_factory.mktemp("office")
    sources = {"docx": _docx(), "xlsx": _xlsx(), "pptx": _pptx()}
    for ext, data in sources.items():
        (root / f"marked.{ext}").write_bytes(data)
    runs = []
    for ext, source in SOURCES.items():
        out = root / ext
        command = [
            soffice,
            f"-env:UserInstallation={(root / f'profile-{ext}').as_uri()}",
            "--headless",
            "--convert-to",
            ext,
            "--outdir",
            str(out),
            str(root / f"marked.{source}"),
        ]
        runs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for process in runs:
        process.wait(timeout=300)
    made = {ext: root / ext / f"marked.{ext}" for ext in SOURCES}
    missing = [ext for ext, path in made.items() if not path.is_file()]
    assert not missing, f"LibreOffice did not write {missing}"
    return made


def test_each_format_is_detected_from_its_content(made: dict[str, Path]) -> None:
    for ext, path in made.items():
        # A misleading name changes nothing: the content says what the file is.
        assert detect_media_type(path.read_bytes(), "file.txt") == MEDIA_TYPES[ext], ext


def test_an_ole2_file_is_not_taken_for_word_because_its_text_says_so() -> None:
    # The stream name appears only inside a stream's data, not as a directory entry.
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 3 + "WordDocument".encode("utf-16-le")
    assert detect_media_type(data + b"\x00" * 600) == "application/x-ole-storage"


@pytest.fixture(scope="module")
def ingested(
    made: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Workspace, IngestReport]]:
    folder = tmp_path_factory.mktemp("in")
    for ext, path in made.items():
        shutil.copy(path, folder / f"marked-{ext}.{ext}")
    ws = Workspace.init(tmp_path_factory.mktemp("ws") / "ws", system_high=SECRET)
    report = ingest_paths(
        ws.session(), [str(folder)], IngestOptions(default_marking="UNCLASSIFIED", workers=2)
    )
    yield ws, report
    ws.close()


def _by_ext(ws: Workspace, report: IngestReport) -> dict[str, dict[str, Any]]:
    docs = Documents(ws.session())
    shown = {}
    for result in report.results:
        ext = result.uri.rsplit(".", 1)[1]
        shown[ext] = docs.show(str(result.doc_id), elements=True)
    return shown


def test_every_format_is_parsed_with_its_own_media_type(
    ingested: tuple[Workspace, IngestReport],
) -> None:
    ws, report = ingested
    outcomes = {r.uri.rsplit(".", 1)[1]: r.outcome for r in report.results}
    assert outcomes == dict.fromkeys(SOURCES, "parsed"), report.results
    for ext, doc in _by_ext(ws, report).items():
        assert doc["media_type"] == MEDIA_TYPES[ext], ext
        assert any(OPEN_TEXT in e["text"] for e in doc["elements"]), ext


def test_a_secret_portion_is_marked_secret_in_every_format(
    ingested: tuple[Workspace, IngestReport],
) -> None:
    ws, report = ingested
    for ext, doc in _by_ext(ws, report).items():
        canary = CANARY[SOURCES[ext]]
        holding = [e for e in doc["elements"] if canary in e["text"]]
        assert holding, (ext, [e["text"] for e in doc["elements"]])
        assert all(e["marking"] == SECRET for e in holding), (ext, holding)
        assert doc["marking"] == SECRET, ext
        if SOURCES[ext] == "docx":  # the header and footer banners came through the conversion
            assert doc["banner"] == SECRET, ext


def test_an_unclassified_reader_sees_nothing_of_them(
    ingested: tuple[Workspace, IngestReport],
) -> None:
    ws, report = ingested
    ws.session().add_user("uma", SubjectSpec(clearance="U", roles=("viewer",)))
    uma = Documents(ws.session("uma"))
    assert uma.list() == []
    for result in report.results:
        with pytest.raises(NotFound):
            uma.show(str(result.doc_id), elements=True)
    assert not any(any(c in json.dumps(f) for c in CANARY.values()) for f in uma.findings())


def test_garrison_parse_previews_a_converted_file(
    made: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["parse", "--json", str(made["rtf"])])
    out, _ = capsys.readouterr()
    assert code == 0
    (result,) = json.loads(out)
    assert result["media_type"] == MEDIA_TYPES["rtf"]
    assert result["verdict"] == "accept"
    secret = [e for e in result["elements"] if CANARY["docx"] in e["text"]]
    assert [e["marking"] for e in secret] == [SECRET]


# -- without LibreOffice, and when it hangs or crashes ---------------------------------------

RTF = rb"{\rtf1\ansi (S//NF) A secret line.\par}"


def test_without_libreoffice_the_reason_names_the_packages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no soffice on PATH
    with pytest.raises(ParseFailure) as failure:
        parse_bytes(RTF, filename="note.rtf")
    assert failure.value.reason == "unsupported-type"
    for package in ("libreoffice-core", "libreoffice-writer-nogui", "libreoffice-calc-nogui"):
        assert package in failure.value.detail


def _stand_in(tmp_path: Path, body: str) -> str:
    script = tmp_path / "soffice"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_a_conversion_that_hangs_is_killed_and_quarantined_as_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    # Like soffice, the stand-in leaves the work to a child: the whole group must go.
    soffice = _stand_in(tmp_path, f"sleep 60 & echo $! > {pid_file}; wait")
    started = time.monotonic()
    with pytest.raises(ParseFailure) as failure:
        parse_bytes(RTF, filename="note.rtf", soffice=soffice, office_timeout_s=1.0)
    assert failure.value.reason == "timeout"
    assert "LibreOffice" in failure.value.detail
    assert time.monotonic() - started < 30
    child = int(pid_file.read_text())
    assert _gone_or_dead(child)


def test_a_worker_killed_at_its_limit_leaves_no_libreoffice_behind(tmp_path: Path) -> None:
    from garrison.core.isolation import Limits, run_one

    pid_file = tmp_path / "child.pid"
    soffice = _stand_in(tmp_path, f"sleep 60 & echo $! > {pid_file}; wait")

    def convert(data: bytes) -> object:
        return parse_bytes(data, filename="note.rtf", soffice=soffice, office_timeout_s=60.0)

    outcome = run_one(RTF, convert, Limits(timeout_s=2.0, memory_mb=0))
    assert outcome.reason == "timeout"
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while not _gone_or_dead(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone_or_dead(child)


def _gone_or_dead(pid: int) -> bool:
    # A killed child whose parent went too may linger as a zombie until init reaps it.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_a_conversion_that_crashes_is_quarantined_as_corrupt(tmp_path: Path) -> None:
    soffice = _stand_in(tmp_path, "kill -SEGV $$")
    with pytest.raises(ParseFailure) as failure:
        parse_bytes(RTF, filename="note.rtf", soffice=soffice)
    assert failure.value.reason == "corrupt"
    assert "crashed (SIGSEGV)" in failure.value.detail


def test_a_conversion_that_writes_nothing_is_quarantined_as_corrupt(tmp_path: Path) -> None:
    soffice = _stand_in(tmp_path, "exit 0")
    with pytest.raises(ParseFailure) as failure:
        parse_bytes(RTF, filename="note.rtf", soffice=soffice)
    assert failure.value.reason == "corrupt"
    assert "could not convert" in failure.value.detail


def test_the_profile_turns_macros_and_links_off(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    # The stand-in copies the profile it was given; the conversion then fails (no output).
    soffice = _stand_in(
        tmp_path,
        'for a in "$@"; do case "$a" in -env:UserInstallation=file://*) '
        f'cp "${{a#-env:UserInstallation=file://}}/user/registrymodifications.xcu" {seen};; '
        "esac; done",
    )
    with pytest.raises(ParseFailure):
        parse_bytes(RTF, filename="note.rtf", soffice=soffice)
    settings = seen.read_text()
    assert '"DisableMacrosExecution" oor:op="fuse"><value>true' in settings
    assert '"MacroSecurityLevel" oor:op="fuse"><value>3' in settings
