"""Two training processes (torchrun, gloo on the CPU) train one LoRA; rank 0 alone writes the run."""

from __future__ import annotations

import json

import pytest
import torch

from tests.cli_helpers import torchrun_trainer
from trainer.config import load_config
from trainer.dataset_scan import scan_dataset
from trainer.estimate import run_figures
from tests.test_train_e2e import make_dataset

pytestmark = pytest.mark.slow


def test_two_process_ddp_trains_and_writes_the_curve_once(tmp_path, tiny_model_of):
    """The shared loop's DDP (gradient averaging, rank 0 writes, every rank's random state saved), on SD;
    tests/llm runs it for language models."""
    family_model = tiny_model_of("sd1")
    data = make_dataset(tmp_path / "data", "txt")
    out = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text("\n".join([
        f"train_data_dir: {data}", f"base_model: {family_model.base_model}", f"output_dir: {out}",
        "resolution: 64", "enable_bucket: false", "batch_size: 1", "max_train_steps: 4", "save_steps: 2",
        "tensorboard: false", "learning_rate: 1e-3"]) + "\n", encoding="utf-8")
    result = torchrun_trainer(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 processes" in (out / "train.log").read_text()
    # 4 images at batch 1 on 2 ranks: 2 optimizer steps per epoch.
    assert "4 batches per epoch, 2 steps per epoch" in (out / "train.log").read_text()

    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]  # written once, by rank 0
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == 4 and status["total_epochs"] == 2
    # The form's figures count the same steps for two processes as the trainer did.
    loaded, _ = load_config(config)
    figures = run_figures(loaded, scan_dataset(data, check_images=False).items, world_size=2)
    assert (figures.steps_per_epoch, figures.total_steps, figures.epochs) == (2, status["total_steps"], 2)
    state = torch.load(out / "checkpoints" / "step-00000002" / "training_state.pt", weights_only=True)
    assert len(state["rank_rng"]) == 2  # both ranks' random states, for resume
    assert (out / "run.safetensors").exists()
