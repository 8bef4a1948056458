"""The Flux.1 family: a transformer trained by flow matching, conditioned on T5 and CLIP.

Flux.1 (dev and schnell) denoises 16-channel latents packed into 2x2 patches, each with a
position id; T5's hidden states are its per-token text (up to 512 tokens) and CLIP-L's
pooled output its global text vector; dev is guidance-distilled and takes the guidance as an
input. Training is flow matching: the input is the straight mix ``(1 - s) x + s n`` of latents
and noise at a noise level ``s``, and the target the velocity ``n - x``. ``s`` is sampled
(uniform, logit-normal or mode) and then shifted towards more noise for larger images, as
Flux.1 was trained (``mu`` grows with the number of image tokens).

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

import math  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel  # noqa: E402
from transformers import CLIPTextModel, T5EncoderModel  # noqa: E402

from trainer.data import ImageGeometry  # noqa: E402
from trainer.model_family import FLUX  # noqa: E402
from trainer.text_encoding import Conditioning, PromptEncoder  # noqa: E402

from .diffusers_folder import load_component, load_tokenizer, read_json, require_components  # noqa: E402
from .errors import ModelLoadError  # noqa: E402
from .family import DiffusionModel, check_prediction_type  # noqa: E402
from .flux_layout import BLOCK_KINDS, block_of  # noqa: E402
from .sd import load_bundled_tokenizer  # noqa: E402

TRANSFORMER, TEXT_ENCODER, TEXT_ENCODER_2 = "transformer", "text_encoder", "text_encoder_2"
T5_MAX_TOKENS = 512  # Flux.1-dev's context (schnell was trained with 256)

# Layers of the transformer's blocks per `lora_target`: attention projections (both streams),
# then the feed-forward layers, then the modulation layers (LoCon-like "all").
_ATTENTION = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
              "attn.add_v_proj", "attn.to_add_out")
_FEED_FORWARD = ("ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "proj_out")
_MODULATION = ("norm1.linear", "norm1_context.linear", "norm.linear")
SINGLE_BLOCKS = "single_blocks"  # the lora_target of every layer of the single-stream blocks only


class FluxPromptEncoder(PromptEncoder):
    """T5's hidden states (the per-token text) and CLIP-L's pooled output (the global text vector)."""

    def __init__(self, tokenizers, clip: CLIPTextModel, t5: T5EncoderModel, device: torch.device, cache: bool,
                 max_tokens: int) -> None:
        super().__init__(tokenizers, device, cache, token_limit=max_tokens - 1)  # T5 ends with one </s>
        self.clip, self.t5, self.max_tokens = clip, t5, max_tokens

    @property
    def tokenizer(self):
        """T5's tokenizer: the one whose limit cuts captions off (CLIP only gives the pooled vector)."""
        return self.tokenizers[1]

    def count_tokens(self, caption: str) -> int:
        """T5 tokens of a caption without the end token."""
        return len(self.tokenizer(caption, truncation=False).input_ids) - 1

    def encode(self, captions: list[str]) -> Conditioning:
        """[batch, max_tokens, T5 width] hidden states and [batch, CLIP width] pooled vectors."""
        clip_ids = self.token_ids(captions, self.tokenizers[0]).to(self.device)
        pooled = self.clip(clip_ids).pooler_output
        t5_ids = self.tokenizer(captions, padding="max_length", max_length=self.max_tokens, truncation=True,
                                return_tensors="pt").input_ids.to(self.device)
        return Conditioning(self.t5(t5_ids).last_hidden_state, pooled)


