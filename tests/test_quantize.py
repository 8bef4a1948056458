"""8-bit base weights (`quantization_bit: 8`): Flux.1's transformer blocks in int8 under a LoRA that trains,
and the refusal where there is no CUDA GPU. torchao's int8 path runs on the CPU, so the tests quantize
the tiny Flux.1 model here; a run is quantized only on CUDA (the config check refuses the CPU)."""

from __future__ import annotations

import pytest
import torch

from tests.cli_helpers import trainer_cli
from tests.test_train_e2e import make_dataset, write_config
from trainer.config import validate_mapping

pytest.importorskip("torchao", reason="torchao is not installed (pip install -c constraints.txt torchao)")

# int8 with one scale per row rounds each weight by at most half a step: 1/254 of its row's largest
# weight (0.4 %). Summed over a layer the errors partly cancel; through the whole tiny transformer the
# output stays within 1 % of the unquantized one (relative L2 norm; measured: 0.04 % in fp32, 0.3 % in bf16).
RELATIVE_TOLERANCE = 0.01


def _flux(tiny_model_of):
    from trainer.models.family import load_base_model

    return load_base_model(tiny_model_of("flux").diffusers_dir)


def _velocity(model) -> torch.Tensor:
    """The transformer's prediction for fixed random inputs, through the family's own call of it."""
    from trainer.text_encoding import Conditioning

    config = model.transformer.config
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 16, 8, 8, generator=generator)
    conditioning = Conditioning(torch.randn(2, 8, config.joint_attention_dim, generator=generator),
                                torch.randn(2, config.pooled_projection_dim, generator=generator))
    return model.predict(latents, torch.tensor([300.0, 700.0]), conditioning, [])


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_the_blocks_linear_layers_become_int8_and_the_output_stays_close(tiny_model_of):
    from torchao.quantization import Int8Tensor

    from trainer.quantize import quantize_linear_weights

    model = _flux(tiny_model_of)
    names = model.quantizable_layers()
    # Every linear layer of both kinds of block; the embedders and the output projection stay as they are.
    linears = [n for n, m in model.transformer.named_modules() if isinstance(m, torch.nn.Linear)]
    assert set(names) == {n for n in linears if n.startswith(("transformer_blocks.", "single_transformer_blocks."))}
    assert {"x_embedder", "context_embedder", "proj_out"} <= set(linears) - set(names)
    with torch.no_grad():
        before = _velocity(model)
    report = quantize_linear_weights(model.transformer, names, device=torch.device("cpu"))

    for name in names:
        weight = model.transformer.get_submodule(name).weight
        assert isinstance(weight, Int8Tensor) and weight.qdata.dtype == torch.int8, name
        assert weight.scale.shape == (weight.shape[0], 1)  # one scale per output row
    assert not isinstance(model.transformer.x_embedder.weight, Int8Tensor)
    # fp32 weights: 4 bytes each before, 1 byte plus a 4-byte scale per row after.
    assert report.layers == len(names) and report.bytes_after < 0.3 * report.bytes_before
    with torch.no_grad():
        after = _velocity(model)
    assert 0 < _relative_error(after, before) < RELATIVE_TOLERANCE


