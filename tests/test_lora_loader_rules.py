"""Our kohya LoRA files against ComfyUI's and AUTOMATIC1111's key rules (tests/loader_rules/).

First the rules themselves, on hand-built key lists of real SD 1.x, SD 2.x and SDXL module
names (a correct key maps, a wrong one is reported) and against our own diffusers -> LDM
converter; then files trained through the real CLI on the tiny SD1 and SD2 models.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.loader_rules.a1111 import a1111_convert_diffusers_name, a1111_targets, a1111_unmapped
from tests.loader_rules.comfyui import comfyui_targets, comfyui_unmapped
from tests.loader_rules.comfyui_unet import comfyui_unet_to_diffusers
from tests.loader_rules.common import Target

UNET = "model.diffusion_model."


def lora_keys(*modules: str) -> list[str]:
    """The keys kohya writes for these modules."""
    return [f"{m}.{part}" for m in modules for part in ("lora_down.weight", "lora_up.weight", "alpha")]


# diffusers' configs of the real models (only the block layout matters here)
SD15_UNET = {
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2, "cross_attention_dim": 768,
}
SD21_UNET = {**SD15_UNET, "cross_attention_dim": 1024, "attention_head_dim": [5, 10, 20, 20],
             "use_linear_projection": True}
SDXL_UNET = {
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [320, 640, 1280], "layers_per_block": 2, "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20], "cross_attention_dim": 2048, "use_linear_projection": True,
    "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816, "sample_size": 128,
}


def _clip_layer_keys(prefix: str, layers: int) -> list[str]:
    return [f"{prefix}encoder.layers.{i}.{m}.{kind}" for i in range(layers)
            for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                      "layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2") for kind in ("weight", "bias")]


def _open_clip_layer_keys(prefix: str, layers: int) -> list[str]:
    return [f"{prefix}transformer.resblocks.{i}.{m}" for i in range(layers)
            for m in ("attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
                      "ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                      "mlp.c_proj.weight", "mlp.c_proj.bias")]


# A few real module names of each architecture, as their LDM single files spell them.
SD_UNET_KEYS = [UNET + k for k in (
    "input_blocks.1.0.in_layers.2.weight", "input_blocks.1.1.proj_in.weight",
    "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
    "input_blocks.1.1.transformer_blocks.0.attn2.to_out.0.weight",
    "input_blocks.1.1.transformer_blocks.0.attn2.to_out.0.bias",
    "input_blocks.3.0.op.weight", "input_blocks.4.1.proj_in.weight",
    "middle_block.1.transformer_blocks.0.ff.net.2.weight", "middle_block.2.emb_layers.1.weight",
    "output_blocks.2.1.conv.weight", "output_blocks.5.2.conv.weight",
    "output_blocks.11.0.skip_connection.weight", "output_blocks.11.1.proj_out.weight",
)]
SD1_CKPT = SD_UNET_KEYS + _clip_layer_keys("cond_stage_model.transformer.text_model.", 12) + [
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"]
SD2_CKPT = SD_UNET_KEYS + _open_clip_layer_keys("cond_stage_model.model.", 2) + [
    "cond_stage_model.model.token_embedding.weight", "cond_stage_model.model.positional_embedding",
    "cond_stage_model.model.text_projection"]
SDXL_CKPT = [UNET + k for k in (
    "input_blocks.1.0.in_layers.2.weight", "input_blocks.3.0.op.weight",
    "input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight",
    "input_blocks.7.1.transformer_blocks.9.ff.net.2.weight", "label_emb.0.0.weight",
    "output_blocks.2.1.proj_in.weight", "output_blocks.2.2.conv.weight", "output_blocks.5.2.conv.weight",
)] + _clip_layer_keys("conditioner.embedders.0.transformer.text_model.", 2) + \
    _open_clip_layer_keys("conditioner.embedders.1.model.", 2) + ["conditioner.embedders.1.model.text_projection"]


# ------------------------------------------------------------------- the rules, by hand


def test_sd1_kohya_keys_map_in_both():
    expected = {
        "lora_unet_down_blocks_0_resnets_0_conv1": "input_blocks.1.0.in_layers.2.weight",
        "lora_unet_down_blocks_0_attentions_0_proj_in": "input_blocks.1.1.proj_in.weight",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q":
            "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_out_0":
            "input_blocks.1.1.transformer_blocks.0.attn2.to_out.0.weight",
        "lora_unet_down_blocks_0_downsamplers_0_conv": "input_blocks.3.0.op.weight",
        "lora_unet_down_blocks_1_attentions_0_proj_in": "input_blocks.4.1.proj_in.weight",
        "lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_2":
            "middle_block.1.transformer_blocks.0.ff.net.2.weight",
        "lora_unet_mid_block_resnets_1_time_emb_proj": "middle_block.2.emb_layers.1.weight",
        "lora_unet_up_blocks_0_upsamplers_0_conv": "output_blocks.2.1.conv.weight",
        "lora_unet_up_blocks_1_upsamplers_0_conv": "output_blocks.5.2.conv.weight",
        "lora_unet_up_blocks_3_resnets_2_conv_shortcut": "output_blocks.11.0.skip_connection.weight",
        "lora_unet_up_blocks_3_attentions_2_proj_out": "output_blocks.11.1.proj_out.weight",
        "lora_unet_input_blocks_1_1_proj_in": "input_blocks.1.1.proj_in.weight",  # LDM-named
    }
    te_modules = {"self_attn_q_proj": "self_attn.q_proj", "self_attn_out_proj": "self_attn.out_proj",
                  "mlp_fc1": "mlp.fc1", "mlp_fc2": "mlp.fc2"}
    te = {f"lora_te_text_model_encoder_layers_{i}_{kohya}":
          f"cond_stage_model.transformer.text_model.encoder.layers.{i}.{hf}.weight"
          for i in (0, 11) for kohya, hf in te_modules.items()}
    keys = lora_keys(*expected, *te)
    assert comfyui_unmapped(keys, SD1_CKPT, "sd1", SD15_UNET) == []
    assert a1111_unmapped(keys, SD1_CKPT, "sd1") == []
    want = {m: Target(UNET + k) for m, k in expected.items()} | {m: Target(k) for m, k in te.items()}
    assert comfyui_targets(keys, SD1_CKPT, "sd1", SD15_UNET) == want
    assert a1111_targets(keys, SD1_CKPT, "sd1") == want
    # SD1 files from SDXL-minded tools: A1111 falls back to SD1's compvis name, ComfyUI maps te1 to clip_l.
    te1 = lora_keys("lora_te1_text_model_encoder_layers_0_self_attn_q_proj")
    assert comfyui_unmapped(te1, SD1_CKPT, "sd1") == a1111_unmapped(te1, SD1_CKPT, "sd1") == []


@pytest.mark.parametrize("module", [
    "lora_unet_down_blocks_0_attentions_0_proj_xx",  # misspelt module
    "lora_unet_down_blocks_9_attentions_0_proj_in",  # a level the UNet does not have
    "lora_unet_down_blocks_3_attentions_0_proj_in",  # SD's last level has no attention
    "lora_unet_down_blocks_3_downsamplers_0_conv",  # ComfyUI's map names it, the model has none
    "lora_unet_up_blocks_3_upsamplers_0_conv",
    "unet_down_blocks_0_attentions_0_proj_in",  # prefix without lora_
    "lora_te_text_model_encoder_layers_12_self_attn_q_proj",  # past the 12 CLIP layers
    "lora_te_text_model_encoder_layers_0_self_attn_x_proj",
    "lora_text_encoder_text_model_encoder_layers_0_self_attn_q_proj",  # wrong prefix
    "lora_te_text_model_embeddings_token_embedding",  # not a layer either loader patches
    "lora_te1_text_model_embeddings_token_embedding",  # A1111 finds the nn.Embedding, never patches it
    "lora_unet_down_blocks_0_attentions_0_proj_in_q_proj",  # A1111 files it under proj_in, never applies it
])
def test_sd1_wrong_keys_are_reported_by_both(module):
    keys = lora_keys("lora_unet_down_blocks_0_attentions_0_proj_in", module)
    assert comfyui_unmapped(keys, SD1_CKPT, "sd1", SD15_UNET) == [module]
    assert a1111_unmapped(keys, SD1_CKPT, "sd1") == [module]


def test_half_a_lora_module_is_reported():
    good = "lora_unet_down_blocks_0_attentions_0_proj_in"
    keys = lora_keys(good) + ["lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight",
                              "lora_unet_down_blocks_1_attentions_0_proj_in.alpha"]
    assert comfyui_unmapped(keys, SD1_CKPT, "sd1", SD15_UNET) == ["lora_unet_down_blocks_1_attentions_0_proj_in"]
    assert a1111_unmapped(keys, SD1_CKPT, "sd1") == ["lora_unet_down_blocks_1_attentions_0_proj_in"]


def test_diffusers_named_unet_keys_need_the_unet_config_in_comfyui():
    keys = lora_keys("lora_unet_down_blocks_0_attentions_0_proj_in", "lora_unet_input_blocks_1_1_proj_in")
    assert comfyui_unmapped(keys, SD1_CKPT, "sd1") == ["lora_unet_down_blocks_0_attentions_0_proj_in"]


SD2_TE = [f"lora_te_text_model_encoder_layers_{i}_{m}" for i in (0, 1)
          for m in ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj",
                    "mlp_fc1", "mlp_fc2")]


def test_sd2_open_clip_is_reached_from_hf_names():
    unet = ["lora_unet_down_blocks_0_attentions_0_proj_in", "lora_unet_up_blocks_1_upsamplers_0_conv"]
    keys = lora_keys(*unet, *SD2_TE)
    assert comfyui_unmapped(keys, SD2_CKPT, "sd2", SD21_UNET) == []
    assert a1111_unmapped(keys, SD2_CKPT, "sd2") == []
    comfy, a1111 = comfyui_targets(keys, SD2_CKPT, "sd2", SD21_UNET), a1111_targets(keys, SD2_CKPT, "sd2")
    assert comfy == a1111
    layer = "cond_stage_model.model.transformer.resblocks.1."
    assert a1111["lora_te_text_model_encoder_layers_1_self_attn_k_proj"] == Target(layer + "attn.in_proj_weight", "k")
    assert a1111["lora_te_text_model_encoder_layers_1_self_attn_out_proj"] == Target(layer + "attn.out_proj.weight")
    assert a1111["lora_te_text_model_encoder_layers_1_mlp_fc1"] == Target(layer + "mlp.c_fc.weight")


def test_a1111_applies_open_clip_attention_only_with_all_four_projections():
    partial = [m for m in SD2_TE if not m.startswith("lora_te_text_model_encoder_layers_1_self_attn_")
               or m.endswith(("q_proj", "v_proj"))]
    keys = lora_keys(*partial)
    assert comfyui_unmapped(keys, SD2_CKPT, "sd2", SD21_UNET) == []
    assert a1111_unmapped(keys, SD2_CKPT, "sd2") == ["lora_te_text_model_encoder_layers_1_self_attn_q_proj",
                                                      "lora_te_text_model_encoder_layers_1_self_attn_v_proj"]


@pytest.mark.parametrize("module", [
    "lora_te_text_model_encoder_layers_2_self_attn_q_proj",  # past the two OpenCLIP layers
    "lora_te_text_model_encoder_layers_0_self_attn_qkv",
    "lora_te2_text_model_encoder_layers_0_mlp_fc1",  # SDXL's prefix on an SD2 model
])
def test_sd2_wrong_keys_are_reported_by_both(module):
    keys = lora_keys(*SD2_TE, module)
    assert comfyui_unmapped(keys, SD2_CKPT, "sd2", SD21_UNET) == [module]
    assert a1111_unmapped(keys, SD2_CKPT, "sd2") == [module]


SDXL_TE = [f"lora_te1_text_model_encoder_layers_{i}_{m}" for i in (0, 1)
           for m in ("self_attn_q_proj", "self_attn_out_proj", "mlp_fc2")] + \
          [f"lora_te2_text_model_encoder_layers_{i}_{m}" for i in (0, 1)
           for m in ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj",
                     "mlp_fc1", "mlp_fc2")]


def test_sdxl_kohya_keys_map_in_both():
    unet = {  # kohya's sd-scripts write SDXL's UNet with LDM names; diffusers names work too, mostly
        "lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k":
            "input_blocks.4.1.transformer_blocks.1.attn2.to_k",
        "lora_unet_output_blocks_2_2_conv": "output_blocks.2.2.conv",
        "lora_unet_down_blocks_0_resnets_0_conv1": "input_blocks.1.0.in_layers.2",
        "lora_unet_down_blocks_0_downsamplers_0_conv": "input_blocks.3.0.op",
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_1_attn2_to_k":
            "input_blocks.4.1.transformer_blocks.1.attn2.to_k",
        "lora_unet_down_blocks_2_attentions_0_transformer_blocks_9_ff_net_2":
            "input_blocks.7.1.transformer_blocks.9.ff.net.2",
        "lora_unet_up_blocks_0_attentions_2_proj_in": "output_blocks.2.1.proj_in",
        "lora_unet_up_blocks_1_upsamplers_0_conv": "output_blocks.5.2.conv",
    }
    keys = lora_keys(*unet, *SDXL_TE)
    assert comfyui_unmapped(keys, SDXL_CKPT, "sdxl", SDXL_UNET) == []
    assert a1111_unmapped(keys, SDXL_CKPT, "sdxl") == []
    comfy, a1111 = comfyui_targets(keys, SDXL_CKPT, "sdxl", SDXL_UNET), a1111_targets(keys, SDXL_CKPT, "sdxl")
    assert comfy == a1111
    assert {m: comfy[m] for m in unet} == {m: Target(f"{UNET}{k}.weight") for m, k in unet.items()}
    assert comfy["lora_te1_text_model_encoder_layers_1_mlp_fc2"] == Target(
        "conditioner.embedders.0.transformer.text_model.encoder.layers.1.mlp.fc2.weight")
    assert comfy["lora_te2_text_model_encoder_layers_1_self_attn_v_proj"] == Target(
        "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight", "v")


@pytest.mark.parametrize("module", [
    "lora_unet_up_blocks_0_upsamplers_0_conv",  # A1111 puts it at output_blocks_2_1 (SD1's place)
    "lora_unet_add_embedding_linear_1",  # A1111 has no rule for SDXL's label_emb
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj",  # SD1's prefix: A1111 wants lora_te1_
])
def test_sdxl_keys_only_comfyui_maps(module):
    keys = lora_keys(*SDXL_TE, module)
    assert comfyui_unmapped(keys, SDXL_CKPT, "sdxl", SDXL_UNET) == []
    assert a1111_unmapped(keys, SDXL_CKPT, "sdxl") == [module]


@pytest.mark.parametrize("module", [
    "lora_te2_text_model_encoder_layers_2_self_attn_q_proj",  # past the two bigG layers
    "lora_te2_text_model_encoder_layers_31_mlp_fc1",
    "lora_te1_text_model_encoder_layers_2_mlp_fc1",  # past the two CLIP-L layers
    "lora_te3_text_model_encoder_layers_0_mlp_fc1",
    "lora_unet_down_blocks_0_attentions_0_proj_in",  # SDXL's first level has no attention
    "lora_unet_input_blocks_1_1_proj_in",
])
def test_sdxl_wrong_keys_are_reported_by_both(module):
    keys = lora_keys(*SDXL_TE, module)
    assert comfyui_unmapped(keys, SDXL_CKPT, "sdxl", SDXL_UNET) == [module]
    assert a1111_unmapped(keys, SDXL_CKPT, "sdxl") == [module]


def test_comfyui_reads_lora_te_as_clip_g_without_clip_l():
    """comfy/lora.py model_lora_keys_clip: a clip_g-only model (SDXL's refiner) takes lora_te_ names."""
    refiner = [k for k in SDXL_CKPT if not k.startswith("conditioner.embedders.0.")]
    te2 = lora_keys("lora_te2_text_model_encoder_layers_0_mlp_fc1")
    te = lora_keys("lora_te_text_model_encoder_layers_0_mlp_fc1")
    assert comfyui_unmapped(te2, refiner, "sdxl") == ["lora_te2_text_model_encoder_layers_0_mlp_fc1"]
    assert comfyui_unmapped(te, refiner, "sdxl") == []
    assert comfyui_unmapped(te2, SDXL_CKPT, "sdxl") == []


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="family"):
        comfyui_unmapped([], SD1_CKPT, "auraflow")
    with pytest.raises(ValueError, match="family"):
        a1111_unmapped([], SD1_CKPT, "flux")
    with pytest.raises(ValueError, match="family"):
        a1111_unmapped([], SD1_CKPT, "sd3")


