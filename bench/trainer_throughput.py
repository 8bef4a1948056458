"""Trainer throughput: is the data path making the model wait?

Measures, on the tiny model at batch 4 with latent caching on, in one run:
- real_steps_per_s: optimizer steps/s through the real data path (latent cache lookup,
  latent sampling, caption processing, text embeddings) — warm (cache full);
- in_memory_steps_per_s: the same steps on one batch already in memory (no data path);
- data_stall_ratio: real / in-memory (1.0 means the data path costs nothing; target >= 0.95);
  data_stall_step_time_ratio the same as step times (in-memory / real steps/s; target <= 1.02);
- cold_epoch_steps_per_s: the first epoch with an empty disk cache, the encoding included;
- uncached_steps_per_s: cache_latents off (images decoded and VAE-encoded every step);
- time_to_first_step_s: process start to the first optimizer step of `python -m trainer train`
  (cold: empty latent cache; warm: a second run that reads the disk cache);
- step_over_bare_ratio_<R>px: at each `--resolution` R (batch 1, latents cached, LoRA rank 8 on
  `attention_ff`), the median step time inside `python -m trainer train` (from the times of
  its metrics.jsonl lines) over the median forward + backward of the same model and LoRA,
  loaded the same way, on one batch in memory (1.0 means the recipe adds nothing to the
  model's own work; target <= 1.10). Per-step times, so start-up does not count.

``--family sdxl`` measures the tiny SDXL model instead (two text encoders, both cached, and
the size conditioning of every image).

Usage: python bench/trainer_throughput.py [--quick] [--family sd|sdxl] [--resolution 64,256,512] ;
the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_dataset(folder: Path, count: int, size: int) -> None:
    """``count`` images with varied colours and captions (metadata.csv)."""
    from PIL import Image, ImageDraw
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["filename,prompt"]
    for i in range(count):
        image = Image.new("RGB", (size, size), ((i * 37) % 255, (i * 91) % 255, (i * 53) % 255))
        ImageDraw.Draw(image).ellipse([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=(255 - i % 255, 20, 40))
        image.save(folder / f"img_{i:04d}.png")
        rows.append(f"img_{i:04d}.png,a shape number {i % 7} in flat style")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def write_config(path: Path, model: Path, data: Path, out: Path, steps: int, cache: str) -> Path:
    path.write_text("\n".join([
        f"train_data_dir: {data}", f"base_model: {model}", f"output_dir: {out}", "resolution: 64",
        "enable_bucket: false", "batch_size: 4", f"max_train_steps: {steps}", "save_steps: 0",
        f"cache_latents: {cache}", "tensorboard: false", "learning_rate: 1e-4", "num_workers: 0",
    ]) + "\n", encoding="utf-8")
    return path


def build_recipe(config_path: Path):
    from trainer.config import load_config
    from trainer.dataset_scan import scan_dataset
    from trainer.recipe import LoRATrainingRecipe
    from trainer.rundir import RunWriter
    config, problems = load_config(config_path)
    assert config is not None, problems
    scan = scan_dataset(Path(config.train_data_dir), check_images=False)
    run = RunWriter(config.output_dir, "bench")
    return LoRATrainingRecipe(config, run, scan.items), run


def time_real_steps(recipe, steps: int) -> float:
    """Seconds for ``steps`` optimizer steps through the real data path."""
    from trainer.data import epoch_batches
    cfg = recipe.config
    batches = epoch_batches(recipe.samples, cfg.batch_size, cfg.seed, 0, cfg.random_flip)
    loader = None
    if recipe.latents is None:
        from trainer.data import image_loader
        loader = image_loader(recipe.samples, batches * (steps // len(batches) + 1), 0, cfg)
    start = time.perf_counter()
    for i in range(steps):
        images = next(loader) if loader is not None else None
        latents, captions, geometry = recipe.batch_inputs(batches[i % len(batches)], images)
        recipe.loss_and_backward(latents, captions, geometry)
        recipe.optimizer_step()
    return time.perf_counter() - start


def time_in_memory_steps(recipe, steps: int) -> float:
    """Seconds for ``steps`` optimizer steps on one batch that is already in memory."""
    from trainer.data import epoch_batches
    cfg = recipe.config
    batch = epoch_batches(recipe.samples, cfg.batch_size, cfg.seed, 0, cfg.random_flip)[0]
    latents, captions, geometry = recipe.batch_inputs(batch, None)
    start = time.perf_counter()
    for _ in range(steps):
        recipe.loss_and_backward(latents, captions, geometry)
        recipe.optimizer_step()
    return time.perf_counter() - start


def time_to_first_step(config_path: Path, out: Path) -> float:
    """Process start to the first metrics line of a real `python -m trainer train` run."""
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "trainer", "train", "--config", str(config_path)], cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    return first["time"] - started


def bare_step_s(model_path: Path, resolution: int, rounds: int) -> float:
    """Median seconds of one forward + backward of the denoiser with the trainer's LoRA, outside the recipe."""
    import torch
    from trainer.data import ImageGeometry
    from trainer.lora import add_lora
    from trainer.models.family import load_base_model
    model = load_base_model(model_path)
    denoiser = model.denoiser
    add_lora(denoiser, model.lora_targets(model.denoiser_name, "attention_ff"), 8, 8.0, 0.0)
    denoiser.train()
    side = resolution // model.vae_scale_factor
    latents = torch.randn(1, model.vae.config.latent_channels, side, side)
    with torch.no_grad():  # the text, as the trainer's cache holds it
        conditioning = model.prompt_encoder(1, torch.device("cpu"), cache=False).encode(["a shape in flat style"])
    geometry = [ImageGeometry((resolution, resolution), (0, 0), (resolution, resolution))]
    timesteps = model.sample_timesteps(latents, torch.Generator().manual_seed(0))
    times = []
    for _ in range(rounds + 1):  # the first round warms the allocator up
        start = time.perf_counter()
        model.predict(latents, timesteps, conditioning, geometry).float().pow(2).mean().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


