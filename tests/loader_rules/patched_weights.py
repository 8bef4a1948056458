"""The patched weight: what ComfyUI and A1111 compute from one module's tensors (LoRA, DoRA, LoHa,
LoKr), and LyCORIS' own definition of the merged weight."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import LORA_DOWN, LORA_UP, adapter_kind


def _delta(tensors: Mapping[str, Any], shape) -> tuple[Any, int | None]:
    """(ΔW before scaling, the rank the alpha divides by or None) of one module's tensors, as both
    programs build it: LoRA ``up.flatten(1) @ down.flatten(1)`` (comfy/weight_adapter/lora.py,
    A1111 network_lora.py), LoHa ``(w1_a @ w1_b) * (w2_a @ w2_b)`` with rank ``hada_w1_b.shape[0]``
    (weight_adapter/loha.py, network_hada.py), LoKr ``kron(w1, w2)`` (w1 unsqueezed for a 4-D w2)
    with rank the first dimension of a split factor's second half, none if no factor is split
    (weight_adapter/lokr.py, network_lokr.py); reshaped to the weight's shape."""
    import torch

    t = {k: v.float() for k, v in tensors.items()}
    kind = adapter_kind(set(t))
    if kind == "lora":
        down, up = t[LORA_DOWN], t[LORA_UP]
        return (up.flatten(1) @ down.flatten(1)).reshape(shape), down.shape[0]
    if kind == "loha":
        return ((t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"])).reshape(shape), \
            t["hada_w1_b"].shape[0]
    if kind == "lokr":
        rank = None
        w1 = t.get("lokr_w1")
        if w1 is None:
            w1, rank = t["lokr_w1_a"] @ t["lokr_w1_b"], t["lokr_w1_b"].shape[0]
        w2 = t.get("lokr_w2")
        if w2 is None:
            w2, rank = t["lokr_w2_a"] @ t["lokr_w2_b"], t["lokr_w2_b"].shape[0]
        if w2.dim() == 4:
            w1 = w1[:, :, None, None]
        return torch.kron(w1, w2).reshape(shape), rank
    raise ValueError(f"no adapter in {sorted(tensors)}")


def _scale(tensors: Mapping[str, Any], rank: int | None) -> float:
    # Both: alpha / rank when the file has alpha and the adapter has a rank, else 1.
    return float(tensors["alpha"]) / rank if "alpha" in tensors and rank is not None else 1.0


def _column_norm(weight):
    """The norm over the output axis of each input column, shaped [1, in, 1...] (LyCORIS' default DoRA axis)."""
    return weight.transpose(0, 1).reshape(weight.shape[1], -1).norm(dim=1, keepdim=True) \
        .reshape(weight.shape[1], *[1] * (weight.dim() - 1)).transpose(0, 1)


def _row_norm(weight):
    """The norm of each output row, shaped [out, 1...] (DoRA on the output axis)."""
    return weight.reshape(weight.shape[0], -1).norm(dim=1, keepdim=True).reshape(weight.shape[0],
                                                                                  *[1] * (weight.dim() - 1))


def comfyui_patched_weight(weight, tensors: Mapping[str, Any], strength: float = 1.0):
    """The weight ComfyUI computes for one module at ``strength`` (comfy/weight_adapter/*.py
    ``calculate_weight``). With ``dora_scale``, comfy/weight_adapter/base.py ``weight_decompose``:
    W' = (W + s ΔW) * dora_scale / norm, the norm along the axis dora_scale's shape names: on the
    output axis (dora_scale [out, 1...]) it is the norm of the *unpatched* weight's rows; on the
    input axis that of the patched weight's columns (+ eps)."""
    import torch

    weight = weight.float()
    delta, rank = _delta(tensors, weight.shape)
    alpha = _scale(tensors, rank)
    if "dora_scale" not in tensors:
        return weight + strength * alpha * delta
    dora_scale = tensors["dora_scale"].float()
    patched = weight + alpha * delta
    norm = _row_norm(weight) if dora_scale.shape[0] == patched.shape[0] else _column_norm(patched)
    patched = patched * (dora_scale / (norm + torch.finfo(weight.dtype).eps))
    return weight + strength * (patched - weight)


def a1111_patched_weight(weight, tensors: Mapping[str, Any], multiplier: float = 1.0):
    """The weight AUTOMATIC1111 computes for one module (network.py ``NetworkModule.finalize_updown``):
    ΔW scaled by alpha / rank, then with ``dora_scale`` ``apply_weight_decompose``, which always
    normalises the patched weight's columns (the input axis), whatever dora_scale's shape; times the
    multiplier."""
    weight = weight.float()
    delta, rank = _delta(tensors, weight.shape)
    updown = delta * _scale(tensors, rank)
    if "dora_scale" in tensors:
        merged = weight + updown
        updown = merged * (tensors["dora_scale"].float() / _column_norm(merged)) - weight
    return weight + updown * multiplier


def lycoris_merged_weight(weight, tensors: Mapping[str, Any]):
    """LyCORIS' own definition of the merged weight (lycoris/modules/*.py ``get_merged_weight``,
    ``apply_weight_decompose``): W + s ΔW, and with ``dora_scale`` that times dora_scale over the
    norm of the merged weight along dora_scale's axis (``wd_on_out``: rows, [out, 1...])."""
    import torch

    weight = weight.float()
    delta, rank = _delta(tensors, weight.shape)
    merged = weight + _scale(tensors, rank) * delta
    if "dora_scale" not in tensors:
        return merged
    dora_scale = tensors["dora_scale"].float()
    norm = _row_norm(merged) if dora_scale.shape[0] == merged.shape[0] else _column_norm(merged)
    return merged * (dora_scale / (norm + torch.finfo(torch.float32).eps))
