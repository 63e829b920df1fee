"""``garrison marking check|rollup|expr`` on the rest of the register, with and without --json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from garrison.cli._marking import app
from garrison.cli.main import main
from garrison.core.errors import MarkingError

#: Section 7.5's invalid forms and the rule each breaks.
INVALID = {
    "//NATO RESTRICTED//ATOMAL": "nato-controls",
    "//NATO SECRET//BOHEMIA": "nato-controls",
    "(//NS//NF)": "nato-no-noforn",
    "UNCLASSIFIED//RD": "rd-requires-confidential",
    "CONFIDENTIAL//RD-CNWDI": "cnwdi-requires-rd",
    "SECRET//FRD-CNWDI": "cnwdi-requires-rd",
    "CONFIDENTIAL//RD-SIGMA 14": "sigma-level",
    "SECRET//RD-SIGMA 100": "sigma-range",
    "SECRET//FRD-SIGMA 14//REL TO USA, GBR": "sigma-no-release",
    "SECRET//DOD UCNI": "ucni-unclassified",
    "TOP SECRET//FGI GBR USA": "fgi-no-usa",
    "(//FGI GBR S)": "fgi-concealed-alone",
    "(//DEU S//RELIDO)": "foreign-no-relido",
    "//JOINT SECRET USA//REL TO USA, GBR": "joint-list",
    "//JOINT RESTRICTED GBR USA//REL TO USA, GBR": "joint-list",
    "//JOINT SECRET CAN GBR USA//REL TO USA, CAN": "joint-needs-relto",
    "SECRET//EXDIS": "exdis-nodis-noforn",
    "SECRET//NOFORN//EXDIS/NODIS": "exdis-nodis-exclusive",
    "SECRET//SBU": "nonic-unclassified",
    "UNCLASSIFIED//LES/LES NOFORN": "nonic-nf-exclusive",
    "UNCLASSIFIED//ACCM-TEA LEAF": "accm-classified",
    "(S//SAR-MULTIPLE PROGRAMS)": "sap-multiple",
    "SECRET//SAR-BP/HVSACO": "hvsaco-non-sap",
    "SECRET//WAIVED": "waived-needs-sap",
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Through the command line's entry point: its error line and exit code (slow: it builds
    every command group)."""
    code = main(["marking", *args])
    out, err = capsys.readouterr()
    return code, out, err


def invoke(*args: str) -> Result:
    """The ``marking`` group alone (fast); a marking error comes back as ``result.exception``."""
    return CliRunner().invoke(app, list(args))


def run_json(_: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("marking", sorted(INVALID))
@pytest.mark.parametrize("command", ["check", "expr", "rollup"])
def test_invalid_forms_name_the_rule(command: str, marking: str) -> None:
    rule = INVALID[marking]
    plain = invoke(command, marking)
    assert isinstance(plain.exception, MarkingError) and plain.exception.rule == rule
    assert plain.stdout == ""
    result = invoke(command, marking, "--json")
    assert isinstance(result.exception, MarkingError) and result.exception.rule == rule
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "invalid-marking" and error["rule"] == rule
    assert error["input"] == marking and error["message"]


@pytest.mark.parametrize(
    "marking", ["(//NS//NF)", "SECRET//RD-SIGMA 100", "//JOINT SECRET USA//REL TO USA, GBR"]
)
def test_invalid_forms_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], marking: str
) -> None:
    rule = INVALID[marking]
    code, out, err = run(capsys, "check", marking)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("garrison: ")
    assert err.rstrip().endswith(f"(rule: {rule})")
    code, out, err = run(capsys, "rollup", "(U)", marking, "--json")
    assert code == 2
    assert err.count("\n") == 1 and err.rstrip().endswith(f"(rule: {rule})")
    assert json.loads(out)["error"]["rule"] == rule


def test_check_json_nato_atomal(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "check", "//nato secret//atomal")
    assert data["input"] == "//nato secret//atomal"
    assert data["marking"] == "//NATO SECRET//ATOMAL"
    assert data["portion"] == "(//NS//ATOMAL)"
    fields = data["fields"]
    assert fields["kind"] == "NATO" and fields["nato"] == "NS"
    assert (fields["level"], fields["us_level"]) == ("NATO SECRET", "SECRET")
    assert fields["nato_controls"] == ["ATOMAL"] and fields["aea"] == []
    assert data["findings"] == []
    assert data["expression"] == "CLS:S&CTRY:USA&NATO:ATOMAL&NATO:NS"
    assert data["marking_detail"]["register"]["nato"] == "NS"


def test_check_json_joint_and_foreign_owners(capsys: pytest.CaptureFixture[str]) -> None:
    joint = run_json(capsys, "check", "(//JOINT S CAN USA//REL TO USA, CAN)")
    assert joint["marking"] == "//JOINT SECRET CAN USA//REL TO USA, CAN"
    fields = joint["fields"]
    assert fields["kind"] == "JOINT" and fields["joint"] == ["CAN", "USA"]
    assert fields["rel_to"] == ["USA", "CAN"] and fields["us_level"] == "SECRET"
    assert joint["expression"] == "(CTRY:CAN|CTRY:USA)&CLS:S"

    deu = run_json(capsys, "check", "(//DEU R)")
    assert deu["marking"] == "//DEU RESTRICTED"
    assert (deu["fields"]["level"], deu["fields"]["us_level"]) == ("RESTRICTED", "CONFIDENTIAL")
    assert deu["fields"]["owners"] == ["DEU"] and deu["fields"]["kind"] == "NONUS"

    fgi = run_json(capsys, "check", "secret//fgi gbr deu")
    assert fgi["marking"] == "SECRET//FGI DEU GBR"
    assert fgi["fields"]["fgi"] == ["DEU", "GBR"] and not fgi["fields"]["fgi_concealed"]
    concealed = run_json(capsys, "check", "(//FGI S)")
    assert concealed["fields"]["fgi_concealed"] is True


