"""Editing a config's YAML keeps the user's comments, order and layout."""

from __future__ import annotations

import yaml

from trainer.config.yaml_edit import update_yaml_text

TEXT = """# My style LoRA, trained on the studio's VM
train_data_dir: "./data/style_train"   # the designers' picks
learning_rate: 2e-4  # lower than kohya's default

# sampling
sample_prompts:
  - a cat, oil painting
  - a dog
lora_rank: 8
"""


def test_nothing_changed_means_the_same_bytes():
    assert update_yaml_text(TEXT, yaml.safe_load(TEXT)) == TEXT


def test_changed_value_keeps_its_comment_and_everything_else():
    values = yaml.safe_load(TEXT)
    values["lora_rank"] = 16
    values["train_data_dir"] = "./data/other"
    out = update_yaml_text(TEXT, values)
    assert "train_data_dir: ./data/other  # the designers' picks\n" in out
    assert "lora_rank: 16\n" in out
    assert out.replace("train_data_dir: ./data/other  # the designers' picks", "").replace("lora_rank: 16", "") == \
        TEXT.replace('train_data_dir: "./data/style_train"   # the designers\' picks', "").replace("lora_rank: 8", "")
    assert yaml.safe_load(out) == values


def test_lists_added_and_removed_keys():
    values = yaml.safe_load(TEXT)
    values["sample_prompts"] = ["a bird"]
    del values["learning_rate"]
    values["epochs"] = 3
    out = update_yaml_text(TEXT, values)
    assert yaml.safe_load(out) == values
    assert "# sampling\nsample_prompts:\n- a bird\nlora_rank: 8\n" in out
    assert out.startswith("# My style LoRA") and out.endswith("epochs: 3\n")
    assert "learning_rate" not in out


def test_empty_or_broken_text_gets_a_fresh_document():
    assert update_yaml_text("", {"a": 1}) == "a: 1\n"
    assert yaml.safe_load(update_yaml_text("[1, 2", {"a": [1]})) == {"a": [1]}
