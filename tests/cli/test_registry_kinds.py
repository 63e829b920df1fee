"""``garrison registry`` kinds of MARKINGS.md section 7 (sap-nickname, accm, nonic, owner), the
``NATO-MEMBERS`` group, ``registry remove``, and ``user add/update`` with the 7.4 briefings: each
change audited, each bad input one line and exit 2, everything kept in the catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.security.markings import NATO_MEMBERS_2024
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return out


def refused(capsys: pytest.CaptureFixture[str], code: int, *argv: str) -> str:
    got, out, err = run(capsys, *argv)
    assert got == code, (got, out, err)
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


SYSTEM_HIGH = "SECRET//RD-CNWDI/ATOMAL//FGI NATO//NOFORN"


@pytest.fixture
def ws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = str(tmp_path / "ws")
    ok(capsys, "init", path, "--system-high", "SECRET//NOFORN")
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One workspace for the tests that only check refusals (which change nothing)."""
    path = str(tmp_path_factory.mktemp("refusals") / "ws")
    assert main(["init", path, "--system-high", "SECRET//NOFORN"]) == 0
    return path


def _events(ws: str, n: int | None) -> list[dict[str, object]]:
    with Workspace.open(ws) as opened:
        return [e.model_dump(mode="json") for e in opened.audit.tail(n)]


# -- registry kinds ---------------------------------------------------------------------------


