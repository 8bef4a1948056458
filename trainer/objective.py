"""Pieces of the denoising objective that the recipe weighs its loss with."""

from __future__ import annotations

import torch


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023): min(SNR, gamma) / SNR (or SNR + 1 for v)."""
    alphas_cumprod = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = alphas_cumprod / (1 - alphas_cumprod)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1) if prediction_type == "v_prediction" else clipped / snr


def debiased_weights(scheduler, timesteps: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """Debiased-estimation loss weights (kohya's ``debiased_estimation_loss``): 1/sqrt(SNR), or
    1/(SNR + 1) for v-prediction; SNR is capped at 1000, where timestep 0 would make it infinite."""
    alphas_cumprod = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = torch.clamp(alphas_cumprod / (1 - alphas_cumprod), max=1000.0)
    return 1 / (snr + 1) if prediction_type == "v_prediction" else 1 / torch.sqrt(snr)


def multires_noise(noise: torch.Tensor, generator: torch.Generator, iterations: int, discount: float) -> torch.Tensor:
    """Multi-resolution ("pyramid") noise as kohya's ``multires_noise_iterations`` makes it.

    Layer i is noise at 1/r^i of the size (r drawn from [2, 4) per layer), upsampled bilinearly
    and weighted discount^i, added to ``noise``; the sum is scaled back to unit standard
    deviation. Every draw comes from ``generator`` (the recipe's), so a resume repeats it.
    """
    batch, channels, height, width = noise.shape
    out = noise.clone()
    for level in range(iterations):
        r = 2 + 2 * float(torch.rand((), generator=generator))
        small = (max(1, int(height / r ** level)), max(1, int(width / r ** level)))
        layer = torch.randn((batch, channels, *small), generator=generator, dtype=noise.dtype)
        out += torch.nn.functional.interpolate(layer, size=(height, width), mode="bilinear") * discount ** level
        if 1 in small:
            break  # the coarsest layer is one pixel
    return out / out.std()
