"""The model pages: the model versions one may read, one version's card, and classifying text.

Everything is read through the registry as the signed-in subject (:class:`garrison.models.Models`:
unreadable versions are left out of the list and answer like missing ones), and every marking
shown -- each version's, its base's, a prediction's -- goes into the page's banner. A card is
rendered from its dict, whatever its keys: ``metrics`` (``{"name": {"value", "low", "high"}}``,
nested per split or class at any depth) as a table with 95% intervals, everything else as
fields.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response

from garrison.api._marking import markings_in
from garrison.api._predict import MAX_TEXT_CHARS, predict_texts
from garrison.core.errors import InvalidInput, MarkingError
from garrison.models import Models, ModelVersion
from garrison.web._banner import PageMarkings
from garrison.web._core import PREFIX, Viewer, ViewerDep, get_ui
from garrison.web._pages import CEILINGS
from garrison.web._tables import Table, TableArgs, page_rows

__all__ = ["card_fields", "metric_rows", "register"]

#: The longest model reference a page looks up.
MAX_REF = 256
#: The model table's sortable columns (the registry's own order, newest first, by default).
MODEL_SORTS: dict[str, Any] = {
    "newest": None,
    "name": lambda v: v.name,
    "kind": lambda v: v.kind,
    "created_by": lambda v: v.created_by,
}


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _is_interval(value: Any) -> bool:
    return isinstance(value, dict) and "value" in value and not isinstance(value["value"], dict)


def metric_rows(metrics: Any, path: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """A card's metrics as table rows: the metric's path (split, class, name), value, interval.

    A dict with a ``value`` is one metric (``low`` and ``high`` its 95% interval when given); any
    other dict nests (per split, per class...); a bare number or text is a metric without one.
    """
    name = " › ".join(path) or "metric"
    if _is_interval(metrics):
        interval = ""
        if "low" in metrics and "high" in metrics:
            interval = f"[{_number(metrics['low'])}, {_number(metrics['high'])}]"
        return [{"name": name, "value": _number(metrics["value"]), "interval": interval}]
    if isinstance(metrics, dict):
        rows: list[dict[str, str]] = []
        for key, value in metrics.items():
            rows.extend(metric_rows(value, (*path, str(key))))
        return rows
    if isinstance(metrics, list):
        text = ", ".join(_number(v) for v in metrics)
        return [{"name": name, "value": text, "interval": ""}]
    return [{"name": name, "value": _number(metrics), "interval": ""}]


def _label(key: str) -> str:
    text = key.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def card_fields(card: dict[str, Any]) -> list[dict[str, Any]]:
    """A card's fields other than ``metrics``: label, and text or a JSON block (``pre``)."""
    fields: list[dict[str, Any]] = []
    for key, value in card.items():
        if key == "metrics":
            continue
        if isinstance(value, str | int | float | bool) or value is None:
            shown = "—" if value is None else _number(value)
            fields.append({"label": _label(key), "text": shown})
        elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            fields.append({"label": _label(key), "text": ", ".join(_number(v) for v in value)})
        else:
            text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
            fields.append({"label": _label(key), "pre": text})
    return fields


def _record_card(page: PageMarkings, card: dict[str, Any]) -> None:
    """Every marking a card names goes on the page too (a card is the model's, so they are all
    dominated by its marking; one that does not parse is not a marking Garrison shows)."""
    for banner in markings_in(card):
        try:
            page.portion(banner)
        except MarkingError:
            continue


def _row(
    version: ModelVersion, page: PageMarkings, readable: dict[str, ModelVersion]
) -> dict[str, Any]:
    base = readable.get(version.manifest.get("base") or "")
    return {
        "ref": version.ref,
        "name": version.name,
        "version": version.version,
        "kind": version.kind,
        "portion": page.portion(version.marking.banner()),
        "created_by": version.created_by,
        "created_at": version.created_at,
        "base": base.ref if base else None,
        "base_portion": page.portion(base.marking.banner()) if base else None,
    }


