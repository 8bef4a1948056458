"""Chaos test of resume: SIGKILL a real training run at random moments, resume it, repeat.

Reports, in one run:
- runs_completed: runs that reached their last step despite the kills;
- kills: SIGKILLs delivered while the trainer was running;
- checkpoints_corrupted: complete-looking checkpoints (final name + COMPLETE marker) that
  failed verification after a kill (target 0);
- weights_identical: runs whose final LoRA is bit-identical to an uninterrupted run (target: all);
- checkpoint_overhead_fraction: checkpoint save time / training time at save_steps 100 on the
  tiny model (target < 0.05).

Usage: python bench/chaos_resume.py [--quick] [--kills N] ; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from trainer_throughput import build_recipe, make_dataset  # noqa: E402  (bench helpers)


def write_config(path: Path, model: Path, data: Path, out: Path, steps: int, save_steps: int) -> Path:
    path.write_text("\n".join([
        f"train_data_dir: {data}", f"base_model: {model}", f"output_dir: {out}", "output_name: lora",
        "resolution: 64", "enable_bucket: false", "batch_size: 4", f"max_train_steps: {steps}",
        f"save_steps: {save_steps}", "keep_last_n_checkpoints: 2", "save_precision: fp32", "tensorboard: false",
        "random_flip: true", "lora_dropout: 0.1", "caption_dropout_rate: 0.2", "learning_rate: 1e-3", "num_workers: 0",
    ]) + "\n", encoding="utf-8")
    return path


def train(config: Path, kill: tuple[int, float] | None = None) -> tuple[int, float]:
    """Run the trainer to the end, or SIGKILL it ``kill = (step, delay)``: ``delay`` seconds
    after the metrics show ``step`` (step 0: ``delay`` seconds after the start, during
    start-up). Returns (exit code, seconds)."""
    started = time.time()
    out = Path(yaml_value(config, "output_dir"))
    process = subprocess.Popen([sys.executable, "-m", "trainer", "train", "--config", str(config)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill is None:
        return process.wait(), time.time() - started
    step, delay = kill
    while process.poll() is None and step and last_step(out / "metrics.jsonl") < step:
        time.sleep(0.01)
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    return process.wait(), time.time() - started


def yaml_value(config: Path, key: str) -> str:
    return next(line.split(": ", 1)[1] for line in config.read_text().splitlines() if line.startswith(key + ":"))


def last_step(metrics: Path) -> int:
    try:
        lines = metrics.read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def corrupted_checkpoints(run: Path) -> list[str]:
    """Checkpoints that claim to be complete but do not verify."""
    from trainer.resume import checkpoint_problem
    from trainer.checkpoint import list_checkpoints
    return [f"{p.name}: {checkpoint_problem(p)}" for p in list_checkpoints(run) if checkpoint_problem(p)]


def same_weights(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 kills on one short run (about a minute)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs in all (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    kills_total = 3 if args.quick else args.kills
    runs = 1 if args.quick else max(1, kills_total // 5)
    steps = 24 if args.quick else 120
    rng = random.Random(args.seed)

    from trainer.models.offline import enable_offline_mode
    enable_offline_mode()
    from trainer.models.tiny import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_tiny_model(tmp / "model").single_file
        make_dataset(tmp / "data", 16, 64)
        reference = tmp / "reference"
        code, _ = train(write_config(tmp / "reference.yaml", model, tmp / "data", reference, steps, 5))
        assert code == 0, "the uninterrupted run failed"

        completed = identical = kills = 0
        corrupted: list[str] = []
        for run_index in range(runs):
            out = tmp / f"chaos-{run_index}"
            config = write_config(tmp / f"chaos-{run_index}.yaml", model, tmp / "data", out, steps, 5)
            share = kills_total // runs + (1 if run_index < kills_total % runs else 0)
            code = None
            for _ in range(share):
                # Mostly during training (a random step, plus up to one step's time so some kills
                # land inside a checkpoint write), sometimes during start-up.
                moment = (0, rng.uniform(0.5, 4.0)) if rng.random() < 0.15 else (rng.randint(1, steps), rng.uniform(0, 0.15))
                code, _ = train(config, kill=moment)
                if code == -signal.SIGKILL:
                    kills += 1
                corrupted += corrupted_checkpoints(out)
                if code == 0:
                    break  # it finished before the kill came
                if code != -signal.SIGKILL:
                    print(f"run {run_index}: the trainer exited with {code} instead of being killed")
            if code != 0:
                code, _ = train(config)
            if code == 0 and json.loads((out / "status.json").read_text())["state"] == "completed":
                completed += 1
                identical += same_weights(out / "lora.safetensors", reference / "lora.safetensors")

        overhead = measure_overhead(model, tmp / "data", tmp, quick=args.quick)

    result = {"runs": runs, "runs_completed": completed, "kills": kills, "checkpoints_corrupted": len(corrupted),
              "weights_identical": identical, "checkpoint_overhead_fraction": round(overhead, 4)}
    for line in corrupted:
        print("corrupted:", line)
    print(f"{completed}/{runs} runs completed after {kills} kills; {len(corrupted)} corrupted checkpoints; "
          f"{identical}/{runs} bit-identical to the uninterrupted run; checkpointing costs {overhead:.1%} of training time")
    print(json.dumps(result))


def measure_overhead(model: Path, data: Path, folder: Path, quick: bool) -> float:
    """One checkpoint per 100 steps: (time of a checkpoint) / (time of 100 steps)."""
    from trainer.data import epoch_batches
    config = write_config(folder / "overhead.yaml", model, data, folder / "overhead", 100, 0)
    recipe, run = build_recipe(config)
    recipe.setup()
    cfg = recipe.config
    batches = epoch_batches(recipe.samples, cfg.batch_size, cfg.seed, 0, cfg.random_flip)
    steps = 30 if quick else 100
    start = time.perf_counter()
    for i in range(steps):
        latents, captions = recipe.batch_inputs(batches[i % len(batches)], None)
        recipe.loss_and_backward(latents, captions)
        recipe.optimizer_step()
        recipe.global_step += 1
    per_step = (time.perf_counter() - start) / steps
    saves = []
    for _ in range(3):
        start = time.perf_counter()
        recipe.save_checkpoint()
        saves.append(time.perf_counter() - start)
    run.close()
    return min(saves) / (100 * per_step)


if __name__ == "__main__":
    main()
