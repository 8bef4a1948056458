"""Automatic recovery of a language-model run, as for image runs and without Qt: started on this computer,
the trainer dies at step 7 (it SIGKILLs itself, as a power cut would), a recovery pass finds the run lost
and launches its config again, and the trainer resumes from its step-4 checkpoint to the same adapter as
the session's uninterrupted run."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from lora_studio.fleet.recovery_pass import STARTED, recovery_pass
from lora_studio.fleet.recovery_settings import RecoverySettings, save_settings
from lora_studio.targets import TargetContext, TargetSettings, launch
from lora_studio.targets.runs import summarize_run
from tests.targets.helpers import wait_for, wait_state
from trainer.fault_injection import KILL_AT_VARIABLE, KILL_ONCE_VARIABLE
from trainer.rundir import MetricsSeries

pytestmark = pytest.mark.slow


def test_a_lost_language_model_run_is_relaunched_by_a_recovery_pass_and_resumes(llm_alpaca_run, tmp_path,
                                                                                   monkeypatch):
    _folder, config, reference = llm_alpaca_run  # 15 steps, a checkpoint every 4
    workspace = tmp_path / "share"
    run_dir = workspace / "runs" / "support-bot"
    values = {**yaml.safe_load(config.read_text()), "output_dir": str(run_dir)}
    path = workspace / "configs" / "support-bot.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    ctx = TargetContext(TargetSettings(), tmp_path / "known_hosts")
    # Killed at step 7, once: the recovered trainer inherits this environment too.
    monkeypatch.setenv(KILL_AT_VARIABLE, "step:7")
    monkeypatch.setenv(KILL_ONCE_VARIABLE, str(tmp_path / "killed-once"))
    outcome = launch(ctx.settings.targets[0], path, ctx, workspace=workspace)
    assert outcome.started, [(c.name, c.message) for c in outcome.report.checks]
    save_settings(run_dir, RecoverySettings(enabled=True, max_attempts=2))
    wait_for(lambda: (tmp_path / "killed-once").exists() and summarize_run(run_dir).state == "lost", 120,
             "the trainer to die at step 7")

    [recovered] = recovery_pass(workspace, ctx, "desk-1")
    assert (recovered.kind, recovered.target) == (STARTED, "This computer") and "gone" in recovered.reason
    wait_state(run_dir, ("completed",), timeout=180)

    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events if e["kind"] in ("recovery", "resume")] == ["recovery", "resume"]
    assert next(e for e in events if e["kind"] == "resume")["step"] == 4
    series = MetricsSeries(run_dir / "metrics.jsonl")
    series.refresh()
    assert [r["step"] for r in series.records()] == list(range(1, 16))  # one curve, every step once
    expected = load_file(reference / "adapter" / "adapter_model.safetensors")
    got = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
