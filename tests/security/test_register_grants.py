"""Who may read the rest of the register (MARKINGS.md 7.4): the subject's briefings, the grant
rules checked when a subject is created or changed, and access decided end to end (library and
API) over data marked with NATO, atomic energy, ACCM, non-IC and SAP markings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.core.errors import InvalidInput
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.security.markings import (
    BUILTIN_REGISTRY,
    NATO_MEMBERS_2024,
    Level,
    Marking,
    access_expression,
    parse_marking,
)
from garrison.security.policy import can_read
from garrison.security.subjects import GRANT_RULES, Subject, nato_levels_granted
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import create_app as create_web_app
from tests.security.markings.test_markings_properties import markings

REGISTRY = BUILTIN_REGISTRY.with_additions(
    nato_members=NATO_MEMBERS_2024,
    accm=["TEA LEAF"],
    nonic_controls=["AUSTEO"],
    sap_nicknames={"BUTTERED POPCORN": "BP"},
)


def subject(clearance: Level = Level.S, **kwargs: object) -> Subject:
    return Subject(name="probe", clearance=clearance, **kwargs)  # type: ignore[arg-type]


# -- tokens ------------------------------------------------------------------------------------


def test_the_2024_members_of_nato() -> None:
    assert len(NATO_MEMBERS_2024) == 32
    assert {"FIN", "SWE", "USA", "TUR", "MKD"} <= NATO_MEMBERS_2024
    assert not {"AUT", "IRL", "CHE", "JPN", "AUS"} & NATO_MEMBERS_2024
    assert BUILTIN_REGISTRY.countries >= NATO_MEMBERS_2024


def test_briefings_compile_to_the_tokens_of_7_4() -> None:
    s = subject(
        Level.TS,
        nato="CTS",
        nato_special=frozenset({"ATOMAL", "BOHEMIA"}),
        aea=frozenset({"RD", "CNWDI", "SIGMA-14", "DCNI"}),
        accm=frozenset({"TEA LEAF"}),
        nonic=frozenset({"LIMDIS", "SSI"}),
        sap=frozenset({"SAR-BP", "HVSACO"}),
        grants=frozenset({"DSEN"}),
    )
    # A CTS briefing also grants NS ... NU (prefix-closed, like SCI).
    assert {"NATO:CTS", "NATO:NS", "NATO:NC", "NATO:NR", "NATO:NU"} <= s.authorizations
    assert {"NATO:ATOMAL", "NATO:BOHEMIA"} <= s.authorizations
    assert {"AEA:RD", "AEA:CNWDI", "AEA:SIGMA-14", "AEA:DCNI"} <= s.authorizations
    assert {"ACCM:TEA LEAF", "NONIC:LIMDIS", "NONIC:SSI"} <= s.authorizations
    assert {"SAP:BP", "SAP:HVSACO", "DISSEM:DSEN"} <= s.authorizations
    assert "NATO:BALK" not in s.authorizations and "SAP:MULTIPLE" not in s.authorizations
    s.validate(REGISTRY)
    data = s.to_dict()
    assert data["nato"] == "CTS" and data["nato_special"] == ["ATOMAL", "BOHEMIA"]
    assert data["aea"] == ["CNWDI", "DCNI", "RD", "SIGMA-14"]
    assert data["accm"] == ["TEA LEAF"] and data["nonic"] == ["LIMDIS", "SSI"]


def test_a_briefing_grants_the_levels_below_it() -> None:
    assert nato_levels_granted("NS") == ("NU", "NR", "NC", "NS")
    assert nato_levels_granted("NU") == ("NU",)
    assert nato_levels_granted(None) == ()
    assert "NATO:CTS" not in subject(nato="NS").authorizations


# -- grant rules -------------------------------------------------------------------------------

REFUSED = [
    ("nato-citizenship", {"nato": "NS", "citizenship": "JPN"}),
    ("nato-citizenship", {"nato_special": frozenset({"ATOMAL"}), "citizenship": "AUS"}),
    ("nato-clearance", {"nato": "CTS"}),
    ("nato-clearance", {"nato": "NR", "clearance": Level.U}),
    ("nato-controls", {"nato_special": frozenset({"ATOMAL"})}),
    ("nato-controls", {"nato": "NR", "nato_special": frozenset({"ATOMAL"})}),
    ("nato-controls", {"nato": "NS", "nato_special": frozenset({"BOHEMIA"})}),
    ("nato-controls", {"nato": "NS", "nato_special": frozenset({"BALK"})}),
    ("nato-known", {"nato": "NATO"}),
    ("nato-known", {"nato": "NS", "nato_special": frozenset({"COSMIC"})}),
    ("rd-requires-confidential", {"aea": frozenset({"RD"}), "clearance": Level.U}),
    ("cnwdi-requires-rd", {"aea": frozenset({"CNWDI"})}),
    ("cnwdi-requires-rd", {"aea": frozenset({"RD", "CNWDI"}), "clearance": Level.C}),
    ("sigma-requires-parent", {"aea": frozenset({"SIGMA-14"})}),
    ("sigma-level", {"aea": frozenset({"RD", "SIGMA-14"}), "clearance": Level.C}),
    ("sigma-range", {"aea": frozenset({"RD", "SIGMA-100"})}),
    ("sigma-range", {"aea": frozenset({"RD", "SIGMA-07"})}),
    ("sigma-range", {"aea": frozenset({"RD", "SIGMA-0"})}),
    ("aea-known", {"aea": frozenset({"FRD"})}),
    ("aea-known", {"aea": frozenset({"TFNI"})}),
    ("sap-multiple", {"sap": frozenset({"SAR-MULTIPLE"})}),
    ("sap-nickname", {"sap": frozenset({"SAR-BUTTERED POPCORN"})}),
    ("accm-registered", {"accm": frozenset({"PINE CONE"})}),
    ("accm-classified", {"accm": frozenset({"TEA LEAF"}), "clearance": Level.U}),
    ("nonic-known", {"nonic": frozenset({"SBU NOFORN"})}),
    ("nonic-known", {"nonic": frozenset({"EYES"})}),
]


@pytest.mark.parametrize(
    ("rule", "kwargs"), REFUSED, ids=[f"{r}-{i}" for i, (r, _) in enumerate(REFUSED)]
)
def test_each_refused_grant_names_its_rule(rule: str, kwargs: dict[str, object]) -> None:
    clearance = kwargs.pop("clearance", Level.S)
    with pytest.raises(InvalidInput) as info:
        subject(clearance, **kwargs).validate(REGISTRY)  # type: ignore[arg-type]
    message = str(info.value)
    assert f"rule {rule}" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert rule in GRANT_RULES


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nato": "NS", "citizenship": "FRA"},
        {"nato": "NS", "citizenship": "FIN"},
        {"nato": "NS", "citizenship": "SWE"},
        {"nato": "NC", "nato_special": frozenset({"ATOMAL"}), "citizenship": "GBR"},
        {"nato": "NU", "clearance": Level.U},
        {"aea": frozenset({"RD"}), "clearance": Level.C},
        {"aea": frozenset({"RD", "CNWDI", "SIGMA-3", "SIGMA-99"})},
        {"aea": frozenset({"DCNI", "UCNI"}), "clearance": Level.U},
        {"sap": frozenset({"HVSACO", "SAR-BP"})},
        {"accm": frozenset({"TEA LEAF"}), "clearance": Level.C},
        {"nonic": frozenset({"LIMDIS", "EXDIS", "NODIS", "SBU", "LES", "SSI", "AUSTEO"})},
        {"grants": frozenset({"DSEN", "ORCON"})},
    ],
)
def test_grants_the_rules_allow(kwargs: dict[str, object]) -> None:
    clearance = kwargs.pop("clearance", Level.S)
    subject(clearance, **kwargs).validate(REGISTRY)  # type: ignore[arg-type]


def test_no_nato_briefing_without_a_members_list() -> None:
    # The built-in registry has no NATO-MEMBERS: nobody can be briefed (fail closed).
    with pytest.raises(InvalidInput, match="rule nato-citizenship"):
        subject(nato="NS").validate(BUILTIN_REGISTRY)


# -- access, decided by the one evaluator ---------------------------------------------------

US_NS = subject(nato="NS")
GBR_NS = subject(nato="NS", citizenship="GBR")
US_ATOMAL = subject(nato="NS", nato_special=frozenset({"ATOMAL"}))
US_NC_ATOMAL = subject(nato="NC", nato_special=frozenset({"ATOMAL"}))
US_CTS_BOHEMIA = subject(Level.TS, nato="CTS", nato_special=frozenset({"BOHEMIA"}))
US_RD = subject(aea=frozenset({"RD"}))
US_RD_ALL = subject(aea=frozenset({"RD", "CNWDI", "SIGMA-14"}))
US_NU = subject(Level.C, nato="NU")
PLAIN_TS = subject(Level.TS)

ACCESS = [
    ("//NATO SECRET", [US_NS, US_ATOMAL, US_CTS_BOHEMIA], [PLAIN_TS, GBR_NS, US_NU]),
    ("//NATO SECRET//REL TO USA, GBR", [US_NS, GBR_NS], [PLAIN_TS, US_NU]),
    ("//NATO SECRET//ATOMAL", [US_ATOMAL], [US_NS, US_NC_ATOMAL, PLAIN_TS]),
    ("//NATO RESTRICTED", [US_NS, US_NC_ATOMAL], [US_NU, PLAIN_TS]),
    ("//NATO UNCLASSIFIED", [US_NU, US_NS], [PLAIN_TS]),
    ("//COSMIC TOP SECRET//BOHEMIA", [US_CTS_BOHEMIA], [US_ATOMAL, PLAIN_TS]),
    ("CONFIDENTIAL//FGI NATO", [US_NS, US_NC_ATOMAL], [US_NU, PLAIN_TS]),
    ("SECRET//RD//NOFORN", [US_RD, US_RD_ALL], [PLAIN_TS, US_NS]),
    ("SECRET//RD-CNWDI-SIGMA 14//NOFORN", [US_RD_ALL], [US_RD, PLAIN_TS]),
    ("SECRET//FRD//NOFORN", [US_RD, PLAIN_TS], [subject(Level.C)]),
    ("UNCLASSIFIED//DOD UCNI", [subject(Level.U, aea=frozenset({"DCNI"}))], [PLAIN_TS]),
    (
        "SECRET//NOFORN//ACCM-TEA LEAF",
        [subject(accm=frozenset({"TEA LEAF"}))],
        [PLAIN_TS, subject(accm=frozenset({"PINE CONE"}))],
    ),
    (
        "UNCLASSIFIED//LIMDIS",
        [subject(Level.U, nonic=frozenset({"LIMDIS"}))],
        [PLAIN_TS, subject(nonic=frozenset({"LIMDIS"}), citizenship="GBR")],
    ),
    (
        "SECRET//NOFORN//NODIS",
        [subject(nonic=frozenset({"NODIS"}))],
        [PLAIN_TS, subject(nonic=frozenset({"EXDIS"}))],
    ),
    (
        "UNCLASSIFIED//SBU NOFORN",
        [subject(Level.U, nonic=frozenset({"SBU"}))],
        [PLAIN_TS, subject(nonic=frozenset({"SBU"}), citizenship="GBR")],
    ),
    (
        "UNCLASSIFIED//DEA SENSITIVE",
        [subject(Level.U, grants=frozenset({"DSEN"}))],
        [PLAIN_TS, subject(grants=frozenset({"DSEN"}), citizenship="CAN")],
    ),
    ("SECRET//HVSACO", [subject(sap=frozenset({"HVSACO"}))], [PLAIN_TS]),
    (
        "SECRET//SAR-BUTTERED POPCORN",
        [subject(sap=frozenset({"SAR-BP"}))],
        [PLAIN_TS, subject(sap=frozenset({"SAR-GB"}))],
    ),
    (
        "SECRET//NOFORN//AUSTEO",
        [subject(nonic=frozenset({"AUSTEO"}))],
        [PLAIN_TS],
    ),
    (
        "TOP SECRET//SAR-MULTIPLE PROGRAMS",
        [],
        [subject(Level.TS, sap=frozenset({"SAR-BP", "SAR-GB", "SAR-TC"}))],
    ),
]


@pytest.mark.parametrize(("text", "readers", "others"), ACCESS, ids=[a[0] for a in ACCESS])
def test_who_reads_the_rest_of_the_register(
    text: str, readers: list[Subject], others: list[Subject]
) -> None:
    m = parse_marking(text, registry=REGISTRY)
    for s in readers:
        assert can_read(s, m, system_high=m), (text, s)
    for s in others:
        assert not can_read(s, m, system_high=m), (text, s)


def test_nato_secret_atomal_compiles_as_7_4_says() -> None:
    m = parse_marking("//NATO SECRET//ATOMAL")
    assert access_expression(m) == "CLS:S&CTRY:USA&NATO:ATOMAL&NATO:NS"


# -- no read up: the property, with briefings generated ---------------------------------------

NATO_RANK = {"NU": 0, "NR": 1, "NC": 2, "NS": 3, "CTS": 4}


@st.composite
def briefed_subjects(draw: st.DrawFn) -> Subject:
    """Any subject, briefings included, valid or not (the evaluator never sees the rules)."""
    return Subject(
        name="probe",
        clearance=draw(st.sampled_from([Level.U, Level.C, Level.S, Level.TS])),
        citizenship=draw(st.sampled_from(["USA", "GBR", "FRA", "JPN"])),
        sap=frozenset(draw(st.sets(st.sampled_from(["SAR-BP", "SAR-GB", "SAR-9", "HVSACO"])))),
        grants=frozenset(draw(st.sets(st.sampled_from(["DSEN", "ORCON", "PROPIN", "FISA"])))),
        nato=draw(st.sampled_from([None, *NATO_RANK])),
        nato_special=frozenset(draw(st.sets(st.sampled_from(["ATOMAL", "BOHEMIA", "BALK"])))),
        aea=frozenset(
            draw(
                st.sets(st.sampled_from(["RD", "CNWDI", "SIGMA-1", "SIGMA-14", "SIGMA-99", "DCNI"]))
            )
        ),
        accm=frozenset(draw(st.sets(st.sampled_from(["TEA LEAF", "PINE CONE"])))),
        nonic=frozenset(draw(st.sets(st.sampled_from(["LIMDIS", "EXDIS", "NODIS", "SBU", "LES"])))),
    )


def _briefings_cover(s: Subject, m: Marking) -> bool:
    """Section 7.4 written out from the marking's attributes (not from its expression)."""
    if m.nato and (s.nato is None or NATO_RANK[s.nato] < NATO_RANK[m.nato]):
        return False
    needed_aea = {"RD"} & m.aea | {"CNWDI"} & m.aea | {f"SIGMA-{n}" for n in m.sigma}
    needed_aea |= {"DCNI"} if "DOD UCNI" in m.aea else set()
    needed_aea |= {"UCNI"} if "DOE UCNI" in m.aea else set()
    needed_nonic = {c.split()[0] for c in m.nonic}
    us_only = m.dsen or bool(m.nonic & {"LIMDIS", "SBU NOFORN", "LES NOFORN"})
    return (
        not m.sap_multiple
        and m.nato_controls <= s.nato_special
        and needed_aea <= s.aea
        and (not m.hvsaco or "HVSACO" in s.sap)
        and {f"SAR-{p}" for p in m.sap} <= s.sap
        and m.accm <= s.accm
        and needed_nonic <= s.nonic
        and (not m.dsen or "DSEN" in s.grants)
        and (not us_only or s.citizenship == "USA")
        and s.clearance >= (Level.U if m.level == Level.CUI else m.level)
    )


