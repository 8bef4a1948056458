"""Device benchmark: how fast and how small is the trainer's step on a GPU, against the GPU's limit?

Builds full-size architectures with random weights in code (trainer/models/full_size.py: SD 1.5,
SDXL 1.0, Flux.1-dev; trainer/llm/full_size.py: a Llama-3.2-1B-shaped language model; nothing is
downloaded) and trains
them with the trainer's own recipes (the real setup, LoRA, data path, objective and optimizer
step: ``micro_step`` + ``optimizer_step``, as the loop runs them). For each setting it reports:

- it_per_s and samples_per_s (tokens_per_s for the language model): steps after warm-up, timed
  with CUDA synchronised at both ends;
- peak_vram_gb: ``torch.cuda.max_memory_allocated`` over the timed steps (weights included);
- flops_per_step: the model FLOPs of one step counted with ``torch.utils.flop_counter``
  (with gradient checkpointing, counted with it off: recomputation is not model work);
- mfu: flops_per_step x it_per_s over the GPU's dense bf16 peak (the table below, or
  ``--peak-tflops``); null where the peak is unknown (a CPU).

Then each speed/memory lever's effect on the SD 1.5 batch-8 setting (SDPA vs classic attention,
channels_last, cudnn benchmark, fused vs foreach AdamW, 8-bit AdamW, gradient checkpointing,
cached vs VAE-every-step latents, pinned memory, TF32 on an fp32 run, torch.compile), as far as
the time budget (--budget-s) allows: the issue's target settings come first.

Targets (issue 19, H200-class GPU): SD 1.5 512 px batch 8 bf16 rank 8: mfu >= 0.45; SD 1.5 batch 1
rank 8 cached latents: peak <= 4 GB; SDXL 1024 px batch 1 rank 16 gradient checkpointing, latents
and text cached: peak <= 10 GB. Issue 16: Flux.1-dev 1024 px batch 1 rank 16 with gradient
checkpointing and 8-bit base weights fits a 24 GB GPU (peak <= 24 GB), and so does its sample
(sample_peak_vram_gb, sample_s: one 2-step sample rendered after the timed steps; the sample prompt
is encoded with the captions, so only the VAE comes back to the GPU for it).

Usage: python bench/gpu_train.py [--quick] [--device cuda|cpu] [--peak-tflops N] [--budget-s S]
       [--only sd,sdxl,flux,llm] [--no-compile]
``--quick --device cpu`` runs the families' tiny models on the CPU (the suite checks it runs).
The last line is one JSON object. bench/gpu_step.py runs the steps, bench/gpu_levers.py pulls the levers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gpu_levers import lever_effects, tf32_effect  # noqa: E402
from bench.gpu_step import (Clock, Setting, Stepper, build_image_recipe, build_llm_recipe, count_flops,  # noqa: E402
                            free_memory, round_or_none as _round)

# Dense (no sparsity) bf16 tensor-core peaks in TFLOPS from NVIDIA's datasheets, matched against
# torch.cuda.get_device_name() in this order (the more specific names first).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("B200", 2250.0), ("H200 NVL", 835.5), ("H200", 989.4), ("GH200", 989.4), ("H100 NVL", 835.5),
    ("H100 PCIe", 756.0), ("H100", 989.4), ("H800", 989.4), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.05),
    ("L40", 181.05), ("RTX 4090", 165.2), ("RTX A6000", 154.8), ("RTX 3090", 71.0), ("L4", 121.0), ("A10", 125.0),
)


def peak_tflops_of(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name, or None for a GPU (or CPU) the table lacks."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])", device_name, re.IGNORECASE):
            return tflops
    return None


def settings(quick: bool) -> list[Setting]:
    """The issue's target settings first, then the other families."""
    if quick:  # the tiny models, fp32 on the CPU
        return [Setting("sd_tiny_64_b2_r4", "sd", 64, 2, 4, "no"),
                Setting("sdxl_tiny_64_b1_r4_gc", "sdxl", 64, 1, 4, "no", True),
                Setting("flux_tiny_64_b1_r4_gc", "flux", 64, 1, 4, "no", True, sample=True),
                Setting("llm_tiny_64tok_b2_r4", "llm", 64, 2, 4, "no", lora_target="attention_mlp")]
    return [Setting("sd15_512_b8_r8_bf16", "sd", 512, 8, 8, target={"mfu_min": 0.45}),
            Setting("sd15_512_b1_r8_cached", "sd", 512, 1, 8, target={"peak_vram_gb_max": 4.0}),
            Setting("sdxl_1024_b1_r16_gc_cached", "sdxl", 1024, 1, 16, gradient_checkpointing=True,
                    target={"peak_vram_gb_max": 10.0}),
            Setting("flux_dev_1024_b1_r16_gc_cached", "flux", 1024, 1, 16, gradient_checkpointing=True),
            # Flux.1-dev LoRA on a 24 GB GPU, samples included (only the VAE comes back for them: T5 stays off it)
            Setting("flux_dev_1024_b1_r16_gc_cached_int8", "flux", 1024, 1, 16, gradient_checkpointing=True,
                    quantization_bit="8", sample=True, target={"peak_vram_gb_max": 24.0, "sample_peak_vram_gb_max": 24.0}),
            Setting("llm_1b_1024tok_b8_r16", "llm", 1024, 8, 16, lora_target="attention_mlp")]