def test_in_bf16_the_int8_layers_compute_in_bf16_and_stay_close(tiny_model_of):
    """What a CUDA run does (the weights cast to bf16, then quantized); bf16's own rounding (0.4 %) adds to int8's."""
    from trainer.precision import move_to
    from trainer.quantize import quantize_linear_weights

    model = _flux(tiny_model_of)
    move_to(model.transformer, torch.device("cpu"), torch.bfloat16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # as the recipe runs a bf16 step
        before = _velocity(model)
        quantize_linear_weights(model.transformer, model.quantizable_layers())
        after = _velocity(model)
    assert model.transformer.transformer_blocks[0].attn.to_q.weight.dtype == torch.bfloat16  # its compute dtype
    assert after.dtype == torch.bfloat16 and _relative_error(after, before) < 2 * RELATIVE_TOLERANCE


def test_a_lora_over_the_int8_layers_trains_and_the_base_weights_get_no_gradient(tiny_model_of):
    from trainer.lora import add_lora
    from trainer.quantize import quantize_linear_weights

    model = _flux(tiny_model_of)
    quantize_linear_weights(model.transformer, model.quantizable_layers())
    params = add_lora(model.transformer, model.lora_targets("transformer", "attention_ff"), 4, 4.0, 0.0)
    layer = model.transformer.transformer_blocks[0].attn.to_q
    assert type(layer).__name__ == "TorchaoLoraLinear"  # peft's LoRA layer over a torchao weight
    assert all(p.dtype == torch.float32 for p in params)
    named = dict(model.transformer.named_parameters())
    trained = {n for n, p in named.items() if p.requires_grad}
    assert trained and all(".lora_A." in n or ".lora_B." in n for n in trained)

    _velocity(model).pow(2).mean().backward()
    # lora_B starts at zero (the LoRA is a no-op at step 0), so its gradients are the ones that move first.
    assert all(named[n].grad is not None and named[n].grad.abs().sum() > 0 for n in trained if ".lora_B." in n)
    assert all(p.grad is None for n, p in named.items() if n not in trained)  # nothing reaches the base weights
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    optimizer.step()
    optimizer.zero_grad()
    _velocity(model).pow(2).mean().backward()
    assert all(named[n].grad.abs().sum() > 0 for n in trained)  # after one step lora_A trains too


def test_8_bit_base_weights_need_a_cuda_gpu_and_torchao(monkeypatch):
    import importlib.util

    from trainer.model_check import check_quantization
    from trainer.models.errors import ModelLoadError
    from trainer.quantize import quantize_denoiser

    assert check_quantization("8", "cuda") == [] and check_quantization("none", "cpu") == []
    (problem,) = check_quantization("8", "cpu")
    assert problem.option == "quantization_bit" and "needs a CUDA GPU" in problem.message
    with pytest.raises(ModelLoadError, match="needs a CUDA GPU, and this run trains on the CPU"):
        quantize_denoiser(object(), torch.device("cpu"), torch.bfloat16)  # refused before the model is touched
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "torchao" else find_spec(name, *args))
    (problem,) = check_quantization("8", "cuda")
    assert problem.message == ("quantization_bit 8 (8-bit base weights) needs the torchao package, which is not "
                               "installed")
    assert problem.hint == "pip install torchao on the training machine, or set quantization_bit to none"


@pytest.mark.parametrize("family, bits, message", [
    ("sdxl", "8", "quantization_bit: 8 bits work with Flux.1 and Stable Diffusion 3/3.5 only, and the base model is SDXL "
                  "(set quantization_bit to none)"),
    ("flux", "4", "quantization_bit: 4 bits work with Language model (LLM) only, and the base model is Flux.1 "
                  "(set quantization_bit to none or 8)"),
])
def test_each_family_takes_only_its_own_bits(tmp_path, family, bits, message):
    _config, problems = validate_mapping({"base_model": str(tmp_path), "train_data_dir": str(tmp_path),
                                          "output_dir": str(tmp_path / "run"), "model_family": family,
                                          "quantization_bit": bits}, check_paths=False)
    assert message in [str(p).removeprefix("config: ") for p in problems]


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA GPU the run would start")
def test_8_bit_base_weights_are_refused_on_the_cpu_before_anything_is_written(tmp_path, tiny_model_of):
    config = write_config(tmp_path / "config.yaml", tiny_model_of("flux").diffusers_dir,
                          make_dataset(tmp_path / "data", "txt"), tmp_path / "run", quantization_bit="8")
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("quantization_bit: quantization_bit 8 (8-bit base weights) needs a CUDA GPU, and this run trains on "
            "the CPU (set quantization_bit to none, or train on a target with an NVIDIA GPU)") in result.stderr
    assert not (tmp_path / "run").exists()
