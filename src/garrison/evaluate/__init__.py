"""Evaluation: suites built from datasets, models and the assistant tested before deployment,
and the red team that looks for answers above the asker's clearance. Nothing imports it."""

__all__: list[str] = []
