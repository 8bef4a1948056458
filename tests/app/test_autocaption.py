"""Auto-caption from the grid (issue 9): the real `trainer label` subprocess, preview, one undo step.

The tiny models are built in subprocesses, so that the main test can check that the app
side loads neither torch nor onnxruntime.
"""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import shiboken6
from PIL import Image
from PySide6.QtCore import QItemSelectionModel, Qt

from app_helpers import new_main_window, open_folder, screenshot
from lora_studio.autocaption.plan import Outcome, plan_changes
from lora_studio.autocaption.reattach import find_pending_jobs
from lora_studio.models.caption_model import COL_CAPTION
from lora_studio.storage.dataset import open_dataset
from lora_studio.targets.runinfo import read_run_info
from tests.targets.conftest import reap_trainers  # noqa: F401 - kills what a failed test leaves running
from tests.targets.helpers import pid_alive, wait_state

ROOT = Path(__file__).resolve().parents[2]
RED, BLUE = (230, 20, 20), (20, 20, 230)
RED_TAGS = "red theme, solo, hatsune miku, simple background, ^_^"
BLUE_TAGS = "blue theme, solo, hatsune miku, simple background, ^_^"
HAND = "hand written, solo"
JOB_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def blip(tmp_path_factory) -> Path:
    """The tiny BLIP captioner of trainer/labeling/tiny.py, built by another process."""
    folder = tmp_path_factory.mktemp("models") / "tiny-blip"
    code = "import sys; from trainer.labeling.tiny import make_tiny_blip; make_tiny_blip(sys.argv[1])"
    result = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return folder


def make_workspace(root: Path, tagger: Path, images: dict[str, tuple[int, int, int]],
                   captions: dict[str, str]) -> Path:
    """``root/models/captioners/tiny-wd14`` and a csv dataset ``root/ds``; returns the dataset."""
    shutil.copytree(tagger, root / "models" / "captioners" / "tiny-wd14")
    data = root / "ds"
    data.mkdir(parents=True)
    for name, colour in images.items():
        Image.new("RGB", (40, 30), colour).save(data / name)
    rows = "".join(f'{name},"{text}"\n' for name, text in captions.items())
    (data / "metadata.csv").write_text("filename,prompt\n" + rows, encoding="utf-8")
    return data


def open_dialog(window):
    window.autocaption.action.trigger()
    dialog = window.autocaption.dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def choose_model(dialog, label_start: str) -> None:
    combo = dialog.settings.model_combo
    index = combo.findText(label_start, flags=Qt.MatchFlag.MatchStartsWith)
    assert index >= 0, [combo.itemText(i) for i in range(combo.count())]
    combo.setCurrentIndex(index)


