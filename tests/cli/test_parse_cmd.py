"""``garrison parse``: what ingest would decide about files, with no workspace and nothing stored.

Checked on the marked corpus against its answer key, and on files generated here in every
format a portion mark can sit in: a bad mark quarantines with its rule, data above
``--system-high`` is a spill that shows nothing of itself, in every output mode.
"""

from __future__ import annotations

import email.message
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from garrison.cli.main import main
from garrison.ingest import preview

Paragraphs = list[tuple[str, str]]  # (portion mark, text)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["parse", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- files in every format a portion mark can sit in -----------------------------------------


def _txt(path: Path, paras: Paragraphs) -> Path:
    path = path.with_suffix(".txt")
    path.write_text("\n\n".join(f"{m} {t}" for m, t in paras) + "\n", encoding="utf-8")
    return path


def _md(path: Path, paras: Paragraphs) -> Path:
    path = path.with_suffix(".md")
    body = "\n\n".join(f"{m} {t}" for m, t in paras)
    path.write_text(f"# (U) Generated note\n\n{body}\n", encoding="utf-8")
    return path


def _html(path: Path, paras: Paragraphs) -> Path:
    path = path.with_suffix(".html")
    body = "".join(f"<p>{m} {t}</p>" for m, t in paras)
    path.write_text(f"<html><body><h1>(U) Generated note</h1>{body}</body></html>", "utf-8")
    return path


def _csv(path: Path, paras: Paragraphs) -> Path:
    path = path.with_suffix(".csv")
    rows = "".join(f'{i},"{m} {t}"\n' for i, (m, t) in enumerate(paras))
    path.write_text("id,note\n" + rows, encoding="utf-8")
    return path


def _json(path: Path, paras: Paragraphs) -> Path:
    path = path.with_suffix(".json")
    path.write_text(json.dumps({"notes": [f"{m} {t}" for m, t in paras]}), encoding="utf-8")
    return path


def _docx(path: Path, paras: Paragraphs) -> Path:
    import docx

    path = path.with_suffix(".docx")
    document = docx.Document()
    document.add_heading("(U) Generated note", level=1)
    for mark, text in paras:
        document.add_paragraph(f"{mark} {text}")
    document.save(str(path))
    return path


def _eml(path: Path, paras: Paragraphs) -> Path:
    path = path.with_suffix(".eml")
    message = email.message.EmailMessage()
    message["From"] = "cell@example.mil"
    message["To"] = "desk@example.mil"
    message["Subject"] = "(U) Generated note"
    message.set_content("\n\n".join(f"{m} {t}" for m, t in paras) + "\n")
    path.write_bytes(bytes(message))
    return path


