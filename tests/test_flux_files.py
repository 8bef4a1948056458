"""Flux.1 from the split files ComfyUI users keep: the transformer in Black Forest Labs' layout,
CLIP-L, T5-XXL, the ae VAE and a T5 tokenizer folder, each named by its option."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tests.cli_helpers import trainer_cli
from tests.test_train_e2e import make_dataset
from trainer.model_family import ModelKindError, check_companion, companion_problems, detect_family
from trainer.models import flux_layout
from trainer.models.errors import ModelLoadError
from trainer.models.family import load_base_model


@pytest.fixture(scope="module")
def split(tiny_model_of):
    """The tiny Flux.1 model's split files: (transformer file, companion options)."""
    folder = tiny_model_of("flux").diffusers_dir.parent / "split"
    companions = {"clip_l_path": folder / "clip_l.safetensors", "t5_path": folder / "t5xxl_tiny.safetensors",
                  "ae_path": folder / "ae.safetensors", "t5_tokenizer_path": folder / "t5_tokenizer"}
    return folder / "flux1-tiny-dev.safetensors", companions


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_split_files_load_the_same_model_as_its_diffusers_folder(split, tiny_model_of):
    transformer_file, companions = split
    folder = load_base_model(tiny_model_of("flux").diffusers_dir)
    files = load_base_model(transformer_file, companions=companions)
    assert files.variant == "flux-dev" and files.modelspec_architecture == "flux-1-dev/lora"
    assert _same_weights(folder.transformer, files.transformer)
    assert tuple(files.transformer.config.axes_dims_rope) == tuple(folder.transformer.config.axes_dims_rope)
    assert _same_weights(folder.vae, files.vae)
    assert files.vae.config.shift_factor == folder.vae.config.shift_factor
    for name in folder.text_encoders:
        assert _same_weights(folder.text_encoders[name], files.text_encoders[name]), name
    assert files.tokenizers[1]("a red square").input_ids == folder.tokenizers[1]("a red square").input_ids


def test_the_original_layout_written_is_the_one_diffusers_converter_reads():
    """At Flux.1's real width (3072, 128-channel heads; one block of each kind), our BFL layout,
    read by diffusers' own single-file converter, gives back every tensor where it was."""
    from diffusers import FluxTransformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    with torch.device("meta"):
        model = FluxTransformer2DModel(num_layers=1, num_single_layers=1, joint_attention_dim=64,
                                       pooled_projection_dim=32, guidance_embeds=True)
    # Integer patterns (cheaper than random floats at this size) that differ between and within tensors.
    state = {name: ((torch.arange(t.numel(), dtype=torch.int32) * 7 + index) % 32749).to(torch.int16).view(t.shape)
             for index, (name, t) in enumerate(model.state_dict().items())}
    original = flux_layout.to_original(state)
    assert flux_layout.infer_transformer_config({k: list(v.shape) for k, v in original.items()})["axes_dims_rope"] \
        == tuple(model.config.axes_dims_rope)
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(original))
    assert theirs.keys() == state.keys()
    assert all(torch.equal(theirs[k], state[k]) for k in state)
    ours = flux_layout.to_diffusers(original)
    assert all(torch.equal(ours[k], state[k]) for k in state)


def test_a_flux_transformer_file_is_recognised_and_names_the_files_it_needs(split, tmp_path):
    transformer_file, companions = split
    detection = detect_family(transformer_file)
    assert (detection.family, detection.badge) == ("flux", "Flux.1")
    problems = dict((option, message) for option, message, _hint in companion_problems(detection, {}))
    assert set(problems) == {"clip_l_path", "t5_path", "ae_path", "t5_tokenizer_path"}
    assert "is not set" in problems["t5_path"] and "T5-XXL" in problems["t5_path"]
    assert companion_problems(detection, {k: str(v) for k, v in companions.items()}) == []


@pytest.mark.parametrize("option, wrong, said", [
    ("t5_path", "clip_l_path", "clip_l.safetensors is a CLIP text encoder, not the T5-XXL text encoder"),
    ("clip_l_path", "t5_path", "is a T5 text encoder, not the CLIP-L text encoder"),
    ("ae_path", "transformer", "is a Flux.1 transformer, not the Flux.1 VAE"),
    ("t5_tokenizer_path", "ae_path", "is not a tokenizer folder"),
])
def test_a_companion_file_of_the_wrong_kind_is_named_for_what_it_is(split, option, wrong, said):
    transformer_file, companions = split
    path = transformer_file if wrong == "transformer" else companions[wrong]
    with pytest.raises(ModelKindError) as caught:
        check_companion(option, path)
    assert said in caught.value.message and caught.value.hint


