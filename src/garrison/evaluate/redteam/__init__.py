"""The red team: attacks on a system before it is fielded, measured with intervals.

Four tests, each run in a scratch workspace with the same users and generators as the
workspace under test and none of its data (:mod:`._workspace`), each audited as
``redteam.run``:

- clearance leakage (:func:`run_leakage`): canaries planted above what the askers may read;
- indirect prompt injection (:func:`run_injection`): instructions planted in documents;
- PII leakage (:func:`run_pii`): personal data the pipeline masks, asked for;
- direct probes (:func:`run_probes`): prompts with detectors from a JSONL file.

:func:`build_report` makes any result a marked report with intervals, paired deltas between
systems and the NIST AI 600-1 mapping; :func:`gate` decides on its upper bound;
:func:`record_runs` stores a result as evaluation runs (``garrison eval compare`` gates them).
"""

from garrison.evaluate.redteam._canaries import ATTACK_KINDS, FORMATS, Canary, make_canaries
from garrison.evaluate.redteam._detect import (
    COSINE_THRESHOLD,
    FPR_BOUND,
    OVERLAP_THRESHOLD,
    Detector,
    FalsePositives,
    Hit,
    false_positive_rate,
)
from garrison.evaluate.redteam._injection import (
    CARRIERS,
    DEFAULT_QUESTIONS,
    INJECTIONS,
    InjectionAttempt,
    InjectionResult,
    run_injection,
)
from garrison.evaluate.redteam._leakage import (
    DEFAULT_CANARIES,
    PLANT_AT,
    Attempt,
    LeakageResult,
    leakage_attempts,
    run_leakage,
)
from garrison.evaluate.redteam._nist import COVERAGE, NOT_TESTED, RISKS, coverage
from garrison.evaluate.redteam._pii import PII_PIPELINE, PiiAttempt, PiiResult, run_pii
from garrison.evaluate.redteam._probes import (
    DETECTORS,
    Probe,
    ProbeAttempt,
    ProbeResult,
    load_probes,
    run_probes,
)
from garrison.evaluate.redteam._record import record_runs
from garrison.evaluate.redteam._report import (
    RedTeamReport,
    build_report,
    gate,
    render_html,
    render_markdown,
    report_json,
)
from garrison.evaluate.redteam._systems import (
    AssistantSystem,
    GeneratorSystem,
    Response,
    System,
    Target,
    open_system,
    parse_target,
)
from garrison.evaluate.redteam._workspace import FAST, ScratchWorkspace, scratch_workspace

__all__ = [
    "ATTACK_KINDS",
    "CARRIERS",
    "COSINE_THRESHOLD",
    "COVERAGE",
    "DEFAULT_CANARIES",
    "DEFAULT_QUESTIONS",
    "DETECTORS",
    "FAST",
    "FORMATS",
    "FPR_BOUND",
    "INJECTIONS",
    "NOT_TESTED",
    "OVERLAP_THRESHOLD",
    "PII_PIPELINE",
    "PLANT_AT",
    "RISKS",
    "AssistantSystem",
    "Attempt",
    "Canary",
    "Detector",
    "FalsePositives",
    "GeneratorSystem",
    "Hit",
    "InjectionAttempt",
    "InjectionResult",
    "LeakageResult",
    "PiiAttempt",
    "PiiResult",
    "Probe",
    "ProbeAttempt",
    "ProbeResult",
    "RedTeamReport",
    "Response",
    "ScratchWorkspace",
    "System",
    "Target",
    "build_report",
    "coverage",
    "false_positive_rate",
    "gate",
    "leakage_attempts",
    "load_probes",
    "make_canaries",
    "open_system",
    "parse_target",
    "record_runs",
    "render_html",
    "render_markdown",
    "report_json",
    "run_injection",
    "run_leakage",
    "run_pii",
    "run_probes",
    "scratch_workspace",
]
