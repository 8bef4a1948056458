"""Where and in which precision to train, from the config's `device` and `mixed_precision`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    """The training device and dtypes.

    weight_dtype: the frozen UNet / text encoder weights; autocast_dtype: the forward pass
    (None = no autocast); use_grad_scaler: fp16 needs loss scaling to avoid underflow.
    LoRA weights are always fp32.
    """

    device: torch.device
    weight_dtype: torch.dtype
    autocast_dtype: torch.dtype | None
    use_grad_scaler: bool
    name: str  # "no", "fp16" or "bf16"


class DeviceUnavailable(Exception):
    """The config asks for a device this machine does not have."""


def resolve_precision(device_choice: str, mixed_precision: str) -> Precision:
    """Pick the device and dtypes; `auto` means the best this machine supports."""
    if device_choice == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("device: cuda was asked for, but no CUDA GPU is visible")
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    name = mixed_precision
    if name == "auto":
        if use_cuda:
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "no"
    if name == "no":
        return Precision(device, torch.float32, None, False, name)
    dtype = torch.bfloat16 if name == "bf16" else torch.float16
    return Precision(device, dtype, dtype, name == "fp16" and use_cuda, name)


def move_to(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move a model, casting only when the dtype changes (a no-op cast makes diffusers warn).

    Moved and cast in one call, tensor by tensor: a model loaded in fp32 is never whole on the GPU
    before its cast (Flux.1-dev's transformer is 44 GB in fp32, 22 GB in bf16).
    """
    if next(module.parameters()).dtype == dtype:
        module.to(device)
        return module
    # diffusers warns about a cast it cannot improve on here (the models have no
    # fp32-only modules); keep the user's log free of it.
    diffusers_logger = logging.getLogger("diffusers")
    level = diffusers_logger.level
    diffusers_logger.setLevel(logging.ERROR)
    try:
        module.to(device=device, dtype=dtype)
    finally:
        diffusers_logger.setLevel(level)
    return module


def autocast(precision: Precision):
    """The forward pass's autocast context for ``precision`` (a disabled one without mixed precision)."""
    if precision.autocast_dtype is None:
        return torch.autocast(precision.device.type, enabled=False)
    return torch.autocast(precision.device.type, dtype=precision.autocast_dtype)
