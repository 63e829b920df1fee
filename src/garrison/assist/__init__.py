"""The assistant: questions answered from the index, only from what the asker may read, cited
and marked. It builds on search and models.

:func:`ask` is the entry point (:mod:`garrison.assist._ask` describes the steps). The built-in
extractive answerer needs no generative model; a generator plugs in through the
:class:`Generator` protocol (:mod:`garrison.assist._generator`), which the assistant never lets
receive anything its accreditation does not dominate; a generator registered in the model
registry is named by ``NAME[@VERSION]`` (:func:`registered_generator`). Conversations are
stored encrypted and marked (:class:`Conversations`).
"""

from garrison.assist._answer import (
    EXTRACTIVE,
    REFUSAL,
    WITHHELD_NOTE,
    Answer,
    AnswerSentence,
    Citation,
    ContextEntry,
)
from garrison.assist._ask import DEFAULT_K, MAX_K, ask
from garrison.assist._context import SYSTEM_PROMPT, build_messages
from garrison.assist._conversations import NEW_CONVERSATION, Conversation, Conversations
from garrison.assist._generator import Generation, Generator
from garrison.assist._registered import RegisteredGenerator, registered_generator

__all__ = [
    "DEFAULT_K",
    "EXTRACTIVE",
    "MAX_K",
    "NEW_CONVERSATION",
    "REFUSAL",
    "SYSTEM_PROMPT",
    "WITHHELD_NOTE",
    "Answer",
    "AnswerSentence",
    "Citation",
    "ContextEntry",
    "Conversation",
    "Conversations",
    "Generation",
    "Generator",
    "RegisteredGenerator",
    "ask",
    "build_messages",
    "registered_generator",
]
