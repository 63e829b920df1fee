"""The fresh workspace a red-team run attacks: the same people and models, none of the data.

:func:`scratch_workspace` creates a new workspace in a temporary folder inside the workspace under
test (``redteam-*``), with its own keys and catalog, and copies into it what the attacks need
to be faithful: the site's marking registry additions, every user (name, clearance, SCI, SAP,
citizenship, groups, grants, roles) and every generator the evaluator may read (an endpoint
is registered again with the same URL, model, accreditation and marking, unprobed; a local
model with the same verified files). No document, chunk, dataset, conversation or key is
copied. The planted documents are written to a temporary folder outside every workspace
(ingest never reads from inside one). Both are removed afterwards unless ``keep`` is set.

The pipeline the documents are run through is :data:`FAST` (the hashing embedder) unless the
caller gives another.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from garrison.core.errors import CheckFailed
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import Models, register_endpoint, register_local
from garrison.models._generators import ENDPOINT_RUNTIME, LOCAL_RUNTIME
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import NATO_MEMBERS
from garrison.security.subjects import SYSTEM_SUBJECT_NAME
from garrison.store.session import Session, SubjectSpec
from garrison.store.workspace import Workspace

__all__ = ["FAST", "ScratchWorkspace", "ingest_folder", "scratch_workspace"]

#: The pipeline a red-team run uses by default: fast and offline.
FAST = """
name: redteam
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 96, overlap_tokens: 8}
  - embed: {model: hashing}
"""


@dataclass
class ScratchWorkspace:
    """The test workspace, its folder, and each copied generator's new ref by name."""

    workspace: Workspace
    folder: Path
    generators: dict[str, str]
    users: list[str]
    #: Where planted documents are written: outside every workspace (ingest refuses input
    #: from inside one).
    documents: Path

    def system(self) -> Session:
        return self.workspace.session()


def _copy_nato_members(target: Session, members: set[str]) -> None:
    """Make the scratch workspace's NATO-MEMBERS the source's (a new one holds the default)."""
    current = {
        e["name"]: set(e["members"] or ()) for e in target.registry_list() if e["kind"] == "group"
    }.get(NATO_MEMBERS, set())
    if members - current:
        target.registry_add("group", NATO_MEMBERS, members=tuple(sorted(members - current)))
    if current - members:
        target.registry_remove("group", NATO_MEMBERS, members=tuple(sorted(current - members)))


@contextmanager
def scratch_workspace(session: Session, *, keep: bool = False) -> Iterator[ScratchWorkspace]:
    """A fresh workspace with ``session``'s workspace's users and readable generators."""
    source = session.workspace
    folder = Path(tempfile.mkdtemp(prefix="redteam-", dir=source.root))
    try:
        ws = Workspace.init(folder / "ws", system_high=source.system_high.banner(), db_url=None)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        target = ws.session()
        admin = source.session()  # reading users and the registry is bookkeeping, not data
        for entry in admin.registry_list():
            if entry["kind"] == "group" and entry["name"] == NATO_MEMBERS:
                _copy_nato_members(target, set(entry["members"] or ()))
                continue
            target.registry_add(
                entry["kind"],
                entry["name"],
                members=tuple(entry["members"]) if entry.get("members") else None,
                description=entry.get("description"),
                pid=entry.get("pid"),
            )
        users = []
        for subject in admin.list_users():
            if subject.name == SYSTEM_SUBJECT_NAME or subject.disabled:
                continue
            target.add_user(subject.name, replace(SubjectSpec.of(subject), dn=None))
            users.append(subject.name)
        generators = _copy_generators(session, target, folder)
        documents = Path(tempfile.mkdtemp(prefix="garrison-redteam-"))
        try:
            yield ScratchWorkspace(ws, folder, generators, users, documents)
        finally:
            if not keep:
                shutil.rmtree(documents, ignore_errors=True)
    finally:
        ws.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _copy_generators(session: Session, target: Session, folder: Path) -> dict[str, str]:
    """Register again in ``target`` every generator ``session`` may read (newest per name)."""
    models = Models(session)
    out: dict[str, str] = {}
    for version in models.list(kind="generator"):
        if version.name in out:
            continue  # newest first: the latest version of each name
        params = version.manifest.get("parameters", {})
        runtime = params.get("runtime")
        if runtime == ENDPOINT_RUNTIME:
            endpoint = params.get("endpoint", {})
            key = params.get("api_key_file")
            copied = register_endpoint(
                target,
                version.name,
                base_url=str(endpoint["base_url"]),
                model=str(endpoint["model"]),
                accredited=target.parse_marking(str(params["accredited"])),
                marking=version.marking,
                api_key_file=Path(key) if key else None,
                probe=False,
                card=version.card,
                context_tokens=params.get("context_tokens"),
            )
        elif runtime == LOCAL_RUNTIME:
            files = models.folder(version)
            copied = register_local(
                target, version.name, path=files, marking=version.marking, card=version.card
            )
        else:
            raise CheckFailed(
                f"Generator {version.ref} has runtime {runtime!r}, which the red team cannot copy."
            )
        out[version.name] = copied.ref
    return out


def ingest_folder(system: Session, folder: Path, pipeline: str = FAST) -> list[str]:
    """Ingest ``folder`` and run the pipeline; the ids of the documents parsed. A planted
    document that does not parse makes the run invalid: CheckFailed names it."""
    report = ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    bad = [r for r in report.results if r.outcome not in ("parsed", "unchanged")]
    if bad:
        raise CheckFailed(
            f"The planted document {Path(bad[0].uri).name} was {bad[0].outcome} "
            f"({bad[0].reason}); the red-team run would not test what it claims."
        )
    run_pipeline(system, parse_pipeline(pipeline, source="redteam.yaml"))
    return [r.doc_id for r in report.results if r.doc_id]