def measure(name: str, setting: Setting, recipe, clock: Clock, peak_tflops: float | None, steps: int,
            warmup: int, batch_size: int | None = None, shares: str | None = None) -> dict[str, Any]:
    """The figures of one setting on a set-up recipe."""
    step = Stepper(recipe, batch_size)
    step()  # first-call costs (allocations, kernel choice) out of the FLOP count
    flops, recompute = model_flops(recipe, step, setting.gradient_checkpointing)
    clock.reset_peak()
    seconds = clock.time(step, steps, warmup - 1)
    samples = batch_size or setting.batch_size
    result: dict[str, Any] = {
        "name": name, "family": setting.family, "resolution": setting.resolution, "batch_size": samples,
        "rank": setting.rank, "precision": recipe.precision.name, "lora_target": setting.lora_target,
        "gradient_checkpointing": setting.gradient_checkpointing, "it_per_s": round(1 / seconds, 3),
        "samples_per_s": round(samples / seconds, 3), "step_s": round(seconds, 5),
        "peak_vram_gb": _round(clock.peak_gb(), 3), "flops_per_step": flops, "flops_include_recompute": recompute,
        "tflops_per_s": round(flops / seconds / 1e12, 3),
        "mfu": round(flops / seconds / (peak_tflops * 1e12), 4) if peak_tflops else None,
    }
    if setting.family == "llm":
        result["tokens_per_s"] = round(step.last_counts.get("tokens", 0) / seconds, 1)
    else:
        result["cached"] = {"latents": recipe.latents is not None, "text": recipe.prompts.cache_enabled,
                            "offloaded": list(recipe.offloaded)}
        result["levers"] = dict(recipe.levers)
    if setting.sample:  # one 2-step sample at the setting's size, as a run makes them between steps
        clock.reset_peak()
        result["sample_s"] = round(clock.time(recipe.sample, 1, 0), 3)
        result["sample_peak_vram_gb"] = _round(clock.peak_gb(), 3)
    if shares:
        result["shares_model_with"] = shares
    result["meets_target"] = meets(setting.target, result)
    if setting.target:
        result["target"] = setting.target
    return result


def model_flops(recipe, step: Stepper, checkpointing: bool) -> tuple[int, bool]:
    """FLOPs of one step without gradient checkpointing's recomputation, when that fits; else with it."""
    denoiser = getattr(getattr(recipe, "model", None), "denoiser", None)
    if not checkpointing or denoiser is None:
        return count_flops(step), checkpointing
    denoiser.disable_gradient_checkpointing()
    try:
        return count_flops(step), False
    except Exception:  # out of memory without checkpointing: count what runs
        free_memory()
        return count_flops(step), True
    finally:
        denoiser.enable_gradient_checkpointing()
        free_memory()


def meets(target: dict[str, float], result: dict[str, Any]) -> bool | None:
    """Whether ``result`` meets ``target`` (None: no target, or its figure was not measurable here)."""
    checks = []
    if "mfu_min" in target:
        checks.append(None if result["mfu"] is None else result["mfu"] >= target["mfu_min"])
    for figure in ("peak_vram_gb", "sample_peak_vram_gb"):
        if f"{figure}_max" in target:
            peak = result.get(figure)
            checks.append(None if peak is None else peak <= target[f"{figure}_max"])
    if not checks or None in checks:
        return None
    return all(checks)



