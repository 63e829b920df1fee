"""CLI listings page with --limit and --cursor: the footer, the JSON page, the readable total."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from garrison.cli.main import main
from tests.api.conftest import build_workspace

#: Listings and who may run them: (argv, user).
LISTINGS = [
    (["docs", "ls"], "sam"),
    (["docs", "findings"], "stu"),
    (["jobs", "ls"], "stu"),
    (["chunks", "ls"], "sam"),
    (["dataset", "ls"], "sam"),
    (["model", "ls"], "sam"),
    (["user", "list"], "ada"),
    (["audit", "tail"], "ada"),
    (["eval", "ls"], "sam"),
    (["eval", "suite", "ls"], "sam"),
    (["label", "project", "ls"], "sam"),
]
_FOOTER = re.compile(r"^(\d+) of (\d+) shown; (?:next page: --cursor (\S+)|last page\.)$", re.M)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> str:
    path, _ = build_workspace(tmp_path_factory.mktemp("cli-pages"))
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], ws: str, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "-w", ws])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], ws: str, *argv: str) -> Any:
    code, out, err = _run(capsys, ws, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize(("argv", "user"), LISTINGS)
def test_every_listing_pages_with_limit_and_cursor(
    capsys: pytest.CaptureFixture[str], ws: str, argv: list[str], user: str
) -> None:
    whole = _json(capsys, ws, *argv, "--as", user)
    assert isinstance(whole, list)  # without --limit: every record, as an array
    key = "seq" if argv[0] == "audit" else ("name" if argv[0] == "user" else "id")
    seen: list[Any] = []
    page = _json(capsys, ws, *argv, "--as", user, "--limit", "2")
    while True:
        assert set(page) == {"items", "total", "next_cursor", "prev_cursor"}
        assert len(page["items"]) <= 2
        seen += [i[key] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        page = _json(
            capsys, ws, *argv, "--as", user, "--limit", "2", "--cursor", page["next_cursor"]
        )
    if argv[0] == "audit":
        # Pages go back from the newest events; the listing's own runs added events since.
        assert len(seen) == len(set(seen)) and page["total"] >= len(whole)
    else:
        assert sorted(map(str, seen)) == sorted(str(i[key]) for i in whole)
        assert page["total"] == len(whole)


def test_the_table_ends_with_a_footer_that_names_the_next_cursor(
    capsys: pytest.CaptureFixture[str], ws: str
) -> None:
    code, out, err = _run(capsys, ws, "docs", "ls", "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 3  # the header and two rows
    found = _FOOTER.search(err)
    assert found is not None and found.group(1, 2) == ("2", "3")
    code, out, err = _run(capsys, ws, "docs", "ls", "--limit", "2", "--cursor", found.group(3))
    assert code == 0 and len(out.splitlines()) == 2
    assert "1 of 3 shown; last page." in err
    code, out, err = _run(capsys, ws, "docs", "ls")
    assert len(out.splitlines()) == 4 and "shown" not in err  # no --limit: everything


def test_totals_count_only_what_the_reader_may_read(
    capsys: pytest.CaptureFixture[str], ws: str
) -> None:
    assert _json(capsys, ws, "docs", "ls", "--as", "una", "--limit", "1")["total"] == 1
    assert _json(capsys, ws, "docs", "ls", "--as", "sam", "--limit", "1")["total"] == 3
    low = _json(capsys, ws, "chunks", "ls", "--as", "una", "--limit", "1")
    high = _json(capsys, ws, "chunks", "ls", "--as", "sam", "--limit", "1")
    assert 0 < low["total"] < high["total"]
    assert {c["marking"] for c in _json(capsys, ws, "chunks", "ls", "--as", "una")} == {
        "UNCLASSIFIED"
    }


@pytest.mark.parametrize("cursor", ["garbage", "eyJsIjoidXNlcnMiLCJhIjoiYWRhIn0", "e30"])
def test_a_cursor_the_listing_did_not_give_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], ws: str, cursor: str
) -> None:
    code, out, err = _run(capsys, ws, "docs", "ls", "--cursor", cursor)
    assert code == 2 and out == ""
    assert err == "garrison: The cursor is not one this listing gave.\n"


@pytest.mark.parametrize("limit", ["0", "501"])
def test_the_page_size_is_bounded(capsys: pytest.CaptureFixture[str], ws: str, limit: str) -> None:
    code, _, err = _run(capsys, ws, "docs", "ls", "--limit", limit)
    assert code == 2 and "--limit" in err


def test_the_cli_reference_documents_the_paging_options() -> None:
    text = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    for argv, _ in LISTINGS:
        heading = "garrison " + " ".join(argv)
        synopsis = re.search(rf"^{re.escape(heading)} [^\n]*$", text, re.M)
        assert synopsis is not None, heading
        assert "--cursor CURSOR" in synopsis.group(0), heading