def test_each_new_kind_is_registered_listed_audited_and_parsed(
    ws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before registration the parser refuses (or cannot resolve) each form.
    assert refused(capsys, 2, "marking", "check", "(//XKS S)", "-w", ws)
    assert refused(capsys, 2, "marking", "check", "SECRET//NOFORN//AUSTEO", "-w", ws)
    out = ok(capsys, "marking", "check", "SECRET//SAR-BUTTERED POPCORN", "-w", ws)
    assert out == "SECRET//SAR-BUTTERED POPCORN\n"  # an unmapped nickname stands for itself
    added = [
        ("sap-nickname", "buttered popcorn", "--pid", "BP"),
        ("accm", "Tea Leaf"),
        ("nonic", "austeo"),
        ("owner", "xks"),
    ]
    for kind, name, *rest in added:
        out = ok(capsys, "registry", "add", kind, name, *rest, "-w", ws)
        assert out.startswith(f"Registered {kind} {name.upper()}")
        event = _events(ws, 1)[0]
        assert event["action"] == "registry.add"
        assert event["details"]["kind"] == kind  # type: ignore[index]
    entries = json.loads(ok(capsys, "registry", "list", "-w", ws, "--json"))
    by_kind = {e["kind"]: e for e in entries}
    assert by_kind["sap-nickname"]["name"] == "BUTTERED POPCORN"
    assert by_kind["sap-nickname"]["pid"] == "BP"
    assert by_kind["accm"]["name"] == "TEA LEAF"
    assert by_kind["nonic"]["name"] == "AUSTEO" and by_kind["owner"]["name"] == "XKS"
    table = ok(capsys, "registry", "list", "-w", ws)
    assert "PID BP" in table and "AUSTEO" in table
    checks = {
        "SECRET//SPECIAL ACCESS REQUIRED-BUTTERED POPCORN": "SECRET//SAR-BP",
        "(//XKS S)": "//XKS SECRET",
        "SECRET//FGI XKS//NOFORN": "SECRET//FGI XKS//NOFORN",
        "(S//NF//AUSTEO)": "SECRET//NOFORN//AUSTEO",
        "SECRET//NOFORN//LES/AUSTEO": "SECRET//NOFORN//LES/AUSTEO",
    }
    for text, banner in checks.items():
        assert ok(capsys, "marking", "check", text, "-w", ws) == banner + "\n"
    # Without the workspace's registry the same lines are still refused.
    assert refused(capsys, 2, "marking", "check", "(//XKS S)")


@pytest.mark.parametrize(
    ("kind", "name", "extra"),
    [
        ("sap-nickname", "TEA/LEAF", ["--pid", "TL"]),
        ("sap-nickname", "HVSACO", ["--pid", "HV"]),
        ("sap-nickname", "MULTIPLE PROGRAMS", ["--pid", "MP"]),
        ("sap-nickname", "BUTTERED POPCORN", ["--pid", "B P"]),
        ("sap-nickname", "BUTTERED POPCORN", ["--pid", "MULTIPLE"]),
        ("sap-nickname", "BP", ["--pid", "BP"]),
        ("sap-nickname", "BUTTERED POPCORN", []),
        ("accm", "TEA/LEAF", []),
        ("accm", "NOFORN", []),
        ("accm", "X" * 65, []),
        ("nonic", "NF", []),
        ("nonic", "LES", []),
        ("nonic", "GBR", []),
        ("nonic", "HCS", []),
        ("nonic", "EYES ONLY", []),
        ("owner", "GBR", []),
        ("owner", "USA", []),
        ("owner", "FGI", []),
        ("owner", "XKSX", []),
        ("owner", "X1S", []),
        ("accm", "TEA LEAF", ["--members", "GBR"]),
        ("owner", "XKS", ["--pid", "BP"]),
        ("group", "NATO-MEMBERS", ["--members", "XXX"]),
        ("planet", "MARS", []),
    ],
)
def test_bad_names_exit_2_in_one_line(
    shared: str, capsys: pytest.CaptureFixture[str], kind: str, name: str, extra: list[str]
) -> None:
    ws = shared
    size = len(_events(ws, None))
    refused(capsys, 2, "registry", "add", kind, name, *extra, "-w", ws)
    assert all(e["action"] != "registry.add" for e in _events(ws, None)[size:])


def test_duplicates_and_clashes_exit_2(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "registry", "add", "sap-nickname", "BUTTERED POPCORN", "--pid", "BP", "-w", ws)
    err = refused(
        capsys, 2, "registry", "add", "sap-nickname", "buttered popcorn", "--pid", "BQ", "-w", ws
    )
    assert "already has" in err
    # A nickname is never also a PID, either way round.
    refused(capsys, 2, "registry", "add", "sap-nickname", "BP", "--pid", "XY", "-w", ws)
    refused(
        capsys,
        2,
        "registry",
        "add",
        "sap-nickname",
        "GOLD BAR",
        "--pid",
        "BUTTERED POPCORN",
        "-w",
        ws,
    )
    ok(capsys, "registry", "add", "sap", "SAR-GB", "-w", ws)
    refused(capsys, 2, "registry", "add", "sap-nickname", "GB", "--pid", "GOLD", "-w", ws)
    ok(capsys, "registry", "add", "nonic", "AUSTEO", "-w", ws)
    err = refused(capsys, 2, "registry", "add", "sci", "AUSTEO", "-w", ws)
    assert "invalid-registry" in err


def test_only_an_admin_edits_the_registry(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "user", "add", "vic", "--clearance", "S", "--role", "viewer", "-w", ws)
    refused(capsys, 4, "registry", "add", "accm", "TEA LEAF", "-w", ws, "--as", "vic")
    refused(
        capsys,
        4,
        "registry",
        "remove",
        "group",
        "NATO-MEMBERS",
        "--members",
        "TUR",
        "-w",
        ws,
        "--as",
        "vic",
    )
    assert _events(ws, 1)[0]["decision"] == "deny"


# -- NATO-MEMBERS and removal ----------------------------------------------------------------


def test_init_fills_nato_members_and_an_admin_edits_it(
    ws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = json.loads(ok(capsys, "registry", "list", "-w", ws, "--json"))
    nato = next(e for e in entries if e["name"] == "NATO-MEMBERS")
    assert nato["kind"] == "group" and set(nato["members"]) == NATO_MEMBERS_2024
    # Austria is no member: no NATO briefing for its citizens until the site adds it.
    err = refused(
        capsys,
        2,
        "user",
        "add",
        "anna",
        "--clearance",
        "S",
        "--country",
        "AUT",
        "--nato",
        "NS",
        "-w",
        ws,
    )
    assert "nato-citizenship" in err
    ok(capsys, "registry", "add", "group", "NATO-MEMBERS", "--members", "AUT", "-w", ws)
    assert _events(ws, 1)[0]["details"]["added"] == ["AUT"]  # type: ignore[index]
    ok(
        capsys,
        "user",
        "add",
        "anna",
        "--clearance",
        "S",
        "--country",
        "AUT",
        "--nato",
        "NS",
        "-w",
        ws,
    )
    refused(capsys, 2, "registry", "add", "group", "NATO-MEMBERS", "--members", "AUT", "-w", ws)
    # A member whose citizens hold briefings stays until their briefings go.
    err = refused(
        capsys, 2, "registry", "remove", "group", "NATO-MEMBERS", "--members", "AUT", "-w", ws
    )
    assert "anna" in err
    ok(capsys, "user", "update", "anna", "--nato", "", "-w", ws)
    out = ok(
        capsys, "registry", "remove", "group", "NATO-MEMBERS", "--members", "AUT,TUR", "-w", ws
    )
    assert out == "Updated group NATO-MEMBERS.\n"
    event = _events(ws, 1)[0]
    assert event["action"] == "registry.remove"
    assert event["details"]["removed"] == ["AUT", "TUR"]  # type: ignore[index]
    members = next(
        e["members"]
        for e in json.loads(ok(capsys, "registry", "list", "-w", ws, "--json"))
        if e["name"] == "NATO-MEMBERS"
    )
    assert len(members) == 31 and "TUR" not in members
    refused(capsys, 2, "registry", "remove", "group", "NATO-MEMBERS", "--members", "JPN", "-w", ws)
    refused(capsys, 2, "registry", "remove", "group", "NATO-MEMBERS", "-w", ws)


def test_remove_refuses_what_is_still_used(
    ws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for kind, name in [("accm", "TEA LEAF"), ("owner", "XKS"), ("nonic", "AUSTEO"), ("sci", "ZX")]:
        ok(capsys, "registry", "add", kind, name, "-w", ws)
    ok(capsys, "registry", "add", "sap-nickname", "GOLD BAR", "--pid", "GB", "-w", ws)
    ok(capsys, "user", "add", "tess", "--clearance", "S", "--accm", "TEA LEAF", "-w", ws)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "kosovo.txt").write_text("(//XKS S//NF) The liaison notes.\n")
    ok(capsys, "ingest", str(folder), "--default-marking", "UNCLASSIFIED", "-w", ws)
    # A user's grant, a stored marking: refused, one line, nothing removed.
    assert "tess" in refused(capsys, 2, "registry", "remove", "accm", "TEA LEAF", "-w", ws)
    assert "//XKS" in refused(capsys, 2, "registry", "remove", "owner", "XKS", "-w", ws)
    refused(capsys, 3, "registry", "remove", "accm", "PINE CONE", "-w", ws)
    # Nothing depends on these: they go, audited.
    for kind, name in [("nonic", "AUSTEO"), ("sci", "ZX"), ("sap-nickname", "GOLD BAR")]:
        assert ok(capsys, "registry", "remove", kind, name, "-w", ws) == f"Removed {kind} {name}.\n"
        event = _events(ws, 1)[0]
        assert (event["action"], event["object_id"]) == ("registry.remove", f"{kind}:{name}")
    names = {e["name"] for e in json.loads(ok(capsys, "registry", "list", "-w", ws, "--json"))}
    assert names == {"NATO-MEMBERS", "TEA LEAF", "XKS"}
    assert ok(capsys, "marking", "check", "S//SAR-GOLD BAR", "-w", ws) == "SECRET//SAR-GOLD BAR\n"
    refused(capsys, 2, "marking", "check", "S//NF//AUSTEO", "-w", ws)
    ok(capsys, "user", "update", "tess", "--accm", "", "-w", ws)
    ok(capsys, "registry", "remove", "accm", "tea leaf", "-w", ws)


# -- users with briefings ----------------------------------------------------------------------


def test_user_add_with_every_briefing(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "registry", "add", "accm", "TEA LEAF", "-w", ws)
    ok(capsys, "registry", "add", "sap-nickname", "BUTTERED POPCORN", "--pid", "BP", "-w", ws)
    ok(capsys, "registry", "add", "nonic", "AUSTEO", "-w", ws)
    out = ok(
        capsys, "user", "add", "kim", "--clearance", "TS", "--country", "FIN",
        "--nato", "CTS", "--nato-special", "ATOMAL,BOHEMIA,BALK",
        "--aea", "RD,CNWDI,SIGMA-14", "--aea", "sigma 20,DCNI,UCNI",
        "--accm", "Tea Leaf", "--nonic", "LIMDIS,EXDIS,NODIS,SBU,LES,SSI,AUSTEO",
        "--sap", "SAR-BUTTERED POPCORN,HVSACO", "--grant", "DSEN", "-w", ws, "--json",
    )  # fmt: skip
    kim = json.loads(out)
    assert kim["nato"] == "CTS" and kim["nato_special"] == ["ATOMAL", "BALK", "BOHEMIA"]
    assert kim["aea"] == ["CNWDI", "DCNI", "RD", "SIGMA-14", "SIGMA-20", "UCNI"]
    assert kim["accm"] == ["TEA LEAF"] and kim["sap"] == ["HVSACO", "SAR-BP"]
    assert "AUSTEO" in kim["nonic"] and kim["grants"] == ["DSEN"]
    tokens = set(kim["authorizations"])
    assert {"NATO:CTS", "NATO:NU", "NATO:BALK", "AEA:SIGMA-20", "ACCM:TEA LEAF"} <= tokens
    assert {"SAP:BP", "SAP:HVSACO", "NONIC:AUSTEO", "DISSEM:DSEN", "CTRY:FIN"} <= tokens
    shown = json.loads(ok(capsys, "user", "show", "kim", "-w", ws, "--json"))
    assert shown == kim
    listed = json.loads(ok(capsys, "user", "list", "-w", ws, "--json"))
    assert listed[0]["aea"] == kim["aea"]
    table = ok(capsys, "user", "list", "-w", ws)
    assert table.splitlines()[0].split("\t")[-1] == "briefings"
    assert "NATO CTS" in table
    details = _events(ws, 1)[0]["details"]
    assert details["nato"] == "CTS" and details["accm"] == ["TEA LEAF"]  # type: ignore[index]
    # Options given replace; those not given stay.
    update = json.loads(
        ok(
            capsys,
            "user",
            "update",
            "kim",
            "--nato",
            "NS",
            "--nato-special",
            "ATOMAL",
            "-w",
            ws,
            "--json",
        )
    )
    assert update["nato"] == "NS" and update["nato_special"] == ["ATOMAL"]
    assert update["aea"] == kim["aea"] and "NATO:CTS" not in update["authorizations"]
    assert _events(ws, 1)[0]["details"]["before"]["nato"] == "CTS"  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (["--clearance", "S", "--country", "JPN", "--nato", "NS"], "nato-citizenship"),
        (["--clearance", "S", "--nato", "CTS"], "nato-clearance"),
        (["--clearance", "S", "--nato", "NS", "--nato-special", "BOHEMIA"], "nato-controls"),
        (["--clearance", "S", "--nato-special", "ATOMAL"], "nato-controls"),
        (["--clearance", "S", "--nato", "NX"], "nato-known"),
        (["--clearance", "U", "--aea", "RD"], "rd-requires-confidential"),
        (["--clearance", "S", "--aea", "CNWDI"], "cnwdi-requires-rd"),
        (["--clearance", "S", "--aea", "SIGMA-14"], "sigma-requires-parent"),
        (["--clearance", "C", "--aea", "RD,SIGMA-14"], "sigma-level"),
        (["--clearance", "S", "--aea", "RD,SIGMA-100"], "sigma-range"),
        (["--clearance", "S", "--aea", "FRD"], "aea-known"),
        (["--clearance", "TS", "--sap", "SAR-MULTIPLE"], "sap-multiple"),
        (["--clearance", "S", "--accm", "PINE CONE"], "accm-registered"),
        (["--clearance", "S", "--nonic", "SBU NOFORN"], "nonic-known"),
    ],
)
def test_each_refused_grant_exits_2_naming_its_rule(
    shared: str, capsys: pytest.CaptureFixture[str], args: list[str], rule: str
) -> None:
    ws, name = shared, "ivy-" + rule + "-" + str(abs(hash(tuple(args))))[:8]
    err = refused(capsys, 2, "user", "add", name, *args, "-w", ws)
    assert f"rule {rule}" in err
    refused(capsys, 3, "user", "show", name, "-w", ws)
    # The same rules hold when a subject is changed.
    ok(capsys, "user", "add", name, "--clearance", "U", "-w", ws)
    err = refused(capsys, 2, "user", "update", name, *args, "-w", ws)
    assert f"rule {rule}" in err


