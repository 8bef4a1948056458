"""Auto-caption on a saved target over real SSH, and coming back to a job after the app restarted.

The "GPU VM" is this machine behind the real OpenSSH server of tests/targets (loopback,
generated keys). The VM sees the workspace at another path: a symlink stands for its
mount of the shared storage, and the target's path mapping points there, so every path
the trainer gets (dataset, model, run folder, image list) must have been mapped.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import paramiko
import pytest
from PIL import Image

from app_helpers import new_main_window, open_folder, screenshot
from lora_studio.autocaption.reattach import APPLIED_FILE, find_pending_jobs
from lora_studio.targets import LocalTarget, PathMapping, SshTarget, TargetSettings, save_settings
from lora_studio.targets.ssh import trust_host_key
from tests.targets.conftest import memory_keyring, reap_trainers, sshd  # noqa: F401 - sshd, keyring, cleanup
from tests.targets.helpers import pid_alive, wait_for

JOB_TIMEOUT_MS = 90_000
TARGET = "gpu-ssh"
MANY = 1500  # images enough for a job on the tiny tagger to still run a few seconds after it started


def make_workspace(root: Path, tagger: Path, count: int) -> Path:
    """``root/models/captioners/tiny-wd14`` and a csv dataset ``root/ds`` with ``count`` images, none captioned."""
    shutil.copytree(tagger, root / "models" / "captioners" / "tiny-wd14")
    data = root / "ds"
    data.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (40, 30), (i % 256, 40, 255 - i % 256)).save(data / f"i{i:04d}.png")
    (data / "metadata.csv").write_text("filename,prompt\n", encoding="utf-8")
    return data


def save_targets(app_home: Path, sshd, mappings: tuple[PathMapping, ...], python: str = sys.executable) -> None:
    """The Targets panel's file with an SSH target whose host key is already trusted."""
    target = SshTarget(name=TARGET, host=sshd.host, port=sshd.port, user=sshd.user, auth="key",
                       key_file=str(sshd.user_key), python=python, mappings=mappings)
    save_settings(app_home / "targets.json", TargetSettings(targets=[LocalTarget(), target]))
    kind, blob = sshd.host_key_pub.read_text().split()[:2]
    trust_host_key(app_home / "known_hosts", sshd.host, sshd.port,
                   paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))


@pytest.fixture
def shared(tmp_path, tagger, app_home, sshd):
    """A workspace the desktop sees at ``ws`` and the VM at ``vm-view`` (a symlink), mapped in the target."""
    def make(count: int = 4, mappings: tuple[PathMapping, ...] | None = None, python: str = sys.executable) -> Path:
        workspace = tmp_path / "ws"
        data = make_workspace(workspace, tagger, count)
        view = tmp_path / "vm-view"
        view.symlink_to(workspace, target_is_directory=True)
        save_targets(app_home, sshd, (PathMapping(str(workspace), str(view)),) if mappings is None else mappings,
                     python)
        return data
    return make


def open_dialog(window):
    window.autocaption.action.trigger()
    dialog = window.autocaption.dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def choose_target(dialog, name: str = TARGET) -> None:
    combo = dialog.settings.target
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert labels[0] == "This computer"
    index = next(i for i, label in enumerate(labels) if label.startswith(name + " "))
    assert labels[index] == f"{name} (SSH {combo.itemData(index).target.user}@127.0.0.1)"
    combo.setCurrentIndex(index)


def start(dialog, batch: int = 8) -> None:
    dialog.settings.scope_buttons["all"].setChecked(True)
    dialog.settings.batch.setValue(batch)
    assert dialog.start_button.isEnabled(), dialog.summary.text()
    dialog.start_button.click()
    assert dialog.job is not None


def wait_end(qtbot, job):
    if job.end is None:
        qtbot.waitSignal(job.finished, timeout=JOB_TIMEOUT_MS).wait()
    return job.end


def captions_of(window) -> dict[str, str]:
    return dict(zip(window.session.rels(), window.session.captions))


