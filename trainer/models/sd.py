"""The Stable Diffusion 1.x/2.x family: load a base model, offline, and what is SD's own.

A base model is either a diffusers folder (``model_index.json`` with ``unet/``,
``vae/``, ``text_encoder/`` ...) or an original single-file checkpoint (``.safetensors``,
see :mod:`trainer.models.ldm_single_file`). Both load into an :class:`SDModel` with the
same models, so the rest of the trainer never cares which one the user had.

SD's own: one CLIP text encoder (kohya prefix ``lora_te``) whose chosen layer (clip skip)
conditions the UNet; UNet LoRA names are the diffusers module paths (``lora_unet_down_blocks_...``),
as sd-scripts writes them for SD 1.x/2.x.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from collections.abc import Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402

from trainer.model_family import SD  # noqa: E402
from trainer.text_encoding import Conditioning  # noqa: E402

from .diffusers_folder import load_component, load_tokenizer, require_components, scheduler_settings  # noqa: E402
from .errors import ModelLoadError  # noqa: E402
from .family import (PREDICTION_TYPES, UNET, DiffusionModel, ImageGeometry, check_prediction_type,  # noqa: E402
                     make_noise_scheduler)
from .ldm_file import read_checkpoint  # noqa: E402
from .ldm_single_file import load_ldm_components  # noqa: E402

TOKENIZER_DIR = Path(__file__).resolve().parent.parent / "resources" / "clip_tokenizer"
TEXT_ENCODER = "text_encoder"


class SDModel(DiffusionModel):
    """A loaded SD 1.x/2.x base model (``variant`` "sd1" or "sd2")."""

    spec = SD

    @property
    def text_encoder(self) -> CLIPTextModel:
        """SD's one text encoder."""
        return self.text_encoders[TEXT_ENCODER]

    @property
    def tokenizer(self) -> CLIPTokenizer:
        """SD's one tokenizer."""
        return self.tokenizers[0]

    def kohya_name(self, component: str, module: str) -> str:
        """``lora_unet_<diffusers path>`` or ``lora_te_text_model_<path>``, with ``_`` for ``.``."""
        if component == UNET:
            return "lora_unet_" + module.replace(".", "_")
        # transformers 5 dropped CLIPTextModel's `text_model.` level; A1111, ComfyUI and
        # diffusers all expect kohya's `lora_te_text_model_encoder_...` names.
        if not module.startswith("text_model."):
            module = "text_model." + module
        return "lora_te_" + module.replace(".", "_")

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: Conditioning,
                geometry: Sequence[ImageGeometry]) -> torch.Tensor:
        """The UNet's prediction; SD has no extra conditioning (``geometry`` is unused)."""
        return self.unet(noisy, timesteps, conditioning.hidden).sample

    def prompt_encoder(self, clip_skip: int, device: torch.device, cache: bool):
        """CLIP hidden states of the ``clip_skip``-th layer from the end."""
        from trainer.text_encoding import ClipPromptEncoder

        return ClipPromptEncoder(self.tokenizer, self.text_encoder, clip_skip, device, cache)

    def sample_inputs(self, prompt: Conditioning, negative: Conditioning, negative_is_empty: bool
                      ) -> dict[str, torch.Tensor]:
        """The prompt's and the negative prompt's hidden states (the pipeline encodes "" for no negative too)."""
        return {"prompt_embeds": prompt.hidden, "negative_prompt_embeds": negative.hidden}

    def build_pipeline(self):
        """A ``StableDiffusionPipeline`` over this model's modules (see :mod:`.pipeline`)."""
        from diffusers import StableDiffusionPipeline

        from .pipeline import sampling_scheduler

        pipe = StableDiffusionPipeline(vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
                                       unet=self.unet, scheduler=sampling_scheduler(self), safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe


def load(path: Path, *, allow_pickle: bool = False, prediction_type: str | None = None,
         dtype: torch.dtype = torch.float32, companions: Mapping[str, str | Path] | None = None) -> SDModel:
    """The family's loader (see :func:`load_sd_model`); ``companions`` is unused: SD comes whole."""
    return load_sd_model(path, allow_pickle=allow_pickle, prediction_type=prediction_type, dtype=dtype)


def load_sd_model(
    path: str | Path,
    *,
    allow_pickle: bool = False,
    prediction_type: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> SDModel:
    """Load an SD 1.x/2.x base model from a diffusers folder or a single-file checkpoint.

    Never touches the network. ``prediction_type`` ("epsilon" or "v_prediction")
    overrides what the model says about itself (a diffusers folder's scheduler config, a
    file's ``modelspec.prediction_type``); without either it is "epsilon", which is wrong
    for SD 2.x 768-v models: their users must pass "v_prediction". Pickle files
    (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) are refused unless ``allow_pickle``.

    Raises :class:`ModelLoadError` (with a hint) for anything the user can fix.
    """
    enable_offline_mode()
    check_prediction_type(prediction_type)
    source = Path(path).expanduser()
    if not source.exists():
        raise ModelLoadError(
            f"Base model not found: {source}",
            "Check the path in `base_model`: it must be a .safetensors file or a diffusers folder.",
        )
    if source.is_dir():
        return _load_diffusers_folder(source, allow_pickle=allow_pickle, prediction_type=prediction_type, dtype=dtype)
    checkpoint = read_checkpoint(source, allow_pickle=allow_pickle, family="sd")
    parts = load_ldm_components(checkpoint, prediction_type=prediction_type, dtype=dtype)
    del checkpoint  # the models hold what they need; free the rest before hashing
    return _assemble(source, parts.unet, parts.vae, parts.text_encoder, load_bundled_tokenizer(parts.family),
                     parts.family, parts.prediction_type, scheduler_config=None)


def load_bundled_tokenizer(variant: str = "sd1") -> CLIPTokenizer:
    """The CLIP tokenizer shipped in ``trainer/resources`` (SD1, SD2 and SDXL share its vocabulary).

    SD2's tokenizer (and SDXL's second) pads with "!" (token 0) because OpenCLIP pads with
    zeros; SD1's pads with the end-of-text token.
    """
    extra = {"pad_token": "!"} if variant == "sd2" else {}
    return CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), local_files_only=True, **extra)