@settings(deadline=None, max_examples=300)
@given(briefed_subjects(), markings())
def test_nobody_reads_without_the_briefings(s: Subject, m: Marking) -> None:
    if can_read(s, m, system_high=m):
        assert _briefings_cover(s, m), (s.authorizations, access_expression(m))


def test_the_property_sees_register_data_read() -> None:
    # The generator reaches readable register data too, so the property is not vacuous.
    from hypothesis import find

    find(
        st.tuples(briefed_subjects(), markings()),
        lambda pair: bool(
            (pair[1].nato or pair[1].aea or pair[1].accm or pair[1].nonic)
            and can_read(pair[0], pair[1], system_high=pair[1])
        ),
        settings=settings(deadline=None, database=None, max_examples=3000),
    )


# -- end to end: a workspace, ingested data, the library and the API ---------------------------

SYSTEM_HIGH = "SECRET//RD-CNWDI/ATOMAL//FGI NATO//NOFORN//ACCM-TEA LEAF"
#: file -> (text, who may read it)
DOCS = {
    "nato.txt": ("//NATO SECRET\n\n(//NS) The alliance convoy plan.\n\n//NATO SECRET\n", "NS"),
    "atomal.txt": (
        "//NATO SECRET//ATOMAL\n\n(//NS//ATOMAL) The alliance weapons annex.\n\n"
        "//NATO SECRET//ATOMAL\n",
        "ATOMAL",
    ),
    "rd.txt": ("SECRET//RD//NOFORN\n\n(S//RD//NF) The design note.\n\nSECRET//RD//NOFORN\n", "RD"),
    "accm.txt": (
        "SECRET//NOFORN//ACCM-TEA LEAF\n\n(S//NF//ACCM-TEA LEAF) The tea leaf notes.\n\n"
        "SECRET//NOFORN//ACCM-TEA LEAF\n",
        "ACCM",
    ),
    "plain.txt": ("SECRET\n\n(S) The ordinary memo.\n\nSECRET\n", "S"),
}
#: user -> (spec, the DOCS readers they are)
USERS: dict[str, tuple[SubjectSpec, set[str]]] = {
    "nina": (SubjectSpec(clearance="S", nato="NS"), {"NS", "S"}),
    "ahmed": (
        SubjectSpec(clearance="S", nato="NS", nato_special=("ATOMAL",)),
        {"NS", "ATOMAL", "S"},
    ),
    "gwen": (SubjectSpec(clearance="S", nato="NS", citizenship="GBR"), set()),
    "rudy": (SubjectSpec(clearance="S", aea=("RD",)), {"RD", "S"}),
    "tess": (SubjectSpec(clearance="S", accm=("tea leaf",)), {"ACCM", "S"}),
    "sam": (SubjectSpec(clearance="S"), {"S"}),
    "ada": (SubjectSpec(clearance="S", roles=("admin",)), {"S"}),
}


