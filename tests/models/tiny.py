"""Tiny real models for tests, built from a config with seeded random weights (no download).

:func:`tiny_sentence_transformer` writes a 2-layer, 32-wide BERT with a WordPiece tokenizer
trained on the given texts, wrapped as a sentence-transformers folder (mean pooling,
normalization). It goes through every real code path -- tokenizer, transformer, pooling,
saving and loading -- in well under a second per batch on CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

WORDS = [
    "report",
    "convoy",
    "logistics",
    "fuel",
    "supply",
    "depot",
    "bridge",
    "river",
    "patrol",
    "radar",
    "signal",
    "intercept",
    "weather",
    "storm",
    "satellite",
    "imagery",
    "harbor",
    "vessel",
    "cargo",
    "manifest",
    "budget",
    "audit",
    "training",
    "exercise",
    "medical",
    "clinic",
    "vaccine",
    "network",
    "server",
    "outage",
    "firmware",
    "patch",
    "aircraft",
    "runway",
    "maintenance",
    "schedule",
    "personnel",
    "roster",
    "inventory",
    "warehouse",
    "map",
    "grid",
    "sector",
    "northern",
    "southern",
    "eastern",
    "western",
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
]


def corpus_texts() -> list[str]:
    """Deterministic sentences over :data:`WORDS` for training tokenizers."""
    out = []
    for i in range(200):
        out.append(" ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 9)))
    return out


def tiny_sentence_transformer(
    folder: Path, texts: Iterable[str] | None = None, *, seed: int = 0, max_seq_length: int = 128
) -> Path:
    """Write a tiny sentence-transformers model to ``folder`` and return it."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece
    from tokenizers.processors import TemplateProcessing
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(WordPiece(unk_token="[UNK]"))  # type: ignore[arg-type]
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)  # type: ignore[assignment]
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # type: ignore[assignment]
    trainer = WordPieceTrainer(vocab_size=400, special_tokens=specials)  # type: ignore[arg-type]
    tok.train_from_iterator(list(texts or corpus_texts()), trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(  # type: ignore[assignment]
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    hf_dir = folder / "_hf"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_seq_length,
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_seq_length + 2,
    )
    BertModel(config).save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)
    word = models.Transformer(str(hf_dir), max_seq_length=max_seq_length)
    pooling = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu")
    model.save(str(folder))
    import shutil

    shutil.rmtree(hf_dir)
    return folder
