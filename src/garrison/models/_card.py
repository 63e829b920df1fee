"""Model cards: what a model version is, what it was trained on, how well it did, its limits.

:func:`model_card` gathers every fact once into a JSON-safe dict (the source of truth), and
:func:`render_markdown`, :func:`render_html` (one self-contained page: inline CSS, no script,
nothing fetched, every value escaped) and :func:`render_json` render it. Every form carries the
version's banner at the top and the bottom in the conventional colours. Sections:

- ``model``: name, version number, id, reference, kind, marking, who registered it and when;
- ``intended_use``: the card's ``intended_use``, else a sentence for the model's kind;
- ``training_data``: each training dataset version with its card's key facts (name, id,
  marking, records, records by split, status). A model is marked at least as high as its
  datasets, so a reader of the model may read them; one that has been removed keeps its facts
  with status ``removed``; one the reader cannot read here (absent from this workspace, as after
  an import, or not readable) is ``withheld``: its id only, never its name;
- ``metrics``: the card's ``metrics`` tree as recorded (``{"value", "low", "high"}`` leaves,
  nested by split or class as the trainer wrote them), rendered generically as rows;
- ``parameters`` and ``seeds`` (from the manifest), ``limitations``, ``lineage`` (the chain of
  base models, each ``present`` or not in this workspace), ``files`` (path, size when known,
  SHA-256), ``details`` (any other card entries) and ``export`` (set in a bundle's card).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from garrison.core.errors import NotFound
from garrison.datasets import Datasets
from garrison.datasets.card_style import (
    CARD_CSS,
    banner_facts,
    html_banner,
    html_table,
    html_text,
    md_banner,
    md_table,
    md_text,
)
from garrison.models._files import CACHE_DIR
from garrison.models._registry import Models, ModelVersion
from garrison.models.embedding import MINILM, MODELS
from garrison.store.datasets import version_marking, version_rows
from garrison.store.model_registry import model_rows
from garrison.store.session import Session

__all__ = [
    "CARD_FORMAT",
    "base_present",
    "card_data",
    "model_card",
    "render_html",
    "render_json",
    "render_markdown",
]

CARD_FORMAT = 1
#: Card entries with a section of their own; any other entry is listed under "Other details".
_SECTIONS = ("intended_use", "limitations", "metrics")
_INTENDED_USE = {
    "embedder": "Embedding texts into vectors for search and retrieval inside the enclave.",
    "classifier": "Labelling texts with one of its classes, with a probability for each.",
    "generator": "Generating text from prompts, called by Garrison.",
}


# -- facts ----------------------------------------------------------------------------------------


def model_card(
    session: Session,
    ref: str,
    *,
    sizes: Mapping[str, int] | None = None,
    export: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of the model version ``ref`` names, as JSON-safe data (audited read).

    NotFound for a version the subject may not read (the same as for a missing one).
    ``sizes`` (relative path -> bytes) fills file sizes; otherwise they come from the
    workspace's verified-file cache when it holds the version. ``export`` goes with a bundle.
    """
    version = Models(session).get(ref)
    return card_data(session, version, sizes=sizes, export=export)


def base_present(session: Session, version_id: str) -> bool:
    """Whether the model version ``version_id`` is registered here and readable (not audited:
    it answers only what the caller's own lineage already names)."""
    return any(r.id == version_id for r in model_rows(session, id_prefix=version_id))


