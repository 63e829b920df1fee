"""Command-line access rules: which workspace acts, reserved names, jobs as the asker may
see them, and ingest never reading a workspace or following links out of its input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from garrison.cli.main import main

SECRET = (
    "SECRET//NOFORN\n\n(U) The depot opened on Monday.\n\n"
    "(S//NF) Reserve fuel moves to depot HARROW on Thursday.\n\nSECRET//NOFORN\n"
)
SPILL = "TOP SECRET//NOFORN\n\n(TS//NF) The depot spillword plan.\n\nTOP SECRET//NOFORN\n"
PUBLIC = "(U) The quarterly maintenance report covers forty trucks at the depot.\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _init(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    code, _, err = run(capsys, "init", str(path), "--system-high", "SECRET//NOFORN")
    assert code == 0, err
    return str(path)


@pytest.fixture
def ws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    return _init(capsys, tmp_path / "ws")


# -- -w wins over GARRISON_WORKSPACE ----------------------------------------------------------


def test_explicit_workspace_wins_over_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env_ws = _init(capsys, tmp_path / "env")
    other = _init(capsys, tmp_path / "other")
    assert run(capsys, "user", "add", "only-other", "--clearance", "U", "-w", other)[0] == 0
    monkeypatch.setenv("GARRISON_WORKSPACE", env_ws)

    def users(*argv: str) -> list[str]:
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        return [u["name"] for u in json.loads(out)]

    assert users("-w", other, "user", "list", "--json") == ["only-other"]
    assert users("--workspace", other, "user", "list", "--json") == ["only-other"]
    assert users("user", "list", "-w", other, "--json") == ["only-other"]
    assert users("user", "list", "--json") == []  # the environment's, when nothing is given
    # Both given: the one nearest the command wins.
    assert users("-w", env_ws, "user", "list", "-w", other, "--json") == ["only-other"]


# -- reserved names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["system", "System", "SYSTEM", "anonymous", "Anonymous"])
def test_user_add_refuses_reserved_names(
    ws: str, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, _, err = run(capsys, "user", "add", name, "--clearance", "U", "-w", ws)
    assert code == 2 and "reserved" in err
    code, out, _ = run(capsys, "user", "list", "-w", ws, "--json")
    assert json.loads(out) == []


# -- jobs -------------------------------------------------------------------------------------


@pytest.fixture
def jobs_ws(ws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "public.txt").write_text(PUBLIC)
    (folder / "harrow-secret.txt").write_text(SECRET)
    (folder / "spillword-plan.txt").write_text(SPILL)
    code, out, err = run(
        capsys, "ingest", str(folder), "--default-marking", "UNCLASSIFIED", "-w", ws, "--json"
    )
    assert code == 0, err
    for name, clearance, role in (
        ("conf", "C", "steward"),
        ("stew", "S", "steward"),
        ("cal", "C", "admin"),
        ("vic", "S", "viewer"),
    ):
        assert (
            run(capsys, "user", "add", name, "--clearance", clearance, "--role", role, "-w", ws)[0]
            == 0
        )
    return ws, json.loads(out)["job_id"]


def _show(capsys: pytest.CaptureFixture[str], ws: str, job: str, user: str) -> dict[str, object]:
    code, out, err = run(capsys, "jobs", "show", job, "-w", ws, "--as", user, "--json")
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def test_jobs_show_lists_only_readable_files(
    jobs_ws: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ws, job = jobs_ws
    data = _show(capsys, ws, job, "conf")
    text = json.dumps(data)
    assert "harrow-secret" not in text and "spillword" not in text
    assert [i["uri"].rsplit("/", 1)[-1] for i in data["items"]] == ["public.txt"]  # type: ignore[attr-defined]
    counts = data["counts"]
    assert counts["files"] == 1 and counts["parsed"] == 1 and counts["spilled"] == 0  # type: ignore[index]
    assert data["done"] == 1 and data["total"] == 1
    assert data["params"] == {}  # someone else's job: its folders are not repeated
    # Human output too.
    code, out, _ = run(capsys, "jobs", "show", job, "-w", ws, "--as", "conf")
    assert code == 0 and "public.txt" in out
    assert "harrow-secret" not in out and "spillword" not in out


def test_spill_locations_only_to_admins_and_stewards_who_dominate_system_high(
    jobs_ws: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ws, job = jobs_ws
    stew = json.dumps(_show(capsys, ws, job, "stew"))
    assert "spillword-plan.txt" in stew and "harrow-secret.txt" in stew
    admin = json.dumps(_show(capsys, ws, job, "cal"))  # an admin below system high
    assert "spillword-plan.txt" in admin and "harrow-secret" not in admin
    system = json.dumps(_show(capsys, ws, job, "system"))
    assert "spillword-plan.txt" in system
    code, _, _ = run(capsys, "jobs", "show", job, "-w", ws, "--as", "vic")
    assert code == 4  # viewers see no jobs


def test_jobs_ls_counts_only_readable_documents(
    jobs_ws: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ws, _job = jobs_ws
    code, out, err = run(capsys, "jobs", "ls", "-w", ws, "--as", "conf", "--json")
    assert code == 0, err
    (job,) = json.loads(out)
    assert job["counts"]["files"] == 1 and job["done"] == 1 and job["total"] == 1
    code, out, _ = run(capsys, "jobs", "ls", "-w", ws, "--as", "stew", "--json")
    (full,) = json.loads(out)
    assert full["counts"]["files"] == 3 and full["counts"]["spilled"] == 1 and full["total"] == 3


# -- ingest never reads a workspace ----------------------------------------------------------


def _ingest(capsys: pytest.CaptureFixture[str], ws: str, *inputs: str) -> tuple[int, str, str]:
    return run(capsys, "ingest", *inputs, "--default-marking", "UNCLASSIFIED", "-w", ws, "--json")


@pytest.mark.parametrize(
    "target",
    ["", "keys", "keys/master.key", "catalog.db", "garrison.toml", "blobs", "audit"],
)
def test_ingest_refuses_the_workspace(
    ws: str, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    code, out, err = _ingest(capsys, ws, str(Path(ws) / target))
    assert code == 2 and "workspace" in err and out == ""


def test_ingest_refuses_another_workspace_and_a_folder_holding_one(
    ws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _init(capsys, tmp_path / "data" / "other")
    (tmp_path / "data" / "note.txt").write_text(PUBLIC)
    assert _ingest(capsys, ws, str(Path(other) / "keys"))[0] == 2
    code, _, err = _ingest(capsys, ws, str(tmp_path / "data"))  # holds a workspace
    assert code == 2 and "workspace" in err
    code, _, err = _ingest(capsys, ws, str(tmp_path))  # holds this workspace
    assert code == 2 and "workspace" in err


def test_ingest_refuses_a_workspace_reached_through_a_link(
    ws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "innocent"
    link.symlink_to(Path(ws) / "keys", target_is_directory=True)
    code, _, err = _ingest(capsys, ws, str(link))
    assert code == 2 and "workspace" in err
    catalog = tmp_path / "legacy.db"
    catalog.symlink_to(Path(ws) / "catalog.db")
    code, _, err = _ingest(capsys, ws, f"sqlite:///{catalog}")
    assert code == 2 and "workspace" in err


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{ws}/catalog.db",
        "sqlite:///{ws}/../ws/catalog.db",
        "sqlite+pysqlite:///{ws}/catalog.db",
    ],
)
def test_ingest_refuses_a_workspace_catalog_as_sql_source(
    ws: str, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    code, out, err = _ingest(capsys, ws, url.format(ws=ws))
    assert code == 2 and "workspace" in err and out == ""


def test_ingest_refuses_a_relative_sqlite_url_into_the_workspace(
    ws: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ws)
    assert _ingest(capsys, ws, "sqlite:///catalog.db")[0] == 2


# -- links out of the input are not followed -------------------------------------------------


def test_links_out_of_the_input_are_skipped_and_reported(
    ws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("(U) A private note kept outside the input folder.\n")
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "real.txt").write_text(PUBLIC)
    (folder / "sub" / "other.txt").write_text("(U) Another note about the depot trucks.\n")
    (folder / "to-file.txt").symlink_to(outside / "private.txt")
    (folder / "to-dir").symlink_to(outside, target_is_directory=True)
    (folder / "to-etc").symlink_to("/etc/hostname")
    (folder / "inside.txt").symlink_to(folder / "sub" / "other.txt")  # stays inside: followed
    code, out, err = _ingest(capsys, ws, str(folder))
    assert code == 0, err
    report = json.loads(out)
    by_name = {d["uri"].rsplit("/", 1)[-1]: d for d in report["documents"]}
    assert {n for n, d in by_name.items() if d["status"] == "skipped"} == {
        "to-file.txt",
        "to-dir",
        "to-etc",
    }
    assert by_name["real.txt"]["status"] == "parsed"
    assert by_name["inside.txt"]["status"] in ("parsed", "unchanged")
    code, out, _ = run(capsys, "docs", "ls", "-w", ws, "--json")
    listed = json.dumps(json.loads(out))
    assert "private note" not in listed and "private.txt" not in listed
    code, out, _ = run(capsys, "jobs", "show", report["job_id"], "-w", ws, "--json")
    job = json.loads(out)
    skipped = [i for i in job["items"] if i["outcome"] == "skipped"]
    assert len(skipped) == 3
    text = json.dumps(skipped)
    # Reported by the link's own path, never by where it points.
    assert str(outside) not in text and "/etc/hostname" not in text
    assert all(i["reason"] == "link-outside-input" for i in skipped)
    assert os.path.islink(skipped[0]["uri"])


def test_spilled_documents_listed_only_to_who_may_see_spill_locations(
    jobs_ws: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ws, _job = jobs_ws

    def spills(user: str) -> list[dict[str, object]]:
        code, out, err = run(
            capsys, "docs", "ls", "--status", "spilled", "-w", ws, "--as", user, "--json"
        )
        assert code == 0, err
        found: list[dict[str, object]] = json.loads(out)
        return found

    assert spills("conf") == []  # a steward below system high
    for user in ("stew", "cal", "system"):
        (spill,) = spills(user)
        assert str(spill["uri"]).endswith("spillword-plan.txt") and spill["marking"] is None
    code, out, _ = run(capsys, "docs", "findings", "-w", ws, "--as", "conf", "--json")
    assert code == 0 and "spillword" not in out
