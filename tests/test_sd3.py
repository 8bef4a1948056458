"""SD3/3.5's own parts: prompt encoding as StableDiffusion3Pipeline encodes, the kohya file in Stability
AI's MMDiT layout (what sd-scripts writes and ComfyUI loads) with its fused layers equal to the split
ones, both files against ComfyUI's SD3 key rules and in diffusers, and flow matching's fixed shift."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import load_file

# The layers with weights in an MMDiT joint block (SD3's mmdit.py DismantledBlock: the image stream x_block,
# with MMDiT-X's attn2, and the text stream context_block), by which ComfyUI maps `lora_unet_<name with _>`.
MMDIT_LAYERS = ("x_block.attn.qkv", "x_block.attn.proj", "x_block.attn2.qkv", "x_block.attn2.proj",
                "x_block.mlp.fc1", "x_block.mlp.fc2", "x_block.adaLN_modulation.1", "context_block.attn.qkv",
                "context_block.attn.proj", "context_block.mlp.fc1", "context_block.mlp.fc2",
                "context_block.adaLN_modulation.1")
# The last block's text stream is pre-only: it has no output projection and no MLP.
PRE_ONLY_MISSING = {"context_block.attn.proj", "context_block.mlp.fc1", "context_block.mlp.fc2"}


@pytest.fixture(scope="module")
def sd3_run(trained_run_of):
    """The session's short SD3 run: `all` layers and both CLIPs trained, files in fp32 (tests/conftest.py)."""
    return trained_run_of("sd3")


@pytest.fixture(scope="module")
def sd3(tiny_model_of):
    from trainer.models.family import load_base_model

    return load_base_model(tiny_model_of("sd3").diffusers_dir)


def _mmdit_module(kohya: str) -> tuple[int, str]:
    """`lora_unet_joint_blocks_0_x_block_attn_qkv` -> (0, `x_block.attn.qkv`), by the MMDiT's own names."""
    match = re.fullmatch(r"lora_unet_joint_blocks_(\d+)_(.+)", kohya)
    assert match, kohya
    name = next((n for n in MMDIT_LAYERS if n.replace(".", "_") == match[2]), None)
    assert name is not None, f"{kohya} is no layer of SD3's joint blocks"
    return int(match[1]), name


def test_prompts_are_encoded_as_the_pipeline_encodes_them(sd3):
    """CLIP-L and CLIP-G's penultimate states side by side, zero-padded to T5's width, then T5's 256 states;
    pooled: both CLIPs' projections side by side. The same as StableDiffusion3Pipeline.encode_prompt."""
    encoder = sd3.prompt_encoder(1, torch.device("cpu"), cache=True)
    widths = [sd3.text_encoders[name].config.hidden_size for name in ("text_encoder", "text_encoder_2")]
    t5_width = sd3.text_encoders["text_encoder_3"].config.d_model
    assert sum(widths) < t5_width  # so the padding is exercised, as in SD3 (2048 of 4096)
    with torch.no_grad():
        conditioning = encoder(["a red square", "a blue circle, flat style"])
        hidden, _, pooled, _ = sd3.build_pipeline().encode_prompt("a red square", None, None,
                                                                  do_classifier_free_guidance=False)
    assert conditioning.hidden.shape == (2, 77 + 256, t5_width)
    assert conditioning.pooled.shape == (2, sd3.transformer.config.pooled_projection_dim)
    assert torch.equal(conditioning.hidden[:, :77, sum(widths):], torch.zeros(2, 77, t5_width - sum(widths)))
    assert torch.allclose(conditioning.hidden[:1], hidden, atol=1e-5)
    assert torch.allclose(conditioning.pooled[:1], pooled, atol=1e-5)
    assert encoder.token_limit == 255 and 0 < encoder.count_tokens("a red square") < 255


def test_noise_levels_take_sd3s_fixed_shift(sd3):
    """SD3's scheduler shifts every noise level by 3, whatever the image size (no dynamic shifting)."""
    levels = {}
    for side in (32, 128):
        levels[side] = sd3.sample_timesteps(torch.zeros(64, 16, side, side), torch.Generator().manual_seed(0)) / 1000
    assert torch.equal(levels[32], levels[128])
    u = torch.sigmoid(torch.randn(64, generator=torch.Generator().manual_seed(0)))  # logit-normal, mean 0, std 1
    assert torch.allclose(levels[32], 3 * u / (1 + 2 * u))