def detect_family_from_config(unet_config: Mapping[str, Any]) -> str:
    """SD2 for 1024-wide cross-attention or linear transformer projections, else SD1."""
    if unet_config.get("cross_attention_dim") == 1024 or unet_config.get("use_linear_projection"):
        return "sd2"
    return "sd1"


def check_text_to_image_unet(source: Path, unet: UNet2DConditionModel) -> None:
    """Refuse inpainting (9 channels), depth (5) and instruct-pix2pix (8) UNets: their extra
    inputs are not what text-to-image LoRA training provides."""
    if unet.config.in_channels != 4:
        raise ModelLoadError(
            f"{source}: the UNet takes {unet.config.in_channels} input channels (an inpainting, depth or "
            "instruct-pix2pix model?); LoRA Studio trains text-to-image models, whose UNet takes 4.",
            "Choose the text-to-image version of the base model.",
        )


def check_tokenizer_fits(source: Path, tokenizer: CLIPTokenizer, text_encoder: torch.nn.Module) -> None:
    """Refuse a tokenizer with more tokens than its text encoder knows."""
    if len(tokenizer) > text_encoder.config.vocab_size:
        raise ModelLoadError(
            f"{source}: the text encoder knows {text_encoder.config.vocab_size} tokens but the "
            f"tokenizer has {len(tokenizer)}; they do not belong together."
        )


# ------------------------------------------------------------------------- internals


def _assemble(
    source: Path,
    unet: UNet2DConditionModel,
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    variant: str,
    prediction_type: str,
    *,
    scheduler_config: Mapping[str, Any] | None,
) -> SDModel:
    check_text_to_image_unet(source, unet)
    check_tokenizer_fits(source, tokenizer, text_encoder)
    v_pred = prediction_type == "v_prediction"
    if variant == "sd2":
        architecture = "stable-diffusion-v2-768-v" if v_pred else "stable-diffusion-v2-512"
    else:
        architecture = "stable-diffusion-v1"
    return SDModel(
        unet=unet,
        vae=vae,
        text_encoders={TEXT_ENCODER: text_encoder},
        tokenizers=[tokenizer],
        noise_scheduler=make_noise_scheduler(prediction_type, scheduler_config),
        variant=variant,
        prediction_type=prediction_type,
        source=source,
        # kohya: "sd" + "_v1"/"_v2" + "_v" for v-parameterization.
        base_model_version=("sd_v2" if variant == "sd2" else "sd_v1") + ("_v" if v_pred else ""),
        modelspec_architecture=f"{architecture}/lora",
    )


def _load_diffusers_folder(
    folder: Path, *, allow_pickle: bool, prediction_type: str | None, dtype: torch.dtype
) -> SDModel:
    from trainer.model_family import ModelKindError, classify_folder

    try:
        detection = classify_folder(folder)
    except ModelKindError as exc:
        raise ModelLoadError(exc.message, exc.hint) from exc
    if detection.family != SD.id:
        raise ModelLoadError(f"{folder} is {detection.what}, not a Stable Diffusion 1.x/2.x model.",
                             "Load it with model_family: auto.")
    require_components(folder, ("unet", "vae", "text_encoder"), "a Stable Diffusion 1.x/2.x model")
    unet = load_component(folder, "unet", UNet2DConditionModel, "UNet", allow_pickle, torch_dtype=dtype)
    vae = load_component(folder, "vae", AutoencoderKL, "VAE", allow_pickle, torch_dtype=dtype)
    text_encoder = load_component(folder, "text_encoder", CLIPTextModel, "text encoder", allow_pickle, dtype=dtype)
    variant = detect_family_from_config(unet.config)
    scheduler_config, prediction_type = scheduler_settings(folder, prediction_type, PREDICTION_TYPES)
    tokenizer = load_tokenizer(folder, "tokenizer", lambda: load_bundled_tokenizer(variant))
    for model in (unet, vae, text_encoder):
        model.eval()
    return _assemble(folder, unet, vae, text_encoder, tokenizer, variant, prediction_type,
                     scheduler_config=scheduler_config)