def _zip(path: Path, paras: Paragraphs) -> Path:
    import zipfile

    path = path.with_suffix(".zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "(U) Archive of notes.\n")
        archive.writestr("HOLLOWREED-notes.txt", "\n\n".join(f"{m} {t}" for m, t in paras))
    return path


WRITERS: dict[str, Callable[[Path, Paragraphs], Path]] = {
    "txt": _txt,
    "md": _md,
    "html": _html,
    "csv": _csv,
    "json": _json,
    "docx": _docx,
    "eml": _eml,
    "zip": _zip,  # the marks are in a member: the archive takes its members' decision
}

CLEAN = [("(U)", "Convoy lanes reopen on Monday."), ("(S//NF)", "Depot ALDER holds the spares.")]
BAD = [("(U)", "Convoy lanes reopen on Monday."), ("(S//NF/REL TO USA, GBR)", "Depot ALDER.")]
HIGH = [("(U)", "Convoy lanes reopen on Monday."), ("(TS//SI//NF)", "Intercept HOLLOWREED.")]


def _files(tmp_path: Path, paras: Paragraphs, stem: str) -> dict[str, Path]:
    return {fmt: write(tmp_path / f"{stem}-{fmt}", paras) for fmt, write in WRITERS.items()}


def _everything(result: Any, key: str) -> list[Any]:
    """``result[key]`` of a file and of its attachments, recursively."""
    out = list(result[key])
    for child in result["attachments"]:
        out += _everything(child, key)
    return out


def _by_format(out: str, files: dict[str, Path]) -> dict[str, dict[str, object]]:
    results = json.loads(out)
    assert [r["path"] for r in results] == [str(p) for p in files.values()]
    return dict(zip(files, results, strict=True))


# -- the marked corpus, against its answer key -------------------------------------------------


def test_the_marked_corpus_is_decided_as_its_answer_key_says(
    capsys: pytest.CaptureFixture[str], shared_dir: Path
) -> None:
    corpus = shared_dir / "corpus" / "marked"
    truth = json.loads((corpus / "truth.json").read_text(encoding="utf-8"))
    docs = [d for d in truth["docs"] if d["format"] != "sqlite"]
    files = [str(corpus / "docs" / d["file"]) for d in docs]
    code, out, err = run(
        capsys,
        *files,
        "--json",
        "--system-high",
        truth["system_high"],
        "--default-marking",
        truth["default_marking"],
    )
    assert code == 1, err  # one is quarantined and one is a spill
    results = json.loads(out)
    assert len(results) == len(docs)
    for doc, result in zip(docs, results, strict=True):
        name = doc["file"]
        assert result["status"] == doc["status"], name
        assert result["verdict"] == {"parsed": "accept", "quarantined": "quarantine"}.get(
            doc["status"], "spill"
        )
        assert result["marking"] == doc["marking"], name
        assert {f["kind"] for f in result["findings"]} == set(doc["findings"]), name
        by_text = {e["text"]: e for e in result["elements"]}
        for para in doc["paragraphs"]:
            if doc["status"] != "parsed":
                assert para["text"] not in out, f"{name}: a {doc['status']} file showed its text"
                continue
            element = by_text[para["text"]]
            if para["marking"] is not None:
                assert element["marking"] == para["marking"], name
            if para["portion"] is not None:
                assert element["portion"] == f"({para['portion']})", name
                assert element["marking_source"] == "portion"
    bad = results[[d["file"] for d in docs].index("bad-mark.md")]
    assert bad["reason"] == "invalid-marking"
    assert [f["rule"] for f in bad["findings"]] == ["rel-to-needs-foreign"]


PUBLIC = [
    "unstructured/category-level.docx",
    "unstructured/pdf/fake-memo.pdf",
    "unstructured/science-exploration-1p.pptx",
    "unstructured/vodafone.xlsx",
    "unstructured/fake-html.html",
    "unstructured/fake-email.eml",
    "unstructured/simple-table.md",
]


def test_real_files_of_every_kind_parse_into_elements(
    capsys: pytest.CaptureFixture[str], shared_dir: Path
) -> None:
    files = [str(shared_dir / "corpus" / "public" / name) for name in PUBLIC]
    code, out, err = run(capsys, *files, "--json")
    assert code == 0, err
    for name, result in zip(PUBLIC, json.loads(out), strict=True):
        assert result["verdict"] == "accept", name
        assert result["marking"] == "UNCLASSIFIED", name
        assert result["elements"], name
        assert all(e["marking"] == "UNCLASSIFIED" for e in result["elements"]), name
    # Markdown keeps the document's headings as headings and its tables as tables.
    code, out, _ = run(capsys, files[0], files[-1], "--markdown")
    assert code == 0
    assert "\n# (U) A Heading 1\n" in out and "\n## (U) A Heading 2\n" in out
    assert "| Item | Price | # In stock |" in out


# -- the three verdicts, in every format -----------------------------------------------------


def test_clean_files_are_accepted_with_each_portion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _files(tmp_path, CLEAN, "clean")
    code, out, err = run(capsys, *map(str, files.values()), "--json")
    assert code == 0, err
    for fmt, result in _by_format(out, files).items():
        assert result["verdict"] == "accept", fmt
        assert result["marking"] == "SECRET//NOFORN", fmt
        assert result["system_high"] == preview.DEFAULT_SYSTEM_HIGH
        marks = {e["portion"] for e in _everything(result, "elements") if "ALDER" in e["text"]}
        assert marks == {"(S//NF)"}, fmt


def test_several_workers_give_the_same_results_in_the_order_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [*_files(tmp_path, CLEAN, "clean").values(), *_files(tmp_path, BAD, "bad").values()]
    one = run(capsys, *map(str, files), "--json")
    two = run(capsys, *map(str, files), "--json", "--workers", "3")
    assert one == two and one[0] == 1
    assert [r["path"] for r in json.loads(one[1])] == [str(f) for f in files]


def test_a_bad_mark_quarantines_with_its_rule_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _files(tmp_path, BAD, "bad")
    code, out, _ = run(capsys, *map(str, files.values()), "--json")
    assert code == 1
    for fmt, result in _by_format(out, files).items():
        assert (result["status"], result["verdict"]) == ("quarantined", "quarantine"), fmt
        assert result["reason"] == "invalid-marking", fmt
        assert result["marking"] is None and result["elements"] == [], fmt
        rules = {f["rule"] for f in _everything(result, "findings")}
        assert "noforn-with-release" in rules, fmt
    # The human summary names the verdict, the reason and the rule.
    code, out, _ = run(capsys, str(files["docx"]))
    assert code == 1
    assert "ingest would quarantine it (invalid-marking)" in out
    assert "rule noforn-with-release" in out


@pytest.mark.parametrize("mode", ["--json", "--markdown", "--elements", None])
def test_above_system_high_is_a_spill_that_shows_nothing_of_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str | None
) -> None:
    files = _files(tmp_path, HIGH, "high")
    args = [*map(str, files.values()), "--system-high", "SECRET//NOFORN"]
    code, out, err = run(capsys, *args, *([mode] if mode else []))
    assert code == 1
    for text in ("HOLLOWREED", "Convoy lanes", "Generated note", "TOP SECRET", "//SI"):
        assert text not in out and text not in err, (mode, text)
    if mode == "--json":
        for fmt, result in _by_format(out, files).items():
            assert (result["status"], result["verdict"]) == ("spilled", "spill"), fmt
            assert result["reason"] == "spill"
            assert result["marking"] is None and result["banner"] is None, fmt
            assert result["elements"] == [] and result["title"] is None, fmt
            assert result["attachments"] == [], fmt
    elif mode == "--elements":
        assert out == ""
        assert err.count("ingest would spill it (spill)") == len(files)
    elif mode is None:
        assert out.count("a spill: above system high") == len(files)