def card_data(
    session: Session,
    version: ModelVersion,
    *,
    sizes: Mapping[str, int] | None = None,
    export: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every fact of ``version``'s card (see the module docstring)."""
    card = dict(version.card)
    training = _training_data(session, version)
    lineage = _lineage(session, version)
    metrics = _json_safe(card.get("metrics") or {})
    files = _files(session, version, sizes)
    return {
        "card_format": CARD_FORMAT,
        "banner": banner_facts(version.marking),
        "model": {
            "name": version.name,
            "version": version.version,
            "id": version.id,
            "ref": version.ref,
            "kind": version.kind,
            "marking": version.marking.banner(),
            "created_by": version.created_by,
            "created_at": version.created_at,
        },
        "intended_use": str(card.get("intended_use") or _INTENDED_USE.get(version.kind, "")),
        "training_data": training,
        "metrics": metrics,
        "parameters": _json_safe(version.manifest.get("parameters") or {}),
        "seeds": _json_safe(version.manifest.get("seeds") or {}),
        "limitations": _limitations(version, card, training, lineage, metrics),
        "lineage": lineage,
        "files": files,
        "details": _json_safe({k: v for k, v in card.items() if k not in _SECTIONS}),
        "export": _json_safe(dict(export)) if export else None,
    }


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so the card is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _training_data(session: Session, version: ModelVersion) -> list[dict[str, Any]]:
    datasets = Datasets(session)
    out: list[dict[str, Any]] = []
    for dataset_id in version.manifest.get("datasets") or []:
        try:
            dataset = datasets.get(str(dataset_id))
        except NotFound:
            out.append(_removed_dataset(session, str(dataset_id)))
            continue
        facts = dataset.to_dict()
        out.append(
            {
                "id": dataset.id,
                "name": dataset.name,
                "marking": facts["marking"],
                "records": dataset.record_count,
                "by_split": dict(sorted(facts["splits"].items())),
                "status": dataset.status,
            }
        )
    return out


def _removed_dataset(session: Session, dataset_id: str) -> dict[str, Any]:
    """A removed dataset version the reader may read keeps its facts; anything else -- not in
    this workspace, or not readable -- is withheld: its id only, never its name."""
    rows = [
        r
        for r in version_rows(session, id_prefix=dataset_id, include_deleted=True)
        if r.id == dataset_id and r.deleted_at is not None
    ]
    if not rows:
        return {"id": dataset_id, "status": "withheld"}
    row = rows[0]
    try:
        marking = version_marking(session, row)
    except NotFound:
        return {"id": dataset_id, "status": "withheld"}
    by_split: dict[str, int] = {}
    for record in (row.manifest or {}).get("records") or []:
        split = str(record.get("split"))
        by_split[split] = by_split.get(split, 0) + 1
    return {
        "id": row.id,
        "name": row.name,
        "marking": marking.banner(),
        "records": row.record_count,
        "by_split": dict(sorted(by_split.items())),
        "status": "removed",
    }


def _lineage(session: Session, version: ModelVersion) -> list[dict[str, Any]]:
    """The chain of base models, nearest first; it stops at one not present here."""
    models = Models(session)
    chain: list[dict[str, Any]] = []
    seen = {version.id}
    base_id = version.manifest.get("base")
    while isinstance(base_id, str) and base_id not in seen:
        seen.add(base_id)
        if not base_present(session, base_id):
            chain.append({"id": base_id, "present": False})
            break
        base = models.resolve(base_id)
        chain.append(
            {
                "id": base.id,
                "name": base.name,
                "ref": base.ref,
                "kind": base.kind,
                "marking": base.marking.banner(),
                "present": True,
            }
        )
        base_id = base.manifest.get("base")
    return chain


def _known_sizes(session: Session, version: ModelVersion) -> dict[str, int]:
    """File sizes where the files are on disk: the verified-file cache or the shipped model."""
    folders = [session.workspace.root / CACHE_DIR / version.id]
    if version.name == MINILM:
        with contextlib.suppress(Exception):  # without the embed extra: no sizes from there
            folders.append(MODELS[MINILM].path())
    sizes: dict[str, int] = {}
    for entry in version.manifest.get("files") or []:
        for folder in folders:
            path = Path(folder) / str(entry["path"])
            if path.is_file() and not path.is_symlink():
                sizes[str(entry["path"])] = path.stat().st_size
                break
    return sizes


def _files(
    session: Session, version: ModelVersion, sizes: Mapping[str, int] | None
) -> list[dict[str, Any]]:
    known = dict(sizes) if sizes is not None else _known_sizes(session, version)
    return [
        {
            "path": str(entry["path"]),
            "size": known.get(str(entry["path"])),
            "sha256": str(entry["sha256"]),
        }
        for entry in version.manifest.get("files") or []
    ]


def _limitations(
    version: ModelVersion,
    card: Mapping[str, Any],
    training: list[dict[str, Any]],
    lineage: list[dict[str, Any]],
    metrics: Any,
) -> list[str]:
    given = card.get("limitations")
    items = [str(x) for x in given] if isinstance(given, list) else ([str(given)] if given else [])
    items.append(
        f"Everything it produces is marked at least {version.marking.banner()}: the join of "
        "its input's marking and the model's."
    )
    if not training:
        items.append("No training dataset is recorded: what it learned from is not described here.")
    withheld = sum(1 for t in training if t["status"] == "withheld")
    if withheld:
        items.append(
            f"{withheld} of its {len(training)} training dataset versions cannot be read here "
            "(not in this workspace, or not readable); their facts are withheld."
        )
    removed = sum(1 for t in training if t["status"] == "removed")
    if removed:
        items.append(f"{removed} of its training dataset versions have been removed since.")
    stale = sum(1 for t in training if t["status"] not in ("current", "removed", "withheld"))
    if stale:
        items.append(
            f"{stale} of its training dataset versions are stale: a source's marking rose "
            "since they were made."
        )
    if lineage and not lineage[-1]["present"]:
        items.append(
            f"Its base model {lineage[-1]['id'][:12]} is not in this workspace; it is named by "
            "id only."
        )
    if not metrics:
        items.append("No evaluation metrics were recorded for this version.")
    return items


# -- rendering ------------------------------------------------------------------------------------


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 1e6:
        return f"{value:.4g}"
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return _num(value)


def metric_rows(tree: Any, path: tuple[str, ...] = ()) -> list[list[str]]:
    """``[metric path, value, 95% interval]`` rows of a metrics tree, depth first.

    A mapping holding ``value`` is a measurement (``low`` and ``high`` its interval); its other
    entries, and every entry of any other mapping or list, are walked below it.
    """
    name = " / ".join(path) or "(metric)"
    rows: list[list[str]] = []
    if isinstance(tree, Mapping):
        leaf = "value" in tree and not isinstance(tree["value"], Mapping | list)
        if leaf:
            low, high = tree.get("low"), tree.get("high")
            interval = f"[{_num(low)}, {_num(high)}]" if "low" in tree and "high" in tree else ""
            rows.append([name, _num(tree["value"]), interval])
        for key, value in tree.items():
            if leaf and key in ("value", "low", "high"):
                continue
            rows += metric_rows(value, (*path, str(key)))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            rows += metric_rows(value, (*path, str(index)))
    else:
        rows.append([name, _num(tree), ""])
    return rows


def _identity_rows(data: dict[str, Any]) -> list[list[Any]]:
    m = data["model"]
    return [
        ["Name", m["name"]],
        ["Version", m["version"]],
        ["Id", m["id"]],
        ["Reference", m["ref"]],
        ["Kind", m["kind"]],
        ["Marking", m["marking"]],
        ["Created by", m["created_by"]],
        ["Created at", m["created_at"]],
    ]


def _training_rows(data: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for t in data["training_data"]:
        if t["status"] == "withheld":
            rows.append(["(withheld)", t["id"], "", "", "", "withheld: not readable here"])
            continue
        splits = ", ".join(f"{k} {v}" for k, v in t["by_split"].items()) or "-"
        rows.append([t["name"], t["id"], t["marking"], t["records"], splits, t["status"]])
    return rows


def _mapping_rows(values: Mapping[str, Any]) -> list[list[Any]]:
    return [[k, _scalar(v)] for k, v in values.items()]


def _lineage_rows(data: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for step, entry in enumerate(data["lineage"], 1):
        if entry["present"]:
            rows.append([step, entry["name"], entry["id"], entry["kind"], entry["marking"], "yes"])
        else:
            rows.append([step, "(not in this workspace)", entry["id"], "", "", "no"])
    return rows


def _file_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [
        [f["path"], "unknown" if f["size"] is None else f["size"], f["sha256"]]
        for f in data["files"]
    ]


def _export_rows(export: Mapping[str, Any]) -> list[list[Any]]:
    return [
        ["Exported by", export.get("exported_by", "")],
        ["Exported at", export.get("exported_at", "")],
        ["From workspace", export.get("workspace_id", "")],
        ["Signed", "yes, Ed25519 over SHA256SUMS" if export.get("signed") else "no"],
        ["Key", export.get("key_id") or "(none)"],
        ["Files", ", ".join(str(f) for f in export.get("files") or []) or "(none)"],
    ]


_TRAINING_HEAD = ["Dataset", "Version id", "Marking", "Records", "By split", "Status"]
_LINEAGE_HEAD = ["Step", "Base model", "Version id", "Kind", "Marking", "Present"]


_EVALUATION_HEAD = ["Metric", "Value", "95% interval", "n"]


def _evaluation_rows(data: Mapping[str, Any]) -> tuple[str, list[list[Any]]] | None:
    """The latest evaluation an interface attached as ``data["evaluation"]`` (this package
    does not read runs): a sentence and its metric rows, or None when none is attached. Its
    figures are there only when the card's marking dominates the run's; otherwise only the run
    is named."""
    evaluation = data.get("evaluation")
    if not isinstance(evaluation, Mapping):
        return None
    run = str(evaluation.get("run", ""))
    metrics = evaluation.get("metrics")
    if not isinstance(metrics, Mapping):
        return (f"{run}: marked above this card; read it with `garrison eval show {run}`.", [])
    rows = [
        [name, _num(m.get("value")), f"{_num(m.get('low'))}-{_num(m.get('high'))}", m.get("n")]
        for name, m in sorted(metrics.items())
        if isinstance(m, Mapping)
    ]
    suite = evaluation.get("suite") or ""
    return (f"{run} on {suite} ({evaluation.get('created_at', '')}).", rows)


def render_markdown(data: dict[str, Any]) -> str:
    """The card as Markdown; the banner is the first and the last line."""
    banner = md_banner(data["banner"])
    out = [banner, "", f"# Model card: {md_text(data['model']['name'])}", ""]
    out += md_table(["Property", "Value"], _identity_rows(data))
    out += ["## Intended use", "", md_text(data["intended_use"]), ""]
    out += ["## Training data", ""]
    training = _training_rows(data)
    out += md_table(_TRAINING_HEAD, training) if training else ["No training data recorded.", ""]
    out += ["## Metrics", ""]
    rows = metric_rows(data["metrics"]) if data["metrics"] else []
    out += md_table(["Metric", "Value", "95% interval"], rows) if rows else ["None recorded.", ""]
    out += ["## Parameters and seeds", ""]
    out += md_table(["Parameter", "Value"], _mapping_rows(data["parameters"]) or [["(none)", ""]])
    out += md_table(["Seed", "Value"], _mapping_rows(data["seeds"]) or [["(none)", ""]])
    out += ["## Limitations", ""]
    out += [f"- {md_text(item)}" for item in data["limitations"]] + [""]
    out += ["## Lineage", ""]
    lineage = _lineage_rows(data)
    out += md_table(_LINEAGE_HEAD, lineage) if lineage else ["No base model.", ""]
    out += ["## Files", ""]
    out += md_table(["Path", "Size (bytes)", "SHA-256"], _file_rows(data) or [["(none)", "", ""]])
    if data["details"]:
        out += ["## Other details", ""]
        out += md_table(["Entry", "Value"], _mapping_rows(data["details"]))
    evaluation = _evaluation_rows(data)
    if evaluation is not None:
        out += ["## Latest evaluation", "", md_text(evaluation[0]), ""]
        if evaluation[1]:
            out += md_table(_EVALUATION_HEAD, evaluation[1])
    if data["export"]:
        out += ["## Bundle", ""]
        out += md_table(["Property", "Value"], _export_rows(data["export"]))
    out += [banner, ""]
    return "\n".join(out)


def render_html(data: dict[str, Any]) -> str:
    """The card as one self-contained HTML page: inline CSS, no script, nothing fetched."""
    banner = html_banner(data["banner"])
    name = html_text(data["model"]["name"])
    training = _training_rows(data)
    rows = metric_rows(data["metrics"]) if data["metrics"] else []
    lineage = _lineage_rows(data)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Model card: {name}</title><style>{CARD_CSS}</style></head><body>",
        banner,
        "<main>",
        f"<h1>Model card: {name}</h1>",
        html_table("Identity", ["Property", "Value"], _identity_rows(data)),
        f"<h2>Intended use</h2><p>{html_text(data['intended_use'])}</p>",
        "<h2>Training data</h2>",
        html_table("Training dataset versions", _TRAINING_HEAD, training)
        if training
        else "<p>No training data recorded.</p>",
        "<h2>Metrics</h2>",
        html_table("Metrics", ["Metric", "Value", "95% interval"], rows)
        if rows
        else "<p>None recorded.</p>",
        "<h2>Parameters and seeds</h2>",
        html_table("Parameters", ["Parameter", "Value"], _mapping_rows(data["parameters"])),
        html_table("Seeds", ["Seed", "Value"], _mapping_rows(data["seeds"])),
        "<h2>Limitations</h2><ul>",
        "".join(f"<li>{html_text(item)}</li>" for item in data["limitations"]),
        "</ul>",
        "<h2>Lineage</h2>",
        html_table("Base models, nearest first", _LINEAGE_HEAD, lineage)
        if lineage
        else "<p>No base model.</p>",
        "<h2>Files</h2>",
        html_table("Weight files", ["Path", "Size (bytes)", "SHA-256"], _file_rows(data)),
    ]
    if data["details"]:
        parts += [
            "<h2>Other details</h2>",
            html_table("Other details", ["Entry", "Value"], _mapping_rows(data["details"])),
        ]
    evaluation = _evaluation_rows(data)
    if evaluation is not None:
        parts += ["<h2>Latest evaluation</h2>", f"<p>{html_text(evaluation[0])}</p>"]
        if evaluation[1]:
            parts.append(html_table("Latest evaluation", _EVALUATION_HEAD, evaluation[1]))
    if data["export"]:
        parts += [
            "<h2>Bundle</h2>",
            html_table("Bundle", ["Property", "Value"], _export_rows(data["export"])),
        ]
    parts += ["</main>", banner, "</body></html>", ""]
    return "\n".join(parts)


def render_json(data: dict[str, Any]) -> str:
    """The card's data as JSON (sorted keys, strict: no NaN)."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
