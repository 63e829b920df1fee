"""The rest of the register (MARKINGS.md section 7) as ingest recognizes it, in every format.

Each class is tried in every format ingest reads (plain text, Markdown, HTML, DOCX, PPTX, XLSX,
CSV, PDF, e-mail), each document generated here and small: non-US, NATO and JOINT portions that
start with ``(//``, banners such as ``//NATO SECRET//ATOMAL`` or ``SECRET//RD-SIGMA 14 18//NOFORN``
(also in mixed case), marks in table cells and headings; the document's roll-up is the
register's join. Invalid forms quarantine (never read as UNCLASSIFIED). End to end, an
UNCLASSIFIED reader sees none of the marked text, through the document list, a document read or
search.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest

from garrison.core.errors import NotFound
from garrison.core.records import ParsedDocument
from garrison.ingest import MarkedDocument, apply_markings
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.parse import parse_bytes
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.security.markings import Marking, dominates, join, parse_marking
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.api.conftest import FAST
from tests.parse.test_pdf import make_pdf

#: Dominates every positive case below (two programs only: a banner writes three or more as
#: SAR-MULTIPLE PROGRAMS, which a workspace's system high cannot be).
SYSTEM_HIGH_TEXT = (
    "TOP SECRET//SI/TK/BOHEMIA//SAR-BP/GB//RD-CNWDI-SIGMA 3 14 18/ATOMAL//FGI NATO//NOFORN"
    "//NODIS/LES/ACCM-PINE CONE/TEA LEAF"
)
SYSTEM_HIGH = join(parse_marking(SYSTEM_HIGH_TEXT), parse_marking("(TS//SAR-TC)"))
SYSTEM_HIGH_ALL = join(SYSTEM_HIGH, parse_marking("(TS//NF//XD)"), parse_marking("(//GBR S//SI)"))
DEFAULT = parse_marking("UNCLASSIFIED")
CANARY = "heron quill 4471"
#: The unmarked paragraph under a marked heading (HTML, DOCX): its section carries the mark.
FOLLOWS = "Details of the plan follow below."

Portions = list[tuple[str, str]]

# -- documents in every format --------------------------------------------------------------------


def _text(banner: str | None, portions: Portions) -> bytes:
    body = "\n\n".join(f"{m} {t}" for m, t in portions)
    return (f"{banner}\n\n{body}\n\n{banner}\n" if banner else body + "\n").encode()


def _markdown(banner: str | None, portions: Portions) -> bytes:
    """Marks after a list bullet and in bold; the last in a Markdown table cell."""
    *items, (mark, text) = portions
    body = "\n".join(f"- **{m}** {t}" for m, t in items)
    table = f"| note | more |\n|---|---|\n| {mark} {text} | x |"
    edge = f"{banner}\n\n" if banner else ""
    return f"{edge}{body}\n\n{table}\n\n{banner or ''}\n".encode()


def _html(banner: str | None, portions: Portions) -> bytes:
    """The first mark on a heading above an unmarked paragraph, the others in table cells."""
    edge = f"<p>{banner}</p>" if banner else ""
    rows = "".join(f"<tr><td>{m} {t}</td><td>x</td></tr>" for m, t in portions[1:])
    first, text = portions[0]
    return (
        f"<html><body>{edge}<h2>{first} {text}</h2><p>{FOLLOWS}</p>"
        f"<table>{rows}</table>{edge}</body></html>"
    ).encode()


def _docx(banner: str | None, portions: Portions) -> bytes:
    import docx

    document = docx.Document()
    if banner:
        document.sections[0].header.paragraphs[0].text = banner
        document.sections[0].footer.paragraphs[0].text = banner
    first, text = portions[0]
    document.add_heading(f"{first} {text}", 1)
    document.add_paragraph(FOLLOWS)
    table = document.add_table(rows=max(1, len(portions) - 1), cols=1)
    for i, (mark, cell) in enumerate(portions[1:]):
        table.cell(i, 0).text = f"{mark} {cell}"
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def _pptx(banner: str | None, portions: Portions) -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = banner or "Slide"
    box = slide.shapes.add_textbox(Inches(1), Inches(1.5), Inches(6), Inches(1))
    box.text_frame.text = f"{portions[0][0]} {portions[0][1]}"
    rows = max(1, len(portions) - 1)
    table = slide.shapes.add_table(rows, 1, Inches(1), Inches(3), Inches(6), Inches(2)).table
    for i, (mark, cell) in enumerate(portions[1:]):
        table.cell(i, 0).text = f"{mark} {cell}"
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def _xlsx(banner: str | None, portions: Portions) -> bytes:
    import openpyxl  # type: ignore[import-untyped]

    book = openpyxl.Workbook()
    sheet = book.active
    if banner:
        sheet.oddHeader.center.text = banner
        sheet.oddFooter.center.text = banner
    sheet.append(["id", "note"])
    for i, (mark, text) in enumerate(portions):
        sheet.append([str(i), f"{mark} {text}"])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _csv(banner: str | None, portions: Portions) -> bytes:
    rows = ["id,note", *(f'{i},"{m} {t}"' for i, (m, t) in enumerate(portions))]
    edge = [banner] if banner else []
    return ("\n".join(edge + rows + edge) + "\n").encode()


def _pdf(banner: str | None, portions: Portions) -> bytes:
    lines = [(200.0, 760.0, 10.0, banner)] if banner else []
    for i, (mark, text) in enumerate(portions):
        lines.append((72.0, 700.0 - 30 * i, 10.0, f"{mark} {text}"))
    if banner:
        lines.append((200.0, 20.0, 10.0, banner))
    return make_pdf(lines)


def _eml(banner: str | None, portions: Portions) -> bytes:
    """The first mark on the subject too; the body as a text document."""
    message = EmailMessage()
    message["From"] = "a@example.org"
    message["To"] = "b@example.org"
    message["Subject"] = f"{portions[0][0]} Weekly summary"
    body = "\n\n".join(f"{m} {t}" for m, t in portions)
    message.set_content(f"{banner}\n\n{body}\n\n{banner}\n" if banner else body + "\n")
    return message.as_bytes()


FORMATS: dict[str, Callable[[str | None, Portions], bytes]] = {
    "txt": _text,
    "md": _markdown,
    "html": _html,
    "docx": _docx,
    "pptx": _pptx,
    "xlsx": _xlsx,
    "csv": _csv,
    "pdf": _pdf,
    "eml": _eml,
}


def ingest(fmt: str, banner: str | None, portions: Portions) -> MarkedDocument:
    name = f"doc.{fmt}"
    parsed: ParsedDocument = parse_bytes(FORMATS[fmt](banner, portions), filename=name)
    return apply_markings(parsed, default=DEFAULT, system_high=SYSTEM_HIGH, names=(name,))


def canary_markings(result: MarkedDocument) -> list[Marking]:
    """The marking of every element or table cell holding the canary (at least one)."""
    found: list[Marking] = []
    for element in result.elements:
        if CANARY in element.text:
            found.append(element.marking)
        for cell in element.parsed.table_cells:
            if CANARY in cell.text:
                assert cell.marking is not None
                found.append(parse_marking(cell.marking))
    assert found, "the canary is not in any element"
    return found


# -- what is recognised -------------------------------------------------------------------------

#: (banner line or None, portions with the canary in the first, the document's marking).
POSITIVE: dict[str, tuple[str | None, Portions, str]] = {
    "nato-atomal": (
        "//NATO SECRET//ATOMAL",
        [("(//NS//ATOMAL)", CANARY), ("(//NU)", "a routine note")],
        "//NATO SECRET//ATOMAL",
    ),
    "nato-cts-bohemia-alias": (
        "//COSMIC TOP SECRET//BOHEMIA",
        [("(//CTS-B)", CANARY), ("(//NS)", "a routine note")],
        "//COSMIC TOP SECRET//BOHEMIA",
    ),
    "nato-in-us": (
        None,
        [("(//NS)", CANARY), ("(S//NF)", "a routine note")],
        "SECRET//FGI NATO//NOFORN",
    ),
    "joint": (
        "//JOINT SECRET CAN USA//REL TO USA, CAN",
        [("(//JOINT S CAN USA//REL TO USA, CAN)", CANARY), ("(//JOINT S//REL)", "a routine note")],
        "//JOINT SECRET CAN USA//REL TO USA, CAN",
    ),
    "deu-owner": (
        "SECRET//FGI DEU//REL TO USA, DEU",
        [("(//DEU S//REL TO USA, DEU)", CANARY), ("(S//REL TO USA, DEU, GBR)", "a routine note")],
        "SECRET//FGI DEU//REL TO USA, DEU",
    ),
    "fgi-owners": (
        "SECRET//FGI DEU GBR",
        [("(//GBR C)", CANARY), ("(//DEU S)", "a routine note")],
        "SECRET//FGI DEU GBR",
    ),
    "rd-sigma": (
        "SECRET//RD-SIGMA 14 18//NOFORN",
        [("(S//RD-SG 14//NF)", CANARY), ("(S//FRD-SG 18//NF)", "a routine note")],
        "SECRET//RD-SIGMA 14 18//NOFORN",
    ),
    "sbu-noforn": (
        "UNCLASSIFIED//SBU NOFORN",
        [("(U//SBU-NF)", CANARY), ("(U//FOUO)", "a routine note")],
        "UNCLASSIFIED//SBU NOFORN",
    ),
    "sap-multiple": (
        "TOP SECRET//SAR-MULTIPLE PROGRAMS",
        [("(TS//SAR-BP)", CANARY), ("(S//SAR-GB)", "a routine note"), ("(S//SAR-TC)", "more")],
        "TOP SECRET//SAR-MULTIPLE PROGRAMS",
    ),
    "mixed-case-nato": (
        "//Nato Secret//Atomal",
        [("(//ns//atomal)", CANARY), ("(//Nu)", "a routine note")],
        "//NATO SECRET//ATOMAL",
    ),
    "mixed-case-fgi": (
        "Secret//Fgi Deu Gbr",
        [("(//gbr c)", CANARY), ("(//Deu S)", "a routine note")],
        "SECRET//FGI DEU GBR",
    ),
}


@pytest.mark.parametrize("case", sorted(POSITIVE))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_new_forms_are_recognised_in_every_format(fmt: str, case: str) -> None:
    banner, portions, expected = POSITIVE[case]
    result = ingest(fmt, banner, portions)
    assert result.status == "parsed", result.findings
    assert result.marking is not None
    assert result.marking.banner() == expected
    if banner is not None:
        assert result.banner is not None and result.banner.banner() == expected
    # The canary's own mark (or, under a marked heading, the banner) covers it; the mark and the
    # banner lines are stripped from the text.
    floor = parse_marking(portions[0][0])
    for marking in canary_markings(result):
        assert dominates(marking, floor), marking.banner()
        assert marking.level.is_classified or case == "sbu-noforn"
    for element in result.elements:
        if element.text == FOLLOWS:  # under the canary's heading: the heading's mark goes along
            assert element.section_markings and dominates(element.section_markings[-1], floor)
    assert not {"under-marked", "over-marked", "invalid-marking"} & {
        f.kind for f in result.findings
    }
    texts = [e.text for e in result.elements]
    assert not any(t.lstrip().startswith("(//") or t.strip() == banner for t in texts)


def test_the_roll_up_is_the_registers_join() -> None:
    """Without a banner, the document is the join of its portions (section 7.5's examples)."""
    examples = [
        (["(//NS//ATOMAL)", "(S//RD//NF)"], "SECRET//RD/ATOMAL//FGI NATO//NOFORN"),
        (["(//NR)", "(U)"], "CONFIDENTIAL//FGI NATO"),
        (["(//FGI S//NF)", "(//GBR C//REL TO USA, GBR)"], "SECRET//FGI//NOFORN"),
        (["(S//NF//XD)", "(C//NF//ND)"], "SECRET//NOFORN//NODIS"),
        (["(S//ACCM-TEA LEAF)", "(C//ACCM-PINE CONE)"], "SECRET//ACCM-PINE CONE/TEA LEAF"),
        (["(S//HVSACO)", "(S//SAR-BP)"], "SECRET//SAR-BP"),
        (["(U//DCNI)", "(U)"], "UNCLASSIFIED//DOD UCNI"),
    ]
    for marks, expected in examples:
        portions = [(m, f"paragraph {i}") for i, m in enumerate(marks)]
        result = ingest("txt", None, portions)
        assert result.status == "parsed" and result.marking is not None
        assert result.marking.banner() == expected
        # ... and the banner the rules write is neither under- nor over-marked.
        banner = ingest("txt", expected, portions)
        assert banner.status == "parsed"
        assert not {"under-marked", "over-marked"} & {f.kind for f in banner.findings}


def test_multiple_programs_resolve_to_the_portions_programs() -> None:
    banner, portions, _ = POSITIVE["sap-multiple"]
    result = ingest("txt", banner, portions)
    assert result.banner is not None and not result.banner.sap_multiple
    assert result.banner.sap == {"BP", "GB", "TC"}
    assert result.marking is not None and result.marking.sap == {"BP", "GB", "TC"}
    assert "SAP:MULTIPLE" not in str(result.marking.to_dict())


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_multiple_programs_over_fewer_than_three_fails_closed(fmt: str) -> None:
    portions = [("(TS//SAR-BP)", CANARY), ("(S//SAR-GB)", "a routine note")]
    result = ingest(fmt, "TOP SECRET//SAR-MULTIPLE PROGRAMS", portions)
    assert result.status in ("quarantined", "spilled")
    assert result.elements == () and result.marking is None
    assert any("sap-multiple" in f.detail for f in result.findings)


@pytest.mark.parametrize(
    ("mark", "kind"),
    [("(S//COMINT//NF)", "legacy-marking"), ("(S//RD-SG 3//NF)", "legacy-sigma")],
)
@pytest.mark.parametrize("fmt", ["txt", "docx", "csv"])
def test_legacy_forms_are_read_with_a_finding(fmt: str, mark: str, kind: str) -> None:
    result = ingest(fmt, None, [(mark, CANARY), ("(U)", "a routine note")])
    assert result.status == "parsed"
    assert kind in {f.kind for f in result.findings}
    assert all(CANARY not in f.detail and mark not in f.detail for f in result.findings)


def test_a_legacy_banner_line_gives_the_finding_too() -> None:
    result = ingest("txt", "SECRET//COMINT//NOFORN", [("(S//SI//NF)", CANARY)])
    assert result.status == "parsed" and result.banner == parse_marking("SECRET//SI//NOFORN")
    assert "legacy-marking" in {f.kind for f in result.findings}


# -- what fails closed --------------------------------------------------------------------------

#: Invalid portions (rule each breaks): the document is quarantined, never read as U.
INVALID_PORTIONS = {
    "(//NS//NF)": "nato-no-noforn",
    "(//NR//ATOMAL)": "nato-controls",
    "(//NSX)": "",
    "(//FGI GBR S)": "fgi-concealed-alone",
    "(//DEU S//RELIDO)": "foreign-no-relido",
    "(//JOINT S USA//REL TO USA, GBR)": "joint-list",
    "(S//SAR-MULTIPLE PROGRAMS)": "sap-multiple",
    "(//ns//nf)": "nato-no-noforn",
}


@pytest.mark.parametrize("mark", sorted(INVALID_PORTIONS))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_invalid_new_portions_quarantine(fmt: str, mark: str) -> None:
    result = ingest(fmt, None, [(mark, CANARY), ("(U)", "a routine note")])
    assert result.status == "quarantined" and result.reason == "invalid-marking"
    assert result.elements == () and result.marking is None
    details = [f.detail for f in result.findings if f.kind == "invalid-marking"]
    assert details and any(INVALID_PORTIONS[mark] in d for d in details)
    assert all(CANARY not in f.detail for f in result.findings)


INVALID_BANNERS = {
    "//NATO RESTRICTED//ATOMAL": "nato-controls",
    "//JOINT SECRET CAN GBR USA//REL TO USA, CAN": "joint-needs-relto",
    "SECRET//SBU": "nonic-unclassified",
    "//Nato Secret//NoForn": "nato-no-noforn",
}


@pytest.mark.parametrize("banner", sorted(INVALID_BANNERS))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_invalid_new_banners_quarantine(fmt: str, banner: str) -> None:
    result = ingest(fmt, banner, [("(U)", CANARY)])
    assert result.status == "quarantined" and result.reason == "invalid-marking"
    assert result.elements == ()
    assert any(INVALID_BANNERS[banner] in f.detail for f in result.findings)


@pytest.mark.parametrize("line", ["// joint venture notes follow", "//Nato helpers below"])
def test_comment_lines_that_start_with_an_owner_word_stay_text(line: str) -> None:
    result = ingest("txt", None, [("(U)", f"first\n{line}")])
    assert result.status == "parsed" and result.marking == DEFAULT


# -- end to end: stored, rolled up, and invisible to an UNCLASSIFIED reader -----------------------

#: Each format gets the NATO case and one other, so every case reaches the catalog somewhere.
E2E_CASES = [c for c in sorted(POSITIVE) if c not in ("nato-atomal", "sap-multiple")]


def _e2e_files() -> dict[str, tuple[bytes, str]]:
    files: dict[str, tuple[bytes, str]] = {}
    for i, fmt in enumerate(sorted(FORMATS)):
        for case in ("nato-atomal", E2E_CASES[i % len(E2E_CASES)]):
            banner, portions, expected = POSITIVE[case]
            files[f"{case}.{fmt}"] = (FORMATS[fmt](banner, portions), expected)
        data = FORMATS[fmt](None, [("(//NS//NF)", CANARY), ("(U)", "a routine note")])
        files[f"invalid.{fmt}"] = (data, "")
    return files


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, dict[str, str]]]:
    root = tmp_path_factory.mktemp("register")
    ws = Workspace.init(root / "ws", system_high=SYSTEM_HIGH_TEXT)
    folder = root / "in"
    folder.mkdir()
    expected: dict[str, str] = {}
    for name, (data, marking) in _e2e_files().items():
        (folder / name).write_bytes(data)
        expected[name] = marking
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    system.add_user("una", SubjectSpec(clearance="U", roles=("viewer",)))
    system.add_user("sam", SubjectSpec(clearance="S", roles=("viewer",)))
    yield ws, expected
    ws.close(checkpoint=False)