def run_job(qtbot, dialog):
    assert dialog.start_button.isEnabled(), dialog.summary.text()
    dialog.start_button.click()
    assert dialog.job is not None
    with qtbot.waitSignal(dialog.job.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        pass
    return blocker.args[0]


def captions_of(window) -> dict[str, str]:
    return dict(zip(window.session.rels(), window.session.captions))


def test_fill_keeps_hand_edits_applies_as_one_undo_step(qtbot, qtmodeltester, window, tmp_path, tagger):
    data = make_workspace(tmp_path / "workspace", tagger, {"a.png": RED, "b.png": BLUE, "c.png": RED, "d.png": BLUE},
                          {"c.png": HAND})
    loaded_before = set(sys.modules)
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    assert dialog.settings.captioner().name == "tiny-wd14" and dialog.settings.captioner().is_tagger
    dialog.settings.scope_buttons["all"].setChecked(True)
    assert dialog.settings.mode() == "fill"
    assert dialog.summary.text() == "Will caption 3 images of 4 (the others have a caption and are kept)."
    dialog.settings.trigger.setText("zz")
    assert not dialog.progress.isVisible()  # no job yet: no empty bar
    dialog.start_button.click()
    assert dialog.progress.isVisible()
    job = dialog.job
    # status.json exists once the job has read the captions (b.png empty); typed in the grid
    # after that, while the job runs or before apply, "fill" must keep it.
    qtbot.waitUntil(lambda: bool(job.status), timeout=JOB_TIMEOUT_MS)
    row_b = window.session.row_of["b.png"]
    assert window.model.setData(window.model.index(row_b, COL_CAPTION), "typed meanwhile")
    if job.end is None:
        qtbot.waitSignal(job.finished, timeout=JOB_TIMEOUT_MS).wait()
    end = job.end
    assert end.state == "completed", (end.message, end.problems)
    assert open_dataset(data).captions[0] == ""  # a dry run: the job wrote no caption file

    rows = {row.rel: row for row in dialog.preview_model.rows}
    assert rows["a.png"].outcome is Outcome.CHANGE and rows["a.png"].after == f"zz, {RED_TAGS}"
    assert rows["d.png"].after == f"zz, {BLUE_TAGS}"
    assert rows["b.png"].outcome is Outcome.KEPT and rows["b.png"].now == "typed meanwhile"
    assert "c.png" not in rows  # had a caption: never sent to the job
    assert dialog.apply_button.text() == "Apply to 2 images" and dialog.apply_button.isEnabled()
    assert dialog.counts.text().startswith("2 captions will change · 1 kept")
    qtmodeltester.check(dialog.preview_model)
    qtbot.wait(50)
    screenshot(dialog, "autocaption-dialog")

    dialog.apply_button.click()
    qtbot.waitUntil(lambda: window.autocaption.dialog is None)
    expected = {"a.png": f"zz, {RED_TAGS}", "b.png": "typed meanwhile", "c.png": HAND, "d.png": f"zz, {BLUE_TAGS}"}
    assert captions_of(window) == expected
    shown = window.model.index(window.session.row_of["a.png"], COL_CAPTION).data()
    assert shown == f"zz, {RED_TAGS}"
    assert window.undo_action.text() == "&Undo Auto-caption 2 images"
    window.undo_action.trigger()
    assert captions_of(window) == {**expected, "a.png": "", "d.png": ""}
    assert window.model.index(window.session.row_of["a.png"], COL_CAPTION).data() in ("", None)
    window.redo_action.trigger()
    assert captions_of(window) == expected
    qtbot.waitUntil(lambda: not window.session.is_dirty(), timeout=20_000)
    on_disk = open_dataset(data)
    assert dict(zip([e.rel for e in on_disk.entries], on_disk.captions)) == expected
    # The app ran the model in another process only (other test files may have loaded them already).
    assert not {"torch", "onnxruntime"} & (set(sys.modules) - loaded_before)


def test_replace_on_selected_images(qtbot, window, tmp_path, tagger):
    data = make_workspace(tmp_path / "workspace", tagger, {"a.png": RED, "b.png": BLUE, "c.png": RED},
                          {"a.png": "old a", "b.png": "old b", "c.png": HAND})
    open_folder(qtbot, window, data)
    window.grid.select_source_row(window.session.row_of["a.png"])
    index = window.grid.proxy.mapFromSource(window.model.index(window.session.row_of["c.png"], 0))
    window.grid.selection_model().select(index, QItemSelectionModel.SelectionFlag.Select
                                         | QItemSelectionModel.SelectionFlag.Rows)
    dialog = open_dialog(window)
    assert dialog.settings.scope() == "selected"
    dialog.settings.mode_combo.setCurrentIndex(dialog.settings.mode_combo.findData("replace"))
    assert "Overwrites" in dialog.settings.mode_hint.text()
    dialog.settings.exclude.setText("solo, simple_background")
    end = run_job(qtbot, dialog)
    assert end.state == "completed", (end.message, end.problems)
    dialog.apply_button.click()
    assert captions_of(window) == {"a.png": "red theme, hatsune miku, ^_^", "b.png": "old b",
                                   "c.png": "red theme, hatsune miku, ^_^"}
    assert window.undo_action.text() == "&Undo Auto-caption 2 images"


def test_model_problems_and_failed_job_are_shown(qtbot, window, tmp_path, tagger):
    workspace = tmp_path / "workspace"
    data = make_workspace(workspace, tagger, {"a.png": RED, "b.png": BLUE}, {"b.png": HAND})
    broken = workspace / "models" / "captioners" / "broken-tagger"
    broken.mkdir()
    shutil.copy(tagger / "model.onnx", broken)
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    choose_model(dialog, "broken-tagger — cannot be used")
    assert "selected_tags.csv" in dialog.settings.model_hint.text()
    assert not dialog.start_button.isEnabled()
    choose_model(dialog, "tiny-wd14")
    assert dialog.start_button.isEnabled()
    # The dialog is not modal: its scopes and counts follow the grid.
    window.grid.select_source_row(window.session.row_of["b.png"])
    qtbot.waitUntil(lambda: dialog.settings.scopes["selected"] == ["b.png"])
    assert dialog.settings.scope_buttons["selected"].text() == "Selected (1)"
    dialog.settings.scope_buttons["selected"].setChecked(True)
    assert dialog.summary.text().startswith("Nothing to caption")  # b.png has a caption: fill keeps it
    assert window.model.setData(window.model.index(window.session.row_of["b.png"], COL_CAPTION), "")
    assert dialog.summary.text() == "Will caption 1 image."
    # The folder loses a file after the dialog checked it: the trainer's own check reports it.
    (workspace / "models" / "captioners" / "tiny-wd14" / "selected_tags.csv").unlink()
    end = run_job(qtbot, dialog)
    assert end.state == "invalid"
    assert "selected_tags.csv" in dialog.errors.text() and dialog.errors.isVisible()
    assert not dialog.apply_button.isEnabled()
    # The folders are checked again after a failed job.
    assert "selected_tags.csv" in dialog.settings.model_hint.text() and not dialog.start_button.isEnabled()
    qtbot.wait(50)  # let the layout settle around the longer texts
    screenshot(dialog, "autocaption-dialog-failed")
    dialog.close_button.click()
    assert window.autocaption.dialog is None or not window.autocaption.dialog.isVisible()


def test_stop_keeps_what_is_done(qtbot, window, tmp_path, tagger):
    images = {f"i{i:03d}.png": (i % 256, 0, 255 - i % 256) for i in range(400)}
    data = make_workspace(tmp_path / "workspace", tagger, images, {})
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    dialog.settings.scope_buttons["all"].setChecked(True)
    dialog.settings.batch.setValue(1)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: int(dialog.job.status.get("step") or 0) >= 1, timeout=JOB_TIMEOUT_MS)
    with qtbot.waitSignal(dialog.job.finished, timeout=JOB_TIMEOUT_MS) as blocker:
        dialog.stop_button.click()
        assert dialog.stop_button.text() == "Stopping…"
    end = blocker.args[0]
    assert end.state == "stopped", (end.message, end.problems)
    done = len(dialog.plan.changes)
    assert 1 <= done < len(images)
    dialog.apply_button.click()
    assert sum(1 for c in window.session.captions if c) == done
    assert window.undo_action.text() == f"&Undo Auto-caption {done} images"


