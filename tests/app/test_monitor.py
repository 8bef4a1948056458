"""The training monitor on real run folders: a real tiny training subprocess, partial lines,
resumed runs with overlapping steps, Stop, and automatic recovery of a killed run."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox

from app_helpers import answer_prompt, opened_folders, screenshot
from lora_studio.monitor.log_tail import LogTail
from lora_studio.monitor.series import MetricSeries
from tests.cli_helpers import make_demo_workspace
from trainer.wording import human_size


def test_series_skips_partial_lines_and_takes_the_newest_line_per_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0 / s, "lr": 1e-4, "time": s}) for s in range(1, 6)]
    path.write_text("\n".join(lines) + '\n{"step": 6, "lo', encoding="utf-8")
    series = MetricSeries(path, smoothing=0.0)
    assert series.refresh() == 5 and list(series.column("step")) == [1, 2, 3, 4, 5]
    # The trainer finishes the line, dies, and a resume from step 3 writes 4.. again.
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('ss": 0.1}\n')
        handle.write("".join(json.dumps({"step": s, "loss": 9.0, "lr": 1e-4, "time": 10 + s}) + "\n" for s in (4, 5, 6, 7)))
    series.refresh()
    assert list(series.column("step")) == [1, 2, 3, 4, 5, 6, 7]
    assert list(series.column("loss")[3:]) == [9.0] * 4
    assert list(series.ema) == list(series.column("loss"))  # smoothing 0: the raw curve
    assert series.refresh() == 0 and series.bytes_read == 0  # nothing new, nothing read


def test_log_tail_reads_only_the_end_of_a_big_log_and_then_new_bytes(tmp_path):
    log = tmp_path / "train.log"
    log.write_bytes(b"x" * 100 + b"\n" + (b"line\n" * 400_000))  # 2 MB
    tail = LogTail(log)
    first = tail.read_new()
    assert tail.bytes_read <= (1 << 20) and first.startswith("line") and not first.startswith("x")
    with open(log, "ab") as handle:
        handle.write(b"new line\npartial")
    assert tail.read_new() == "new line" and tail.bytes_read == len(b"new line\npartial")
    with open(log, "ab") as handle:
        handle.write(b" end\n")
    assert tail.read_new() == "partial end"


@pytest.fixture(scope="module")
def built_demo(tmp_path_factory) -> Path:
    """The demo workspace with its tiny model, built once per module."""
    return make_demo_workspace(tmp_path_factory.mktemp("demo") / "ws")


@pytest.fixture
def demo(built_demo, tmp_path):
    """A fresh copy of the demo workspace for one test (its runs must not meet another test's)."""
    workspace = tmp_path / "ws"
    shutil.copytree(built_demo, workspace)
    return workspace


def _config(workspace: Path, name: str, **changes) -> Path:
    import yaml
    text = (workspace / "configs" / "demo.yaml").read_text()
    values = yaml.safe_load(text)
    values.update({"output_dir": f"../runs/{name}", "output_name": name, **changes})
    path = workspace / "configs" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


@pytest.fixture
def page(monitor_page):
    return monitor_page


def _launch(page, config: Path, workspace: Path):
    from lora_studio.targets.api import launch
    from lora_studio.targets.model import LocalTarget
    outcome = launch(LocalTarget(), config, page.context_value, workspace=workspace)
    assert outcome.started, [(c.name, c.message) for c in outcome.report.checks]
    return outcome


def _state(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "status.json").read_text())["state"]
    except (OSError, ValueError, KeyError):
        return None


