"""End to end through the real CLI: a tiny model trained for a few steps from each caption
format, its run directory, and the LoRA file loaded by diffusers into the same tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.cli_helpers import ROOT, trainer_cli

CAPTIONS = {
    "red_square.png": "a red square, flat style",
    "blue_circle.png": "a blue circle, flat style",
    "green_wide.png": "a green stripe, wide, flat style",
    "yellow_tall.png": "a yellow stripe, tall, flat style",
}
COLOURS = {"red": (220, 40, 40), "blue": (30, 60, 220), "green": (40, 200, 60), "yellow": (240, 220, 30)}
SIZES = {"red_square.png": (64, 64), "blue_circle.png": (72, 72), "green_wide.png": (96, 64), "yellow_tall.png": (64, 96)}
KOHYA_METADATA = ("ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_base_model_version", "ss_output_name",
                  "ss_num_train_images", "ss_steps", "ss_epoch", "ss_learning_rate", "ss_resolution", "ss_tag_frequency",
                  "ss_training_started_at", "ss_training_finished_at", "modelspec.architecture", "modelspec.title")


def single_file(model_dir: Path) -> Path:
    return next(model_dir.glob("*.safetensors"))


def make_dataset(folder: Path, fmt: str) -> Path:
    """Four images of different shapes with captions in the format ``fmt``."""
    folder.mkdir(parents=True)
    for name, caption in CAPTIONS.items():
        Image.new("RGB", SIZES[name], COLOURS[name.split("_")[0]]).save(folder / name)
        if fmt == "txt":
            (folder / name).with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    if fmt == "csv":
        rows = "".join(f'{name},"{caption}"\n' for name, caption in CAPTIONS.items())
        (folder / "metadata.csv").write_text("filename,prompt\n" + rows, encoding="utf-8")
    if fmt == "jsonl":
        rows = "".join(json.dumps({"file_name": n, "text": c}) + "\n" for n, c in CAPTIONS.items())
        (folder / "metadata.jsonl").write_text(rows, encoding="utf-8")
    return folder


def write_config(path: Path, base_model: Path, data: Path, out: Path, **extra) -> Path:
    lines = {
        "train_data_dir": str(data), "base_model": str(base_model), "output_dir": str(out),
        "resolution": 64, "min_bucket_reso": 32, "max_bucket_reso": 128, "bucket_reso_steps": 32,
        "lora_rank": 4, "batch_size": 2, "max_train_steps": 4, "learning_rate": 1e-2, "save_steps": 2,
        "sample_prompts": ["a red square"], "sample_every_n_steps": 4, "sample_steps": 2, "sample_width": 64,
        "sample_height": 64, "seed": 3,
    }
    lines.update(extra)
    import yaml
    path.write_text(yaml.safe_dump(lines, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "txt", "jsonl"])
def test_train_from_each_caption_format(tmp_path, tiny_model, fmt):
    data = make_dataset(tmp_path / "data", fmt)
    out = tmp_path / "run"
    # Samples every 3 steps of 4: at step 3, and at the end (sample_at_end) with the LoRA handed over.
    config = write_config(tmp_path / "config.yaml", single_file(tiny_model), data, out, output_name=f"shapes-{fmt}",
                          sample_every_n_steps=3)
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr

    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == 4 and status["total_steps"] == 4
    assert status["error"] is None

    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert all(m["loss"] > 0 and m["lr"] > 0 and m["samples_per_s"] > 0 for m in metrics)

    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds.count("checkpoint") == 1 and "export" in kinds
    samples = [e for e in events if e["kind"] == "sample"]
    assert [e["step"] for e in samples] == [3, 4]
    assert all(Image.open(out / e["path"]).size == (64, 64) for e in samples)

    checkpoint = out / "checkpoints" / "step-00000002"
    assert (checkpoint / "COMPLETE").exists() and (checkpoint / "training_state.pt").exists()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert "loaded" in (out / "train.log").read_text()
    assert (out / "config.yaml").read_text().startswith("# Resolved config")

    from safetensors import safe_open
    with safe_open(out / f"shapes-{fmt}.safetensors", "pt") as lora:
        keys, metadata = list(lora.keys()), lora.metadata()
    assert keys and all(k.startswith(("lora_unet_", "lora_te_")) for k in keys)
    assert all(k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for k in keys)
    assert any("attn2_to_k" in k for k in keys)
    for field in KOHYA_METADATA:
        assert metadata.get(field), field
    assert metadata["ss_steps"] == "4" and metadata["ss_network_dim"] == "4" and metadata["ss_num_train_images"] == "4"
    assert json.loads(metadata["ss_tag_frequency"])["data"]["flat style"] == 4
    assert (out / "diffusers" / "pytorch_lora_weights.safetensors").exists()


# The pipeline's parts that a kohya file's module names belong to, by name prefix.
KOHYA_PARTS = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder",
               "lora_te2_": "text_encoder_2"}
# Families whose tiny kohya files diffusers can read: its Flux.1 converter assumes Flux.1's
# full sizes (3072 channels), and its SD3 loader reads diffusers' own keys only, so tiny Flux.1
# and SD3 kohya files are checked against ComfyUI's key rules and by their weights instead
# (tests/test_flux.py, tests/test_sd3.py).
KOHYA_IN_DIFFUSERS = {"sd", "sdxl"}


def _injected(part) -> int:
    return len([n for n, m in part.named_modules() if hasattr(m, "lora_A") and len(m.lora_A)])


@pytest.mark.slow
def test_both_lora_files_load_in_the_familys_diffusers_pipeline(family_model, trained_run_of):
    """Both output files of every family load fully in the family's diffusers pipeline
    (every module lands in a model), change what it draws, and draw the same picture;
    samples during training come from the family's own pipeline."""
    import torch
    from diffusers import DiffusionPipeline
    from safetensors import safe_open

    from trainer.model_family import FAMILIES_BY_ID

    out = trained_run_of(FAMILIES_BY_ID[family_model.family].tiny_variant)
    # The family's own pipeline made the sample (SDXL's needs the pooled text and size conditioning).
    sample = Image.open(out / "samples" / "step-00000006_p00.png")
    assert sample.size == (64, 64)

    # diffusers picks the pipeline class from the folder's model_index.json.
    pipe = DiffusionPipeline.from_pretrained(family_model.diffusers_dir, local_files_only=True,
                                             **({"safety_checker": None, "requires_safety_checker": False}
                                                if family_model.family == "sd" else {}))
    pipe.set_progress_bar_config(disable=True)

    def render():
        generator = torch.Generator().manual_seed(0)
        return pipe("a red square", num_inference_steps=2, width=64, height=64, generator=generator,
                    output_type="np").images[0]

    before = render()
    diffusers_file = out / "diffusers" / "pytorch_lora_weights.safetensors"
    with safe_open(diffusers_file, "pt") as lora:
        keys = list(lora.keys())
    # CLIP's `text_model.` level stays in the text encoders' keys: without it diffusers under
    # transformers 4.x fails on the file (IndexError in get_peft_kwargs); 5.x maps it.
    text_keys = [k for k in keys if k.startswith("text_encoder")]
    assert text_keys and all(k.split(".", 1)[1].startswith("text_model.") for k in text_keys)
    pipe.load_lora_weights(str(out / "diffusers"), weight_name="pytorch_lora_weights.safetensors")
    diffusers_layout = render()
    by_part: dict[str, set[str]] = {}
    for key in keys:
        part, module = key.split(".", 1)
        by_part.setdefault(part, set()).add(module.rsplit(".", 2)[0])
    # Every LoRA module of the file landed in its part of the pipeline: nothing missing or unexpected.
    for part, modules in by_part.items():
        assert _injected(getattr(pipe, part)) == len(modules), part
    assert abs(diffusers_layout - before).max() > 1e-3  # the LoRA changes what the model draws
    if family_model.family not in KOHYA_IN_DIFFUSERS:
        return

    pipe.unload_lora_weights()
    lora_file = out / "run.safetensors"
    pipe.load_lora_weights(str(lora_file))
    kohya = render()
    with safe_open(lora_file, "pt") as lora:
        modules = {k.rsplit(".", 2)[0] for k in lora.keys() if k.endswith(".lora_down.weight")}
    counts: dict[str, int] = {}
    for module in modules:
        prefix = next(p for p in sorted(KOHYA_PARTS, key=len, reverse=True) if module.startswith(p))
        counts[KOHYA_PARTS[prefix]] = counts.get(KOHYA_PARTS[prefix], 0) + 1
    assert set(counts) == set(by_part)
    for part, count in counts.items():
        assert _injected(getattr(pipe, part)) == count, part
    # Both files hold the same adapter, so they draw the same picture.
    assert abs(kohya - diffusers_layout).max() < 2e-2


