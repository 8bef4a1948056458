"""The Stable Diffusion 3/3.5 family: an MMDiT trained by flow matching, conditioned on three text encoders.

SD3's transformer (MMDiT) runs the image's 2x2 latent patches and the text's tokens as two
streams that meet in joint attention; SD3.5 Medium's MMDiT-X blocks add an image-only second
attention. The text is CLIP-L's and CLIP-G's penultimate hidden states side by side (768 +
1280 channels, padded with zeros to T5's 4096), followed along the sequence by T5-XXL's hidden
states (77 + 256 tokens); the global vector is both CLIPs' pooled, projected outputs side by
side (2048), as diffusers' ``StableDiffusion3Pipeline`` encodes prompts. Training is flow
matching (:mod:`.flow_matching`) with the scheduler's fixed shift (3.0), as diffusers' and
sd-scripts' SD3 trainers sample it.

kohya names are those of Stability AI's original layout, which sd-scripts writes and ComfyUI
loads (``lora_unet_joint_blocks_N_x_block_attn_qkv``, ``lora_te1_`` CLIP-L, ``lora_te2_``
CLIP-G): diffusers' split q, k and v are written as one LoRA of the fused ``qkv`` layer
(:mod:`.sd3_layout`). ``train_text_encoder`` trains both CLIPs; T5 stays frozen and cached (as
in sd-scripts, whose T5 training is off by default; diffusers' SD3 loader takes no T5 LoRA).

Base models: a diffusers ``StableDiffusion3Pipeline`` folder, or a single file with the text
encoders bundled or named by options (:mod:`.sd3_files`).
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from collections.abc import Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel  # noqa: E402
from transformers import CLIPTextModelWithProjection, T5EncoderModel  # noqa: E402

from trainer.data import ImageGeometry  # noqa: E402
from trainer.model_family import SD3  # noqa: E402
from trainer.model_keys import sd3_variant  # noqa: E402
from trainer.text_encoding import Conditioning, T5PromptEncoder  # noqa: E402

from .diffusers_folder import load_component, load_tokenizer, read_json, require_components  # noqa: E402
from .errors import ModelLoadError  # noqa: E402
from .flow_matching import TRANSFORMER, FlowMatchingModel, check_flow_prediction  # noqa: E402
from .sd import load_bundled_tokenizer  # noqa: E402
from .sd3_layout import LAYOUT  # noqa: E402
from .split_files import check_t5_tokenizer, load_t5_tokenizer  # noqa: E402

TEXT_ENCODER, TEXT_ENCODER_2, TEXT_ENCODER_3 = "text_encoder", "text_encoder_2", "text_encoder_3"
T5_MAX_TOKENS = 256  # StableDiffusion3Pipeline's max_sequence_length (SD3 was trained with 77)
# SD3's scheduler config (every SD3/3.5 folder's scheduler/scheduler_config.json says shift 3.0).
SD3_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0}
# sd-scripts' names of the variants: its ss_base_model_version (the MMDiT's model_type) and the
# modelspec.architecture it writes ("stable-diffusion-3-" + model_type, library/sai_model_spec.py).
_VERSIONS = {"sd3-medium": "medium", "sd3.5-medium": "5-medium", "sd3.5-large": "5-large"}

# Layers of the joint blocks per `lora_target`: both streams' attention projections (and MMDiT-X's
# second image attention), then the feed-forward layers, then the modulation layers (LoCon-like "all").
_ATTENTION = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
              "attn.add_v_proj", "attn.to_add_out", "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")
_FEED_FORWARD = ("ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2")
_MODULATION = ("norm1.linear", "norm1_context.linear")


class Sd3PromptEncoder(T5PromptEncoder):
    """Both CLIPs' penultimate states side by side, padded to T5's width, then T5's states; both pooled vectors."""

    def __init__(self, tokenizers, encoders: Sequence[torch.nn.Module], device: torch.device, cache: bool,
                 max_tokens: int) -> None:
        super().__init__(tokenizers, device, cache, max_tokens)
        self.clip_l, self.clip_g, self.t5 = encoders

    def encode(self, captions: list[str]) -> Conditioning:
        """[batch, 77 + max_tokens, T5 width] hidden states and [batch, CLIP-L + CLIP-G projection] pooled vectors."""
        hidden, pooled = [], []
        for tokenizer, encoder in zip(self.tokenizers[:2], (self.clip_l, self.clip_g)):
            output = encoder(self.token_ids(captions, tokenizer).to(self.device), output_hidden_states=True)
            hidden.append(output.hidden_states[-2])  # the penultimate layer, not normalised, as the pipeline
            pooled.append(output.text_embeds)
        t5 = self.t5(self.t5_ids(captions)).last_hidden_state
        clip = torch.cat(hidden, dim=-1)
        clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return Conditioning(torch.cat([clip, t5.to(clip.dtype)], dim=-2), torch.cat(pooled, dim=-1))


