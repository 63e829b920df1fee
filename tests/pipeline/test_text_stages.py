"""The text stages: normalize, language and quality."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from pydantic import ValidationError

from garrison.pipeline import STAGES, Item
from garrison.pipeline.stages.language import (
    DEFAULT_LANGUAGES,
    LanguageParams,
    LanguageStage,
    supported_languages,
)
from garrison.pipeline.stages.normalize import NormalizeParams, NormalizeStage, normalize_text
from garrison.pipeline.stages.quality import QUALITY_FLAGS, QualityParams, QualityStage
from garrison.security.markings import parse_marking


def make_item(text: str, *, id: str = "e1", type: str = "NarrativeText", **kw: Any) -> Item:
    return Item(
        id=id,
        doc_id="d1",
        kind="element",
        text=text,
        original_text=text,
        marking=parse_marking("UNCLASSIFIED"),
        element_ids=(id,),
        type=type,
        **kw,
    )


def normalize(text: str, **params: bool) -> str:
    return normalize_text(text, NormalizeParams(**params))


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test (the stages must work air-gapped)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a text stage tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_stages_are_registered() -> None:
    assert STAGES["normalize"] is NormalizeStage
    assert STAGES["language"] is LanguageStage
    assert STAGES["quality"] is QualityStage


# --- normalize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ｆｕｌｌ－ｗｉｄｔｈ １２３", "Full-width 123"),
        ("the ﬁnal ﬂight", "the final flight"),
        ("x²", "x2"),
    ],
)
def test_nfkc(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_nfkc_can_be_switched_off() -> None:
    assert normalize("the ﬁnal", nfkc=False) == "the ﬁnal"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CafÃ©", "Café"),
        ("donâ€™t", "don’t"),
        ("â€™", "’"),
        ("naÃ¯ve rÃ©sumÃ©", "naïve résumé"),
    ],
)
def test_mojibake_is_repaired(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_mojibake_fix_leaves_other_text_alone() -> None:
    # ftfy's other fixers (quote uncurling, HTML unescaping) are not ours to apply.
    text = "“Quoted” &amp; don’t, Ελληνικά, 日本語"
    assert normalize(text) == text
    assert normalize("CafÃ©", fix_mojibake=False) == "CafÃ©"


def test_controls_zero_width_and_bom_are_removed() -> None:
    raw = "\ufeffAl\u200bpha\x00 be\u00adta\x07\x1b gam\u2060ma\x9f\x81"
    assert normalize(raw, fix_mojibake=False) == "Alpha beta gamma"


def test_c1_controls_read_as_windows_1252_when_fixing_mojibake() -> None:
    # A lone C1 control is nearly always a Windows-1252 byte decoded as Latin-1: ftfy restores it.
    assert normalize("Wait\x85 what\x94") == "Wait... what”"


def test_tab_and_newline_survive_control_stripping() -> None:
    assert normalize("a\tb\nc", collapse_whitespace=False) == "a\tb\nc"
    assert normalize("a\r\nb\rc", collapse_whitespace=False) == "a\nb\nc"


def test_zwnj_is_kept_for_persian() -> None:
    word = "می\u200cخواهم"  # "I want": the ZWNJ is part of the spelling
    assert normalize(word) == word


def test_controls_kept_when_switched_off() -> None:
    assert normalize("a\u200bb", strip_control=False) == "a\u200bb"


def test_whitespace_is_collapsed() -> None:
    raw = "  one   two \u00a0 three  \n\n\n\n four\t\t five   \n"
    assert normalize(raw) == "one two three\n\nfour\tfive"


def test_whitespace_kept_when_switched_off() -> None:
    assert normalize("a   b", collapse_whitespace=False) == "a   b"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("the infor-\nmation was", "the information was"),
        ("the infor- \n  mation was", "the information was"),
        ("a well-known fact", "a well-known fact"),  # compound on one line: kept
        ("Jean-\nPierre", "Jean-\nPierre"),  # capital after the break: a real hyphen
        ("COVID-\n19", "COVID-\n19"),
        ("a dash -\nthen more", "a dash -\nthen more"),  # spaced dash, not a broken word
    ],
)
def test_dehyphenation(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_dehyphenation_can_be_switched_off() -> None:
    assert normalize("infor-\nmation", dehyphenate=False) == "infor-\nmation"


def test_normalize_stage_keeps_original_and_appends_lineage() -> None:
    stage = NormalizeStage(NormalizeParams())
    item = make_item("CafÃ©  ﬁne")
    dropped = make_item("CafÃ©", id="e2")
    dropped.dropped = "pii"
    out = stage.process([item, dropped], stage.open_resources({}))
    assert out == [item, dropped]
    assert item.text == "Café fine"
    assert item.original_text == "CafÃ©  ﬁne"
    assert [(s.stage, s.version, s.parents) for s in item.lineage] == [("normalize", "1", ("e1",))]
    assert dropped.text == "CafÃ©" and dropped.lineage == []


def test_normalize_stage_marks_a_failing_item_and_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    import ftfy

    def boom(text: str) -> str:
        if "bad" in text:
            raise RuntimeError("cannot decode")
        return text

    monkeypatch.setattr(ftfy, "fix_encoding", boom)
    stage = NormalizeStage(NormalizeParams())
    bad, good = make_item("bad", id="b"), make_item("good  text", id="g")
    stage.process([bad, good], None)
    assert bad.failed == "normalize: RuntimeError: cannot decode" and bad.text == "bad"
    assert good.failed is None and good.text == "good text"
    assert len(bad.lineage) == len(good.lineage) == 1


# --- language ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> Any:
    """One detector for the module: building it with 16 languages takes a couple of seconds."""
    return LanguageStage(LanguageParams()).open_resources({})


SENTENCES = {
    "en": "The supply convoy reached the forward base without incident.",
    "fr": "Le convoi de ravitaillement est arrivé à la base sans incident.",
    "de": "Der Versorgungskonvoi erreichte die vordere Basis ohne Zwischenfall.",
    "es": "El convoy de suministros llegó a la base avanzada sin incidentes.",
    "it": "Il convoglio di rifornimenti è arrivato alla base senza incidenti.",
    "pt": "O comboio de abastecimento chegou à base avançada sem incidentes.",
    "nl": "Het bevoorradingskonvooi bereikte de basis zonder incidenten.",
    "ru": "Колонна снабжения прибыла на передовую базу без происшествий.",
    "uk": "Колона постачання прибула на передову базу без інцидентів.",
    "pl": "Konwój zaopatrzeniowy dotarł do wysuniętej bazy bez incydentów.",
    "tr": "İkmal konvoyu ileri üsse sorunsuz bir şekilde ulaştı.",
    "ar": "وصلت قافلة الإمدادات إلى القاعدة الأمامية دون أي حوادث.",
    "fa": "کاروان تدارکات بدون هیچ حادثه‌ای به پایگاه پیشرو رسید.",
    "zh": "补给车队顺利抵达前方基地，没有发生任何事故。我们明天继续出发。",
    "ja": "補給部隊は何事もなく前線基地に到着しました。明日また出発します。",
    "ko": "보급 호송대는 아무 사고 없이 전방 기지에 도착했습니다.",
}


@pytest.mark.parametrize(("lang", "text"), SENTENCES.items(), ids=list(SENTENCES))
def test_language_of_sentences(detector: Any, lang: str, text: str) -> None:
    stage = LanguageStage(LanguageParams())
    item = make_item(text)
    stage.process([item], detector)
    assert item.language == lang
    assert item.language_confidence is not None and 0.5 < item.language_confidence <= 1.0
    assert [s.stage for s in item.lineage] == ["language"]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Merci beaucoup, à demain !", "fr"),  # 26 chars, just above min_chars
        ("Vielen Dank für alles!", "de"),
        ("Спасибо за вашу помощь", "ru"),
    ],
)
def test_language_of_short_sentences(detector: Any, text: str, lang: str) -> None:
    item = make_item(text)
    LanguageStage(LanguageParams()).process([item], detector)
    assert item.language == lang


@pytest.mark.parametrize("text", ["Thank you", "  OK, merci  ", "0123456789012345678", ""])
def test_text_below_min_chars_has_no_language(detector: Any, text: str) -> None:
    item = make_item(text)
    LanguageStage(LanguageParams()).process([item], detector)
    assert item.language is None and item.language_confidence == 0.0


def test_text_without_letters_has_no_language(detector: Any) -> None:
    item = make_item("12345 67890 --- 2024-01-01 !!! ???")
    LanguageStage(LanguageParams()).process([item], detector)
    assert item.language is None and item.language_confidence == 0.0


def test_ambiguous_text_gets_low_confidence(detector: Any) -> None:
    # Words shared by several Romance languages: whatever is chosen, it is not a sure call.
    item = make_item("Hotel, taxi, pizza, radio, piano, idea")
    LanguageStage(LanguageParams()).process([item], detector)
    assert item.language_confidence is not None and item.language_confidence < 0.9


def test_min_chars_is_configurable(detector: Any) -> None:
    item = make_item("Guten Morgen")
    LanguageStage(LanguageParams(min_chars=5)).process([item], detector)
    assert item.language == "de"


def test_detector_is_built_once_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    import lingua

    stage = LanguageStage(LanguageParams(languages=["en", "fr"]))
    opened: list[int] = []
    builds: list[int] = []
    real_open, real_build = stage.open_resources, lingua.LanguageDetectorBuilder.build

    def counting_open(resources: dict[str, Any]) -> Any:
        opened.append(1)
        return real_open(resources)

    def counting_build(self: Any) -> Any:
        builds.append(1)
        return real_build(self)

    monkeypatch.setattr(stage, "open_resources", counting_open)
    monkeypatch.setattr(lingua.LanguageDetectorBuilder, "build", counting_build)
    # What an executor's worker does: open once, then process every batch with the resource.
    resource = stage.open_resources({})
    for batch in range(3):
        items = [make_item(SENTENCES["en"], id=f"b{batch}"), make_item(SENTENCES["fr"])]
        stage.process(items, resource)
        assert [i.language for i in items] == ["en", "fr"]
    assert len(opened) == 1 and len(builds) == 1


def test_restricted_languages_only_choose_among_them() -> None:
    stage = LanguageStage(LanguageParams(languages=["EN", "de", "de"]))
    assert stage.params.languages == ["de", "en"]  # normalized: stable params hash
    item = make_item(SENTENCES["nl"])
    stage.process([item], stage.open_resources({}))
    assert item.language in {"de", "en"}


def test_default_languages_are_supported() -> None:
    assert set(DEFAULT_LANGUAGES) <= supported_languages()
    assert {"en", "fr", "de", "es", "ru", "ar", "zh", "ja", "ko", "uk", "fa"} <= set(
        DEFAULT_LANGUAGES
    )


@pytest.mark.parametrize("languages", [["xx"], ["en", "klingon"], []])
def test_unknown_language_codes_are_params_errors(languages: list[str]) -> None:
    with pytest.raises(ValidationError, match="language"):
        LanguageParams(languages=languages)


def test_language_skips_dropped_and_marks_failures(detector: Any) -> None:
    class Broken:
        def compute_language_confidence_values(self, text: str) -> Any:
            raise RuntimeError("model corrupt")

    dropped = make_item(SENTENCES["en"], id="d")
    dropped.dropped = "quality:too-short"
    item = make_item(SENTENCES["en"])
    LanguageStage(LanguageParams()).process([dropped, item], Broken())
    assert dropped.lineage == [] and dropped.language is None
    assert item.failed == "language: RuntimeError: model corrupt"
    assert len(item.lineage) == 1


# --- quality -----------------------------------------------------------------------------------

GOOD = "The committee approved next year's budget after a short debate."


def assess(item: Item, **params: Any) -> Item:
    stage = QualityStage(QualityParams(**params))
    stage.process([item], stage.open_resources({}))
    return item


def test_clean_text_has_scores_and_no_flags() -> None:
    item = assess(make_item(GOOD, language="en", language_confidence=0.97))
    assert item.flags == []
    assert set(item.quality) == {
        "chars",
        "symbol_ratio",
        "alpha_ratio",
        "repeated_line_ratio",
        "language_confidence",
    }
    assert item.quality["chars"] == len(GOOD)
    assert item.quality["language_confidence"] == 0.97
    assert [s.stage for s in item.lineage] == ["quality"]
    assert item.dropped is None


@pytest.mark.parametrize(("n", "flagged"), [(19, True), (20, False)])
def test_too_short(n: int, flagged: bool) -> None:
    item = assess(make_item("a" * n))
    assert ("too-short" in item.flags) is flagged


@pytest.mark.parametrize(
    ("symbols", "flagged"),
    [(3, False), (4, True)],  # 3/10 = 0.30 is not above 0.3; 4/10 is
)
def test_mostly_symbols(symbols: int, flagged: bool) -> None:
    text = "#" * symbols + "a" * (10 - symbols)
    item = assess(make_item(text), min_chars=0)
    assert item.quality["symbol_ratio"] == pytest.approx(symbols / 10)
    assert ("mostly-symbols" in item.flags) is flagged


@pytest.mark.parametrize(
    ("letters", "flagged"),
    [(5, False), (4, True)],  # 5/10 letters meets 0.5; 4/10 is below
)
def test_low_alpha(letters: int, flagged: bool) -> None:
    text = "a" * letters + " " + "1" * (10 - letters)  # spaces do not count
    item = assess(make_item(text), min_chars=0)
    assert item.quality["alpha_ratio"] == pytest.approx(letters / 10)
    assert ("low-alpha" in item.flags) is flagged


def test_tables_and_records_skip_alpha_and_symbol_checks() -> None:
    text = "| id | amount |\n|----|--------|\n| 1 | 12.50 |\n| 2 | 99.00 |"
    table = assess(make_item(text, type="Table"))
    record = assess(make_item("2024-01-01;12.50;99.00;--;42", type="Record"))
    prose = assess(make_item(text))
    for item in (table, record):
        assert not {"mostly-symbols", "low-alpha"} & set(item.flags)
        assert item.quality["alpha_ratio"] < 0.5  # still scored
    assert {"mostly-symbols", "low-alpha"} <= set(prose.flags)


@pytest.mark.parametrize(
    ("lines", "flagged"),
    [
        # 10 non-empty lines, 3 of them repeats: 0.3 is not above 0.3
        (["header", "header", "header", "header", "a", "b", "c", "d", "e", "f"], False),
        (["header", "header", "header", "header", "header", "b", "c", "d", "e", "f"], True),
    ],
)
def test_repeated_lines(lines: list[str], flagged: bool) -> None:
    item = assess(make_item("\n\n".join(lines)), min_chars=0, min_alpha_ratio=0.0)
    assert ("repeated-lines" in item.flags) is flagged


@pytest.mark.parametrize(
    "text",
    [
        "Copyright 2024 Example Corp. All Rights Reserved.",
        "Quarterly report -- Page 3 of 12",
        "To read the full article, CLICK HERE.",
        "You can unsubscribe from these messages at any time.",
        "CONFIDENTIALITY NOTICE: the contents of this message are private.",
        "If you are not the intended recipient, please delete this message.",
    ],
)
def test_boilerplate_is_flagged(text: str) -> None:
    assert "boilerplate" in assess(make_item(text)).flags


def test_ordinary_text_is_not_boilerplate() -> None:
    text = "We reserved all rooms on page two; the copyright office replied in March."
    assert "boilerplate" not in assess(make_item(text)).flags


def test_boilerplate_patterns_are_configurable() -> None:
    item = make_item("Generated by ReportBot for internal use only.")
    assert "boilerplate" in assess(item, boilerplate_patterns=[r"generated by \w+bot"]).flags
    assert "boilerplate" not in assess(make_item(GOOD), boilerplate_patterns=[]).flags


@pytest.mark.parametrize(("confidence", "flagged"), [(0.49, True), (0.5, False)])
def test_low_language_confidence(confidence: float, flagged: bool) -> None:
    item = assess(make_item(GOOD, language="en", language_confidence=confidence))
    assert ("low-language-confidence" in item.flags) is flagged


def test_no_detected_language_is_not_low_confidence() -> None:
    item = assess(make_item(GOOD, language=None, language_confidence=0.0))
    assert "low-language-confidence" not in item.flags
    assert item.quality["language_confidence"] == 0.0


def test_drop_flagged() -> None:
    short = assess(make_item("tiny", id="s"), drop_flagged=["boilerplate", "too-short"])
    assert short.dropped == "quality:too-short"
    assert "too-short" in short.flags
    kept = assess(make_item("tiny", id="k"))
    assert kept.dropped is None and "too-short" in kept.flags


def test_quality_skips_dropped_items_and_does_not_duplicate_flags() -> None:
    dropped = make_item("x", id="d")
    dropped.dropped = "pii"
    assess(dropped)
    assert dropped.flags == [] and dropped.quality == {} and dropped.lineage == []

    item = make_item("tiny")
    stage = QualityStage(QualityParams())
    stage.process([item], None)
    stage.process([item], None)
    assert item.flags.count("too-short") == 1


def test_quality_marks_a_failing_item_and_goes_on() -> None:
    bad = make_item(GOOD, id="b")
    bad.text = None  # type: ignore[assignment]  # what a broken upstream stage could leave
    good = make_item(GOOD, id="g")
    QualityStage(QualityParams()).process([bad, good], None)
    assert bad.failed is not None and bad.failed.startswith("quality: ")
    assert good.failed is None and good.quality["chars"] == len(GOOD)


def test_bad_regex_is_a_params_error_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"boilerplate pattern 'page \("):
        QualityParams(boilerplate_patterns=["ok", r"page (\d+"])


def test_unknown_drop_flag_is_a_params_error() -> None:
    with pytest.raises(ValidationError, match="'too-long'"):
        QualityParams(drop_flagged=["too-short", "too-long"])
    assert set(QualityParams(drop_flagged=list(QUALITY_FLAGS)).drop_flagged) == set(QUALITY_FLAGS)


@pytest.mark.parametrize(
    "field", ["max_symbol_ratio", "min_alpha_ratio", "min_language_confidence"]
)
def test_ratios_must_be_between_0_and_1(field: str) -> None:
    with pytest.raises(ValidationError):
        QualityParams(**{field: 1.5})


def test_unknown_params_are_rejected() -> None:
    with pytest.raises(ValidationError):
        QualityParams(min_char=3)  # type: ignore[call-arg]


# --- together ----------------------------------------------------------------------------------


def test_normalize_language_quality_in_sequence(detector: Any) -> None:
    item = make_item(
        "La rÃ©union a Ã©tÃ© dÃ©placÃ©e Ã  jeudi aprÃ¨s-midi, pour la deux-\niÃ¨me fois."
    )
    for stage, resource in (
        (NormalizeStage(NormalizeParams()), None),
        (LanguageStage(LanguageParams()), detector),
        (QualityStage(QualityParams()), None),
    ):
        stage.process([item], resource)
    assert item.text == "La réunion a été déplacée à jeudi après-midi, pour la deuxième fois."
    assert item.language == "fr"
    assert item.flags == []
    assert [s.stage for s in item.lineage] == ["normalize", "language", "quality"]
