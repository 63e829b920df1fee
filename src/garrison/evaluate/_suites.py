"""Evaluation suites: versioned, immutable, content-addressed sets of marked items.

``create`` validates every item, marks it (the join of its sources), and writes a manifest --
the suite's kind, holdout flag and source, and its items' content ids in order -- whose SHA-256
is the version id, so the same items always give the same id. The items' payloads (questions,
texts, references) are data: they are sealed in the workspace's encrypted blob store, and each
item has its own marked, bound catalog row, so every read is filtered and counted per item. A
reader sees only the items whose marking they dominate; a suite with none looks missing.

A holdout suite can be run, and its metadata and counts are visible to readers who dominate its
items, but its items are shown and exported only to the evaluator role: the authors of the
systems under test never see them.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.errors import CheckFailed, InvalidInput, NotFound, NotPermitted
from garrison.evaluate._suite_items import (
    DOCUMENT_SLICES,
    KINDS,
    NewItem,
    SuiteItem,
    canonical,
    item_content,
    item_id,
    validate_item,
)
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, join
from garrison.security.policy import Action, can_export, permits
from garrison.store.eval_suites import (
    ReadableSuiteRow,
    add_suite,
    readable_item_rows,
    readable_suite_rows,
    stored_suite,
    version_numbers,
)
from garrison.store.session import Session

__all__ = ["KINDS", "NewItem", "SuiteItem", "SuiteVersion", "Suites", "manifest_id"]

MANIFEST_FORMAT = 1
SNAPSHOT_FORMAT = 1
_FULL_ID = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: The most items one suite may hold.
MAX_ITEMS = 200_000


def manifest_id(manifest: Mapping[str, Any]) -> str:
    """A suite version's id: the SHA-256 of its canonical manifest."""
    import hashlib

    return hashlib.sha256(canonical(dict(manifest))).hexdigest()


@dataclass(frozen=True)
class SuiteVersion:
    """A suite version as one reader sees it: ``count`` and ``marking`` cover the items they
    may read, ``version`` is its place among the versions of its name they may read."""

    id: str
    name: str
    version: int
    kind: str
    marking: Marking
    holdout: bool
    count: int
    created_by: str
    created_at: str
    source: dict[str, Any]

    @property
    def ref(self) -> str:
        """``NAME@ID12``: how the suite is named to other commands."""
        return f"{self.name}@{self.id[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "marking": self.marking.banner(),
            "holdout": self.holdout,
            "count": self.count,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "source": self.source,
        }