@dataclass
class Served:
    ws: Workspace
    client: TestClient
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("grants")
    ws = Workspace.init(root / "ws", system_high=SYSTEM_HIGH)
    system = ws.session()
    system.registry_add("accm", "TEA LEAF")
    folder = root / "in"
    folder.mkdir()
    for name, (text, _) in DOCS.items():
        (folder / name).write_text(text)
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    tokens = {}
    for name, (spec, _) in USERS.items():
        system.add_user(name, spec)
        tokens[name] = create_token(system, name, 30)[1]
    # The API with the web UI mounted at /ui.
    with TestClient(create_web_app(ws.root), raise_server_exceptions=False) as client:
        yield Served(ws, client, tokens)
    ws.close()


def _expected(user: str) -> set[str]:
    return {name for name, (_, reader) in DOCS.items() if reader in USERS[user][1]}


def test_every_document_parsed(served: Served) -> None:
    listed = Documents(served.ws.session()).list()
    assert {d["filename"]: d["status"] for d in listed} == dict.fromkeys(DOCS, "parsed")
    shown = {d["filename"]: d["marking"] for d in listed}
    assert shown["atomal.txt"] == "//NATO SECRET//ATOMAL"


@pytest.mark.parametrize("user", list(USERS))
def test_the_library_shows_each_user_what_their_briefings_allow(served: Served, user: str) -> None:
    listed = Documents(served.ws.session(user)).list()
    assert {d["filename"] for d in listed} == _expected(user)


