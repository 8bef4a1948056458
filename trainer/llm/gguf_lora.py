"""A llama.cpp LoRA file (GGUF) from a peft adapter folder, as llama.cpp's own converter writes it.

llama.cpp adds a LoRA to the tensors of a base model that its converter (``convert_hf_to_gguf.py``)
wrote, so the adapter's tensors must be named and laid out the way that conversion names and
lays out the base weights, and transformed the same way:

- Names come from gguf-py's tensor name map of the architecture (``model.layers.3.self_attn.q_proj``
  is ``blk.3.attn_q.weight``), with ``.lora_a`` / ``.lora_b`` appended: llama.cpp's loader strips
  the suffix and looks the rest up among the base model's tensors.
- ``lora_a`` is peft's ``lora_A`` (rank x in) and ``lora_b`` its ``lora_B`` (out x rank): ggml reads
  them as ne = (in, rank) and (rank, out), which the loader checks against the base tensor's
  (in, out). Both are F32, as the converter writes them whatever its ``--outtype`` (its F16 rule
  applies to names that end in ``.weight`` only).
- For Llama and Mistral the converter permutes the rows of ``q_proj`` and ``k_proj`` (Hugging Face
  keeps the two halves of each head's rotary dimensions apart; ggml's rope turns adjacent pairs).
  Permuting the rows of B permutes the rows of B·A alike, so ``lora_b`` of q and k gets the same
  permutation and ``lora_a`` none, which is what the converter's LoRA tensor wrapper does. Qwen2
  and Qwen3 run ggml's NeoX rope on the Hugging Face layout and are not permuted.
- Metadata: ``general.architecture``, ``general.type = adapter``, ``adapter.type = lora`` and
  ``adapter.lora.alpha``. llama.cpp scales by alpha / rank (the rank read from ``lora_b``); an
  rsLoRA adapter (scale alpha / sqrt(rank)) is written with alpha·sqrt(rank), which gives the
  same product. (The converter copies ``lora_alpha`` as it is, which is wrong for rsLoRA.)

DoRA adapters (a magnitude vector per layer that llama.cpp has no place for), adapters that
carry whole tensors (new tokens, ``modules_to_save``) and other architectures are refused,
naming what is supported. :func:`gguf_refusal` says so before training; it is torch-free.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.fsutil import fsync_dir
from trainer.problems import ExplainedError

_PEFT_PREFIX = "base_model.model."
_LORA_SUFFIXES = {".lora_A.weight": "a", ".lora_B.weight": "b"}


@dataclass(frozen=True)
class GGUFArch:
    """How llama.cpp's converter treats one Hugging Face architecture."""

    arch: str  # the member of gguf.MODEL_ARCH
    rotary_permuted: bool  # whether q_proj and k_proj rows are permuted to ggml's rope layout


# The architectures whose conversion of attention and MLP projections is a name map plus, for the
# Llama family, the q/k row permutation (LlamaModel and Qwen2Model/Qwen3Model in the converter).
ARCHITECTURES: dict[str, GGUFArch] = {
    "LlamaForCausalLM": GGUFArch("LLAMA", True),
    "MistralForCausalLM": GGUFArch("LLAMA", True),
    "Qwen2ForCausalLM": GGUFArch("QWEN2", False),
    "Qwen3ForCausalLM": GGUFArch("QWEN3", False),
}


class GGUFExportError(ExplainedError):
    """The adapter cannot be written as a llama.cpp LoRA; the message says why."""


def _architecture(model_config: dict[str, Any]) -> str:
    names = [str(a) for a in model_config.get("architectures") or []]
    return names[0] if names else str(model_config.get("model_type") or "unknown")


def gguf_refusal(model_config: dict[str, Any], *, use_dora: bool = False) -> GGUFExportError | None:
    """Why a GGUF LoRA of this base model cannot be written (None when it can), checked before training."""
    if importlib.util.find_spec("gguf") is None:
        return GGUFExportError("export gguf needs the gguf package, which is not installed on this machine",
                               "pip install gguf (it comes with the trainer extra), or set export to adapter")
    name = _architecture(model_config)
    if name not in ARCHITECTURES:
        return GGUFExportError(f"export gguf supports {', '.join(ARCHITECTURES)}, and the base model is {name}",
                               "set export to adapter (or merged) and convert with llama.cpp's own tools")
    return _dora_refusal() if use_dora else None


def _dora_refusal() -> GGUFExportError:
    return GGUFExportError("export gguf cannot carry a DoRA adapter: llama.cpp's LoRA files have no magnitude vectors",
                           "turn use_dora off, or set export to merged and convert that model")


