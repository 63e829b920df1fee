"""A tiny real causal language model for tests, built from a config (no download).

:func:`tiny_causal_lm` writes a 2-layer, 64-wide Llama with seeded random weights
(``model.safetensors``) and a word-level tokenizer trained on the test corpus, as a Hugging Face
model directory that ``AutoModelForCausalLM`` and ``AutoTokenizer`` load with
``local_files_only=True``. Its text is a random string of corpus words, but it is
deterministic: the same seed gives the same files and, decoded greedily, the same text --
which is all a test of loading, generating and serving needs. Building one takes well under a
second.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tests.models.tiny import corpus_texts

__all__ = ["CHAT_TEMPLATE", "tiny_causal_lm"]

#: A plain chat template: one "role: content" line per message, then "assistant:".
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def tiny_causal_lm(
    folder: Path,
    texts: Iterable[str] | None = None,
    *,
    seed: int = 0,
    chat_template: bool = True,
    vocab_size: int = 128,
) -> Path:
    """Write a tiny Llama model directory to ``folder`` and return it.

    ``chat_template=False`` leaves the tokenizer without one (Garrison then writes a plain
    "role: content" prompt itself).
    """
    import torch
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()
    tok = Tokenizer(WordLevel(unk_token="<unk>"))  # type: ignore[arg-type]
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
    trainer = WordLevelTrainer(  # type: ignore[arg-type]
        vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False
    )
    corpus = list(texts or corpus_texts())
    corpus += ["user: " + t for t in corpus[:20]] + ["assistant: " + t for t in corpus[20:40]]
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=512,
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.token_to_id("<s>"),
        eos_token_id=tok.token_to_id("</s>"),
        pad_token_id=tok.token_to_id("<pad>"),
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder
