"""What the flow-matching transformer families share (Flux.1, SD3/3.5): the objective, the layers
a LoRA and 8-bit weights go on, and the kohya file in the original fused layout.

Training is flow matching (rectified flow): the input is the straight mix ``(1 - s) x + s n``
of latents and noise at a noise level ``s``, and the target the velocity ``n - x``. ``s`` is
sampled (uniform, logit-normal as in the SD3 paper, or mode) and then shifted towards more
noise, ``shift s / (1 + (shift - 1) s)``, as the model's scheduler says: a fixed shift (SD3:
3.0), or one that grows with the image's token count (Flux.1-dev's ``use_dynamic_shifting``).

The kohya file uses the original checkpoint's layer names, which sd-scripts writes and ComfyUI
loads; the family's :class:`.FusedLayout` turns the LoRAs of diffusers' split layers into
LoRAs of the original's fused ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch

from .errors import ModelLoadError
from .family import DiffusionModel, check_prediction_type
from .fused_layout import FusedLayout

TRANSFORMER = "transformer"


def check_flow_prediction(prediction_type: str | None, label: str) -> None:
    """Refuse a `prediction_type` for a flow-matching family (``label``: "Flux.1"): its target is fixed."""
    check_prediction_type(prediction_type)
    if prediction_type is not None:
        raise ModelLoadError(f"prediction_type {prediction_type} does not apply to {label} (it is trained by flow "
                             "matching)", "set prediction_type to auto")


class FlowMatchingModel(DiffusionModel):
    """A loaded flow-matching transformer model; a family subclass says its layout and conditioning."""

    denoiser_name = TRANSFORMER
    layout: ClassVar[FusedLayout]
    # The kohya prefix of each text encoder that can get a LoRA (sd-scripts' lora_te1_, lora_te2_).
    kohya_text_prefixes: ClassVar[Mapping[str, str]]

    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        self.sampling = ("logit_normal", 0.0, 1.0, 1.29)  # scheme, logit mean, logit std, mode scale

    @property
    def transformer(self) -> torch.nn.Module:
        """The denoiser."""
        return self.unet

    def configure(self, config: Any) -> None:
        """How noise levels are sampled (`timestep_sampling` and its parameters)."""
        self.sampling = (config.timestep_sampling, config.logit_mean, config.logit_std, config.mode_scale)

    def block_layers(self, suffixes: Iterable[str], kinds: Iterable[str] | None = None) -> list[str]:
        """Full names of the linear layers of the transformer's blocks (of ``kinds``, default all) whose name
        inside the block is one of ``suffixes``."""
        suffixes, kinds = set(suffixes), set(kinds or (kind.diffusers for kind in self.layout.blocks))
        return [name for name, module in self.transformer.named_modules()
                if isinstance(module, torch.nn.Linear) and (block := self.layout.block_of(name))
                and block[0] in kinds and block[2] in suffixes]

    def quantizable_layers(self) -> list[str]:
        """Every linear layer of the blocks (over 99 % of the transformer's weights). The embedders and the
        output projection stay in bf16: they save little, and every token's input and output passes
        through them."""
        return [name for name, module in self.transformer.named_modules()
                if isinstance(module, torch.nn.Linear) and self.layout.block_of(name)]

    # --- the objective ------------------------------------------------------------------

    def sample_timesteps(self, latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noise levels (x 1000) drawn by the sampling scheme, shifted as the scheduler says."""
        scheme, mean, std, mode_scale = self.sampling
        batch = latents.shape[0]
        if scheme == "logit_normal":
            u = torch.sigmoid(mean + std * torch.randn((batch,), generator=generator))
        elif scheme == "mode":
            u = torch.rand((batch,), generator=generator)
            u = 1 - u - mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
        else:
            u = torch.rand((batch,), generator=generator)
        # Both families make one token of each 2x2 patch of latents.
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
        """Flow matching has no SNR weighting (min_snr_gamma is not its option): equal weights."""
        return torch.ones_like(timesteps)

    def debiased_weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Nor debiased estimation (it is an SNR weighting too): equal weights."""
        return torch.ones_like(timesteps)

    # --- names --------------------------------------------------------------------------

    def kohya_name(self, component: str, module: str) -> str:
        """``lora_te1_text_model_<path>`` (CLIP-L) or ``lora_te2_...`` (CLIP-G); transformer layers are named in
        :meth:`kohya_weights`."""
        if not module.startswith("text_model."):  # CLIPTextModel has no such level in transformers 5
            module = "text_model." + module
        return self.kohya_text_prefixes[component] + module.replace(".", "_")

    def kohya_weights(self, states: dict[str, dict[str, torch.Tensor]], alpha: float,
                      dtype: torch.dtype, rank: int | None = None) -> dict[str, torch.Tensor]:
        """The original layout's modules, the split layers' LoRAs fused (see the module docstring); the
        text encoders as kohya names them."""
        from trainer.lora import lora_pairs, to_kohya

        out = to_kohya({k: v for k, v in states.items() if k != TRANSFORMER}, self.kohya_name, alpha, dtype)
        out.update(self.layout.kohya_lora(lora_pairs(states.get(TRANSFORMER, {})), self.transformer, alpha, dtype))
        return out
