"""Tiny random SD 1.x, SD 2.x and SDXL-shaped models, for tests, demos and benchmarks.

It has the real structure (a UNet with cross-attention, a VAE, CLIP text encoders with
the real 49408-token vocabulary, the real tokenizer; for SDXL two encoders of different
widths, the pooled projection and the size-conditioning embedding) at a size that trains on a CPU at
several steps per second on 64x64 images. Its weights are random, so its images are
noise; what it proves is that the plumbing works.

:func:`make_tiny_model` writes it twice: as a diffusers folder and as an original
LDM-layout single file. Both load into the same model (the single-file inference rules
in :mod:`trainer.models.ldm_configs` reproduce the tiny configs exactly), which the
tests use to prove the LDM conversion in both directions.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

from ..fsutil import atomic_write_bytes, replace_folder  # noqa: E402
from .ldm_export import export_ldm_checkpoint  # noqa: E402
from .ldm_configs import LDM_VAE_SCALING_FACTOR, unet_attention_head_dim  # noqa: E402
from .ldm_text_encoder import CLIP_VOCAB_SIZE, clip_text_config  # noqa: E402
from .family import make_noise_scheduler  # noqa: E402
from .sd import load_bundled_tokenizer  # noqa: E402
from .sdxl_single_file import SDXL_VAE_SCALING_FACTOR  # noqa: E402

TINY_IMAGE_SIZE = 64  # pixels; the VAE halves it three times, so latents are 8x8
# Four levels, 8x down-sampling, as in SD: an image of N px gives the latents (and so the
# attention sequence) that a real SD model trains on at N px, so timings at 512 px mean
# what they would on a real model. (Three levels made 512 px a 128x128 latent, 16x the
# attention work of SD at that size.)
TINY_VAE_CHANNELS = (32, 32, 64, 64)
TINY_UNET_CHANNELS = (32, 64)
FAMILIES = ("sd1", "sd2", "sdxl", "flux", "sd3")
# SDXL's encoders: CLIP-L-like and OpenCLIP-like, of different widths, as in SDXL (768 / 1280).
TINY_SDXL_WIDTHS = (32, 64)
TINY_SDXL_TIME_EMBED = 8  # SDXL: 256 channels per size/crop number


@dataclass(frozen=True)
class TinyModelPaths:
    """Where :func:`make_tiny_model` wrote the two forms of the same tiny model (Flux.1: the folder and split
    files; SD3: the folder, an all-in-one file and split files)."""

    diffusers_dir: Path
    single_file: Path | None
    # A model kept as split files (Flux.1, SD3): the main file and the options naming the others.
    split_files: dict[str, Path] | None = None


def tiny_unet_config(family: str = "sd1") -> dict[str, Any]:
    """The tiny UNet's config: SD's (or SDXL's) block structure, 32/64 channels, heads per the family's rules."""
    config: dict[str, Any] = {
        "sample_size": TINY_IMAGE_SIZE // 2 ** (len(TINY_VAE_CHANNELS) - 1),
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": list(TINY_UNET_CHANNELS),
        "layers_per_block": 2,
        "attention_head_dim": unet_attention_head_dim(family, TINY_UNET_CHANNELS),
        "use_linear_projection": family != "sd1",
        "upcast_attention": family == "sd2",
    }
    if family == "sdxl":
        # SDXL's shape: no attention at the first level, deeper transformers further down (SDXL:
        # 0/2/10), and the added embedding of the pooled text and six size numbers.
        config.update(down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                      up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], cross_attention_dim=sum(TINY_SDXL_WIDTHS),
                      transformer_layers_per_block=[1, 2], addition_embed_type="text_time",
                      addition_time_embed_dim=TINY_SDXL_TIME_EMBED,
                      projection_class_embeddings_input_dim=TINY_SDXL_WIDTHS[1] + 6 * TINY_SDXL_TIME_EMBED)
    else:
        # Attention at the high-resolution level first, as in SD (whose last level has none).
        config.update(down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                      up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
                      cross_attention_dim=64 if family == "sd2" else 32, transformer_layers_per_block=1)
    return config


def tiny_vae_config(family: str = "sd1") -> dict[str, Any]:
    """The tiny VAE's config: 4 levels (8x down-sampling, as SD), 4 latent channels, the family's scaling."""
    levels = len(TINY_VAE_CHANNELS)
    return {
        "sample_size": TINY_IMAGE_SIZE,
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": list(TINY_VAE_CHANNELS),
        "layers_per_block": 1,
        "latent_channels": 4,
        "scaling_factor": SDXL_VAE_SCALING_FACTOR if family == "sdxl" else LDM_VAE_SCALING_FACTOR,
        "mid_block_add_attention": True,
        "use_quant_conv": True,
        "use_post_quant_conv": True,
    }


def _tiny_text_encoder(family: str, width: int, projection: bool = False) -> torch.nn.Module:
    config = clip_text_config(
        family=family,
        vocab_size=CLIP_VOCAB_SIZE,  # the real tokenizer's vocabulary
        hidden_size=width,
        intermediate_size=37,
        num_hidden_layers=3,
        max_position_embeddings=77,
    )
    if projection:
        config.projection_dim = width
        return CLIPTextModelWithProjection(config)
    return CLIPTextModel(config)


def build_tiny_models(seed: int = 0, family: str = "sd1") -> tuple[UNet2DConditionModel, AutoencoderKL, Any]:
    """Build the tiny UNet, VAE and text encoder (SDXL: the pair of encoders) with seeded random weights.

    The global RNG is left as it was. Every 1-D weight (norms, biases) is perturbed so
    that no two tensors are alike: a conversion that swaps two same-shaped weights
    (norm1 for norm2, say) then shows up as a difference instead of passing unnoticed.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**tiny_unet_config(family))
        vae = AutoencoderKL(**tiny_vae_config(family))
        if family == "sdxl":
            encoders: list[torch.nn.Module] = [_tiny_text_encoder("sd1", TINY_SDXL_WIDTHS[0]),
                                               _tiny_text_encoder("sd2", TINY_SDXL_WIDTHS[1], projection=True)]
        else:
            encoders = [_tiny_text_encoder(family, 64 if family == "sd2" else 32)]
        with torch.no_grad():
            for model in (unet, vae, *encoders):
                for param in model.parameters():
                    if param.ndim == 1:
                        param.add_(torch.randn_like(param) * 0.02)
    for model in (unet, vae, *encoders):
        model.eval()
    return unet, vae, (tuple(encoders) if family == "sdxl" else encoders[0])