class FluxModel(DiffusionModel):
    """A loaded Flux.1 model (``variant`` "flux-dev" when it takes guidance, else "flux-schnell")."""

    spec = FLUX
    denoiser_name = TRANSFORMER

    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        self.guidance_scale = 1.0
        self.sampling = ("logit_normal", 0.0, 1.0, 1.29)  # scheme, logit mean, logit std, mode scale

    @property
    def transformer(self) -> FluxTransformer2DModel:
        """The denoiser."""
        return self.unet

    def configure(self, config: Any) -> None:
        """The training guidance (dev) and how noise levels are sampled."""
        self.guidance_scale = config.guidance_scale
        self.sampling = (config.timestep_sampling, config.logit_mean, config.logit_std, config.mode_scale)

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
        return [name for name, module in self.transformer.named_modules()
                if isinstance(module, torch.nn.Linear) and (block := block_of(name)) and block[0] in kinds
                and block[2] in suffixes]

    def quantizable_layers(self) -> list[str]:
        """Every linear layer of the double- and single-stream blocks: 99.4 % of the transformer's weights.
        The embedders and the output projection stay in bf16: they save little, and every token's
        input and output passes through them."""
        return [name for name, module in self.transformer.named_modules()
                if isinstance(module, torch.nn.Linear) and block_of(name)]

    # --- the objective ------------------------------------------------------------------

    def sample_timesteps(self, latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noise levels (x 1000) drawn by the sampling scheme, shifted for the image's token count."""
        scheme, mean, std, mode_scale = self.sampling
        batch = latents.shape[0]
        if scheme == "logit_normal":
            u = torch.sigmoid(mean + std * torch.randn((batch,), generator=generator))
        elif scheme == "mode":
            u = torch.rand((batch,), generator=generator)
            u = 1 - u - mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
        else:
            u = torch.rand((batch,), generator=generator)
        return self._shift(u, (latents.shape[2] // 2) * (latents.shape[3] // 2)) * 1000.0

    def _shift(self, sigmas: torch.Tensor, image_tokens: int) -> torch.Tensor:
        config = self.noise_scheduler.config
        if config.get("use_dynamic_shifting"):
            # mu grows linearly with the image's tokens, from base_shift (256 tokens) to max_shift (4096).
            low, high = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
            slope = (config.get("max_shift", 1.15) - config.get("base_shift", 0.5)) / (high - low)
            shift = math.exp(config.get("base_shift", 0.5) + slope * (image_tokens - low))
        else:
            shift = config.get("shift", 1.0)
        return shift * sigmas / (1 + (shift - 1) * sigmas)

    def noisy_and_target(self, latents: torch.Tensor, noise: torch.Tensor,
                         timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The straight mix of latents and noise at each noise level, and the velocity from one to the other."""
        sigmas = (timesteps / 1000.0).view(-1, 1, 1, 1).to(latents.dtype)
        return (1 - sigmas) * latents + sigmas * noise, noise - latents

    def loss_weights(self, timesteps: torch.Tensor, min_snr_gamma: float) -> torch.Tensor:
        """Flow matching has no SNR weighting (min_snr_gamma is not a Flux option): equal weights."""
        return torch.ones_like(timesteps)

    def debiased_weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Nor debiased estimation (it is an SNR weighting too): equal weights."""
        return torch.ones_like(timesteps)

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

    # --- names and samples --------------------------------------------------------------

    def kohya_name(self, component: str, module: str) -> str:
        """``lora_te1_text_model_<path>`` for CLIP-L; transformer layers are named in :meth:`kohya_weights`."""
        if not module.startswith("text_model."):
            module = "text_model." + module
        return "lora_te1_" + module.replace(".", "_")

    def kohya_weights(self, states: dict[str, dict[str, torch.Tensor]], alpha: float,
                      dtype: torch.dtype, rank: int | None = None) -> dict[str, torch.Tensor]:
        """BFL-named modules, the split layers' LoRAs fused (see the module docstring); CLIP as kohya names it."""
        from trainer.lora import lora_pairs, to_kohya

        out = to_kohya({k: v for k, v in states.items() if k != TRANSFORMER}, self.kohya_name, alpha, dtype)
        pairs = lora_pairs(states.get(TRANSFORMER, {}))
        blocks = sorted({block_of(module)[:2] for module in pairs})
        for kind, index in blocks:
            original, table = BLOCK_KINDS[kind]
            for target, parts in table.items():
                members = [f"{kind}.{index}.{part}" for part in parts]
                if not any(m in pairs for m in members):
                    continue
                down, up = self._fuse(members, pairs)
                name = f"lora_unet_{original}_{index}_{target.replace('.', '_')}"
                out[f"{name}.lora_down.weight"] = down.to(dtype).contiguous()
                out[f"{name}.lora_up.weight"] = up.to(dtype).contiguous()
                # The fused rank is the parts' ranks summed: alpha grows with it, so alpha/rank stays.
                out[f"{name}.alpha"] = torch.tensor(float(alpha) * len(members), dtype=dtype)
        return out

    def _fuse(self, members: list[str], pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """One LoRA for the layers ``members`` side by side: downs stacked, ups block-diagonal (absent parts zero)."""
        rank = next(pairs[m][0].shape[0] for m in members if m in pairs)
        downs, ups = [], []
        for member in members:
            layer = self.transformer.get_submodule(member)
            down, up = pairs.get(member, (torch.zeros(rank, layer.in_features), torch.zeros(layer.out_features, rank)))
            downs.append(down.float())
            ups.append(up.float())
        return torch.cat(downs, dim=0), torch.block_diag(*ups)

    def prompt_encoder(self, clip_skip: int, device: torch.device, cache: bool) -> FluxPromptEncoder:
        """T5 + CLIP conditioning (``clip_skip`` is not a Flux option)."""
        return FluxPromptEncoder(self.tokenizers, self.text_encoders[TEXT_ENCODER], self.text_encoders[TEXT_ENCODER_2],
                                 device, cache, min(T5_MAX_TOKENS, self.tokenizers[1].model_max_length))

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
    check_prediction_type(prediction_type)
    if prediction_type is not None:
        raise ModelLoadError(f"prediction_type {prediction_type} does not apply to Flux.1 (it is trained by flow "
                             "matching)", "set prediction_type to auto")
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
    from transformers import AutoTokenizer

    try:
        t5_tokenizer = AutoTokenizer.from_pretrained(str(folder), subfolder="tokenizer_2", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{folder}: the T5 tokenizer (tokenizer_2/) could not be loaded: {exc}") from exc
    clip_tokenizer = load_tokenizer(folder, "tokenizer", lambda: load_bundled_tokenizer("sd1"))
    return _assemble(folder, transformer, vae, clip, t5, t5_tokenizer, clip_tokenizer, scheduler)


def _assemble(source: Path, transformer: FluxTransformer2DModel, vae: AutoencoderKL, clip: CLIPTextModel,
              t5: T5EncoderModel, t5_tokenizer, clip_tokenizer, scheduler) -> FluxModel:
    for model in (transformer, vae, clip, t5):
        model.eval()
    if len(t5_tokenizer) > t5.config.vocab_size:
        raise ModelLoadError(f"{source}: the T5 encoder knows {t5.config.vocab_size} tokens but its tokenizer has "
                             f"{len(t5_tokenizer)}; they do not belong together.",
                             "give the T5 tokenizer that came with this T5 encoder")
    variant = "flux-dev" if transformer.config.guidance_embeds else "flux-schnell"
    return FluxModel(unet=transformer, vae=vae, text_encoders={TEXT_ENCODER: clip, TEXT_ENCODER_2: t5},
                     tokenizers=[clip_tokenizer, t5_tokenizer], noise_scheduler=scheduler, variant=variant,
                     prediction_type="flow", source=source, base_model_version="flux1",
                     modelspec_architecture=f"{variant.replace('flux-', 'flux-1-')}/lora")
