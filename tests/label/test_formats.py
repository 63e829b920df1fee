"""Label export formats: the structure of each (CoNLL, spaCy JSON, COCO, YOLO, preference
JSONL, Label Studio), Label Studio round trips for every task kind, and the marking every file
carries (in the file where the format has a place, and in its sidecar), failing closed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from garrison.core.errors import InvalidInput, MarkingError
from garrison.label import (
    EXPORTERS,
    LabelRecord,
    coco_dataset,
    conll_text,
    export_records,
    file_marking,
    label_studio_tasks,
    preference_lines,
    read_label_studio,
    read_label_studio_tasks,
    records_from_rows,
    spacy_docs,
    write_labels,
    yolo_files,
)

TEXT = "Ada Lovelace met Charles Babbage in London."


def span_records() -> list[LabelRecord]:
    return [
        LabelRecord(
            "r1",
            "SECRET//NOFORN",
            "spans",
            [(0, 12, "PER"), (17, 32, "PER"), (36, 42, "LOC")],
            text=TEXT,
            annotator="ann",
            schema_version=2,
        ),
        LabelRecord(
            "r2",
            "CONFIDENTIAL",
            "spans",
            [(0, 4, "ORG")],
            text="NATO met.",
            annotator="bob",
            schema_version=2,
        ),
    ]


def box_records() -> list[LabelRecord]:
    def box(record_id: str, marking: str, boxes: list[tuple[float, ...]], who: str) -> LabelRecord:
        return LabelRecord(
            record_id,
            marking,
            "boxes",
            boxes,
            image=f"images/{record_id}.jpg",
            width=640,
            height=480,
            annotator=who,
            schema_version=1,
        )

    return [
        box("img1", "SECRET", [(10, 20, 100, 50, "truck"), (300, 200, 64, 48, "person")], "ann"),
        box("img2", "UNCLASSIFIED", [(0, 0, 640, 480, "truck")], "ann"),
    ]


def class_records() -> list[LabelRecord]:
    return [
        LabelRecord(
            "t1", "SECRET", "classification", "logistics", text="Fuel convoy.", annotator="a"
        ),
        LabelRecord(
            "t1", "SECRET", "classification", "weather", text="Fuel convoy.", annotator="b"
        ),
        LabelRecord(
            "t2", "CONFIDENTIAL", "multilabel", ["network", "weather"], text="Storm outage."
        ),
    ]


def preference_records() -> list[LabelRecord]:
    return [
        LabelRecord(
            "p1",
            "SECRET",
            "preference",
            {"chosen": "The depot is north.", "rejected": "I cannot say."},
            text="Where is the depot?",
            annotator="a",
            schema_version=3,
        ),
        LabelRecord(
            "p1",
            "SECRET",
            "preference",
            {"chosen": "I cannot say.", "rejected": "The depot is north."},
            text="Where is the depot?",
            annotator="b",
            schema_version=3,
        ),
    ]


def text_records() -> list[LabelRecord]:
    return [
        LabelRecord(
            "q1",
            "CONFIDENTIAL",
            "text",
            "Tuesday, at the northern depot.",
            text="When does the convoy arrive?",
            annotator="a",
            labeled_at="2026-12-01T10:00:00Z",
        )
    ]


# -- records -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "spans", "value": [(0, 99, "X")], "text": "short"}, "span outside its text"),
        ({"kind": "spans", "value": [(3, 3, "X")], "text": "short"}, "span outside its text"),
        ({"kind": "spans", "value": [(0, 1, "X")]}, "no text"),
        ({"kind": "boxes", "value": [(0, 0, 1, 1, "X")]}, "no image"),
        ({"kind": "boxes", "value": [(0, 0, 0, 1, "X")], "image": "a.jpg"}, "not on its image"),
        ({"kind": "classification", "value": 3}, "not text"),
        ({"kind": "multilabel", "value": "abc"}, "not a list"),
        ({"kind": "preference", "value": {"chosen": "a"}, "text": "p"}, "chosen"),
        ({"kind": "preference", "value": {"chosen": "a", "rejected": "b"}}, "prompt"),
        ({"kind": "ranking", "value": "a"}, "unknown kind"),
        ({"kind": "text", "value": "a", "marking": " "}, "no marking"),
    ],
)
def test_a_label_record_is_checked_when_made(kwargs: dict[str, object], message: str) -> None:
    fields = {"record_id": "r", "marking": "SECRET", **kwargs}
    with pytest.raises(InvalidInput, match=message):
        LabelRecord(**fields)  # type: ignore[arg-type]


def test_the_file_marking_is_the_join_of_the_records() -> None:
    assert file_marking(span_records()) == "SECRET//NOFORN"
    rel = [
        LabelRecord("a", "SECRET//REL TO USA, GBR", "text", "x"),
        LabelRecord("b", "CONFIDENTIAL//REL TO USA, GBR, AUS", "text", "y"),
    ]
    assert file_marking(rel) == "SECRET//REL TO USA, GBR"
    assert file_marking([]) == "UNCLASSIFIED"


# -- each format's structure -----------------------------------------------------------------------


def test_conll_writes_bio_tags_per_token_with_marking_comments() -> None:
    lines = conll_text(span_records()).splitlines()
    assert lines[0] == "# marking = SECRET//NOFORN"
    first = lines.index("# record_id = r1")
    assert lines[first + 1 : first + 4] == [
        "# marking = SECRET//NOFORN",
        "# annotator = ann",
        "# schema_version = 2",
    ]
    rows = [line.split("\t") for line in lines[first + 4 : first + 13]]
    assert rows == [
        ["Ada", "B-PER"],
        ["Lovelace", "I-PER"],
        ["met", "O"],
        ["Charles", "B-PER"],
        ["Babbage", "I-PER"],
        ["in", "O"],
        ["London", "B-LOC"],
        [".", "O"],
        [""],
    ]
    second = lines.index("# record_id = r2")
    assert lines[second + 1] == "# marking = CONFIDENTIAL"
    assert lines[second + 4 : second + 7] == ["NATO\tB-ORG", "met\tO", ".\tO"]
    with pytest.raises(InvalidInput, match="spans"):
        conll_text(class_records())


def test_spacy_json_has_text_ents_cats_tokens_and_marking() -> None:
    docs = spacy_docs(span_records() + class_records()[:1] + class_records()[2:])
    first = docs[0]
    assert first["text"] == TEXT
    assert [(e["start"], e["end"], e["label"]) for e in first["ents"]] == [
        (0, 12, "PER"),
        (17, 32, "PER"),
        (36, 42, "LOC"),
    ]
    assert [TEXT[e["start"] : e["end"]] for e in first["ents"]] == [
        "Ada Lovelace",
        "Charles Babbage",
        "London",
    ]
    assert first["tokens"][1] == {"id": 1, "start": 4, "end": 12}
    assert first["_"] == {
        "record_id": "r1",
        "marking": "SECRET//NOFORN",
        "annotator": "ann",
        "schema_version": 2,
    }
    assert docs[2]["cats"] == {"logistics": 1.0} and docs[2]["ents"] == []
    assert docs[3]["cats"] == {"network": 1.0, "weather": 1.0}
    with pytest.raises(InvalidInput):
        spacy_docs(box_records())


def test_coco_has_images_annotations_categories_and_markings() -> None:
    second_opinion = LabelRecord(
        "img1",
        "SECRET",
        "boxes",
        [(12, 20, 100, 50, "truck")],
        image="images/img1.jpg",
        width=640,
        height=480,
        annotator="bob",
    )
    coco = coco_dataset([*box_records(), second_opinion])
    assert coco["info"]["marking"] == "SECRET"
    assert [
        (i["id"], i["file_name"], i["width"], i["height"], i["marking"]) for i in coco["images"]
    ] == [
        (1, "images/img1.jpg", 640, 480, "SECRET"),
        (2, "images/img2.jpg", 640, 480, "UNCLASSIFIED"),
    ]
    assert coco["categories"] == [
        {"id": 1, "name": "person", "supercategory": ""},
        {"id": 2, "name": "truck", "supercategory": ""},
    ]
    annotations = coco["annotations"]
    assert [(a["id"], a["image_id"], a["category_id"], a["bbox"]) for a in annotations] == [
        (1, 1, 2, [10.0, 20.0, 100.0, 50.0]),
        (2, 1, 1, [300.0, 200.0, 64.0, 48.0]),
        (3, 2, 2, [0.0, 0.0, 640.0, 480.0]),
        (4, 1, 2, [12.0, 20.0, 100.0, 50.0]),
    ]
    assert annotations[0]["area"] == 5000.0 and annotations[0]["iscrowd"] == 0
    assert annotations[3]["annotator"] == "bob" and annotations[2]["marking"] == "UNCLASSIFIED"
    with pytest.raises(InvalidInput, match="not among the classes"):
        coco_dataset(box_records(), classes=["truck"])
    unsized = LabelRecord("x", "SECRET", "boxes", [(0, 0, 1, 1, "a")], image="x.jpg")
    with pytest.raises(InvalidInput, match="width and height"):
        coco_dataset([unsized])


def test_yolo_writes_normalized_centers_one_file_per_image() -> None:
    files = yolo_files(box_records(), classes=["person", "truck"])
    content, marking = files["labels/img1.txt"]
    assert marking == "SECRET"
    assert content.splitlines() == [
        "1 0.093750 0.093750 0.156250 0.104167",
        "0 0.518750 0.466667 0.100000 0.100000",
    ]
    assert files["labels/img2.txt"] == ("1 0.500000 0.500000 1.000000 1.000000\n", "UNCLASSIFIED")
    data = yaml.safe_load(files["data.yaml"][0])
    assert data == {"nc": 2, "names": ["person", "truck"], "marking": "SECRET"}
    with pytest.raises(InvalidInput, match="aggregate"):
        yolo_files(box_records() + box_records()[:1])


def test_preference_jsonl_has_prompt_chosen_rejected_and_marking() -> None:
    rows = [json.loads(line) for line in preference_lines(preference_records()).splitlines()]
    assert rows[0] == {
        "prompt": "Where is the depot?",
        "chosen": "The depot is north.",
        "rejected": "I cannot say.",
        "record_id": "p1",
        "marking": "SECRET",
        "annotator": "a",
        "schema_version": 3,
    }
    assert rows[1]["chosen"] == "I cannot say."
    with pytest.raises(InvalidInput):
        preference_lines(text_records())


def test_label_studio_tasks_have_data_and_results_in_its_shapes() -> None:
    tasks = label_studio_tasks(class_records())
    assert len(tasks) == 2  # the two replicas of t1 are two annotations of one task
    assert tasks[0]["data"] == {"text": "Fuel convoy.", "record_id": "t1", "marking": "SECRET"}
    results = [a["result"][0] for a in tasks[0]["annotations"]]
    assert [r["type"] for r in results] == ["choices", "choices"]
    assert [r["value"]["choices"] for r in results] == [["logistics"], ["weather"]]
    assert [a["completed_by"] for a in tasks[0]["annotations"]] == ["a", "b"]
    box = label_studio_tasks(box_records())[0]["annotations"][0]["result"][0]
    assert box["type"] == "rectanglelabels"
    assert (box["original_width"], box["original_height"]) == (640, 480)
    assert box["value"]["x"] == pytest.approx(100 * 10 / 640)
    assert box["value"]["height"] == pytest.approx(100 * 50 / 480)
    assert box["value"]["rectanglelabels"] == ["truck"]
    span = label_studio_tasks(span_records())[0]["annotations"][0]["result"][1]
    assert span["type"] == "labels"
    assert span["value"] == {"start": 17, "end": 32, "text": "Charles Babbage", "labels": ["PER"]}
    pair = label_studio_tasks(preference_records())[0]
    assert pair["data"]["left"] == "The depot is north."
    assert [a["result"][0]["value"]["selected"] for a in pair["annotations"]] == ["left", "right"]
    answer = label_studio_tasks(text_records())[0]["annotations"][0]
    assert answer["result"][0]["value"] == {"text": ["Tuesday, at the northern depot."]}
    assert answer["created_at"] == "2026-12-01T10:00:00Z"


def test_label_studio_refuses_replicas_that_disagree_on_the_record() -> None:
    other = LabelRecord("t1", "TOP SECRET", "classification", "x", text="Fuel convoy.")
    with pytest.raises(InvalidInput, match="disagree"):
        label_studio_tasks([class_records()[0], other])


# -- Label Studio round trips --------------------------------------------------------------------

ALL_KINDS = {
    "spans": span_records,
    "boxes": box_records,
    "classification": class_records,
    "preference": preference_records,
    "text": text_records,
}


@pytest.mark.parametrize("kind", sorted(ALL_KINDS))
def test_label_studio_round_trips_every_kind(kind: str, tmp_path: Path) -> None:
    records = ALL_KINDS[kind]()
    written = write_labels(records, "label-studio", tmp_path / "tasks.json")
    assert written == [tmp_path / "tasks.json", tmp_path / "tasks.json.marking"]
    back = read_label_studio(tmp_path / "tasks.json")
    assert back == records


def test_label_studio_import_of_its_own_export_shape() -> None:
    """A task as Label Studio itself writes it: numeric user ids, a cancelled annotation, no
    meta, predictions beside the annotations."""
    tasks = [
        {
            "id": 7,
            "data": {"text": "Storm over the harbor.", "marking": "cui"},
            "annotations": [
                {
                    "id": 1,
                    "completed_by": 3,
                    "result": [
                        {
                            "from_name": "sentiment",
                            "to_name": "text",
                            "type": "choices",
                            "value": {"choices": ["weather"]},
                        }
                    ],
                },
                {
                    "id": 2,
                    "completed_by": {"id": 4, "email": "b@x"},
                    "was_cancelled": True,
                    "result": [],
                },
                {
                    "id": 3,
                    "completed_by": {"id": 5, "email": "c@x"},
                    "result": [
                        {
                            "from_name": "ner",
                            "to_name": "text",
                            "type": "labels",
                            "value": {"start": 0, "end": 5, "text": "Storm", "labels": ["EVENT"]},
                        }
                    ],
                },
            ],
            "predictions": [{"result": [], "score": 0.4}],
        }
    ]
    records = read_label_studio_tasks(tasks)
    assert [(r.record_id, r.kind, r.value, r.annotator, r.marking) for r in records] == [
        ("7", "classification", "weather", "3", "CUI"),
        ("7", "spans", ((0, 5, "EVENT"),), "c@x", "CUI"),
    ]


def test_label_studio_import_fails_closed_on_markings() -> None:
    task = {
        "id": 1,
        "data": {"text": "x"},
        "annotations": [{"result": [{"type": "choices", "value": {"choices": ["a"]}}]}],
    }
    with pytest.raises(InvalidInput, match="no marking"):
        read_label_studio_tasks([task])
    assert read_label_studio_tasks([task], default_marking="SECRET")[0].marking == "SECRET"
    bad = {**task, "data": {"text": "x", "marking": "SECRET//NOFORN//REL TO GBR"}}
    with pytest.raises(MarkingError):
        read_label_studio_tasks([bad])
    broken = {
        **task,
        "data": {"text": "x", "marking": "SECRET"},
        "annotations": [{"result": [{"type": "rectanglelabels", "value": {"x": 1}}]}],
    }
    with pytest.raises(InvalidInput, match="would not write"):
        read_label_studio_tasks([broken])
    with pytest.raises(InvalidInput, match="JSON list"):
        read_label_studio_tasks({"tasks": []})  # type: ignore[arg-type]


def test_label_studio_import_of_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(InvalidInput, match="not a readable"):
        read_label_studio(path)


# -- every file carries its marking ----------------------------------------------------------------

FOR_FORMAT = {
    "conll": span_records,
    "spacy": span_records,
    "coco": box_records,
    "yolo": box_records,
    "preference": preference_records,
    "label-studio": class_records,
}


def test_every_format_is_covered() -> None:
    assert set(FOR_FORMAT) == set(EXPORTERS)


def _in_file_marking(fmt: str, path: Path) -> set[str]:
    """The markings the file itself states, where its format has a place for them."""
    text = path.read_text()
    if fmt == "conll":
        return {
            line.split(" = ", 1)[1] for line in text.splitlines() if line.startswith("# marking")
        }
    if fmt == "spacy":
        return {d["_"]["marking"] for d in json.loads(text)}
    if fmt == "coco":
        data = json.loads(text)
        return {data["info"]["marking"]} | {i["marking"] for i in data["images"]}
    if fmt == "preference":
        return {json.loads(line)["marking"] for line in text.splitlines()}
    if fmt == "label-studio":
        return {t["data"]["marking"] for t in json.loads(text)}
    if path.name == "data.yaml":
        return {yaml.safe_load(text)["marking"]}
    return set()  # a YOLO label file has no place: its sidecar carries it


@pytest.mark.parametrize("fmt", sorted(FOR_FORMAT))
def test_every_exported_file_carries_its_marking(fmt: str, tmp_path: Path) -> None:
    records = FOR_FORMAT[fmt]()
    destination = tmp_path / ("out" if fmt == "yolo" else "out.file")
    written = write_labels(records, fmt, destination)
    files = [p for p in written if p.suffix != ".marking"]
    assert files and all(p.is_file() for p in written)
    assert len(written) == 2 * len(files)
    overall = file_marking(records)
    per_record = {r.marking for r in records}
    assert len(per_record) > 1 or fmt in ("preference", "label-studio")
    for path in files:
        sidecar = path.with_name(path.name + ".marking")
        assert sidecar in written
        stated = sidecar.read_text().strip()
        inside = _in_file_marking(fmt, path)
        if fmt == "yolo" and path.name != "data.yaml":
            image = next(r for r in records if r.file_stem == path.stem)
            assert stated == image.marking and inside == set()
            continue
        assert stated == overall
        if fmt in ("conll", "coco"):  # a file-level place and one per record
            assert inside == per_record | {overall}
        elif fmt == "yolo":
            assert inside == {overall}
        else:
            assert inside == per_record


@pytest.mark.parametrize("fmt", sorted(FOR_FORMAT))
def test_nothing_is_written_when_a_marking_does_not_parse(fmt: str, tmp_path: Path) -> None:
    records = FOR_FORMAT[fmt]()
    first = records[0]
    bad = LabelRecord(
        first.record_id + "-bad",
        "SECRET//NOT A CONTROL",
        first.kind,
        first.value,
        text=first.text,
        image=(first.image or "x.jpg").replace(first.record_id, first.record_id + "-bad"),
        width=first.width,
        height=first.height,
    )
    with pytest.raises(MarkingError):
        write_labels([*records, bad], fmt, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", sorted(set(FOR_FORMAT) - {"label-studio"}))
def test_each_format_refuses_labels_it_cannot_hold(fmt: str, tmp_path: Path) -> None:
    # Free-text answers have a place only in Label Studio's JSON, which holds every kind.
    with pytest.raises(InvalidInput):
        write_labels(text_records(), fmt, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="Unknown label format"):
        write_labels(text_records(), "pascal-voc", tmp_path / "out")


# -- a labeling project's exported rows ------------------------------------------------------------


def _row(
    record_id: str, label: object, replicas: list[tuple[str, object, str]], **extra: object
) -> dict[str, object]:
    return {
        "id": record_id,
        "text": extra.pop("text", "Ada met Babbage."),
        "fields": extra.pop("fields", {}),
        "marking": extra.pop("marking", "SECRET"),
        "label": label,
        "labels": {
            "aggregate": label,
            "annotators": [
                {
                    "annotator": who,
                    "value": value,
                    "kind": "annotation",
                    "schema_version": 4,
                    "marking": "CONFIDENTIAL",
                    "review_state": state,
                    "submitted_at": "2026-12-01T10:00:00+00:00",
                }
                for who, value, state in replicas
            ],
        },
    }


def test_project_rows_become_aggregate_records_or_replicas() -> None:
    rows = [
        _row(
            "r1", "x", [("ann", "x", "pending"), ("bob", "y", "rejected"), ("cy", "x", "accepted")]
        ),
        _row("r2", None, [("ann", "x", "pending"), ("bob", "y", "pending")]),  # a tie
        _row("r3", ["x", "y"], [("ann", ["x", "y"], "pending")], marking="CONFIDENTIAL"),
    ]
    aggregate = records_from_rows("classification", rows)
    assert [(r.record_id, r.kind, r.value, r.marking, r.annotator) for r in aggregate] == [
        ("r1", "classification", "x", "SECRET", None),
        ("r3", "multilabel", ("x", "y"), "CONFIDENTIAL", None),
    ]
    replicas = records_from_rows("classification", rows, replicas=True)
    assert [(r.record_id, r.annotator, r.value, r.schema_version) for r in replicas] == [
        ("r1", "ann", "x", 4),
        ("r1", "cy", "x", 4),  # bob's label was rejected in review
        ("r2", "ann", "x", 4),
        ("r2", "bob", "y", 4),
        ("r3", "ann", ("x", "y"), 4),
    ]
    # Every replica carries the row's marking (the record's joined with all its labels').
    assert {r.marking for r in replicas if r.record_id == "r1"} == {"SECRET"}


def test_project_rows_of_every_task_type_convert() -> None:
    spans = records_from_rows("spans", [_row("s", [{"start": 0, "end": 3, "type": "PER"}], [])])
    assert spans[0].value == ((0, 3, "PER"),)
    boxes = records_from_rows(
        "boxes",
        [
            _row(
                "b",
                [{"x": 1, "y": 2, "w": 3, "h": 4, "label": "car"}],
                [],
                fields={"path": "cam/b.jpg", "width": 64, "height": 48},
            )
        ],
    )
    assert (boxes[0].image, boxes[0].width, boxes[0].height) == ("cam/b.jpg", 64, 48)
    assert boxes[0].value == ((1.0, 2.0, 3.0, 4.0, "car"),)
    pair = [
        _row("p1", "b", [], fields={"a": "first", "b": "second", "prompt": "Which?"}),
        _row("p2", "a", [], text="left one ||| right one"),
        _row("p3", "tie", [], fields={"a": "x", "b": "y"}),  # prefers neither: left out
    ]
    prefs = records_from_rows("preference", pair, schema={"separator": "|||"})
    assert [(r.record_id, r.text, r.value) for r in prefs] == [
        ("p1", "Which?", {"chosen": "second", "rejected": "first"}),
        ("p2", "", {"chosen": "left one", "rejected": "right one"}),
    ]
    with pytest.raises(InvalidInput, match="two texts"):
        records_from_rows("preference", [_row("p", "a", [])])
    answers = records_from_rows("answer", [_row("q", "Tuesday.", [])])
    assert (answers[0].kind, answers[0].value) == ("text", "Tuesday.")


def test_export_records_writes_a_project_in_each_format(tmp_path: Path) -> None:
    rows = [
        _row("r1", "x", [("ann", "x", "pending"), ("bob", "y", "pending")]),
        _row("r2", "y", [("ann", "y", "pending")], marking="TOP SECRET"),
    ]
    written = export_records("label-studio", "classification", rows, tmp_path / "ls.json")
    assert (tmp_path / "ls.json.marking").read_text().strip() == "TOP SECRET"
    back = read_label_studio(written[0])
    assert [(r.record_id, r.annotator, r.value) for r in back] == [
        ("r1", "ann", "x"),
        ("r1", "bob", "y"),
        ("r2", "ann", "y"),
    ]
    export_records("spacy", "classification", rows, tmp_path / "docs.json")
    docs = json.loads((tmp_path / "docs.json").read_text())
    assert [d["cats"] for d in docs] == [{"x": 1.0}, {"y": 1.0}]
    with pytest.raises(InvalidInput, match="Unknown label format"):
        export_records("csv", "classification", rows, tmp_path / "x.csv")