def test_a_workspace_without_runs_says_how_to_start_one_until_a_run_appears(page, tmp_path, qtbot):
    from tests.fleet.helpers import pretend_running

    workspace = tmp_path / "ws"
    (workspace / "configs").mkdir(parents=True)
    page.set_workspace(workspace)
    qtbot.waitUntil(lambda: "No runs yet" in page.no_runs.text(), timeout=20_000)
    assert page.no_runs.isVisible() and not page.table.isVisible()
    assert "press <i>Start training</i>" in page.no_runs.text()
    assert not page.progress.isVisible()  # no run selected: no empty progress bar
    assert not page.trash_button.isEnabled() and not page.output_button.isEnabled()
    assert page.plot.empty_hint.isVisible() and page.plot.empty_hint.text() == "Select a run to see its loss curve"
    run = pretend_running(workspace / "runs" / "from-the-cli", "gpu-01")  # started elsewhere: found by the scan
    qtbot.waitUntil(page.table.isVisible, timeout=20_000)  # the page rescans by itself
    assert not page.no_runs.isVisible()
    qtbot.waitUntil(lambda: page.run_dir == run, timeout=20_000)  # the only run is shown
    assert page.progress.isVisible() and page.progress.text() == "step 3 of 10"
    assert page.trash_button.isEnabled() and page.output_button.isEnabled()
    # Between the list's rescans, the shown run's row follows its head (the page reads it every refresh).
    page.runs_timer.stop()
    status = json.loads((run / "status.json").read_text())
    # Its machine's clock is ten minutes ahead: the heartbeat is fresh, not "-600 s" old.
    (run / "status.json").write_text(json.dumps({**status, "step": 5, "heartbeat": time.time() + 600}))
    qtbot.waitUntil(lambda: page.progress.text() == "step 5 of 10", timeout=20_000)
    assert "heartbeat just now (its machine's clock is 10 min ahead of this computer's)" in page.details.text()
    assert "epoch" not in page.details.text()  # its status names no epochs yet: no "epoch — of —"
    assert page.table.model().index(0, 2).data() == "5 / 10"
    assert page.plot.empty_hint.text().startswith("No steps logged yet") and page.plot.empty_hint.isVisible()
    assert not page.plot.legend.isVisible()  # no legend for a curve that is not there yet
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5, "lr": 1e-4, "time": 1}) + "\n")
    qtbot.waitUntil(lambda: not page.plot.empty_hint.isVisible(), timeout=20_000)  # the first point: the curve
    assert page.plot.legend.isVisible()


@pytest.mark.slow
def test_monitor_follows_a_real_run_to_the_end(page, demo, qtbot):
    config = _config(demo, "live", epochs=2, sample_every_n_steps=9, save_steps=9)
    _launch(page, config, demo)
    page.set_workspace(demo)
    run_dir = demo / "runs" / "live"
    qtbot.waitUntil(lambda: page.run_dir == run_dir, timeout=20_000)
    qtbot.waitUntil(lambda: len(page.plot.series["live"]) >= 3, timeout=120_000)
    screenshot(page, "monitor_running")
    qtbot.waitUntil(lambda: _state(run_dir) == "completed", timeout=240_000)
    qtbot.waitUntil(lambda: "COMPLETED" in page.state.text(), timeout=10_000)
    assert len(page.plot.series["live"]) == 18 and list(page.plot.series["live"].column("step")) == list(range(1, 19))
    # The trainer logs its last line just after it writes the final state.
    qtbot.waitUntil(lambda: "run completed at step 18" in page.log_view.text.toPlainText(), timeout=10_000)
    assert page.samples.steps == [18, 9] and page.samples.table.columnCount() == 2
    assert not page.stop_button.isEnabled()
    # The Files tab: what the run handed over, named by where it loads, then its checkpoints newest first, each
    # with the ready-to-use LoRA of its step (what a user tries in ComfyUI), not a bare folder name.
    # (The run saves at step 9; its end writes the final LoRA instead of a checkpoint.)
    qtbot.waitUntil(lambda: len(page.files.rows()) == 3, timeout=10_000)
    final, diffusers, newest = page.files.rows()
    size = human_size((run_dir / "live.safetensors").stat().st_size)
    assert final[:3] == ("live.safetensors", "ComfyUI, A1111/Forge", "18") and final[4] == size
    assert diffusers[:3] == ("diffusers/pytorch_lora_weights.safetensors", "diffusers (load_lora_weights)", "18")
    assert newest[:3] == (f"live-step{9:08d}.safetensors", "ComfyUI, A1111/Forge", "9") and newest[4].endswith(" KB")
    # Copy path takes any row's file; Resume starts only from a checkpoint (its folder).
    page.files.select_row(0)
    assert not page.files.resume_button.isEnabled()
    page.files.copy_button.click()
    assert QGuiApplication.clipboard().text() == str(run_dir / "live.safetensors")
    page.files.select_row(2)
    page.files.copy_button.click()
    assert QGuiApplication.clipboard().text() == str(run_dir / "checkpoints" / "step-00000009" / f"live-step{9:08d}.safetensors")
    page.tabs.setCurrentIndex(3)
    screenshot(page, "monitor_files")
    # Resume from this checkpoint: the finished run trains its second epoch again, from step 9.
    page.files.resume_button.click()
    events = run_dir / "events.jsonl"
    qtbot.waitUntil(lambda: '"kind": "resume"' in events.read_text(), timeout=120_000)
    qtbot.waitUntil(lambda: _state(run_dir) == "completed", timeout=240_000)
    resumes = [e for e in map(json.loads, events.read_text().splitlines()) if e["kind"] == "resume"]
    assert [e["step"] for e in resumes] == [9]
    qtbot.waitUntil(lambda: len(page.files.rows()) == 3, timeout=20_000)  # the file written again: one row
    page.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: page.samples.table.item(0, 0) is not None and not page.samples.table.item(0, 0).icon().isNull(),
                    timeout=20_000)
    screenshot(page, "monitor_samples")


