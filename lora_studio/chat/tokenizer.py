"""A base model's tokenizer for the app: the ``tokenizers`` library on its ``tokenizer.json``, no transformers.

The trainer counts and labels tokens with :func:`trainer.llm.tokenize.tokenize_example`, given
a transformers tokenizer. :class:`FolderTokenizer` offers the part of that interface the
function uses (``__call__`` with offsets, ``apply_chat_template`` through :mod:`.jinja_env`,
the special tokens, ``chat_template``, ``get_vocab``), built from the model folder's files, so
the app runs the trainer's own function and shows the same tokens and the same trained
ones. The chat template is found where transformers looks: ``chat_template.jinja``, then
``chat_template.json``, then ``tokenizer_config.json``.

Without a tokenizer (no config open, or a base model that is not a language model folder),
:class:`EstimateTokenizer` stands in: about one token per short word, digit or symbol, and
``</s>`` as its end marker. Its counts are estimates and the app says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .jinja_env import render_chat

_SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token")
# Words of up to 6 letters are about one token in the BPE vocabularies of current models,
# digits one each (Llama splits numbers into digits), symbols one each.
_ESTIMATE_PIECE = re.compile(r" ?[^\W\d_]{1,6}|\d| ?[^\w\s]|\s+|_")


class ChatTokenizer:
    """What :func:`trainer.llm.tokenize.tokenize_example` asks of a tokenizer, and a name for people."""

    is_fast = True
    exact = True  # counts are the model's own (False: an estimate)
    description = ""

    def __init__(self, tokens: dict[str, str | None], chat_template: str | dict[str, str] | None) -> None:
        self.special = tokens
        self.chat_template = chat_template
        self.bos_token, self.eos_token = tokens.get("bos_token"), tokens.get("eos_token")
        self.bos_token_id = self.token_id(self.bos_token)
        self.eos_token_id = self.token_id(self.eos_token)

    def token_id(self, token: str | None) -> int | None:
        """The id of a special token (None when the vocabulary has no such token)."""
        raise NotImplementedError

    def encode(self, text: str, add_special_tokens: bool) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and their (start, end) character offsets in ``text``."""
        raise NotImplementedError

    def get_vocab(self) -> dict[str, int]:
        """The vocabulary with added tokens (the trainer checks a template's markers against it)."""
        raise NotImplementedError

    def __call__(self, text: str, add_special_tokens: bool = True,
                 return_offsets_mapping: bool = False) -> dict[str, Any]:
        ids, offsets = self.encode(text, add_special_tokens)
        return {"input_ids": ids, "offset_mapping": offsets} if return_offsets_mapping else {"input_ids": ids}

    def apply_chat_template(self, messages: list[dict[str, str]], chat_template: str | None = None,
                            tokenize: bool = False, add_generation_prompt: bool = False) -> str:
        """The rendered chat, as transformers renders it (``tokenize`` must be False)."""
        assert not tokenize, "the app only renders; the trainer's function tokenizes the text"
        source = chat_template or self.chat_template
        if isinstance(source, dict):
            source = source.get("default")
        return render_chat(source or "", messages, add_generation_prompt, self.special)


class FolderTokenizer(ChatTokenizer):
    """A model folder's ``tokenizer.json`` and tokenizer settings."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer  # a Rust library; imported when a model is chosen

        self.folder = Path(folder)
        self.backend = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        config = _read_json(self.folder / "tokenizer_config.json")
        special = {**_read_json(self.folder / "special_tokens_map.json"), **config}
        tokens = {name: _token_text(special.get(name)) for name in _SPECIAL}
        super().__init__(tokens, _chat_template(self.folder, config))
        # Llama-style tokenizer classes add bos (and eos) from these settings, over tokenizer.json's post-processor.
        self._add_bos = config.get("add_bos_token") is True and self.bos_token_id is not None \
            and self.backend.encode("", add_special_tokens=True).ids[:1] != [self.bos_token_id]
        self._add_eos = config.get("add_eos_token") is True and self.eos_token_id is not None
        self.description = f"{self.folder.name}'s tokenizer"

    def token_id(self, token: str | None) -> int | None:
        return self.backend.token_to_id(token) if token else None

    def encode(self, text: str, add_special_tokens: bool) -> tuple[list[int], list[tuple[int, int]]]:
        encoding = self.backend.encode(text, add_special_tokens=add_special_tokens)
        ids, offsets = list(encoding.ids), [tuple(o) for o in encoding.offsets]
        if add_special_tokens and self._add_bos:
            ids, offsets = [self.bos_token_id, *ids], [(0, 0), *offsets]
        if add_special_tokens and self._add_eos and ids[-1:] != [self.eos_token_id]:
            ids, offsets = [*ids, self.eos_token_id], [*offsets, (len(text), len(text))]
        return ids, offsets

    def get_vocab(self) -> dict[str, int]:
        return self.backend.get_vocab(with_added_tokens=True)


class EstimateTokenizer(ChatTokenizer):
    """Stands in for a tokenizer that is not known: pieces of about a token each."""

    exact = False
    description = "an estimate (no tokenizer)"
    _MARKERS = {"<s>": 1, "</s>": 2}

    def __init__(self) -> None:
        super().__init__({"bos_token": "<s>", "eos_token": "</s>"}, None)

    def token_id(self, token: str | None) -> int | None:
        return self._MARKERS.get(token or "")

    def encode(self, text: str, add_special_tokens: bool) -> tuple[list[int], list[tuple[int, int]]]:
        ids, offsets = [], []
        for match in _ESTIMATE_PIECE.finditer(text):
            ids.append(self._MARKERS.get(match.group(), 3))
            offsets.append(match.span())
        return ids, offsets

    def get_vocab(self) -> dict[str, int]:
        return dict(self._MARKERS)


def is_language_model_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a causal language model with a ``tokenizer.json`` (no weights are read)."""
    config = _read_json(Path(folder) / "config.json")
    architectures = config.get("architectures") or []
    return (Path(folder) / "tokenizer.json").is_file() and any(str(a).endswith("ForCausalLM") for a in architectures)


def load_tokenizer(base_model: Path | None) -> tuple[ChatTokenizer, str]:
    """The base model's tokenizer, or the estimate with the reason (runs in a worker: it reads files)."""
    if base_model is None:
        return EstimateTokenizer(), "no training config is open (Train tab), so the base model is not known"
    folder = Path(base_model)
    if not folder.is_dir() or not is_language_model_folder(folder):
        return EstimateTokenizer(), f"the config's base_model ({folder.name}) is not a language model folder"
    try:
        return FolderTokenizer(folder), ""
    except Exception as exc:  # noqa: BLE001 - a damaged tokenizer.json: count an estimate and say why
        return EstimateTokenizer(), f"{folder.name}/tokenizer.json cannot be read ({exc})"


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _token_text(value: object) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken's ``content``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _chat_template(folder: Path, config: dict) -> str | dict[str, str] | None:
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    template = _read_json(folder / "chat_template.json").get("chat_template") or config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": "..."}, ...]
        return {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
    return template if isinstance(template, str) else None