def test_the_default_system_high_is_top_secret_noforn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts = _txt(tmp_path / "ts", [("(TS//NF)", "Plan WILLOW.")])
    sci = _txt(tmp_path / "sci", HIGH)
    code, out, _ = run(capsys, str(ts), str(sci), "--json")
    assert code == 1
    accepted, spilled = json.loads(out)
    assert accepted["verdict"] == "accept" and accepted["marking"] == "TOP SECRET//NOFORN"
    assert spilled["verdict"] == "spill"
    code, out, _ = run(capsys, str(sci), "--json", "--system-high", "TOP SECRET//SI//NOFORN")
    assert code == 0
    assert json.loads(out)[0]["marking"] == "TOP SECRET//SI//NOFORN"


def test_unmarked_content_takes_the_default_marking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("No marks at all in this note.\n", encoding="utf-8")
    code, out, _ = run(capsys, str(plain), "--json")
    assert code == 0
    assert json.loads(out)[0]["marking"] == "UNCLASSIFIED"
    code, out, _ = run(capsys, str(plain), "--json", "--default-marking", "C//NF")
    element = json.loads(out)[0]["elements"][0]
    assert (element["marking"], element["marking_source"]) == (
        "CONFIDENTIAL//NOFORN",
        "source-default",
    )
    code, _, err = run(capsys, str(plain), "--default-marking", "TS", "--system-high", "S")
    assert code == 2 and "not dominated by the system high" in err


# -- output modes ------------------------------------------------------------------------------


def test_markdown_has_banners_headings_and_portion_marks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note = _md(tmp_path / "note", CLEAN)
    bad = _md(tmp_path / "bad", BAD)
    code, out, _ = run(capsys, str(note), str(bad), "--markdown")
    assert code == 1
    first, second = out.split(f"<!-- {bad}", 1)
    lines = [line for line in first.splitlines() if line]
    assert lines[1] == lines[-1] == "**SECRET//NOFORN**"
    assert "# (U) Generated note" in lines
    assert "(S//NF) Depot ALDER holds the spares." in lines
    assert second.strip() == ": ingest would quarantine it (invalid-marking) -->"


def test_elements_are_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _files(tmp_path, CLEAN, "lines")
    code, out, _ = run(capsys, str(files["html"]), str(files["csv"]), "--elements")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["path"] for r in rows} == {str(files["html"]), str(files["csv"])}
    assert all(
        {"type", "text", "page", "marking", "portion", "marking_source"} <= r.keys() for r in rows
    )
    assert any(r["type"] == "Title" and r["heading_level"] == 1 for r in rows)
    assert any(
        r["text"].endswith("Depot ALDER holds the spares.") and r["marking"] == "SECRET//NOFORN"
        for r in rows
    )


def test_the_human_summary_shows_types_previews_and_portions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note = _html(tmp_path / "note", CLEAN)
    code, out, _ = run(capsys, str(note))
    assert code == 0
    assert "verdict: ingest would accept it" in out
    assert "marking: SECRET//NOFORN" in out
    assert "elements: 2 NarrativeText, 1 Title" in out
    assert "(S//NF) NarrativeText: Depot ALDER holds the spares." in out