def test_check_json_atomic_energy_sap_accm_and_nonic(capsys: pytest.CaptureFixture[str]) -> None:
    rd = run_json(capsys, "check", "TOP SECRET//RD-CNWDI-SIGMA 20 14//NOFORN")
    assert rd["marking"] == "TOP SECRET//RD-CNWDI-SIGMA 14 20//NOFORN"
    assert rd["portion"] == "(TS//RD-CNWDI-SG 14 20//NF)"
    assert set(rd["fields"]["aea"]) == {"RD", "CNWDI"} and rd["fields"]["sigma"] == [14, 20]
    assert rd["fields"]["dissem"] == ["NOFORN"]
    assert "AEA:SIGMA-20" in rd["expression"] and "AEA:CNWDI" in rd["expression"]

    sap = run_json(capsys, "check", "TOP SECRET//SPECIAL ACCESS REQUIRED-BP/SAR-GB")
    assert sap["marking"] == "TOP SECRET//SAR-BP/GB"
    assert sap["fields"]["sap"] == ["BP", "GB"] and not sap["fields"]["sap_multiple"]
    multiple = run_json(capsys, "check", "TOP SECRET//SAR-MULTIPLE PROGRAMS")
    assert multiple["fields"]["sap_multiple"] is True
    assert "SAP:MULTIPLE" in multiple["expression"]

    accm = run_json(capsys, "check", "SECRET//ACCM-TEA LEAF/PINE CONE")
    assert accm["marking"] == "SECRET//ACCM-PINE CONE/TEA LEAF"
    assert accm["fields"]["accm"] == ["PINE CONE", "TEA LEAF"]
    assert '"ACCM:PINE CONE"' in accm["expression"]

    sbu = run_json(capsys, "check", "(U//SBU-NF)")
    assert sbu["marking"] == "UNCLASSIFIED//SBU NOFORN"
    assert sbu["fields"]["nonic"] == ["SBU NOFORN"]
    assert sbu["expression"] == "CLS:U&CTRY:USA&NONIC:SBU"


@pytest.mark.parametrize(
    ("marking", "kind", "banner"),
    [
        ("SECRET//COMINT//NOFORN", "legacy-marking", "SECRET//SI//NOFORN"),
        ("SECRET//RD-SIGMA 3//NOFORN", "legacy-sigma", "SECRET//RD-SIGMA 3//NOFORN"),
    ],
)
def test_findings_of_a_valid_marking(
    capsys: pytest.CaptureFixture[str], marking: str, kind: str, banner: str
) -> None:
    data = run_json(capsys, "check", marking)
    assert data["marking"] == banner
    (finding,) = data["findings"]
    assert finding["rule"] == kind and finding["severity"] == "warning" and finding["message"]
    plain = invoke("check", marking)
    assert plain.exit_code == 0 and plain.stdout == f"{banner}\n"
    assert f"(finding: {kind})" in plain.stderr
    expr = run_json(capsys, "expr", marking)
    assert [f["rule"] for f in expr["findings"]] == [kind]


def test_rollup_json_shows_the_join_and_each_input(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "rollup", "(//NS//ATOMAL)", "(S//RD//NF)")
    assert data["marking"] == "SECRET//RD/ATOMAL//FGI NATO//NOFORN"
    assert data["inputs"] == ["(//NS//ATOMAL)", "(S//RD//NF)"]
    assert [d["fields"]["kind"] for d in data["input_details"]] == ["NATO", "US"]
    fields = data["fields"]
    assert fields["kind"] == "US" and fields["fgi"] == ["NATO"]
    assert fields["aea"] == ["RD"] and fields["nato_controls"] == ["ATOMAL"]
    assert data["expression"] == access_of("SECRET//RD/ATOMAL//FGI NATO//NOFORN", capsys)

    sap = run_json(capsys, "rollup", "(TS//SAR-BP)", "(S//SAR-GB)", "(S//SAR-TC)")
    assert sap["marking"] == "TOP SECRET//SAR-MULTIPLE PROGRAMS"
    # The stored marking keeps the programs: access needs each of them, never SAP:MULTIPLE.
    assert sap["fields"]["sap"] == ["BP", "GB", "TC"] and not sap["fields"]["sap_multiple"]
    assert "SAP:MULTIPLE" not in sap["expression"] and "SAP:TC" in sap["expression"]

    legacy = run_json(capsys, "rollup", "(S//COMINT//NF)", "(S//RD-SG 3//NF)")
    assert [f["rule"] for f in legacy["findings"]] == ["legacy-marking", "legacy-sigma"]


def access_of(marking: str, _: pytest.CaptureFixture[str]) -> str:
    result = invoke("expr", marking)
    assert result.exit_code == 0
    return result.stdout.strip()


def test_expr_json_and_plain(capsys: pytest.CaptureFixture[str]) -> None:
    assert access_of("(//CTS-B)", capsys) == "CLS:TS&CTRY:USA&NATO:BOHEMIA&NATO:CTS"
    data = run_json(capsys, "expr", "(//CTS-B)")
    assert data["marking"] == "//COSMIC TOP SECRET//BOHEMIA"
    assert data["portion"] == "(//CTS//BOHEMIA)"
    assert data["expression"] == "CLS:TS&CTRY:USA&NATO:BOHEMIA&NATO:CTS"
    assert data["fields"]["level"] == "COSMIC TOP SECRET"