def test_cli_reads_follow_the_briefings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nato-ws")
    ok(capsys, "init", path, "--system-high", SYSTEM_HIGH)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "nato.txt").write_text(
        "//NATO SECRET\n\n(//NS) The alliance plan.\n\n//NATO SECRET\n"
    )
    (folder / "rd.txt").write_text("(S//RD//NF) The design note.\n")
    ok(capsys, "ingest", str(folder), "--default-marking", "UNCLASSIFIED", "-w", path)
    ok(capsys, "user", "add", "nina", "--clearance", "S", "--nato", "NS", "-w", path)
    ok(capsys, "user", "add", "rudy", "--clearance", "S", "--aea", "RD", "-w", path)
    ok(
        capsys,
        "user",
        "add",
        "gwen",
        "--clearance",
        "S",
        "--nato",
        "NS",
        "--country",
        "GBR",
        "-w",
        path,
    )
    seen = {}
    for user in ("nina", "rudy", "gwen"):
        docs = json.loads(ok(capsys, "docs", "ls", "-w", path, "--as", user, "--json"))
        items = docs["items"] if isinstance(docs, dict) else docs
        seen[user] = {d["filename"] for d in items}
    assert seen == {"nina": {"nato.txt"}, "rudy": {"rd.txt"}, "gwen": set()}


