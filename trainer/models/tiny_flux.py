"""A tiny random Flux.1-dev-shaped model, for tests and benchmarks: a diffusers folder and split files.

It has Flux.1's structure at a size that trains on a CPU: a transformer with one double-
stream and one single-stream block, guidance input, rotary position ids; a 16-channel VAE
with Flux.1's scale and shift; CLIP-L-shaped and T5-shaped text encoders. The T5 tokenizer is
trained here, offline, with the `tokenizers` library on a small built-in vocabulary (the
real T5 tokenizer cannot be downloaded at run time); CLIP's is the bundled one.

The same model is also written as the split files ComfyUI users keep (``split/``: the
transformer in Black Forest Labs' layout, ``clip_l``, ``t5xxl``, ``ae`` and the T5 tokenizer),
for the loader of :mod:`.flux_files`.
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
from ..model_family import VAE_PREFIX  # noqa: E402
from . import flux_layout  # noqa: E402
from .flux import DEV_SCHEDULER  # noqa: E402
from .flux_files import FLUX_VAE_SCALING, FLUX_VAE_SHIFT  # noqa: E402
from .ldm_export import vae_to_ldm  # noqa: E402
from .ldm_text_encoder import CLIP_VOCAB_SIZE, clip_text_config  # noqa: E402
from .sd import load_bundled_tokenizer  # noqa: E402

# The split files' names, as ComfyUI users have them (the transformer's says it is a tiny one).
SPLIT_FILES = {"transformer": "flux1-tiny-dev.safetensors", "clip_l_path": "clip_l.safetensors",
               "t5_path": "t5xxl_tiny.safetensors", "ae_path": "ae.safetensors", "t5_tokenizer_path": "t5_tokenizer"}
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
    """Write the tiny Flux.1-dev model as a diffusers ``FluxPipeline`` folder ``out_dir/diffusers`` and as
    split files in ``out_dir/split`` (:data:`SPLIT_FILES`); returns the folder."""
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
    FlowMatchEulerDiscreteScheduler.from_config(DEV_SCHEDULER).save_pretrained(staging / "scheduler")
    index = {"_class_name": "FluxPipeline", "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "text_encoder_2": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "tokenizer_2": ["transformers", "T5TokenizerFast"], "transformer": ["diffusers", "FluxTransformer2DModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (staging / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    replace_folder(staging, final)
    write_split_files(out_dir / "split", transformer, vae, clip, t5, tokenizer)
    return final


def write_split_files(folder: Path, transformer: FluxTransformer2DModel, vae: AutoencoderKL, clip: CLIPTextModel,
                      t5: T5EncoderModel, tokenizer) -> None:
    """The model as ComfyUI users keep Flux.1: each part in its own layout (see :data:`SPLIT_FILES`)."""
    from safetensors.torch import save_file

    staging = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    clip_state = {"text_model." + k.removeprefix("text_model."): v for k, v in clip.state_dict().items()
                  if not k.endswith("position_ids")}
    # T5's encoder embedding is the shared one; the files store it once.
    t5_state = {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}
    ae_state = {k.removeprefix(VAE_PREFIX): v for k, v in vae_to_ldm(vae.state_dict(), vae.config).items()}
    for name, state in (("transformer", flux_layout.to_original(transformer.state_dict())), ("clip_l_path", clip_state),
                        ("t5_path", t5_state), ("ae_path", ae_state)):
        save_file({k: v.contiguous() for k, v in state.items()}, str(staging / SPLIT_FILES[name]))
    tokenizer.save_pretrained(str(staging / SPLIT_FILES["t5_tokenizer_path"]))
    replace_folder(staging, folder)
