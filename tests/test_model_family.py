"""The family layer: telling a model's family from its files (torch-free), refusing what cannot
be trained by naming what it is, loading SDXL from both layouts, and SDXL's full-size layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.cli_helpers import ROOT, trainer_cli
from trainer.model_family import ModelKindError, classify_keys, detect_family, resolve_family

SDXL_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
    "model.diffusion_model.label_emb.0.0.weight": [1280, 2816],
    "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": [77, 768],
    "conditioner.embedders.1.model.positional_embedding": [77, 1280],
    "first_stage_model.encoder.conv_in.weight": [128, 3, 3, 3],
}


def _without(prefix: str) -> dict[str, list[int]]:
    return {k: v for k, v in SDXL_KEYS.items() if not k.startswith(prefix)}


@pytest.mark.parametrize(("shapes", "expected"), [
    ({**_without("conditioner.embedders"), "conditioner.embedders.0.model.positional_embedding": [77, 1280]},
     "is an SDXL refiner"),
    ({**SDXL_KEYS, "model.diffusion_model.input_blocks.0.0.weight": [320, 9, 3, 3]},
     "SDXL inpainting model .its UNet takes 9 input channels"),
    (_without("conditioner.embedders.0."), "without its CLIP-L text encoder"),
    (_without("conditioner.embedders.1."), "without its OpenCLIP bigG text encoder"),
    ({"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": [1, 1]},
     "is a Stable Diffusion 3 transformer without its VAE .first_stage_model"),
    ({"joint_blocks.0.x_block.attn.qkv.weight": [1, 1]}, "not under model.diffusion_model. .a bare transformer"),
    ({"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": [1, 1], "vae.decoder.conv_in.weight": [1, 1]},
     "is an all-in-one Flux.1 checkpoint"),
    ({"lora_unet_input_blocks_4_1_proj_in.lora_down.weight": [4, 640]}, "looks like a LoRA"),
])
def test_single_files_that_cannot_be_trained_are_named_for_what_they_are(shapes, expected):
    with pytest.raises(ModelKindError, match=expected):
        classify_keys(shapes, "model.safetensors")


def test_families_are_told_from_the_keys():
    assert classify_keys(SDXL_KEYS, "x").family == "sdxl"
    sd1 = {"model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
           "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": [77, 768]}
    assert (classify_keys(sd1, "x").family, classify_keys(sd1, "x").variant) == ("sd", "sd1")


@pytest.mark.parametrize(("index", "expected"), [
    ({"_class_name": "StableDiffusionXLImg2ImgPipeline", "text_encoder": [None, None],
      "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"]}, "SDXL refiner"),
    ({"_class_name": "StableDiffusionXLInpaintPipeline"}, "inpainting model"),
    ({"_class_name": "FluxFillPipeline"}, "Flux.1 tools such as Fill or Kontext take extra inputs"),
    ({"_class_name": "StableDiffusion3InpaintPipeline"}, "take extra inputs.; LoRA Studio trains text-to-image SD3"),
    ({"_class_name": "KandinskyPipeline"}, "is a KandinskyPipeline model folder"),
])
def test_diffusers_folders_that_cannot_be_trained_are_named(tmp_path, index, expected):
    (tmp_path / "model_index.json").write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(ModelKindError, match=expected):
        detect_family(tmp_path)


def test_an_explicit_model_family_must_match_the_files(tmp_path):
    detection = classify_keys(SDXL_KEYS, "big.safetensors")
    assert resolve_family(detection, "auto", "big.safetensors").id == "sdxl"
    with pytest.raises(ModelKindError, match="is an SDXL base model, but model_family says 'sd'"):
        resolve_family(detection, "sd", "big.safetensors")


@pytest.mark.parametrize(("shapes", "expected"), [
    ({"double_blocks.0.img_attn.qkv.weight": [1], "single_blocks.0.linear1.weight": [1]},
     "clip_l_path: is not set: a Flux.1 transformer file needs the CLIP-L text encoder as a separate file"),
    ({**_without("conditioner.embedders"), "conditioner.embedders.0.model.positional_embedding": [1]},
     "is an SDXL refiner"),
    (_without("conditioner.embedders.1."), "without its OpenCLIP bigG text encoder"),
])
def test_train_refuses_them_with_a_message_and_no_traceback(tmp_path, shapes, expected):
    data = tmp_path / "data"
    data.mkdir()
    from PIL import Image
    Image.new("RGB", (64, 64)).save(data / "a.png")
    (data / "a.txt").write_text("a cat", encoding="utf-8")
    model = tmp_path / "model.safetensors"
    save_file({key: torch.zeros(shape) for key, shape in shapes.items()}, model)
    config = tmp_path / "config.yaml"
    config.write_text(f"train_data_dir: {data}\nbase_model: {model}\noutput_dir: {tmp_path / 'out'}\n", encoding="utf-8")
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 2 and expected in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_family_detection_imports_no_torch(tmp_path):
    """The app reads a model's family with this module: it must not pull in torch."""
    script = ("import sys; from trainer.model_family import classify_keys; "
              f"print(classify_keys({SDXL_KEYS!r}, 'x').family); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["sdxl", "False"], result.stderr


# ------------------------------------------------------------------------------ SDXL loading


def test_sdxl_single_file_loads_the_same_model_as_the_diffusers_folder(tiny_model_of):
    from trainer.models.family import load_base_model

    paths = tiny_model_of("sdxl")
    folder = load_base_model(paths.diffusers_dir)
    single = load_base_model(paths.single_file)
    assert type(folder) is type(single) and folder.family == single.family == "sdxl"
    for name in ("unet", *folder.text_encoders):
        a, b = folder.component(name).state_dict(), single.component(name).state_dict()
        assert a.keys() == b.keys(), name
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert folder.vae_identity == single.vae_identity
    assert folder.base_model_version == single.base_model_version


# SDXL 1.0 base as diffusers configures it (stabilityai/stable-diffusion-xl-base-1.0, unet/config.json).
SDXL_UNET = {"sample_size": 128, "block_out_channels": [320, 640, 1280], "layers_per_block": 2,
             "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
             "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
             "attention_head_dim": [5, 10, 20], "transformer_layers_per_block": [1, 2, 10], "cross_attention_dim": 2048,
             "use_linear_projection": True, "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
             "projection_class_embeddings_input_dim": 2816}


def test_full_size_sdxl_layout_round_trips_and_gets_sd_scripts_names():
    """SDXL 1.0's shapes on the meta device: export to the SGM layout, recognise it (ours and
    diffusers' detection), infer the same configs back, and name LoRA layers as sd-scripts does."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, infer_diffusers_model_type
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from trainer.models.ldm_export import clip_to_ldm, clip_to_open_clip_ldm, unet_module_names_to_ldm, unet_to_ldm
    from trainer.models.ldm_configs import infer_unet_config
    from trainer.models.ldm_text_encoder import clip_text_config, clip_weights, infer_text_config, open_clip_weights

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET)
        clip_l = CLIPTextModel(clip_text_config(family="sd1", vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                                num_hidden_layers=12, max_position_embeddings=77))
        big_g_config = clip_text_config(family="sd2", vocab_size=49408, hidden_size=1280, intermediate_size=5120,
                                        num_hidden_layers=32, max_position_embeddings=77)
        big_g_config.projection_dim = 1280
        big_g = CLIPTextModelWithProjection(big_g_config)
    ldm = unet_to_ldm(unet.state_dict(), unet.config)
    ldm.update(clip_to_ldm(clip_l.state_dict(), "conditioner.embedders.0.transformer."))
    ldm.update(clip_to_open_clip_ldm(big_g.state_dict(), 32, prefix="conditioner.embedders.1.model.",
                                     add_unused_block=False))
    ldm["first_stage_model.encoder.conv_in.weight"] = torch.empty(128, 3, 3, 3, device="meta")
    for key in ("model.diffusion_model.label_emb.0.0.weight", "model.diffusion_model.label_emb.0.2.weight",
                "model.diffusion_model.input_blocks.7.1.transformer_blocks.9.attn2.to_k.weight",
                "model.diffusion_model.middle_block.1.transformer_blocks.9.ff.net.2.weight",
                "model.diffusion_model.output_blocks.2.2.conv.weight",
                "conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight",
                "conditioner.embedders.1.model.text_projection"):
        assert key in ldm, key
    assert infer_diffusers_model_type(ldm) == "xl_base"
    assert classify_keys({k: list(v.shape) for k, v in ldm.items()}, "sdxl.safetensors").family == "sdxl"

    inferred = infer_unet_config(ldm, "sdxl", sample_size=128, pooled_width=1280)
    for key, value in inferred.items():
        expected = unet.config[key]
        if key == "upcast_attention":
            expected = bool(expected)  # diffusers' SDXL config says null
        assert (list(expected) if isinstance(value, list) else expected) == value, key
    with torch.device("meta"):
        UNet2DConditionModel(**inferred).load_state_dict(convert_ldm_unet_checkpoint(ldm, inferred), strict=True,
                                                         assign=True)
    assert infer_text_config(clip_weights(ldm, "conditioner.embedders.0.transformer."), "sd1").hidden_act == "quick_gelu"
    big_g_weights = open_clip_weights(ldm, "conditioner.embedders.1.model.", drop_last=False)
    assert infer_text_config(big_g_weights, "sd2").num_hidden_layers == 32  # SDXL keeps every layer

    names = unet_module_names_to_ldm(["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                                      "mid_block.attentions.0.transformer_blocks.9.ff.net.2",
                                      "up_blocks.0.attentions.0.transformer_blocks.9.attn2.to_out.0"], unet.config)
    # The names of sd-scripts' SDXL LoRA files (lora_unet_ + these with "_" for ".").
    assert list(names.values()) == ["input_blocks.4.1.transformer_blocks.0.attn1.to_q",
                                    "middle_block.1.transformer_blocks.9.ff.net.2",
                                    "output_blocks.0.1.transformer_blocks.9.attn2.to_out.0"]


def test_make_tiny_model_writes_an_sdxl_model_with_two_encoders_of_different_widths(tmp_path):
    result = trainer_cli("make-tiny-model", str(tmp_path), "--family", "sdxl")
    assert result.returncode == 0, result.stderr
    index = json.loads((tmp_path / "diffusers" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    widths = [json.loads((tmp_path / "diffusers" / part / "config.json").read_text())["hidden_size"]
              for part in ("text_encoder", "text_encoder_2")]
    assert widths[0] != widths[1]
    assert detect_family(Path(tmp_path / "tiny-sdxl.safetensors")).family == "sdxl"
