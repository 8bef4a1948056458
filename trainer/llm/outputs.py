"""What a language-model run leaves: a peft adapter folder, and the merged model when asked.

``adapter/`` is what ``PeftModel.from_pretrained`` and vLLM's ``--lora-modules`` load:
``adapter_config.json`` + ``adapter_model.safetensors`` (LoRA tensors only, so vLLM takes
it), with the tokenizer and its chat template beside them. A model without a chat template
of its own gets the built-in one the run trained with, so inference renders prompts the same
way. ``export: gguf`` adds ``adapter.gguf``, the same LoRA as a llama.cpp file. ``merged/``
is the base model with the LoRA added into its weights, as sharded safetensors that
``AutoModelForCausalLM.from_pretrained`` loads alone. Each folder is written
under a temporary name and renamed: it is complete or absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from trainer.fsutil import replace_folder
from trainer.llm.model import LoadedLM
from trainer.llm.templates import ChatTemplate
from trainer.models.errors import ModelLoadError
from trainer.rundir import GGUF_FILE


# What each `export` choice writes besides adapter/ (the schema's choices).
EXPORT_PARTS = {"adapter": frozenset(), "merged": frozenset({"merged"}), "gguf": frozenset({"gguf"}),
                "merged_gguf": frozenset({"merged", "gguf"})}


def _staging(folder: Path) -> Path:
    staging = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def _save_tokenizer(lm: LoadedLM, template: ChatTemplate, folder: Path) -> None:
    tokenizer = lm.tokenizer
    if template.builtin:
        tokenizer.chat_template = template.source  # what the run trained with goes with the adapter
    tokenizer.save_pretrained(str(folder))


def save_adapter_folder(lm: LoadedLM, template: ChatTemplate, folder: Path, card: str | None = None,
                        gguf_name: str | None = None) -> None:
    """The peft adapter (safetensors), tokenizer and chat template in ``folder``, replaced whole.

    With ``gguf_name`` the folder also holds the same adapter as a llama.cpp LoRA file
    (:mod:`trainer.llm.gguf_lora`), converted from the safetensors just written.
    """
    staging = _staging(folder)
    lm.model.save_pretrained(str(staging), safe_serialization=True)
    _save_tokenizer(lm, template, staging)
    if card:
        (staging / "README.md").write_text(card, encoding="utf-8")
    if gguf_name is not None:
        from trainer.llm.gguf_lora import write_gguf_lora

        write_gguf_lora(staging, lm.model.config.to_dict(), staging / GGUF_FILE, gguf_name)
    replace_folder(staging, folder)


def save_merged_folder(lm: LoadedLM, template: ChatTemplate, folder: Path) -> None:
    """The base model with the adapter merged in, as sharded safetensors with its tokenizer.

    The merge is computed on a copy of the weights (the adapter of the live model stays as
    it is), which needs the model's size in memory once more.
    """
    import copy

    if getattr(lm.model, "is_loaded_in_4bit", False) or getattr(lm.model.base_model, "is_loaded_in_4bit", False):
        raise ModelLoadError("export: merged cannot merge into 4-bit weights (the result would lose the LoRA's "
                             "precision)", "export the adapter and merge it on a machine with the full model")
    merged = copy.deepcopy(lm.model).merge_and_unload()
    staging = _staging(folder)
    merged.save_pretrained(str(staging), safe_serialization=True, max_shard_size="2GB")
    _save_tokenizer(lm, template, staging)
    replace_folder(staging, folder)
