"""Apache Accumulo access-expression conformance data, every case.

The data (Apache-2.0, from apache/accumulo-access) lives outside the repository in
``shared/conformance/accumulo/testdata.json``. Without it the cases are skipped, except in CI
(``CI=true``), where a missing file must fail the build rather than pass it silently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from garrison.core.errors import AccessExpressionError
from garrison.security.access import (
    evaluate,
    evaluate_all,
    explain_all,
    normalize,
    parse_expression,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "accumulo" / "testdata.json"
MISSING = f"conformance data not found at {DATA}"


def _cases() -> list[Any]:
    if not DATA.is_file():
        return [pytest.param(None, None, None, id="missing-data")]
    cases = []
    for i, group in enumerate(json.loads(DATA.read_text(encoding="utf-8"))):
        auths = [list(s) for s in group["auths"]]
        for j, test in enumerate(group["tests"]):
            for k, expression in enumerate(test["expressions"]):
                cases.append(
                    pytest.param(
                        expression,
                        auths,
                        test["expectedResult"],
                        id=f"{i}-{j}-{k}-{test['expectedResult']}",
                    )
                )
    return cases


CASES = _cases()


def _require_data() -> None:
    if not DATA.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING)
        pytest.skip(MISSING)


def test_data_present_and_complete() -> None:
    _require_data()
    groups = json.loads(DATA.read_text(encoding="utf-8"))
    expected = sum(len(t["expressions"]) for g in groups for t in g["tests"])
    assert len(CASES) == expected > 0


@pytest.mark.parametrize(("expression", "auths", "expected"), CASES)
def test_case(expression: str, auths: list[list[str]], expected: str) -> None:
    _require_data()
    if expected == "ERROR":
        with pytest.raises(AccessExpressionError) as info:
            parse_expression(expression)
        assert 0 <= info.value.offset <= len(expression)
        assert info.value.expression == expression
        with pytest.raises(AccessExpressionError):
            evaluate_all(expression, auths)
        return
    assert expected in ("ACCESSIBLE", "INACCESSIBLE"), expected
    want = expected == "ACCESSIBLE"
    parsed = parse_expression(expression)
    assert evaluate_all(parsed, auths) is want
    assert evaluate_all(expression, auths) is want
    assert all(evaluate(parsed, s) for s in auths) is want
    # The canonical form must decide exactly like the original, and explain() must agree.
    assert evaluate_all(normalize(parsed), auths) is want
    assert explain_all(parsed, auths).accessible is want
