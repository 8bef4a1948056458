"""The levers' effects for bench/gpu_train.py: each speed or memory lever of the trainer pulled both ways
on a set-up recipe, as far as the time budget allows."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.gpu_step import Clock, Setting, Stepper, build_image_recipe, free_memory, round_or_none as _round


def lever_effects(recipe, setting: Setting, clock: Clock, steps: int, warmup: int, deadline: float,
                  compile_too: bool, results: list[dict[str, Any]],
                  after_each: Callable[[], Any] = lambda: None) -> list[dict[str, Any]]:
    """Each lever's effect on ``recipe``'s step: rate and peak with the lever as the trainer sets it
    ("on") and the other way ("off"); each lever is put back before the next. Appends to ``results``."""
    import torch

    from trainer import speed

    denoiser = recipe.model.denoiser
    cuda = recipe.precision.device.type == "cuda"

    def run(stepper: Stepper | None = None) -> tuple[float, float | None]:
        stepper = stepper or Stepper(recipe)
        try:
            clock.reset_peak()
            seconds = clock.time(stepper, steps, warmup)
        finally:
            stepper.close()
        return 1 / seconds, clock.peak_gb()

    def compare(lever: str, on: str, off: str, set_on: Callable[[], None], set_off: Callable[[], None],
                stepper: Callable[[], Stepper] | None = None, note: str = "") -> None:
        if time.time() > deadline:
            results.append({"lever": lever, "skipped": "time budget spent"})
            return
        try:
            set_off()
            rate_off, peak_off = run(stepper() if stepper else None)
            set_on()
            rate_on, peak_on = run(stepper() if stepper else None)
        except Exception as exc:  # a lever this machine cannot pull: say so, keep going
            set_on()
            results.append({"lever": lever, "error": f"{type(exc).__name__}: {exc}"[:300]})
            return
        record = {"lever": lever, "on": on, "off": off, "it_per_s_on": round(rate_on, 3),
                  "it_per_s_off": round(rate_off, 3), "speedup": round(rate_on / rate_off, 3),
                  "peak_vram_gb_on": _round(peak_on, 3), "peak_vram_gb_off": _round(peak_off, 3)}
        if note:
            record["note"] = note
        results.append(record)
        after_each()
        print(f"  {lever}: {on} {rate_on:.2f} it/s vs {off} {rate_off:.2f} it/s", flush=True)

    def skip(lever: str, why: str) -> None:
        results.append({"lever": lever, "skipped": why})

    compare("attention", "sdpa", "classic", lambda: speed.use_sdpa(denoiser), lambda: speed.use_classic_attention(denoiser))
    channels = recipe.levers.get("channels_last") == "on"
    compare("channels_last", "on", "off", lambda: speed.set_channels_last(denoiser, True),
            lambda: speed.set_channels_last(denoiser, False),
            note="" if channels else "the trainer leaves it off here (auto: CUDA UNets only)")
    speed.set_channels_last(denoiser, channels)
    if cuda:
        compare("cudnn_benchmark", "on", "off", lambda: setattr(torch.backends.cudnn, "benchmark", True),
                lambda: setattr(torch.backends.cudnn, "benchmark", False))
    else:
        skip("cudnn_benchmark", "CUDA only")
    optimizer = recipe.optimizer
    groups = [{"params": g["params"], "lr": g["lr"]} for g in optimizer.param_groups]
    compare("fused_adamw", "fused" if cuda else "foreach (CPU)", "foreach" if cuda else "fused",
            lambda: setattr(recipe, "optimizer", torch.optim.AdamW(groups, **speed.adamw_implementation(
                recipe.precision.device))),
            lambda: setattr(recipe, "optimizer", torch.optim.AdamW(groups, foreach=True) if cuda
                            else torch.optim.AdamW(groups, fused=True)))
    import importlib.util

    if cuda and importlib.util.find_spec("bitsandbytes") is not None:
        from trainer.optim import make_optimizer

        compare("adamw_8bit", "8-bit AdamW", "AdamW", lambda: setattr(recipe, "optimizer", make_optimizer(
            "AdamW8bit", groups, 1e-4, 0.01, device=recipe.precision.device)),
            lambda: setattr(recipe, "optimizer", torch.optim.AdamW(groups, **speed.adamw_implementation(
                recipe.precision.device))))
    else:
        skip("adamw_8bit", "needs bitsandbytes and CUDA")
    recipe.optimizer = optimizer
    compare("gradient_checkpointing", "on", "off", denoiser.enable_gradient_checkpointing,
            denoiser.disable_gradient_checkpointing, note="a memory lever: on costs speed")
    if setting.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    else:
        denoiser.disable_gradient_checkpointing()
    _latent_cache_lever(recipe, compare)
    if cuda:
        _pinned_lever(recipe, compare)
    else:
        skip("pinned_memory", "CUDA only")
    if compile_too:
        results.append(_compile_lever(recipe, clock, steps, warmup, deadline))
    else:
        skip("torch_compile", "--no-compile or --quick")
    return results


def _uncached_stepper(recipe, pin: bool) -> Callable[[], Stepper]:
    """Steps that load and VAE-encode their images (as with cache_latents: off)."""
    from trainer.data import image_loader

    def make() -> Stepper:
        stepper = Stepper(recipe)
        batches = stepper.batches * 1000
        stepper.images = zip(batches, image_loader(recipe.samples, batches, 0, recipe.config, pin_memory=pin))
        return stepper
    return make


def _latent_cache_lever(recipe, compare) -> None:
    import torch

    latents = recipe.latents
    vae_home = next(recipe.model.vae.parameters()).device

    def cached() -> None:
        recipe.latents = latents
        recipe.model.vae.to(vae_home)

    def uncached() -> None:
        recipe.latents = None
        recipe.model.vae.to(recipe.precision.device)

    compare("latent_cache", "cached", "VAE every step", cached, uncached,
            stepper=lambda: Stepper(recipe) if recipe.latents is not None else _uncached_stepper(
                recipe, recipe.precision.device.type == "cuda")(),
            note="uncached: images decoded by 2 workers and VAE-encoded each step")
    torch.cuda.empty_cache() if torch.cuda.is_available() else None


def _pinned_lever(recipe, compare) -> None:
    latents = recipe.latents
    vae_home = next(recipe.model.vae.parameters()).device
    state = {"pin": True}

    def uncached(pin: bool) -> Callable[[], None]:
        def apply() -> None:
            recipe.latents = None
            recipe.model.vae.to(recipe.precision.device)
            state["pin"] = pin
        return apply

    compare("pinned_memory", "pinned", "pageable", uncached(True), uncached(False),
            stepper=lambda: _uncached_stepper(recipe, state["pin"])(), note="with cache_latents: off")
    recipe.latents = latents
    recipe.model.vae.to(vae_home)


def _compile_lever(recipe, clock: Clock, steps: int, warmup: int, deadline: float) -> dict[str, Any]:
    """torch.compile of the denoiser (the trainer's compile_with_fallback): compile time, then the rate."""
    from trainer.speed import compile_with_fallback

    if time.time() > deadline:
        return {"lever": "torch_compile", "skipped": "time budget spent"}
    denoiser = recipe.model.denoiser
    failures: list[str] = []
    base = Stepper(recipe)
    clock.reset_peak()
    rate_off = 1 / clock.time(base, steps, warmup)
    peak_off = clock.peak_gb()
    compile_with_fallback(denoiser, failures.append)
    stepper = Stepper(recipe)
    start = time.perf_counter()
    stepper()  # compiles
    stepper()
    clock.sync()
    compile_s = time.perf_counter() - start
    clock.reset_peak()
    rate_on = 1 / clock.time(stepper, steps, warmup)
    record = {"lever": "torch_compile", "on": "compiled", "off": "eager", "it_per_s_on": round(rate_on, 3),
              "it_per_s_off": round(rate_off, 3), "speedup": round(rate_on / rate_off, 3),
              "peak_vram_gb_on": _round(clock.peak_gb(), 3), "peak_vram_gb_off": _round(peak_off, 3),
              "compile_s": round(compile_s, 1)}
    if failures:
        record["fell_back"] = failures[0]
    vars(denoiser).pop("forward", None)  # the class's own forward again
    print(f"  torch_compile: {rate_on:.2f} it/s vs eager {rate_off:.2f} it/s (compiling took {compile_s:.0f} s)",
          flush=True)
    return record


def tf32_effect(tmp: Path, device, clock: Clock, steps: int, warmup: int, quick: bool) -> dict[str, Any]:
    """TF32 on an fp32 SD run (batch 4): the only precision where it does anything."""
    import torch

    setting = Setting("sd15_512_b4_fp32", "sd", 64 if quick else 512, 4, 8, "no")
    recipe = build_image_recipe(setting, tmp, device, quick)
    try:
        rates = {}
        for allowed in (False, True):
            torch.set_float32_matmul_precision("high" if allowed else "highest")
            torch.backends.cudnn.allow_tf32 = allowed
            rates[allowed] = 1 / clock.time(Stepper(recipe), steps, warmup)
        return {"lever": "tf32", "on": "tf32", "off": "fp32", "setting": setting.name,
                "it_per_s_on": round(rates[True], 3), "it_per_s_off": round(rates[False], 3),
                "speedup": round(rates[True] / rates[False], 3)}
    finally:
        del recipe
        free_memory()

