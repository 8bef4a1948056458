"""Steps/s of this trainer against diffusers' LoRA example scripts, on the same tiny model and data.

The references, from a diffusers checkout, given by path at run time (never copied into this
repository): for SDXL `examples/text_to_image/train_text_to_image_lora_sdxl.py`, for Flux.1
`examples/dreambooth/train_dreambooth_lora_flux.py`. They need `datasets` and `torchvision`,
which the trainer does not: ``--reference-path`` puts a folder that has them on their
PYTHONPATH (for example one made with ``pip install --target DIR -c constraints.txt
torchvision datasets``).

Both sides run the same settings (64 px, batch 4, LoRA rank 4 on the denoiser's attention,
AdamW at 1e-4, fp32 on the CPU, no samples, no checkpoints; for Flux.1 one caption for every
image, as the DreamBooth script trains on its instance prompt). Per-step times, so that start-up, model
loading and latent caching do not count: the median gap between consecutive steps, from the
times of our `metrics.jsonl` lines and of the reference's `train_loss` TensorBoard events
(accelerate logs one per optimizer step; ``loss`` in the Flux.1 script).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLUX_PROMPT = "a shape in flat style"


def imagefolder_copy(data: Path, target: Path) -> Path:
    """The images of ``data`` with a `metadata.jsonl` (file_name, text): what `datasets`' imagefolder reads."""
    target.mkdir(parents=True, exist_ok=True)
    rows = []
    for line in (data / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]:
        name, caption = line.split(",", 1)
        shutil.copy(data / name, target / name)
        rows.append(json.dumps({"file_name": name, "text": caption}))
    (target / "metadata.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return target


def _run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{result.stderr[-3000:]}")


def median_gap(times: list[float]) -> float:
    """The median time between consecutive steps, the first step (lazy initialisation) left out."""
    return statistics.median(b - a for a, b in zip(times[1:], times[2:]))


def _event_times(folder: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(folder.rglob("events.out.tfevents.*"))
    if not files:
        raise SystemExit(f"the reference wrote no TensorBoard events under {folder}")
    events = EventAccumulator(str(files[-1].parent), size_guidance={"scalars": 0})
    events.Reload()
    return [event.wall_time for event in events.Scalars(tag)]


# PyPI's torchvision wheels are CUDA builds: next to a CPU torch their C++ ops do not load, and
# importing torchvision then fails while it registers fake kernels for those ops. The reference
# uses only torchvision's pure-Python transforms, so the registrations are skipped (a
# sitecustomize in a folder put first on its PYTHONPATH); nothing it runs changes.
_TORCHVISION_SHIM = (
    "import sys, types\n"
    "sys.modules.setdefault('torchvision._meta_registrations', types.ModuleType('torchvision._meta_registrations'))\n"
)


def reference_step_s(family: str, script: Path, model_dir: Path, data: Path, tmp: Path, steps: int,
                     extra_path: str) -> float:
    """Seconds per optimizer step of diffusers' script (the median gap between its logged steps)."""
    shim = tmp / "torchvision-shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(_TORCHVISION_SHIM, encoding="utf-8")
    path = [str(shim), extra_path, os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    out = tmp / "reference-run"
    common = ["--pretrained_model_name_or_path", str(model_dir), "--resolution", "64", "--center_crop",
              "--train_batch_size", "4", "--max_train_steps", str(steps), "--learning_rate", "1e-4", "--rank", "4",
              "--output_dir", str(out), "--seed", "1", "--mixed_precision", "no", "--dataloader_num_workers", "0",
              "--checkpointing_steps", "1000000", "--lr_scheduler", "constant", "--report_to", "tensorboard"]
    if family == "flux":
        args = ["--instance_data_dir", str(data), "--instance_prompt", FLUX_PROMPT, "--guidance_scale", "1"]
        tag = "loss"
    else:
        args = ["--train_data_dir", str(imagefolder_copy(data, tmp / "reference-data")), "--caption_column", "text"]
        tag = "train_loss"
    _run([sys.executable, str(script), *common, *args], env)
    return median_gap(_event_times(out, tag))


def our_step_s(model_file: Path, data: Path, tmp: Path, steps: int, family: str) -> float:
    """Seconds per optimizer step of `python -m trainer train` with the reference's settings."""
    out = tmp / "ours-run"
    config = tmp / "ours.yaml"
    config.write_text("\n".join([
        f"train_data_dir: {data}", f"base_model: {model_file}", f"output_dir: {out}", "resolution: 64",
        "enable_bucket: false", "batch_size: 4", f"max_train_steps: {steps}", "save_steps: 0",
        "learning_rate: 1e-4", "lora_rank: 4", "lora_target: attention", "cache_latents: memory",
        "tensorboard: false", "num_workers: 0", "seed: 1", "log_every_n_steps: 1",
        *(["timestep_sampling: uniform", "guidance_scale: 1.0"]
          if family == "flux" else []),
    ]) + "\n", encoding="utf-8")
    _run([sys.executable, "-m", "trainer", "train", "--config", str(config)], dict(os.environ))
    return median_gap([json.loads(line)["time"] for line in (out / "metrics.jsonl").read_text().splitlines()])


def one_caption_copies(data: Path, tmp: Path) -> tuple[Path, Path]:
    """The images of ``data`` twice: alone (the DreamBooth script reads every file as an image and
    trains on its instance prompt), and each with that prompt as its `.txt` caption (for us)."""
    images, captioned = tmp / "instance-images", tmp / "one-caption-data"
    for folder in (images, captioned):
        folder.mkdir(parents=True, exist_ok=True)
    for image in data.glob("*.png"):
        shutil.copy(image, images / image.name)
        shutil.copy(image, captioned / image.name)
        (captioned / image.name).with_suffix(".txt").write_text(FLUX_PROMPT + "\n", encoding="utf-8")
    return images, captioned


def compare(family: str, script: Path, model_dir: Path, model: Path, data: Path, tmp: Path, steps: int,
            extra_path: str) -> dict[str, float]:
    """Both per-step times and their ratio (``steps_per_s_over_diffusers_reference``, target >= 1.2)."""
    ours_data = data
    if family == "flux":
        data, ours_data = one_caption_copies(data, tmp)
    reference = reference_step_s(family, script, model_dir, data, tmp, steps, extra_path)
    ours = our_step_s(model, ours_data, tmp, steps, family)
    print(f"{family} tiny, 64 px, batch 4: ours {ours:.3f} s/step, diffusers' example {reference:.3f} s/step "
          f"({reference / ours:.2f}x)", flush=True)
    return {"reference_step_s": round(reference, 4), "our_step_s": round(ours, 4),
            "steps_per_s_over_diffusers_reference": round(reference / ours, 2)}
