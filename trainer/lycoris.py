"""LoRA variants (DoRA, LoHa, LoKr): peft's adapters, written in the LyCORIS keys that loaders read.

peft trains them (``LoraConfig(use_dora=True)``, ``LoHaConfig``, ``LoKrConfig``); ComfyUI, Forge
and AUTOMATIC1111 read kohya/LyCORIS files, whose tensors per module are:

- LoRA: ``lora_down.weight`` (peft's A), ``lora_up.weight`` (B), ``alpha``; the loaders scale
  ``up @ down`` by alpha / rank (rank = the down weight's first dimension).
- DoRA: the LoRA keys plus ``dora_scale``, the magnitude. peft's magnitude is per *output*
  channel (the norm of each row of W + ΔW); it is written with the output axis first,
  ``[out, 1]`` (``[out, 1, 1, 1]`` for convolutions), the shape by which LyCORIS (``wd_on_out``)
  and ComfyUI tell that axis from the input one (``[1, in]``).
- LoHa: ``hada_w1_a`` [out, r], ``hada_w1_b`` [r, in], ``hada_w2_a``, ``hada_w2_b``, ``alpha``:
  ΔW = (w1_a @ w1_b) * (w2_a @ w2_b) * alpha / r (r = ``hada_w1_b``'s first dimension), reshaped
  to the weight's shape: peft's own formula and scale, so the tensors are written as they are.
- LoKr: ``lokr_w1`` (or ``lokr_w1_a`` @ ``lokr_w1_b``) and ``lokr_w2`` (or ``lokr_w2_a`` @
  ``lokr_w2_b``): ΔW = kron(w1, w2) * scale. The loaders scale by alpha / r only when a factor is
  split into halves and by 1 otherwise, while peft always scales by alpha / r; so peft's scale
  is folded into w1 and ``alpha`` is written equal to r, which every loader reads as scale 1.

:func:`kohya_tensors` does that per module; tests/test_lora_variants.py checks that each
loader's formula on the written tensors gives peft's merged weights.
"""

from __future__ import annotations

from typing import Any

import torch

LORA_TYPES = ("lora", "loha", "lokr")
# The tensors of one module in peft's state dict, by kind: their names after "<module>.".
_PEFT_PARTS = {
    "lora": ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector"),
    "loha": ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"),
    "lokr": ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b"),
}
_ALL_PARTS = tuple(part for parts in _PEFT_PARTS.values() for part in parts)


def adapter_config(lora_type: str, *, rank: int, alpha: float, dropout: float, targets: list[str],
                   use_dora: bool = False) -> Any:
    """peft's config for ``lora_type``. The adapter starts as a no-op (the base model at step 0):
    LoRA's B, LoHa's w2_b and LoKr's w2 start at zero.

    ``dropout`` is LoRA's dropout on the adapter's input; LoHa and LoKr have none of that
    kind, so it drops ranks instead (their ``rank_dropout``).
    """
    from peft import LoHaConfig, LoKrConfig, LoraConfig

    if lora_type == "lora":
        return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                          init_lora_weights="gaussian", use_dora=use_dora)
    if use_dora:
        raise ValueError("use_dora applies to lora_type lora only")
    if lora_type == "loha":
        return LoHaConfig(r=rank, alpha=alpha, rank_dropout=dropout, target_modules=targets)
    if lora_type == "lokr":
        return LoKrConfig(r=rank, alpha=alpha, rank_dropout=dropout, target_modules=targets)
    raise ValueError(f"lora_type must be one of {LORA_TYPES}, not {lora_type!r}")


def module_parts(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """A peft state dict grouped by adapted module: ``{module: {"lora_A.weight": ..., ...}}``."""
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        for part in _ALL_PARTS:
            if key.endswith("." + part):
                modules.setdefault(key[: -len(part) - 1], {})[part] = tensor
                break
        else:
            raise ValueError(f"unknown adapter tensor {key!r} (not a LoRA, LoHa or LoKr weight)")
    return modules


def kind_of(parts: dict[str, torch.Tensor]) -> str:
    """"lora", "loha" or "lokr" for one module's peft tensors."""
    return next(kind for kind, names in _PEFT_PARTS.items() if any(name in parts for name in names))


def kohya_tensors(parts: dict[str, torch.Tensor], alpha: float, rank: int) -> dict[str, torch.Tensor]:
    """One module's tensors under their kohya/LyCORIS names (``lora_down.weight``, ``hada_w1_a``, ...,
    ``alpha``), for peft's adapter of rank ``rank`` and alpha ``alpha`` (see the module docstring)."""
    kind = kind_of(parts)
    if kind == "lora":
        down, up = parts["lora_A.weight"], parts["lora_B.weight"]
        out = {"lora_down.weight": down, "lora_up.weight": up, "alpha": torch.tensor(float(alpha))}
        magnitude = parts.get("lora_magnitude_vector")
        if magnitude is not None:
            out["dora_scale"] = magnitude.reshape(up.shape[0], *[1] * (down.dim() - 1))
        return out
    if kind == "loha":
        return {name: parts[name] for name in _PEFT_PARTS["loha"]} | {"alpha": torch.tensor(float(alpha))}
    # LoKr: peft's alpha / rank folded into the first factor; alpha = r then means scale 1 in every loader.
    scale = alpha / rank
    out = {name: parts[name] for name in _PEFT_PARTS["lokr"] if name in parts}
    first = "lokr_w1" if "lokr_w1" in out else "lokr_w1_a"
    out[first] = out[first] * scale
    out["alpha"] = torch.tensor(float(rank))
    return out


def adapter_label(config: Any) -> str:
    """"LoRA", "DoRA", "LoHa" or "LoKr": the adapter a config trains, for the log."""
    if config.lora_type == "lora":
        return "DoRA" if config.use_dora else "LoRA"
    return {"loha": "LoHa", "lokr": "LoKr"}[config.lora_type]