def test_the_files_tab_shows_only_the_shown_runs_files(page, tmp_path, qtbot):
    """Choosing a run without checkpoints after one with them empties the list: a checkpoint of the run
    seen before must never be offered to Resume this one."""
    from tests.fleet.helpers import finish, pretend_running

    workspace = tmp_path / "ws"
    (workspace / "configs").mkdir(parents=True)
    trained = pretend_running(workspace / "runs" / "trained", "gpu-01")
    checkpoint = trained / "checkpoints" / "step-00000005"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trained-step00000005.safetensors").write_bytes(b"x" * 2048)
    (checkpoint / "COMPLETE").write_text("")
    (trained / "trained.safetensors").write_bytes(b"x" * 4096)
    (trained / "diffusers").mkdir()
    (trained / "diffusers" / "pytorch_lora_weights.safetensors").write_bytes(b"x" * 4096)
    events = [{"time": time.time(), "kind": "export", "path": "trained.safetensors", "step": 10, "format": "kohya"},
              # as runs wrote it before export events carried a format: the name says where it loads
              # (and a time edited by hand to something that is not one: its cell stays empty)
              {"time": "yesterday", "kind": "export", "path": "diffusers/pytorch_lora_weights.safetensors", "step": 10}]
    (trained / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in events))
    finish(trained)
    fresh = pretend_running(workspace / "runs" / "fresh", "gpu-02")
    page.set_workspace(workspace)
    qtbot.waitUntil(lambda: page.proxy.rowCount() == 2, timeout=20_000)
    page._select_path(str(trained))
    qtbot.waitUntil(lambda: len(page.files.rows()) == 3, timeout=20_000)
    final, diffusers, checkpoint_row = page.files.rows()
    assert final[:3] == ("trained.safetensors", "ComfyUI, A1111/Forge", "10") and final[4] == "4.0 KB"
    assert diffusers[1:4] == ("diffusers (load_lora_weights)", "10", "")
    # Show in folder (its button, a double click) opens the folder that holds the row's file.
    with opened_folders() as opened:
        page.files.select_row(1)
        page.files.folder_button.click()
        page.show()
        page.tabs.setCurrentWidget(page.files)
        qtbot.waitExposed(page)
        tree = page.files.tree
        where = tree.visualItemRect(page.files._file_items()[2]).center()
        qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=where)  # a double click's first press
        qtbot.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=where)
    assert opened == [str(trained / "diffusers"), str(checkpoint)]
    assert checkpoint_row[0] == "trained-step00000005.safetensors" and checkpoint_row[2] == "5"
    page._select_path(str(fresh))
    qtbot.waitUntil(lambda: page.run_dir == fresh, timeout=20_000)
    assert page.files.rows() == [] and not page.files.resume_button.isEnabled()
    (trained / "trained.safetensors").unlink()  # moved to ComfyUI's folder since
    page._select_path(str(trained))
    qtbot.waitUntil(lambda: len(page.files.rows()) == 3, timeout=20_000)
    assert page.files.rows()[0][4] == "missing: moved or deleted"
    # keep_last_n_checkpoints deletes old checkpoints while a run trains: one gone between the listing
    # and its row is left out, not a traceback on the UI thread.
    from lora_studio.monitor.run_file_rows import checkpoint_row
    shutil.rmtree(checkpoint)
    assert checkpoint_row(checkpoint) is None
    # Ctrl+C in the list copies the selected row's path, as in a file manager.
    page.activateWindow()
    qtbot.waitActive(page)
    tree.setFocus()
    page.files.select_row(1)
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(tree, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    # QTest leaves Ctrl held in the application's modifier state: a later selectRow in this process
    # would add to the selection as a Ctrl+click does. Let go of it.
    qtbot.keyRelease(tree, Qt.Key.Key_Control)
    assert QGuiApplication.clipboard().text() == str(trained / "diffusers" / "pytorch_lora_weights.safetensors")


def _show_finished_run(page, qtbot, run: Path, events: list[dict], file_rows: int) -> None:
    """Show the pretend run ``run`` (alone in its workspace), finished with ``events``, once its Files tab
    lists ``file_rows`` files."""
    from tests.fleet.helpers import finish

    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    finish(run)
    page.set_workspace(run.parent.parent)
    qtbot.waitUntil(lambda: page.proxy.rowCount() == 1, timeout=20_000)
    page._select_path(str(run))
    qtbot.waitUntil(lambda: len(page.files.rows()) == file_rows, timeout=20_000)


def test_copy_to_puts_a_file_into_a_folder_under_a_name_that_says_its_run_and_asks_before_replacing(
        page, tmp_path, qtbot):
    from lora_studio.settings import Settings
    from tests.fleet.helpers import pretend_running

    workspace, loras = tmp_path / "ws", tmp_path / "ComfyUI" / "models" / "loras"
    (workspace / "configs").mkdir(parents=True)
    loras.mkdir(parents=True)
    run = pretend_running(workspace / "runs" / "style", "gpu-01")
    (run / "style.safetensors").write_bytes(b"first" * 1000)
    (run / "diffusers").mkdir()
    (run / "diffusers" / "pytorch_lora_weights.safetensors").write_bytes(b"d" * 1000)
    events = [{"kind": "export", "path": "style.safetensors", "step": 10, "format": "kohya"},
              {"kind": "export", "path": "diffusers/pytorch_lora_weights.safetensors", "step": 10, "format": "diffusers"}]
    _show_finished_run(page, qtbot, run, events, file_rows=2)
    files = page.files

    def copy(row: int, expected: Path) -> None:
        files.select_row(row)
        files.copy_to(loras)
        qtbot.waitUntil(lambda: files.copy_note.text() == f"Copied to {expected}", timeout=20_000)

    copy(0, loras / "style.safetensors")
    assert (loras / "style.safetensors").read_bytes() == b"first" * 1000 and Settings().copy_folder == str(loras)
    copy(1, loras / "style-pytorch_lora_weights.safetensors")  # diffusers' name is every run's: the run's goes first
    # The same name again: Keep both numbers this one; Replace writes over the old copy; Cancel does nothing.
    (run / "style.safetensors").write_bytes(b"second" * 1000)
    with answer_prompt("copyClashPrompt", "Keep both") as asked:
        copy(0, loras / "style-1.safetensors")
    assert asked == [f"{loras} already has style.safetensors. Replace it with this one, or keep both (this one gets "
                     "a number)?"]
    with answer_prompt("copyClashPrompt", "Replace"):
        copy(0, loras / "style.safetensors")
    assert (loras / "style.safetensors").read_bytes() == b"second" * 1000
    with answer_prompt("copyClashPrompt", QMessageBox.StandardButton.Cancel):
        files.copy_to(loras)
    assert files.copy_note.text() == f"Copied to {loras / 'style.safetensors'}"  # nothing new happened
    assert sorted(p.name for p in loras.iterdir()) == ["style-1.safetensors", "style-pytorch_lora_weights.safetensors",
                                                       "style.safetensors"]  # no partial copy left about


def test_events_edited_by_hand_are_left_out_and_the_others_still_show(page, tmp_path, qtbot):
    """A step that is not a number (a run folder merged or edited by hand) costs that event only."""
    from PIL import Image

    from tests.fleet.helpers import pretend_running

    workspace = tmp_path / "ws"
    (workspace / "configs").mkdir(parents=True)
    run = pretend_running(workspace / "runs" / "edited", "gpu-01")
    (run / "samples").mkdir()
    Image.new("RGB", (16, 16), "red").save(run / "samples" / "step-00000004_p00.png")
    (run / "edited.safetensors").write_bytes(b"x" * 1024)
    now = time.time()
    events = [{"time": now, "kind": "resume", "step": "four"},
              {"time": now, "kind": "sample", "step": "ten", "prompt_index": 0, "prompt": "a red square",
               "path": "samples/step-00000010_p00.png"},
              {"time": now, "kind": "sample", "step": 4, "prompt_index": 0, "prompt": "a red square",
               "path": "samples/step-00000004_p00.png"},
              {"time": now, "kind": "export", "path": "edited.safetensors", "step": None, "format": "kohya"}]
    _show_finished_run(page, qtbot, run, events, file_rows=1)
    assert page.files.rows()[0][:3] == ("edited.safetensors", "ComfyUI, A1111/Forge", "")
    assert page.samples.steps == [4] and page.plot.recovery_steps.get(run.name, []) == []


@pytest.mark.slow
def test_stop_button_stops_the_run_with_a_checkpoint(page, demo, qtbot):
    config = _config(demo, "to-stop", epochs=40, sample_every_n_steps=0, save_steps=0)
    _launch(page, config, demo)
    page.set_workspace(demo)
    run_dir = demo / "runs" / "to-stop"
    qtbot.waitUntil(lambda: page.run_dir == run_dir and len(page.plot.series.get("to-stop", [])) >= 2, timeout=120_000)
    qtbot.waitUntil(lambda: page.stop_button.isEnabled(), timeout=10_000)
    page.stop_button.click()
    qtbot.waitUntil(lambda: _state(run_dir) == "stopped", timeout=60_000)
    qtbot.waitUntil(lambda: "STOPPED" in page.state.text(), timeout=10_000)
    assert page.resume_button.isEnabled()
    status = json.loads((run_dir / "status.json").read_text())
    assert (run_dir / status["last_checkpoint"] / "COMPLETE").exists()


@pytest.mark.slow
def test_a_killed_run_is_lost_and_recovered_automatically(page, demo, qtbot, monkeypatch):
    from lora_studio.monitor.recovery import RecoverySettings, save_settings
    config = _config(demo, "crashy", epochs=2, sample_every_n_steps=0, save_steps=4)
    monkeypatch.setenv("LORA_TRAINER_KILL_AT", "step:7")  # the trainer SIGKILLs itself, as a power cut would
    _launch(page, config, demo)
    monkeypatch.delenv("LORA_TRAINER_KILL_AT")
    run_dir = demo / "runs" / "crashy"
    save_settings(run_dir, RecoverySettings(enabled=True, max_attempts=2))
    page.set_workspace(demo)
    qtbot.waitUntil(lambda: _state(run_dir) == "completed", timeout=240_000)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events if e["kind"] in ("recovery", "resume")] == ["recovery", "resume"]
    assert next(e for e in events if e["kind"] == "resume")["step"] == 4
    moved = next(e for e in events if e["kind"] == "recovery")  # back on its own target: this computer is fine
    assert (moved["from"], moved["to"], moved["step"]) == ("This computer", "This computer", 4) and "gone" in moved["reason"]
    qtbot.waitUntil(lambda: page.run_dir == run_dir and len(page.plot.series["crashy"]) == 18, timeout=20_000)
    assert list(page.plot.series["crashy"].column("step")) == list(range(1, 19))  # one consistent curve
    assert page.plot.recovery_steps["crashy"]


