"""The dataset pages: the datasets one may read, one version with its card, splits and records.

Everything is read through :class:`garrison.datasets.Datasets` as the signed-in subject: versions
above the subject are left out of the lists and answer like missing ones. A dataset's name is
governed by its version's marking, so the listing shows a name only through a readable version
and puts that version's marking on the page.

A version's page shows its readable sibling versions, its card (rendered here from the card's
data through the autoescaping templates -- never the card's own HTML, which carries inline
styles and is not this page's), its splits with counts, and a sample of its records. Records
are marked one by one; each shown is checked against the subject (``can_read`` on its own
marking, besides the version's) and adds its marking to the page, so the banner is the join of
what is shown. A version whose sources' markings rose since it was made (``stale-marking``)
shows no records at all: they may now be marked higher than the snapshot says.

Those allowed to export (``Action.DATASET_EXPORT``, and a REL TO release of every marking, as
for ``garrison dataset export``) are offered a download of an export as a zip; it is made by the
same :func:`garrison.datasets.export.export_version`, which checks everything again and audits
the export (or its refusal) the same way.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.background import BackgroundTask

from garrison.core.errors import MarkingError, NotPermitted
from garrison.datasets import Datasets, DatasetVersion, SnapshotRecord
from garrison.datasets.card import build_card
from garrison.datasets.export import FORMATS, ExportFormat, export_version
from garrison.security.markings import dominates
from garrison.security.policy import Action, can_export
from garrison.store.session import Session
from garrison.web._banner import PageMarkings
from garrison.web._core import PREFIX, Viewer, ViewerDep, get_ui, redirect

__all__ = ["SAMPLE_PER_SPLIT", "TEXT_CHARS", "card_view", "register", "sample_records"]

#: Records shown per split on a version's page.
SAMPLE_PER_SPLIT = 10
#: Characters of a record's text shown (the rest is cut with an ellipsis).
TEXT_CHARS = 600
#: The longest dataset reference a page looks up.
MAX_REF = 256
_SPLIT_ORDER = ("train", "validation", "test")


def _split_key(name: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.index(name) if name in _SPLIT_ORDER else len(_SPLIT_ORDER), name)


def _ref(version: DatasetVersion) -> str:
    return f"{version.name}@{version.id[:12]}"


def _version_row(version: DatasetVersion, page: PageMarkings) -> dict[str, Any]:
    data = version.to_dict()
    return {
        "ref": _ref(version),
        "name": version.name,
        "id": version.id,
        "portion": page.portion(data["marking"]),
        "marking": data["marking"],
        "status": data["status"],
        "records": data["records"],
        "splits": sorted(data["splits"].items(), key=lambda kv: _split_key(kv[0])),
        "created_by": version.created_by,
        "created_at": version.created_at,
    }


def sample_records(
    session: Session, version: DatasetVersion, records: list[SnapshotRecord], page: PageMarkings
) -> dict[str, list[dict[str, Any]]]:
    """Up to :data:`SAMPLE_PER_SPLIT` records per split that the subject may read, by split.

    Each record is judged on its own marking (fail closed: one that does not parse, or is not
    dominated by the version's marking, is left out); each shown adds its marking to the page.
    """
    ceiling = version.marking
    by_split: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        shown = by_split.setdefault(record.split, [])
        if len(shown) >= SAMPLE_PER_SPLIT:
            continue
        marking = record.detail
        if record.marking != marking.banner():
            continue  # a banner that is not its full marking's: damaged, left out
        if not session.can_read(marking) or not dominates(ceiling, marking):
            continue
        text = record.text if len(record.text) <= TEXT_CHARS else record.text[:TEXT_CHARS] + "…"
        shown.append(
            {
                "id": record.id,
                "kind": record.kind,
                "portion": page.portion(marking.banner()),
                "text": text,
                # Only the fields the version selected are frozen; they are covered by the
                # record's marking (doc_id, title and uri carry the document's).
                "fields": [
                    (name, _field_text(value)) for name, value in sorted(record.fields.items())
                ],
            }
        )
    return {k: by_split[k] for k in sorted(by_split, key=_split_key) if by_split[k]}


def _field_text(value: Any, sep: str = " › ") -> str:
    """A field as text; a list is joined with ``sep`` (a section path's separator by default)."""
    if value is None:
        return "—"
    if isinstance(value, list | tuple):
        return sep.join(str(v) for v in value) if value else "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in sorted(value.items())) or "—"
    return str(value)


def _count_rows(counts: dict[str, int] | None, total: int) -> list[dict[str, Any]]:
    rows = []
    for key, value in (counts or {}).items():
        share = value / total if total else 0.0
        rows.append({"key": key, "count": value, "share": f"{share:.1%}"})
    return rows


def card_view(data: dict[str, Any], page: PageMarkings) -> dict[str, Any]:
    """The parts of a card's data the page shows (every value rendered as text, escaped).

    The markings the card counts are all dominated by the version's; each is recorded on the
    page all the same.
    """
    counts = data.get("counts") or {}
    total = int(counts.get("records") or 0)
    by_marking = _count_rows(counts.get("by_marking"), total)
    for row in by_marking:
        try:
            row["portion"] = page.portion(str(row["key"]))
        except MarkingError:
            row["portion"] = None
    sources = data.get("sources") or {}
    splits = data.get("splits") or {}
    vaultis = data.get("vaultis") or {}
    processing = []
    for step, label in (("pii", "PII"), ("dedup", "Dedup"), ("quality", "Quality")):
        info = data.get(step) or {}
        runs = "; ".join(
            f"version {r.get('version')}, params {r.get('params_hash')}"
            for r in info.get("runs") or []
        )
        processing.append({"step": label, "applied": bool(info.get("stage_ran")), "runs": runs})
    return {
        "purpose": data.get("purpose") or "",
        "total": total,
        "tables": [
            ("Records by marking", "Marking", by_marking),
            ("Records by split", "Split", _count_rows(counts.get("by_split"), total)),
            ("Records by language", "Language", _count_rows(counts.get("by_language"), total)),
            ("Records by source", "Source", _count_rows(sources.get("sources"), total)),
            (
                "Records by media type",
                "Media type",
                _count_rows(counts.get("by_media_type") or sources.get("media_types"), total),
            ),
        ],
        "ratios": ", ".join(f"{k} {v}" for k, v in (splits.get("ratios") or {}).items()),
        "seed": splits.get("seed"),
        "stratify": splits.get("stratify") or "(none)",
        "leakage_rule": splits.get("leakage_rule") or "",
        "processing": processing,
        "limitations": [str(x) for x in data.get("limitations") or []],
        "overall": vaultis.get("overall"),
        "goals": [
            {"goal": str(goal).capitalize(), "score": (info or {}).get("score")}
            for goal, info in (vaultis.get("goals") or {}).items()
        ],
        "text_length": data.get("text_length") or {},
    }


def _dataset_page(
    request: Request,
    viewer: Viewer,
    ref: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    session = viewer.session
    page = PageMarkings(session)
    datasets = Datasets(session)
    version = datasets.get(ref[:MAX_REF])  # NotFound (the one 404 page) when not readable
    page.add(version.marking)
    siblings = [v for v in datasets.list() if v.name == version.name]
    records = datasets.records(version)
    card = build_card(version, records)
    context = {
        "v": _version_row(version, page),
        "versions": [_version_row(v, page) for v in siblings],
        "card": card_view(card.data, page),
        "pipelines": version.manifest.get("pipelines") or [],
        "selection": sorted(
            (k, _field_text(v, ", "))
            for k, v in (version.manifest.get("selection") or {}).items()
            if v not in (None, False, [], ())
        ),
        "stale": version.stale,
        "samples": {} if version.stale else sample_records(session, version, records, page),
        "per_split": SAMPLE_PER_SPLIT,
        "may_export": _may_export(viewer, version, records),
        "formats": FORMATS,
        "error": error,
    }
    return get_ui(request).render(request, "dataset.html", context, page, status=status)


def _may_export(viewer: Viewer, version: DatasetVersion, records: list[SnapshotRecord]) -> bool:
    """Whether to offer the export form: the role, a current version, and a release (not only
    DISPLAY ONLY access) of every marking in it. The export itself checks all of it again."""
    if version.stale or not viewer.may(Action.DATASET_EXPORT):
        return False
    session = viewer.session
    high = session.workspace.system_high
    markings = {version.marking, *(r.detail for r in records)}
    return all(can_export(session.subject, m, system_high=high) for m in markings)


def _zip(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))


def register(app: FastAPI) -> None:
    """Add the dataset pages to the UI app."""

    @app.get("/datasets", response_class=HTMLResponse)
    def datasets_page(request: Request, viewer: ViewerDep) -> Response:
        page = PageMarkings(viewer.session)
        versions = Datasets(viewer.session).list()  # newest first, readable only; audited
        names: dict[str, dict[str, Any]] = {}
        for version in versions:
            entry = names.get(version.name)
            if entry is None:
                names[version.name] = {"latest": _version_row(version, page), "count": 1}
            else:
                entry["count"] += 1
        context = {"datasets": list(names.values()), "total": len(versions)}
        return get_ui(request).render(request, "datasets.html", context, page)

    @app.get("/datasets/{ref}", response_class=HTMLResponse)
    def dataset_page(request: Request, viewer: ViewerDep, ref: str) -> Response:
        return _dataset_page(request, viewer, ref)

    @app.post("/datasets/{ref}/export", response_model=None)
    def dataset_export(
        request: Request,
        viewer: ViewerDep,
        ref: str,
        fmt: Annotated[str, Form(alias="format", max_length=20)] = "jsonl",
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        get_ui(request).check_csrf(viewer, csrf)
        if fmt not in FORMATS:
            return _dataset_page(
                request,
                viewer,
                ref,
                error=f"Unknown export format {fmt!r}: use {', '.join(FORMATS)}.",
                status=400,
            )
        version = Datasets(viewer.session).get(ref[:MAX_REF])  # the one 404 when unreadable
        work = Path(tempfile.mkdtemp(prefix="garrison-web-export-"))
        folder = work / f"{version.name}-{version.id[:12]}-{fmt}"
        archive = work / f"{folder.name}.zip"
        try:
            result = export_version(viewer.session, version.id, cast(ExportFormat, fmt), folder)
            _zip(folder, archive)
        except NotPermitted as exc:
            shutil.rmtree(work, ignore_errors=True)
            return _dataset_page(request, viewer, version.id, error=exc.message, status=403)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return FileResponse(
            archive,
            media_type="application/zip",
            filename=archive.name,
            headers={"X-Garrison-Marking": result.marking},
            background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
        )

    @app.get("/datasets/{ref}/export", include_in_schema=False)
    def dataset_export_get(ref: str) -> Response:
        # Exports are made by the form (a POST with the session's CSRF token), never by a link.
        return redirect(f"{PREFIX}/datasets/{quote(ref, safe='')}")
