"""Local generators: a Hugging Face causal language model run inside Garrison.

A local model directory is registered like any model (every file hashed and stored as an
encrypted blob) and loaded from the verified folder :meth:`Models.folder` materializes, with
``local_files_only=True`` and ``trust_remote_code=False``. Only safetensors weights load:
pickle-capable files (``*.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``, ``*.pkl``, ...) are refused at
registration and again at load, and so is a model that ships its own Python code. The prompt
is the tokenizer's chat template when it has one, else one ``role: content`` line per message
followed by ``assistant:``. Decoding is greedy at temperature 0, else sampled from a seeded
generator of its own (the process's random state is left alone).
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from garrison.core.errors import CheckFailed, InvalidInput, MissingExtra
from garrison.models._gen_http import Completion, Piece, SamplingOptions
from garrison.models.embedding import _go_offline, _quiet

__all__ = [
    "PICKLE_SUFFIXES",
    "LocalLM",
    "check_local_files",
    "check_local_folder",
    "plain_prompt",
]

#: File suffixes that may hold pickled Python objects (which run code when loaded).
PICKLE_SUFFIXES = frozenset(
    {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".dill", ".npy", ".npz"}
)


def plain_prompt(messages: Iterable[Mapping[str, str]]) -> str:
    """The prompt for a tokenizer without a chat template."""
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nassistant:"


def check_local_files(label: str, paths: Iterable[str], *, error: type[Exception]) -> None:
    """Refuse pickle weights and shipped Python code among a model's relative ``paths``."""
    names = sorted(paths)
    pickled = [p for p in names if PurePosixPath(p).suffix.lower() in PICKLE_SUFFIXES]
    if pickled:
        raise error(
            f"{label} holds pickle-format weights ({pickled[0]}), which can run code when "
            "loaded; Garrison loads only safetensors (convert the model and register that)."
        )
    code = [p for p in names if PurePosixPath(p).suffix.lower() in (".py", ".pyc", ".so")]
    if code:
        raise error(
            f"{label} ships its own code ({code[0]}); Garrison never runs a model's code, so "
            "only architectures transformers knows can be registered."
        )
    if not any(PurePosixPath(p).suffix.lower() == ".safetensors" for p in names):
        raise error(f"{label} holds no .safetensors weights.")


def check_local_folder(folder: Path, files: Iterable[str]) -> str:
    """Check a Hugging Face causal-LM directory before registering it; its ``model_type``."""
    label = str(folder)
    files = list(files)
    check_local_files(label, files, error=InvalidInput)
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"{folder} has no readable config.json, so it is no Hugging Face model directory."
        ) from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str) or not model_type:
        raise InvalidInput(f"{config_path} names no model_type.")
    if "auto_map" in config:
        raise InvalidInput(
            f"{config_path} asks for the model's own code (auto_map); Garrison never runs it."
        )
    if not any(f in files for f in ("tokenizer.json", "tokenizer_config.json")):
        raise InvalidInput(f"{folder} has no tokenizer (tokenizer.json or tokenizer_config.json).")
    causal = _causal_lm_types()
    if causal is not None and model_type not in causal:
        raise InvalidInput(
            f"{folder} holds a {model_type!r} model, which is not a causal language model "
            "transformers can generate with."
        )
    return model_type


