"""Garrison: turn marked, siloed data into AI-ready data, air-gapped, with every read enforced."""

__version__ = "0.1.0"