WARM_UP_STEPS = 5  # steps of `python -m trainer train` left out of its per-step time


def trainer_step_s(tmp: Path, model_path: Path, resolution: int, steps: int) -> float:
    """Median seconds between consecutive optimizer steps of `python -m trainer train` at ``resolution``."""
    data = tmp / f"data-{resolution}"
    make_dataset(data, 4, resolution)
    out = tmp / f"run-{resolution}"
    config = tmp / f"step-{resolution}.yaml"
    config.write_text("\n".join([
        f"train_data_dir: {data}", f"base_model: {model_path}", f"output_dir: {out}", f"resolution: {resolution}",
        "enable_bucket: false", "batch_size: 1", f"max_train_steps: {steps + WARM_UP_STEPS}", "save_steps: 0",
        "cache_latents: memory", "tensorboard: false", "num_workers: 0", "lora_rank: 8", "lora_target: attention_ff",
        "log_every_n_steps: 1",
    ]) + "\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "trainer", "train", "--config", str(config)], cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    times = [json.loads(line)["time"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    # The first steps pay for lazy initialisation and the allocator's warm-up (about 30 % slower
    # for a few steps at 256 px); the gaps after them are steady-state steps.
    steady = times[WARM_UP_STEPS - 1:]
    return statistics.median(b - a for a, b in zip(steady, steady[1:]))


def step_ratios(tmp: Path, model_path: Path, resolutions: list[int], quick: bool) -> dict[str, float]:
    """Trainer step time over the bare forward + backward, per resolution."""
    figures: dict[str, float] = {}
    for resolution in resolutions:
        # Small steps are noisy: more of them where they are cheap (about 20 s per resolution at most).
        steps = max(8, round(30 * (64 / resolution) ** 2)) * (1 if quick else 2)
        bare = bare_step_s(model_path, resolution, steps)
        inside = trainer_step_s(tmp, model_path, resolution, steps)
        figures[f"bare_step_s_{resolution}px"] = round(bare, 4)
        figures[f"trainer_step_s_{resolution}px"] = round(inside, 4)
        figures[f"step_over_bare_ratio_{resolution}px"] = round(inside / bare, 3)
        print(f"{resolution} px: trainer step {inside:.3f} s, bare forward + backward {bare:.3f} s "
              f"(ratio {inside / bare:.3f})", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument("--family", default="sd", choices=("sd", "sdxl", "flux"),
                        help="the tiny model's family (sd: SD 1.x shapes; sdxl: SDXL's two encoders and size "
                             "conditioning; flux: Flux.1-dev's transformer, T5 and CLIP)")
    parser.add_argument("--reference-script", type=Path, default=None,
                        help="with --family sdxl or flux: diffusers' example script for it, from a diffusers checkout "
                             "(see bench/reference_scripts.py), to compare steps/s with it")
    parser.add_argument("--reference-path", default="",
                        help="a folder with the reference script's extra packages (datasets, torchvision)")
    parser.add_argument("--resolution", default=None,
                        help="comma-separated resolutions for the step ratio (default 64,256,512; --quick: 64,256)")
    args = parser.parse_args()
    if args.reference_script is not None and (args.family == "sd" or not args.reference_script.is_file()):
        parser.error("--reference-script needs --family sdxl or flux and the path of diffusers' example script "
                     "(train_text_to_image_lora_sdxl.py, train_dreambooth_lora_flux.py)")
    images, steps, rounds = (32, 12, 2) if args.quick else (128, 64, 5)
    try:
        resolutions = [int(r) for r in (args.resolution or ("64,256" if args.quick else "64,256,512")).split(",")]
    except ValueError:
        parser.error(f"--resolution takes whole numbers separated by commas, not {args.resolution!r}")

    import torch
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from trainer.models.offline import enable_offline_mode
    enable_offline_mode()
    from trainer.models.tiny import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny = make_tiny_model(tmp / "model", family="sd1" if args.family == "sd" else args.family)
        model = tiny.single_file or tiny.diffusers_dir
        make_dataset(tmp / "data", images, 64)
        per_epoch = images // 4

        # Cold: the first epoch with an empty disk cache, cache filling included.
        cfg = write_config(tmp / "disk.yaml", model, tmp / "data", tmp / "run-disk", per_epoch, "disk")
        recipe, run = build_recipe(cfg)
        recipe.setup()
        cold_epoch = recipe.cache_fill_s + time_real_steps(recipe, per_epoch)

        # Warm: alternate real and in-memory rounds so machine noise hits both alike.
        time_real_steps(recipe, 4)
        real, memory = [], []
        for _ in range(rounds):
            real.append(time_real_steps(recipe, steps))
            memory.append(time_in_memory_steps(recipe, steps))
        run.close()

        cfg_off = write_config(tmp / "off.yaml", model, tmp / "data", tmp / "run-off", per_epoch, "off")
        recipe_off, run_off = build_recipe(cfg_off)
        recipe_off.setup()
        time_real_steps(recipe_off, 2)
        uncached = time_real_steps(recipe_off, steps)
        run_off.close()

        cli_cold = write_config(tmp / "cli1.yaml", model, tmp / "data", tmp / "cli1", 2, "disk")
        (tmp / "data" / ".lora_cache").exists() and __import__("shutil").rmtree(tmp / "data" / ".lora_cache")
        first_cold = time_to_first_step(cli_cold, tmp / "cli1")
        cli_warm = write_config(tmp / "cli2.yaml", model, tmp / "data", tmp / "cli2", 2, "disk")
        first_warm = time_to_first_step(cli_warm, tmp / "cli2")
        ratios = step_ratios(tmp, model, resolutions, args.quick)
        if args.reference_script is not None:
            from bench.reference_scripts import compare
            ratios.update(compare(args.family, args.reference_script, tiny.diffusers_dir, model, tmp / "data", tmp,
                                  30 if args.quick else 100, args.reference_path))

    real_rate = steps / min(real)
    memory_rate = steps / min(memory)
    result = {
        "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(0),
        "model": f"tiny {args.family} (make-tiny-model)", "family": args.family, "batch_size": 4, "resolution": 64,
        "images": images,
        "real_steps_per_s": round(real_rate, 2),
        "in_memory_steps_per_s": round(memory_rate, 2),
        "data_stall_ratio": round(real_rate / memory_rate, 3),
        # The same as a step-time ratio: real data path over batch in memory (target <= 1.02).
        "data_stall_step_time_ratio": round(memory_rate / real_rate, 3),
        "cold_epoch_steps_per_s": round(per_epoch / cold_epoch, 2),
        "uncached_steps_per_s": round(steps / uncached, 2),
        "time_to_first_step_cold_s": round(first_cold, 2),
        "time_to_first_step_warm_s": round(first_warm, 2),
        **ratios,
    }
    print(f"real data path {real_rate:.1f} steps/s, batch in memory {memory_rate:.1f} steps/s "
          f"(ratio {real_rate / memory_rate:.3f}); first epoch cold {per_epoch / cold_epoch:.1f} steps/s; "
          f"no latent cache {steps / uncached:.1f} steps/s; first step after {first_cold:.1f} s cold, {first_warm:.1f} s warm")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
