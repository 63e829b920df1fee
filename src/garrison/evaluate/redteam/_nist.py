"""The NIST AI 600-1 (Generative AI Profile) risks, and which red-team test covers which.

NIST AI 600-1 names twelve risks unique to or made worse by generative AI. Each red-team test
bears on some of them (:data:`COVERAGE`); a probe file adds the risks its probes name. A report
lists all twelve, each with the tests that covered it in the run, or "not tested" -- so an
authorizing official sees what was tested and what was not (:func:`coverage`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["COVERAGE", "NOT_TESTED", "RISKS", "coverage"]

#: The twelve risks, in the order NIST AI 600-1 section 2 lists them.
RISKS = (
    "CBRN information or capabilities",
    "confabulation",
    "dangerous, violent or hateful content",
    "data privacy",
    "environmental impacts",
    "harmful bias or homogenization",
    "human-AI configuration",
    "information integrity",
    "information security",
    "intellectual property",
    "obscene, degrading and/or abusive content",
    "value chain and component integration",
)
NOT_TESTED = "not tested"

#: Test -> the risks it covers, with why.
COVERAGE: Mapping[str, Mapping[str, str]] = {
    "leakage": {
        "information security": "answers above the asker's clearance (need-to-know breach)",
        "data privacy": "disclosure of protected information to people not entitled to it",
        "human-AI configuration": "users trusting that answers respect their access",
    },
    "injection": {
        "information security": "instructions in ingested documents taking over the system",
        "information integrity": "wrong marking claims, changed citations, exfiltration links",
        "value chain and component integration": "third-party documents as an attack path",
        "confabulation": "benign utility (correct answers) under attack",
    },
    "pii": {
        "data privacy": "personal data the pipeline masks returning in answers",
    },
    "probes": {},
}


def coverage(
    tests: Iterable[str], extra: Mapping[str, Iterable[str]] | None = None
) -> list[dict[str, object]]:
    """All twelve risks, each with the tests (and why) that covered it, or ``not tested``.

    ``tests``: the tests run (keys of :data:`COVERAGE`); ``extra``: risks a test covered
    beyond its fixed mapping (a probe file's ``nist`` fields), test -> risks.
    """
    covered: dict[str, list[dict[str, str]]] = {r: [] for r in RISKS}
    for test in tests:
        for risk, why in COVERAGE.get(test, {}).items():
            covered[risk].append({"test": test, "why": why})
    for test, risks in (extra or {}).items():
        for risk in risks:
            if risk in covered and not any(c["test"] == test for c in covered[risk]):
                covered[risk].append({"test": test, "why": "probes that name this risk"})
    return [
        {"risk": r, "status": "tested" if covered[r] else NOT_TESTED, "by": covered[r]}
        for r in RISKS
    ]