def test_a_million_points_are_drawn_from_a_few_thousand_bins_that_keep_every_spike(tmp_path):
    import numpy as np
    path = tmp_path / "metrics.jsonl"
    losses = np.full(100_000, 0.5)
    losses[77_777] = 9.0  # one spike must survive decimation
    losses[12_345] = 0.01
    path.write_text("".join(json.dumps({"step": i + 1, "loss": float(v), "lr": 1e-4}) + "\n"
                            for i, v in enumerate(losses)), encoding="utf-8")
    series = MetricSeries(path)
    series.refresh()
    bins = series.decimated
    assert len(bins.first) <= bins.max_bins and bins.size >= 64
    peak_x, peak_y, _, smooth, _ = bins.curves(series.column("step"), series.column("lr"))
    assert peak_y.max() == 9.0 and peak_y.min() == 0.01 and (series.loss_min, series.loss_max) == (0.01, 9.0)
    assert peak_x[0] == 1 and len(smooth) == len(bins.first)


@pytest.mark.slow
def test_new_training_and_start_from_the_main_window(window, demo, qtbot):
    """The whole flow a user clicks through: workspace -> New Training -> Start -> Runs tab."""
    window.open_workspace(demo)
    qtbot.waitUntil(lambda: window.session is not None, timeout=30_000)
    window.workbench.new_training_action.trigger()
    page = window.workbench.training
    assert page.config_path.parent == demo / "configs" and window.workbench.currentIndex() == 1
    for name, value in (("max_train_steps", 4), ("resolution", 64), ("min_bucket_reso", 32),
                        ("max_bucket_reso", 128), ("bucket_reso_steps", 32)):
        page.form.rows[name].editor.spin.setValue(value)
    qtbot.waitUntil(page.start_button.isEnabled, timeout=30_000)
    page.start_button.click()
    qtbot.waitUntil(lambda: window.workbench.currentIndex() == 2, timeout=60_000)
    monitor = window.workbench.monitor
    qtbot.waitUntil(lambda: "COMPLETED" in monitor.state.text(), timeout=180_000)
    assert monitor.run_dir.parent == demo / "runs" and (monitor.run_dir / "run.json").exists()