def test_blip_captioner_writes_sentences(qtbot, window, tmp_path, tagger, blip):
    workspace = tmp_path / "workspace"
    data = make_workspace(workspace, tagger, {"a.png": RED, "b.png": BLUE}, {"b.png": HAND})
    shutil.copytree(blip, workspace / "models" / "captioners" / "tiny-blip")
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    choose_model(dialog, "tiny-blip")
    settings = dialog.settings
    assert not settings.captioner().is_tagger
    assert not settings.threshold.isEnabled() and not settings.exclude.isEnabled()
    dialog.settings.scope_buttons["all"].setChecked(True)
    dialog.settings.mode_combo.setCurrentIndex(dialog.settings.mode_combo.findData("append"))
    end = run_job(qtbot, dialog)
    assert end.state == "completed", (end.message, end.problems)
    dialog.apply_button.click()
    captions = captions_of(window)
    assert captions["a.png"] and "[DEC]" not in captions["a.png"]
    assert captions["b.png"].startswith(HAND + ", ") and len(captions["b.png"]) > len(HAND) + 2
    window.undo_action.trigger()
    assert captions_of(window) == {"a.png": "", "b.png": HAND}


def test_closing_while_running_stops_the_job(qtbot, window, tmp_path, tagger):
    images = {f"i{i:03d}.png": (i % 256, 0, 255 - i % 256) for i in range(400)}
    open_folder(qtbot, window, make_workspace(tmp_path / "workspace", tagger, images, {}))
    edit_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Edit")
    assert window.autocaption.action in edit_menu.actions() and window.autocaption.action in window.caption_toolbar.actions()
    dialog = open_dialog(window)
    dialog.settings.batch.setValue(1)
    dialog.start_button.click()
    job = dialog.job
    qtbot.waitUntil(lambda: int(job.status.get("step") or 0) >= 1, timeout=JOB_TIMEOUT_MS)
    dialog.close_button.click()  # stops the job, then the dialog goes
    assert not dialog.isVisible()
    qtbot.waitUntil(lambda: window.autocaption.dialog is None, timeout=JOB_TIMEOUT_MS)
    assert job.end is not None and job.end.state == "stopped"
    assert not any(window.session.captions)  # nothing applied


