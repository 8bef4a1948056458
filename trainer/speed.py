"""Speed and memory levers of a training step, each with the fallback the CPU takes.

A lever is either an option (``allow_tf32``, ``cudnn_benchmark``, ``channels_last``,
``torch_compile``) or an automatic choice (SDPA attention, fused AdamW, pinned host memory for
the image loader); :func:`apply_backend_flags` and :func:`apply_model_levers` apply them and
return a report of what is on and why not, which the recipe logs. None of them changes what a
step computes beyond floating-point rounding: tests/test_speed_levers.py holds each to its
tolerance on the CPU, and ``bench/gpu_train.py`` measures what each is worth on a GPU.

- SDPA: diffusers' PyTorch 2 attention processors (flash / memory-efficient kernels on CUDA,
  the math kernel on a CPU), put back where a model carries the classic processor.
- TF32 (CUDA only): fp32 matmuls on tensor cores; what runs in bf16/fp16 is not affected.
- cudnn benchmark (CUDA only): cuDNN times its convolution algorithms once per shape.
- channels_last (UNet families on CUDA): convolutions in NHWC, the layout tensor cores want.
- torch.compile of the denoiser: compiled on first use; if compiling fails (no compiler, an
  unsupported layer) the step runs uncompiled and the run says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger("trainer")

Warn = Callable[[str], None]


def apply_backend_flags(device: torch.device, *, allow_tf32: bool, cudnn_benchmark: bool) -> dict[str, str]:
    """Set PyTorch's process-wide CUDA math flags for this run; on a CPU they are left alone."""
    if device.type != "cuda":
        return {"tf32": "off (CUDA only)", "cudnn_benchmark": "off (CUDA only)"}
    # "high" lets fp32 matmuls use TF32; "highest" is PyTorch's default. Convolutions follow cuDNN's flag.
    torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark
    return {"tf32": "on" if allow_tf32 else "off", "cudnn_benchmark": "on" if cudnn_benchmark else "off"}


def use_sdpa(module: torch.nn.Module) -> str:
    """Give every classic diffusers attention processor of ``module`` the SDPA one; returns what it uses.

    diffusers picks SDPA by itself on PyTorch 2; a model whose processors were set to the
    classic ones (``set_default_attn_processor``, old pipelines) gets SDPA back here.
    """
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    processors = getattr(module, "attn_processors", None)
    if not processors:
        return "model's own"
    classic = [name for name, processor in processors.items() if type(processor) is AttnProcessor]
    if classic:
        module.set_attn_processor({name: AttnProcessor2_0() if type(p) is AttnProcessor else p
                                   for name, p in processors.items()})
    return "sdpa"


def use_classic_attention(module: torch.nn.Module) -> None:
    """diffusers' classic (pre-SDPA) attention everywhere: the baseline the benchmark compares SDPA with."""
    from diffusers.models.attention_processor import AttnProcessor

    module.set_attn_processor(AttnProcessor())


def has_convolutions(module: torch.nn.Module) -> bool:
    """Whether ``module`` has 2-D convolutions (a UNet), which is where channels_last matters."""
    return any(isinstance(m, torch.nn.Conv2d) for m in module.modules())


def set_channels_last(module: torch.nn.Module, enabled: bool) -> None:
    """Store ``module``'s 4-D weights in NHWC (``enabled``) or in the usual NCHW layout."""
    module.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)


def compile_with_fallback(module: torch.nn.Module, warn: Warn, *, backend: str = "inductor") -> None:
    """Compile ``module``'s forward; when compiling (which happens on the first calls) fails, the
    module runs its own forward from then on and ``warn`` is told why.

    Only the forward is replaced (an instance attribute): the module, its parameters and their
    names stay as they are, so the LoRA's state dict, checkpoints and resume are unaffected.
    Out-of-memory errors are not compile failures and go through.
    """
    eager = module.forward
    compiled = torch.compile(eager, backend=backend)

    def forward(*args: Any, **kwargs: Any) -> Any:
        try:
            return compiled(*args, **kwargs)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # dynamo and inductor raise many types; all mean "not compiled"
            # Dynamo's messages start "backend='inductor' raised:" and name the cause on the next line.
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = " ".join(lines[:2])[:300] or type(exc).__name__
            warn(f"torch.compile of the {type(module).__name__} failed ({type(exc).__name__}: {reason}); "
                 "it trains uncompiled")
            module.forward = eager
            return eager(*args, **kwargs)

    module.forward = forward


def apply_model_levers(denoiser: torch.nn.Module, config: Any, device: torch.device, warn: Warn, *,
                       compile_backend: str = "inductor") -> dict[str, str]:
    """SDPA attention, channels_last and torch.compile for the denoiser of an image run (after the
    LoRA is added, so its layers are laid out and compiled too); returns what is on."""
    report = {"attention": use_sdpa(denoiser)}
    wanted = config.channels_last
    if wanted == "auto":
        wanted = "true" if device.type == "cuda" and has_convolutions(denoiser) else "false"
    if wanted == "true":
        set_channels_last(denoiser, True)
    report["channels_last"] = "on" if wanted == "true" else "off"
    if config.torch_compile:
        compile_with_fallback(denoiser, warn, backend=compile_backend)
    report["torch_compile"] = "on" if config.torch_compile else "off"
    return report


def adamw_implementation(device: torch.device) -> dict[str, bool]:
    """AdamW's implementation flag for parameters on ``device``: one fused kernel on CUDA, else the
    batched ``foreach`` update (on a CPU the per-tensor loop cost 7% of a 64 px step)."""
    return {"fused": True} if device.type == "cuda" else {"foreach": True}


def pin_memory(device: torch.device) -> bool:
    """Whether loaded batches go to page-locked host memory (CUDA: the copy to the GPU overlaps)."""
    return device.type == "cuda"


def describe(report: dict[str, str]) -> str:
    """``attention sdpa, channels_last on, ...`` for the log."""
    return ", ".join(f"{name} {value}" for name, value in report.items())


def offloadable_parts(device: torch.device, *, latents_cached: bool, prompts_cached: bool,
                      text_encoders: list[str]) -> list[str]:
    """The frozen parts of an image model that can wait in host memory while training on a GPU: the
    VAE when latents are cached, the text encoders when their outputs are (then none is trained).
    On a CPU everything is in host memory already."""
    if device.type != "cuda":
        return []
    return (["vae"] if latents_cached else []) + (list(text_encoders) if prompts_cached else [])
