"""Importing kohya configs: mapped where we have the option, listed with a reason where not."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cli_helpers import trainer_cli
from trainer.config import validate_mapping
from trainer.config.kohya_import import import_kohya_file

FIXTURES = Path(__file__).parent / "fixtures"


def test_kohya_ss_gui_json(tmp_path):
    result = import_kohya_file(FIXTURES / "kohya_ss_lora.json")
    v = result.values
    assert v["base_model"] == "runwayml/stable-diffusion-v1-5" and v["lora_rank"] == 32 and v["lora_alpha"] == 16
    assert v["resolution"] == 768 and v["epochs"] == 10 and v["batch_size"] == 2 and v["seed"] == 1234
    assert v["optimizer"] == "AdamW8bit" and v["lr_scheduler"] == "cosine_with_restarts"
    assert v["lr_scheduler_num_cycles"] == 3 and v["keep_tokens"] == 1 and v["clip_skip"] == 2
    assert v["train_text_encoder"] is True and v["text_encoder_lr"] == 5e-05 and v["cache_latents"] == "disk"
    assert v["min_snr_gamma"] == 5 and v["mixed_precision"] == "bf16" and v["save_every_n_epochs"] == 1
    assert "lr_warmup" in result.not_mapped and "10%" in result.not_mapped["lr_warmup"]
    assert v["multires_noise_iterations"] == 6  # kohya's name, read as it is
    assert result.not_mapped["bucket_no_upscale"] == "no counterpart in LoRA Studio"
    assert "xformers" in result.not_mapped and "vae" not in result.not_mapped  # empty values are not news
    # Everything that was mapped passes our validator (paths aside).
    config, problems = validate_mapping(v, tmp_path, check_paths=False)
    assert config is not None, [str(p) for p in problems]


def test_sd_scripts_toml_with_sections(tmp_path):
    result = import_kohya_file(FIXTURES / "sd_scripts_lora.toml")
    v = result.values
    assert v["prediction_type"] == "v_prediction" and v["train_text_encoder"] is False
    assert v["optimizer"] == "Adafactor" and v["lr_warmup_steps"] == 100 and v["max_train_steps"] == 3000
    assert v["caption_extension"] == ".caption" and v["save_steps"] == 500 and v["sample_every_n_steps"] == 250
    assert {"huber_c", "loss_type", "sample_sampler"} <= set(result.not_mapped)
    assert any("SD 2.x is detected" in note for note in result.notes)
    config, problems = validate_mapping(v, tmp_path, check_paths=False)
    assert config is not None, [str(p) for p in problems]


def test_cli_writes_yaml_that_names_what_was_left_out(tmp_path):
    out = tmp_path / "imported.yaml"
    result = trainer_cli("import-kohya", str(FIXTURES / "kohya_ss_lora.json"), "--output", str(out))
    assert result.returncode == 0
    text = out.read_text()
    assert "#   lr_warmup: warm-up of 10% of the steps" in text
    assert yaml.safe_load(text)["lora_rank"] == 32
    assert "not imported: bucket_no_upscale" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    result = trainer_cli("import-kohya", str(bad))
    assert result.returncode == 2 and "cannot be imported" in result.stderr
