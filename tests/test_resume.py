"""Fault-transparent training through the real CLI: SIGKILL at any point then resume gives
bit-identical weights; STOP and SIGTERM stop cleanly; damaged checkpoints are skipped."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from tests.cli_helpers import trainer_cli, trainer_process
from tests.test_train_e2e import make_dataset

pytestmark = pytest.mark.slow
STEPS = 8


def write_config(folder: Path, model: Path, data: Path, out: Path, **extra) -> Path:
    values = {
        "train_data_dir": str(data), "base_model": str(model), "output_dir": str(out), "output_name": "lora",
        "resolution": 64, "min_bucket_reso": 32, "max_bucket_reso": 128, "bucket_reso_steps": 32,
        "lora_rank": 4, "batch_size": 2, "max_train_steps": STEPS, "learning_rate": 1e-2, "save_steps": 2,
        "keep_last_n_checkpoints": 3, "save_precision": "fp32", "tensorboard": False, "seed": 11,
        # Every source of randomness is on, so a resume that misses one of them shows.
        "random_flip": True, "lora_dropout": 0.1, "caption_dropout_rate": 0.25, "noise_offset": 0.05,
        "lr_scheduler": "cosine", "lr_warmup_steps": 2,
    }
    values.update(extra)
    path = folder / f"config-{out.name}.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


_REFERENCES: dict[str, tuple] = {}  # one uninterrupted run per base model, shared by both fixtures


def reference_run(tmp_path_factory, model: Path) -> tuple:
    """A folder, the model, a data set and the weights of one uninterrupted run (trained once)."""
    if str(model) not in _REFERENCES:
        folder = tmp_path_factory.mktemp("resume")
        data = make_dataset(folder / "data", "csv")
        config = write_config(folder, model, data, folder / "reference")
        result = trainer_cli("train", "--config", str(config))
        assert result.returncode == 0, result.stderr
        _REFERENCES[str(model)] = (folder, model, data, load_file(folder / "reference" / "lora.safetensors"))
    return _REFERENCES[str(model)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, family_model):
    """A tiny model (of each family), a data set and the weights of one uninterrupted run."""
    return reference_run(tmp_path_factory, family_model.base_model)


@pytest.fixture(scope="module")
def sd_setup(tmp_path_factory, tiny_model_of):
    """The same for the SD model alone, for what does not depend on the family (checkpoint files,
    folders, signals): run once, not once per family, to keep the suite's time."""
    return reference_run(tmp_path_factory, tiny_model_of("sd1").base_model)


def assert_same_weights(path: Path, reference: dict[str, torch.Tensor]) -> None:
    weights = load_file(path)
    assert weights.keys() == reference.keys()
    different = [k for k in weights if not torch.equal(weights[k], reference[k])]
    assert not different, f"{len(different)} tensors differ from the uninterrupted run, e.g. {different[:2]}"


def run_killed_at(config: Path, point: str) -> subprocess.CompletedProcess:
    result = trainer_cli("train", "--config", str(config), env={"LORA_TRAINER_KILL_AT": point})
    assert result.returncode == -signal.SIGKILL, result.stderr
    return result


# A kill between steps (at a step drawn once) per family, and one in the middle of writing a
# checkpoint; more draws of the same kind cost the suite time and test nothing new.
def test_sigkill_between_steps_then_resume_is_bit_identical(setup):
    """Every family: its noise, timesteps and encoders' state come back exactly."""
    check_kill_and_resume(setup, f"step:{random.Random(1).randint(1, STEPS - 1)}")


def test_sigkill_inside_a_checkpoint_then_resume_is_bit_identical(sd_setup):
    """The checkpoint writer is the shared loop's, the same for every family: once, on SD."""
    check_kill_and_resume(sd_setup, "checkpoint:4")


