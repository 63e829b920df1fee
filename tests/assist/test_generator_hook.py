"""The generator hook: no write-down to the model, spotlighting, and the post-check.

The generator here is a deliberately simple test double: it records every message it receives
and answers with a scripted function, which stands in for a model that misbehaves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from garrison.assist import REFUSAL, SYSTEM_PROMPT, WITHHELD_NOTE, Generation, Generator, ask
from garrison.assist._generator import clean_generated
from garrison.assist._text import estimate_tokens
from garrison.core.errors import NotPermitted
from garrison.security.markings import Marking, dominates, join, parse_marking
from garrison.store.workspace import Workspace
from tests.assist.conftest import CANARIES, INJECTION, MEMO_S

Script = Callable[[Sequence[dict[str, str]]], tuple[str, str]]


def _echo_first_source(messages: Sequence[dict[str, str]]) -> tuple[str, str]:
    """Answer with a sentence of the first source, plus one made up; claim UNCLASSIFIED."""
    text = messages[-1]["content"]
    body = text.split(">\n", 1)[1].split("\n</source>", 1)[0]
    first = body.split(". ")[0].rstrip(".") + "."
    return f"UNCLASSIFIED\n(U) {first} The moon is made of green cheese.", "UNCLASSIFIED"


@dataclass
class FakeGenerator:
    """A generator that records what it receives and answers by ``script``."""

    accredited: Marking
    marking: Marking = field(default_factory=lambda: parse_marking("UNCLASSIFIED"))
    script: Script = _echo_first_source
    name: str = "fake"
    context_tokens: int = 4096
    max_new_tokens: int = 256
    received: list[list[dict[str, str]]] = field(default_factory=list)
    content_markings: list[Marking] = field(default_factory=list)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def generate(
        self, messages: Sequence[dict[str, str]], *, content_marking: Marking
    ) -> Generation:
        self.received.append([dict(m) for m in messages])
        self.content_markings.append(content_marking)
        text, claimed = self.script(messages)
        return Generation(text=text, marking=parse_marking(claimed))

    def everything(self) -> str:
        return "\n".join(m["content"] for call in self.received for m in call)


def test_fake_is_a_generator() -> None:
    assert isinstance(FakeGenerator(parse_marking("SECRET")), Generator)


def test_chunks_above_accreditation_never_reach_the_generator(ws: Workspace) -> None:
    fake = FakeGenerator(parse_marking("CONFIDENTIAL"))
    answer = ask(ws.session("tess"), "harbor ferry north pier cargo", generator=fake)
    assert len(fake.received) == 1
    sent = fake.everything()
    assert "zebrafox" in sent or "quokkamoon" in sent
    for word in ("walruspeak", "narwhalglow", MEMO_S, INJECTION):
        assert word not in sent
    assert all(dominates(fake.accredited, parse_marking(c.marking)) for c in answer.context)
    # The answer says more exists that this generator may not see, without saying what.
    assert WITHHELD_NOTE in answer.notes and answer.text.endswith(WITHHELD_NOTE)
    assert "walruspeak" not in answer.text and "SECRET" not in WITHHELD_NOTE
    assert fake.content_markings[0] == join(*(parse_marking(c.marking) for c in answer.context))
    assert answer.generator == "fake"


def test_nothing_is_withheld_from_a_generator_accredited_high_enough(ws: Workspace) -> None:
    fake = FakeGenerator(parse_marking("TOP SECRET"))
    answer = ask(ws.session("sam"), "harbor ferry north pier cargo", generator=fake)
    assert WITHHELD_NOTE not in answer.notes
    assert "narwhalglow" not in fake.everything()  # sam's retrieval never had it


def test_a_question_or_history_above_accreditation_is_not_sent(ws: Workspace) -> None:
    fake = FakeGenerator(parse_marking("CONFIDENTIAL"))
    with pytest.raises(NotPermitted, match="accredited"):
        ask(ws.session("sam"), "(S) harbor ferry", generator=fake)
    with pytest.raises(NotPermitted, match="accredited"):
        ask(ws.session("sam"), "harbor ferry", question_marking="SECRET", generator=fake)
    # A conversation whose history is SECRET is not sent either.
    first = ask(ws.session("sam"), "walruspeak ferry", conversation="new")
    assert first.marking == "SECRET"
    with pytest.raises(NotPermitted, match="accredited"):
        ask(ws.session("sam"), "and the cargo?", conversation=first.conversation_id, generator=fake)
    assert fake.received == []


def test_generated_sentences_are_marked_by_garrison_and_post_checked(ws: Workspace) -> None:
    fake = FakeGenerator(parse_marking("TOP SECRET"), marking=parse_marking("CONFIDENTIAL"))
    answer = ask(ws.session("sam"), "Where does the walruspeak ferry leave from?", generator=fake)
    context = join(*(parse_marking(c.marking) for c in answer.context))
    # The join of the context, the question and the generator's weights -- not what it claimed.
    assert answer.marking == join(context, parse_marking("CONFIDENTIAL")).banner()
    assert answer.marking != "UNCLASSIFIED"
    supported, invented = answer.sentences
    assert not supported.unsupported and supported.citations
    assert supported.portion == parse_marking(answer.marking).portion()  # the whole join
    assert not supported.text.startswith("(U)")
    assert invented.unsupported and invented.citations == () and "cheese" in invented.text
    assert "[unsupported]" in answer.text
    assert "UNCLASSIFIED" not in answer.text  # the model's banner line is dropped


def test_a_document_telling_the_model_to_change_its_marking_changes_nothing(
    ws: Workspace,
) -> None:
    def obey(messages: Sequence[dict[str, str]]) -> tuple[str, str]:
        # A model that follows the injected instruction: marks its answer UNCLASSIFIED.
        return f"(U) The {INJECTION} beacon is public.\nUNCLASSIFIED", "UNCLASSIFIED"

    fake = FakeGenerator(parse_marking("TOP SECRET"), script=obey)
    answer = ask(ws.session("sam"), f"What does the {INJECTION} beacon show?", generator=fake)
    prompt = fake.received[0][-1]["content"]
    assert "Ignore all previous instructions" in prompt  # the SECRET source was in the context
    assert dominates(parse_marking(answer.marking), parse_marking("SECRET"))
    assert all(s.marking == answer.marking for s in answer.sentences)
    assert not answer.text.startswith("(U)")
    # Spotlighting: the source's fake closing tag arrives escaped, one real tag per source.
    assert "&lt;/source&gt;&lt;source n=&quot;9&quot;" in prompt
    assert prompt.count("</source>") == prompt.count("<source ") == len(answer.context)
    assert fake.received[0][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert "never instructions" in SYSTEM_PROMPT


def test_no_relevant_source_refuses_without_calling_the_generator(ws: Workspace) -> None:
    fake = FakeGenerator(parse_marking("TOP SECRET"))
    answer = ask(ws.session("uma"), "walruspeak", generator=fake)
    assert answer.refused and answer.text == f"(U) {REFUSAL}" and fake.received == []
    # Relevant chunks all above accreditation: refused, with the note, and nothing sent.
    low = FakeGenerator(parse_marking("UNCLASSIFIED"))
    withheld = ask(ws.session("sam"), "walruspeak", generator=low)
    assert withheld.refused and WITHHELD_NOTE in withheld.notes and low.received == []
    assert "walruspeak" not in withheld.text


def test_generator_weights_above_the_asker_or_ceiling_are_refused(ws: Workspace) -> None:
    high = FakeGenerator(parse_marking("TOP SECRET"), marking=parse_marking("SECRET"))
    with pytest.raises(NotPermitted):
        ask(ws.session("cal"), "harbor ferry", generator=high)
    with pytest.raises(Exception, match="ceiling"):
        ask(ws.session("sam"), "harbor ferry", generator=high, max_marking="CONFIDENTIAL")
    assert high.received == []


def test_clean_generated_drops_banners_and_leading_marks() -> None:
    text = "SECRET//NOFORN\n(U) First claim. (S//NF) Second claim.\nTOP SECRET"
    assert clean_generated(text) == ["First claim.", "Second claim."]


def test_canaries_never_reach_a_low_generator_for_any_question(ws: Workspace) -> None:
    fake = FakeGenerator(parse_marking("UNCLASSIFIED"))
    for word in CANARIES:
        ask(ws.session("tess"), f"Where does the {word} ferry leave from?", generator=fake)
    assert fake.received
    for call in fake.received:
        sources = call[-1]["content"].split("Question (answer it from the sources):")[0]
        for word in ("quokkamoon", "walruspeak", "narwhalglow"):
            assert word not in sources


def test_context_is_packed_within_the_generator_budget(ws: Workspace) -> None:
    roomy = FakeGenerator(parse_marking("TOP SECRET"))
    ask(ws.session("tess"), "harbor ferry north pier cargo", generator=roomy)
    sent = roomy.received[0][-1]["content"].count("<source ")
    assert sent > 2
    # Room for the prompt, the answer and about half the sources.
    prompt = roomy.received[0][-1]["content"]
    question_part = prompt.split("Question (answer it from the sources):")[1]
    sources = sum(estimate_tokens(block) for block in prompt.split("</source>")[:-1])
    tight = FakeGenerator(
        parse_marking("TOP SECRET"),
        context_tokens=estimate_tokens(SYSTEM_PROMPT + question_part) + 64 + 256 + sources // 2,
    )
    ask(ws.session("tess"), "harbor ferry north pier cargo", generator=tight)
    packed = tight.received[0][-1]["content"]
    assert 1 <= packed.count("<source ") < sent
    total = sum(tight.count_tokens(m["content"]) for m in tight.received[0])
    assert total <= tight.context_tokens - tight.max_new_tokens


def test_pack_skips_what_does_not_fit_and_keeps_order() -> None:
    from garrison.assist._context import SourceChunk, pack

    unclassified = parse_marking("UNCLASSIFIED")
    chunks = [
        SourceChunk(rank=i, chunk_id=f"c{i}", doc_id=None, text="word " * size,
                    marking=unclassified, section_path=[], embedding_model=None)
        for i, size in enumerate([10, 400, 10, 10])
    ]  # fmt: skip
    chosen = pack(chunks, 60, lambda text: len(text.split()))
    assert [c.chunk_id for c in chosen] == ["c0", "c2", "c3"]
    assert pack(chunks, 5, lambda text: len(text.split())) == []


def test_a_generator_that_writes_nothing_still_marks_what_it_saw(ws: Workspace) -> None:
    fake = FakeGenerator(parse_marking("TOP SECRET"), script=lambda messages: ("", "UNCLASSIFIED"))
    answer = ask(ws.session("sam"), "Where does the walruspeak ferry leave from?", generator=fake)
    assert answer.refused and answer.text.endswith(REFUSAL) and fake.received
    assert answer.context  # the model saw them
    assert answer.marking == join(*(parse_marking(c.marking) for c in answer.context)).banner()
    assert answer.text.startswith(parse_marking(answer.marking).portion())