def test_the_catalog_holds_each_documents_roll_up(e2e: tuple[Workspace, dict[str, str]]) -> None:
    ws, expected = e2e
    docs = {d["filename"]: d for d in Documents(ws.session()).list()}
    for name, marking in expected.items():
        assert name in docs, name
        if marking:
            assert docs[name]["status"] == "parsed", name
            assert docs[name]["marking"] == marking, name
        else:
            assert docs[name]["status"] == "quarantined", name


def test_an_unclassified_reader_sees_none_of_it(e2e: tuple[Workspace, dict[str, str]]) -> None:
    ws, expected = e2e
    ids = {d["filename"]: d["id"] for d in Documents(ws.session()).list()}
    una = ws.session("una")
    assert not {d["filename"] for d in Documents(una).list()} & set(expected)
    for name in expected:
        with pytest.raises(NotFound):
            Documents(una).show(ids[name], elements=True)
    for word in ("heron", "quill", "4471"):
        hits = search(una, word, k=50).hits
        # Nearest neighbours may be any chunk the reader may read: never one holding the canary.
        assert all(h.marking == "UNCLASSIFIED" for h in hits)
        assert not any(w in h.snippet for h in hits for w in ("heron", "quill", "4471"))
    # The system finds the canary: the search above would have found it.
    found = search(ws.session(), "heron quill", k=50).hits
    assert any("heron" in h.snippet for h in found)