def test_an_sd_vae_given_as_ae_path_is_refused_for_its_four_channels(tiny_model_of, split, tmp_path):
    from safetensors.torch import save_file

    from trainer.models.ldm_file import read_checkpoint

    checkpoint = read_checkpoint(tiny_model_of("sd1").single_file)
    vae = {k.removeprefix("first_stage_model."): v for k, v in checkpoint.state_dict.items()
           if k.startswith("first_stage_model.")}
    save_file({k: v.contiguous() for k, v in vae.items()}, str(tmp_path / "sd-vae.safetensors"))
    with pytest.raises(ModelKindError, match="4 latent channels"):
        check_companion("ae_path", tmp_path / "sd-vae.safetensors")


def test_a_config_of_split_files_without_the_t5_option_says_what_to_set(split, tmp_path):
    transformer_file, companions = split
    data = make_dataset(tmp_path / "data", "txt")
    config = tmp_path / "flux.yaml"
    config.write_text(f"base_model: {transformer_file}\ntrain_data_dir: {data}\noutput_dir: {tmp_path / 'run'}\n"
                      f"clip_l_path: {companions['clip_l_path']}\nae_path: {companions['ae_path']}\n"
                      f"t5_tokenizer_path: {companions['t5_tokenizer_path']}\nresolution: 64\n", encoding="utf-8")
    result = trainer_cli("validate", "--config", str(config), "--no-images")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    said = result.stdout + result.stderr
    assert "t5_path" in said and "t5xxl_fp16.safetensors" in said
    assert not (tmp_path / "run").exists()


def test_a_truncated_transformer_file_is_refused_with_its_name(split, tmp_path):
    transformer_file, companions = split
    broken = tmp_path / "flux1-broken.safetensors"
    shutil.copyfile(transformer_file, broken)
    with open(broken, "r+b") as handle:
        handle.truncate(broken.stat().st_size // 2)
    with pytest.raises(ModelLoadError, match="flux1-broken.safetensors"):
        load_base_model(broken, companions=companions)


def test_a_seed_style_config_trains_flux_from_comfyuis_files(tmp_path, split):
    """The seed's keys, with Flux.1 as ComfyUI keeps it (models/unet, models/clip, models/vae): it
    trains at Flux.1's own sizes, and both LoRA files are what ComfyUI and diffusers load."""
    from diffusers import FluxPipeline
    from safetensors import safe_open

    transformer_file, companions = split
    models = tmp_path / "models"
    for sub, source in (("unet", transformer_file), ("clip", companions["clip_l_path"]),
                        ("clip", companions["t5_path"]), ("vae", companions["ae_path"])):
        (models / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(source, models / sub / source.name)
    shutil.copytree(companions["t5_tokenizer_path"], models / "t5_tokenizer")
    make_dataset(tmp_path / "data" / "style_train", "csv")
    config = tmp_path / "configs" / "my_lora_config.yaml"
    config.parent.mkdir()
    config.write_text('train_data_dir: "../data/style_train"\nmetadata_path: "../data/style_train/metadata.csv"\n'
                      'base_model: "../models/unet/flux1-tiny-dev.safetensors"\n'
                      'clip_l_path: "../models/clip/clip_l.safetensors"\nt5_path: "../models/clip/t5xxl_tiny.safetensors"\n'
                      'ae_path: "../models/vae/ae.safetensors"\nt5_tokenizer_path: "../models/t5_tokenizer"\n'
                      'lora_rank: 8\nbatch_size: 4\nepochs: 1\nlearning_rate: 2e-4\noutput_dir: "../output/my_style_lora"\n'
                      'save_steps: 100\n', encoding="utf-8")
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "Flux.1 model: resolution 1024" in result.stderr

    out = tmp_path / "output" / "my_style_lora"
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == status["total_steps"] > 0
    with safe_open(out / "my_style_lora.safetensors", "pt") as lora:
        metadata, keys = lora.metadata(), list(lora.keys())
    modules = {k.rsplit(".", 2)[0] for k in keys if k.endswith(".lora_down.weight")}
    assert modules and all(re.fullmatch(r"lora_unet_(double|single)_blocks_\d+_\w+", m) for m in modules)
    assert {m + ".alpha" for m in modules} <= set(keys)
    assert metadata["modelspec.architecture"] == "flux-1-dev/lora"

    pipe = FluxPipeline.from_pretrained(transformer_file.parent.parent / "diffusers", local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def render():
        return pipe("a red square", num_inference_steps=2, width=64, height=64, guidance_scale=3.5,
                    generator=torch.Generator().manual_seed(0), output_type="np").images[0]

    before = render()
    pipe.load_lora_weights(str(out / "diffusers"), weight_name="pytorch_lora_weights.safetensors")
    injected = {n for n, m in pipe.transformer.named_modules() if hasattr(m, "lora_A") and len(m.lora_A)}
    trained = {k.removeprefix("transformer.").rsplit(".lora_A", 1)[0]
               for k in load_file(out / "diffusers" / "pytorch_lora_weights.safetensors") if ".lora_A" in k}
    assert injected == trained  # no key left out, none unexpected
    assert abs(render() - before).max() > 0