class Sd3Model(FlowMatchingModel):
    """A loaded SD3/3.5 model (``variant``: "sd3-medium", "sd3.5-medium" or "sd3.5-large")."""

    spec = SD3
    layout = LAYOUT
    kohya_text_prefixes = {TEXT_ENCODER: "lora_te1_", TEXT_ENCODER_2: "lora_te2_"}

    def text_encoder_lrs(self, config: Any) -> dict[str, float]:
        """Both CLIPs when ``train_text_encoder`` (sd-scripts trains them together); T5 stays frozen and cached."""
        if not config.train_text_encoder:
            return {}
        lr = config.text_encoder_lr or config.learning_rate
        return {TEXT_ENCODER: lr, TEXT_ENCODER_2: lr}

    def lora_targets(self, component: str, lora_target: str) -> list[str]:
        """The joint blocks' layers for ``lora_target``; the CLIPs' as for SD."""
        if component != TRANSFORMER:
            return super().lora_targets(component, lora_target)
        suffixes = _ATTENTION + (_FEED_FORWARD if lora_target in ("attention_ff", "all") else ()) \
            + (_MODULATION if lora_target == "all" else ())
        return self.block_layers(suffixes)

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: Conditioning,
                geometry: Sequence[ImageGeometry]) -> torch.Tensor:
        """The transformer's velocity (it patches the latents itself and takes the timestep in 0-1000)."""
        return self.transformer(hidden_states=noisy, timestep=timesteps.to(noisy.dtype),
                                encoder_hidden_states=conditioning.hidden,
                                pooled_projections=conditioning.pooled).sample

    def prompt_encoder(self, clip_skip: int, device: torch.device, cache: bool) -> Sd3PromptEncoder:
        """The three-encoder prompt encoder (SD3 always uses the CLIPs' penultimate layers; ``clip_skip`` is unused)."""
        encoders = [self.text_encoders[name] for name in (TEXT_ENCODER, TEXT_ENCODER_2, TEXT_ENCODER_3)]
        return Sd3PromptEncoder(self.tokenizers, encoders, device, cache,
                                min(T5_MAX_TOKENS, self.tokenizers[2].model_max_length))

    def sample_inputs(self, prompt: Conditioning, negative: Conditioning, negative_is_empty: bool
                      ) -> dict[str, torch.Tensor]:
        """Both prompts' states and pooled vectors (the SD3 pipeline encodes "" for no negative too)."""
        return {"prompt_embeds": prompt.hidden, "pooled_prompt_embeds": prompt.pooled,
                "negative_prompt_embeds": negative.hidden, "negative_pooled_prompt_embeds": negative.pooled}

    def build_pipeline(self):
        """A ``StableDiffusion3Pipeline`` over this model's modules."""
        from diffusers import StableDiffusion3Pipeline

        pipe = StableDiffusion3Pipeline(
            transformer=self.transformer, scheduler=FlowMatchEulerDiscreteScheduler.from_config(self.noise_scheduler.config),
            vae=self.vae, text_encoder=self.text_encoders[TEXT_ENCODER], tokenizer=self.tokenizers[0],
            text_encoder_2=self.text_encoders[TEXT_ENCODER_2], tokenizer_2=self.tokenizers[1],
            text_encoder_3=self.text_encoders[TEXT_ENCODER_3], tokenizer_3=self.tokenizers[2])
        pipe.set_progress_bar_config(disable=True)
        return pipe


