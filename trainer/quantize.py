"""8-bit base weights (`quantization_bit: 8`): the frozen denoiser's linear layers in int8, the LoRA on top.

Each chosen linear layer keeps its weight as int8 with one scale per output row (torchao's
weight-only int8, ``Int8WeightOnlyConfig``); its forward uses the weight dequantized on the
fly, so activations, gradients and the LoRA stay in the run's precision. That halves a bf16
transformer: Flux.1-dev's 22 GB of weights become 11 GB. peft wraps a quantized layer that gets
a LoRA in its ``TorchaoLoraLinear``, which trains like a plain LoRA layer; the base weights get
no gradient. The layers come from the family (:meth:`DiffusionModel.quantizable_layers`).

torchao runs on the CPU as well (the tests quantize there), but a run is quantized only on a
CUDA GPU, where memory is the limit: the config check refuses it elsewhere, before anything is
written (:func:`trainer.model_check.check_quantization`), and :func:`quantize_denoiser` again.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from trainer.models.errors import ModelLoadError
from trainer.precision import move_to

# peft says its torchao LoRA layer cannot merge into the base weights without torchao's config object;
# the trainer never merges (it writes the LoRA as files), so the warning would only puzzle the user.
warnings.filterwarnings("ignore", message="TorchaoLoraLinear was instantiated without", category=UserWarning)

_GB = 2 ** 30


@dataclass(frozen=True)
class QuantizedWeights:
    """What :func:`quantize_linear_weights` did: how many layers, their weights' bytes before and after."""

    layers: int
    bytes_before: int
    bytes_after: int

    def __str__(self) -> str:
        return (f"{self.layers} linear layers in int8, their weights {self.bytes_before / _GB:.2f} GB -> "
                f"{self.bytes_after / _GB:.2f} GB")


def weight_bytes(weight: torch.Tensor) -> int:
    """Bytes a weight holds: a torchao tensor's int8 data and scales, else the tensor's own."""
    names = getattr(weight, "tensor_data_names", None)
    if names:
        return sum(getattr(weight, name).nbytes for name in names)
    return weight.nbytes


def quantize_linear_weights(module: torch.nn.Module, names: Iterable[str],
                            device: torch.device | None = None) -> QuantizedWeights:
    """Store the weights of ``module``'s linear layers ``names`` (full names) as int8 with one scale per
    row, in place. ``device``: each layer moves there just before it is quantized, and the rest of
    ``module`` after, so the unquantized model is never whole on the GPU."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    chosen = set(names)
    layers = {name: m for name, m in module.named_modules() if name in chosen and isinstance(m, torch.nn.Linear)}
    if len(layers) != len(chosen):
        raise ValueError(f"not linear layers of the {type(module).__name__}: {sorted(chosen - set(layers))[:5]}")
    before = sum(weight_bytes(layer.weight) for layer in layers.values())
    # set_inductor_config=False: torchao would otherwise change torch.compile's settings for the whole process.
    quantize_(module, Int8WeightOnlyConfig(set_inductor_config=False), filter_fn=lambda _m, name: name in layers,
              device=device)
    after = sum(weight_bytes(module.get_submodule(name).weight) for name in layers)
    return QuantizedWeights(len(layers), before, after)


def quantize_denoiser(model: Any, device: torch.device, dtype: torch.dtype) -> QuantizedWeights:
    """`quantization_bit: 8` for a run: the family's quantizable layers of ``model``'s denoiser in int8 on
    ``device``, the rest in ``dtype``. Raises :class:`ModelLoadError` where 8 bits cannot run (no CUDA
    GPU, no torchao) or the family has no such layers."""
    from trainer.model_check import check_quantization

    for problem in check_quantization("8", device.type):
        raise ModelLoadError(problem.message, problem.hint)
    names = model.quantizable_layers()
    if not names:
        raise ModelLoadError(f"quantization_bit 8 is not available for {model.spec.label} models",
                             "set quantization_bit to none")
    # Cast in host memory first, tensor by tensor: the int8 weights then dequantize to bf16 for the
    # matmuls, and the GPU never holds more than one layer unquantized.
    move_to(model.denoiser, torch.device("cpu"), dtype)
    return quantize_linear_weights(model.denoiser, names, device=device)
