"""Stop while a step is long: the Runs page says what a stop waits for (the rest of the step,
from the run's metrics), and Stop now ends a trainer that is still in its step."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from app_helpers import screenshot
from lora_studio.monitor.stop_estimate import StepEstimate, estimate_step, step_duration, stopping_text
from lora_studio.targets.runinfo import RunInfo, write_run_info
from test_monitor import page  # noqa: F401 - the Runs page with its own worker pool
from tests.targets.conftest import reap_trainers  # noqa: F401 - fake_run kills what a failed test leaves
from tests.targets.helpers import pid_alive
from tests.targets.test_local import fake_run  # noqa: F401 - the fake trainer, started detached here


def test_the_time_left_in_a_step_comes_from_the_last_steps_of_the_metrics():
    steps, times = [1, 2, 3, 4, 5], [100.0, 110.0, 120.0, 160.0, 170.0]  # step 4 also saved a checkpoint
    assert step_duration(steps, times) == 10.0  # one slow step does not move the median
    assert step_duration([2, 4, 6], [100.0, 120.0, 140.0]) == 10.0  # logged every second step
    assert stopping_text("training", estimate_step(steps, times, now=174.0)) == \
        "Stopping after this step (about 6 s)…"
    # The trainer's clock ahead of ours: the step has only just begun.
    assert estimate_step(steps, times, now=165.0) == StepEstimate(10.0, 10.0)
    # Overdue: first "any moment now", then by how much, so that a stuck step shows as one.
    assert stopping_text("training", estimate_step(steps, times, now=185.0)) == \
        "Stopping after this step (any moment now)…"
    assert stopping_text("training", estimate_step(steps, times, now=210.0)) == \
        "Stopping after this step (it is 30 s longer than usual)…"
    # No step finished yet (or one: no duration to go by): no number at all.
    for no_steps in (([], []), ([1], [100.0])):
        estimate = estimate_step(*no_steps, now=105.0)
        assert estimate == StepEstimate(None, None)
        assert stopping_text("training", estimate) == "Stopping after the current step…"
    assert "first step" in stopping_text("preparing", estimate_step(steps, times, now=174.0))
    # Once the step is done the trainer saves its checkpoint: that is part of the wait.
    assert stopping_text("saving", estimate_step(steps, times, now=174.0)) == "Stopping: saving a checkpoint…"


def _bar_text(page) -> str:
    return re.sub(r"<[^>]+>", "", page.stop_bar.text.text()) if page.stop_bar.isVisible() else ""


def _write_status(run_dir: Path, **fields) -> None:
    path = run_dir / "status.json"
    status = json.loads(path.read_text()) if path.exists() else {}
    status.update(fields, heartbeat=time.time())
    path.write_text(json.dumps(status))


def _remote_run(run_dir: Path, last: float, started_here: bool = True) -> None:
    """A run on a GPU box, 10 s per step, its fourth step ended at ``last``: as the share shows it."""
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("".join(
        json.dumps({"step": step, "loss": 0.2, "lr": 1e-4, "time": last - 10.0 * (4 - step)}) + "\n"
        for step in range(1, 5)))
    started = last - 60.0
    _write_status(run_dir, state="training", step=4, total_steps=100, epoch=1, total_epochs=25, eta_s=960.0,
                  pid=4242, host="gpu-box", started_at=started)
    if started_here:  # run.json: the target it runs on (one these tests cannot reach)
        write_run_info(run_dir, RunInfo("ssh", "gpu-box", "gpu-box", 4242, ["python", "-m", "trainer", "train"],
                                        started, "test", "ssh", "/srv/runs/slow", "/srv/runs/slow/config.yaml"))


def test_stop_says_how_long_the_current_step_still_takes(page, qtbot, tmp_path):
    """4 s into the fifth 10 s step when Stop is pressed."""
    last = time.time() - 4.0
    run_dir = tmp_path / "ws" / "runs" / "slow"
    _remote_run(run_dir, last)
    page.stop_bar.clock = lambda: last + 4.0  # the page's clock, held still: no race with the machine's speed
    page.set_workspace(tmp_path / "ws")
    # The history is read in a worker: the estimate needs it loaded, not just read.
    def shown() -> bool:
        series = page.plot.series.get("slow")
        return page.run_dir == run_dir and series is not None and not series.loading and len(series) == 4
    qtbot.waitUntil(lambda: shown() and page.stop_button.isEnabled(), timeout=10_000)
    assert not page.stop_bar.isVisible() and not page.stop_bar.stop_now_button.isVisible()

    page.stop_button.click()
    qtbot.waitUntil(lambda: (run_dir / "STOP").exists(), timeout=10_000)
    assert _bar_text(page) == "Stopping after this step (about 6 s)…"
    assert page.stop_bar.stop_now_button.isVisible() and page.stop_bar.stop_now_button.isEnabled()
    tip = page.stop_bar.stop_now_button.toolTip()
    assert "step in progress is lost" in tip and "last checkpoint" in tip
    assert not page.stop_button.isEnabled() and page.stop_button.text() == "Stopping…"
    assert page.stop_bar.tone == "pending"
    screenshot(page, "monitor_stopping")

    # The page refreshes every 200 ms here: the estimate follows the clock.
    page.stop_bar.clock = lambda: last + 7.0
    qtbot.waitUntil(lambda: _bar_text(page) == "Stopping after this step (about 3 s)…", timeout=5_000)
    page.stop_bar.clock = lambda: last + 12.0
    qtbot.waitUntil(lambda: _bar_text(page) == "Stopping after this step (any moment now)…", timeout=5_000)
    # The step ends; the trainer saves its checkpoint, then stops.
    _write_status(run_dir, state="saving", step=5)
    qtbot.waitUntil(lambda: _bar_text(page) == "Stopping: saving a checkpoint…", timeout=5_000)
    _write_status(run_dir, state="stopped", step=5, last_checkpoint="checkpoints/step-00000005")
    qtbot.waitUntil(lambda: "STOPPED" in page.state.text()
                    and _bar_text(page) == "The trainer saved a checkpoint and stopped.", timeout=10_000)
    assert not page.stop_bar.stop_now_button.isVisible() and page.resume_button.isEnabled()
    # Over, though the stop's worker may not have noticed yet: the button no longer says it is stopping.
    assert page.stop_button.text() == "Stop" and not page.stop_button.isEnabled()
    assert page.stop_bar.tone == "done"


def test_stop_now_ends_a_trainer_that_is_still_in_its_step(page, qtbot, tmp_path, fake_run):
    ctx, run_dir, pid = fake_run("ignore_stop")  # never looks at STOP: as if its step never ended
    page.context = lambda: ctx
    page.set_workspace(tmp_path)
    qtbot.waitUntil(lambda: page.run_dir == run_dir and page.stop_button.isEnabled(), timeout=10_000)
    page.stop_button.click()
    qtbot.waitUntil(lambda: page.stop_bar.stop_now_button.isVisible(), timeout=10_000)
    assert _bar_text(page) == "Stopping after the current step…"  # no step in its metrics: no number

    page.stop_bar.stop_now_button.click()
    # The graceful stop gives a step 60 s before it signals: this is well within that.
    qtbot.waitUntil(lambda: not pid_alive(pid), timeout=20_000)
    qtbot.waitUntil(lambda: "STOPPED" in page.state.text()
                    and _bar_text(page) == "The trainer stopped after SIGTERM.", timeout=10_000)
    # The graceful stop then sees the trainer gone; its "saved a checkpoint" is not what happened.
    qtbot.waitUntil(lambda: not page.stop_bar.busy(run_dir), timeout=10_000)
    assert _bar_text(page) == "The trainer stopped after SIGTERM."
    assert not page.stop_bar.stop_now_button.isVisible() and page.resume_button.isEnabled()
    screenshot(page, "monitor_stopped_now")


def test_a_step_longer_than_the_stop_waits_still_ends_as_stopped(page, qtbot, tmp_path):
    """Not started by LoRA Studio: nothing to signal, the STOP file is all there is."""
    run_dir = tmp_path / "ws" / "runs" / "slow"
    _remote_run(run_dir, time.time() - 4.0, started_here=False)
    page.stop_bar.grace_s = 0.5  # the step outlasts it
    page.set_workspace(tmp_path / "ws")
    qtbot.waitUntil(lambda: page.run_dir == run_dir and page.stop_button.isEnabled(), timeout=10_000)
    page.stop_button.click()
    qtbot.waitUntil(lambda: _bar_text(page).startswith("Stopping after this step"), timeout=10_000)
    assert not page.stop_bar.stop_now_button.isEnabled()
    assert "not started by LoRA Studio" in page.stop_bar.stop_now_button.toolTip()
    qtbot.waitUntil(lambda: _bar_text(page).startswith("Not stopped: the trainer has not reacted to the STOP file"),
                    timeout=10_000)
    assert page.stop_bar.tone == "failed" and page.stop_button.isEnabled()  # Stop can be asked again
    _write_status(run_dir, state="stopped", step=5)
    qtbot.waitUntil(lambda: "STOPPED" in page.state.text() and _bar_text(page) ==
                    "The trainer stopped after all (its step took longer than the stop waited).", timeout=10_000)
    assert page.stop_bar.tone == "done"
