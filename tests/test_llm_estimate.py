"""The memory estimate of a language-model run, from the model's own config.json (torch-free)."""

from __future__ import annotations

import pytest

from trainer.config import validate_mapping
from trainer.estimate import estimate_llm_memory

# Llama-3-8B's config.json, the sizes that matter.
LLAMA_3_8B = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
              "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": False}


def _config(tmp_path, **values):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "x"}\n', encoding="utf-8")
    config, problems = validate_mapping({"base_model": str(tmp_path), "dataset_path": str(data),
                                         "output_dir": str(tmp_path / "run"), **values}, check_paths=False)
    assert config is not None, problems
    return config


@pytest.mark.parametrize("settings, low, high", [
    ({"lora_rank": 16, "mixed_precision": "bf16"}, 17, 25),  # reports: ~20 GB without checkpointing at 1024 tokens
    ({"lora_rank": 16, "mixed_precision": "bf16", "gradient_checkpointing": True}, 15, 20),
    ({"lora_rank": 16, "quantization_bit": "4", "gradient_checkpointing": True}, 6, 11),  # QLoRA: ~8-10 GB
])
def test_an_8b_model_at_rank_16_in_bf16_and_4_bit(tmp_path, settings, low, high):
    estimate = estimate_llm_memory(_config(tmp_path, cutoff_len=1024, batch_size=1, **settings), LLAMA_3_8B)
    assert low <= estimate.total_gb <= high, estimate
    assert "8.0B parameters" in estimate.source


def test_the_estimate_grows_with_tokens_and_rank(tmp_path):
    small = estimate_llm_memory(_config(tmp_path, cutoff_len=512, lora_rank=8), LLAMA_3_8B)
    longer = estimate_llm_memory(_config(tmp_path, cutoff_len=2048, lora_rank=8), LLAMA_3_8B)
    wider = estimate_llm_memory(_config(tmp_path, cutoff_len=512, lora_rank=64), LLAMA_3_8B)
    assert longer.parts["activations"] > 3 * small.parts["activations"]
    assert wider.parts["LoRA training state"] == pytest.approx(8 * small.parts["LoRA training state"], rel=0.05)
    assert wider.parts["model weights"] == small.parts["model weights"]
