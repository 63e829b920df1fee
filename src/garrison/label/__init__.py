"""Labeling: tasks, consensus, gold, weak supervision and active learning over datasets, with
pre-labels from models.

The algorithms are pure functions over plain values: agreement between annotators
(:mod:`garrison.label.agreement`), aggregation of replicas (:mod:`garrison.label.aggregate`),
active learning (:mod:`garrison.label.active`), labeling functions
(:mod:`garrison.label.functions`) and label export formats (:mod:`garrison.label.formats`).
"""

from garrison.label.active import SeedRun, Simulation, next_batch, simulate, uncertainty
from garrison.label.aggregate import (
    DawidSkene,
    GoldAccuracy,
    MajorityVote,
    compare_on_gold,
    dawid_skene,
    majority_vote,
    wilson_interval,
)
from garrison.label.agreement import (
    BoxMatch,
    Estimate,
    SpanScores,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    match_boxes,
    span_f1,
    span_scores,
    span_token_alpha,
    span_token_units,
    tokenize,
    with_interval,
)

__all__ = [
    "BoxMatch",
    "DawidSkene",
    "Estimate",
    "GoldAccuracy",
    "MajorityVote",
    "SeedRun",
    "Simulation",
    "SpanScores",
    "cohen_kappa",
    "compare_on_gold",
    "dawid_skene",
    "fleiss_kappa",
    "krippendorff_alpha",
    "majority_vote",
    "match_boxes",
    "next_batch",
    "simulate",
    "span_f1",
    "span_scores",
    "span_token_alpha",
    "span_token_units",
    "tokenize",
    "uncertainty",
    "wilson_interval",
    "with_interval",
]
