"""Load Flux.1 from the split files people keep for ComfyUI, fully offline.

ComfyUI users have Flux.1 as four separate things: the transformer in Black Forest Labs'
layout (``models/unet/flux1-dev.safetensors``), CLIP-L (``models/clip/clip_l.safetensors``,
Hugging Face names), T5-XXL (``models/clip/t5xxl_fp16.safetensors``, Hugging Face names) and
the VAE (``models/vae/ae.safetensors``, the original autoencoder layout). The options
``clip_l_path``, ``t5_path``, ``ae_path`` and ``t5_tokenizer_path`` name the last three and
the T5 tokenizer (ComfyUI bundles its own; FLUX.1-dev's ``tokenizer_2`` folder works).

Every model is built on the meta device from a config inferred from the tensor shapes and
loaded exactly (:func:`load_strict`): a missing or misshapen weight names its file. What
the weights cannot say, and the rules used instead: the rotary split of the heads
(:func:`flux_layout.rotary_axes`); CLIP-L uses quick_gelu and 64-channel heads; T5 is
gated-gelu (v1.1, as Flux.1 uses) when its feed-forward layer has two input halves; the
VAE's scale and shift are Flux.1's.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, FluxTransformer2DModel  # noqa: E402
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint  # noqa: E402
from torch import Tensor  # noqa: E402
from transformers import CLIPTextModel, T5Config, T5EncoderModel  # noqa: E402

from trainer.model_family import FLUX_FILE_OPTIONS, VAE_PREFIX, ModelKindError, check_companion, weight_files  # noqa: E402

from . import flux_layout  # noqa: E402
from .errors import ModelLoadError  # noqa: E402
from .ldm_single_file import clip_weights, infer_text_config, infer_vae_config, load_strict  # noqa: E402

FLUX_VAE_SCALING, FLUX_VAE_SHIFT = 0.3611, 0.1159  # Flux.1's ae
LAYOUT_HINT = "the file may be damaged, or be another model's; Flux.1's files come as ComfyUI keeps them"


@dataclass
class FluxParts:
    """The models and the T5 tokenizer read from split files."""

    transformer: FluxTransformer2DModel
    vae: AutoencoderKL
    clip: CLIPTextModel
    t5: T5EncoderModel
    t5_tokenizer: object


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


def _build(cls, config, weights: Mapping[str, Tensor], what: str, path: Path, dtype: torch.dtype, *,
           meta: bool = True):
    """``cls`` made from ``config`` (on the meta device: no random init of billions of weights) and
    given ``weights`` exactly."""
    with torch.device("meta" if meta else "cpu"):
        model = cls(config) if not isinstance(config, dict) else cls(**config)
    load_strict(model, weights, what, path, dtype)
    return model.eval()


def _transformer(path: Path, dtype: torch.dtype) -> FluxTransformer2DModel:
    original = flux_layout.strip_prefix(read_weights([path]))
    try:
        config = flux_layout.infer_transformer_config({k: list(v.shape) for k, v in original.items()})
        weights = flux_layout.to_diffusers(original)
    except (KeyError, IndexError, ValueError) as exc:
        raise ModelLoadError(f"{path}: the Flux.1 transformer lacks an expected weight ({exc})", LAYOUT_HINT) from exc
    return _build(FluxTransformer2DModel, config, weights, "Flux.1 transformer", path, dtype)


def _clip(path: Path, dtype: torch.dtype) -> CLIPTextModel:
    state = clip_weights(read_weights(weight_files(path)), "")
    # ComfyUI's file may also carry the vision-text projection and logit scale, which the text model has not.
    state = {k: v for k, v in state.items() if k.startswith(("embeddings.", "encoder.", "final_layer_norm."))}
    try:
        config = infer_text_config(state, "sd1")  # OpenAI CLIP's rules: quick_gelu, 64-channel heads
    except KeyError as exc:
        raise ModelLoadError(f"{path}: the CLIP-L text encoder lacks an expected weight ({exc})", LAYOUT_HINT) from exc
    # On the CPU, not the meta device: CLIP has a position_ids buffer that no file carries.
    return _build(CLIPTextModel, config, state, "CLIP-L text encoder", path, dtype, meta=False)


def _t5(path: Path, dtype: torch.dtype) -> T5EncoderModel:
    state = {k: v for k, v in read_weights(weight_files(path)).items() if k.startswith(("shared.", "encoder."))}
    # The token embedding is stored once, as shared or as the encoder's (the two are tied).
    embedding = state.get("shared.weight", state.get("encoder.embed_tokens.weight"))
    if embedding is None:
        raise ModelLoadError(f"{path}: the T5 text encoder has no token embedding (shared.weight)", LAYOUT_HINT)
    state["shared.weight"] = state["encoder.embed_tokens.weight"] = embedding
    try:
        config = t5_config(state)
    except KeyError as exc:
        raise ModelLoadError(f"{path}: the T5 text encoder lacks an expected weight ({exc})", LAYOUT_HINT) from exc
    return _build(T5EncoderModel, config, state, "T5 text encoder", path, dtype)


def _vae(path: Path, dtype: torch.dtype) -> AutoencoderKL:
    # ae.safetensors is the original autoencoder without SD's first_stage_model. prefix.
    state = {VAE_PREFIX + k.removeprefix(VAE_PREFIX): v for k, v in read_weights([path]).items()}
    try:
        config = infer_vae_config(state, sample_size=1024, scaling_factor=FLUX_VAE_SCALING)
        config["shift_factor"] = FLUX_VAE_SHIFT
        weights = convert_ldm_vae_checkpoint(state, config)
    except (ModelLoadError, KeyError, IndexError) as exc:
        raise ModelLoadError(f"{path}: not a complete Flux.1 VAE ({exc})", LAYOUT_HINT) from exc
    return _build(AutoencoderKL, config, weights, "Flux.1 VAE", path, dtype)


def load_flux_files(transformer_file: Path, companions: Mapping[str, str | Path],
                    dtype: torch.dtype = torch.float32) -> FluxParts:
    """The transformer ``transformer_file`` and the files its companion options name, each checked first."""
    from transformers import AutoTokenizer

    paths: dict[str, Path] = {}
    for option in FLUX_FILE_OPTIONS:
        value = companions.get(option)
        if not value:
            raise ModelLoadError(f"{transformer_file.name} is a Flux.1 transformer file; its other parts are "
                                 f"separate files, and {option} is not set",
                                 f"set {', '.join(FLUX_FILE_OPTIONS)} (see `python -m trainer schema`)")
        paths[option] = Path(value).expanduser()
        try:
            check_companion(option, paths[option])
        except ModelKindError as exc:
            raise ModelLoadError(exc.message, exc.hint) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(paths["t5_tokenizer_path"]), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"t5_tokenizer_path: the T5 tokenizer in {paths['t5_tokenizer_path']} could not be "
                             f"loaded: {exc}", "give a folder with the T5 tokenizer's tokenizer.json") from exc
    return FluxParts(_transformer(transformer_file, dtype), _vae(paths["ae_path"], dtype),
                     _clip(paths["clip_l_path"], dtype), _t5(paths["t5_path"], dtype), tokenizer)
