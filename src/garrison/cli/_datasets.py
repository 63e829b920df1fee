"""``garrison dataset``, ``garrison key`` and ``garrison verify``."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session, split_list
from garrison.cli._output import emit_json, err_console, out_console
from garrison.cli._paging import CursorOpt, PageLimitOpt, emit_listing, page_list, page_spec
from garrison.core.errors import CheckFailed, InvalidInput
from garrison.datasets import FIELDS as FIELD_NAMES

app = typer.Typer(help="Versioned datasets: create, inspect, export.", no_args_is_help=True)
key_app = typer.Typer(help="Public keys to take across the air gap.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add the dataset commands to the top-level app."""
    root.add_typer(app, name="dataset")
    root.add_typer(key_app, name="key")
    root.command("verify")(verify)


def _summary(data: dict[str, Any]) -> None:
    splits = ", ".join(f"{k} {v}" for k, v in sorted(data["splits"].items()))
    out_console.print(
        f"{data['name']}@{data['id'][:12]}  [{data['marking']}]  {data['records']} records "
        f"({splits})  by {data['created_by']} at {data['created_at']}"
        + ("  stale-marking" if data.get("status") == "stale-marking" else ""),
        markup=False,
    )


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    kind: Annotated[
        str, typer.Option("--kind", help="chunks, elements, documents or records.")
    ] = "chunks",
    source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
    media_type: Annotated[str | None, typer.Option("--media-type")] = None,
    language: Annotated[str | None, typer.Option("--language", help="ISO 639-1 code.")] = None,
    max_marking: Annotated[
        str | None, typer.Option("--max-marking", help="Ceiling: only records it dominates.")
    ] = None,
    quality_ok: Annotated[bool, typer.Option("--quality-ok", help="No quality flags.")] = False,
    canonical_only: Annotated[
        bool, typer.Option("--canonical-only", help="Leave out duplicates.")
    ] = False,
    date_from: Annotated[
        datetime | None, typer.Option("--from", help="Ingested at or after (ISO date).")
    ] = None,
    date_to: Annotated[
        datetime | None, typer.Option("--to", help="Ingested at or before (ISO date).")
    ] = None,
    fields: Annotated[
        list[str] | None,
        typer.Option(
            "--field",
            help="Fields to include (repeat or comma): " + ", ".join(FIELD_NAMES) + ".",
        ),
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="NAME=LABEL, repeatable: only records a prediction you may read labels so.",
        ),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="Ratios, e.g. train=0.8,validation=0.1,test=0.1.")
    ] = "train=0.8,validation=0.1,test=0.1",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split assignment.")] = 0,
    stratify: Annotated[
        str | None, typer.Option("--stratify", help="Balance splits by this field.")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Materialize an immutable version of a dataset (stewards)."""
    from datetime import UTC

    from pydantic import ValidationError

    from garrison.datasets import Datasets, Selection, parse_ratios

    def aware(value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    try:
        selection = Selection(
            kind=kind,
            source=source,
            media_type=media_type,
            language=language,
            max_marking=max_marking,
            quality_ok=quality_ok,
            canonical_only=canonical_only,
            date_from=aware(date_from),
            date_to=aware(date_to),
            labels=tuple(labels or ()),
            **({"fields": split_list(fields)} if fields else {}),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"Invalid selection ({where}): {first['msg']}.") from exc
    ratios = parse_ratios(split)
    with open_session(ctx, workspace, as_user) as session:
        version = Datasets(session).create(
            name, selection, ratios=ratios, seed=seed, stratify=stratify
        )
    data = version.to_dict()
    if as_json:
        emit_json(data)
    else:
        _summary(data)


@app.command("ls")
def ls(
    ctx: typer.Context,
    limit: PageLimitOpt = None,
    cursor: CursorOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the dataset versions the acting subject may read."""
    from garrison.datasets import Datasets

    with open_session(ctx, workspace, as_user) as session:
        versions = [v.to_dict() for v in Datasets(session).list()]
    spec = page_spec(limit, cursor)
    emit_listing(
        page_list(versions, "datasets", spec) if spec else versions,
        ["name", "version", "marking", "status", "records", "created_by", "created_at"],
        lambda v: (
            v["name"],
            v["id"][:16],
            v["marking"],
            v["status"],
            v["records"],
            v["created_by"],
            v["created_at"],
        ),
        as_json=as_json,
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION-PREFIX or a full version id.")],
    manifest: Annotated[bool, typer.Option("--manifest", help="Include the manifest.")] = False,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a dataset version."""
    from garrison.datasets import Datasets

    with open_session(ctx, workspace, as_user) as session:
        data = Datasets(session).get(ref).to_dict(records=manifest)
    if as_json:
        emit_json(data)
        return
    _summary(data)
    for step in data["pipelines"]:
        out_console.print(
            f"  {step['stage']} v{step['version']} params {step['params_hash']}", markup=False
        )


@app.command("diff")
def diff(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="The older version.")],
    b: Annotated[str, typer.Argument(help="The newer version.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed between two versions: records added, removed, changed, moved."""
    from garrison.datasets import Datasets

    with open_session(ctx, workspace, as_user) as session:
        data = Datasets(session).diff(a, b)
    if as_json:
        emit_json(data)
        return
    for key in ("added", "removed", "changed", "moved"):
        out_console.print(f"{key}: {len(data[key])}", markup=False)
        for record in data[key][:20]:
            out_console.print(f"  {record}", markup=False)


@app.command("card")
def card(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION-PREFIX or a full version id.")],
    html: Annotated[Path | None, typer.Option("--html", help="Also write the HTML card.")] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a version's card (Markdown; --json for the data; --html FILE for the page)."""
    from garrison.datasets import Datasets
    from garrison.datasets.card import build_card

    with open_session(ctx, workspace, as_user) as session:
        datasets = Datasets(session)
        version = datasets.get(ref)
        built = build_card(version, datasets.records(version))
    if html is not None:
        html.write_text(built.html, encoding="utf-8")
    if as_json:
        emit_json(built.data)
    else:
        typer.echo(built.markdown)


@app.command("export")
def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION-PREFIX or a full version id.")],
    fmt: Annotated[str, typer.Option("--format", help="parquet, jsonl, hf or chat.")],
    out: Annotated[Path, typer.Option("--out", help="A new or empty directory.")],
    with_embeddings: Annotated[
        bool,
        typer.Option(
            "--with-embeddings",
            help="Add each chunk's stored vector (embedding, embedding_model; null where the "
            "pipeline stored none): chunk datasets, parquet, jsonl and hf.",
        ),
    ] = False,
    prompt_template: Annotated[
        Path | None,
        typer.Option(
            "--prompt-template",
            help="Chat format: YAML or JSON saying how a record becomes messages "
            "(system, user, assistant with ${text}, ${marking}, ${title}... placeholders).",
        ),
    ] = None,
    license_id: Annotated[
        str, typer.Option("--license", help="License id for README.md's metadata.")
    ] = "other",
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a version with its manifest, checksums, signature and card (stewards); the card
    is also README.md with Hugging Face metadata."""
    from garrison.datasets._hf import load_prompt_template
    from garrison.datasets.export import export_version

    if fmt not in ("parquet", "jsonl", "hf", "chat"):
        raise InvalidInput(f"Unknown format {fmt!r}: use parquet, jsonl, hf or chat.")
    template = load_prompt_template(prompt_template) if prompt_template is not None else None
    with open_session(ctx, workspace, as_user) as session:
        result = export_version(
            session,
            ref,
            fmt,  # type: ignore[arg-type]
            out,
            with_embeddings=with_embeddings,
            prompt_template=template,
            license_id=license_id,
        )
    data = {
        "version": result.version_id,
        "path": str(result.path),
        "format": result.format,
        "records": result.records,
        "marking": result.marking,
        "files": result.files,
    }
    if as_json:
        emit_json(data)
    else:
        out_console.print(
            f"Exported {data['records']} records [{data['marking']}] as {fmt} to {data['path']} "
            f"({len(result.files)} files, signed).",
            markup=False,
        )


@app.command("rm")
def rm(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION or a version id.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
) -> None:
    """Delete a version (stewards; audited)."""
    from garrison.datasets import Datasets

    with open_session(ctx, workspace, as_user) as session:
        version_id = Datasets(session).delete(ref)
    out_console.print(f"Deleted dataset version {version_id}.", markup=False)


@key_app.command("export")
def key_export(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the public key (PEM) here; default: print it."),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
) -> None:
    """Print (or, with --out, write) the public key that signs exports, to check them on the far
    side of an air gap. It is the public half only: printing it on a terminal is safe."""
    from garrison.datasets.export import export_public_key, public_key_pem

    with open_session(ctx, workspace, as_user) as session:
        if out is None:
            key_id, pem = public_key_pem(session)
            sys.stdout.write(pem.decode("ascii"))
            err_console.print(f"Export-signing public key {key_id}.", markup=False)
            return
        key_id = export_public_key(session, out)
    out_console.print(f"Wrote the export-signing public key {key_id} to {out}.", markup=False)


def verify(
    path: Annotated[Path, typer.Argument(help="An exported dataset directory.")],
    trusted_key: Annotated[
        Path | None, typer.Option("--trusted-key", help="Public key exported beforehand.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check an export's or an install bundle's checksums and (with --trusted-key) its
    signature; exit 1 on tampering."""
    from garrison.datasets.verify import verify_export
    from garrison.ops.bundle import is_bundle

    if is_bundle(path):
        _verify_bundle(path, trusted_key, as_json)
        return
    result = verify_export(path, trusted_key)
    if as_json:
        emit_json(
            {
                "ok": result.ok,
                "problem": result.problem,
                "bad_file": result.bad_file,
                "signature_checked": result.signature_checked,
                "key_id": result.key_id,
            }
        )
    if not result.ok:
        raise CheckFailed(f"The export at {path} failed verification: {result.problem}")
    if not as_json:
        if result.signature_checked:
            out_console.print(
                f"OK: every checksum matches and the manifest is signed by {result.key_id}.",
                markup=False,
            )
        else:
            out_console.print(
                "OK: every checksum matches. The signature was NOT checked against a trusted key "
                "(pass --trusted-key).",
                markup=False,
            )


def _verify_bundle(path: Path, trusted_key: Path | None, as_json: bool) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from garrison.core.errors import InvalidInput
    from garrison.ops.bundle import verify_bundle

    key = None
    if trusted_key is not None:
        try:
            loaded = load_pem_public_key(trusted_key.read_bytes())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{trusted_key} is not a readable PEM public key.") from exc
        if not isinstance(loaded, Ed25519PublicKey):
            raise InvalidInput(f"{trusted_key} is not an Ed25519 public key.")
        key = loaded
    result = verify_bundle(path, key)
    if as_json:
        emit_json(result.to_dict())
    if not result.ok:
        raise CheckFailed(f"The bundle at {path} failed verification: {result.problem}")
    if not as_json:
        signed = (
            f"and SHA256SUMS is signed by the release key {result.key_id}"
            if result.signature_checked
            else "The signature was NOT checked against a trusted key (pass --trusted-key)"
        )
        out_console.print(
            f"OK: bundle {result.manifest.get('version')}, all {result.files} files match "
            f"their checksums{',' if result.signature_checked else '.'} {signed}.",
            markup=False,
        )
