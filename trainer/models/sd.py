"""The Stable Diffusion 1.x/2.x model family: load a base model, offline, into one object.

A base model is either a diffusers folder (``model_index.json`` with ``unet/``,
``vae/``, ``text_encoder/`` ...) or an original single-file checkpoint (``.safetensors``,
see :mod:`trainer.models.ldm_single_file`). Both load into an :class:`SDModel` with the
same models, so the rest of the trainer never cares which one the user had.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

import hashlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402

from .errors import ModelLoadError  # noqa: E402
from .ldm_file import PICKLE_HINT, PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, read_checkpoint  # noqa: E402
from .ldm_single_file import load_ldm_components  # noqa: E402

TOKENIZER_DIR = Path(__file__).resolve().parent.parent / "resources" / "clip_tokenizer"
PREDICTION_TYPES = ("epsilon", "v_prediction")

# SD 1.x/2.x were trained with these betas; diffusers' SD scheduler configs say the same.
SD_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    # Explicit, not a class default: from_config() lets a new class (the sampler) apply
    # its own default for any key left at the default, so folder and file would differ.
    "timestep_spacing": "leading",
}
# Scheduler settings a diffusers folder may carry that change the training noise.
_SCHEDULER_KEYS_KEPT = (
    *SD_SCHEDULER_CONFIG,
    "trained_betas",
    "rescale_betas_zero_snr",
    "timestep_spacing",
)


@dataclass
class SDModel:
    """A loaded SD 1.x/2.x base model: its parts and what the trainer needs to know about it."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    noise_scheduler: DDPMScheduler  # the training scheduler; its prediction_type is set
    family: str  # "sd1" | "sd2"
    prediction_type: str  # "epsilon" | "v_prediction"
    source: Path
    base_model_version: str  # kohya's ss_base_model_version: "sd_v1", "sd_v2", "sd_v2_v"
    modelspec_architecture: str  # e.g. "stable-diffusion-v1/lora"
    vae_identity: str  # hash of the VAE's weights and scaling: a latent-cache key

    @property
    def vae_scale_factor(self) -> int:
        """How many pixels one latent pixel covers per side (8 for SD; 4 for the tiny model)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


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
    if prediction_type is not None and prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, not {prediction_type!r}")
    source = Path(path).expanduser()
    if not source.exists():
        raise ModelLoadError(
            f"Base model not found: {source}",
            "Check the path in `base_model`: it must be a .safetensors file or a diffusers folder.",
        )
    if source.is_dir():
        model = _load_diffusers_folder(source, allow_pickle=allow_pickle, prediction_type=prediction_type, dtype=dtype)
    else:
        checkpoint = read_checkpoint(source, allow_pickle=allow_pickle)
        parts = load_ldm_components(checkpoint, prediction_type=prediction_type, dtype=dtype)
        del checkpoint  # the models hold what they need; free the rest before hashing
        model = _assemble(
            source,
            parts.unet,
            parts.vae,
            parts.text_encoder,
            load_bundled_tokenizer(parts.family),
            parts.family,
            parts.prediction_type,
            scheduler_config=None,
        )
    return model


def load_bundled_tokenizer(family: str = "sd1") -> CLIPTokenizer:
    """The CLIP tokenizer shipped in ``trainer/resources`` (SD1 and SD2 share its vocabulary).

    SD2's tokenizer pads with "!" (token 0) because OpenCLIP pads with zeros; SD1's pads
    with the end-of-text token.
    """
    extra = {"pad_token": "!"} if family == "sd2" else {}
    return CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), local_files_only=True, **extra)


def make_noise_scheduler(prediction_type: str, base_config: Mapping[str, Any] | None = None) -> DDPMScheduler:
    """The training scheduler: SD's betas (or the folder's own), ``prediction_type`` set.

    ``clip_sample`` is off: SD latents are not bounded to [-1, 1].
    """
    config = dict(SD_SCHEDULER_CONFIG)
    if base_config:
        config.update({k: base_config[k] for k in _SCHEDULER_KEYS_KEPT if k in base_config})
    config.update(prediction_type=prediction_type, clip_sample=False)
    return DDPMScheduler.from_config(config)


def vae_identity(vae: AutoencoderKL) -> str:
    """A short hash of the VAE's weights (names, shapes, dtypes, bytes) and latent scaling.

    Two loads of the same VAE give the same value, whether from a folder or a single
    file; any change to a weight or to the dtype changes it. Hashing ~335 MB (SD's VAE in
    fp32) takes about half a second.
    """
    digest = hashlib.blake2b(digest_size=8)
    scaling = {k: vae.config.get(k) for k in ("scaling_factor", "shift_factor", "latent_channels")}
    digest.update(json.dumps(scaling, sort_keys=True).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(data.view(torch.uint8).numpy())
    return digest.hexdigest()


def detect_family_from_config(unet_config: Mapping[str, Any]) -> str:
    """SD2 for 1024-wide cross-attention or linear transformer projections, else SD1."""
    if unet_config.get("cross_attention_dim") == 1024 or unet_config.get("use_linear_projection"):
        return "sd2"
    return "sd1"


# ------------------------------------------------------------------------- internals


def _assemble(
    source: Path,
    unet: UNet2DConditionModel,
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    family: str,
    prediction_type: str,
    *,
    scheduler_config: Mapping[str, Any] | None,
) -> SDModel:
    if unet.config.in_channels != 4:
        # Inpainting (9), depth (5) and instruct-pix2pix (8) UNets take extra inputs that
        # text-to-image LoRA training does not provide.
        raise ModelLoadError(
            f"{source}: the UNet takes {unet.config.in_channels} input channels (an inpainting, depth or "
            "instruct-pix2pix model?); LoRA Studio trains text-to-image models, whose UNet takes 4.",
            "Choose the text-to-image version of the base model.",
        )
    if len(tokenizer) > text_encoder.config.vocab_size:
        raise ModelLoadError(
            f"{source}: the text encoder knows {text_encoder.config.vocab_size} tokens but the "
            f"tokenizer has {len(tokenizer)}; they do not belong together."
        )
    v_pred = prediction_type == "v_prediction"
    if family == "sd2":
        architecture = "stable-diffusion-v2-768-v" if v_pred else "stable-diffusion-v2-512"
    else:
        architecture = "stable-diffusion-v1"
    return SDModel(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        noise_scheduler=make_noise_scheduler(prediction_type, scheduler_config),
        family=family,
        prediction_type=prediction_type,
        source=source,
        # kohya: "sd" + "_v1"/"_v2" + "_v" for v-parameterization.
        base_model_version=("sd_v2" if family == "sd2" else "sd_v1") + ("_v" if v_pred else ""),
        modelspec_architecture=f"{architecture}/lora",
        vae_identity=vae_identity(vae),
    )


# Weight file names diffusers/transformers save: optional variant, optional shard number.
_WEIGHTS_NAME = re.compile(
    r"^(?:diffusion_pytorch_model|model)(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d+-of-\d+)?\.(?P<ext>safetensors|bin)$"
)


def _pick_variant(folder: Path, component: str, allow_pickle: bool) -> str | None:
    """The weights variant to load from ``folder/component`` ("fp16" when only that exists).

    Raises the pickle error when only ``.bin`` weights exist and pickles are not allowed:
    diffusers would otherwise unpickle them.
    """
    found: dict[str, set[str | None]] = {"safetensors": set(), "bin": set()}
    for entry in (folder / component).iterdir():
        match = _WEIGHTS_NAME.match(entry.name)
        if match:
            found[match["ext"]].add(match["variant"])
    for ext in ("safetensors", "bin"):
        variants = found[ext]
        if not variants:
            continue
        if ext == "bin" and not allow_pickle:
            break
        return None if None in variants else sorted(v for v in variants if v)[0]
    if found["bin"]:
        raise ModelLoadError(
            f"{folder / component} holds only pickle weights (.bin); loading a pickle file can run "
            "arbitrary code.",
            PICKLE_HINT,
        )
    raise ModelLoadError(f"{folder / component} contains no weights file.", "The model folder is incomplete.")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path} could not be read: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a JSON object.")
    return data


def _load_diffusers_folder(
    folder: Path, *, allow_pickle: bool, prediction_type: str | None, dtype: torch.dtype
) -> SDModel:
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (*SAFETENSORS_SUFFIXES, *PICKLE_SUFFIXES))
        hint = (
            f"Did you mean the file {files[0]}?"
            if files
            else "Give a diffusers model folder (with model_index.json) or a .safetensors checkpoint."
        )
        raise ModelLoadError(f"{folder} has no model_index.json, so it is not a diffusers model folder.", hint)
    index = _read_json(index_path)
    pipeline_class = str(index.get("_class_name", ""))
    if "XL" in pipeline_class or "text_encoder_2" in index:
        raise ModelLoadError(f"{folder} is an SDXL model; SDXL is not supported yet.")
    for component in ("unet", "vae", "text_encoder"):
        if not (folder / component).is_dir():
            raise ModelLoadError(
                f"{folder} has no {component}/ folder; LoRA Studio needs a Stable Diffusion 1.x/2.x model "
                f"(found a {pipeline_class or 'model'} folder)."
            )

    def load(what: str, cls: Any, component: str, **kwargs: Any) -> Any:
        variant = _pick_variant(folder, component, allow_pickle)
        try:
            return cls.from_pretrained(
                str(folder),
                subfolder=component,
                local_files_only=True,
                use_safetensors=None if allow_pickle else True,
                variant=variant,
                **kwargs,
            )
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelLoadError(f"{folder}: the {what} could not be loaded: {exc}") from exc

    unet = load("UNet", UNet2DConditionModel, "unet", torch_dtype=dtype)
    vae = load("VAE", AutoencoderKL, "vae", torch_dtype=dtype)
    text_encoder = load("text encoder", CLIPTextModel, "text_encoder", dtype=dtype)
    family = detect_family_from_config(unet.config)

    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler_config = _read_json(scheduler_file) if scheduler_file.is_file() else None
    if prediction_type is None:
        prediction_type = (scheduler_config or {}).get("prediction_type", "epsilon")
        if prediction_type not in PREDICTION_TYPES:
            raise ModelLoadError(
                f"{scheduler_file}: prediction_type {prediction_type!r} is not supported.",
                "Set `prediction_type` to epsilon or v_prediction in the config.",
            )
    if (folder / "tokenizer").is_dir():
        try:
            tokenizer = CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{folder}: the tokenizer could not be loaded: {exc}") from exc
    else:
        tokenizer = load_bundled_tokenizer(family)
    for model in (unet, vae, text_encoder):
        model.eval()
    return _assemble(
        folder, unet, vae, text_encoder, tokenizer, family, prediction_type, scheduler_config=scheduler_config
    )