def load(path: Path, *, allow_pickle: bool = False, prediction_type: str | None = None,
         dtype: torch.dtype = torch.float32, companions: Mapping[str, str | Path] | None = None) -> Sd3Model:
    """Load SD3/3.5, offline: a diffusers folder, or a single file with its text encoders bundled or named by
    ``companions`` (:data:`trainer.model_family.SD3_FILE_OPTIONS`; the T5 tokenizer always). ``prediction_type``
    must be left to the model (flow matching)."""
    check_flow_prediction(prediction_type, "SD3")
    source = Path(path).expanduser()
    if source.is_file():
        from .sd3_files import load_sd3_file

        parts = load_sd3_file(source, companions or {}, dtype)
        return assemble(source, parts.transformer, parts.vae, [parts.clip_l, parts.clip_g, parts.t5],
                        [load_bundled_tokenizer("sd1"), load_bundled_tokenizer("sd2"), parts.t5_tokenizer],
                        FlowMatchEulerDiscreteScheduler.from_config(SD3_SCHEDULER))
    return _load_folder(source, allow_pickle, dtype)


def _load_folder(folder: Path, allow_pickle: bool, dtype: torch.dtype) -> Sd3Model:
    require_components(folder, ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3",
                                "tokenizer_3"), "SD3's transformer, VAE, three text encoders and T5 tokenizer")
    transformer = load_component(folder, "transformer", SD3Transformer2DModel, "transformer", allow_pickle,
                                 torch_dtype=dtype)
    vae = load_component(folder, "vae", AutoencoderKL, "VAE", allow_pickle, torch_dtype=dtype)
    encoders = [load_component(folder, name, cls, what, allow_pickle, dtype=dtype) for name, cls, what in (
        (TEXT_ENCODER, CLIPTextModelWithProjection, "CLIP-L text encoder"),
        (TEXT_ENCODER_2, CLIPTextModelWithProjection, "CLIP-G text encoder"),
        (TEXT_ENCODER_3, T5EncoderModel, "T5 text encoder"))]
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(read_json(scheduler_file) if scheduler_file.is_file()
                                                            else SD3_SCHEDULER)
    tokenizers = [load_tokenizer(folder, "tokenizer", lambda: load_bundled_tokenizer("sd1")),
                  load_tokenizer(folder, "tokenizer_2", lambda: load_bundled_tokenizer("sd2")),
                  load_t5_tokenizer(folder, "tokenizer_3", where=str(folder))]
    return assemble(folder, transformer, vae, encoders, tokenizers, scheduler)


def _check_widths(source: Path, transformer: SD3Transformer2DModel, encoders: Sequence[torch.nn.Module]) -> None:
    """Refuse text encoders whose widths do not fit the transformer (another model's, or a file given twice)."""
    clip_l, clip_g, t5 = (encoder.config for encoder in encoders)
    config = transformer.config
    fits = (t5.d_model == config.joint_attention_dim and clip_l.hidden_size + clip_g.hidden_size <= t5.d_model
            and clip_l.projection_dim + clip_g.projection_dim == config.pooled_projection_dim)
    if not fits:
        raise ModelLoadError(f"{source}: the text encoders do not fit the transformer: CLIP-L {clip_l.hidden_size} "
                             f"+ CLIP-G {clip_g.hidden_size} wide (pooled {clip_l.projection_dim} + "
                             f"{clip_g.projection_dim}), T5 {t5.d_model}; the transformer takes text "
                             f"{config.joint_attention_dim} wide and a pooled vector of {config.pooled_projection_dim}",
                             "give the text encoders of this SD3 model (clip_l_path, clip_g_path, t5_path)")


def assemble(source: Path, transformer: SD3Transformer2DModel, vae: AutoencoderKL, encoders: Sequence[torch.nn.Module],
             tokenizers: Sequence[Any], scheduler: FlowMatchEulerDiscreteScheduler) -> Sd3Model:
    """The :class:`Sd3Model` of loaded parts (CLIP-L, CLIP-G, T5 and their tokenizers in that order)."""
    for model in (transformer, vae, *encoders):
        model.eval()
    check_t5_tokenizer(source, encoders[2], tokenizers[2])
    _check_widths(source, transformer, encoders)
    variant = sd3_variant(bool(transformer.config.qk_norm), bool(transformer.config.dual_attention_layers))
    return Sd3Model(unet=transformer, vae=vae, text_encoders=dict(zip((TEXT_ENCODER, TEXT_ENCODER_2, TEXT_ENCODER_3),
                                                                      encoders)),
                    tokenizers=tokenizers, noise_scheduler=scheduler, variant=variant, prediction_type="flow",
                    source=source, base_model_version=_VERSIONS[variant],
                    modelspec_architecture=f"stable-diffusion-3-{_VERSIONS[variant]}/lora")