@pytest.mark.parametrize("user", list(USERS))
def test_the_api_shows_each_user_what_their_briefings_allow(served: Served, user: str) -> None:
    headers = {"Authorization": f"Bearer {served.tokens[user]}"}
    page = served.client.get("/v1/documents", headers=headers)
    assert page.status_code == 200
    assert {d["filename"] for d in page.json()["items"]} == _expected(user)
    me = served.client.get("/v1/me", headers=headers).json()
    assert me["nato"] == USERS[user][0].nato
    assert ("NATO:NS" in me["authorizations"]) == (USERS[user][0].nato == "NS")


def test_a_document_above_the_briefing_answers_like_a_missing_one(served: Served) -> None:
    system = Documents(served.ws.session()).list()
    atomal = next(d["id"] for d in system if d["filename"] == "atomal.txt")
    headers = {"Authorization": f"Bearer {served.tokens['nina']}"}
    forbidden = served.client.get(f"/v1/documents/{atomal}", headers=headers)
    missing = served.client.get(f"/v1/documents/{'0' * 64}", headers=headers)
    assert forbidden.status_code == missing.status_code == 404
    assert "atomal" not in forbidden.text.lower()


def test_losing_a_briefing_loses_the_data(served: Served) -> None:
    system = served.ws.session()
    system.add_user("lena", SubjectSpec(clearance="S", nato="NS", nato_special=("ATOMAL",)))
    assert "atomal.txt" in {d["filename"] for d in Documents(served.ws.session("lena")).list()}
    system.update_user("lena", SubjectSpec(nato_special=()))
    names = {d["filename"] for d in Documents(served.ws.session("lena")).list()}
    assert "atomal.txt" not in names and "nato.txt" in names
    system.update_user("lena", SubjectSpec(nato=""))
    assert "nato.txt" not in {d["filename"] for d in Documents(served.ws.session("lena")).list()}


def test_refused_grants_change_nothing(served: Served, tmp_path: Path) -> None:
    system = served.ws.session()
    size = served.ws.audit.size
    with pytest.raises(InvalidInput, match="rule nato-citizenship"):
        system.add_user("jun", SubjectSpec(clearance="S", nato="NS", citizenship="JPN"))
    with pytest.raises(InvalidInput, match="rule accm-registered"):
        system.update_user("sam", SubjectSpec(accm=("PINE CONE",)))
    with pytest.raises(InvalidInput, match="rule cnwdi-requires-rd"):
        system.update_user("sam", SubjectSpec(aea=("CNWDI",)))
    assert served.ws.audit.size == size
    assert system.get_user("sam").accm == frozenset()


def test_the_admin_users_page_shows_the_briefings(served: Served) -> None:
    page = served.client.get("/ui/login")
    form = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    served.client.post("/ui/login", data={"token": served.tokens["ada"], "csrf": form})
    users = served.client.get("/ui/users")
    assert users.status_code == 200
    assert "Briefings" in users.text and "NATO NS, ATOMAL" in users.text
    assert "TEA LEAF" in users.text