def test_the_kohya_file_uses_the_mmdit_names_and_sd_scripts_metadata(sd3_run):
    from safetensors import safe_open

    with safe_open(sd3_run / "run.safetensors", "pt") as lora:
        keys, metadata = list(lora.keys()), lora.metadata()
    modules = {k.rsplit(".", 2)[0] for k in keys if k.endswith(".lora_down.weight")}
    assert {m + ".alpha" for m in modules} <= set(keys)
    unet = [_mmdit_module(m) for m in modules if m.startswith("lora_unet_")]
    last = max(block for block, _ in unet)
    # `all` reaches every layer of the MMDiT-X block, and the pre-only last block has only what it has.
    assert {name for block, name in unet if block == 0} == set(MMDIT_LAYERS)
    assert {name for block, name in unet if block == last} == set(MMDIT_LAYERS) - PRE_ONLY_MISSING - {
        "x_block.attn2.qkv", "x_block.attn2.proj"}
    text = {m for m in modules if not m.startswith("lora_unet_")}
    assert text and all(re.fullmatch(r"lora_te[12]_text_model_encoder_layers_\d+_\w+", m) for m in text)
    assert {m[:8] for m in text} == {"lora_te1", "lora_te2"}  # CLIP-L and CLIP-G; T5 stays frozen
    assert metadata["modelspec.architecture"] == "stable-diffusion-3-5-medium/lora"
    assert metadata["ss_base_model_version"] == "5-medium" and "modelspec.prediction_type" not in metadata