class Suites:
    """Evaluation suites through a session: reads filtered per item, changes audited."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- reading -------------------------------------------------------------------------------

    def _rows(self, ref: str) -> ReadableSuiteRow:
        """``NAME`` (its latest readable version), ``NAME@ID-PREFIX`` or a full id."""
        ref = str(ref)
        rows: builtins.list[ReadableSuiteRow] = []
        name, at, prefix = ref.strip().partition("@")
        if len(ref) > 300 or any(ord(c) < 32 or c == "\x7f" for c in ref):
            pass  # no suite is named so: nothing to look up
        elif at:
            if not name or not prefix:
                raise InvalidInput(f"A suite reference is NAME, NAME@VERSION or an id: {ref!r}.")
            rows = readable_suite_rows(self.session, name=name, id_prefix=prefix.lower())
            if len({r.row.id for r in rows}) > 1:
                raise InvalidInput(
                    f"The version prefix {prefix!r} of {name} is ambiguous; give more of it."
                )
        else:
            rows = readable_suite_rows(self.session, name=name)
            if not rows and _FULL_ID.fullmatch(name.lower()):
                rows = readable_suite_rows(self.session, id_prefix=name.lower())
        if not rows:
            self.session.audit(
                AuditAction.EVAL_SUITE_READ,
                object_id=str(ref)[:128],
                decision="deny",
                reason="no such suite or no readable item",
            )
            raise NotFound(f"No evaluation suite {ref[:300]}.")
        return rows[0]

    def _version(self, found: ReadableSuiteRow, numbers: dict[int, int]) -> SuiteVersion:
        row = found.row
        if manifest_id(row.manifest) != row.id:
            # The manifest is what the id hashes: one edited outside Garrison is used by no one.
            self.session.workspace._integrity_failure("eval_suites", row.id)
            raise NotFound(f"No evaluation suite {row.name}@{row.id[:12]}.")
        return SuiteVersion(
            id=row.id,
            name=row.name,
            version=numbers.get(row.version, 1),
            kind=row.kind,
            marking=found.marking,
            holdout=bool(row.holdout),
            count=found.readable_count,
            created_by=row.created_by,
            created_at=row.created_at.isoformat(),
            source=self._source(found),
        )

    def _source(self, found: ReadableSuiteRow) -> dict[str, Any]:
        """How the suite was built -- in full to readers of all its items; to others only
        its type (a dataset's name or a file's is marked like the whole suite)."""
        source = dict(found.row.manifest.get("source") or {})
        whole = found.suite_marking
        if whole is not None and self.session.can_read(whole):
            return source
        return {"type": source.get("type")} if "type" in source else {}

    def get(self, ref: str) -> SuiteVersion:
        """One suite version with an item the subject may read; NotFound otherwise."""
        found = self._rows(ref)
        version = self._version(found, version_numbers(self.session, found.row.name))
        self.session.audit(
            AuditAction.EVAL_SUITE_READ,
            object_id=version.id,
            object_marking=version.marking.banner(),
            details={"items": version.count},
        )
        return version

    def list(self) -> builtins.list[SuiteVersion]:
        """Every suite version with an item the subject may read, newest first."""
        rows = readable_suite_rows(self.session)
        numbers: dict[str, dict[int, int]] = {}
        for found in rows:
            numbers.setdefault(found.row.name, {})
        for name in numbers:
            ordered = sorted(r.row.version for r in rows if r.row.name == name)
            numbers[name] = {v: place for place, v in enumerate(ordered, start=1)}
        out = []
        for found in rows:
            try:
                out.append(self._version(found, numbers[found.row.name]))
            except NotFound:
                continue
        self.session.audit(AuditAction.EVAL_SUITE_LIST, details={"count": len(out)})
        return out

    def _check_holdout(self, version: SuiteVersion, action: AuditAction) -> None:
        if version.holdout and not permits(self.session.subject, Action.EVALUATE):
            self.session.audit(
                action,
                object_id=version.id,
                decision="deny",
                reason="holdout items are for the evaluator role only",
            )
            raise NotPermitted(
                f"{self.session.subject.name} may not see the items of the holdout suite "
                f"{version.ref}: only the evaluator role may."
            )

    def _payloads(self, version: SuiteVersion, snapshot: str) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.session.workspace.blobs.get(snapshot))
        except (ValueError, NotFound) as exc:
            raise CheckFailed(
                f"The items of suite {version.ref} cannot be read back; run "
                "`garrison audit verify`."
            ) from exc
        return {str(p["id"]): p for p in data.get("items", [])}

    def items(self, ref: str, *, offset: int = 0, limit: int | None = None) -> Iterator[SuiteItem]:
        """The items of ``ref`` the subject may read, in suite order (``offset``/``limit``
        count readable items). Holdout items only to the evaluator role (NotPermitted)."""
        return iter(self.read_items(ref, offset=offset, limit=limit))

    def read_items(
        self, ref: str, *, offset: int = 0, limit: int | None = None
    ) -> builtins.list[SuiteItem]:
        """:meth:`items` as a list."""
        if offset < 0 or (limit is not None and limit < 0):
            raise InvalidInput("--offset and --limit are whole numbers of items.")
        found = self._rows(ref)
        version = self._version(found, {})
        self._check_holdout(version, AuditAction.EVAL_SUITE_READ)
        rows = readable_item_rows(self.session, version.id, offset=offset, limit=limit)
        payloads = self._payloads(version, found.row.snapshot) if rows else {}
        out = [self._item(version, found.row.kind, r, payloads) for r in rows]
        self.session.audit(
            AuditAction.EVAL_SUITE_READ,
            object_id=version.id,
            object_marking=join(*(i.marking for i in out)).banner() if out else None,
            details={"items": len(out), "offset": offset},
        )
        return out

    def _item(
        self, version: SuiteVersion, kind: str, row: Any, payloads: Mapping[str, Any]
    ) -> SuiteItem:
        payload = payloads.get(row.item_id)
        content = None
        if payload is not None:
            content = {k: payload.get(k) for k in _CONTENT_KEYS}
            if payload.get("record") is not None:
                content["record"] = str(payload["record"])
        # Fail closed: the sealed payload must hash to the catalog's id and carry its marking.
        if (
            content is None
            or item_id(content) != row.item_id
            or content["marking"] != row.marking.banner()
            or content["kind"] != kind
        ):
            self.session.workspace._integrity_failure("eval_suite_items", row.item_id)
            raise CheckFailed(
                f"An item of suite {version.ref} fails its integrity check; run "
                "`garrison audit verify`."
            )
        cluster, slices = row.cluster, dict(row.slices)
        source = self._readable_source(str(content["source_marking"]))
        if source is None:
            # What the item says of a document the reader may not read stays with it.
            cluster = row.item_id
            slices = {k: v for k, v in slices.items() if k not in DOCUMENT_SLICES}
        return SuiteItem(
            id=row.item_id,
            position=row.position,
            kind=kind,
            input=dict(content["input"]),
            expected=dict(content["expected"]),
            marking=row.marking,
            sources=tuple(content["sources"]),
            cluster=cluster,
            slices=slices,
            source_marking=source,
            record=content.get("record"),
        )

    def _readable_source(self, banner: str) -> Marking | None:
        """The source document's marking when the reader may read it, else None (fail closed)."""
        try:
            marking = self.session.parse_marking(banner)
        except InvalidInput:
            return None
        return marking if self.session.can_read(marking) else None

    # -- changing ------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        kind: str,
        items: Iterable[NewItem],
        *,
        holdout: bool = False,
        source: Mapping[str, Any] | None = None,
    ) -> SuiteVersion:
        """Store a suite version (evaluator role); the same items give the same id."""
        self.session.require(Action.EVALUATE, AuditAction.EVAL_SUITE_CREATE, object_id=name[:128])
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidInput(
                "A suite name is 1-128 letters, digits, '.', '_' or '-', starting with a letter "
                "or digit."
            )
        if kind not in KINDS:
            raise InvalidInput(f"Unknown suite kind {kind!r}: use {', '.join(KINDS)}.")
        built = self._build(kind, items)
        if not built:
            raise InvalidInput("A suite needs at least one item.")
        marking = join(*(m for _, _, m in built))
        source_meta = json.loads(canonical(dict(source or {})))
        manifest = {
            "format": MANIFEST_FORMAT,
            "kind": kind,
            "holdout": bool(holdout),
            "source": source_meta,
            "items": [iid for iid, _, _ in built],
        }
        suite_id = manifest_id(manifest)
        existing = stored_suite(self.session, suite_id)
        if existing is not None:
            if existing[0] != name:
                raise InvalidInput(
                    f"These items are already the suite {existing[0]}@{suite_id[:12]}; use it."
                )
            return self.get(suite_id)
        snapshot = self.session.workspace.blobs.put(
            canonical(
                {
                    "format": SNAPSHOT_FORMAT,
                    "items": [dict(content, id=iid) for iid, content, _ in built],
                }
            )
        )
        add_suite(
            self.session,
            suite_id=suite_id,
            name=name,
            kind=kind,
            holdout=bool(holdout),
            marking=marking,
            manifest=manifest,
            snapshot=snapshot,
            items=[
                (iid, position, m, content["cluster"] or iid, dict(content["slices"]))
                for position, (iid, content, m) in enumerate(built)
            ],
        )
        return self.get(suite_id)

    def from_dataset(
        self,
        name: str,
        dataset: str,
        *,
        kind: str = "classification",
        text_field: str = "text",
        label_field: str,
        holdout: bool = False,
    ) -> SuiteVersion:
        """A suite from a dataset version's records (``DS@V``), each marked like its record."""
        from garrison.evaluate._suite_build import dataset_items

        self.session.require(Action.EVALUATE, AuditAction.EVAL_SUITE_CREATE, object_id=name[:128])
        items, source = dataset_items(
            self.session, dataset, kind=kind, text_field=text_field, label_field=label_field
        )
        return self.create(name, kind, items, holdout=holdout, source=source)

    def from_jsonl(
        self,
        name: str,
        path: Path | str,
        kind: str,
        marking: str | None = None,
        *,
        holdout: bool = False,
    ) -> SuiteVersion:
        """A suite from a JSONL file: one item a line, each with its ``marking`` (joined with
        ``marking`` when given; a line with neither fails the file)."""
        from garrison.evaluate._suite_build import jsonl_items

        self.session.require(Action.EVALUATE, AuditAction.EVAL_SUITE_CREATE, object_id=name[:128])
        if kind not in KINDS:
            raise InvalidInput(f"Unknown suite kind {kind!r}: use {', '.join(KINDS)}.")
        items, source = jsonl_items(self.session, Path(path), kind=kind, marking=marking)
        return self.create(name, kind, items, holdout=holdout, source=source)

    def from_jsonl_text(
        self,
        name: str,
        text: str,
        kind: str,
        marking: str | None = None,
        *,
        holdout: bool = False,
    ) -> SuiteVersion:
        """:meth:`from_jsonl` on JSONL text (an API request's body) rather than a file."""
        from garrison.evaluate._suite_build import lines_items, text_lines

        self.session.require(Action.EVALUATE, AuditAction.EVAL_SUITE_CREATE, object_id=name[:128])
        if kind not in KINDS:
            raise InvalidInput(f"Unknown suite kind {kind!r}: use {', '.join(KINDS)}.")
        items, source = lines_items(self.session, text_lines(text), kind=kind, marking=marking)
        return self.create(name, kind, items, holdout=holdout, source=source)

    def generate_from_docs(
        self,
        name: str,
        *,
        documents: Sequence[str] | None = None,
        limit: int = 50,
        generator: str | None = None,
        seed: int = 0,
        unanswerable: float = 0.2,
        holdout: bool = False,
    ) -> SuiteVersion:
        """A QA suite made from the indexed documents the subject may read (see
        :mod:`garrison.evaluate._suite_docs`): each item cites the chunk it came from and is
        marked like it; the same corpus and seed give the same suite."""
        from garrison.evaluate._suite_docs import doc_items

        self.session.require(Action.EVALUATE, AuditAction.EVAL_SUITE_CREATE, object_id=name[:128])
        items, source = doc_items(
            self.session,
            documents=documents,
            limit=limit,
            generator=generator,
            seed=seed,
            unanswerable=unanswerable,
        )
        return self.create(name, "qa", items, holdout=holdout, source=source)

    def _build(
        self, kind: str, items: Iterable[NewItem]
    ) -> builtins.list[tuple[str, dict[str, Any], Marking]]:
        built: builtins.list[tuple[str, dict[str, Any], Marking]] = []
        seen: dict[str, str] = {}
        for item in items:
            if len(built) >= MAX_ITEMS:
                raise InvalidInput(f"A suite holds at most {MAX_ITEMS} items.")
            if not isinstance(item.marking, Marking):
                raise InvalidInput(f"{item.where}: the item has no marking.")
            decision = self.session.can_read(item.marking)
            if not decision:
                self.session.audit(
                    AuditAction.EVAL_SUITE_CREATE,
                    decision="deny",
                    reason=f"{item.where}: {decision.reason}",
                )
                raise NotPermitted(
                    f"{item.where} is marked {item.marking.banner()}, above what "
                    f"{self.session.subject.name} may read."
                )
            inp, exp = validate_item(kind, item)
            slices = {str(k): str(v) for k, v in item.slices.items() if v is not None}
            slices["marking"] = item.marking.banner()
            content = item_content(
                kind,
                inp,
                exp,
                item.marking,
                tuple(item.sources),
                item.cluster,
                slices,
                item.source_marking,
                item.record,
            )
            iid = item_id(content)
            if iid in seen:
                raise InvalidInput(f"{item.where} repeats {seen[iid]}.")
            seen[iid] = item.where
            built.append((iid, content, item.marking))
        return built

    def export(self, ref: str, path: Path | str) -> dict[str, Any]:
        """Write the readable items of ``ref`` to one JSONL file (audited; see
        :mod:`garrison.evaluate._suite_export`)."""
        from garrison.evaluate._suite_export import export_suite

        return export_suite(self, ref, Path(path))

    def exportable(self, version: SuiteVersion, items: Sequence[SuiteItem]) -> None:
        """Raise NotPermitted (audited) unless the subject may export every item's marking."""
        self._check_holdout(version, AuditAction.EVAL_SUITE_EXPORT)
        high = self.session.workspace.system_high
        for marking in {i.marking.banner(): i.marking for i in items}.values():
            decision = can_export(self.session.subject, marking, system_high=high)
            if not decision:
                self.session.audit(
                    AuditAction.EVAL_SUITE_EXPORT,
                    object_id=version.id,
                    object_marking=marking.banner(),
                    decision="deny",
                    reason=decision.reason,
                )
                raise NotPermitted(
                    f"{self.session.subject.name} may not export items marked "
                    f"{marking.banner()} (access only through DISPLAY ONLY is not enough)."
                )


_CONTENT_KEYS = (
    "kind",
    "input",
    "expected",
    "marking",
    "sources",
    "cluster",
    "slices",
    "source_marking",
)
