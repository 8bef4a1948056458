"""Full-size architectures with random weights, built in code: what the device benchmark trains.

``bench/gpu_train.py`` measures the trainer's own step on the real shapes of SD 1.5, SDXL 1.0,
Flux.1-dev and a Llama-3.2-1B-like language model without downloading anything: each model is
built from its published config (the numbers below are those of the models' ``config.json``
files) with random weights, directly on the training device, and assembled into the family's
model class exactly as a loaded base model would be. Random weights make the images noise, but
a step costs the same FLOPs and memory as with the real weights.

``tiny=True`` gives the families' tiny test models instead (:mod:`.tiny`, :mod:`.tiny_flux`), for
the benchmark's quick run on a CPU. The language model's builder is :mod:`trainer.llm.full_size`.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel, \
    UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel  # noqa: E402

from .ldm_configs import LDM_VAE_SCALING_FACTOR  # noqa: E402
from .ldm_text_encoder import CLIP_VOCAB_SIZE, clip_text_config  # noqa: E402
from .sd import load_bundled_tokenizer  # noqa: E402
from .sdxl_single_file import SDXL_VAE_SCALING_FACTOR  # noqa: E402

SOURCE = Path("<random weights>")  # what the models say they were loaded from

# diffusers' configs of the real models (runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-xl-base-1.0,
# black-forest-labs/FLUX.1-dev), the keys that differ from the classes' defaults.
SD15_UNET = {"sample_size": 64, "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
             "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
             "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, "cross_attention_dim": 768,
             "attention_head_dim": 8}
SDXL_UNET = {"sample_size": 128, "block_out_channels": [320, 640, 1280], "layers_per_block": 2,
             "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
             "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
             "transformer_layers_per_block": [1, 2, 10], "attention_head_dim": [5, 10, 20],
             "cross_attention_dim": 2048, "use_linear_projection": True, "addition_embed_type": "text_time",
             "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816}
LDM_VAE = {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4,
           "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4}
FLUX_TRANSFORMER = {"patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
                    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
                    "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": (16, 56, 56)}
FLUX_VAE = {**LDM_VAE, "latent_channels": 16, "use_quant_conv": False, "use_post_quant_conv": False}
T5_XXL = {"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
          "feed_forward_proj": "gated-gelu", "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0}

IMAGE_FAMILIES = ("sd", "sdxl", "flux")


def on_device(device: torch.device, build, dtype: torch.dtype) -> Any:
    """``build()`` with its parameters created on ``device`` (no copy through host memory), then in ``dtype``."""
    with torch.device(device):
        module = build()
    return module.to(dtype=dtype).eval().requires_grad_(False)


def _clip_l(device: torch.device, dtype: torch.dtype) -> CLIPTextModel:
    config = clip_text_config(family="sd1", vocab_size=CLIP_VOCAB_SIZE, hidden_size=768, intermediate_size=3072,
                              num_hidden_layers=12, max_position_embeddings=77)
    return on_device(device, lambda: CLIPTextModel(config), dtype)


def build_image_model(family: str, *, device: torch.device, dtype: torch.dtype, tiny: bool = False):
    """The family's :class:`trainer.models.family.DiffusionModel` with random weights: the denoiser and
    text encoders in ``dtype``, the VAE in fp32 (as the trainer keeps it), all on ``device``."""
    if family not in IMAGE_FAMILIES:
        raise ValueError(f"family must be one of {IMAGE_FAMILIES}, not {family!r}")
    if family == "flux":
        return _flux(device, dtype, tiny)
    if tiny:
        from .tiny import build_tiny_models

        unet, vae, encoders = build_tiny_models(0, "sdxl" if family == "sdxl" else "sd1")
        unet, vae = unet.to(device, dtype), vae.to(device)
        encoders = tuple(e.to(device, dtype) for e in encoders) if family == "sdxl" else encoders.to(device, dtype)
    elif family == "sd":
        unet = on_device(device, lambda: UNet2DConditionModel(**SD15_UNET), dtype)
        vae = on_device(device, lambda: AutoencoderKL(**LDM_VAE, scaling_factor=LDM_VAE_SCALING_FACTOR, sample_size=512),
                  torch.float32)
        encoders = _clip_l(device, dtype)
    else:
        unet = on_device(device, lambda: UNet2DConditionModel(**SDXL_UNET), dtype)
        vae = on_device(device, lambda: AutoencoderKL(**LDM_VAE, scaling_factor=SDXL_VAE_SCALING_FACTOR, sample_size=1024),
                  torch.float32)
        big_g = clip_text_config(family="sd2", vocab_size=CLIP_VOCAB_SIZE, hidden_size=1280, intermediate_size=5120,
                                 num_hidden_layers=32, max_position_embeddings=77)
        big_g.projection_dim = 1280
        encoders = (_clip_l(device, dtype), on_device(device, lambda: CLIPTextModelWithProjection(big_g), dtype))
    if family == "sd":
        from .sd import _assemble

        return _assemble(SOURCE, unet, vae, encoders, load_bundled_tokenizer("sd1"), "sd1", "epsilon",
                         scheduler_config=None)
    from .sdxl import _assemble

    return _assemble(SOURCE, unet, vae, encoders[0], encoders[1],
                     [load_bundled_tokenizer("sd1"), load_bundled_tokenizer("sd2")], "epsilon", None)


def _flux(device: torch.device, dtype: torch.dtype, tiny: bool):
    from .flux import DEV_SCHEDULER, _assemble
    from .flux_files import FLUX_VAE_SCALING, FLUX_VAE_SHIFT
    from .tiny_flux import train_t5_tokenizer

    t5_tokenizer = train_t5_tokenizer()  # its ids are all T5's; the sizes that matter are the model's
    if tiny:
        from .tiny_flux import build_tiny_flux

        transformer, vae, clip, t5 = build_tiny_flux(0, vocab_size=max(64, len(t5_tokenizer)))
        transformer, vae, clip, t5 = transformer.to(device, dtype), vae.to(device), clip.to(device, dtype), \
            t5.to(device, dtype)
    else:
        transformer = on_device(device, lambda: FluxTransformer2DModel(**FLUX_TRANSFORMER), dtype)
        vae = on_device(device, lambda: AutoencoderKL(**FLUX_VAE, scaling_factor=FLUX_VAE_SCALING,
                                                shift_factor=FLUX_VAE_SHIFT, sample_size=1024), torch.float32)
        clip = _clip_l(device, dtype)
        t5 = on_device(device, lambda: T5EncoderModel(T5Config(**T5_XXL)), dtype)
    return _assemble(SOURCE, transformer, vae, clip, t5, t5_tokenizer, load_bundled_tokenizer("sd1"),
                     FlowMatchEulerDiscreteScheduler.from_config(DEV_SCHEDULER))