def test_a_secret_reader_sees_only_what_its_terms_allow(
    e2e: tuple[Workspace, dict[str, str]],
) -> None:
    """A SECRET US reader without NATO, AEA or SAP terms reads the JOINT, owner and FGI
    documents, and nothing NATO, RD or SAP."""
    ws, expected = e2e
    seen = {d["filename"]: d["marking"] for d in Documents(ws.session("sam")).list()}
    for name, marking in seen.items():
        assert name in expected and expected[name] == marking
        parsed = parse_marking(marking)
        assert not parsed.nato and not parsed.nato_controls and not parsed.aea
        assert not parsed.sap and not parsed.nonic
        assert "FGI NATO" not in marking
    assert any("JOINT" in m for m in seen.values())
    for hit in search(ws.session("sam"), "heron quill", k=50).hits:
        marking = parse_marking(hit.marking)
        assert not marking.nato and not marking.aea and "NATO" not in marking.banner()


@pytest.mark.parametrize(
    ("high", "mark", "covered"),
    [
        ("SECRET//NOFORN", "(U//SBU-NF)", True),
        ("SECRET//NOFORN", "(U//DS)", True),
        ("SECRET//NOFORN", "(U//DCNI)", True),
        ("TOP SECRET//NOFORN//NODIS", "(S//NF//XD)", True),
        ("SECRET//SAR-BP", "(S//HVSACO)", True),
        # What the line shows still counts: no SIGMA, no other program, no EXDIS on a plain line.
        ("SECRET//NOFORN", "(S//NF//XD)", False),
        ("SECRET//SAR-BP", "(S//SAR-GB)", False),
        ("SECRET//RD//NOFORN", "(S//RD-SG 14//NF)", False),
        ("SECRET//NOFORN", "(//NS)", False),
        ("UNCLASSIFIED", "(U//SBU)", False),
    ],
)
def test_a_system_high_holds_what_its_banner_line_covers(
    high: str, mark: str, covered: bool
) -> None:
    """A system high is a banner line: the controls section 7.3 leaves off a line it covers
    (SBU, LIMDIS, UCNI on a classified system, EXDIS under NODIS, HVSACO beside a program) are
    no spill, and anything the line would show is."""
    result = apply_markings(
        parse_bytes(f"{mark} {CANARY}\n".encode(), filename="a.txt"),
        default=DEFAULT,
        system_high=parse_marking(high),
    )
    assert (result.status == "parsed") is covered
    if not covered:
        assert result.status == "spilled"


