"""Tell a Hugging Face causal language model folder from its files (torch-free).

A causal LM folder has a ``config.json`` whose ``architectures`` name a ``...ForCausalLM``
class (Llama, Mistral, Qwen2/3, Gemma, GLM-4, Phi), weights (``.safetensors``, or pickled
``.bin`` files that follow ``allow_pickle``) and a tokenizer. A config with ``auto_map`` needs
the folder's own Python code (ChatGLM3 and older GLM): :func:`needs_remote_code` says so,
and the config check refuses it unless ``allow_remote_code``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.fsutil import read_json_object
from trainer.problems import ExplainedError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tiktoken.model")


class CausalLMRefused(ExplainedError):
    """The folder is not a causal LM the trainer can load; the message says what it is."""


def read_model_config(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json`` (raises :class:`CausalLMRefused` when it is unreadable)."""
    try:
        return read_json_object(folder / "config.json")
    except ValueError as exc:
        raise CausalLMRefused(str(exc), "the model folder may be damaged") from exc


def needs_remote_code(config: dict[str, Any]) -> bool:
    """Whether loading the model runs Python code shipped in its folder (``auto_map`` in its config)."""
    auto_map = config.get("auto_map")
    return isinstance(auto_map, dict) and any("CausalLM" in str(key) or key == "AutoModel" for key in auto_map)


def weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The folder's safetensors and pickle weight files."""
    safe = sorted(folder.glob("*.safetensors"))
    pickled = sorted(p for p in folder.glob("*.bin") if p.name.startswith(("pytorch_model", "model")))
    return safe, pickled


def classify_causal_lm(folder: Path, *, allow_pickle: bool = False) -> tuple[str, str]:
    """(model type, a phrase for people) of a causal LM folder; :class:`CausalLMRefused` names what is wrong."""
    config = read_model_config(folder)
    architectures = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type") or "unknown")
    if not any(a.endswith("ForCausalLM") for a in architectures) and not needs_remote_code(config):
        what = architectures[0] if architectures else f"a {model_type} model without a causal-LM head"
        raise CausalLMRefused(f"{folder} holds {what}, not a causal language model",
                              "LoRA Studio trains causal LMs (a config.json whose architectures end in ForCausalLM, "
                              "such as LlamaForCausalLM)")
    safe, pickled = weight_files(folder)
    if not safe and not pickled:
        raise CausalLMRefused(f"{folder} has a config.json but no weights (*.safetensors)",
                              "the download may be incomplete: the weight files are missing")
    if not safe and not allow_pickle:
        raise CausalLMRefused(f"{folder} has only pickle weights ({pickled[0].name}), and loading a pickle can run any "
                              "code hidden in it", "convert them to .safetensors, or set `allow_pickle: true` if you "
                              "trust where they came from")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise CausalLMRefused(f"{folder} has no tokenizer ({', '.join(TOKENIZER_FILES[:2])} ...)",
                              "copy the tokenizer files of the same model into the folder")
    name = next((a for a in architectures if a.endswith("ForCausalLM")), model_type)
    return model_type, f"a {name.removesuffix('ForCausalLM') or model_type} language model"
