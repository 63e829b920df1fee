"""Labeling: tasks, consensus, gold, weak supervision and active learning over datasets, with
pre-labels from models."""

__all__: list[str] = []