def test_a_job_on_an_ssh_target_runs_there_with_mapped_paths(qtbot, window, shared, tmp_path):
    data = shared(count=4)
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    choose_target(dialog)
    start(dialog)
    assert dialog.headline.text() == f"Captioning 4 images on {TARGET}…"
    assert dialog.stop_button.isEnabled()
    end = wait_end(qtbot, dialog.job)
    assert end.state == "completed", (end.message, end.problems, dialog.job.process.output)
    run_dir = dialog.job.run_dir
    info = json.loads((run_dir / "run.json").read_text())
    assert info["target_name"] == TARGET and info["launch"] == "ssh" and info["target_kind"] == "ssh"
    view = str(tmp_path / "vm-view")
    command = info["command"]
    for option, local in (("--input", data), ("--model", tmp_path / "ws" / "models" / "captioners" / "tiny-wd14"),
                          ("--run-dir", run_dir), ("--images", run_dir / "images.txt")):
        assert command[command.index(option) + 1] == str(local).replace(str(tmp_path / "ws"), view)
    assert info["run_dir"].startswith(view + "/")
    assert "done: 4 of 4 images captioned" in (run_dir / "train.log").read_text()  # its output is in the run folder

    assert dialog.apply_button.text() == "Apply to 4 images"
    qtbot.wait(50)
    screenshot(dialog, "autocaption-remote-done")
    dialog.apply_button.click()
    assert all(captions_of(window).values())
    assert window.undo_action.text() == "&Undo Auto-caption 4 images"
    assert json.loads((run_dir / APPLIED_FILE).read_text())["action"] == "applied"
    window.undo_action.trigger()
    assert not any(captions_of(window).values())


def wait_first_step(qtbot, dialog):
    """The dialog's job, once its first image is done (so it is surely running)."""
    job = dialog.job
    qtbot.waitUntil(lambda: int(job.status.get("step") or 0) >= 1, timeout=JOB_TIMEOUT_MS)
    return job


def start_remote_job(qtbot, window, data: Path):
    """Open ``data``, start a one-image-per-batch job on the SSH target; ``(dialog, job)`` once it runs."""
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    choose_target(dialog)
    start(dialog, batch=1)
    return dialog, wait_first_step(qtbot, dialog)