def test_one_output_mode_at_a_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    note = _txt(tmp_path / "note", CLEAN)
    code, _, err = run(capsys, str(note), "--json", "--markdown")
    assert code == 2 and "one of --json, --markdown and --elements" in err


# -- files that cannot be read, and the overall exit code --------------------------------------


def test_unreadable_files_get_one_line_and_the_others_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note = _txt(tmp_path / "note", CLEAN)
    folder = tmp_path / "folder"
    folder.mkdir()
    missing = tmp_path / "missing.txt"
    code, out, err = run(capsys, str(missing), str(note), str(folder))
    assert code == 3  # the highest of 3 (not found), 0 (accepted) and 2 (a folder)
    assert err.splitlines() == [
        f"garrison: No file at {missing}.",
        f"garrison: {folder} is a folder; give the files in it to parse.",
    ]
    assert "verdict: ingest would accept it" in out
    code, out, _ = run(capsys, str(note), str(folder), "--json")
    assert code == 2
    good, failed = json.loads(out)
    assert good["verdict"] == "accept" and failed == {
        "path": str(folder),
        "error": f"{folder} is a folder; give the files in it to parse.",
        "exit_code": 2,
    }


def test_unsupported_and_empty_files_are_quarantined_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    odd = tmp_path / "blob.bin"
    odd.write_bytes(b"\x00\x01\x02\x03" * 64 + bytes(range(256)))
    code, out, _ = run(capsys, str(empty), str(odd), "--json")
    assert code == 1
    reasons = [(r["verdict"], r["reason"]) for r in json.loads(out)]
    assert reasons == [("quarantine", "corrupt"), ("quarantine", "unsupported-type")]


def test_workspace_material_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "garrison.toml").write_text("# a workspace's configuration\n", encoding="utf-8")
    (ws / "catalog.db").write_text("id,note\n1,catalog row\n", encoding="utf-8")
    code, _, err = run(capsys, str(ws / "catalog.db"))
    assert code == 2 and "inside the Garrison workspace" in err


def test_nothing_is_written_to_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in").mkdir()
    files = _files(tmp_path / "in", CLEAN, "n")
    scratch, here = tmp_path / "tmp", tmp_path / "cwd"
    scratch.mkdir()
    here.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.chdir(here)
    before = sorted(p.name for p in (tmp_path / "in").iterdir())
    code, _, _ = run(capsys, *map(str, files.values()), "--json")
    assert code == 0
    assert list(scratch.iterdir()) == [] and list(here.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == before
    assert os.environ["TMPDIR"] == str(scratch)  # restored


def _writes_a_temporary_file(task: object) -> object:
    import tempfile

    from garrison.ingest._worker import parse_tree

    fd, name = tempfile.mkstemp(suffix=".scratch")
    os.write(fd, b"what a parser library might spool")
    os.close(fd)
    node = parse_tree(task)  # type: ignore[arg-type]
    node.parsed, node.failure = None, ("corrupt", name)  # tell the test where it wrote
    return node


def test_what_a_parser_writes_goes_to_a_private_folder_that_is_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    note = _txt(tmp_path / "note", CLEAN)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(preview, "parse_tree", _writes_a_temporary_file)
    code, out, _ = run(capsys, str(note), "--json")
    assert code == 1
    written = Path(json.loads(out)[0]["reason_detail"])
    assert written.name.endswith(".scratch")
    assert not written.exists() and not written.parent.exists()  # removed with its folder
    assert list(scratch.iterdir()) == []


# -- the same isolation as ingest --------------------------------------------------------------


def _slow(task: object) -> object:
    time.sleep(30)
    raise AssertionError("not reached")


def _crash(task: object) -> object:
    os._exit(7)


@pytest.mark.parametrize(
    ("worker", "reason", "detail"),
    [(_slow, "timeout", "still running after 1 s"), (_crash, "corrupt", "the parser crashed")],
)
def test_a_parser_that_hangs_or_crashes_fails_its_file_only(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    worker: Callable[[object], object],
    reason: str,
    detail: str,
) -> None:
    note = _txt(tmp_path / "note", CLEAN)
    monkeypatch.setattr(preview, "parse_tree", worker)
    started = time.monotonic()
    code, out, _ = run(capsys, str(note), "--json", "--timeout", "1")
    assert time.monotonic() - started < 20
    assert code == 1
    (result,) = json.loads(out)
    assert (result["verdict"], result["reason"]) == ("quarantine", reason)
    assert detail in result["reason_detail"]