def _model_page(
    request: Request,
    viewer: Viewer,
    ref: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    text: str = "",
    marking: str = "UNCLASSIFIED",
    status: int = 200,
) -> Response:
    session = viewer.session
    page = PageMarkings(session)
    models = Models(session)
    version = models.get(ref[:MAX_REF])  # NotFound (the one 404 page) when not readable
    readable = {v.id: v for v in models.list()}
    lineage = []
    for entry in version.lineage:
        item = {"kind": entry.get("kind"), "name": entry.get("name"), "id": entry.get("id")}
        if entry.get("kind") == "base" and entry.get("id") in readable:
            base = readable[str(entry["id"])]
            item["ref"] = base.ref
            item["portion"] = page.portion(base.marking.banner())
        lineage.append(item)
    card = dict(version.card)
    _record_card(page, card)
    predictions = []
    for prediction in (result or {}).get("predictions", []):
        # A prediction is marked with the join of the text's marking and the model's: the text
        # shown again in the form is covered by it.
        predictions.append(
            {
                **prediction,
                "portion": page.portion(prediction["marking"]),
                "probabilities": sorted(prediction["probabilities"].items(), key=lambda kv: -kv[1]),
            }
        )
    context = {
        "v": version.to_dict(manifest=False),
        "portion": page.portion(version.marking.banner()),
        "lineage": lineage,
        "parameters": card_fields(dict(version.manifest.get("parameters") or {})),
        "fields": card_fields(card),
        "metrics": metric_rows(card["metrics"]) if "metrics" in card else [],
        "predictions": predictions,
        "error": error,
        "text": text if predictions else "",
        "marking": marking,
        "markings": [c for c in CEILINGS if session.can_read(session.parse_marking(c))],
        "max_text": MAX_TEXT_CHARS,
    }
    return get_ui(request).render(request, "model.html", context, page, status=status)


def register(app: FastAPI) -> None:
    """Add the model pages to the UI app."""

    @app.get("/models", response_class=HTMLResponse)
    def models_page(request: Request, viewer: ViewerDep, args: TableArgs) -> Response:
        ui = get_ui(request)
        marks = PageMarkings(viewer.session)
        versions = Models(viewer.session).list()  # newest first, readable only; audited
        readable = {v.id: v for v in versions}
        found = page_rows(
            versions,
            "models",
            args,
            ui.settings.page_size,
            record_id=lambda v: v.id,
            sorts=MODEL_SORTS,
            match=lambda v: v.name,
        )
        table = Table(f"{PREFIX}/models", found, args, list(MODEL_SORTS), "newest")
        context = {
            "models": [_row(v, marks, readable) for v in found.items],
            "total": found.total,
            "table": table,
        }
        return ui.render(request, "models.html", context, marks)

    @app.get("/models/{ref}", response_class=HTMLResponse)
    def model_page(request: Request, viewer: ViewerDep, ref: str) -> Response:
        return _model_page(request, viewer, ref)

    @app.post("/models/{ref}/predict", response_class=HTMLResponse)
    def model_predict(
        request: Request,
        viewer: ViewerDep,
        ref: str,
        text: Annotated[str, Form(max_length=MAX_TEXT_CHARS)] = "",
        marking: Annotated[str, Form(max_length=500)] = "UNCLASSIFIED",
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        get_ui(request).check_csrf(viewer, csrf)
        version = Models(viewer.session).resolve(ref[:MAX_REF])  # the one 404 when unreadable
        if version.kind != "classifier":
            raise InvalidInput(f"Model {version.ref} is a {version.kind}, not a classifier.")
        try:
            result = predict_texts(viewer.session, version.id, [text] if text else [], marking)
        except InvalidInput as exc:
            return _model_page(
                request, viewer, version.id, error=exc.message, marking=marking, status=400
            )
        # The page shows the version that predicted, even if NAME has a newer one by now.
        return _model_page(request, viewer, version.id, result=result, text=text, marking=marking)