# --------------------------------- the UNet name maps against our diffusers -> LDM converter

TINY_ODD_LAYOUTS = {
    # three levels, one resnet per level, two transformer blocks per attention
    "3-levels-1-layer-depth-2": {
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [32, 64, 64], "layers_per_block": 1, "transformer_layers_per_block": 2,
        "cross_attention_dim": 32, "attention_head_dim": 8},
    # attention on the deepest level only, three resnets per level
    "deep-attention-3-layers": {
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [32, 64], "layers_per_block": 3, "cross_attention_dim": 32, "attention_head_dim": 8},
}


def _our_ldm_names(config: dict) -> tuple[dict[str, str], dict]:
    """diffusers module -> LDM module of every UNet weight, by trainer/models/ldm_export.py."""
    from diffusers import UNet2DConditionModel

    from trainer.models.ldm_export import unet_to_ldm

    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    weights = [k for k in unet.state_dict() if k.endswith(".weight")]
    extra = [k for k in weights if k.startswith("add_embedding.")]  # SDXL's: our SD1/SD2 exporter has no rule
    converted = unet_to_ldm({k: k for k in weights if k not in extra}, unet.config)
    names = {diffusers[: -len(".weight")]: ldm[len(UNET): -len(".weight")] for ldm, diffusers in converted.items()}
    return names, {k[: -len(".weight")] for k in extra}


