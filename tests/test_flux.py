"""Flux.1's own parts: the kohya file in Black Forest Labs' layout (what sd-scripts writes and
ComfyUI loads), its fused layers equal to the split ones, and flow-matching's noise levels."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import load_file

from tests.cli_helpers import trainer_cli
from tests.test_train_e2e import make_dataset, write_config

# The layers with weights in BFL's DoubleStreamBlock and SingleStreamBlock (flux/modules/layers.py):
# ComfyUI maps `lora_unet_<name with _>` onto `diffusion_model.<name>.weight` for these names.
BFL_DOUBLE = ("img_mod.lin", "img_attn.qkv", "img_attn.proj", "img_mlp.0", "img_mlp.2",
              "txt_mod.lin", "txt_attn.qkv", "txt_attn.proj", "txt_mlp.0", "txt_mlp.2")
BFL_SINGLE = ("linear1", "linear2", "modulation.lin")
# Which diffusers layers each fused BFL layer stacks, in order.
FUSED = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
         "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
         "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")}


@pytest.fixture(scope="module")
def flux_run(trained_run_of):
    """The session's short Flux run: `all` layers and CLIP-L trained, files in fp32 (tests/conftest.py)."""
    return trained_run_of("flux")


def _bfl_module(kohya: str) -> str:
    """`lora_unet_double_blocks_0_img_attn_qkv` -> `double_blocks.0.img_attn.qkv` (by BFL's own names)."""
    match = re.fullmatch(r"lora_unet_(double|single)_blocks_(\d+)_(.+)", kohya)
    assert match, kohya
    names = BFL_DOUBLE if match[1] == "double" else BFL_SINGLE
    name = next((n for n in names if n.replace(".", "_") == match[3]), None)
    assert name is not None, f"{kohya} is no layer of BFL's Flux.1 blocks"
    return f"{match[1]}_blocks.{match[2]}.{name}"


def test_the_kohya_file_uses_bfls_layer_names_and_metadata(flux_run):
    from safetensors import safe_open

    with safe_open(flux_run / "run.safetensors", "pt") as lora:
        keys = list(lora.keys())
        metadata = lora.metadata()
    modules = {k.rsplit(".", 2)[0] for k in keys if k.endswith(".lora_down.weight")}
    unet = {m for m in modules if m.startswith("lora_unet_")}
    # `all` reaches every layer of both kinds of block, each named as BFL (and so ComfyUI) names it.
    assert {_bfl_module(m).split(".", 2)[2] for m in unet} == set(BFL_DOUBLE) | set(BFL_SINGLE)
    assert all(m.startswith(("lora_unet_", "lora_te1_text_model_encoder_layers_")) for m in modules)
    assert metadata["modelspec.architecture"] == "flux-1-dev/lora" and metadata["ss_base_model_version"] == "flux1"


def test_a_fused_layer_changes_exactly_as_its_split_layers(flux_run):
    """ΔW of e.g. img_attn.qkv (up @ down · alpha/rank) equals the q, k and v ΔWs stacked, as the
    diffusers-format file (which diffusers loads into the split layers) has them."""
    kohya = load_file(flux_run / "run.safetensors")
    split = load_file(flux_run / "diffusers" / "pytorch_lora_weights.safetensors")  # alpha/rank folded in
    checked = 0
    for block, fused in (("double_blocks.0", "img_attn.qkv"), ("double_blocks.0", "txt_attn.qkv"),
                         ("single_blocks.0", "linear1")):
        name = f"lora_unet_{block}_{fused}".replace(".", "_")
        down, up = kohya[f"{name}.lora_down.weight"], kohya[f"{name}.lora_up.weight"]
        delta = up @ down * (kohya[f"{name}.alpha"] / down.shape[0])
        prefix = ("transformer.transformer_blocks.0." if block.startswith("double")
                  else "transformer.single_transformer_blocks.0.")
        parts = [split[f"{prefix}{p}.lora_B.weight"] @ split[f"{prefix}{p}.lora_A.weight"] for p in FUSED[fused]]
        assert torch.allclose(delta, torch.cat(parts, dim=0), atol=1e-6), name
        assert delta.abs().max() > 0  # trained, so the check means something
        checked += 1
    assert checked == 3


def test_noise_levels_shift_towards_noise_for_larger_images(tiny_model_of):
    """Flux.1-dev's resolution-dependent shift: the same draws give higher noise levels at 1024 px than at 256 px."""
    from trainer.models.family import load_base_model

    model = load_base_model(tiny_model_of("flux").diffusers_dir)
    levels = {}
    for side in (32, 128):  # latents of 256 and 1024 px images
        generator = torch.Generator().manual_seed(0)
        levels[side] = model.sample_timesteps(torch.zeros(256, 16, side, side), generator) / 1000
    assert 0 < levels[32].min() and levels[128].max() < 1
    assert (levels[128] > levels[32]).all()
    latents, noise = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    noisy, target = model.noisy_and_target(latents, noise, torch.tensor([0.0, 1000.0]))
    assert torch.equal(noisy[0], latents[0]) and torch.equal(noisy[1], noise[1])  # the straight mix's two ends
    assert torch.equal(target, noise - latents)


def test_the_kohya_file_maps_fully_in_comfyuis_rules_onto_the_split_files(flux_run, tiny_model_of):
    """Every module of the trained file (`all` + CLIP-L) reaches a weight of Flux.1 as ComfyUI loads
    it from the split files, and each patch has that weight's shape (fused layers included)."""
    from tests.loader_rules.comfyui import comfyui_targets, comfyui_unmapped
    from tests.loader_rules.common import flux_checkpoint_keys
    from tests.test_lora_loader_rules import _shapes

    split = tiny_model_of("flux").diffusers_dir.parent / "split"
    transformer, clip_l = _shapes(split / "flux1-tiny-dev.safetensors"), _shapes(split / "clip_l.safetensors")
    base = dict(zip(flux_checkpoint_keys(transformer, clip_l), [*transformer.values(), *clip_l.values()]))
    lora = _shapes(flux_run / "run.safetensors")
    assert comfyui_unmapped(lora, base, "flux") == []
    targets = comfyui_targets(lora, base, "flux")
    assert any(t.key.startswith("clip_l.") for t in targets.values())
    assert any(t.key.endswith("double_blocks.0.img_attn.qkv.weight") for t in targets.values())
    for module, target in targets.items():
        weight = base[target.key]
        down, up = lora[f"{module}.lora_down.weight"], lora[f"{module}.lora_up.weight"]
        assert up[0] == weight[0] and down[1:] == weight[1:] and down[0] == up[1], (module, down, up, weight)


def test_single_blocks_trains_every_layer_of_the_single_stream_blocks_only(tiny_model_of, tmp_path):
    from trainer.models.family import load_base_model

    model = load_base_model(tiny_model_of("flux").diffusers_dir)
    targets = model.lora_targets("transformer", "single_blocks")
    assert targets and all(t.startswith("single_transformer_blocks.") for t in targets)
    assert {t.split(".", 2)[2] for t in targets} == {"attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp", "proj_out",
                                                     "norm.linear"}
    # On a family without single-stream blocks the choice is refused before anything loads.
    data = make_dataset(tmp_path / "data", "txt")
    config = write_config(tmp_path / "sd.yaml", tiny_model_of("sd1").diffusers_dir, data, tmp_path / "run",
                          lora_target="single_blocks")
    result = trainer_cli("validate", "--config", str(config), "--no-images")
    assert result.returncode == 2
    assert "lora_target: single_blocks is for Flux.1 only" in result.stdout + result.stderr