def close_window(win) -> None:
    win.close()
    assert win.runner.pool.waitForDone(20_000)


def gated_python(folder: Path) -> tuple[Path, Path]:
    """(an interpreter that holds a ``label`` job at its start until ``gate`` exists, ``gate``)."""
    gate, wrapper = folder / "gate-open", folder / "gated-python"
    wrapper.write_text(f'#!/bin/sh\ncase " $* " in *" label "*) while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; '
                       f'done;; esac\nexec {shlex.quote(sys.executable)} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return wrapper, gate


def test_a_job_on_this_computer_outlives_the_app(qtbot, window, tmp_path, tagger, reap_trainers, monkeypatch):
    images = {f"i{i:03d}.png": (i % 256, 0, 255 - i % 256) for i in range(40)}
    data = make_workspace(tmp_path / "workspace", tagger, images, {})
    # The job waits at its start until the app is gone, so it cannot end first, however fast the machine.
    python, gate = gated_python(tmp_path)
    monkeypatch.setattr(importlib.import_module("lora_studio.targets.launch"), "trainer_python", lambda: str(python))
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    dialog.settings.scope_buttons["all"].setChecked(True)
    assert dialog.settings.target.currentText() == "This computer"
    dialog.start_button.click()
    job = dialog.job
    run_dir = job.run_dir
    qtbot.waitUntil(lambda: read_run_info(run_dir) is not None, timeout=JOB_TIMEOUT_MS)
    # Started like training on this computer: detached, in a session of its own, run.json says where.
    info = read_run_info(run_dir)
    assert (info.target_kind, info.launch, info.extra) == ("local", "subprocess", {"kind": "label"})
    assert os.getsid(info.pid) == info.pid
    reap_trainers.append(info.pid)
    assert job.end is None
    close_window(window)
    follower = job.process
    dialog.deleteLater()  # the app's side of the job goes entirely
    qtbot.waitUntil(lambda: not shiboken6.isValid(follower), timeout=10_000)
    assert pid_alive(info.pid)

    gate.touch()
    wait_state(run_dir, ("completed",), timeout=JOB_TIMEOUT_MS / 1000)
    [found] = find_pending_jobs(data.parent, data)  # what opening the dataset looks for
    assert (found.run_dir, found.state, found.results) == (run_dir, "finished", len(images))

    again = new_main_window(qtbot)
    open_folder(qtbot, again, data)
    bar = again.autocaption.bar
    qtbot.waitUntil(bar.isVisible, timeout=10_000)
    assert bar.job.run_dir == run_dir and "Auto-caption results are waiting" in bar.text.text()
    bar.show_button.click()
    dialog = again.autocaption.dialog
    if dialog.job.end is None:
        qtbot.waitSignal(dialog.job.finished, timeout=JOB_TIMEOUT_MS).wait()
    assert dialog.job.end.state == "completed", (dialog.job.end.message, dialog.job.end.problems)
    assert dialog.apply_button.text() == f"Apply to {len(images)} images"
    dialog.apply_button.click()
    assert all(captions_of(again).values())
    assert again.undo_action.text() == f"&Undo Auto-caption {len(images)} images"
    close_window(again)


def test_plan_uses_the_captions_of_now():
    records = [{"file": "a.png", "old": None, "new": "x, y", "generated": ["x", "y"]},
               {"file": "b.png", "old": None, "new": None, "error": "cannot be decoded", "hint": "re-export it"},
               {"file": "gone.png", "old": None, "new": "x", "generated": ["x"]}]
    plan = plan_changes(records, {"a.png": "mine, y", "b.png": ""}, "append")
    assert plan.changes == {"a.png": ("mine, y", "mine, y, x")}
    assert [row.outcome for row in plan.rows] == [Outcome.CHANGE, Outcome.ERROR, Outcome.GONE]
    assert plan_changes(records[:1], {"a.png": "mine"}, "fill").rows[0].outcome is Outcome.KEPT
    assert plan_changes(records[:1], {"a.png": "mine"}, "replace").changes == {"a.png": ("mine", "x, y")}


def test_app_side_imports_no_training_library():
    blocker = "".join(f"sys.modules[{lib!r}] = None\n" for lib in ("torch", "transformers", "onnxruntime"))
    code = (f"import sys\n{blocker}import lora_studio.autocaption.hook\n"
            "from trainer.labeling.registry import families\nfamilies()\nprint('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_no_model_says_where_to_put_one(qtbot, tmp_path):
    from lora_studio.autocaption.dialog import AutoCaptionDialog

    scopes = {"selected": [], "filtered": ["a.png"], "all": ["a.png"]}
    dialog = AutoCaptionDialog(dataset=tmp_path / "ds", scopes=scopes, captions=lambda: {"a.png": ""},
                               apply=lambda changes, name: 0, captioners=[], workspace=tmp_path, places=[])
    qtbot.addWidget(dialog)
    assert dialog.settings.model_combo.currentText() == "No captioning models found"
    assert str(tmp_path / "models" / "captioners") in dialog.settings.model_hint.text()
    assert not dialog.start_button.isEnabled() and not dialog.settings.scope_buttons["selected"].isEnabled()


def test_a_trainer_that_cannot_start_is_reported(qtbot, tmp_path):
    from lora_studio.autocaption.job import LabelJob
    from lora_studio.autocaption.request import LabelRequest
    from lora_studio.jobs.places import Place
    from lora_studio.targets import LocalTarget, TargetContext, TargetSettings
    from lora_studio.workers.tasks import TaskRunner

    run_dir = tmp_path / "runs" / "label-x"
    run_dir.mkdir(parents=True)
    target = LocalTarget(python=str(tmp_path / "no-python"))
    place = Place("This computer", target, TargetContext(TargetSettings(targets=[target]), tmp_path / "known_hosts"))
    runner = TaskRunner()
    job = LabelJob(LabelRequest(tmp_path, ("a.png",), tmp_path / "model"), run_dir)
    with qtbot.waitSignal(job.finished, timeout=10_000) as blocker:
        job.start(place, runner)
    end = blocker.args[0]
    assert end.state == "invalid" and end.message == "The job did not start:"
    assert "the trainer does not run on This computer" in end.problems[0], end.problems
    assert "install the trainer from the Targets panel" in end.problems[0]
    assert not (run_dir / "run.json").exists()  # nothing was started
    assert runner.pool.waitForDone(10_000)
