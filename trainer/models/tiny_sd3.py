"""A tiny random SD3.5-Medium-shaped model, for tests and benchmarks: a diffusers folder, an
all-in-one checkpoint and the split files ComfyUI users keep.

It has SD3.5 Medium's structure at a size that trains on a CPU: an MMDiT of two joint blocks
(the last with SD3's pre-only text stream and its swapped modulation halves, the first with
MMDiT-X's second image attention), RMS norms of q and k; a 16-channel VAE with SD3's scale and
shift; CLIP-L- and CLIP-G-shaped encoders with projections, of different widths (as 768 and
1280), and a gated-gelu T5 wider than both side by side (as 4096). The T5 tokenizer is trained
offline (:func:`.tiny_flux.train_t5_tokenizer`); the CLIP tokenizers are the bundled one.

Written three times: ``diffusers/`` (a ``StableDiffusion3Pipeline`` folder); ``single/`` a
checkpoint in Stability AI's layout with every encoder bundled; ``split/`` the same checkpoint
without the text encoders, with ``clip_l``, ``clip_g``, ``t5xxl`` and the T5 tokenizer beside it.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel  # noqa: E402
from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel  # noqa: E402

from ..fsutil import atomic_write_bytes, replace_folder  # noqa: E402
from ..model_family import UNET_PREFIX  # noqa: E402
from ..model_keys import SD3_ENCODER_PREFIXES  # noqa: E402
from . import sd3_layout  # noqa: E402
from .ldm_export import vae_to_ldm  # noqa: E402
from .ldm_text_encoder import CLIP_VOCAB_SIZE, clip_text_config  # noqa: E402
from .sd import load_bundled_tokenizer  # noqa: E402
from .sd3 import SD3_SCHEDULER  # noqa: E402
from .sd3_files import SD3_VAE_SCALING, SD3_VAE_SHIFT  # noqa: E402
from .tiny_flux import train_t5_tokenizer  # noqa: E402

SINGLE_FILE = "tiny-sd3.5-medium.safetensors"  # every part in one file
# The split files' names, as ComfyUI users have them (the checkpoint without its text encoders).
SPLIT_FILES = {"transformer": "sd3.5-tiny-medium.safetensors", "clip_l_path": "clip_l.safetensors",
               "clip_g_path": "clip_g.safetensors", "t5_path": "t5xxl_tiny.safetensors",
               "t5_tokenizer_path": "t5_tokenizer"}
TINY_WIDTHS = {"clip_l": 32, "clip_g": 64, "t5": 128, "transformer": 32}


def build_tiny_sd3(seed: int = 0, vocab_size: int = 256):
    """The tiny transformer, VAE, CLIP-L, CLIP-G and T5 with seeded random weights (the global RNG is left as it was)."""
    widths = TINY_WIDTHS
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # pos_embed_max_size 96: patches for up to 1536 px, as SD3 has for 3072 px (192).
        transformer = SD3Transformer2DModel(sample_size=128, patch_size=2, in_channels=16, num_layers=2,
                                            attention_head_dim=16, num_attention_heads=2,
                                            joint_attention_dim=widths["t5"], caption_projection_dim=widths["transformer"],
                                            pooled_projection_dim=widths["clip_l"] + widths["clip_g"], out_channels=16,
                                            pos_embed_max_size=96, dual_attention_layers=(0,), qk_norm="rms_norm")
        vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                            up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[32, 32, 64, 64],
                            layers_per_block=1, latent_channels=16, scaling_factor=SD3_VAE_SCALING,
                            shift_factor=SD3_VAE_SHIFT, use_quant_conv=False, use_post_quant_conv=False)
        clips = []
        for family, width in (("sd1", widths["clip_l"]), ("sd2", widths["clip_g"])):
            config = clip_text_config(family=family, vocab_size=CLIP_VOCAB_SIZE, hidden_size=width, intermediate_size=37,
                                      num_hidden_layers=2, max_position_embeddings=77)
            config.projection_dim = width
            clips.append(CLIPTextModelWithProjection(config))
        t5 = T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=widths["t5"], d_kv=8, d_ff=37, num_layers=2,
                                     num_heads=4, feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1,
                                     decoder_start_token_id=0))
        models = (transformer, vae, *clips, t5)
        with torch.no_grad():
            for model in models:
                for param in model.parameters():
                    if param.ndim == 1:  # no two norms or biases alike: a swap in a conversion shows
                        param.add_(torch.randn_like(param) * 0.02)
    for model in models:
        model.eval()
    return models


def make_tiny_sd3(out_dir: Path | str, seed: int = 0) -> Path:
    """Write the tiny model as ``out_dir/diffusers`` (a ``StableDiffusion3Pipeline`` folder), ``out_dir/single``
    (:data:`SINGLE_FILE`) and ``out_dir/split`` (:data:`SPLIT_FILES`); returns the folder."""
    import diffusers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_t5_tokenizer()
    transformer, vae, clip_l, clip_g, t5 = build_tiny_sd3(seed, vocab_size=max(64, len(tokenizer)))
    final = out_dir / "diffusers"
    staging = out_dir / f".diffusers.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    transformer.save_pretrained(staging / "transformer", safe_serialization=True)
    vae.save_pretrained(staging / "vae", safe_serialization=True)
    for name, model in (("text_encoder", clip_l), ("text_encoder_2", clip_g), ("text_encoder_3", t5)):
        model.save_pretrained(staging / name)
    load_bundled_tokenizer("sd1").save_pretrained(str(staging / "tokenizer"))
    load_bundled_tokenizer("sd2").save_pretrained(str(staging / "tokenizer_2"))
    tokenizer.save_pretrained(str(staging / "tokenizer_3"))
    FlowMatchEulerDiscreteScheduler.from_config(SD3_SCHEDULER).save_pretrained(staging / "scheduler")
    index = {"_class_name": "StableDiffusion3Pipeline", "_diffusers_version": diffusers.__version__,
             "feature_extractor": [None, None], "image_encoder": [None, None],
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
             "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
             "text_encoder_3": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "tokenizer_2": ["transformers", "CLIPTokenizer"], "tokenizer_3": ["transformers", "T5TokenizerFast"],
             "transformer": ["diffusers", "SD3Transformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}
    (staging / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    replace_folder(staging, final)
    write_single_files(out_dir, transformer, vae, clip_l, clip_g, t5, tokenizer)
    return final


def _encoder_states(clip_l: CLIPTextModelWithProjection, clip_g: CLIPTextModelWithProjection,
                    t5: T5EncoderModel) -> dict[str, dict[str, torch.Tensor]]:
    """Each encoder's weights in Hugging Face names as the files have them, by the option that names its file."""
    clips = {option: {k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
             for option, model in (("clip_l_path", clip_l), ("clip_g_path", clip_g))}
    # T5's encoder embedding is the shared one; the files store it once.
    return {**clips, "t5_path": {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}}


def write_single_files(out_dir: Path, transformer: SD3Transformer2DModel, vae: AutoencoderKL,
                       clip_l: CLIPTextModelWithProjection, clip_g: CLIPTextModelWithProjection, t5: T5EncoderModel,
                       tokenizer) -> None:
    """The all-in-one checkpoint (``single/``) and the checkpoint beside its split encoders (``split/``)."""
    from safetensors.torch import save, save_file

    checkpoint = {UNET_PREFIX + k: v for k, v in sd3_layout.to_original(transformer.state_dict()).items()}
    checkpoint.update(vae_to_ldm(vae.state_dict(), vae.config))  # under first_stage_model.
    encoders = _encoder_states(clip_l, clip_g, t5)
    bundled = {SD3_ENCODER_PREFIXES[option] + k: v for option, state in encoders.items() for k, v in state.items()}
    metadata = {"modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": "stable-diffusion-3-5-medium",
                "modelspec.title": "LoRA Studio tiny SD3.5 Medium test model (random weights)"}
    (out_dir / "single").mkdir(exist_ok=True)
    atomic_write_bytes(out_dir / "single" / SINGLE_FILE,
                       save({k: v.contiguous() for k, v in {**checkpoint, **bundled}.items()}, metadata=metadata))
    folder = out_dir / "split"
    staging = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, state in (("transformer", checkpoint), *encoders.items()):
        save_file({k: v.contiguous() for k, v in state.items()}, str(staging / SPLIT_FILES[name]), metadata=metadata
                  if name == "transformer" else None)
    tokenizer.save_pretrained(str(staging / SPLIT_FILES["t5_tokenizer_path"]))
    replace_folder(staging, folder)
