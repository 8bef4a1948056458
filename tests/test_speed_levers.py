"""The speed and memory levers (trainer/speed.py) on the CPU: each is applied, or left off with its
reason, and none changes what a step computes beyond its tolerance:

- SDPA vs the classic attention, channels_last, torch.compile: the same outputs within 1e-5
  (float rounding of other kernels);
- fused vs foreach AdamW: the same updates within 1e-6;
- TF32 and cudnn benchmark: CUDA only, the CPU's flags are left alone (TF32 rounds fp32 matmuls to
  about 1e-3 relative on a GPU; bf16 runs, the default there, do not use it);
- offloading cached parts and pinned memory: CUDA only, nothing to do on a CPU.
"""

from __future__ import annotations

import torch

from trainer import speed
from trainer.config import TrainConfig
from trainer.config.schema import defaults

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def tiny_unet():
    from trainer.models.full_size import build_image_model

    return build_image_model("sd", device=CPU, dtype=torch.float32, tiny=True).unet


def unet_output(unet) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 8, 8, generator=generator)
    hidden = torch.randn(2, 77, 32, generator=generator)
    with torch.no_grad():
        return unet(latents, torch.tensor([10, 500]), hidden).sample


def config(**values) -> TrainConfig:
    return TrainConfig({**defaults(), **values})


def test_cuda_flags_are_left_alone_on_the_cpu():
    precision, benchmark = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    report = speed.apply_backend_flags(CPU, allow_tf32=True, cudnn_benchmark=True)
    assert report == {"tf32": "off (CUDA only)", "cudnn_benchmark": "off (CUDA only)"}
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark) == (precision, benchmark)


def test_sdpa_replaces_classic_attention_with_the_same_result():
    from diffusers.models.attention_processor import AttnProcessor2_0

    unet = tiny_unet()
    speed.use_classic_attention(unet)
    classic = unet_output(unet)
    assert speed.use_sdpa(unet) == "sdpa"
    assert all(type(p) is AttnProcessor2_0 for p in unet.attn_processors.values())
    torch.testing.assert_close(unet_output(unet), classic, rtol=1e-5, atol=1e-5)


def test_channels_last_is_automatic_on_cuda_unets_and_keeps_the_result():
    unet = tiny_unet()
    before = unet_output(unet)
    warnings: list[str] = []
    assert speed.apply_model_levers(unet, config(), CPU, warnings.append)["channels_last"] == "off"  # auto, CPU
    assert speed.apply_model_levers(unet, config(channels_last="true"), CPU, warnings.append) == {
        "attention": "sdpa", "channels_last": "on", "torch_compile": "off"}
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(unet_output(unet), before, rtol=1e-5, atol=1e-5)
    assert not warnings
    # auto turns it on for a UNet on CUDA (checked without moving anything there).
    assert speed.has_convolutions(unet) and not speed.has_convolutions(torch.nn.Linear(2, 2))


def test_compile_runs_compiled_or_falls_back_with_a_warning():
    layer = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    inputs = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    expected = layer(inputs)
    warnings: list[str] = []
    speed.compile_with_fallback(layer, warnings.append, backend="eager")  # dynamo, no compiler needed
    torch.testing.assert_close(layer(inputs), expected, rtol=1e-5, atol=1e-6)
    assert not warnings and "forward" in vars(layer)
    # A compiler that fails (none installed, an unsupported layer): the UNet trains uncompiled, and says so.
    unet = tiny_unet()
    before = unet_output(unet)

    def broken(graph, example_inputs):
        raise RuntimeError("no C++ compiler on this machine")

    speed.compile_with_fallback(unet, warnings.append, backend=broken)
    torch.testing.assert_close(unet_output(unet), before, rtol=1e-5, atol=1e-5)
    assert len(warnings) == 1 and "UNet2DConditionModel failed" in warnings[0]
    assert "no C++ compiler" in warnings[0] and "trains uncompiled" in warnings[0]
    unet_output(unet)
    assert len(warnings) == 1  # said once: the module runs its own forward from then on


def test_fused_adamw_on_cuda_foreach_elsewhere_with_the_same_updates():
    assert speed.adamw_implementation(CPU) == {"foreach": True}
    assert speed.adamw_implementation(CUDA) == {"fused": True}
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=generator), torch.randn(7, generator=generator)]
    results = []
    for flags in ({"foreach": True}, {"fused": True}):  # PyTorch's fused kernel exists on the CPU too
        params = [torch.nn.Parameter(t.clone()) for t in start]
        optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01, **flags)
        for step in range(5):
            loss = sum(((p - step) ** 2).sum() for p in params)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        results.append(params)
    for foreach, fused in zip(*results):
        torch.testing.assert_close(fused.detach(), foreach.detach(), rtol=1e-6, atol=1e-6)


def test_host_memory_levers_are_cuda_only():
    assert speed.pin_memory(CPU) is False and speed.pin_memory(CUDA) is True
    encoders = ["text_encoder", "text_encoder_2"]
    assert speed.offloadable_parts(CPU, latents_cached=True, prompts_cached=True, text_encoders=encoders) == []
    assert speed.offloadable_parts(CUDA, latents_cached=True, prompts_cached=True, text_encoders=encoders) == [
        "vae", *encoders]
    assert speed.offloadable_parts(CUDA, latents_cached=False, prompts_cached=False, text_encoders=encoders) == []
