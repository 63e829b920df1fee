"""``ask``: a question answered from what the asker may read, cited, and marked.

The steps, for one question:

1. the question's marking: ``question_marking`` joined with a portion mark it starts with
   (:mod:`garrison.assist._marking`); in a conversation, the history's marking joins it (the
   history is part of what the answer is made from);
2. retrieval through the asker's session (hybrid search; a ``max_marking`` ceiling filters
   before ranking), each chunk split into portion-marked sentences (:mod:`._context`);
3. relevance: every sentence is scored against the question; when none reaches the floor the
   answer is :data:`REFUSAL`, marked with the question's marking, with no citations and an empty
   context -- the same words whether or not sources the asker may not read exist;
4. answering, by the extractive answerer (the default: :mod:`._extractive`) or by a generator
   (:mod:`._generator`): the chunks that fit the budget form the context -- for a generator only
   those its accreditation dominates (the answer then says that more exists, not what);
5. marking: the answer is marked with the join of every chunk in the context (cited or not),
   of the question's marking and of the generator's own marking; an extractive sentence keeps
   its source portion's marking, a generated one takes the answer's marking;
6. compilation (MARKINGS.md section 6): when the question, the context and the answer together
   match both parts of a workspace rule, the answer is marked at least at the rule's marking
   (a ``compilation`` finding names the rule). When the asker may not read the raised marking,
   or it is above their ceiling, the answer is :data:`REFUSAL` exactly as in step 3 -- never the
   answer, and nothing that tells it apart from "no readable source answers this", even though
   each chunk alone is readable.

Every question is audited as ``ask`` with its length and marking, never its text.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from garrison.assist._answer import (
    EXTRACTIVE,
    REFUSAL,
    WITHHELD_NOTE,
    Answer,
    AnswerSentence,
    Citation,
    ContextEntry,
)
from garrison.assist._context import (
    SYSTEM_PROMPT,
    SourceChunk,
    SourceSentence,
    build_messages,
    context_marking,
    pack,
    retrieve,
)
from garrison.assist._conversations import NEW_CONVERSATION, Conversation, Conversations
from garrison.assist._extractive import (
    best_sentences,
    embedder_for,
    is_answerable,
    score_sentences,
)
from garrison.assist._generator import Generator, clean_generated, support
from garrison.assist._marking import check_ceiling, mark_question
from garrison.assist._registered import registered_generator
from garrison.assist._text import estimate_tokens
from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput, NotPermitted
from garrison.security.audit import AuditAction
from garrison.security.compilation import Compiled, apply_rules, fired_details
from garrison.security.markings import UNCLASSIFIED, Marking, dominates, join
from garrison.security.policy import Action
from garrison.store.compilation import workspace_rules
from garrison.store.session import Session

__all__ = ["DEFAULT_K", "EXTRACTIVE_BUDGET", "MAX_K", "MAX_QUESTION", "ask"]

DEFAULT_K = 8
MAX_K = 50
#: Longest question accepted (characters), as for a search query.
MAX_QUESTION = 1000
#: Context budget of the extractive answerer (tokens of the index's embedder).
EXTRACTIVE_BUDGET = 2048


def ask(
    session: Session,
    question: str,
    *,
    k: int = DEFAULT_K,
    max_marking: str | None = None,
    question_marking: str | None = None,
    generator: Generator | str | None = None,
    conversation: str | None = None,
) -> Answer:
    """Answer ``question`` from the chunks the session's subject may read.

    ``k``: how many chunks retrieval considers (1..50). ``max_marking``: a ceiling the answer's
    marking must stay under (only chunks it dominates are retrieved). ``question_marking``: the
    marking of the question (default UNCLASSIFIED; a leading portion mark is joined in).
    ``generator``: a generative model (:class:`Generator`), or the ``NAME[@VERSION]`` of a
    registered generator, opened with the session (one the asker may not read looks missing:
    NotFound); ``None`` or ``"extractive"`` for the extractive answerer. ``conversation``: an
    id to continue, :data:`NEW_CONVERSATION` to start one, or ``None`` for a question not
    kept. Audited as ``ask``.
    """
    started = perf_counter()
    session.require(Action.READ, AuditAction.ASK)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be a whole number from 1 to {MAX_K}.")
    if len(question.strip()) > MAX_QUESTION:
        raise InvalidInput(f"The question is longer than {MAX_QUESTION} characters.")
    ceiling = session.parse_marking(max_marking) if max_marking else None
    marked = mark_question(session, question, question_marking=question_marking, ceiling=ceiling)
    if not marked.text:
        raise InvalidInput("The question is empty: ask it in at least one word.")
    if isinstance(generator, str):
        generator = (
            None if generator.strip() == EXTRACTIVE else registered_generator(session, generator)
        )
    store = Conversations(session) if conversation else None
    thread: Conversation | None = None
    asked = marked.marking
    if store is not None:
        if conversation == NEW_CONVERSATION:
            thread = store.start()
        else:
            thread = store.owned(str(conversation), AuditAction.ASK)
            check_ceiling(thread.marking, ceiling, what="The conversation")
            asked = join(asked, thread.marking)
    if generator is not None:
        _check_generator(session, generator, asked, ceiling)
    earlier = thread.questions()[-1:] if thread is not None else []
    query = " ".join([*earlier, marked.text])[-MAX_QUESTION:]

    chunks = retrieve(session, query, k=k, ceiling=ceiling)
    retrieved = perf_counter()
    embedder = embedder_for(chunks)
    scored = score_sentences(marked.text, chunks, embedder, history=earlier)

    notes: list[str] = []
    placed: list[SourceChunk] = []
    sentences: list[AnswerSentence] = []
    citations: list[Citation] = []
    name = EXTRACTIVE if generator is None else generator.name
    extra: list[Marking] = []
    if is_answerable(scored):
        if generator is None:
            count = embedder.count_tokens if embedder is not None else estimate_tokens
            placed = pack(chunks, EXTRACTIVE_BUDGET, count)
            ids = {c.chunk_id for c in placed}
            for item in best_sentences([s for s in scored if s.chunk.chunk_id in ids]):
                citation = _cite(len(citations) + 1, item.chunk, item.sentence)
                citations.append(citation)
                sentences.append(
                    AnswerSentence(
                        text=" ".join(item.sentence.span.text.split()),
                        marking=citation.marking,
                        portion=citation.portion,
                        citations=(citation.n,),
                    )
                )
        else:
            visible = [c for c in chunks if dominates(generator.accredited, c.marking)]
            if len(visible) < len(chunks):
                notes.append(WITHHELD_NOTE)
            history = thread.history() if thread is not None else []
            overhead = generator.count_tokens(
                SYSTEM_PROMPT + marked.text + "".join(q + a for q, a in history)
            )
            budget = generator.context_tokens - generator.max_new_tokens - overhead - 64
            placed = pack(visible, max(budget, 0), generator.count_tokens)
            ids = {c.chunk_id for c in placed}
            content = join(asked, *(c.marking for c in placed))
            # What the generator would receive may combine a rule's parts: it is sent only when
            # the generator is accredited for, and the asker may read, the raised marking.
            said = [*earlier, *(t for turn in history for t in turn)]
            content = _compiled(session, marked.text, said, placed, [], content).marking
            sendable = (
                dominates(generator.accredited, content)
                and bool(session.can_read(content))
                and (ceiling is None or dominates(ceiling, content))
            )
            if sendable and is_answerable([s for s in scored if s.chunk.chunk_id in ids]):
                generation = generator.generate(
                    build_messages(marked.text, placed, history), content_marking=content
                )
                # The model's own word can only raise the marking, never lower it.
                extra = [generator.marking, generation.marking, content]
                whole = join(content, *extra)
                for found in support(clean_generated(generation.text), placed, embedder):
                    refs: tuple[int, ...] = ()
                    if found.source is not None:
                        citations.append(_cite(len(citations) + 1, *found.source))
                        refs = (citations[-1].n,)
                    sentences.append(
                        AnswerSentence(
                            text=found.text,
                            marking=whole.banner(),
                            portion=whole.portion(),
                            citations=refs,
                            unsupported=found.source is None,
                        )
                    )
            else:
                placed = []
    refused = not sentences
    if refused and not extra:
        # Nothing reached an answerer: the refusal draws on the question alone. (A generator
        # that was called and wrote nothing saw its context, which keeps its marking.)
        placed, citations = [], []
    in_context = context_marking(placed)
    marking = join(asked, *([in_context] if in_context is not None else []), *extra)
    compiled = _compiled(session, marked.text, earlier, placed, sentences, marking)
    withheld = compiled.raised and (
        not session.can_read(compiled.marking)
        or (ceiling is not None and not dominates(ceiling, compiled.marking))
    )
    if withheld:
        # Each chunk alone is readable, together they are not: the asker gets the refusal a
        # question with no readable source gets, with nothing of the context.
        placed, citations, sentences, refused = [], [], [], True
        in_context = None
        marking = join(asked, *extra)
    else:
        marking = compiled.marking
    if refused:
        sentences = [AnswerSentence(REFUSAL, marking.banner(), marking.portion())]
    if not session.can_read(marking):
        raise NotPermitted(
            f"The answer would be marked {marking.banner()}, above what "
            f"{session.subject.name} may read; it is not shown."
        )
    check_ceiling(marking, ceiling, what="The answer")
    finished = perf_counter()
    answer = Answer(
        question=marked.text,
        sentences=sentences,
        citations=citations,
        marking=marking.banner(),
        context_marking=(in_context or UNCLASSIFIED).banner(),
        question_marking=marked.marking.banner(),
        generator=name,
        refused=refused,
        context=[ContextEntry(c.chunk_id, c.marking.banner()) for c in placed],
        notes=notes,
        conversation_id=thread.id if thread is not None else None,
        findings=[] if withheld else fired_details(compiled),
        timings={
            "retrieval_ms": round((retrieved - started) * 1000, 3),
            "answer_ms": round((finished - retrieved) * 1000, 3),
            "total_ms": round((finished - started) * 1000, 3),
        },
    )
    session.audit(
        AuditAction.ASK,
        object_id=answer.conversation_id,
        object_marking=answer.marking,
        details={
            "question_length": len(marked.text),
            "question_marking": answer.question_marking,
            "k": k,
            "max_marking": ceiling.banner() if ceiling is not None else None,
            "context": len(placed),
            "citations": len(citations),
            "refused": answer.refused,
            "generator": name,
            "compilation": [r.name for r in compiled.fired],
            "withheld": withheld,
        },
    )
    if store is not None and thread is not None:
        store.add_turn(thread, _turn(answer), marking)
    return answer


def _compiled(
    session: Session,
    question: str,
    earlier: list[str],
    placed: list[SourceChunk],
    sentences: list[AnswerSentence],
    marking: Marking,
) -> Compiled:
    """The answer's marking raised by the workspace's compilation rules over everything it
    combines: the question (and the earlier one it was asked with), the context, the answer.
    Without a context the answer draws on the asker's own words alone: nothing to raise."""
    if not placed:
        return Compiled(marking)
    rules = workspace_rules(session)
    texts = [question, *earlier, *(c.text for c in placed), *(s.text for s in sentences)]
    return apply_rules(rules, texts, marking)


