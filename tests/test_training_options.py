"""Training options: multires noise, debiased estimation, EMA of the LoRA, Prodigy and schedule-free AdamW.

The formulas are checked in-process; one in-process run with several of them on (DoRA, EMA,
multires noise, debiased estimation, rank dropout) is stopped half-way and resumed, and must end
bit for bit where the uninterrupted run ends, exporting the moving average. Refusals are checked
through the validator (the same checks `train` runs first, exit 2).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from trainer.config.loader import validate_mapping
from trainer.ema import EmaWeights
from trainer.objective import debiased_weights, multires_noise
from trainer.optim import OptimizerUnavailable, make_optimizer


# ------------------------------------------------------------------------- noise and loss


def test_multires_noise_is_unit_scaled_coarser_and_repeats_with_its_generator():
    base = torch.randn(8, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    first = multires_noise(base, torch.Generator().manual_seed(1), 6, 0.8)
    again = multires_noise(base, torch.Generator().manual_seed(1), 6, 0.8)
    assert torch.equal(first, again)  # every draw from the recipe's generator: a resume repeats it
    assert first.shape == base.shape and abs(first.std().item() - 1) < 1e-5
    assert not torch.allclose(first, base / base.std())

    def neighbour_correlation(x: torch.Tensor) -> float:
        return torch.corrcoef(torch.stack([x[..., :-1].flatten(), x[..., 1:].flatten()]))[0, 1].item()

    # Its coarse layers make neighbouring pixels alike; white noise has no such correlation.
    assert neighbour_correlation(first) > 0.2 > abs(neighbour_correlation(base))


def test_debiased_estimation_weights_are_one_over_sqrt_snr():
    from trainer.models.family import make_noise_scheduler

    scheduler = make_noise_scheduler("epsilon")
    timesteps = torch.tensor([0, 10, 500, 999])
    alphas = scheduler.alphas_cumprod[timesteps]
    snr = torch.clamp(alphas / (1 - alphas), max=1000)
    torch.testing.assert_close(debiased_weights(scheduler, timesteps, "epsilon"), 1 / snr.sqrt())
    torch.testing.assert_close(debiased_weights(scheduler, timesteps, "v_prediction"), 1 / (snr + 1))
    weights = debiased_weights(scheduler, timesteps, "epsilon")
    assert weights[0] == pytest.approx(1000 ** -0.5) and weights[-1] > weights[1]  # less weight where nearly clean


# ------------------------------------------------------------------------------------ EMA


def test_ema_warms_up_averages_and_puts_the_weights_back():
    param = torch.nn.Parameter(torch.zeros(3))
    ema = EmaWeights([param], 0.9)
    assert ema.decay_at(1) == pytest.approx(2 / 11) and ema.decay_at(1000) == 0.9
    with torch.no_grad():
        param.fill_(1.0)
    ema.update(1)
    torch.testing.assert_close(ema.average[0], torch.full((3,), 1 - 2 / 11))
    with ema.applied():
        torch.testing.assert_close(param.detach(), ema.average[0])
    assert torch.equal(param.detach(), torch.ones(3))
    restored = EmaWeights([param], 0.9)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.average[0], ema.average[0])


# ------------------------------------------------------------------------------ optimizers


def _params() -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(4, 3, generator=generator)), torch.nn.Parameter(torch.randn(3))]


@pytest.mark.parametrize("name, package", [("Prodigy", "prodigyopt"), ("AdamWScheduleFree", "schedulefree")])
def test_optional_optimizers_train_or_are_refused_by_name(monkeypatch, name, package):
    if importlib.util.find_spec(package) is not None:
        params = _params()
        optimizer = make_optimizer(name, [{"params": params, "lr": 1.0 if name == "Prodigy" else 1e-2}], 1e-2, 0.0,
                                   warmup_steps=2)
        getattr(optimizer, "train", lambda: None)()
        before = [p.detach().clone() for p in params]
        for _ in range(3):
            loss = sum((p ** 2).sum() for p in params)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        assert all(not torch.equal(a, b.detach()) for a, b in zip(before, params))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == package else real(n, *a))
    with pytest.raises(OptimizerUnavailable) as refused:
        make_optimizer(name, [{"params": _params(), "lr": 1e-2}], 1e-2, 0.0)
    assert f"needs the {package} package" in refused.value.message and "optimizer: AdamW" in refused.value.hint


def test_adamw_8bit_is_refused_on_the_cpu():
    with pytest.raises(OptimizerUnavailable) as refused:
        make_optimizer("AdamW8bit", [{"params": _params(), "lr": 1e-4}], 1e-4, 0.0, device=torch.device("cpu"))
    assert "bitsandbytes" in refused.value.message or "CUDA GPU" in refused.value.message


# ------------------------------------------------------------------------------- refusals


def _problems(**values) -> dict[str, str]:
    raw = {"base_model": "/nowhere/model.safetensors", "train_data_dir": "/nowhere/data", "output_dir": "/tmp/out",
           **values}
    config, problems = validate_mapping(raw, check_paths=False)
    return {p.option: p.message for p in problems if p.severity == "error"}


@pytest.mark.parametrize("values, option, words", [
    ({"lora_type": "loha", "use_dora": True}, "use_dora", "lora_type lora"),
    ({"model_family": "flux", "lora_type": "lokr"}, "lora_type", "for SD and SDXL"),
    ({"model_family": "flux", "use_dora": True}, "use_dora", "SD, SDXL and language models"),
    ({"model_family": "llm", "lora_type": "loha", "dataset_path": "/nowhere/rows.jsonl", "train_data_dir": None},
     "lora_type", "for SD and SDXL"),
    ({"optimizer": "AdamWScheduleFree", "lr_scheduler": "cosine"}, "lr_scheduler", "AdamWScheduleFree"),
    ({"optimizer": "AdamWScheduleFree", "ema_decay": 0.999}, "ema_decay", "average already"),
    ({"ema_decay": 1.0}, "ema_decay", "must be"),
    ({"multires_noise_discount": 1.5}, "multires_noise_discount", "must be"),
])
def test_options_that_cannot_work_are_refused_by_name(values, option, words):
    problems = _problems(**values)
    assert option in problems and words in problems[option], problems


def test_the_new_options_validate_for_sd_and_sdxl():
    for family in ("sd", "sdxl"):
        assert _problems(model_family=family, lora_type="lokr", multires_noise_iterations=6,
                         multires_noise_discount=0.3, debiased_estimation_loss=True, ema_decay=0.999,
                         optimizer="Prodigy", learning_rate=1.0, channels_last=True, torch_compile=True) == {}
        assert _problems(model_family=family, optimizer="AdamWScheduleFree", lr_warmup_steps=10) == {}
    assert _problems(model_family="sd", use_dora=True) == {}


# ---------------------------------------------------------- one run, stopped and resumed


def _run(config_path: Path, stop_after: int | None = None, resume: Path | None = None):
    """One in-process run of the image recipe (what `train` runs after its checks); returns the recipe."""
    from trainer.config import load_config
    from trainer.dataset_scan import scan_dataset
    from trainer.recipe import LoRATrainingRecipe
    from trainer.rundir import RunWriter

    config, problems = load_config(config_path)
    assert config is not None, problems
    run = RunWriter(config.output_dir, "test")
    scan = scan_dataset(Path(config.train_data_dir), check_images=False)
    recipe = LoRATrainingRecipe(config, run, scan.items,
                                stop_flag=lambda: stop_after is not None and recipe.global_step >= stop_after)
    try:
        recipe.outcome = recipe.run_all(resume)
    finally:
        recipe.cleanup()
        run.close()
    return recipe


@pytest.mark.slow
def test_dora_ema_multires_debiased_run_resumes_bit_exactly_and_exports_the_average(tmp_path, tiny_model_of):
    from safetensors.torch import load_file

    from tests.test_train_e2e import make_dataset, write_config

    data = make_dataset(tmp_path / "data", "csv")
    options = dict(use_dora=True, ema_decay=0.9, multires_noise_iterations=3, multires_noise_discount=0.5,
                   debiased_estimation_loss=True, lora_dropout=0.1, noise_offset=0.05, max_train_steps=4, save_steps=2,
                   sample_every_n_steps=0, save_precision="fp32", tensorboard=False, cache_latents="memory", output_name="lora",
                   channels_last=True)  # NHWC convolutions on the CPU too: the same run, within rounding
    model = tiny_model_of("sd1").base_model
    whole = _run(write_config(tmp_path / "whole.yaml", model, data, tmp_path / "whole", **options))
    assert whole.outcome == "completed" and whole.levers["channels_last"] == "on"
    stopped = _run(write_config(tmp_path / "part.yaml", model, data, tmp_path / "part", **options), stop_after=2)
    assert stopped.outcome == "stopped"
    checkpoint = tmp_path / "part" / "checkpoints" / "step-00000002"
    assert "ema" in torch.load(checkpoint / "training_state.pt", weights_only=True)
    resumed = _run(tmp_path / "part.yaml", resume=checkpoint)
    assert resumed.outcome == "completed"

    final = load_file(tmp_path / "part" / "lora.safetensors")
    reference = load_file(tmp_path / "whole" / "lora.safetensors")
    assert final.keys() == reference.keys() and any(k.endswith(".dora_scale") for k in final)
    assert all(torch.equal(final[k], reference[k]) for k in final)
    # The file is the moving average, not the last weights.
    def kohya_file() -> dict[str, torch.Tensor]:  # copies: at fp32 the tensors are the parameters themselves
        return {k: v.clone() for k, v in whole.model.kohya_weights(whole.files.states(whole.adapted), 4.0,
                                                                      torch.float32, 4).items()}

    raw = kohya_file()
    with whole.ema.applied():
        average = kohya_file()
    assert all(torch.equal(reference[k], average[k]) for k in reference)
    assert not all(torch.equal(reference[k], raw[k]) for k in reference)
