"""End to end through the real CLI: a tiny model trained for a few steps from each caption
format, its run directory, and the LoRA file loaded by diffusers into the same tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.cli_helpers import trainer_cli
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
    config = write_config(tmp_path / "config.yaml", single_file(tiny_model), data, out, output_name=f"shapes-{fmt}")
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
    assert kinds.count("checkpoint") == 1 and kinds.count("sample") == 1 and "export" in kinds
    sample = next(e for e in events if e["kind"] == "sample")
    assert (out / sample["path"]).exists() and Image.open(out / sample["path"]).size == (64, 64)

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


@pytest.mark.slow
def test_kohya_lora_loads_in_diffusers_and_changes_output(tmp_path, tiny_model):
    import torch
    from diffusers import StableDiffusionPipeline

    data = make_dataset(tmp_path / "data", "csv")
    out = tmp_path / "run"
    config = write_config(tmp_path / "config.yaml", tiny_model / "diffusers", data, out, max_train_steps=6,
                          sample_every_n_steps=0, sample_prompts=[], learning_rate=5e-2, lora_target="all",
                          train_text_encoder=True)
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model / "diffusers", safety_checker=None,
                                                   requires_safety_checker=False, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def render():
        generator = torch.Generator().manual_seed(0)
        return pipe("a red square", num_inference_steps=2, width=64, height=64, generator=generator,
                    output_type="np").images[0]

    before = render()
    lora_file = out / "run.safetensors"
    pipe.load_lora_weights(str(lora_file))
    after = render()
    # Every LoRA module of the file landed in the UNet or the text encoder.
    from safetensors import safe_open
    with safe_open(lora_file, "pt") as lora:
        modules = {k.rsplit(".", 2)[0] for k in lora.keys() if k.endswith(".lora_down.weight")}
    for model, prefix in ((pipe.unet, "lora_unet_"), (pipe.text_encoder, "lora_te_")):
        injected = [n for n, m in model.named_modules() if hasattr(m, "lora_A") and len(m.lora_A)]
        assert injected and len(injected) == len([m for m in modules if m.startswith(prefix)]), prefix
    assert abs(after - before).max() > 1e-3  # the LoRA changes what the model draws

    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(out / "diffusers"), weight_name="pytorch_lora_weights.safetensors")
    diffusers_layout = render()
    # Both files hold the same adapter (up to fp16 storage), so they draw the same picture.
    assert abs(diffusers_layout - after).max() < 2e-2