@pytest.mark.slow
def test_a_seed_style_config_trains_an_sdxl_single_file(tmp_path, tiny_model_of):
    """The seed's keys and layout with an SDXL checkpoint as base_model: SDXL's sizes come by
    themselves, the run folder follows the contract, and both files load fully in diffusers."""
    import torch
    from diffusers import StableDiffusionXLPipeline
    from safetensors import safe_open

    tiny = tiny_model_of("sdxl")
    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(tiny.single_file, models / "sd_xl_base_tiny.safetensors")
    make_dataset(tmp_path / "data" / "style_train", "csv")
    config = tmp_path / "configs" / "my_lora_config.yaml"
    config.parent.mkdir()
    # The seed's config, key for key, but one step instead of ten epochs: a step at SDXL's 1024 px
    # takes ~15 s on a CPU even with the tiny model.
    config.write_text('train_data_dir: "../data/style_train"\nmetadata_path: "../data/style_train/metadata.csv"\n'
                      'base_model: "../models/Stable-diffusion/sd_xl_base_tiny.safetensors"\nlora_rank: 8\n'
                      'batch_size: 4\nepochs: 1\nmax_train_steps: 1\nlearning_rate: 2e-4\n'
                      'output_dir: "../output/my_style_lora"\nsave_steps: 100\n', encoding="utf-8")
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "SDXL model: resolution 1024" in result.stderr  # the family's sizes, said once

    out = tmp_path / "output" / "my_style_lora"
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == status["total_steps"] > 0
    assert (out / "config.yaml").exists() and (out / "metrics.jsonl").read_text().strip()
    kinds = [json.loads(line)["kind"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert "start" in kinds and "export" in kinds
    with safe_open(out / "my_style_lora.safetensors", "pt") as lora:
        metadata = lora.metadata()
        modules = {k.rsplit(".", 2)[0] for k in lora.keys() if k.endswith(".lora_down.weight")}
    assert metadata["ss_base_model_version"] == "sdxl_base_v1-0"
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert metadata["modelspec.resolution"] == "1024x1024" and metadata["ss_resolution"] == "(1024, 1024)"
    assert all(m.startswith(("lora_unet_input_blocks_", "lora_unet_middle_block_", "lora_unet_output_blocks_"))
               for m in modules)

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny.diffusers_dir, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def render():
        return pipe("a shape", num_inference_steps=2, width=64, height=64, generator=torch.Generator().manual_seed(0),
                    output_type="np").images[0]

    before = render()
    pipe.load_lora_weights(str(out / "my_style_lora.safetensors"))
    injected = [n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and len(m.lora_A)]
    assert len(injected) == len(modules)
    kohya = render()
    assert abs(kohya - before).max() > 0
    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(out / "diffusers"), weight_name="pytorch_lora_weights.safetensors")
    assert abs(render() - kohya).max() < 2e-2


def test_the_demo_command_prints_only_the_runs_own_lines(tmp_path):
    """`python -m trainer demo` in a fresh interpreter (the libraries print at import, which the
    tests' fork server has done long before): its console holds the run's own lines, and nothing on
    stderr. Before, torchao's "Failed to load …_C_mxfp8….so", torch's Enum deprecation, diffusers'
    "Unable to import `torchao` Tensor objects", transformers' torchvision fallback and a "Writing
    model shards" bar came ahead of the first step in every run's log."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "trainer", "demo", "--workspace", str(tmp_path / "ws")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""
    assert "run completed at step 36" in result.stdout
    assert "Failed to load" not in result.stdout and "Writing model shards" not in result.stdout
    log = (tmp_path / "ws" / "runs" / "shapes-demo" / "train.log").read_text(encoding="utf-8")
    assert "WARNING" not in log and "run completed at step 36" in log


def test_the_demo_command_with_no_train_only_makes_the_workspace(tmp_path):
    """`trainer demo --no-train`: the dataset, the config and the tiny model, ready to train, and no run."""
    from trainer.demo_workspace import CONFIG, DATASET, MODEL_FILE, RUN_DIR
    ws = tmp_path / "ws"
    result = trainer_cli("demo", "--no-train", "--workspace", str(ws))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"config: {ws / CONFIG}" in result.stdout
    assert (ws / MODEL_FILE).stat().st_size > 0 and len(list((ws / DATASET).glob("*.png"))) == 36
    assert not (ws / RUN_DIR).exists() and "step" not in result.stdout  # nothing trained
