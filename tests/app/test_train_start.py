"""The Train tab before and at New Training: an empty state that says what to do, New Training
from the workspace's start preset (the demo's 64 px settings), the CPU-speed warning, and a question
before settings that were not saved give way to another config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from app_helpers import answer_prompt, screenshot, write_base_model_header
from lora_studio.training.analysis import analyse
from lora_studio.training.presets import create_demo, list_presets, start_preset
from trainer.demo_workspace import DEMO_SETTINGS, create_demo_workspace


@pytest.fixture
def demo_ws(tmp_path) -> Path:
    """The demo workspace as the app creates it (with its start preset), without the model."""
    root = tmp_path / "demo"
    create_demo_workspace(root, make_model=False)
    model = root / "models" / "tiny-sd" / "tiny-sd-v1.safetensors"
    write_base_model_header(model)  # the form reads the header's family; nothing loads it here
    create_demo(root)
    return root


def _open(qtbot, window, workspace: Path) -> None:
    window.open_workspace(workspace)
    qtbot.waitUntil(lambda: window.session is not None, timeout=30_000)


def test_train_tab_without_a_config_says_what_to_do_and_lists_the_configs(qtbot, window, demo_ws):
    _open(qtbot, window, demo_ws)
    bench = window.workbench
    bench.setCurrentWidget(bench.train_stack)
    start = bench.start_page
    assert bench.train_stack.currentWidget() is start and not bench.training.isVisible()
    assert start.title.text() == "No training config open"
    assert [b.defaultAction() for b in start.buttons] == [bench.new_training_action, bench.open_config_action]
    qtbot.waitUntil(lambda: start.configs.count() == 1, timeout=10_000)
    item = start.configs.item(0)
    assert item.text().startswith("demo.yaml") and "shapes" in item.text() and "64 px" in item.text()
    screenshot(window, "train-tab-no-config")
    start.configs.itemActivated.emit(item)
    assert bench.train_stack.currentWidget() is bench.training
    assert bench.training.config_path == demo_ws / "configs" / "demo.yaml"


def test_an_opened_config_is_compared_with_the_preset_it_is_closest_to(qtbot, window, demo_ws):
    _open(qtbot, window, demo_ws)
    page = window.workbench.training
    config = demo_ws / "configs" / "demo.yaml"
    window.workbench.open_config(config)
    # demo.yaml holds the Demo preset's settings: nothing reads as changed (it read 8 changes from the defaults)
    assert page.preset_box.currentText().startswith("★ Demo: 64 px")
    assert page.form.differences() == {}
    assert page.diff_list.item(0).text() == "Same as the preset."
    changed = demo_ws / "configs" / "demo-128.yaml"
    changed.write_text(config.read_text(encoding="utf-8").replace("resolution: 64", "resolution: 128"), encoding="utf-8")
    window.workbench.open_config(changed)
    assert page.preset_box.currentText().startswith("★ Demo: 64 px")
    assert page.form.differences() == {"resolution": (64, 128)}
    plain = demo_ws / "configs" / "plain.yaml"
    plain.write_text("schema_version: 1\nlearning_rate: 0.0002\n", encoding="utf-8")
    window.workbench.open_config(plain)
    # the defaults again, not the Demo preset the last config was compared with
    assert page.preset_box.currentText() == "Defaults"
    assert list(page.form.differences()) == ["learning_rate"]


def test_new_training_in_the_demo_starts_from_its_64px_preset(qtbot, window, demo_ws):
    _open(qtbot, window, demo_ws)
    window.workbench.new_training_action.trigger()
    page = window.workbench.training
    assert window.workbench.train_stack.currentWidget() is page
    assert page.preset_box.currentText().startswith("★ Demo: 64 px")
    values = page.form.values()
    for name, value in DEMO_SETTINGS.items():
        assert values[name] == value, name
    assert "new, not saved yet" in page.title.text() and not page.config_path.exists()
    qtbot.waitUntil(lambda: page.analysis is not None and page.analysis.figures is not None, timeout=20_000)
    assert page.analysis.figures.total_steps == 36  # 36 images, batch 4, 4 epochs: a minute on a CPU
    assert not [p for p in page.analysis.problems if p.severity == "error"]
    page.resize(1400, 820)
    screenshot(window, "train-tab-demo-new-training")
    assert page.save() and "new, not saved yet" not in page.title.text()


def test_settings_not_saved_are_kept_saved_or_let_go_as_the_user_says_before_another_config_opens(
        qtbot, window, demo_ws):
    _open(qtbot, window, demo_ws)
    bench, page = window.workbench, window.workbench.training
    demo = demo_ws / "configs" / "demo.yaml"
    bench.open_config(demo)
    assert not page.is_modified()  # an opened config as it was: nothing to ask
    page.form.rows["lora_rank"].editor.spin.setValue(16)
    assert page.is_modified()
    # Cancel: New Training does nothing, the change stays on screen.
    with answer_prompt("unsavedSettingsPrompt", QMessageBox.StandardButton.Cancel) as asked:
        bench.new_training_action.trigger()
    assert asked == ["demo.yaml has changes that are not saved. Save them before starting a new one?"]
    assert page.config_path == demo and page.form.values()["lora_rank"] == 16
    # Save: written to demo.yaml, then the other config opens.
    other = demo_ws / "configs" / "other.yaml"
    other.write_text("schema_version: 1\nlora_rank: 2\n", encoding="utf-8")
    with answer_prompt("unsavedSettingsPrompt", QMessageBox.StandardButton.Save):
        bench.open_config(other)
    assert page.config_path == other and "lora_rank: 16" in demo.read_text(encoding="utf-8")
    # Discard: the change is let go, the file keeps what it had.
    page.form.rows["lora_rank"].editor.spin.setValue(8)
    with answer_prompt("unsavedSettingsPrompt", QMessageBox.StandardButton.Discard):
        bench.open_config(demo)
    assert page.config_path == demo and other.read_text(encoding="utf-8") == "schema_version: 1\nlora_rank: 2\n"


def test_new_training_without_a_start_preset_starts_from_the_schema_defaults(qtbot, window, tmp_path):
    workspace = tmp_path / "plain"
    create_demo_workspace(workspace, make_model=False)  # no start preset: the trainer's demo only
    assert start_preset(list_presets(workspace)) is None
    _open(qtbot, window, workspace)
    window.workbench.new_training_action.trigger()
    page = window.workbench.training
    assert page.preset_box.currentText() == "Defaults" and page.form.values()["resolution"] == 512
    assert page.save()  # else closing the window asks whether to save it


def _values(workspace: Path, resolution: int) -> dict:
    return {"train_data_dir": str(workspace / "datasets" / "shapes"), "base_model": str(workspace / "models" / "tiny-sd"
            / "tiny-sd-v1.safetensors"), "output_dir": str(workspace / "runs" / "new"), "resolution": resolution,
            "max_train_steps": 360, "batch_size": 4, "min_bucket_reso": 32, "max_bucket_reso": 1024,
            "bucket_reso_steps": 32}


def _cpu_warnings(analysis) -> list[str]:
    return [p.message for p in analysis.problems if p.severity == "warning" and "CPU" in p.message]


def test_a_cpu_run_at_512px_gets_a_warning_that_names_the_cpu(demo_ws):
    values = _values(demo_ws, 512)
    assert analyse(values, demo_ws, demo_ws).figures is not None  # valid settings
    assert _cpu_warnings(analyse(values, demo_ws, demo_ws, on_cpu=True))
    assert not _cpu_warnings(analyse(values, demo_ws, demo_ws, on_cpu=False))  # a GPU target
    assert not _cpu_warnings(analyse(_values(demo_ws, 64), demo_ws, demo_ws, on_cpu=True))


def test_the_time_estimate_scales_an_earlier_runs_speed_to_the_new_size(demo_ws):
    run = demo_ws / "runs" / "shapes-demo"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("resolution: 64\n", encoding="utf-8")
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 0.1, "samples_per_s": 40.0}) + "\n"
                                               for s in range(1, 6)), encoding="utf-8")
    small = analyse(_values(demo_ws, 64), demo_ws, demo_ws, on_cpu=True)
    assert small.seconds == pytest.approx(360 * 4 / 40.0) and small.speed_source == "shapes-demo at 64 px"
    assert not _cpu_warnings(small)  # 36 s
    # The same speed logged by a run over two nodes of two GPUs is four processes' images: a quarter each.
    from lora_studio.targets.placement import Node, Placement
    from lora_studio.targets.runinfo import RunInfo, write_run_info
    placement = Placement((Node("gpu-a", "10.0.0.11", 1, 2, "train.log"), Node("gpu-b", "10.0.0.12", 2, 2, "n2.log")),
                          "10.0.0.11:29400", "r", 3)
    write_run_info(run, RunInfo("ssh", "gpu-a", "10.0.0.11", 1, [], 0.0, "0", "ssh", str(run), "",
                                extra={"placement": placement.to_json()}))
    assert analyse(_values(demo_ws, 64), demo_ws, demo_ws).seconds == pytest.approx(4 * small.seconds)
    big = analyse(_values(demo_ws, 512), demo_ws, demo_ws, on_cpu=True)
    assert big.seconds > 100 * small.seconds  # 64x the pixels
    [warning] = _cpu_warnings(big)
    assert " h at 512 px" in warning


def test_the_time_estimate_only_goes_by_runs_of_the_same_family(demo_ws):
    import os
    import time

    def run(name: str, resolution: int, speed: float, base_model: Path | None = None) -> None:
        folder = demo_ws / "runs" / name
        folder.mkdir(parents=True)
        lines = f"resolution: {resolution}\n" + (f"base_model: {base_model}\n" if base_model else "")
        (folder / "config.yaml").write_text(lines, encoding="utf-8")
        (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "samples_per_s": speed}) + "\n", encoding="utf-8")

    run("shapes-demo", 64, 40.0)
    xl_model = write_base_model_header(demo_ws / "models" / "xl" / "base.safetensors", "sdxl")
    run("xl-run", 64, 4.0, xl_model)
    later = time.time() + 10
    os.utime(demo_ws / "runs" / "xl-run" / "metrics.jsonl", (later, later))  # the newest run
    sd = analyse(_values(demo_ws, 64), demo_ws, demo_ws)
    assert sd.speed_source == "shapes-demo at 64 px"  # the newer SDXL run says nothing about SD's speed
    xl = analyse({**_values(demo_ws, 64), "base_model": str(xl_model)}, demo_ws, demo_ws)
    assert xl.speed_source == "xl-run at 64 px" and xl.seconds == pytest.approx(10 * sd.seconds)
    assert "SDXL" in xl.memory.source


def test_a_check_that_reports_after_the_page_closed_is_dropped(qtbot, demo_ws):
    """Closing the window while the settings are being checked: no callback on deleted widgets."""
    import shiboken6

    from lora_studio.training.page import TrainingPage
    from lora_studio.workers.tasks import TaskRunner

    runner = TaskRunner()
    page = TrainingPage(runner)
    page.open_config(demo_ws / "configs" / "demo.yaml", demo_ws)
    page._timer.stop()
    page._validate()  # the check is now in a worker
    page.deleteLater()  # posted before the worker can report back
    qtbot.waitUntil(lambda: not shiboken6.isValid(page), timeout=10_000)
    assert runner.pool.waitForDone(10_000)
    qtbot.wait(100)  # deliver the worker's queued report: pytest-qt fails the test on an exception in it


def test_train_again_opens_the_runs_settings_as_a_new_config_with_a_folder_of_its_own(qtbot, window, demo_ws):
    from tests.fleet.helpers import finish, pretend_running
    from trainer.config.loader import config_to_yaml, load_config
    from trainer.fsutil import atomic_write_text

    configs = demo_ws / "configs"
    run_dir = pretend_running(demo_ws / "runs" / "shapes-demo", "This computer")
    finish(run_dir)
    # The run folder's config.yaml as the trainer writes it: every option, absolute paths; this run was
    # resumed from a checkpoint and had its rank and rate changed from the demo's.
    config, problems = load_config(configs / "demo.yaml", check_paths=False)
    assert config is not None, problems
    ran = config.replace(lora_rank=16, learning_rate=0.0005, resume=str(run_dir / "checkpoints" / "step-00000010"))
    atomic_write_text(run_dir / "config.yaml", config_to_yaml(ran, "Resolved config of a LoRA Studio run."))
    bare = pretend_running(demo_ws / "runs" / "no-config", "This computer")  # started without a config
    finish(bare)
    _open(qtbot, window, demo_ws)
    bench, monitor, page = window.workbench, window.workbench.monitor, window.workbench.training
    bench.show_runs()
    monitor.refresh_runs()
    qtbot.waitUntil(lambda: monitor.proxy.rowCount() == 2, timeout=20_000)
    monitor._select_path(str(bare))
    qtbot.waitUntil(lambda: monitor.run_dir == bare, timeout=10_000)
    qtbot.waitUntil(lambda: not monitor.train_again_button.isEnabled(), timeout=10_000)
    monitor._select_path(str(run_dir))
    qtbot.waitUntil(lambda: monitor.run_dir == run_dir and monitor.train_again_button.isEnabled(), timeout=10_000)

    monitor.train_again_button.click()
    assert bench.currentWidget() is bench.train_stack and bench.train_stack.currentWidget() is page
    assert page.config_path == configs / "shapes-demo.yaml" and not page.config_path.exists()  # not saved yet
    values = page.form.values()
    assert (values["lora_rank"], values["learning_rate"], values["resolution"]) == (16, 0.0005, 64)
    # Its paths relative to configs/ again, a run folder of its own beside the old one, nothing resumed.
    assert values["train_data_dir"] == "../datasets/shapes"
    assert values["base_model"] == "../models/tiny-sd/tiny-sd-v1.safetensors"
    assert re.fullmatch(r"\.\./runs/shapes-demo-\d{8}-\d{4}", values["output_dir"]), values["output_dir"]
    assert values["resume"] == "auto" and values["output_name"] == "shapes-demo"
    assert page.yaml_edit.toPlainText().startswith("# The settings of run shapes-demo (")
    # Compared with the preset it is closest to: the two changes show, nothing else.
    assert page.preset_box.currentText().startswith("★ Demo: 64 px")
    assert set(page.form.differences()) == {"lora_rank", "learning_rate"}
    assert page.save()
    saved, problems = load_config(page.config_path)
    assert saved is not None, problems
    assert (Path(saved.output_dir).parent, saved.lora_rank) == (demo_ws / "runs", 16)


def test_train_again_says_why_a_runs_settings_cannot_be_read(tmp_path):
    from lora_studio.training.new_configs import settings_of_run

    run_dir = tmp_path / "runs" / "broken"
    with pytest.raises(ValueError, match="config.yaml is not there: this run was not started with a config"):
        settings_of_run(run_dir, tmp_path / "configs")
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("lora_rank: [16\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken/config.yaml:2: is not valid YAML: .* \(fix the syntax at that line"):
        settings_of_run(run_dir, tmp_path / "configs")
