"""What the loaders of models kept as several files share (Flux.1's and SD3's): reading the
weights, building a model exactly from them, CLIP and T5 in Hugging Face names, the 16-channel
VAE, the T5 tokenizer and the companion options that name the other files.

Every model is built on the meta device (no random init of billions of weights) from a
config inferred from the tensor shapes and loaded exactly (:func:`load_strict`): a missing or
misshapen weight names its file. T5 is gated-gelu (v1.1, as Flux.1 and SD3 use it) when its
feed-forward layer has two input halves.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from collections.abc import Mapping  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from transformers import T5Config, T5EncoderModel  # noqa: E402

from trainer.model_family import ModelKindError, check_companion  # noqa: E402

from .errors import ModelLoadError  # noqa: E402
from .ldm_configs import infer_vae_config  # noqa: E402
from .ldm_single_file import load_strict  # noqa: E402
from .ldm_text_encoder import clip_weights, infer_text_config  # noqa: E402


def read_weights(paths: list[Path]) -> dict[str, Tensor]:
    """Every tensor of these safetensors files (the shards of one model), memory-mapped."""
    from safetensors import safe_open

    state: dict[str, Tensor] = {}
    for path in paths:
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                state.update({key: handle.get_tensor(key) for key in handle.keys()})
        except Exception as exc:  # safetensors raises its own error types for bad data
            raise ModelLoadError(f"{path} could not be read as a safetensors file: {exc}",
                                 "the file may be incomplete (an interrupted download?): download it again") from exc
    return state


def build_exact(cls: Any, config: Any, weights: Mapping[str, Tensor], what: str, path: Path, dtype: torch.dtype, *,
                meta: bool = True) -> Any:
    """``cls`` made from ``config`` (on the meta device unless ``meta`` is off: CLIP has a position_ids buffer
    that no file carries) and given ``weights`` exactly."""
    with torch.device("meta" if meta else "cpu"):
        model = cls(config) if not isinstance(config, dict) else cls(**config)
    load_strict(model, weights, what, path, dtype)
    return model.eval()


def original_transformer(cls: Any, layout: Any, original: Mapping[str, Tensor], what: str, path: Path,
                         dtype: torch.dtype, hint: str) -> Any:
    """A transformer from its original-layout weights (prefix stripped); ``layout`` is the family's layout module
    (``infer_transformer_config`` and ``to_diffusers``)."""
    try:
        config = layout.infer_transformer_config({k: list(v.shape) for k, v in original.items()})
        weights = layout.to_diffusers(original)
    except (KeyError, IndexError, ValueError) as exc:
        raise ModelLoadError(f"{path}: the {what} lacks an expected weight ({exc})", hint) from exc
    return build_exact(cls, config, weights, what, path, dtype)


def companion_path(option: str, companions: Mapping[str, str | Path]) -> Path | None:
    """The file ``option`` names, checked to be of its kind (:func:`trainer.model_family.check_companion`);
    None when the option is unset."""
    value = companions.get(option)
    if not value:
        return None
    path = Path(value).expanduser()
    try:
        check_companion(option, path)
    except ModelKindError as exc:
        raise ModelLoadError(exc.message, exc.hint) from exc
    return path


def clip_encoder(weights: Mapping[str, Tensor], family: str, what: str, path: Path, dtype: torch.dtype, hint: str, *,
                 projected: bool = False) -> Any:
    """A CLIP text encoder from its weights in Hugging Face names (``text_model.`` level or not), with
    ``family``'s rules for what the weights cannot say ("sd1": OpenAI CLIP's quick_gelu; "sd2": OpenCLIP's
    gelu and "!" padding). ``projected``: a ``CLIPTextModelWithProjection`` (its ``text_projection``)."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    state = clip_weights(weights, "")
    projection = state.get("text_projection.weight")
    # ComfyUI's files may also carry the vision-text projection and logit scale, which the text model has not.
    state = {k: v for k, v in state.items() if k.startswith(("embeddings.", "encoder.", "final_layer_norm."))}
    try:
        config = infer_text_config(state, family)
    except KeyError as exc:
        raise ModelLoadError(f"{path}: the {what} lacks an expected weight ({exc})", hint) from exc
    if not projected:
        # On the CPU, not the meta device: CLIP has a position_ids buffer that no file carries.
        return build_exact(CLIPTextModel, config, state, what, path, dtype, meta=False)
    if projection is None:
        raise ModelLoadError(f"{path}: the {what} has no text_projection.weight (its pooled output's projection)",
                             hint)
    config.projection_dim = int(projection.shape[0])
    weights = {"text_model." + k: v for k, v in state.items()} | {"text_projection.weight": projection}
    return build_exact(CLIPTextModelWithProjection, config, weights, what, path, dtype, meta=False)


