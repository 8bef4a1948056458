"""SD3/3.5 from its files: told apart by their keys (torch-free), the checkpoint with its text encoders
bundled or as ComfyUI's files, each named by its option, our layout held against diffusers' own
converter, and every refusal naming what is missing."""

from __future__ import annotations

import json

import pytest
import torch

from tests.cli_helpers import trainer_cli
from tests.test_train_e2e import make_dataset, write_config
from trainer.model_family import ModelKindError, check_companion, classify_keys, companion_problems, detect_family
from trainer.models.errors import ModelLoadError
from trainer.models.family import load_base_model

MMDIT = "model.diffusion_model.joint_blocks.0."
# A few real key names of each release (Stability AI's checkpoints), with their shapes.
SD3_MEDIUM = {MMDIT + "x_block.attn.qkv.weight": [4608, 1536], MMDIT + "context_block.attn.qkv.weight": [4608, 1536],
              "model.diffusion_model.x_embedder.proj.weight": [1536, 16, 2, 2],
              "first_stage_model.decoder.conv_in.weight": [512, 16, 3, 3]}
SD35_LARGE = {**{k: [v[0] * 2432 // 1536, *v[1:]] for k, v in SD3_MEDIUM.items()},
              MMDIT + "x_block.attn.ln_q.weight": [64], MMDIT + "context_block.attn.ln_k.weight": [64]}
SD35_MEDIUM = {**SD3_MEDIUM, MMDIT + "x_block.attn.ln_q.weight": [64], MMDIT + "context_block.attn.ln_k.weight": [64],
               MMDIT + "x_block.attn2.qkv.weight": [4608, 1536]}
BUNDLED = {"text_encoders.clip_l.transformer.text_model.final_layer_norm.weight": [768],
           "text_encoders.clip_g.transformer.text_model.final_layer_norm.weight": [1280],
           "text_encoders.t5xxl.transformer.encoder.final_layer_norm.weight": [4096]}


@pytest.fixture(scope="module")
def files(tiny_model_of):
    """The tiny SD3.5 Medium's files: (folder, all-in-one checkpoint, split checkpoint, companion options)."""
    root = tiny_model_of("sd3").diffusers_dir.parent
    split = root / "split"
    companions = {"clip_l_path": split / "clip_l.safetensors", "clip_g_path": split / "clip_g.safetensors",
                  "t5_path": split / "t5xxl_tiny.safetensors", "t5_tokenizer_path": split / "t5_tokenizer"}
    return root / "diffusers", root / "single" / "tiny-sd3.5-medium.safetensors", \
        split / "sd3.5-tiny-medium.safetensors", companions


@pytest.mark.parametrize("shapes, variant, badge", [(SD3_MEDIUM, "sd3-medium", "SD3 Medium"),
                                                    (SD35_MEDIUM, "sd3.5-medium", "SD3.5 Medium"),
                                                    (SD35_LARGE, "sd3.5-large", "SD3.5 Large")])
def test_sd3_releases_are_told_apart_by_their_keys(shapes, variant, badge):
    """q/k norms mean SD3.5, MMDiT-X's second attention SD3.5 Medium (sd-scripts' rule); without its text
    encoders the checkpoint needs them named, and a single file always needs the T5 tokenizer."""
    detection = classify_keys(shapes, "model.safetensors")
    assert (detection.family, detection.variant, detection.badge) == ("sd3", variant, badge)
    assert detection.companions == ("clip_l_path", "clip_g_path", "t5_path", "t5_tokenizer_path")
    assert classify_keys({**shapes, **BUNDLED}, "model.safetensors").companions == ("t5_tokenizer_path",)
    problems = dict((option, message) for option, message, _hint in companion_problems(detection, {}))
    assert problems["clip_g_path"] == (f"is not set: an {badge} checkpoint needs the CLIP-G (OpenCLIP bigG) text "
                                       "encoder as a separate file")


def test_the_tiny_files_are_recognised_and_name_what_they_need(files):
    folder, single, split, companions = files
    assert detect_family(folder).what == "an SD3.5 Medium model folder"
    assert detect_family(single).companions == ("t5_tokenizer_path",)
    detection = detect_family(split)
    assert companion_problems(detection, {k: str(v) for k, v in companions.items()}) == []
    swapped = {**companions, "clip_l_path": companions["clip_g_path"], "clip_g_path": companions["clip_l_path"]}
    [(option, message, hint)] = companion_problems(detection, swapped)
    assert option == "clip_g_path" and "look swapped" in message and hint == "swap clip_l_path and clip_g_path"


@pytest.mark.parametrize("option, wrong, said", [
    ("clip_g_path", "single", "is a Stable Diffusion 3 checkpoint, not the CLIP-G (OpenCLIP bigG) text encoder"),
    ("clip_l_path", "t5_path", "is a T5 text encoder, not the CLIP-L text encoder"),
    ("t5_tokenizer_path", "clip_l_path", "is not a tokenizer folder"),
])
def test_a_file_of_the_wrong_kind_is_named_for_what_it_is(files, option, wrong, said):
    _folder, single, _split, companions = files
    with pytest.raises(ModelKindError) as caught:
        check_companion(option, single if wrong == "single" else companions[wrong])
    assert said in caught.value.message and caught.value.hint


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_checkpoint_bundled_or_split_loads_the_same_model_as_its_diffusers_folder(files):
    folder, single, split, companions = files
    reference = load_base_model(folder)
    bundled = load_base_model(single, companions={"t5_tokenizer_path": companions["t5_tokenizer_path"]})
    separate = load_base_model(split, companions=companions)
    for model in (bundled, separate):
        assert (model.variant, model.modelspec_architecture) == ("sd3.5-medium", "stable-diffusion-3-5-medium/lora")
        assert _same_weights(reference.transformer, model.transformer)
        assert _same_weights(reference.vae, model.vae) and model.vae_identity == reference.vae_identity
        for name in reference.text_encoders:
            assert _same_weights(reference.text_encoders[name], model.text_encoders[name]), name
        assert dict(model.noise_scheduler.config)["shift"] == 3.0
    assert type(bundled.text_encoders["text_encoder_2"]).__name__ == "CLIPTextModelWithProjection"


def test_the_original_layout_written_is_the_one_diffusers_converter_reads():
    """SD3.5's structure (q/k norms, MMDiT-X's attn2 in the first block, the pre-only last block) and SD3's
    (neither), in our Stability AI layout, read by diffusers' single-file converter: every tensor where it
    was, the swapped modulations included; our config inference gives the model's config back."""
    from diffusers import SD3Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    from trainer.models import sd3_layout

    for extra in ({"dual_attention_layers": (0,), "qk_norm": "rms_norm"}, {}):
        with torch.device("meta"):
            model = SD3Transformer2DModel(num_layers=3, attention_head_dim=64, num_attention_heads=2,
                                          caption_projection_dim=128, joint_attention_dim=96,
                                          pooled_projection_dim=64, pos_embed_max_size=16, **extra)
        # Integer patterns (cheaper than random floats) that differ between and within tensors.
        state = {name: ((torch.arange(t.numel(), dtype=torch.int32) * 7 + index) % 32749).to(torch.int16).view(t.shape)
                 for index, (name, t) in enumerate(model.state_dict().items())}
        original = sd3_layout.to_original(state)
        inferred = sd3_layout.infer_transformer_config({k: list(v.shape) for k, v in original.items()})
        expected = {k: tuple(model.config[k]) if isinstance(v, tuple) else model.config[k] for k, v in inferred.items()}
        assert {**inferred, "sample_size": None} == {**expected, "sample_size": None}
        theirs = convert_sd3_transformer_checkpoint_to_diffusers({"model.diffusion_model." + k: v
                                                                  for k, v in original.items()})
        assert theirs.keys() == state.keys() and all(torch.equal(theirs[k], state[k]) for k in state)
        ours = sd3_layout.to_diffusers(original)
        assert ours.keys() == state.keys() and all(torch.equal(ours[k], state[k]) for k in state)


def test_encoders_that_do_not_fit_the_transformer_are_refused(files, tmp_path):
    from safetensors.torch import save_file
    from transformers import T5Config, T5EncoderModel

    _folder, _single, split, companions = files
    other = T5EncoderModel(T5Config(vocab_size=300, d_model=64, d_kv=8, d_ff=37, num_layers=1, num_heads=2,
                                    feed_forward_proj="gated-gelu"))
    save_file({k: v.contiguous() for k, v in other.state_dict().items() if k != "encoder.embed_tokens.weight"},
              str(tmp_path / "t5xxl_other.safetensors"))
    with pytest.raises(ModelLoadError, match="the text encoders do not fit the transformer: .* T5 64") as caught:
        load_base_model(split, companions={**companions, "t5_path": tmp_path / "t5xxl_other.safetensors"})
    assert "clip_l_path, clip_g_path, t5_path" in caught.value.hint


def test_a_folder_without_t5_is_refused_naming_it(files, tmp_path):
    import shutil

    folder = tmp_path / "sd3-no-t5"
    shutil.copytree(files[0], folder)
    shutil.rmtree(folder / "text_encoder_3")
    with pytest.raises(ModelLoadError, match="has no text_encoder_3/ folder"):
        load_base_model(folder)


def test_the_all_in_one_checkpoint_trains_once_its_t5_tokenizer_is_named(files, tmp_path):
    """Without t5_tokenizer_path the check names it before anything is written; with it, the run trains."""
    _folder, single, _split, companions = files
    data = make_dataset(tmp_path / "data", "txt")
    config = write_config(tmp_path / "config.yaml", single, data, tmp_path / "run", max_train_steps=2,
                          sample_every_n_steps=0, save_steps=100)
    result = trainer_cli("validate", "--config", str(config), "--no-images")
    said = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in said
    assert "t5_tokenizer_path" in said and "is not set" in said and "T5 tokenizer" in said
    config = write_config(tmp_path / "config.yaml", single, data, tmp_path / "run", max_train_steps=2,
                          sample_every_n_steps=0, save_steps=100, t5_tokenizer_path=str(companions["t5_tokenizer_path"]))
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == 2
    assert (tmp_path / "run" / "diffusers" / "pytorch_lora_weights.safetensors").is_file()