def _check_generator(
    session: Session, generator: Generator, asked: Marking, ceiling: Marking | None
) -> None:
    """No write-down to the model, and an answer its weights keep readable and under the
    ceiling."""
    if not dominates(generator.accredited, asked):
        raise NotPermitted(
            f"The question is marked {asked.banner()}, above what generator {generator.name} "
            "is accredited to receive; it was not sent."
        )
    if not session.can_read(generator.marking):
        raise NotPermitted(
            f"{session.subject.name} may not use generator {generator.name}: its weights are "
            "marked above what they may read."
        )
    check_ceiling(generator.marking, ceiling, what=f"Generator {generator.name}")


def _cite(n: int, chunk: SourceChunk, sentence: SourceSentence) -> Citation:
    return Citation(
        n=n,
        chunk_id=chunk.chunk_id,
        doc_id=chunk.doc_id,
        locator=dict(sentence.locator) if chunk.doc_id is not None else {},
        marking=sentence.marking.banner(),
        portion=sentence.marking.portion(),
        quote=sentence.span.text,
        start=sentence.span.start,
        end=sentence.span.end,
        section_path=list(chunk.section_path),
    )


def _turn(answer: Answer) -> dict[str, Any]:
    """What a conversation keeps of an answer. Document references and headings are left out:
    they were shown to a reader of the document and the headings, and the conversation is
    marked by its content, not by them, so a later reader of it might no longer read them."""
    data = answer.to_dict()
    data.pop("timings", None)
    for citation in data["citations"]:
        citation.pop("doc_id", None)
        citation["locator"] = {}
        citation["section_path"] = []  # headings may be marked above the conversation
    return {
        "question": answer.question,
        "question_marking": answer.question_marking,
        "marking": answer.marking,
        "asked_at": utc_now().isoformat(),
        "answer": data,
    }