def ldm_vae(state: Mapping[str, Tensor], path: Path, dtype: torch.dtype, *, scaling: float, shift: float, what: str,
            hint: str) -> Any:
    """A 16-channel VAE from its original autoencoder weights under ``first_stage_model.``, with the model's
    latent scale and shift (which the weights cannot say)."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    try:
        config = infer_vae_config(state, sample_size=1024, scaling_factor=scaling)
        config["shift_factor"] = shift
        weights = convert_ldm_vae_checkpoint(state, config)
    except (ModelLoadError, KeyError, IndexError) as exc:
        raise ModelLoadError(f"{path}: not a complete {what} ({exc})", hint) from exc
    return build_exact(AutoencoderKL, config, weights, what, path, dtype)


def t5_config(state: Mapping[str, Tensor]) -> T5Config:
    """The encoder config that fits T5 weights in Hugging Face names."""
    first = "encoder.block.0.layer."
    heads_bias = state[first + "0.SelfAttention.relative_attention_bias.weight"]  # [buckets, heads]
    buckets, heads = heads_bias.shape
    gated = first + "1.DenseReluDense.wi_0.weight" in state
    d_ff = state[first + ("1.DenseReluDense.wi_0.weight" if gated else "1.DenseReluDense.wi.weight")].shape[0]
    vocab_size, d_model = state["shared.weight"].shape
    layers = {int(k.split(".")[2]) for k in state if k.startswith("encoder.block.")}
    return T5Config(vocab_size=int(vocab_size), d_model=int(d_model), d_kv=int(state[first + "0.SelfAttention.q.weight"]
                                                                              .shape[0]) // int(heads),
                    d_ff=int(d_ff), num_layers=len(layers), num_heads=int(heads),
                    relative_attention_num_buckets=int(buckets), feed_forward_proj="gated-gelu" if gated else "relu",
                    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, is_encoder_decoder=False)


def t5_encoder(weights: Mapping[str, Tensor], path: Path, dtype: torch.dtype, hint: str) -> T5EncoderModel:
    """T5's encoder from its weights in Hugging Face names (``shared.``, ``encoder.``; others are ignored)."""
    state = {k: v for k, v in weights.items() if k.startswith(("shared.", "encoder."))}
    # The token embedding is stored once, as shared or as the encoder's (the two are tied).
    embedding = state.get("shared.weight", state.get("encoder.embed_tokens.weight"))
    if embedding is None:
        raise ModelLoadError(f"{path}: the T5 text encoder has no token embedding (shared.weight)", hint)
    state["shared.weight"] = state["encoder.embed_tokens.weight"] = embedding
    try:
        config = t5_config(state)
    except KeyError as exc:
        raise ModelLoadError(f"{path}: the T5 text encoder lacks an expected weight ({exc})", hint) from exc
    return build_exact(T5EncoderModel, config, state, "T5 text encoder", path, dtype)


def load_t5_tokenizer(folder: Path, subfolder: str | None = None, *, where: str = "t5_tokenizer_path") -> Any:
    """The T5 tokenizer in ``folder`` (or its ``subfolder``), offline; ``where`` names it in the message."""
    from transformers import AutoTokenizer

    try:
        if subfolder:
            return AutoTokenizer.from_pretrained(str(folder), subfolder=subfolder, local_files_only=True)
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{where}: the T5 tokenizer in {folder / (subfolder or '')} could not be loaded: {exc}",
                             "give a folder with the T5 tokenizer's tokenizer.json or spiece.model") from exc


def check_t5_tokenizer(source: Path, t5: T5EncoderModel, tokenizer: Any) -> None:
    """Refuse a T5 tokenizer that knows tokens its encoder does not (another model's)."""
    if len(tokenizer) > t5.config.vocab_size:
        raise ModelLoadError(f"{source}: the T5 encoder knows {t5.config.vocab_size} tokens but its tokenizer has "
                             f"{len(tokenizer)}; they do not belong together.",
                             "give the T5 tokenizer that came with this T5 encoder")
