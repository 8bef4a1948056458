"""The family interface: what the recipe asks of a loaded base model, whatever its family.

A family module (:mod:`.sd`, :mod:`.sdxl`) subclasses :class:`DiffusionModel` and fills in
the parts that differ: which layers get a LoRA and their kohya names, how prompts become
the denoiser's conditioning, how the denoiser is called, the sampling pipeline. The parts
that latent-diffusion families share (latent scaling, DDPM noise and target, min-SNR
weights, the VAE's identity) are here, so each family writes only what is its own.

The recipe talks to this interface only; :func:`load_base_model` picks the family.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

import hashlib  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, ClassVar  # noqa: E402

import torch  # noqa: E402
from diffusers import DDPMScheduler  # noqa: E402

from trainer.data import ImageGeometry  # noqa: E402
from trainer.text_encoding import Conditioning  # noqa: E402
from trainer.model_family import FamilySpec, ModelKindError, detect_family, resolve_family  # noqa: E402

from .errors import ModelLoadError  # noqa: E402

PREDICTION_TYPES = ("epsilon", "v_prediction")
UNET = "unet"

# SD 1.x/2.x and SDXL were trained with these betas; diffusers' scheduler configs say the same.
LDM_SCHEDULER_CONFIG: dict[str, Any] = {
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
_SCHEDULER_KEYS_KEPT = (*LDM_SCHEDULER_CONFIG, "trained_betas", "rescale_betas_zero_snr", "timestep_spacing")


class DiffusionModel:
    """A loaded latent-diffusion base model of some family (subclasses fill in the rest).

    The denoiser (a UNet, or Flux's transformer) is ``unet`` here whatever it is, and
    :attr:`denoiser_name` its component name in files (``unet.``, ``transformer.``).
    ``text_encoders`` maps each encoder's component name (``text_encoder``, ``text_encoder_2``)
    to its module; together with the denoiser they are the parts a LoRA can be added to.
    """

    spec: ClassVar[FamilySpec]
    denoiser_name: ClassVar[str] = UNET

    def __init__(self, *, unet: torch.nn.Module, vae: torch.nn.Module, text_encoders: dict[str, torch.nn.Module],
                 tokenizers: Sequence[Any], noise_scheduler: DDPMScheduler, variant: str, prediction_type: str,
                 source: Path, base_model_version: str, modelspec_architecture: str) -> None:
        self.unet = unet
        self.vae = vae
        self.text_encoders = text_encoders
        self.tokenizers = list(tokenizers)
        self.noise_scheduler = noise_scheduler
        self.variant = variant
        self.prediction_type = prediction_type
        self.source = source
        self.base_model_version = base_model_version  # kohya's ss_base_model_version
        self.modelspec_architecture = modelspec_architecture  # e.g. "stable-diffusion-v1/lora"
        self.vae_identity = vae_identity(vae)  # a latent-cache key

    @property
    def family(self) -> str:
        """The family's id (``model_family``)."""
        return self.spec.id

    @property
    def vae_scale_factor(self) -> int:
        """How many pixels one latent pixel covers per side (8 for SD and SDXL)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def denoiser(self) -> torch.nn.Module:
        """The model that predicts the noise (or velocity): the UNet, or a transformer."""
        return self.unet

    def component(self, name: str) -> torch.nn.Module:
        """The denoiser or a text encoder by its component name."""
        return self.unet if name == self.denoiser_name else self.text_encoders[name]

    def configure(self, config: Any) -> None:
        """Take the options the family's objective uses from the run's config (none by default)."""

    def scale_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE latents in the scale the denoiser trained on (the VAE's shift and scaling factor)."""
        shift = self.vae.config.get("shift_factor") or 0.0
        return (latents - shift) * self.vae.config.scaling_factor

    # --- what gets a LoRA ---------------------------------------------------------------

    def lora_targets(self, component: str, lora_target: str) -> list[str]:
        """Full names of the layers of ``component`` that get a LoRA for ``lora_target``."""
        from trainer.lora import text_encoder_target_modules, unet_target_modules

        if component == self.denoiser_name:
            return unet_target_modules(self.unet, lora_target)
        return text_encoder_target_modules(self.text_encoders[component], lora_target)

    def quantizable_layers(self) -> list[str]:
        """Full names of the denoiser's linear layers that `quantization_bit: 8` keeps in 8 bits; none
        here (the config check refuses 8 bits for a family that does not name its layers)."""
        return []

    def text_encoder_lrs(self, config: Any) -> dict[str, float]:
        """The text encoders that get a LoRA under ``config``, with their learning rates.

        Every encoder when ``train_text_encoder`` is on, at ``text_encoder_lr`` (else the
        UNet's rate); a family with several encoders may say more (SDXL's second one).
        """
        if not config.train_text_encoder:
            return {}
        lr = config.text_encoder_lr or config.learning_rate
        return {name: lr for name in self.text_encoders}

    def kohya_name(self, component: str, module: str) -> str:
        """The kohya-format name of a LoRA on ``module`` of ``component`` (``lora_unet_...``)."""
        raise NotImplementedError

    def kohya_weights(self, states: dict[str, dict[str, torch.Tensor]], alpha: float,
                      dtype: torch.dtype, rank: int | None = None) -> dict[str, torch.Tensor]:
        """The kohya-format file's tensors: one kohya module per adapter, named by :meth:`kohya_name`
        (``rank``: the adapters' rank, which LoKr's tensors need).

        A family whose original layout fuses layers that diffusers splits (Flux's q, k and v)
        writes fused modules instead.
        """
        from trainer.lora import to_kohya

        return to_kohya(states, self.kohya_name, alpha, dtype, rank)

    def diffusers_name(self, component: str, key: str) -> str:
        """A LoRA weight's key inside its component in the diffusers-format file.

        The text encoders' keys keep CLIP's ``text_model.`` level, which transformers 5.6
        dropped from ``CLIPTextModel``: diffusers then loads the file under transformers 4.x
        (which needs the level) and 5.x (which maps it) alike.
        """
        if component == self.denoiser_name or key.startswith("text_model."):
            return key
        return "text_model." + key

    # --- the objective ------------------------------------------------------------------

    def sample_timesteps(self, latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random training timestep per image of ``latents`` (DDPM: uniform over the schedule)."""
        return torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                             generator=generator)

    def noisy_and_target(self, latents: torch.Tensor, noise: torch.Tensor,
                         timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The denoiser's input at ``timesteps`` and what it should predict (noise or velocity)."""
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == "epsilon":
            return noisy, noise
        return noisy, self.noise_scheduler.get_velocity(latents, noise, timesteps)

    def loss_weights(self, timesteps: torch.Tensor, min_snr_gamma: float) -> torch.Tensor:
        """Per-image loss weights of min-SNR weighting."""
        from trainer.objective import min_snr_weights

        return min_snr_weights(self.noise_scheduler, timesteps, min_snr_gamma, self.prediction_type)

    def debiased_weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Per-image loss weights of debiased estimation (kohya's ``debiased_estimation_loss``)."""
        from trainer.objective import debiased_weights

        return debiased_weights(self.noise_scheduler, timesteps, self.prediction_type)

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: Conditioning,
                geometry: Sequence[ImageGeometry]) -> torch.Tensor:
        """The denoiser's prediction for a batch."""
        raise NotImplementedError

    # --- prompts and samples ------------------------------------------------------------

    def prompt_encoder(self, clip_skip: int, device: torch.device, cache: bool):
        """The family's :class:`trainer.text_encoding.PromptEncoder` (captions -> :class:`Conditioning`)."""
        raise NotImplementedError

    def build_pipeline(self):
        """A diffusers pipeline sharing this model's modules (LoRA layers included), for samples."""
        raise NotImplementedError

    def sample_inputs(self, prompt: Conditioning, negative: Conditioning, negative_is_empty: bool
                      ) -> dict[str, torch.Tensor]:
        """The pipeline's keyword arguments for one sample prompt, encoded by :meth:`prompt_encoder` (as training
        conditions): given these, the pipeline never runs the text encoders. ``negative``: the encoded negative
        prompt ("" when ``negative_is_empty``, which some pipelines replace by zeros)."""
        raise NotImplementedError


# ------------------------------------------------------------------------------- helpers


def make_noise_scheduler(prediction_type: str, base_config: Mapping[str, Any] | None = None) -> DDPMScheduler:
    """The training scheduler: the LDM betas (or the folder's own), ``prediction_type`` set.

    ``clip_sample`` is off: latents are not bounded to [-1, 1].
    """
    config = dict(LDM_SCHEDULER_CONFIG)
    if base_config:
        config.update({k: base_config[k] for k in _SCHEDULER_KEYS_KEPT if k in base_config})
    config.update(prediction_type=prediction_type, clip_sample=False)
    return DDPMScheduler.from_config(config)


def vae_identity(vae: torch.nn.Module) -> str:
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


def check_prediction_type(prediction_type: str | None) -> None:
    """Raise ValueError for a prediction type no family knows (None means "ask the model")."""
    if prediction_type is not None and prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, not {prediction_type!r}")


def family_module(spec: FamilySpec) -> Any:
    """The module that implements ``spec``'s family (it has a ``load(path, ...)`` function)."""
    return importlib.import_module(f"{__package__}.{spec.implementation}")


def load_base_model(path: str | Path, *, model_family: str = "auto", allow_pickle: bool = False,
                    prediction_type: str | None = None, dtype: torch.dtype = torch.float32,
                    companions: Mapping[str, str | Path] | None = None) -> DiffusionModel:
    """Load a base model of any registered family, offline; the family comes from the files.

    ``model_family`` ("auto" or a family id) must agree with what the files are.
    ``companions``: the options that name a model's other files when it comes as split files
    (:data:`trainer.model_family.COMPANION_OPTIONS`), for the families that have them. Raises
    :class:`ModelLoadError` (with a hint) for anything the user can fix.
    """
    check_prediction_type(prediction_type)
    source = Path(path).expanduser()
    try:
        spec = resolve_family(detect_family(source, allow_pickle=allow_pickle), model_family, str(source))
    except ModelKindError as exc:
        raise ModelLoadError(exc.message, exc.hint) from exc
    return family_module(spec).load(source, allow_pickle=allow_pickle, prediction_type=prediction_type, dtype=dtype,
                                    companions=companions or {})