# -- the catalog keeps it all, on SQLite and PostgreSQL ---------------------------------------


def test_briefings_and_registry_kinds_persist(tmp_path: Path, catalog_url: str | None) -> None:
    ws = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=catalog_url)
    try:
        system = ws.session()
        system.registry_add("sap-nickname", "BUTTERED POPCORN", pid="SAR-BP")
        system.registry_add("accm", "ACCM-TEA LEAF")
        system.registry_add("nonic", "AUSTEO")
        system.registry_add("owner", "XKS")
        system.registry_add("group", "NATO-MEMBERS", members=("AUT",))
        spec = SubjectSpec(
            clearance="TS",
            citizenship="AUT",
            nato="COSMIC TOP SECRET",
            nato_special=("ATOMAL", "BOHEMIA"),
            aea=("RESTRICTED DATA", "CNWDI", "SIGMA 14", "DOD UCNI"),
            accm=("TEA LEAF",),
            nonic=("DS", "AUSTEO"),
            sap=("SPECIAL ACCESS REQUIRED-BUTTERED POPCORN", "HVSACO"),
            grants=("DEA SENSITIVE",),
        )
        added = system.add_user("kim", spec)
        assert added.nato == "CTS" and added.nonic == {"LIMDIS", "AUSTEO"}
        assert added.aea == {"RD", "CNWDI", "SIGMA-14", "DCNI"}
        assert added.sap == {"SAR-BP", "HVSACO"} and added.grants == {"DSEN"}
    finally:
        ws.close()
    reopened = Workspace.open(tmp_path / "ws")
    try:
        assert reopened.session().get_user("kim") == added
        assert reopened.session("kim").subject.authorizations == added.authorizations
        registry = reopened.registry
        assert registry.sap_pid("BUTTERED POPCORN") == "BP"
        assert registry.accm == {"TEA LEAF"} and registry.nonic_controls == {"AUSTEO"}
        assert registry.owners == {"XKS"}
        assert registry.nato_members == NATO_MEMBERS_2024 | {"AUT"}
    finally:
        reopened.close(checkpoint=False)


