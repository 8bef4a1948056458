"""Training options that change the code path, exercised through the real CLI on tiny models."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from tests.cli_helpers import trainer_cli
from tests.test_train_e2e import make_dataset, write_config

pytestmark = pytest.mark.slow


def test_text_encoder_lora_checkpointing_min_snr_adafactor_uncached(tmp_path, tiny_model):
    data = make_dataset(tmp_path / "data", "txt")
    out = tmp_path / "run"
    config = write_config(
        tmp_path / "config.yaml", tiny_model / "diffusers", data, out, max_train_steps=3, sample_every_n_steps=0,
        train_text_encoder=True, text_encoder_lr=5e-4, gradient_checkpointing=True, min_snr_gamma=5,
        optimizer="Adafactor", lr_scheduler="cosine_with_restarts", lr_scheduler_num_cycles=2, clip_skip=2,
        shuffle_caption=True, keep_tokens=1, cache_latents="off", num_workers=1, gradient_accumulation_steps=2,
        lora_target="all", mixed_precision="bf16")
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    with safe_open(out / "run.safetensors", "pt") as lora:
        keys = list(lora.keys())
        metadata = lora.metadata()
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_mlp_fc1") for k in keys)
    assert any("resnets_0_conv1" in k for k in keys)  # lora_target: all reaches the convolutions
    assert metadata["ss_optimizer"] == "Adafactor" and metadata["ss_clip_skip"] == "2"
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    # 4 images at batch 2 with 2 accumulation steps: 1 optimizer step per epoch.
    assert metrics[-1]["epoch"] == 3


def test_sd2_v_prediction_model_trains(tmp_path, tiny_model_of):
    data = make_dataset(tmp_path / "data", "jsonl")
    out = tmp_path / "run"
    config = write_config(tmp_path / "config.yaml", tiny_model_of("sd2").single_file, data, out,
                          max_train_steps=3, prediction_type="v_prediction", sample_every_n_steps=2,
                          sample_at_end=False)
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "(sd2, v_prediction prediction)" in (out / "train.log").read_text()
    with safe_open(out / "run.safetensors", "pt") as lora:
        metadata = lora.metadata()
    assert metadata["ss_base_model_version"] == "sd_v2_v"
    assert metadata["modelspec.architecture"] == "stable-diffusion-v2-768-v/lora"
    # sample_at_end: false keeps to the every-2-steps samples (none of the finished LoRA at step 3).
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["step-00000002_p00.png"]


def test_sdxl_v_prediction_with_only_the_second_text_encoder_trained(tmp_path, tiny_model_of):
    """A v-pred SDXL model (NoobAI-XL V-Pred and the like) with a LoRA on OpenCLIP alone, at its own rate."""
    data = make_dataset(tmp_path / "data", "txt")
    out = tmp_path / "run"
    config = write_config(tmp_path / "config.yaml", tiny_model_of("sdxl").single_file, data, out,
                          max_train_steps=2, prediction_type="v_prediction", sample_every_n_steps=2,
                          train_text_encoder=False, train_text_encoder_2=True, text_encoder_2_lr=3e-4)
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    log = (out / "train.log").read_text()
    assert "(sdxl, v_prediction prediction)" in log and "layers of unet, text_encoder_2:" in log
    with safe_open(out / "run.safetensors", "pt") as lora:
        metadata = lora.metadata()
        prefixes = {k.split("_text_model")[0] if k.startswith("lora_te") else "lora_unet" for k in lora.keys()}
    assert prefixes == {"lora_unet", "lora_te2"}  # CLIP-L stays frozen
    assert metadata["modelspec.prediction_type"] == "v" and metadata["ss_v_parameterization"] == "True"
    assert metadata["ss_base_model_version"] == "sdxl_base_v1-0"
    assert list((out / "samples").glob("*.png"))


# The test extra installs prodigyopt and schedulefree (their refusals are checked in-process in
# tests/test_training_options.py); bitsandbytes is not installed on CPU machines.
def test_missing_optimizer_package_is_explained(tmp_path, tiny_model):
    import importlib.util
    if importlib.util.find_spec("bitsandbytes"):
        pytest.skip("bitsandbytes is installed here")
    optimizer, message = "AdamW8bit", "optimizer AdamW8bit needs the bitsandbytes package"
    data = make_dataset(tmp_path / "data", "csv")
    config = write_config(tmp_path / "config.yaml", tiny_model / "tiny-sd-v1.safetensors", data, tmp_path / "run",
                          optimizer=optimizer)
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 2
    assert message in result.stderr and "optimizer: AdamW" in result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written