def check_kill_and_resume(setup, point: str) -> None:
    folder, model, data, reference = setup
    out = folder / f"killed-{point.replace(':', '-')}"
    config = write_config(folder, model, data, out)
    run_killed_at(config, point)
    status = json.loads((out / "status.json").read_text())
    assert status["state"] in ("training", "saving")  # what a killed process leaves behind
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert_same_weights(out / "lora.safetensors", reference)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    resumes = [e for e in events if e["kind"] == "resume"]
    # Killed after step k finished but before its checkpoint: the newest complete one is the
    # last multiple of save_steps (2) below k; none means the run started over.
    killed_step = int(point.split(":")[1])
    expected = (killed_step - 1) // 2 * 2
    assert [e["step"] for e in resumes] == ([expected] if expected else [])
    if point.startswith("checkpoint"):
        assert not (out / "checkpoints" / "step-00000004.tmp").exists()  # the half-written one is gone
    # One consistent curve: every step once, newest line per step.
    from trainer.rundir import MetricsSeries
    series = MetricsSeries(out / "metrics.jsonl")
    series.refresh()
    assert [r["step"] for r in series.records()] == list(range(1, STEPS + 1))


def test_a_stop_file_stops_and_resume_completes(sd_setup):
    """The STOP file saves a checkpoint and ends the run; a resume completes it (the shared loop's
    stop, the same for every family)."""
    stop_then_resume(sd_setup, "STOP file")


def test_sigterm_stops_and_resume_completes(sd_setup):
    """SIGTERM takes the same path as the STOP file once the signal is caught (not per family)."""
    stop_then_resume(sd_setup, "SIGTERM")


def stop_then_resume(setup, how: str) -> None:
    folder, model, data, reference = setup
    out = folder / f"stopped-{how.replace(' ', '-')}"
    config = write_config(folder, model, data, out, max_train_steps=4, save_steps=0)
    # The trainer holds after step 1 until it sees the stop: the stop lands there, however loaded the machine.
    process = trainer_process("train", "--config", str(config), env={"LORA_TRAINER_HOLD_AT": "step:1"})
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.05)
    if how == "SIGTERM":
        process.send_signal(signal.SIGTERM)
    else:
        (out / "STOP").touch()
    assert process.wait(timeout=60) == 0, process.output()
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "stopped" and status["step"] == 1
    checkpoint = out / status["last_checkpoint"]
    assert checkpoint.name == "step-00000001" and (checkpoint / "COMPLETE").exists()
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "status.json").read_text())["state"] == "completed"
    assert not (out / "STOP").exists()


@pytest.fixture(scope="module")
def killed_at_7(sd_setup) -> Path:
    """A run SIGKILLed after step 7 (its newest checkpoint is step 6): each damage test takes a copy."""
    folder, model, data, _reference = sd_setup
    out = folder / "killed-at-7"
    run_killed_at(write_config(folder, model, data, out), "step:7")
    return out


@pytest.mark.parametrize("damage", ["truncated adapter", "missing marker"])
def test_damaged_newest_checkpoint_is_skipped(sd_setup, killed_at_7, damage):
    import shutil

    folder, model, data, reference = sd_setup
    out = folder / f"damaged-{damage.replace(' ', '-')}"
    shutil.copytree(killed_at_7, out)
    config = write_config(folder, model, data, out)
    newest = out / "checkpoints" / "step-00000006"
    if damage == "truncated adapter":
        adapter = newest / "adapter.safetensors"
        adapter.write_bytes(adapter.read_bytes()[:100])
    else:
        (newest / "COMPLETE").unlink()
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "checkpoint step-00000006" in result.stdout and "using an older one" in result.stdout
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["kind"] == "resume"] == [4]
    assert_same_weights(out / "lora.safetensors", reference)


def test_resume_never_refuses_a_used_folder_and_completed_runs_are_kept(sd_setup):
    folder, model, data, reference = sd_setup
    config = write_config(folder, model, data, folder / "reference", resume="never")
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 2 and "already holds files of a run, and resume is `never`" in result.stderr
    config = write_config(folder, model, data, folder / "reference")
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 2 and "already completed (step 8)" in result.stderr
    assert_same_weights(folder / "reference" / "lora.safetensors", reference)  # untouched


def nan_copy(model: Path, folder: Path) -> Path:
    """A copy of the single file ``model`` whose UNet's last layer is NaN."""
    broken = folder / "nan-model.safetensors"
    weights = load_file(model)
    key = "model.diffusion_model.out.2.weight"
    weights[key] = torch.full_like(weights[key], float("nan"))
    save_file(weights, broken)
    return broken