def test_migrating_an_old_catalog_keeps_its_users_and_fills_nato_members(tmp_path: Path) -> None:
    from alembic import command

    from garrison.store.catalog import HEAD_REVISION, Catalog, resolve_url

    root = tmp_path / "ws"
    with Workspace.init(root, system_high="SECRET//NOFORN") as ws:
        ws.session().add_user("old", SubjectSpec(clearance="S", nato="NS"))
    catalog = Catalog(resolve_url("sqlite:///catalog.db", root))
    with catalog.engine.begin() as conn:
        command.downgrade(catalog._alembic_config(conn), "0014")
    with catalog.engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM registry_entries").scalar() == 0
    catalog.dispose()
    assert main(["migrate", "-w", str(root)]) == 0
    with Workspace.open(root) as ws:
        assert ws.catalog.revision() == HEAD_REVISION
        assert ws.registry.nato_members == NATO_MEMBERS_2024
        old = ws.session().get_user("old")
        assert old.nato is None and old.aea == frozenset() and old.clearance.name == "S"


def test_a_red_team_scratch_workspace_copies_registry_and_briefings(tmp_path: Path) -> None:
    from garrison.evaluate.redteam._workspace import scratch_workspace

    with Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN") as ws:
        system = ws.session()
        system.registry_add("group", "NATO-MEMBERS", members=("AUT",))
        system.registry_remove("group", "NATO-MEMBERS", members=("TUR",))
        system.registry_add("sap-nickname", "BUTTERED POPCORN", pid="BP")
        system.registry_add("accm", "TEA LEAF")
        spec = SubjectSpec(
            clearance="S", citizenship="AUT", nato="NS", accm=("TEA LEAF",), sap=("SAR-BP",)
        )
        anna = system.add_user("anna", spec)
        with scratch_workspace(system) as scratch:
            copy = scratch.workspace
            assert copy.registry.nato_members == ws.registry.nato_members
            assert copy.registry.sap_nicknames == ws.registry.sap_nicknames
            assert copy.registry.accm == {"TEA LEAF"}
            assert copy.session().get_user("anna") == anna