def _model_index(family: str) -> dict[str, Any]:
    import diffusers

    index: dict[str, Any] = {
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if family == "sdxl":
        index.update(_class_name="StableDiffusionXLPipeline", force_zeros_for_empty_prompt=True,
                     text_encoder_2=["transformers", "CLIPTextModelWithProjection"],
                     tokenizer_2=["transformers", "CLIPTokenizer"])
    else:
        index.update(_class_name="StableDiffusionPipeline", requires_safety_checker=False,
                     safety_checker=[None, None])
    return dict(sorted(index.items()))


_ARCHITECTURES = {"sd1": "stable-diffusion-v1", "sd2": "stable-diffusion-v2-512", "sdxl": "stable-diffusion-xl-v1-base"}
_SINGLE_FILE_NAMES = {"sd1": "tiny-sd-v1.safetensors", "sd2": "tiny-sd-v2.safetensors", "sdxl": "tiny-sdxl.safetensors"}


def _single_file_metadata(family: str) -> dict[str, str]:
    # SAI model spec keys, as kohya and ComfyUI write them: the loader reads the
    # resolution and prediction type back, so the tiny file needs no extra arguments.
    return {
        "format": "pt",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": _ARCHITECTURES[family],
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
        "modelspec.title": f"LoRA Studio tiny {family} test model (random weights)",
        "modelspec.resolution": f"{TINY_IMAGE_SIZE}x{TINY_IMAGE_SIZE}",
        "modelspec.prediction_type": "epsilon",
    }


def make_tiny_model(out_dir: Path | str, seed: int = 0, *, family: str = "sd1") -> TinyModelPaths:
    """Write a tiny random model of ``family`` to ``out_dir`` in both layouts, deterministically.

    ``out_dir/diffusers/`` is a diffusers pipeline folder (safetensors);
    ``out_dir/tiny-sd-v1.safetensors`` (``tiny-sd-v2``, ``tiny-sdxl``) is the same model in
    the original single-file layout. Existing outputs are replaced; each appears
    complete or not at all.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    if family == "flux":
        from .tiny_flux import make_tiny_flux

        from .tiny_flux import SPLIT_FILES

        folder = make_tiny_flux(out_dir, seed)
        return TinyModelPaths(diffusers_dir=folder, single_file=None,
                              split_files={k: Path(out_dir) / "split" / v for k, v in SPLIT_FILES.items()})
    if family == "sd3":
        from . import tiny_sd3

        folder = tiny_sd3.make_tiny_sd3(out_dir, seed)
        return TinyModelPaths(diffusers_dir=folder, single_file=Path(out_dir) / "single" / tiny_sd3.SINGLE_FILE,
                              split_files={k: Path(out_dir) / "split" / v for k, v in tiny_sd3.SPLIT_FILES.items()})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unet, vae, text_encoder = build_tiny_models(seed, family)

    # The folder is written under a temporary name and renamed, so that an interrupted
    # run never leaves a half-written model that looks complete.
    final = out_dir / "diffusers"
    staging = out_dir / f".diffusers.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    unet.save_pretrained(staging / "unet", safe_serialization=True)
    vae.save_pretrained(staging / "vae", safe_serialization=True)
    if family == "sdxl":
        for index, suffix in enumerate(("", "_2")):
            text_encoder[index].save_pretrained(staging / f"text_encoder{suffix}")
            load_bundled_tokenizer("sd2" if index else "sd1").save_pretrained(str(staging / f"tokenizer{suffix}"))
    else:
        text_encoder.save_pretrained(staging / "text_encoder")
        load_bundled_tokenizer(family).save_pretrained(str(staging / "tokenizer"))
    make_noise_scheduler("epsilon").save_pretrained(staging / "scheduler")
    (staging / "model_index.json").write_text(json.dumps(_model_index(family), indent=2) + "\n", encoding="utf-8")
    replace_folder(staging, final)

    from safetensors.torch import save as save_safetensors

    single_file = out_dir / _SINGLE_FILE_NAMES[family]
    state = export_ldm_checkpoint(unet, vae, text_encoder, family)
    atomic_write_bytes(single_file, save_safetensors(state, metadata=_single_file_metadata(family)))
    return TinyModelPaths(diffusers_dir=final, single_file=single_file)
