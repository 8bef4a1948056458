"""The Flux.1 family: a transformer trained by flow matching, conditioned on T5 and CLIP.

Flux.1 (dev and schnell) denoises 16-channel latents packed into 2x2 patches, each with a
position id; T5's hidden states are its per-token text (up to 512 tokens) and CLIP-L's
pooled output its global text vector; dev is guidance-distilled and takes the guidance as an
input. Training is flow matching (:mod:`.flow_matching`), the noise levels shifted towards more
noise for larger images, as Flux.1-dev was trained (``mu`` grows with the number of image tokens).

kohya names are those of Black Forest Labs' original layout, which sd-scripts writes and
ComfyUI loads: ``lora_unet_double_blocks_N_img_attn_qkv``, ``..._single_blocks_N_linear1``.
Where that layout fuses layers that diffusers splits (q, k and v; and in single blocks also
the MLP's input), the LoRAs of the parts become one LoRA of the fused layer: their down
weights stacked, their up weights block-diagonal, alpha scaled with the rank, so the fused
layer changes exactly as the parts did (sd-scripts' and diffusers' converters read it back).

Base models: a diffusers ``FluxPipeline`` folder, or the split files ComfyUI users keep
(:mod:`.flux_files`).
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from collections.abc import Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel  # noqa: E402
from transformers import CLIPTextModel, T5EncoderModel  # noqa: E402

from trainer.data import ImageGeometry  # noqa: E402
from trainer.model_family import FLUX  # noqa: E402
from trainer.text_encoding import Conditioning, T5PromptEncoder  # noqa: E402

from .diffusers_folder import load_component, load_tokenizer, read_json, require_components  # noqa: E402
from .flow_matching import TRANSFORMER, FlowMatchingModel, check_flow_prediction  # noqa: E402
from .flux_layout import BLOCK_KINDS, LAYOUT  # noqa: E402
from .sd import load_bundled_tokenizer  # noqa: E402
from .split_files import check_t5_tokenizer, load_t5_tokenizer  # noqa: E402

TEXT_ENCODER, TEXT_ENCODER_2 = "text_encoder", "text_encoder_2"
T5_MAX_TOKENS = 512  # Flux.1-dev's context (schnell was trained with 256)

# Layers of the transformer's blocks per `lora_target`: attention projections (both streams),
# then the feed-forward layers, then the modulation layers (LoCon-like "all").
_ATTENTION = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
              "attn.add_v_proj", "attn.to_add_out")
_FEED_FORWARD = ("ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "proj_out")
_MODULATION = ("norm1.linear", "norm1_context.linear", "norm.linear")
SINGLE_BLOCKS = "single_blocks"  # the lora_target of every layer of the single-stream blocks only


class FluxPromptEncoder(T5PromptEncoder):
    """T5's hidden states (the per-token text) and CLIP-L's pooled output (the global text vector)."""

    def __init__(self, tokenizers, clip: CLIPTextModel, t5: T5EncoderModel, device: torch.device, cache: bool,
                 max_tokens: int) -> None:
        super().__init__(tokenizers, device, cache, max_tokens)
        self.clip, self.t5 = clip, t5

    def encode(self, captions: list[str]) -> Conditioning:
        """[batch, max_tokens, T5 width] hidden states and [batch, CLIP width] pooled vectors."""
        clip_ids = self.token_ids(captions, self.tokenizers[0]).to(self.device)
        pooled = self.clip(clip_ids).pooler_output
        return Conditioning(self.t5(self.t5_ids(captions)).last_hidden_state, pooled)


class FluxModel(FlowMatchingModel):
    """A loaded Flux.1 model (``variant`` "flux-dev" when it takes guidance, else "flux-schnell")."""

    spec = FLUX
    layout = LAYOUT
    kohya_text_prefixes = {TEXT_ENCODER: "lora_te1_"}

    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        self.guidance_scale = 1.0

    def configure(self, config: Any) -> None:
        """The training guidance (dev) and how noise levels are sampled."""
        super().configure(config)
        self.guidance_scale = config.guidance_scale

    def text_encoder_lrs(self, config: Any) -> dict[str, float]:
        """CLIP-L when ``train_text_encoder``; T5 stays frozen (and cached), as in sd-scripts and ai-toolkit."""
        if not config.train_text_encoder:
            return {}
        return {TEXT_ENCODER: config.text_encoder_lr or config.learning_rate}

    def lora_targets(self, component: str, lora_target: str) -> list[str]:
        """The transformer blocks' layers for ``lora_target`` (``single_blocks``: every layer of the
        single-stream blocks, none of the double-stream ones); CLIP's as for SD."""
        if component != TRANSFORMER:
            # single_blocks is about the transformer; a trained CLIP gets kohya's usual layers.
            return super().lora_targets(component, "attention_ff" if lora_target == SINGLE_BLOCKS else lora_target)
        suffixes = _ATTENTION + (_FEED_FORWARD if lora_target in ("attention_ff", "all", SINGLE_BLOCKS) else ()) \
            + (_MODULATION if lora_target in ("all", SINGLE_BLOCKS) else ())
        kinds = ("single_transformer_blocks",) if lora_target == SINGLE_BLOCKS else tuple(BLOCK_KINDS)
        return self.block_layers(suffixes, kinds)

    # --- the objective ------------------------------------------------------------------

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: Conditioning,
                geometry: Sequence[ImageGeometry]) -> torch.Tensor:
        """The transformer's velocity for a batch: latents packed into 2x2 patches with their positions."""
        from diffusers import FluxPipeline

        batch, channels, height, width = noisy.shape
        packed = FluxPipeline._pack_latents(noisy, batch, channels, height, width)
        image_ids = FluxPipeline._prepare_latent_image_ids(batch, height // 2, width // 2, noisy.device, noisy.dtype)
        text_ids = torch.zeros(conditioning.hidden.shape[1], 3, device=noisy.device, dtype=noisy.dtype)
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full((batch,), self.guidance_scale, device=noisy.device, dtype=noisy.dtype)
        output = self.transformer(hidden_states=packed, timestep=timesteps.to(noisy.dtype) / 1000.0, guidance=guidance,
                                  pooled_projections=conditioning.pooled, encoder_hidden_states=conditioning.hidden,
                                  txt_ids=text_ids, img_ids=image_ids).sample
        scale = self.vae_scale_factor
        return FluxPipeline._unpack_latents(output, height * scale, width * scale, scale)

    # --- prompts and samples ------------------------------------------------------------

    def prompt_encoder(self, clip_skip: int, device: torch.device, cache: bool) -> FluxPromptEncoder:
        """T5 + CLIP conditioning (``clip_skip`` is not a Flux option)."""
        return FluxPromptEncoder(self.tokenizers, self.text_encoders[TEXT_ENCODER], self.text_encoders[TEXT_ENCODER_2],
                                 device, cache, min(T5_MAX_TOKENS, self.tokenizers[1].model_max_length))

    def sample_inputs(self, prompt: Conditioning, negative: Conditioning, negative_is_empty: bool
                      ) -> dict[str, torch.Tensor]:
        """T5's states and CLIP's pooled vector; Flux.1 is guidance-distilled, so no negative prompt."""
        return {"prompt_embeds": prompt.hidden, "pooled_prompt_embeds": prompt.pooled}

    def build_pipeline(self):
        """A ``FluxPipeline`` over this model's modules."""
        from diffusers import FluxPipeline

        pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_config(self.noise_scheduler.config),
                            vae=self.vae, text_encoder=self.text_encoders[TEXT_ENCODER], tokenizer=self.tokenizers[0],
                            text_encoder_2=self.text_encoders[TEXT_ENCODER_2], tokenizer_2=self.tokenizers[1],
                            transformer=self.transformer)
        pipe.set_progress_bar_config(disable=True)
        return pipe


