"""The memory estimate of a Flux.1-dev run and which settings fit which GPU (torch-free), checked against
a hand computation with FLUX.1-dev's real sizes."""

from __future__ import annotations

import pytest

from trainer.config import validate_mapping
from trainer.estimate import SAMPLES_PART, estimate_llm_memory, estimate_memory

GIB = 2 ** 30
# FLUX.1-dev's parameters (its configs: 19 double- and 38 single-stream blocks of width 3072).
TRANSFORMER, IN_BLOCK_LINEARS = 11_901e6, 11_834e6
T5_XXL, CLIP_L, VAE = 4_762e6, 123e6, 84e6
# LoRA parameters of rank 1 on the blocks' attention and feed-forward layers (in + out features of each).
ATTENTION_FF_PER_RANK = 4.09e6
# The family's constants that are not sizes: activations at 1024 px, batch 1, bf16; checkpointing keeps 35 %.
ACTIVATIONS_GB, CHECKPOINTED_GB, CUDA_CONTEXT_GB = 12.0, 12.0 * 0.35, 0.6
ADAMW_BYTES = 4 + 4 + 8  # fp32 weight, gradient, two moments


def _config(tmp_path, **values):
    config, problems = validate_mapping({"base_model": str(tmp_path), "train_data_dir": str(tmp_path),
                                         "output_dir": str(tmp_path / "run"), "model_family": "flux",
                                         "resolution": 1024, "batch_size": 1, "lora_rank": 16,
                                         "lora_target": "attention_ff", "mixed_precision": "bf16", **values},
                                        check_paths=False)
    assert config is not None, [str(p) for p in problems]
    return config


def _by_hand(weights_bytes: float, activations_gb: float) -> float:
    """Weights on the GPU + the rank-16 LoRA's AdamW state + activations + CUDA context, in GiB."""
    lora = ATTENTION_FF_PER_RANK * 16 * ADAMW_BYTES
    return (weights_bytes + lora) / GIB + activations_gb + CUDA_CONTEXT_GB


def test_flux_dev_fits_a_24_gb_gpu_with_checkpointing_and_8_bit_weights(tmp_path):
    """T5 and CLIP outputs and latents cached: only the transformer's weights stay on the GPU."""
    bf16 = _by_hand(TRANSFORMER * 2, ACTIVATIONS_GB)
    checkpointed = _by_hand(TRANSFORMER * 2, CHECKPOINTED_GB)
    # 1 byte for each weight of the blocks' linear layers, bf16 for the embedders and the output projection.
    eight_bit = _by_hand(IN_BLOCK_LINEARS + (TRANSFORMER - IN_BLOCK_LINEARS) * 2, CHECKPOINTED_GB)
    assert (round(bf16, 1), round(checkpointed, 1), round(eight_bit, 1)) == (35.7, 27.9, 16.9)

    estimate = estimate_memory(_config(tmp_path, gradient_checkpointing=True, quantization_bit="8"), "flux")
    assert estimate.total_gb == pytest.approx(eight_bit, abs=0.05)
    assert estimate.parts["model weights"] == pytest.approx(11.15, abs=0.01)  # 22.17 GB in bf16
    assert [(lever.label, lever.current) for lever in estimate.levers] == [
        ("bf16", False), ("+ gradient checkpointing", False), ("+ 8-bit base weights", True)]
    assert [lever.total_gb for lever in estimate.levers] == pytest.approx([bf16, checkpointed, eight_bit], abs=0.05)
    # SimpleTuner reports a bit more than 30 GB in bf16 and 18 GB with int8 weights (rank 16, every layer):
    everything = estimate_memory(_config(tmp_path, gradient_checkpointing=True, lora_target="all"), "flux")
    assert 25 < everything.levers[1].total_gb < 33 and 15 < everything.levers[2].total_gb < 20


def test_encoders_that_are_not_cached_stay_on_the_gpu_and_t5_is_never_trained(tmp_path):
    base = estimate_memory(_config(tmp_path), "flux").parts["model weights"]
    uncached = estimate_memory(_config(tmp_path, cache_text_encoder_outputs=False), "flux").parts["model weights"]
    assert uncached - base == pytest.approx((T5_XXL + CLIP_L) * 2 / GIB, abs=0.01)  # both in bf16
    no_latents = estimate_memory(_config(tmp_path, cache_latents="off"), "flux").parts["model weights"]
    assert no_latents - base == pytest.approx(VAE * 4 / GIB, abs=0.01)  # the VAE in fp32
    # Training CLIP-L turns the cache off: CLIP in fp32 for its LoRA, T5 frozen in bf16 (Flux.1 never trains it).
    clip = estimate_memory(_config(tmp_path, train_text_encoder=True), "flux").parts["model weights"]
    assert clip - base == pytest.approx((CLIP_L * 4 + T5_XXL * 2) / GIB, abs=0.01)


def test_samples_bring_only_the_vae_back_so_an_8_bit_run_with_samples_fits_a_24_gb_card(tmp_path):
    """The sample prompts are encoded with the captions, so while sampling T5 and CLIP stay in host memory:
    only the VAE is back beside the 8-bit transformer, where the training activations were."""
    options = dict(gradient_checkpointing=True, quantization_bit="8")
    estimate = estimate_memory(_config(tmp_path, sample_prompts=["a cat"], sample_every_n_steps=250, **options), "flux")
    assert estimate.parts[SAMPLES_PART] == pytest.approx(max(0.0, VAE * 4 / GIB - CHECKPOINTED_GB), abs=0.01)
    without = estimate_memory(_config(tmp_path, **options), "flux")
    assert estimate.total_gb == pytest.approx(without.total_gb + estimate.parts[SAMPLES_PART], abs=0.05)
    assert estimate.total_gb <= 24 * 0.9  # a 24 GB card's 90 %
    # Latents not cached: the VAE never leaves the GPU, and nothing else comes back.
    uncached = estimate_memory(_config(tmp_path, sample_prompts=["a cat"], sample_every_n_steps=250,
                                       cache_latents="off", **options), "flux")
    assert SAMPLES_PART not in uncached.parts


def test_families_list_their_own_levers(tmp_path):
    for family in ("sd", "sdxl"):
        config, _ = validate_mapping({"base_model": str(tmp_path), "train_data_dir": str(tmp_path),
                                      "output_dir": str(tmp_path / "run"), "model_family": family},
                                     check_paths=False)
        levers = estimate_memory(config, family).levers
        assert [lever.label for lever in levers] == ["bf16", "+ gradient checkpointing"]
        assert levers[0].current and levers[1].total_gb < levers[0].total_gb  # auto precision counts as bf16
    from tests.test_llm_estimate import LLAMA_3_8B, _config as llm_config

    levers = estimate_llm_memory(llm_config(tmp_path, quantization_bit="4", gradient_checkpointing=True),
                                 LLAMA_3_8B).levers
    assert [(lever.label, lever.current) for lever in levers] == [
        ("bf16", False), ("+ gradient checkpointing", False), ("+ 4-bit base weights (QLoRA)", True)]
    assert levers[2].total_gb < levers[1].total_gb < levers[0].total_gb