def _tiny_unet_config(family: str) -> dict:
    from trainer.models.tiny import tiny_unet_config

    return tiny_unet_config(family)


@pytest.mark.parametrize("name", ["sd15", "sd21", "sdxl", "tiny-sd1", "tiny-sd2", *TINY_ODD_LAYOUTS])
def test_comfyui_unet_map_agrees_with_our_converter(name):
    config = {"sd15": SD15_UNET, "sd21": SD21_UNET, "sdxl": SDXL_UNET, **TINY_ODD_LAYOUTS}.get(name)
    config = config or _tiny_unet_config(name.removeprefix("tiny-"))
    ours, extra = _our_ldm_names(config)
    comfy = comfyui_unet_to_diffusers(config)
    assert {m: comfy.get(m) for m in ours} == ours  # every UNet weight, named as we export it
    if extra:
        assert {comfy[m] for m in extra} == {"label_emb.0.0", "label_emb.0.2"}


@pytest.mark.parametrize("name", ["sd15", "sd21", "sdxl", "tiny-sd1", "tiny-sd2"])
def test_a1111_diffusers_names_fit_sd_shaped_unets(name):
    """A1111's arithmetic is SD1's layout: right for SD 1/2 and the tiny models (which copy it),
    and for SDXL except its first up block's upsampler (and no rule for conv_norm_out/add_embedding)."""
    config = {"sd15": SD15_UNET, "sd21": SD21_UNET, "sdxl": SDXL_UNET}.get(name)
    config = config or _tiny_unet_config(name.removeprefix("tiny-"))
    ours, _ = _our_ldm_names(config)
    wrong = {m for m, ldm in ours.items()
             if a1111_convert_diffusers_name("lora_unet_" + m.replace(".", "_"), is_sd2=False)
             != "diffusion_model_" + ldm.replace(".", "_")}
    assert wrong == ({"conv_norm_out", "up_blocks.0.upsamplers.0.conv"} if name == "sdxl" else {"conv_norm_out"})