def test_stop_and_end_now_over_ssh(qtbot, window, shared):
    data = shared(count=MANY)
    dialog, job = start_remote_job(qtbot, window, data)
    dialog.stop_button.click()  # the STOP file, through the shared storage
    assert dialog.stop_button.text() == "Stopping…"
    end = wait_end(qtbot, job)
    assert end.state == "stopped", (end.message, end.problems)
    assert 1 <= len(dialog.plan.changes) < MANY

    # "End now" kills the trainer through the targets backend (SIGKILL over SSH, pid from run.json).
    dialog.start_button.click()
    job = wait_first_step(qtbot, dialog)
    pid = json.loads((job.run_dir / "run.json").read_text())["pid"]
    job.stop_requested = True  # what the first Stop click does; the second one is "End now"
    dialog.stop()
    end = wait_end(qtbot, job)
    assert end.state == "stopped"
    # The trainer writes its final status before it exits: on a busy machine it may still be on its way out.
    qtbot.waitUntil(lambda: _gone(pid), timeout=60_000)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (no longer there, or a zombie waiting for its parent)."""
    try:
        return "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    except OSError:
        return True


def test_unmapped_paths_are_named(qtbot, window, shared, tmp_path):
    # Only the dataset folder is mapped: the model, the run folder and the image list are not.
    data = shared(count=2, mappings=(PathMapping(str(tmp_path / "ws" / "ds"), str(tmp_path / "vm-view" / "ds")),))
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    choose_target(dialog)
    start(dialog)
    end = wait_end(qtbot, dialog.job)
    assert end.state == "invalid"
    text = dialog.errors.text()
    assert dialog.errors.isVisible() and "The job did not start" in text
    workspace = tmp_path / "ws"
    for what, path in (("the model folder", workspace / "models" / "captioners" / "tiny-wd14"),
                       ("the job&#x27;s run folder", dialog.job.run_dir),
                       ("the image list", dialog.job.run_dir / "images.txt")):
        assert f"{TARGET} cannot see {what}: {path}<br>" in text, text
    assert "the dataset folder" not in text
    assert f"{TARGET} sees only {workspace / 'ds'} — add a path mapping" in text
    assert f"Targets panel, {TARGET}, path mappings" in text
    assert not (dialog.job.run_dir / "run.json").exists()  # nothing was started
    qtbot.wait(50)
    screenshot(dialog, "autocaption-remote-unmapped")


def test_a_target_without_the_trainer_says_what_to_do(qtbot, window, shared, tmp_path):
    data = shared(count=2, python=str(tmp_path / "no-venv" / "bin" / "python3"))
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    choose_target(dialog)
    start(dialog)
    end = wait_end(qtbot, dialog.job)
    assert end.state == "invalid"
    assert "the trainer does not run on gpu-ssh" in dialog.errors.text()
    assert "install the trainer from the Targets panel" in dialog.errors.text()


def close_window(win) -> None:
    win.close()
    assert win.runner.pool.waitForDone(20_000)


def test_a_remote_job_is_found_again_after_the_app_restarted(qtbot, window, shared):
    data = shared(count=MANY)
    dialog, job = start_remote_job(qtbot, window, data)
    run_dir = job.run_dir
    # Closing the dialog leaves a job on a target running; the bar above the grid brings it back.
    dialog.close_button.click()
    assert not dialog.isVisible() and job.end is None
    bar = window.autocaption.bar
    assert bar.isVisible() and bar.show_button.text() == "Show progress…"
    assert f"Auto-caption is running on {TARGET}" in bar.text.text()
    close_window(window)  # the app goes; the job runs on over there

    again = new_main_window(qtbot)
    open_folder(qtbot, again, data)
    bar = again.autocaption.bar
    qtbot.waitUntil(bar.isVisible, timeout=10_000)
    assert bar.job.run_dir == run_dir
    assert bar.job.running or bar.job.state == "finished"
    qtbot.wait(50)
    screenshot(again, "autocaption-reattach-bar")
    bar.show_button.click()
    dialog = again.autocaption.dialog
    assert dialog is not None and dialog.isVisible() and not bar.isVisible()
    assert dialog.settings.target.currentText().startswith(TARGET)
    if dialog.job.end is None:  # still running (a loaded machine may have finished it meanwhile)
        assert not dialog.settings.target.isEnabled() and not dialog.start_button.isEnabled()
        qtbot.waitUntil(lambda: dialog.job.end is not None or bool(dialog.preview_model.rows), timeout=JOB_TIMEOUT_MS)
        qtbot.wait(50)
        screenshot(dialog, "autocaption-reattached-dialog")
    end = wait_end(qtbot, dialog.job)
    assert end.state == "completed", (end.message, end.problems)
    assert dialog.apply_button.text() == f"Apply to {MANY:,} images"
    dialog.apply_button.click()
    assert all(captions_of(again).values())
    assert again.undo_action.text() == f"&Undo Auto-caption {MANY:,} images"
    again.undo_action.trigger()
    assert not any(captions_of(again).values())
    assert find_pending_jobs(data.parent, data) == []  # applied: never offered again
    close_window(again)


def test_a_local_job_whose_trainer_died_can_still_be_applied(qtbot, window, shared, reap_trainers):
    data = shared(count=MANY)
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    start(dialog, batch=1)  # on this computer: detached, it would outlive the app
    job = dialog.job
    qtbot.waitUntil(lambda: len(job.records) >= 2, timeout=JOB_TIMEOUT_MS)
    pid = json.loads((job.run_dir / "run.json").read_text())["pid"]
    reap_trainers.append(pid)
    os.kill(pid, signal.SIGSTOP)  # held where it is while the app closes
    close_window(window)
    os.kill(pid, signal.SIGKILL)  # then its machine goes down: what it captioned is in its run folder
    wait_for(lambda: not pid_alive(pid), 10, "the killed trainer to be gone")

    again = new_main_window(qtbot)
    open_folder(qtbot, again, data)
    bar = again.autocaption.bar
    qtbot.waitUntil(bar.isVisible, timeout=10_000)
    assert bar.job.state == "interrupted" and "An auto-caption job was interrupted" in bar.text.text()
    assert bar.show_button.text() == "Review and apply…" and bar.discard_button.text() == "Discard"
    qtbot.wait(50)
    screenshot(again, "autocaption-reattach-interrupted")
    bar.show_button.click()
    dialog = again.autocaption.dialog
    end = wait_end(qtbot, dialog.job)
    assert end.state == "stopped" and "interrupted" in end.message, (end.message, end.problems)
    done = len(dialog.plan.changes)
    assert 2 <= done < MANY
    dialog.apply_button.click()
    assert sum(1 for caption in captions_of(again).values() if caption) == done
    assert again.undo_action.text() == f"&Undo Auto-caption {done} images"
    close_window(again)


def test_discarded_results_are_not_offered_again(qtbot, window, shared):
    data = shared(count=3)
    open_folder(qtbot, window, data)
    dialog = open_dialog(window)
    start(dialog)
    assert wait_end(qtbot, dialog.job).state == "completed"
    run_dir = dialog.job.run_dir
    close_window(window)  # the dialog goes with the app: its results stay unapplied

    again = new_main_window(qtbot)
    open_folder(qtbot, again, data)
    bar = again.autocaption.bar
    qtbot.waitUntil(bar.isVisible, timeout=10_000)
    assert bar.job.state == "finished" and "Auto-caption results are waiting" in bar.text.text()
    bar.discard_button.click()
    assert not bar.isVisible() and (run_dir / APPLIED_FILE).exists()
    assert find_pending_jobs(data.parent, data) == []
    assert not any(captions_of(again).values())
    close_window(again)


def test_label_paths_are_mapped_for_the_target_and_end_states_read_from_the_run_folder(tmp_path):
    from lora_studio.autocaption.request import LabelRequest, read_request, write_request
    from lora_studio.targets.launch import PathsNotVisible, map_job
    from lora_studio.targets.runs import exit_code_of

    desk = tmp_path / "share"
    target = SshTarget(name="vm", host="h", user="u", mappings=(PathMapping(str(desk), "/data/lora"),))
    request = LabelRequest(desk / "ds", ("a.png", "sub/b.png"), desk / "models" / "m", trigger="zz", threshold=0.4)
    job = request.trainer_job(desk / "runs" / "label-1", desk / "runs" / "label-1" / "images.txt")
    mapped = map_job(job, target)
    args = mapped.args
    assert args[0] == "label" and mapped.run_dir == "/data/lora/runs/label-1" and mapped.config == ""
    assert args[args.index("--input") + 1] == "/data/lora/ds"
    assert args[args.index("--images") + 1] == "/data/lora/runs/label-1/images.txt"
    assert args[args.index("--trigger") + 1] == "zz"  # not a path: unchanged
    outside = LabelRequest(tmp_path / "elsewhere", ("a.png",), desk / "models" / "m")
    with pytest.raises(PathsNotVisible) as caught:
        map_job(outside.trainer_job(desk / "runs" / "x", desk / "runs" / "x" / "images.txt"), target)
    assert caught.value.problems[0] == f"vm cannot see the dataset folder: {tmp_path / 'elsewhere'}"
    assert len(caught.value.problems) == 2 and "add a path mapping" in caught.value.problems[1]

    (desk / "runs" / "label-1").mkdir(parents=True)
    write_request(desk / "runs" / "label-1", request, "vm")
    again, record = read_request(desk / "runs" / "label-1")
    assert again == request and record["target"] == "vm"

    assert exit_code_of({"state": "completed"}, "") == 0 and exit_code_of({"state": "stopped"}, "") == 0
    assert exit_code_of({"state": "failed", "error": {"message": "x"}}, "") == 1
    assert exit_code_of(None, "error: dataset folder does not exist\n") == 2  # bad input: no status at all
    assert exit_code_of(None, "nohup: failed to run command") == 1
    assert exit_code_of({"state": "training"}, "") == -1  # gone in the middle
