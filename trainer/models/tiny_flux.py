"""A tiny random Flux.1-dev-shaped model, for tests and benchmarks, written as a diffusers folder.

It has Flux.1's structure at a size that trains on a CPU: a transformer with one double-
stream and one single-stream block, guidance input, rotary position ids; a 16-channel VAE
with Flux.1's scale and shift; CLIP-L-shaped and T5-shaped text encoders. The T5 tokenizer is
trained here, offline, with the `tokenizers` library on a small built-in vocabulary (the
real T5 tokenizer cannot be downloaded at run time); CLIP's is the bundled one.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel  # noqa: E402
from transformers import CLIPTextModel, T5Config, T5EncoderModel  # noqa: E402

from ..fsutil import replace_folder  # noqa: E402
from .ldm_single_file import CLIP_VOCAB_SIZE, clip_text_config  # noqa: E402
from .sd import load_bundled_tokenizer  # noqa: E402

FLUX_VAE_SCALING, FLUX_VAE_SHIFT = 0.3611, 0.1159  # Flux.1's ae
TINY_T5_WIDTH, TINY_CLIP_WIDTH = 32, 32
# Words the tiny T5 tokenizer learns pieces from (captions in tests and demos use them).
_WORDS = ("a an the of in on with and red blue green yellow white black square circle stripe wide tall flat style "
          "shape shapes number photo painting drawing dog cat person portrait landscape light dark colour").split()


def train_t5_tokenizer():
    """A T5-style (unigram, </s> at the end, <pad> = 0) fast tokenizer trained offline on :data:`_WORDS`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast

    corpus = [" ".join(_WORDS[i:] + _WORDS[:i]) for i in range(len(_WORDS))] * 8
    core = Tokenizer(models.Unigram())
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    core.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=256, special_tokens=["<pad>", "</s>", "<unk>"],
                                                             unk_token="<unk>"))
    core.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                        special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=core, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0,
                           model_max_length=512)


def build_tiny_flux(seed: int = 0, vocab_size: int = 256):
    """The tiny transformer, VAE, CLIP and T5 with seeded random weights (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # Heads of 16 channels, split 4/6/6 over the rotary axes (time, height, width) as Flux's 16/56/56.
        transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                             attention_head_dim=16, num_attention_heads=2,
                                             joint_attention_dim=TINY_T5_WIDTH, pooled_projection_dim=TINY_CLIP_WIDTH,
                                             guidance_embeds=True, axes_dims_rope=(4, 6, 6))
        vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                            up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[32, 32, 64, 64],
                            layers_per_block=1, latent_channels=16, scaling_factor=FLUX_VAE_SCALING,
                            shift_factor=FLUX_VAE_SHIFT, use_quant_conv=False, use_post_quant_conv=False)
        clip = CLIPTextModel(clip_text_config(family="sd1", vocab_size=CLIP_VOCAB_SIZE, hidden_size=TINY_CLIP_WIDTH,
                                              intermediate_size=37, num_hidden_layers=2, max_position_embeddings=77))
        t5 = T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=TINY_T5_WIDTH, d_kv=8, d_ff=37, num_layers=2,
                                     num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
        with torch.no_grad():
            for model in (transformer, vae, clip, t5):
                for param in model.parameters():
                    if param.ndim == 1:
                        param.add_(torch.randn_like(param) * 0.02)
    for model in (transformer, vae, clip, t5):
        model.eval()
    return transformer, vae, clip, t5


def make_tiny_flux(out_dir: Path | str, seed: int = 0) -> Path:
    """Write the tiny Flux.1-dev model as a diffusers ``FluxPipeline`` folder ``out_dir/diffusers``; returns it."""
    import diffusers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_t5_tokenizer()
    transformer, vae, clip, t5 = build_tiny_flux(seed, vocab_size=max(64, len(tokenizer)))
    final = out_dir / "diffusers"
    staging = out_dir / f".diffusers.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    transformer.save_pretrained(staging / "transformer", safe_serialization=True)
    vae.save_pretrained(staging / "vae", safe_serialization=True)
    clip.save_pretrained(staging / "text_encoder")
    t5.save_pretrained(staging / "text_encoder_2")
    load_bundled_tokenizer("sd1").save_pretrained(str(staging / "tokenizer"))
    tokenizer.save_pretrained(str(staging / "tokenizer_2"))
    # Flux.1-dev's scheduler: the shift grows with the image's size.
    FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                    base_image_seq_len=256, max_image_seq_len=4096).save_pretrained(staging / "scheduler")
    index = {"_class_name": "FluxPipeline", "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "text_encoder_2": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "tokenizer_2": ["transformers", "T5TokenizerFast"], "transformer": ["diffusers", "FluxTransformer2DModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (staging / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    replace_folder(staging, final)
    return final
