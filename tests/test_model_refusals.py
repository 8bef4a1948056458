"""Base-model refusals: every file that is not a trainable SD 1.x/2.x model is refused with its path,
what it is and what to do, before any weight is loaded.
"""

from __future__ import annotations

import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from safetensors.torch import load_file, save_file  # noqa: E402

from tests.conftest import TinyFamilyModel  # noqa: E402
from trainer.models import ModelLoadError, load_sd_model  # noqa: E402


@pytest.fixture
def tiny(tiny_model_of) -> TinyFamilyModel:
    """The tiny SD 1.x model, shared with the rest of the session."""
    return tiny_model_of("sd1")


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickle_files_are_refused(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"not even read")
    with pytest.raises(ModelLoadError) as caught:
        load_sd_model(path)
    assert str(path) in caught.value.message
    assert "arbitrary code" in str(caught.value)
    assert "allow_pickle" in caught.value.hint and ".safetensors" in caught.value.hint


def test_a_lora_is_not_a_base_model(tmp_path):
    path = tmp_path / "my_lora.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32),
               "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(32, 4),
               "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(4.0)}, str(path))
    with pytest.raises(ModelLoadError, match="looks like a LoRA, not a base model"):
        load_sd_model(path)


@pytest.mark.parametrize(("keys", "expected"), [
    (["conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight",
      "model.diffusion_model.input_blocks.0.0.weight"], "SDXL model without its OpenCLIP bigG text encoder"),
    (["encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight"], "standalone VAE"),
    (["down_blocks.0.resnets.0.conv1.weight", "conv_in.weight"], "diffusers-format component"),
    (["model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale"], "is a Flux.1 transformer file, not a Stable Diffusion"),
    (["model.diffusion_model.some_new_block.weight"], "not a Stable Diffusion UNet"),
    (["model.diffusion_model.input_blocks.0.0.weight"], "no text encoder"),
])
def test_files_that_are_not_sd_base_models_are_refused(tmp_path, keys, expected):
    path = tmp_path / "thing.safetensors"
    save_file({key: torch.zeros(1) for key in keys}, str(path))
    with pytest.raises(ModelLoadError, match=expected):
        load_sd_model(path)


def test_checkpoint_with_a_missing_weight_is_refused_with_the_path(tiny, tmp_path):
    state = load_file(str(tiny.single_file))
    del state["cond_stage_model.transformer.text_model.final_layer_norm.weight"]
    del state["first_stage_model.decoder.conv_in.weight"]
    path = tmp_path / "broken.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelLoadError, match="lacks an expected weight") as caught:
        load_sd_model(path)
    assert str(path) in caught.value.message and caught.value.hint


def test_inpainting_unet_is_refused(tiny, tmp_path):
    state = load_file(str(tiny.single_file))
    conv_in = state["model.diffusion_model.input_blocks.0.0.weight"]
    state["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(conv_in.shape[0], 9, *conv_in.shape[2:])
    path = tmp_path / "inpainting.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelLoadError, match="9 input channels"):
        load_sd_model(path)


def test_damaged_safetensors_file_is_refused(tiny, tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(tiny.single_file.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="could not be read") as caught:
        load_sd_model(path)
    assert "incomplete" in caught.value.hint


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "model.safetensors"
    with pytest.raises(ModelLoadError) as caught:
        load_sd_model(missing)
    assert str(missing) in str(caught.value)
    assert "base_model" in caught.value.hint


def test_folder_without_model_index(tmp_path, tiny):
    shutil.copy(tiny.single_file, tmp_path / "model.safetensors")
    with pytest.raises(ModelLoadError, match="no model_index.json") as caught:
        load_sd_model(tmp_path)
    assert "model.safetensors" in caught.value.hint


def test_unknown_file_type(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("hello")
    with pytest.raises(ModelLoadError, match="unsupported model file type"):
        load_sd_model(path)


def test_diffusers_folder_with_only_pickle_weights_is_refused(tmp_path, tiny):
    folder = tmp_path / "model"
    shutil.copytree(tiny.diffusers_dir, folder)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="arbitrary code") as caught:
        load_sd_model(folder)
    assert "allow_pickle" in caught.value.hint


def test_diffusers_folder_prediction_type(tmp_path, tiny):
    folder = tmp_path / "model"
    shutil.copytree(tiny.diffusers_dir, folder)
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace('"epsilon"', '"v_prediction"'))
    assert load_sd_model(folder).prediction_type == "v_prediction"
    overridden = load_sd_model(folder, prediction_type="epsilon")
    assert overridden.prediction_type == overridden.noise_scheduler.config.prediction_type == "epsilon"
    with pytest.raises(ValueError):
        load_sd_model(folder, prediction_type="sample")


def test_sdxl_diffusers_folder_is_not_loaded_as_sd(tmp_path):
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    with pytest.raises(ModelLoadError, match="an SDXL base model, not a Stable Diffusion 1.x/2.x model"):
        load_sd_model(tmp_path)


def test_model_load_error_fields():
    error = ModelLoadError("what went wrong", "what to do")
    assert (str(error), error.message, error.hint) == ("what went wrong", "what went wrong", "what to do")
    assert ModelLoadError("only a message").hint == ""
