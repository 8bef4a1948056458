"""Config loading and validation as a user meets it: the seed's config, typos, bounds, paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainer.config import OPTIONS, config_to_yaml, load_config, schema_json, validate_mapping

ROOT = Path(__file__).resolve().parents[1]

SEED_CONFIG = """train_data_dir: "./data/style_train"
metadata_path: "./data/style_train/metadata.csv"
base_model: "./models/Stable-diffusion/v1-5-pruned.safetensors"
lora_rank: 8
batch_size: 4
epochs: 10
learning_rate: 2e-4
output_dir: "./output/my_style_lora"
save_steps: 100
"""


def _seed_layout(root: Path) -> Path:
    (root / "data/style_train").mkdir(parents=True)
    (root / "data/style_train/metadata.csv").write_text("filename,prompt\n", encoding="utf-8")
    (root / "models/Stable-diffusion").mkdir(parents=True)
    (root / "models/Stable-diffusion/v1-5-pruned.safetensors").write_bytes(b"")
    config = root / "configs/my_lora_config.yaml"
    config.parent.mkdir()
    config.write_text(SEED_CONFIG, encoding="utf-8")
    return config


def test_seed_config_is_valid_as_written(tmp_path, monkeypatch):
    config_path = _seed_layout(tmp_path)
    monkeypatch.chdir(tmp_path)  # the seed runs from the project folder
    config, problems = load_config(config_path)
    assert config is not None, [str(p) for p in problems]
    assert config.learning_rate == pytest.approx(2e-4)  # YAML reads 2e-4 as text; we read a number
    assert config.lora_rank == 8 and config.batch_size == 4 and config.epochs == 10 and config.save_steps == 100
    assert config.train_data_dir == str(tmp_path / "data/style_train")
    assert config.output_dir == str(tmp_path / "output/my_style_lora")
    assert config.resolved_output_name == "my_style_lora"
    # Paths found from the working folder rather than the config's folder are pointed out.
    assert any(p.severity == "warning" and "current folder" in p.message for p in problems)


def test_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    config_path = _seed_layout(tmp_path)
    moved = tmp_path / "my_lora_config.yaml"
    moved.write_text(config_path.read_text())
    monkeypatch.chdir("/")
    config, problems = load_config(moved)
    assert config is not None and not problems
    assert config.base_model == str(tmp_path / "models/Stable-diffusion/v1-5-pruned.safetensors")


def test_every_problem_is_reported_at_once_with_line_and_hint(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train_data_dir: nowhere\nlerning_rate: 1e-4\nlora_rank: 0\nlearning_rate: 2\n"
                    "optimizer: adam\nmixed_precision: fp8\nbatch_size: four\n", encoding="utf-8")
    config, problems = load_config(path)
    assert config is None
    text = "\n".join(str(p) for p in problems)
    assert f"{path}:2: lerning_rate: is not a known option (did you mean `learning_rate`?)" in text
    assert f"{path}:3: lora_rank: must be >= 1 and <= 1024 (got 0)" in text
    assert f"{path}:4: learning_rate: must be > 0 and <= 1 (got 2)" in text
    assert "optimizer: 'adam' is not one of: AdamW, AdamW8bit, Adafactor, SGD, Prodigy" in text
    assert "mixed_precision: 'fp8' is not one of" in text
    assert "batch_size: must be a whole number (got 'four')" in text
    assert "base_model: is missing" in text and "output_dir: is missing" in text
    assert f"{path}:1: train_data_dir: {tmp_path / 'nowhere'} does not exist" in text


def test_a_datastore_path_copied_from_vcenter_is_named_as_such_with_what_to_write(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train_data_dir: data\nbase_model: '[vsanDatastore] lora/models/base.safetensors'\n"
                    "output_dir: out\n", encoding="utf-8")
    (tmp_path / "data").mkdir()
    config, problems = load_config(path)
    assert config is None and len(problems) == 1
    text = str(problems[0])
    assert text.startswith(f"{path}:2: base_model: '[vsanDatastore] lora/models/base.safetensors' is a datastore path")
    assert "give the path where this computer or the VM mounts the datastore" in text
    # A folder whose name starts with a bracket is still a path where there is one.
    (tmp_path / "[v2] models").mkdir()
    (tmp_path / "[v2] models/base.safetensors").write_bytes(b"")
    config, problems = validate_mapping({"train_data_dir": "data", "output_dir": "o",
                                         "base_model": "[v2] models/base.safetensors"}, tmp_path)
    assert not [p for p in problems if p.option == "base_model"]


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lora_rank: 8\nbatch_size: [4\nepochs: 3\n", encoding="utf-8")
    config, problems = load_config(path)
    assert config is None and len(problems) == 1
    assert "is not valid YAML" in problems[0].message and problems[0].line is not None


def test_choices_are_case_insensitive_and_aliases_migrate(tmp_path):
    config, problems = validate_mapping({"train_data_dir": str(tmp_path), "base_model": str(tmp_path),
                                         "output_dir": str(tmp_path / "out"), "optimizer": "adamw",
                                         "network_dim": 16, "network_alpha": 8}, tmp_path)
    assert config is not None, problems
    assert config.optimizer == "AdamW" and config.lora_rank == 16 and config.lora_alpha == 8
    assert any("network_dim" in note for note in config.migration_notes)


def test_cross_field_rules(tmp_path):
    base = {"train_data_dir": str(tmp_path), "base_model": str(tmp_path), "output_dir": str(tmp_path / "o")}
    config, problems = validate_mapping({**base, "resolution": 500}, tmp_path)
    assert config is None and any(p.option == "resolution" and "multiple of 8" in p.message for p in problems)
    config, problems = validate_mapping({**base, "sample_every_n_steps": 10}, tmp_path)
    assert config is not None
    assert any(p.severity == "warning" and p.option == "sample_every_n_steps" for p in problems)


def test_resolved_yaml_round_trips_every_option(tmp_path):
    base = {"train_data_dir": str(tmp_path), "base_model": str(tmp_path), "output_dir": str(tmp_path / "o"),
            "sample_prompts": ["a cat, b: c", "it's \"quoted\""], "learning_rate": 3e-4}
    config, _ = validate_mapping(base, tmp_path)
    text = config_to_yaml(config, "header line")
    assert text.startswith("# header line\nschema_version: 1\n")
    raw = yaml.safe_load(text)
    assert set(raw) == {o.name for o in OPTIONS} | {"schema_version"}
    again, problems = validate_mapping(raw, tmp_path)
    assert again is not None and not [p for p in problems if p.severity == "error"]
    assert dict(again) == dict(config)


def test_schema_describes_every_option():
    schema = schema_json()
    for option in schema["options"]:
        assert option["help"] and option["group"] in schema["groups"]
        if option["type"] == "choice":
            assert option["default"] in [c["value"] for c in option["choices"]]
            assert all(c["description"] for c in option["choices"])
        if option["type"] in ("int", "float") and not option["nullable"] and option["default"] is not None:
            assert "minimum" in option and "maximum" in option


def test_cli_schema_and_validate(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trainer", "schema", "--json"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    names = {o["name"] for o in json.loads(result.stdout)["options"]}
    assert {"train_data_dir", "metadata_path", "base_model", "lora_rank", "batch_size", "epochs", "learning_rate",
            "output_dir", "save_steps"} <= names
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora_rank: -1\nepochs: 0\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "trainer", "validate", "--config", str(bad)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "lora_rank: must be >= 1 and <= 1024 (got -1)" in result.stderr and "epochs: must be >= 1 and <= 100000 (got 0)" in result.stderr
    assert "train_data_dir: is missing" in result.stderr


def test_unquoted_yaml_off_and_no_mean_the_choices(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"train_data_dir: {tmp_path}\nbase_model: {tmp_path}\noutput_dir: out\n"
                    "cache_latents: off\nmixed_precision: no\n", encoding="utf-8")
    config, problems = load_config(path)
    assert config is not None, problems
    assert config.cache_latents == "off" and config.mixed_precision == "no"


def test_kohya_style_cache_latents_true_and_false(tmp_path):
    path = tmp_path / "c.yaml"
    for text, expected in (("true", "disk"), ("false", "off"), ('"True"', "disk"), ("memory", "memory")):
        path.write_text(f"train_data_dir: {tmp_path}\nbase_model: {tmp_path}\noutput_dir: out\n"
                        f"cache_latents: {text}\n", encoding="utf-8")
        config, problems = load_config(path)
        assert config is not None, (text, problems)
        assert config.cache_latents == expected, text


def test_a_small_resolution_moves_the_default_bucket_range_with_a_notice(tmp_path):
    base = {"train_data_dir": str(tmp_path), "base_model": str(tmp_path), "output_dir": str(tmp_path / "o")}
    config, problems = validate_mapping({**base, "resolution": 128}, tmp_path)
    assert config is not None, problems
    assert config.min_bucket_reso == 64 and config.max_bucket_reso == 1024
    [notice] = [p for p in problems if p.option == "min_bucket_reso"]
    assert notice.severity == "info" and "set to 64" in notice.message
    config, problems = validate_mapping({**base, "resolution": 2048}, tmp_path)
    assert config is not None and config.max_bucket_reso == 4096
    # A range the user set stays theirs: the conflict is an error, as before.
    config, problems = validate_mapping({**base, "resolution": 128, "min_bucket_reso": 256}, tmp_path)
    assert config is None and any(p.option == "resolution" and "outside the bucket range" in p.message
                                  for p in problems)