def test_a1111_diffusers_names_miss_other_layouts():
    ours, _ = _our_ldm_names(TINY_ODD_LAYOUTS["3-levels-1-layer-depth-2"])
    wrong = [m for m, ldm in ours.items()
             if a1111_convert_diffusers_name("lora_unet_" + m.replace(".", "_"), is_sd2=False)
             != "diffusion_model_" + ldm.replace(".", "_")]
    assert "down_blocks.1.resnets.0.conv1" in wrong


# -------------------------------------------------- our files, trained on the tiny models


# What `lora_target: all` with the text encoders must put in a file of each family (so that a
# pass means something): UNet parts in the family's naming, and the text encoders' MLPs.
TRAINED_PARTS = {
    "sd1": ("_attentions_", "_resnets_", "_downsamplers_", "_upsamplers_", "_mid_block_"),
    "sdxl": ("lora_unet_input_blocks_", "_0_op", "lora_unet_middle_block_", "lora_unet_output_blocks_", "_2_conv",
             "_emb_layers_1"),
}
TRAINED_PARTS["sd2"] = TRAINED_PARTS["sd1"]
TEXT_PREFIXES = {"sd1": ("lora_te_",), "sd2": ("lora_te_",), "sdxl": ("lora_te1_", "lora_te2_")}



