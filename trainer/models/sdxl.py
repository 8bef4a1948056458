"""The SDXL family: two text encoders, pooled text and size conditioning, offline loading.

SDXL conditions its UNet on the penultimate layers of CLIP ViT-L and OpenCLIP ViT-bigG,
concatenated (768 + 1280 = 2048 channels), plus an added embedding of the second encoder's
pooled, projected output and six numbers per image (``time_ids``: original height and
width, crop top and left, target height and width), so that it learns what a crop or an
upscaled small image looks like and can be told not to draw one.

kohya names: the UNet's LoRA layers take their LDM module paths (``lora_unet_input_blocks_4_1_...``),
as sd-scripts' SDXL UNet is written with those names; the encoders are ``lora_te1_`` (CLIP-L)
and ``lora_te2_`` (OpenCLIP), both with the ``text_model_`` level.

Base models: a diffusers ``StableDiffusionXLPipeline`` folder or an SGM single file
(:mod:`.sdxl_single_file`). Both tokenizers are the bundled CLIP tokenizer (the two share
the vocabulary; the second pads with "!").
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from collections.abc import Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

from trainer.model_family import SDXL  # noqa: E402
from trainer.text_encoding import Conditioning, PromptEncoder  # noqa: E402

from .diffusers_folder import load_component, load_tokenizer, require_components, scheduler_settings  # noqa: E402
from .errors import ModelLoadError  # noqa: E402
from .family import (PREDICTION_TYPES, UNET, DiffusionModel, ImageGeometry, check_prediction_type,  # noqa: E402
                     make_noise_scheduler)
from .ldm_export import unet_module_names_to_ldm  # noqa: E402
from .ldm_file import read_checkpoint  # noqa: E402
from .sd import check_text_to_image_unet, check_tokenizer_fits, load_bundled_tokenizer  # noqa: E402
from .sdxl_single_file import load_sdxl_components  # noqa: E402

TEXT_ENCODER, TEXT_ENCODER_2 = "text_encoder", "text_encoder_2"
_KOHYA_TEXT_PREFIXES = {TEXT_ENCODER: "lora_te1_", TEXT_ENCODER_2: "lora_te2_"}


class SdxlPromptEncoder(PromptEncoder):
    """Both encoders' penultimate hidden states side by side, and the second one's pooled output."""

    def __init__(self, tokenizers, text_encoders: Sequence[torch.nn.Module], device: torch.device, cache: bool) -> None:
        super().__init__(tokenizers, device, cache)
        self.text_encoders = list(text_encoders)

    def encode(self, captions: list[str]) -> Conditioning:
        """[batch, 77, width1 + width2] hidden states and [batch, projection] pooled embeddings."""
        hidden, pooled = [], None
        for tokenizer, encoder in zip(self.tokenizers, self.text_encoders):
            ids = self.token_ids(captions, tokenizer).to(self.device)
            output = encoder(ids, output_hidden_states=True)
            hidden.append(output.hidden_states[-2])  # SDXL: the penultimate layer, not normalised
            pooled = getattr(output, "text_embeds", None)
        return Conditioning(torch.cat(hidden, dim=-1), pooled)


class SdxlModel(DiffusionModel):
    """A loaded SDXL base model."""

    spec = SDXL

    def __init__(self, **parts) -> None:
        super().__init__(**parts)
        self._ldm_names: dict[str, str] = {}

    def text_encoder_lrs(self, config) -> dict[str, float]:
        """CLIP-L when ``train_text_encoder``; OpenCLIP as ``train_text_encoder_2`` says (``same``: likewise)."""
        first_lr = config.text_encoder_lr or config.learning_rate
        lrs = {TEXT_ENCODER: first_lr} if config.train_text_encoder else {}
        second = config.train_text_encoder_2
        if second == "true" or (second == "same" and config.train_text_encoder):
            lrs[TEXT_ENCODER_2] = config.text_encoder_2_lr or first_lr
        return lrs

    def kohya_name(self, component: str, module: str) -> str:
        """``lora_unet_<LDM path>``, ``lora_te1_text_model_<path>`` or ``lora_te2_text_model_<path>``."""
        if component == UNET:
            if module not in self._ldm_names:
                self._ldm_names.update(unet_module_names_to_ldm([module], self.unet.config))
            return "lora_unet_" + self._ldm_names[module].replace(".", "_")
        if not module.startswith("text_model."):  # CLIPTextModel has no such level in transformers 5
            module = "text_model." + module
        return _KOHYA_TEXT_PREFIXES[component] + module.replace(".", "_")

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: Conditioning,
                geometry: Sequence[ImageGeometry]) -> torch.Tensor:
        """The UNet's prediction with the pooled text and each image's size and crop as added conditioning."""
        time_ids = torch.tensor([[*g.original, *g.crop_top_left, *g.target] for g in geometry],
                                dtype=noisy.dtype, device=noisy.device)
        added = {"text_embeds": conditioning.pooled.to(noisy.dtype), "time_ids": time_ids}
        return self.unet(noisy, timesteps, conditioning.hidden, added_cond_kwargs=added).sample

    def prompt_encoder(self, clip_skip: int, device: torch.device, cache: bool) -> SdxlPromptEncoder:
        """The two-encoder prompt encoder (SDXL always uses the penultimate layers; ``clip_skip`` is unused)."""
        return SdxlPromptEncoder(self.tokenizers, [self.text_encoders[TEXT_ENCODER], self.text_encoders[TEXT_ENCODER_2]],
                                 device, cache)

    def sample_inputs(self, prompt: Conditioning, negative: Conditioning, negative_is_empty: bool
                      ) -> dict[str, torch.Tensor]:
        """Both prompts' hidden states and pooled vectors; no negative prompt is zeros, as the SDXL pipeline
        makes it (``force_zeros_for_empty_prompt``)."""
        if negative_is_empty:
            negative = Conditioning(torch.zeros_like(prompt.hidden), torch.zeros_like(prompt.pooled))
        return {"prompt_embeds": prompt.hidden, "pooled_prompt_embeds": prompt.pooled,
                "negative_prompt_embeds": negative.hidden, "negative_pooled_prompt_embeds": negative.pooled}

    def build_pipeline(self):
        """A ``StableDiffusionXLPipeline`` over this model's modules (no watermark: it needs a download)."""
        from diffusers import StableDiffusionXLPipeline

        from .pipeline import sampling_scheduler

        pipe = StableDiffusionXLPipeline(vae=self.vae, text_encoder=self.text_encoders[TEXT_ENCODER],
                                         text_encoder_2=self.text_encoders[TEXT_ENCODER_2],
                                         tokenizer=self.tokenizers[0], tokenizer_2=self.tokenizers[1], unet=self.unet,
                                         scheduler=sampling_scheduler(self), add_watermarker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe


def load(path: Path, *, allow_pickle: bool = False, prediction_type: str | None = None,
         dtype: torch.dtype = torch.float32, companions: Mapping[str, str | Path] | None = None) -> SdxlModel:
    """Load an SDXL base model from a diffusers folder or an SGM single file, offline.

    ``prediction_type`` as for SD (:func:`trainer.models.sd.load_sd_model`): v-prediction
    SDXL models (NoobAI-XL v-pred and the like) say so in ``modelspec.prediction_type`` or
    their scheduler config, or the user sets it. ``companions`` is unused: SDXL comes whole.
    """
    check_prediction_type(prediction_type)
    source = Path(path).expanduser()
    if source.is_dir():
        return _load_folder(source, allow_pickle=allow_pickle, prediction_type=prediction_type, dtype=dtype)
    checkpoint = read_checkpoint(source, allow_pickle=allow_pickle, family=SDXL.id)
    parts = load_sdxl_components(checkpoint, prediction_type=prediction_type, dtype=dtype)
    del checkpoint
    tokenizers = [load_bundled_tokenizer("sd1"), load_bundled_tokenizer("sd2")]
    return _assemble(source, parts.unet, parts.vae, parts.text_encoder, parts.text_encoder_2, tokenizers,
                     parts.prediction_type, None)


def _assemble(source: Path, unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: CLIPTextModel,
              text_encoder_2: CLIPTextModelWithProjection, tokenizers: list, prediction_type: str,
              scheduler_config: dict | None) -> SdxlModel:
    check_text_to_image_unet(source, unet)
    for tokenizer, encoder in zip(tokenizers, (text_encoder, text_encoder_2)):
        check_tokenizer_fits(source, tokenizer, encoder)
    if unet.config.get("addition_embed_type") != "text_time":
        raise ModelLoadError(f"{source}: the UNet has no SDXL added conditioning (addition_embed_type text_time).",
                             "The folder's unet/ is not an SDXL UNet.")
    return SdxlModel(
        unet=unet, vae=vae, text_encoders={TEXT_ENCODER: text_encoder, TEXT_ENCODER_2: text_encoder_2},
        tokenizers=tokenizers, noise_scheduler=make_noise_scheduler(prediction_type, scheduler_config),
        variant="sdxl", prediction_type=prediction_type, source=source,
        # sd-scripts writes these for every SDXL base, v-prediction ones included: the metadata's
        # prediction type (modelspec.prediction_type, ss_v_parameterization) tells those apart.
        base_model_version="sdxl_base_v1-0",
        modelspec_architecture="stable-diffusion-xl-v1-base/lora",
    )


def _load_folder(folder: Path, *, allow_pickle: bool, prediction_type: str | None, dtype: torch.dtype) -> SdxlModel:
    require_components(folder, ("unet", "vae", "text_encoder", "text_encoder_2"), "an SDXL base model")
    unet = load_component(folder, "unet", UNet2DConditionModel, "UNet", allow_pickle, torch_dtype=dtype)
    vae = load_component(folder, "vae", AutoencoderKL, "VAE", allow_pickle, torch_dtype=dtype)
    text_encoder = load_component(folder, "text_encoder", CLIPTextModel, "CLIP-L text encoder", allow_pickle,
                                  dtype=dtype)
    text_encoder_2 = load_component(folder, "text_encoder_2", CLIPTextModelWithProjection,
                                    "OpenCLIP text encoder", allow_pickle, dtype=dtype)
    scheduler_config, prediction_type = scheduler_settings(folder, prediction_type, PREDICTION_TYPES)
    tokenizers = [load_tokenizer(folder, "tokenizer", lambda: load_bundled_tokenizer("sd1")),
                  load_tokenizer(folder, "tokenizer_2", lambda: load_bundled_tokenizer("sd2"))]
    for model in (unet, vae, text_encoder, text_encoder_2):
        model.eval()
    return _assemble(folder, unet, vae, text_encoder, text_encoder_2, tokenizers, prediction_type, scheduler_config)