def test_fused_layers_change_exactly_as_their_split_layers(sd3_run, sd3):
    """ΔW of a fused qkv (up @ down · alpha/rank) equals q, k and v's ΔWs stacked as the diffusers-format file
    has them; the last block's text modulation has its halves swapped back to the original's (shift, scale)."""
    kohya = load_file(sd3_run / "run.safetensors")
    split = load_file(sd3_run / "diffusers" / "pytorch_lora_weights.safetensors")  # alpha/rank folded in
    last = sd3.transformer.config.num_layers - 1

    def delta(name: str) -> torch.Tensor:
        down, up = kohya[f"{name}.lora_down.weight"], kohya[f"{name}.lora_up.weight"]
        return up @ down * (kohya[f"{name}.alpha"] / down.shape[0])

    def split_delta(block: int, part: str) -> torch.Tensor:
        prefix = f"transformer.transformer_blocks.{block}.{part}"
        return split[f"{prefix}.lora_B.weight"] @ split[f"{prefix}.lora_A.weight"]

    for fused, parts in (("x_block_attn_qkv", ("attn.to_q", "attn.to_k", "attn.to_v")),
                         ("context_block_attn_qkv", ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")),
                         ("x_block_attn2_qkv", ("attn2.to_q", "attn2.to_k", "attn2.to_v"))):
        stacked = torch.cat([split_delta(0, part) for part in parts], dim=0)
        assert torch.allclose(delta(f"lora_unet_joint_blocks_0_{fused}"), stacked, atol=1e-6), fused
        assert stacked.abs().max() > 0  # trained, so the check means something
    modulation = delta(f"lora_unet_joint_blocks_{last}_context_block_adaLN_modulation_1")
    scale, shift = split_delta(last, "norm1_context.linear").chunk(2)
    assert torch.allclose(modulation, torch.cat([shift, scale]), atol=1e-6) and scale.abs().max() > 0
    assert torch.allclose(delta("lora_unet_joint_blocks_0_context_block_adaLN_modulation_1"),
                          split_delta(0, "norm1_context.linear"), atol=1e-6)  # the other blocks keep their order


def test_both_files_map_fully_in_comfyuis_sd3_rules(sd3_run, tiny_model_of):
    """Every module of the kohya file (`all` + both CLIPs) reaches a weight of the checkpoint as ComfyUI loads it,
    bundled or with TripleCLIPLoader's files, with that weight's shape; ComfyUI's diffusers-name rule takes every
    module of the diffusers-format file too, q, k and v each onto its third of the fused qkv."""
    from tests.loader_rules.comfyui import comfyui_sd3_diffusers_targets, comfyui_targets, comfyui_unmapped
    from tests.loader_rules.common import sd3_checkpoint_keys
    from tests.test_lora_loader_rules import _shapes

    root = tiny_model_of("sd3").diffusers_dir.parent
    bundled = _shapes(root / "single" / "tiny-sd3.5-medium.safetensors")
    split = {name: _shapes(root / "split" / f"{name}.safetensors") for name in ("sd3.5-tiny-medium", "clip_l", "clip_g",
                                                                                "t5xxl_tiny")}
    keys = sd3_checkpoint_keys(*(split[name] for name in split))
    shapes = dict(zip(keys, [shape for name in split for shape in split[name].values()]))
    lora = _shapes(sd3_run / "run.safetensors")
    for base in (bundled, shapes):
        assert comfyui_unmapped(lora, base, "sd3") == []
        targets = comfyui_targets(lora, base, "sd3")
        assert {t.key.split(".", 2)[1] for t in targets.values() if t.key.startswith("text_encoders.")} == {
            "clip_l", "clip_g"}
        for module, target in targets.items():
            weight = base[target.key]
            down, up = lora[f"{module}.lora_down.weight"], lora[f"{module}.lora_up.weight"]
            assert up[0] == weight[0] and down[1:] == weight[1:] and down[0] == up[1], (module, down, up, weight)

    diffusers = _shapes(sd3_run / "diffusers" / "pytorch_lora_weights.safetensors")
    targets = comfyui_sd3_diffusers_targets(diffusers, bundled)
    assert set(targets) == {k.rsplit(".", 2)[0] for k in diffusers}
    for module, target in targets.items():
        rows = bundled[target.key][0] // (3 if target.part else 1)
        assert diffusers[f"{module}.lora_B.weight"][0] == rows, (module, target)


def test_diffusers_loads_the_diffusers_file_with_no_key_left_out_and_it_changes_the_picture(sd3_run, tiny_model_of):
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(tiny_model_of("sd3").diffusers_dir, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def render():
        return pipe("a red square", num_inference_steps=2, width=64, height=64,
                    generator=torch.Generator().manual_seed(0), output_type="np").images[0]

    before = render()
    pipe.load_lora_weights(str(sd3_run / "diffusers"), weight_name="pytorch_lora_weights.safetensors")
    trained = {k.rsplit(".lora_A", 1)[0] for k in load_file(sd3_run / "diffusers" / "pytorch_lora_weights.safetensors")
               if ".lora_A" in k}
    injected = {f"{part}.{name}" for part in ("transformer", "text_encoder", "text_encoder_2")
                for name, module in getattr(pipe, part).named_modules() if hasattr(module, "lora_A") and module.lora_A}
    assert injected == trained  # no key left out, none unexpected
    assert abs(render() - before).max() > 1e-3


def test_sd3_lora_targets_and_8_bit_layers(sd3):
    attention = sd3.lora_targets("transformer", "attention")
    assert {t.split(".", 2)[2] for t in attention} == {
        "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
        "attn.add_v_proj", "attn.to_add_out", "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"}
    feed_forward = set(sd3.lora_targets("transformer", "attention_ff")) - set(attention)
    assert {t.split(".", 2)[2] for t in feed_forward} == {"ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
                                                          "ff_context.net.2"}
    modulation = set(sd3.lora_targets("transformer", "all")) - set(attention) - feed_forward
    assert {t.split(".", 2)[2] for t in modulation} == {"norm1.linear", "norm1_context.linear"}
    # 8-bit base weights: every linear layer of the joint blocks, nothing outside them.
    assert set(sd3.quantizable_layers()) == set(sd3.lora_targets("transformer", "all"))


def test_the_memory_estimate_takes_the_variants_sizes(tmp_path):
    """SD3.5 Large and Medium at 1024 px, rank 16, bf16, encoders and latents cached (only the transformer on the
    GPU): by hand from their parameter counts, and which settings fit which GPU."""
    from trainer.config import validate_mapping
    from trainer.estimate import estimate_memory

    config, problems = validate_mapping({"base_model": str(tmp_path), "train_data_dir": str(tmp_path),
                                         "output_dir": str(tmp_path / "run"), "model_family": "sd3", "resolution": 1024,
                                         "batch_size": 1, "lora_rank": 16, "lora_target": "attention_ff",
                                         "mixed_precision": "bf16"}, check_paths=False)
    assert config is not None, [str(p) for p in problems]

    def by_hand(transformer_m: float, lora_per_rank_m: float, activations_gb: float) -> float:
        # bf16 weights + the rank-16 LoRA's fp32 weight, gradient and two AdamW moments + activations + CUDA context
        return (transformer_m * 2 + lora_per_rank_m * 16 * 16) * 1e6 / 2 ** 30 + activations_gb + 0.6

    large, medium = (estimate_memory(config, "sd3", variant) for variant in ("sd3.5-large", "sd3.5-medium"))
    assert large.total_gb == pytest.approx(by_hand(8147, 3.30, 6.1), abs=0.05)
    assert medium.total_gb == pytest.approx(by_hand(2469, 1.47, 2.8), abs=0.05)
    assert "SD3.5 Large" in large.source and "SD3.5 Medium" in medium.source
    assert [(lever.label, lever.total_gb) for lever in large.levers] == [
        ("bf16", 22.7), ("+ gradient checkpointing", 18.7), ("+ 8-bit base weights", 11.2)]
    assert estimate_memory(config, "sd3").total_gb == large.total_gb  # a variant it cannot tell: the largest


def test_8_bit_base_weights_come_with_the_quantize_layer(tiny_model_of):
    """`quantization_bit: 8` needs nothing of SD3's own: its blocks' linear layers go int8 (torchao, on the CPU
    here) and the velocity stays within the tolerance Flux.1's does (tests/test_quantize.py)."""
    pytest.importorskip("torchao", reason="torchao is not installed (pip install -c constraints.txt torchao)")
    from torchao.quantization import Int8Tensor

    from tests.test_quantize import RELATIVE_TOLERANCE, _relative_error, _velocity
    from trainer.models.family import load_base_model
    from trainer.quantize import quantize_linear_weights

    model = load_base_model(tiny_model_of("sd3").diffusers_dir)
    with torch.no_grad():
        before = _velocity(model)
    report = quantize_linear_weights(model.transformer, model.quantizable_layers(), device=torch.device("cpu"))
    assert report.layers == len(model.quantizable_layers()) and report.bytes_after < 0.3 * report.bytes_before
    assert isinstance(model.transformer.transformer_blocks[0].attn2.to_q.weight, Int8Tensor)
    assert not isinstance(model.transformer.context_embedder.weight, Int8Tensor)
    with torch.no_grad():
        assert 0 < _relative_error(_velocity(model), before) < RELATIVE_TOLERANCE
