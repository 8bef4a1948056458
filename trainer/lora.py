"""LoRA adapters: which layers get one, adding them with peft, and the files we write.

Two output layouts:
- kohya (`lora_unet_*`, `lora_te_*`, `.lora_down.weight`, `.lora_up.weight`, `.alpha`) with
  `ss_*` metadata: what AUTOMATIC1111/Forge, ComfyUI and diffusers' `load_lora_weights` read;
  the module names are the family's (:meth:`trainer.models.family.DiffusionModel.kohya_name`);
- diffusers/peft (`unet.<module>.lora_A.weight`, ...) as `pytorch_lora_weights.safetensors`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from peft import inject_adapter_in_model
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import save as safetensors_bytes

from trainer.fsutil import atomic_write_bytes

# Layer name patterns per `lora_target` choice. kohya's default trains every linear layer
# (and 1x1 conv) inside the transformer blocks: attention, feed-forward and proj_in/out.
_UNET_ATTENTION = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                   "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")
_UNET_FEED_FORWARD = ("ff.net.0.proj", "ff.net.2", "proj_in", "proj_out")
_TE_ATTENTION = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")
_TE_FEED_FORWARD = ("mlp.fc1", "mlp.fc2")


def _matches(name: str, suffixes: tuple[str, ...]) -> bool:
    return any(name == s or name.endswith("." + s) for s in suffixes)


def unet_target_modules(unet: torch.nn.Module, target: str) -> list[str]:
    """Full names of the UNet layers that get a LoRA for the `lora_target` choice ``target``."""
    suffixes = _UNET_ATTENTION + (_UNET_FEED_FORWARD if target in ("attention_ff", "all") else ())
    names = []
    for name, module in unet.named_modules():
        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        if _matches(name, suffixes):
            names.append(name)
        elif target == "all" and ("resnets" in name or "samplers" in name or name.endswith("time_emb_proj")):
            # LoCon-style: the ResNet convolutions, their time projections and the
            # down/up-sampling convolutions as well.
            names.append(name)
    return names


def text_encoder_target_modules(text_encoder: torch.nn.Module, target: str) -> list[str]:
    """Full names of the text encoder layers that get a LoRA."""
    suffixes = _TE_ATTENTION + (_TE_FEED_FORWARD if target in ("attention_ff", "all") else ())
    return [name for name, module in text_encoder.named_modules()
            if isinstance(module, torch.nn.Linear) and _matches(name, suffixes)]


def add_lora(model: torch.nn.Module, targets: list[str], rank: int, alpha: float, dropout: float, *,
             lora_type: str = "lora", use_dora: bool = False) -> list[torch.nn.Parameter]:
    """Freeze ``model``, add adapters of ``lora_type`` (LoRA, DoRA, LoHa, LoKr: :mod:`trainer.lycoris`) to
    ``targets`` and return the new trainable parameters.

    Every kind starts as a no-op, so the adapted model equals the base model at step 0.
    """
    from trainer.lycoris import adapter_config

    model.requires_grad_(False)
    config = adapter_config(lora_type, rank=rank, alpha=alpha, dropout=dropout, targets=targets, use_dora=use_dora)
    inject_adapter_in_model(config, model)
    # peft makes exactly the adapter's tensors trainable in the frozen model.
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:
        # Trainable weights stay in fp32 even when the frozen model runs in fp16/bf16.
        param.data = param.data.float()
        param.requires_grad_(True)
    return params


def lora_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights of ``model`` keyed `<module>.lora_A.weight` / `.lora_B.weight` ... (peft layout),
    contiguous (a channels_last convolution's LoRA is not, and safetensors needs it)."""
    return {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}


def load_lora_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put saved LoRA weights back into a model that has the same adapters (for resume)."""
    result = set_peft_model_state_dict(model, state)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"checkpoint has LoRA weights this model does not: {unexpected[:3]}")


def lora_pairs(state: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Group a peft state dict into module name -> (down = A, up = B)."""
    pairs = {}
    for key, tensor in state.items():
        if key.endswith(".lora_A.weight"):
            module = key[: -len(".lora_A.weight")]
            pairs[module] = (tensor, state[module + ".lora_B.weight"])
    return pairs


# A component's LoRA weights in peft layout, by component name ("unet", "text_encoder", ...).
AdapterStates = dict[str, dict[str, torch.Tensor]]


def to_kohya(states: AdapterStates, kohya_name: Callable[[str, str], str], alpha: float,
             dtype: torch.dtype, rank: int | None = None) -> dict[str, torch.Tensor]:
    """Rename peft adapter weights to kohya's key layout (LyCORIS' for DoRA, LoHa and LoKr, see
    :mod:`trainer.lycoris`); ``kohya_name(component, module)`` is the family's rule, ``rank`` the
    adapters' rank (only LoKr needs it)."""
    from trainer.lycoris import kohya_tensors, module_parts

    out: dict[str, torch.Tensor] = {}
    for component, state in states.items():
        for module, parts in module_parts(state).items():
            name = kohya_name(component, module)
            for part, tensor in kohya_tensors(parts, alpha, rank or 0).items():
                out[f"{name}.{part}"] = tensor.to(dtype).contiguous()
    return out


def to_diffusers(states: AdapterStates, diffusers_name: Callable[[str, str], str], rank: int, alpha: float,
                 dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """peft-layout weights with their component as prefix (`unet.`, `text_encoder.`, ...), as diffusers saves them;
    ``diffusers_name(component, key)`` is the family's rule for the rest of the key.

    The alpha/rank scale is folded into the up weights, so every loader applies the LoRA at
    the trained strength without needing the alpha value (DoRA normalises W + scale * BA, so
    folding the scale in keeps its result too).
    """
    scale = alpha / rank
    out: dict[str, torch.Tensor] = {}
    for component, state in states.items():
        for key, tensor in state.items():
            value = tensor * scale if ".lora_B." in key else tensor
            if key.endswith(".lora_magnitude_vector"):
                # DoRA's magnitude as a `.weight`: how transformers' loader (the text encoders) finds it;
                # diffusers' (the denoiser) reads both spellings.
                key += ".weight"
            out[f"{component}.{diffusers_name(component, key)}"] = value.to(dtype).contiguous()
    return out


def save_safetensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a `.safetensors` file atomically (a crash never leaves a truncated LoRA)."""
    atomic_write_bytes(path, safetensors_bytes({k: v.cpu() for k, v in tensors.items()}, metadata=metadata))


def adapter_state(states: AdapterStates) -> dict[str, torch.Tensor]:
    """One checkpoint dict of every adapter: `<component>.<key>` (`unet.`, `text_encoder.` ...)."""
    return {f"{component}.{key}": tensor for component, state in states.items() for key, tensor in state.items()}


def split_adapter_state(state: dict[str, torch.Tensor]) -> AdapterStates:
    """Each component's adapter weights of a dict :func:`adapter_state` made."""
    parts: AdapterStates = {}
    for key, tensor in state.items():
        component, _, rest = key.partition(".")
        parts.setdefault(component, {})[rest] = tensor
    return parts