def _shapes(path: Path) -> dict[str, list[int]]:
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_trained_kohya_file_maps_in_comfyui_and_a1111(tiny_model_of, trained_run_of, family):
    tiny = tiny_model_of(family)
    checkpoint, model_dir = tiny.single_file, tiny.diffusers_dir.parent
    unet_config = json.loads((model_dir / "diffusers" / "unet" / "config.json").read_text())
    out = trained_run_of(family)  # `all` layers and the text encoders, trained from the single file

    lora = _shapes(out / "run.safetensors")
    base = _shapes(checkpoint)
    modules = {k.split(".", 1)[0] for k in lora}
    # The file has what `all` trains, so that a pass means something.
    for part in TRAINED_PARTS[family]:
        assert any(part in m for m in modules), part
    for prefix in TEXT_PREFIXES[family]:
        assert any(m.startswith(f"{prefix}text_model_encoder_layers_") and m.endswith("_mlp_fc1") for m in modules)

    assert comfyui_unmapped(lora, base, family, unet_config) == []
    assert a1111_unmapped(lora, base, family) == []
    comfy = comfyui_targets(lora, base, family, unet_config)
    # Both programs patch the same weight with each module, and the patch fits that weight.
    assert a1111_targets(lora, base, family) == comfy
    for module, target in comfy.items():
        weight = list(base[target.key])
        if target.part:  # a third of OpenCLIP's fused q/k/v projection
            weight[0] //= 3
        down, up = lora[f"{module}.lora_down.weight"], lora[f"{module}.lora_up.weight"]
        assert up[0] == weight[0] and down[1:] == weight[1:] and down[0] == up[1], (module, down, up, weight)