def test_nan_loss_stops_with_the_step_and_the_likely_causes(sd_setup, tmp_path):
    folder, model, data, reference = sd_setup
    broken = nan_copy(model, tmp_path)
    out = tmp_path / "nan-run"
    result = trainer_cli("train", "--config", str(write_config(tmp_path, broken, data, out)))
    assert result.returncode == 1
    assert "the loss became nan at step 1" in result.stderr and "learning_rate" in result.stderr
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "nan at step 1" in status["error"]["message"]
    assert "bf16" in status["error"]["hint"]
    skip = trainer_cli("train", "--config", str(write_config(tmp_path, broken, data, tmp_path / "skip",
                                                             nan_policy="skip", max_train_steps=2)))
    assert skip.returncode == 0
    events = [json.loads(line) for line in (tmp_path / "skip" / "events.jsonl").read_text().splitlines()]
    assert sum("update was skipped" in e.get("message", "") for e in events) == 2


def test_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(sd_setup):
    folder, model, data, reference = sd_setup
    out = folder / "double-sigint"
    # Large images make each step slow enough that the second Ctrl+C lands inside a step.
    config = write_config(folder, model, data, out, max_train_steps=400, save_steps=1, resolution=256,
                          min_bucket_reso=128, max_bucket_reso=512, batch_size=4)
    process = trainer_process("train", "--config", str(config), stderr_pipe=True)
    deadline = time.time() + 120
    while len(list((out / "checkpoints").glob("step-*"))) < 2:
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    # Signals of one kind do not queue: wait until the first was handled, then send the second.
    while "stopping after this step" not in process.stderr.readline():
        pass
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 1
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "stopped" and "second Ctrl+C" in status["error"]["message"]
    from trainer.resume import plan_resume
    from trainer.config import load_config
    config_loaded, _ = load_config(config)
    plan = plan_resume(config_loaded)
    assert plan.checkpoint is not None and not plan.skipped  # the newest complete checkpoint is usable


def test_a_second_trainer_on_a_running_folder_is_refused(sd_setup):
    folder, model, data, reference = sd_setup
    out = folder / "busy"
    config = write_config(folder, model, data, out, max_train_steps=400, save_steps=0)
    process = trainer_process("train", "--config", str(config))
    try:
        deadline = time.time() + 120
        while not (out / "metrics.jsonl").exists():
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.05)
        result = trainer_cli("train", "--config", str(config))
        assert result.returncode == 2
        assert f"is in use by a trainer that is still running (pid {process.pid} on host" in result.stderr
    finally:
        process.kill()
        process.wait()


def test_a_trainer_on_a_machine_whose_clock_is_behind_keeps_its_folder(sd_setup):
    """Another machine's heartbeat, read with this machine's clock, looks an hour old when that
    machine's clock is an hour behind: while it still changes, the folder is not taken over; once
    it stops changing, the run is resumed."""
    import threading

    folder, model, data, reference = sd_setup
    out = folder / "skewed"
    out.mkdir()
    config = write_config(folder, model, data, out, max_train_steps=2, save_steps=0)
    stop = threading.Event()

    def other_machines_trainer() -> None:  # rewrites its status like RunWriter's heartbeat thread
        while not stop.is_set():
            status = {"state": "training", "step": 5, "pid": 4242, "host": "gpu-vm-07", "heartbeat": time.time() - 3600}
            (out / "status.tmp").write_text(json.dumps(status))
            (out / "status.tmp").replace(out / "status.json")
            stop.wait(0.2)

    beating = threading.Thread(target=other_machines_trainer)
    beating.start()
    try:
        result = trainer_cli("train", "--config", str(config))
    finally:
        stop.set()
        beating.join()
    assert result.returncode == 2
    assert "in use by a trainer that is still running (pid 4242 on host gpu-vm-07, whose clock runs" in result.stderr
    assert json.loads((out / "status.json").read_text())["host"] == "gpu-vm-07"  # the folder was left alone
    result = trainer_cli("train", "--config", str(config))  # its heartbeat is still now: that trainer is gone
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "status.json").read_text())["state"] == "completed"
