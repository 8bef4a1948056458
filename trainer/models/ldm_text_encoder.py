"""SD's text encoder in a single-file checkpoint: its weights in ``CLIPTextModel``'s names (CLIP
as stored in the HF layout, OpenCLIP converted) and the ``CLIPTextConfig`` that fits them.
The SDXL and Flux.1 loaders use the same conversions for their CLIP encoders; the rules for
what the weights cannot say (heads, activation, SD2's dropped last layer) are listed in
:mod:`.ldm_configs`.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before transformers is imported: it reads it at import

from collections.abc import Mapping  # noqa: E402

import torch  # noqa: E402
from transformers import CLIPTextConfig  # noqa: E402

from .errors import ModelLoadError  # noqa: E402
from .ldm_configs import key_indices  # noqa: E402
from .ldm_file import CLIP_PREFIX, OPEN_CLIP_PREFIX  # noqa: E402

Tensor = torch.Tensor

CLIP_VOCAB_SIZE = 49408
CLIP_BOS_TOKEN_ID = 49406  # <|startoftext|>
CLIP_EOS_TOKEN_ID = 49407  # <|endoftext|>
SD2_PAD_TOKEN_ID = 0  # "!": OpenCLIP pads with token 0, so SD2's tokenizer does too


def text_encoder_heads(hidden_size: int) -> int:
    """Attention heads of an SD text encoder: 64 channels per head, at least one head."""
    return max(1, hidden_size // 64)


def clip_text_config(
    *,
    family: str,
    vocab_size: int,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    max_position_embeddings: int,
) -> CLIPTextConfig:
    """The ``CLIPTextConfig`` of an SD text encoder with these sizes.

    SD1's OpenAI CLIP uses quick_gelu, SD2's OpenCLIP exact gelu; both use layer norm
    epsilon 1e-5. The token ids match the CLIP tokenizer (pooled output finds the EOS).
    """
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=text_encoder_heads(hidden_size),
        max_position_embeddings=max_position_embeddings,
        hidden_act="gelu" if family == "sd2" else "quick_gelu",
        layer_norm_eps=1e-5,
        bos_token_id=CLIP_BOS_TOKEN_ID,
        eos_token_id=CLIP_EOS_TOKEN_ID,
        pad_token_id=SD2_PAD_TOKEN_ID if family == "sd2" else CLIP_EOS_TOKEN_ID,
    )


_OPEN_CLIP_LAYER_RENAMES = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
    "attn.out_proj": "self_attn.out_proj",
}


def clip_weights(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """A HF-layout CLIP text encoder under ``prefix``, in ``CLIPTextModel``'s (flattened) names."""
    clip = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    # Old transformers put everything under text_model.; newer ones flatten it.
    converted = {k.removeprefix("text_model."): v for k, v in clip.items()}
    return {k: v for k, v in converted.items() if not k.endswith("position_ids")}


def open_clip_weights(state_dict: Mapping[str, Tensor], prefix: str, *, drop_last: bool) -> dict[str, Tensor]:
    """An OpenCLIP text encoder under ``prefix`` in ``CLIPTextModel``'s (flattened) names.

    ``drop_last``: SD2 conditions on the penultimate layer, and diffusers' SD2 text encoder
    has one layer fewer (see the module docstring); SDXL keeps every layer and picks the
    penultimate one when encoding. ``text_projection`` is left out (see :func:`open_clip_projection`).
    """
    oc = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    blocks = key_indices(oc, "transformer.resblocks.")
    if len(blocks) < 2:
        raise ModelLoadError("the OpenCLIP text encoder has fewer than two layers; its penultimate one is needed")
    out = {
        "embeddings.token_embedding.weight": oc["token_embedding.weight"],
        "embeddings.position_embedding.weight": oc["positional_embedding"],
        "final_layer_norm.weight": oc["ln_final.weight"],
        "final_layer_norm.bias": oc["ln_final.bias"],
    }
    for i in blocks[:-1] if drop_last else blocks:
        src = f"transformer.resblocks.{i}."
        dst = f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            # nn.MultiheadAttention keeps q, k and v in one matrix; CLIPTextModel splits them.
            # clone(): separate storage, so that the model can be saved with safetensors.
            q, k, v = (t.clone() for t in oc[src + f"attn.in_proj_{kind}"].chunk(3, dim=0))
            out[dst + f"self_attn.q_proj.{kind}"] = q
            out[dst + f"self_attn.k_proj.{kind}"] = k
            out[dst + f"self_attn.v_proj.{kind}"] = v
            for old, new in _OPEN_CLIP_LAYER_RENAMES.items():
                out[dst + f"{new}.{kind}"] = oc[src + f"{old}.{kind}"]
    return out


def convert_text_encoder(state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """SD's text encoder weights in ``CLIPTextModel`` (flattened) names, and its layout.

    The layout is ``"clip"`` (SD1, HF names under ``cond_stage_model.transformer.``) or
    ``"open_clip"`` (SD2; the last block is dropped, see the module docstring).
    """
    clip = clip_weights(state_dict, CLIP_PREFIX)
    if clip:
        return clip, "clip"
    return open_clip_weights(state_dict, OPEN_CLIP_PREFIX, drop_last=True), "open_clip"


def infer_text_config(text_state: Mapping[str, Tensor], family: str) -> CLIPTextConfig:
    """The ``CLIPTextConfig`` that fits converted (``CLIPTextModel``-named) weights."""
    vocab_size, hidden_size = text_state["embeddings.token_embedding.weight"].shape
    return clip_text_config(
        family=family,
        vocab_size=int(vocab_size),
        hidden_size=int(hidden_size),
        intermediate_size=int(text_state["encoder.layers.0.mlp.fc1.weight"].shape[0]),
        num_hidden_layers=len(key_indices(text_state, "encoder.layers.")),
        max_position_embeddings=int(text_state["embeddings.position_embedding.weight"].shape[0]),
    )
