"""Exporting a suite version as one JSONL file.

The first line is the file's header -- ``{"banner": <the join of the exported items'
markings>, "suite": {id, ref, name, kind, holdout, count, source}}`` -- and every other line
one item with its own ``marking``: ``{"id", "input", "expected", "marking", "sources",
"cluster", "slices"}`` (``cluster`` only where the item has a source document; ``slices``
without the marking, which is the item's own). :meth:`Suites.from_jsonl` reads such a file
back (it skips the header).

Only the items the subject may read are written, and only when the subject holds the
``export-eval`` action and may *export* (not merely read) every one of their markings; a holdout
suite's items only to the evaluator role. The file is written beside ``out`` and renamed into
place, so it is all or nothing, and an existing file is never overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from garrison.core.errors import InvalidInput
from garrison.security.audit import AuditAction
from garrison.security.markings import join
from garrison.security.policy import Action

if TYPE_CHECKING:
    from garrison.evaluate._suites import Suites

__all__ = ["HEADER_KEYS", "export_suite"]

#: The keys of the header line (an item line has ``input`` instead).
HEADER_KEYS = frozenset({"banner", "suite"})


def export_suite(suites: Suites, ref: str, out: Path) -> dict[str, Any]:
    """Write ``ref``'s readable items to ``out``; returns what was written (audited)."""
    session = suites.session
    session.require(Action.EXPORT_EVAL, AuditAction.EVAL_SUITE_EXPORT, object_id=str(ref)[:128])
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise InvalidInput(f"{out} already exists; choose a new file.")
    if not out.parent.is_dir():
        raise InvalidInput(f"The folder {out.parent} does not exist.")
    version = suites.get(ref)
    suites._check_holdout(version, AuditAction.EVAL_SUITE_EXPORT)
    items = suites.read_items(version.id)
    suites.exportable(version, items)
    marking = join(*(i.marking for i in items))
    header = {
        "banner": marking.banner(),
        "suite": {
            "id": version.id,
            "ref": version.ref,
            "name": version.name,
            "kind": version.kind,
            "holdout": version.holdout,
            "count": len(items),
            "source": version.source,
        },
    }
    lines = [json.dumps(header, sort_keys=True, ensure_ascii=False)]
    for item in items:
        row = item.to_dict()
        row.pop("position")
        row.pop("kind")
        row["slices"] = {k: v for k, v in row["slices"].items() if k != "marking"}
        if row["cluster"] == item.id:  # its own cluster: nothing to carry
            row.pop("cluster")
        lines.append(json.dumps(row, sort_keys=True, ensure_ascii=False))
    fd, tmp = tempfile.mkstemp(prefix=".garrison-suite-", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        session.audit(
            AuditAction.EVAL_SUITE_EXPORT,
            object_id=version.id,
            object_marking=marking.banner(),
            details={"items": len(items), "out": str(out)},
        )
        os.link(tmp, out)  # fails, rather than overwrites, when out appeared meanwhile
    except FileExistsError as exc:
        raise InvalidInput(f"{out} already exists; choose a new file.") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {
        "id": version.id,
        "ref": version.ref,
        "out": str(out),
        "items": len(items),
        "marking": marking.banner(),
    }
