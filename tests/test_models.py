"""Base-model loading: the tiny model in both layouts, offline (the refusals: test_model_refusals.py).

The LDM round trip is the heart of it: the tiny model is written as a diffusers folder
and, through our own diffusers->LDM export, as an original single file; loading the file
(configs inferred from shapes, weights converted by diffusers' own converters) must give
back exactly the same tensors. Full-size SD 1.5 / 2.1 layouts are checked on the meta
device, where they cost no memory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from diffusers.loaders.single_file_utils import (  # noqa: E402
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    infer_diffusers_model_type,
)
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import CLIPTextModel  # noqa: E402

from trainer.models import build_pipeline, load_sd_model, make_tiny_model, offline_mode  # noqa: E402
from trainer.models.ldm_export import clip_to_ldm, clip_to_open_clip_ldm, unet_to_ldm, vae_to_ldm  # noqa: E402
from trainer.models.ldm_configs import detect_family, infer_unet_config, infer_vae_config  # noqa: E402
from trainer.models.ldm_text_encoder import clip_text_config, convert_text_encoder, infer_text_config  # noqa: E402
from trainer.models.offline import is_offline_mode_enabled  # noqa: E402
from trainer.models.family import vae_identity  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("unet", "vae", "text_encoder")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny-sd1"), seed=0)


@pytest.fixture(scope="module")
def tiny_sd2(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny-sd2"), seed=1, family="sd2")


def assert_same_weights(a, b) -> None:
    for part in PARTS:
        left, right = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert left.keys() == right.keys(), f"{part}: {sorted(set(left) ^ set(right))[:5]}"
        different = [k for k in left if not torch.equal(left[k], right[k])]
        assert not different, f"{part} differs in {different[:5]}"


def plain_config(config) -> dict:
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    ignored = {"dtype", "torch_dtype", "architectures", "transformers_version", "_name_or_path"}
    return {k: v for k, v in data.items() if not k.startswith("_") and k not in ignored}


# ----------------------------------------------------------------- the round trip


def test_single_file_loads_the_same_model_as_the_diffusers_folder(tiny):
    folder = load_sd_model(tiny.diffusers_dir)
    single = load_sd_model(tiny.single_file)
    assert_same_weights(folder, single)
    for part in PARTS:
        assert plain_config(getattr(folder, part).config) == plain_config(getattr(single, part).config), part
    # Same weights and configs: same outputs (heads included, which weights cannot show).
    # Close, not bit-equal: CPU kernels round differently for differently aligned memory.
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    ids = folder.tokenizer("a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    single_ids = single.tokenizer("a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert torch.equal(ids, single_ids)
    with torch.no_grad():
        hidden = folder.text_encoder(ids).last_hidden_state
        torch.testing.assert_close(hidden, single.text_encoder(ids).last_hidden_state)
        torch.testing.assert_close(folder.unet(latents, 10, hidden).sample, single.unet(latents, 10, hidden).sample)
    for model in (folder, single):
        assert (model.variant, model.prediction_type) == ("sd1", "epsilon")
        assert model.base_model_version == "sd_v1"
        assert model.modelspec_architecture == "stable-diffusion-v1/lora"
        assert model.vae_scale_factor == 8  # as in SD: 64 px images give 8x8 latents
        assert model.noise_scheduler.config.prediction_type == "epsilon"
        assert model.noise_scheduler.config.beta_schedule == "scaled_linear"
    assert single.source == tiny.single_file and folder.source == tiny.diffusers_dir
    assert folder.vae_identity == single.vae_identity
    assert plain_config(folder.noise_scheduler.config) == plain_config(single.noise_scheduler.config)


def test_sd2_single_file_with_open_clip_text_encoder(tiny_sd2):
    keys = load_file(str(tiny_sd2.single_file)).keys()
    assert "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight" in keys
    # OpenCLIP has one block more than diffusers' SD2 text encoder (the unused last one).
    assert "cond_stage_model.model.transformer.resblocks.3.ln_1.weight" in keys
    folder = load_sd_model(tiny_sd2.diffusers_dir)
    single = load_sd_model(tiny_sd2.single_file)
    assert_same_weights(folder, single)
    assert single.text_encoder.config.num_hidden_layers == 3
    assert single.text_encoder.config.hidden_act == "gelu"
    assert single.unet.config.use_linear_projection
    assert (folder.variant, single.variant) == ("sd2", "sd2")
    assert single.tokenizer.pad_token_id == 0  # "!", as OpenCLIP pads
    assert (single.base_model_version, single.modelspec_architecture) == ("sd_v2", "stable-diffusion-v2-512/lora")
    v_model = load_sd_model(tiny_sd2.single_file, prediction_type="v_prediction")
    assert v_model.noise_scheduler.config.prediction_type == "v_prediction"
    assert v_model.base_model_version == "sd_v2_v"
    assert v_model.modelspec_architecture == "stable-diffusion-v2-768-v/lora"


def test_make_tiny_model_is_deterministic(tmp_path, tiny):
    # Tensors and metadata, not bytes: safetensors orders its header's metadata at random.
    def contents(path: Path) -> tuple[dict, dict]:
        with safe_open(str(path), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata()

    first, first_meta = contents(tiny.single_file)
    again = make_tiny_model(tmp_path / "again", seed=0)
    second, second_meta = contents(again.single_file)
    assert first_meta == second_meta and first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other, _ = contents(make_tiny_model(tmp_path / "other", seed=5).single_file)
    assert not torch.equal(other["model.diffusion_model.input_blocks.0.0.weight"],
                           first["model.diffusion_model.input_blocks.0.0.weight"])
    # Rewriting in place replaces the outputs without leaving temporary folders behind.
    make_tiny_model(tmp_path / "again", seed=0)
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["diffusers", "tiny-sd-v1.safetensors"]


def test_float16_load_casts_every_part(tiny):
    model = load_sd_model(tiny.single_file, dtype=torch.float16)
    for part in PARTS:
        assert {p.dtype for p in getattr(model, part).parameters()} == {torch.float16}, part
    assert model.vae_identity != load_sd_model(tiny.single_file).vae_identity


def test_vae_identity_follows_the_weights(tiny):
    model = load_sd_model(tiny.diffusers_dir)
    before = vae_identity(model.vae)
    with torch.no_grad():
        model.vae.decoder.conv_out.bias[0] += 1e-3
    assert vae_identity(model.vae) != before
    assert len(before) == 16


# ---------------------------------------------------- full-size layouts, on meta


def _sd_text_encoder(family: str) -> CLIPTextModel:
    width = 1024 if family == "sd2" else 768
    config = clip_text_config(family=family, vocab_size=49408, hidden_size=width, intermediate_size=4 * width,
                              num_hidden_layers=23 if family == "sd2" else 12, max_position_embeddings=77)
    with torch.device("meta"):
        return CLIPTextModel(config)


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_full_size_sd_layouts_are_inferred(family):
    """SD 1.5 and SD 2.1 shapes: config inference, conversion and strict loading, on meta."""
    unet_config = {"cross_attention_dim": 768, "sample_size": 64}
    if family == "sd2":  # diffusers' stabilityai/stable-diffusion-2-1 unet config
        unet_config = {"cross_attention_dim": 1024, "sample_size": 96, "attention_head_dim": [5, 10, 20, 20],
                       "use_linear_projection": True, "upcast_attention": True}
    vae_config = {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "sample_size": 768,
                  "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4}
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config)  # the defaults are SD 1.x's
        vae = AutoencoderKL(**vae_config)
    text_encoder = _sd_text_encoder(family)
    ldm = unet_to_ldm(unet.state_dict(), unet.config)
    ldm.update(vae_to_ldm(vae.state_dict(), vae.config))
    if family == "sd2":
        ldm.update(clip_to_open_clip_ldm(text_encoder.state_dict(), 23))
    else:
        ldm.update(clip_to_ldm(text_encoder.state_dict()))

    # Names that real SD checkpoints have (diffusers' own detection keys among them).
    for key in ("model.diffusion_model.output_blocks.11.0.skip_connection.weight",
                "model.diffusion_model.output_blocks.2.1.conv.weight",
                "model.diffusion_model.output_blocks.5.2.conv.weight",
                "model.diffusion_model.input_blocks.3.0.op.weight",
                "model.diffusion_model.middle_block.1.proj_in.weight",
                "first_stage_model.decoder.up.3.upsample.conv.weight",
                "first_stage_model.encoder.down.0.downsample.conv.weight",
                "first_stage_model.encoder.mid.attn_1.q.weight"):
        assert key in ldm, key
    assert ldm["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    if family == "sd2":
        assert "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight" in ldm
        assert "cond_stage_model.model.text_projection" in ldm
    else:
        assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in ldm
    assert infer_diffusers_model_type(ldm) == {"sd1": "v1", "sd2": "v2"}[family]

    assert detect_family(ldm) == family
    inferred_unet = infer_unet_config(ldm, family, sample_size=unet.config.sample_size)
    inferred_vae = infer_vae_config(ldm, sample_size=768)
    for key, value in inferred_unet.items():
        expected = unet.config[key]
        assert list(expected) == value if isinstance(value, list) else expected == value, key
    for key, value in inferred_vae.items():
        if key != "scaling_factor":
            expected = vae.config[key]
            assert list(expected) == value if isinstance(value, list) else expected == value, key
    with torch.device("meta"):
        rebuilt_unet = UNet2DConditionModel(**inferred_unet)
        rebuilt_vae = AutoencoderKL(**inferred_vae)
    rebuilt_unet.load_state_dict(convert_ldm_unet_checkpoint(ldm, inferred_unet), strict=True, assign=True)
    rebuilt_vae.load_state_dict(convert_ldm_vae_checkpoint(ldm, inferred_vae), strict=True, assign=True)

    text_weights, layout = convert_text_encoder(ldm)
    assert layout == ("open_clip" if family == "sd2" else "clip")
    text_config = infer_text_config(text_weights, family)
    assert plain_config(text_config) == plain_config(text_encoder.config)
    assert text_config.num_attention_heads == (16 if family == "sd2" else 12)
    assert text_weights.keys() == {k for k in text_encoder.state_dict() if not k.endswith("position_ids")}


# ------------------------------------------------------------------------ offline


def test_loading_never_opens_a_connection(tiny, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert load_sd_model(tiny.single_file).variant == "sd1"
    assert load_sd_model(tiny.diffusers_dir).variant == "sd1"


def test_offline_mode_is_set_by_our_code_in_a_fresh_process(tiny, tmp_path):
    script = textwrap.dedent(
        f"""
        import os, socket, sys
        assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ
        def refuse(*args, **kwargs):
            raise AssertionError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from trainer.models.sd import load_sd_model
        import huggingface_hub.constants
        assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
        assert huggingface_hub.constants.HF_HUB_OFFLINE is True
        assert load_sd_model({str(tiny.single_file)!r}).variant == "sd1"
        assert load_sd_model({str(tiny.diffusers_dir)!r}).variant == "sd1"
        print("offline-ok")
        """
    )
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "HUGGINGFACE_")) and k != "DISABLE_TELEMETRY"}
    env["HF_HOME"] = str(tmp_path / "empty-hf-home")  # no cache to fall back on either
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "offline-ok" in result.stdout
    assert not (tmp_path / "empty-hf-home").exists()


def test_offline_mode_context_restores_the_environment(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    with offline_mode():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
        assert is_offline_mode_enabled()
    assert "HF_HUB_OFFLINE" not in os.environ
    assert os.environ["TRANSFORMERS_OFFLINE"] == "0"


def test_offline_mode_does_not_wake_a_lazy_module(monkeypatch):
    """transformers 5.17's lazy modules import a submodule on any unknown attribute: switching to
    offline mode imported an image processor that needs torchvision, and the GPU benchmark failed."""
    import types

    asked: list[str] = []
    lazy = types.ModuleType("transformers.models.lazy_probe")

    def wake(name: str):
        asked.append(name)
        raise ModuleNotFoundError("No module named 'torchvision'")

    lazy.__getattr__ = wake  # PEP 562: what a lazy module does on an unknown name
    monkeypatch.setitem(sys.modules, lazy.__name__, lazy)
    with offline_mode():
        assert is_offline_mode_enabled()
    assert asked == []


def test_pickle_file_loads_when_allowed(tiny, tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(str(tiny.single_file)), "global_step": 1}, path)
    assert_same_weights(load_sd_model(path, allow_pickle=True), load_sd_model(tiny.single_file))


# ----------------------------------------------------------------------- pipeline


# diffusers' DPM-Solver calls np.array(tensor, copy=False), which numpy 2 deprecates.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_build_pipeline_samples_an_image(tiny):
    model = load_sd_model(tiny.single_file)
    pipe = build_pipeline(model)
    assert pipe.unet is model.unet and pipe.safety_checker is None
    assert pipe.scheduler.config.prediction_type == "epsilon"
    images = pipe("a red square", num_inference_steps=2, height=64, width=64, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (1, 64, 64, 3)