def rotary_rows_to_ggml(rows: np.ndarray, n_head: int) -> np.ndarray:
    """The rows of a q/k projection (or of its lora_B) in ggml's rope order, as the converter permutes them.

    Within each of the ``n_head`` heads, row ``i`` of the first half and row ``i`` of the second
    half become rows ``2i`` and ``2i + 1``.
    """
    out = rows.shape[0]
    return rows.reshape(n_head, 2, out // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _load_adapter(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from safetensors.torch import load_file

    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    tensors = {name: t.float().numpy() for name, t in load_file(folder / "adapter_model.safetensors").items()}
    return config, tensors


def _pairs(tensors: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """{base weight name: {"a": lora_A, "b": lora_B}}, in the adapter's order; anything else is refused."""
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        suffix = next((s for s in _LORA_SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            raise GGUFExportError(f"the adapter holds {key}, which is not a LoRA matrix (new tokens, modules_to_save "
                                  "or DoRA), and llama.cpp's LoRA files carry LoRA matrices only",
                                  "export the adapter without it, or use export merged")
        base = key.removeprefix(_PEFT_PREFIX).removesuffix(suffix) + ".weight"
        pairs.setdefault(base, {})[_LORA_SUFFIXES[suffix]] = value
    return pairs


def _scale_alpha(adapter_config: dict[str, Any]) -> float:
    """The alpha that gives llama.cpp's alpha / rank the scale peft applies."""
    if adapter_config.get("rank_pattern") or adapter_config.get("alpha_pattern"):
        raise GGUFExportError("the adapter has per-layer ranks or alphas, and a llama.cpp LoRA file has one alpha",
                              "train with one lora_rank and lora_alpha for every layer")
    alpha, rank = float(adapter_config["lora_alpha"]), int(adapter_config["r"])
    return alpha * math.sqrt(rank) if adapter_config.get("use_rslora") else alpha


def gguf_lora_tensors(adapter_dir: Path, model_config: dict[str, Any]) -> tuple[str, float, dict[str, np.ndarray]]:
    """(gguf architecture name, alpha, {gguf tensor name: F32 array}) of the peft adapter in ``adapter_dir``."""
    import gguf

    refusal = gguf_refusal(model_config, use_dora=False)
    if refusal is not None:
        raise refusal
    spec = ARCHITECTURES[_architecture(model_config)]
    adapter_config, tensors = _load_adapter(adapter_dir)
    if adapter_config.get("use_dora"):
        raise _dora_refusal()
    arch = gguf.MODEL_ARCH[spec.arch]
    n_head = int(model_config["num_attention_heads"])
    n_kv_head = int(model_config.get("num_key_value_heads") or n_head)
    names = gguf.get_tensor_name_map(arch, int(model_config["num_hidden_layers"]))
    out: dict[str, np.ndarray] = {}
    for base, pair in _pairs(tensors).items():
        gguf_name = names.get_name(base, try_suffixes=(".weight",))
        if gguf_name is None or set(pair) != {"a", "b"}:
            raise GGUFExportError(f"{base} of the adapter has no llama.cpp tensor of {spec.arch.lower()} models, or "
                                  "misses its A or B matrix", "export the adapter and merge it instead")
        lora_b = pair["b"]
        if spec.rotary_permuted and base.endswith("q_proj.weight"):
            lora_b = rotary_rows_to_ggml(lora_b, n_head)
        elif spec.rotary_permuted and base.endswith("k_proj.weight"):
            lora_b = rotary_rows_to_ggml(lora_b, n_kv_head)
        out[gguf_name + ".lora_a"] = np.ascontiguousarray(pair["a"], dtype=np.float32)
        out[gguf_name + ".lora_b"] = np.ascontiguousarray(lora_b, dtype=np.float32)
    return gguf.MODEL_ARCH_NAMES[arch], _scale_alpha(adapter_config), out


def write_gguf_lora(adapter_dir: Path, model_config: dict[str, Any], path: Path, name: str) -> Path:
    """Write the adapter in ``adapter_dir`` as a llama.cpp LoRA file at ``path`` (temp file, fsync, rename)."""
    import gguf

    arch, alpha, tensors = gguf_lora_tensors(adapter_dir, model_config)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(temp, arch)  # writes general.architecture itself
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_name(name)
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for tensor_name, data in tensors.items():
        writer.add_tensor(tensor_name, data, raw_dtype=gguf.GGMLQuantizationType.F32)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)
    return path