# ------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny models and a few steps (CPU: well under a minute)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when there is one")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense bf16 peak in TFLOPS (default: from the table of known GPUs)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="skip the remaining levers after this many seconds (the settings always run)")
    parser.add_argument("--only", default=None, help="comma-separated families to run (sd, sdxl, flux, llm)")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it compiles for minutes)")
    parser.add_argument("--json-out", type=Path, default=None,
                        help="also write the figures so far to this file after every setting and lever (a run cut "
                             "short by a time limit keeps what it measured)")
    args = parser.parse_args(argv)

    import torch

    from trainer.models.offline import enable_offline_mode

    enable_offline_mode()
    started = time.time()
    deadline = started + args.budget_s
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible")
    if args.quick and device.type == "cpu":
        # Tiny models: one thread. Two threads spin-waiting on a busy 2-core machine made it 6x slower.
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or (peak_tflops_of(name) if device.type == "cuda" else None)
    # The settings' first step (before the FLOP count) warms up; the levers warm each state up once more.
    steps, warmup = (2, 1) if args.quick else (10, 3)
    only = set(args.only.split(",")) if args.only else None
    clock = Clock(device)
    results: list[dict[str, Any]] = []
    levers: list[dict[str, Any]] = []
    print(f"device {name}, dense bf16 peak {peak or 'unknown'} TFLOPS, torch {torch.__version__}", flush=True)

    def summary(done: bool) -> dict[str, Any]:
        figures = {"device": name, "device_type": device.type, "peak_bf16_tflops": peak, "torch": torch.__version__,
                   "quick": args.quick, "elapsed_s": round(time.time() - started, 1), "complete": done,
                   "results": results, "levers": levers,
                   "targets_met": {r["name"]: r.get("meets_target") for r in results if "target" in r}}
        if args.json_out is not None:
            args.json_out.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
        return figures

    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as folder:
        tmp = Path(folder)
        chosen = [s for s in settings(args.quick) if only is None or s.family in only]
        shared: dict[str, Any] = {}  # the SD batch-8 recipe also serves batch 1 and the levers
        for setting in chosen:
            recipe = None
            try:
                if setting.name == "sd15_512_b1_r8_cached" and "sd" in shared:
                    results.append(measure(setting.name, setting, shared["sd"], clock, peak, steps, warmup,
                                           batch_size=1, shares=shared["sd_name"]))
                    print(_line(results[-1]), flush=True)
                    continue
                build = build_llm_recipe if setting.family == "llm" else build_image_recipe
                built = time.time()
                recipe = build(setting, tmp, device, args.quick)
                setup_s = time.time() - built
                results.append(measure(setting.name, setting, recipe, clock, peak, steps, warmup))
                results[-1]["setup_s"] = round(setup_s, 1)
                results[-1]["measure_s"] = round(time.time() - built - setup_s, 1)
                print(_line(results[-1]), flush=True)
                if setting.family == "sd" and "sd" not in shared:
                    shared["sd"], shared["sd_name"] = recipe, setting.name
                    recipe = None
            except Exception as exc:  # one setting failing (out of memory ...) must not lose the others
                traceback.print_exc()
                results.append({"name": setting.name, "family": setting.family,
                                "error": f"{type(exc).__name__}: {exc}"[:500]})
            finally:
                del recipe
                free_memory()
                summary(False)
        if "sd" in shared:
            print("levers on " + shared["sd_name"], flush=True)
            sd_setting = next(s for s in chosen if s.name == shared["sd_name"])
            try:
                # --quick only shows that each lever runs: one timed step per state.
                lever_effects(shared["sd"], sd_setting, clock, 1 if args.quick else steps, warmup, deadline,
                              compile_too=not (args.quick or args.no_compile), results=levers,
                              after_each=lambda: summary(False))
            except Exception as exc:
                traceback.print_exc()
                levers.append({"lever": "all", "error": f"{type(exc).__name__}: {exc}"[:500]})
            shared.clear()
            free_memory()
            if device.type == "cuda" and time.time() < deadline:
                try:
                    levers.append(tf32_effect(tmp, device, clock, steps, warmup, args.quick))
                except Exception as exc:
                    levers.append({"lever": "tf32", "error": f"{type(exc).__name__}: {exc}"[:500]})
            elif device.type != "cuda":
                levers.append({"lever": "tf32", "skipped": "CUDA only"})

    figures = summary(True)
    print(json.dumps(figures))
    return figures


def _line(result: dict[str, Any]) -> str:
    mfu = f", MFU {result['mfu']:.1%}" if result.get("mfu") is not None else ""
    peak = f", peak {result['peak_vram_gb']:.2f} GB" if result.get("peak_vram_gb") is not None else ""
    return (f"{result['name']}: {result['it_per_s']:.2f} it/s, {result['samples_per_s']:.2f} samples/s, "
            f"{result['flops_per_step'] / 1e12:.2f} TFLOP/step{mfu}{peak}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