# -- markings stated in IC-ISM attributes (XML) ---------------------------------------------------

ISM = "urn:us:gov:ic:ism"


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ('ism:classification="S" ism:ownerProducer="NATO"', "//NATO SECRET"),
        (
            'ism:classification="TS" ism:ownerProducer="NATO" ism:SCIcontrols="BOHEMIA"',
            "//COSMIC TOP SECRET//BOHEMIA",
        ),
        # A foreign owner keeps the categories it states: SCI is never dropped.
        ('ism:classification="S" ism:ownerProducer="GBR" ism:SCIcontrols="SI"', "//GBR SECRET//SI"),
        (
            'ism:classification="S" ism:ownerProducer="GBR USA" '
            'ism:disseminationControls="REL" ism:releasableTo="USA GBR"',
            "//JOINT SECRET GBR USA//REL TO USA, GBR",
        ),
        (
            'ism:classification="S" ism:FGIsourceOpen="GBR DEU" ism:disseminationControls="NF"',
            "SECRET//FGI DEU GBR//NOFORN",
        ),
        (
            'ism:classification="S" ism:disseminationControls="NF" ism:nonICmarkings="XD"',
            "SECRET//NOFORN//EXDIS",
        ),
        (
            'ism:classification="S" ism:atomicEnergyMarkings="RD" ism:disseminationControls="NF"',
            "SECRET//RD//NOFORN",
        ),
    ],
)
def test_ism_attributes_state_the_register(attrs: str, expected: str) -> None:
    xml = (f'<?xml version="1.0"?><doc xmlns:ism="{ISM}"><p {attrs}>{CANARY}</p></doc>').encode()
    parsed = parse_bytes(xml, filename="a.xml")
    (stated,) = [e.declared_marking for e in parsed.elements if CANARY in e.text]
    assert stated is not None and parse_marking(stated).banner() == expected
    result = apply_markings(parsed, default=DEFAULT, system_high=SYSTEM_HIGH_ALL)
    assert result.status == "parsed", result.findings
    # The element holding the canary is marked at least as stated (joined with what else the
    # element holds), and so is the document.
    floor = parse_marking(expected)
    assert all(dominates(m, floor) for m in canary_markings(result))
    assert result.marking is not None and dominates(result.marking, floor)


def test_an_invalid_ism_statement_quarantines() -> None:
    xml = (
        f'<?xml version="1.0"?><doc xmlns:ism="{ISM}">'
        f'<p ism:classification="S" ism:ownerProducer="NATO" '
        f'ism:disseminationControls="NF">{CANARY}</p></doc>'
    ).encode()
    result = apply_markings(
        parse_bytes(xml, filename="a.xml"), default=DEFAULT, system_high=SYSTEM_HIGH_ALL
    )
    assert result.status == "quarantined" and result.reason == "invalid-marking"
    assert any("nato-no-noforn" in f.detail for f in result.findings)
