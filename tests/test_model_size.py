"""The memory estimate counts a base model's parameters from its own files' headers, per part, for
every image family's tiny model, as a diffusers folder and as a single file."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from safetensors import safe_open

from trainer.config import validate_mapping
from trainer.estimate import estimate_memory
from trainer.model_family import FAMILIES_BY_ID
from trainer.model_size import parts_params_m

FOLDER_PARTS = {"unet": "denoiser", "transformer": "denoiser", "vae": "vae", "text_encoder": "text_encoder",
                "text_encoder_2": "text_encoder_2", "text_encoder_3": "text_encoder_3"}


def _counted_by_safetensors(folder: Path) -> dict[str, float]:
    """Millions of parameters per part, read by the safetensors library itself."""
    counts: dict[str, float] = {}
    for subfolder, part in FOLDER_PARTS.items():
        for file in (folder / subfolder).glob("*.safetensors"):
            with safe_open(file, "pt") as weights:
                total = sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())
            counts[part] = counts.get(part, 0.0) + total / 1e6
    return counts


def _config(tmp_path: Path, family: str, **values):
    config, problems = validate_mapping({"base_model": str(tmp_path), "train_data_dir": str(tmp_path),
                                         "output_dir": str(tmp_path / "run"), "model_family": family, **values},
                                        check_paths=False)
    assert config is not None, [str(p) for p in problems]
    return config


def test_every_part_is_counted_from_the_files_and_the_estimate_uses_the_counts(family_model, tmp_path):
    expected = _counted_by_safetensors(family_model.diffusers_dir)
    assert set(expected) >= {"denoiser", "vae", "text_encoder"}
    assert parts_params_m(family_model.diffusers_dir) == expected
    if family_model.single_file is not None:  # the same model in one file: the same parts and counts
        single = parts_params_m(family_model.single_file)
        assert single.keys() == expected.keys()
        assert all(math.isclose(single[p], expected[p]) for p in expected), (single, expected)
    config = _config(tmp_path, family_model.family)
    full_size = estimate_memory(config, family_model.family)
    tiny = estimate_memory(config, family_model.family, model=family_model.diffusers_dir)
    # A tiny model's weights are megabytes, where the family's full-size figures say gigabytes.
    assert tiny.parts["model weights"] < 0.05 < full_size.parts["model weights"]
    assert tiny.total_gb < full_size.total_gb
    assert f"counted in {family_model.diffusers_dir.name}" in tiny.source
    assert FAMILIES_BY_ID[family_model.family].memory.source in tiny.source  # the rest is the family's


def test_a_second_variant_is_not_counted_twice_and_an_uncountable_part_keeps_the_familys_figure(tiny_model_of, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_of("sd1").diffusers_dir, folder)
    before = parts_params_m(folder)
    assert "weights of the denoiser, text encoder and VAE counted in model" in \
        estimate_memory(_config(tmp_path, "sd"), "sd", model=folder).source
    [unet] = (folder / "unet").glob("*.safetensors")
    shutil.copy(unet, unet.with_name("diffusion_pytorch_model.fp16.safetensors"))  # diffusers' fp16 variant beside it
    for file in (folder / "text_encoder").glob("*.safetensors"):
        file.rename(file.with_suffix(".bin"))  # only a pickle: not read, so not counted
    counted = parts_params_m(folder)
    assert counted["denoiser"] == before["denoiser"] and counted["vae"] == before["vae"]
    assert "text_encoder" not in counted
    # Without cached text-encoder outputs the text encoder stays on the GPU: its full-size 123 M parameters count.
    estimate = estimate_memory(_config(tmp_path, "sd", cache_text_encoder_outputs=False), "sd", model=folder)
    assert "weights of the denoiser and VAE counted in model" in estimate.source
    assert estimate.parts["model weights"] > 123e6 * 2 / 2 ** 30 - 0.01


def test_the_lora_and_activations_scale_with_a_smaller_denoiser(tiny_model_of, tmp_path):
    """A model whose denoiser is a fraction of its family's (a distilled or a tiny one) has that fraction
    of the family's LoRA layers and activations (the demo's estimate had 0.2 GB of activations at 64 px)."""
    model = tiny_model_of("sd1").diffusers_dir
    config = _config(tmp_path, "sd")
    family = estimate_memory(config, "sd")
    counted = estimate_memory(config, "sd", model=model)
    ratio = parts_params_m(model)["denoiser"] / FAMILIES_BY_ID["sd"].memory.params_m["denoiser"]
    assert ratio < 0.01
    assert math.isclose(counted.parts["activations"], round(family.parts["activations"] * ratio, 2), abs_tol=0.01)
    assert counted.parts["LoRA training state"] <= round(family.parts["LoRA training state"] * ratio, 2) + 0.01
    assert counted.parts["activations"] < family.parts["activations"]
    assert f"its LoRA and activations scaled with its denoiser ({ratio * 100:.2g}% of the family's)" in counted.source