def _causal_lm_types() -> frozenset[str] | None:
    try:
        auto: Any = importlib.import_module("transformers.models.auto.modeling_auto")
    except ImportError:
        return None  # checked again, fully, when the model loads
    return frozenset(auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


class LocalLM:
    """A causal LM and its tokenizer, loaded from an already verified folder."""

    def __init__(self, label: str, folder: Path) -> None:
        self.label = label
        self.folder = folder
        self.tokenizer: Any = None
        self.model: Any = None
        _go_offline()
        with _quiet():
            try:
                import torch
                import transformers
            except ImportError as exc:
                raise MissingExtra("embed", "transformers") from exc
            hf_logging: Any = importlib.import_module("transformers.utils.logging")
            hf_logging.disable_progress_bar()
            try:
                self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                    str(folder), local_files_only=True, trust_remote_code=False
                )
                self.model = transformers.AutoModelForCausalLM.from_pretrained(
                    str(folder),
                    local_files_only=True,
                    trust_remote_code=False,
                    use_safetensors=True,
                )
            except (OSError, ValueError, KeyError) as exc:
                raise CheckFailed(
                    f"Generator {label} cannot be loaded: {exc}".rstrip(".") + "."
                ) from exc
        self.model.eval()
        self._torch = torch
        self._lock = threading.Lock()
        limit = getattr(self.model.config, "max_position_embeddings", None)
        self.max_positions = int(limit) if isinstance(limit, int) else None

    def _inputs(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        if getattr(self.tokenizer, "chat_template", None):
            encoded = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:
            encoded = self.tokenizer(plain_prompt(messages), return_tensors="pt")
        inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        length = int(inputs["input_ids"].shape[1])
        if length == 0:
            raise InvalidInput(f"Generator {self.label} was given an empty prompt.")
        if self.max_positions is not None and length >= self.max_positions:
            raise InvalidInput(
                f"The prompt is {length} tokens; generator {self.label} takes at most "
                f"{self.max_positions - 1}."
            )
        return inputs

    def _kwargs(self, inputs: dict[str, Any], options: SamplingOptions) -> dict[str, Any]:
        max_new = options.max_tokens
        if self.max_positions is not None:
            max_new = min(max_new, self.max_positions - int(inputs["input_ids"].shape[1]))
        kwargs: dict[str, Any] = {**inputs, "max_new_tokens": max_new}
        if self.tokenizer.pad_token_id is not None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        elif self.tokenizer.eos_token_id is not None:
            kwargs["pad_token_id"] = self.tokenizer.eos_token_id
        if options.temperature > 0:
            kwargs.update(do_sample=True, temperature=options.temperature, top_k=0, top_p=1.0)
        else:
            # Greedy: unset the sampling knobs a model's generation_config may carry.
            kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
        return kwargs

    def _stopping(
        self, prompt_len: int, stop: tuple[str, ...], cancel: threading.Event | None = None
    ) -> Any:
        """Stop once a stop string is in the new text (the caller cuts it there), or once the
        consumer of a stream has gone."""
        import transformers

        torch = self._torch
        decode = self._decode
        # Enough trailing tokens to hold any stop string (every token is at least a character
        # or none at all), so each step decodes a short tail, not the whole answer.
        tail = 2 * max((len(s) for s in stop), default=0) + 8

        class _Stop(transformers.StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = cancel is not None and cancel.is_set()
                if not done and stop:
                    new = input_ids[0][prompt_len:][-tail:]
                    text = decode(new)
                    done = any(s in text for s in stop)
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

        return transformers.StoppingCriteriaList([_Stop()])

    def _decode(self, ids: Any) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def complete(self, messages: list[dict[str, str]], options: SamplingOptions) -> Completion:
        """Generate once; the stop strings are applied by the caller."""
        inputs = self._inputs(messages)
        kwargs = self._kwargs(inputs, options)
        prompt_len = int(inputs["input_ids"].shape[1])
        with self._lock, _quiet(), self._torch.random.fork_rng(devices=[]):
            self._torch.manual_seed(options.seed)
            with self._torch.inference_mode():
                out = self.model.generate(
                    **kwargs, stopping_criteria=self._stopping(prompt_len, options.stop)
                )
        new = out[0][prompt_len:]
        eos = self.tokenizer.eos_token_id
        finished = eos is not None and len(new) > 0 and int(new[-1]) == eos
        return Completion(
            self._decode(new),
            {"prompt_tokens": prompt_len, "completion_tokens": len(new)},
            "stop" if finished or len(new) < kwargs["max_new_tokens"] else "length",
        )

    def stream(self, messages: list[dict[str, str]], options: SamplingOptions) -> Iterator[Piece]:
        """Generate in a worker thread, yielding decoded text as it comes."""
        import transformers

        inputs = self._inputs(messages)
        kwargs = self._kwargs(inputs, options)
        prompt_len = int(inputs["input_ids"].shape[1])
        streamer: Any = transformers.TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600.0
        )
        result: dict[str, Any] = {}
        cancel = threading.Event()
        torch = self._torch
        stopping = self._stopping(prompt_len, options.stop, cancel)

        def work() -> None:
            try:
                with self._lock, _quiet(), torch.random.fork_rng(devices=[]):
                    torch.manual_seed(options.seed)
                    with torch.inference_mode():
                        result["out"] = self.model.generate(
                            **kwargs, streamer=streamer, stopping_criteria=stopping
                        )
            except BaseException as exc:  # handed to the consumer below
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=work, name=f"generate-{self.label}", daemon=True)
        worker.start()
        try:
            for text in streamer:
                if text:
                    yield Piece(text)
        finally:
            cancel.set()
            worker.join()
        if "error" in result:
            raise result["error"]
        new = result["out"][0][prompt_len:]
        eos = self.tokenizer.eos_token_id
        finished = eos is not None and len(new) > 0 and int(new[-1]) == eos
        yield Piece(
            "",
            {"prompt_tokens": prompt_len, "completion_tokens": len(new)},
            "stop" if finished or len(new) < kwargs["max_new_tokens"] else "length",
        )
