"""The red team: attacks on a system before it is fielded, measured with intervals.

- clearance leakage (:func:`run_leakage`): canaries planted above what the askers may read, in a
  scratch workspace with the same users and generators as the workspace under test;
"""

from garrison.evaluate.redteam._canaries import ATTACK_KINDS, FORMATS, Canary, make_canaries
from garrison.evaluate.redteam._detect import (
    COSINE_THRESHOLD,
    FPR_BOUND,
    OVERLAP_THRESHOLD,
    Detector,
    Hit,
    false_positive_rate,
)
from garrison.evaluate.redteam._leakage import (
    DEFAULT_CANARIES,
    PLANT_AT,
    Attempt,
    LeakageResult,
    leakage_attempts,
    run_leakage,
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
    "COSINE_THRESHOLD",
    "DEFAULT_CANARIES",
    "FAST",
    "FORMATS",
    "FPR_BOUND",
    "OVERLAP_THRESHOLD",
    "PLANT_AT",
    "AssistantSystem",
    "Attempt",
    "Canary",
    "Detector",
    "GeneratorSystem",
    "Hit",
    "LeakageResult",
    "Response",
    "ScratchWorkspace",
    "System",
    "Target",
    "false_positive_rate",
    "leakage_attempts",
    "make_canaries",
    "open_system",
    "parse_target",
    "run_leakage",
    "scratch_workspace",
]