# Flux.1-dev's scheduler: the shift grows with the image's size (schnell's folder says shift 1, no growth).
DEV_SCHEDULER = {"shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15,
                 "base_image_seq_len": 256, "max_image_seq_len": 4096}


def load(path: Path, *, allow_pickle: bool = False, prediction_type: str | None = None,
         dtype: torch.dtype = torch.float32, companions: Mapping[str, str | Path] | None = None) -> FluxModel:
    """Load Flux.1, offline: a diffusers folder, or a transformer file with the files ``companions`` name
    (the options of :data:`trainer.model_family.FLUX_FILE_OPTIONS`). ``prediction_type`` must be
    left to the model (flow matching)."""
    check_flow_prediction(prediction_type, "Flux.1")
    source = Path(path).expanduser()
    if source.is_file():
        from .flux_files import load_flux_files

        parts = load_flux_files(source, companions or {}, dtype)
        # The variant decides the scheduler: schnell was distilled without the resolution-dependent shift.
        schedule = DEV_SCHEDULER if parts.transformer.config.guidance_embeds else {"shift": 1.0,
                                                                                   "use_dynamic_shifting": False}
        return _assemble(source, parts.transformer, parts.vae, parts.clip, parts.t5, parts.t5_tokenizer,
                         load_bundled_tokenizer("sd1"), FlowMatchEulerDiscreteScheduler.from_config(schedule))
    return _load_folder(source, allow_pickle, dtype)


def _load_folder(folder: Path, allow_pickle: bool, dtype: torch.dtype) -> FluxModel:
    require_components(folder, ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer_2"), "Flux.1")
    transformer = load_component(folder, "transformer", FluxTransformer2DModel, "transformer", allow_pickle,
                                 torch_dtype=dtype)
    vae = load_component(folder, "vae", AutoencoderKL, "VAE", allow_pickle, torch_dtype=dtype)
    clip = load_component(folder, "text_encoder", CLIPTextModel, "CLIP-L text encoder", allow_pickle, dtype=dtype)
    t5 = load_component(folder, "text_encoder_2", T5EncoderModel, "T5 text encoder", allow_pickle, dtype=dtype)
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(read_json(scheduler_file) if scheduler_file.is_file()
                                                            else DEV_SCHEDULER)
    t5_tokenizer = load_t5_tokenizer(folder, "tokenizer_2", where=str(folder))
    clip_tokenizer = load_tokenizer(folder, "tokenizer", lambda: load_bundled_tokenizer("sd1"))
    return _assemble(folder, transformer, vae, clip, t5, t5_tokenizer, clip_tokenizer, scheduler)


def _assemble(source: Path, transformer: FluxTransformer2DModel, vae: AutoencoderKL, clip: CLIPTextModel,
              t5: T5EncoderModel, t5_tokenizer, clip_tokenizer, scheduler) -> FluxModel:
    for model in (transformer, vae, clip, t5):
        model.eval()
    check_t5_tokenizer(source, t5, t5_tokenizer)
    variant = "flux-dev" if transformer.config.guidance_embeds else "flux-schnell"
    return FluxModel(unet=transformer, vae=vae, text_encoders={TEXT_ENCODER: clip, TEXT_ENCODER_2: t5},
                     tokenizers=[clip_tokenizer, t5_tokenizer], noise_scheduler=scheduler, variant=variant,
                     prediction_type="flow", source=source, base_model_version="flux1",
                     modelspec_architecture=f"{variant.replace('flux-', 'flux-1-')}/lora")
