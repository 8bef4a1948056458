"""The Ray target in the app, against the real head: added in the Targets panel's dialog and checked
there; a run Ray holds queued for a GPU shows as QUEUED on the Runs page, and its Stop cancels it."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QThreadPool

from lora_studio.targets.api import TargetContext, preflight, start
from lora_studio.targets.model import RayTarget, load_settings
from lora_studio.targets_ui.store import known_hosts_file, settings_file
from lora_studio.workers.tasks import TaskRunner
from tests.app.app_helpers import screenshot

from .conftest import RayWorkspace, write_dataset

# As in the other app tests: a Qt warning fails the test.
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)",
                                        r"This plugin does not support raise\(\)")]


@pytest.fixture(autouse=True)
def app_home(tmp_path, monkeypatch):
    """The app's settings (the saved targets among them) in a folder of this test."""
    monkeypatch.setenv("LORA_STUDIO_HOME", str(tmp_path / "app-home"))


@pytest.fixture
def runner():
    pool = QThreadPool()
    yield TaskRunner(pool)
    assert pool.waitForDone(60_000)  # no worker outlives the test


def test_a_ray_cluster_is_added_checked_and_its_queued_run_shown_and_stopped(qtbot, runner, ray_head, ray_workspace,
                                                                            tmp_path):
    from lora_studio.monitor.monitor_page import MonitorPage
    from lora_studio.targets_ui.panel import TargetsPanel
    from lora_studio.workers.thumbnails import ThumbnailLoader

    panel = TargetsPanel(runner, lambda: None)
    qtbot.addWidget(panel)
    panel.resize(1100, 620)
    panel.show()
    dialog = panel.targets.add_target("ray")
    assert dialog.windowTitle() == "Add target: Ray cluster"
    assert not dialog.password.isVisible() and not dialog.network_interface.isVisible()  # no login, one node a run
    dialog.name.setText("ray-lab")
    dialog.ray.address.setText(ray_head.address.removeprefix("http://"))  # as people type it: host:port
    dialog.python.setText(sys.executable)
    assert dialog.ray.gpus.value() == 1 and dialog.max_jobs.value() == 32
    dialog.ray.runtime_env.setText('{"env_vars": {"LORA_STUDIO_TEST": "1"}}')
    screenshot(dialog, "ray_target_dialog")
    dialog.ray.runtime_env.setText("{not json")
    dialog.accept()
    assert dialog.isVisible() and "not valid JSON" in dialog.error.text()
    dialog.ray.runtime_env.setText('{"env_vars": {"LORA_STUDIO_TEST": "1"}}')
    dialog.accept()
    assert not dialog.isVisible()
    target = load_settings(settings_file()).target("ray-lab")
    assert isinstance(target, RayTarget) and target.num_gpus == 1 and target.python == sys.executable

    # Test / preflight: the head answers; it has no GPU, so a run asking one would wait forever: said.
    panel.targets.select("ray-lab")
    with qtbot.waitSignal(panel.targets.checkFinished, timeout=30_000) as checked:
        panel.targets.run_check()
    checks = {c.name: c for c in checked.args[0].checks}
    assert checks["reachable"].status == "ok" and checks["resources"].status == "error"
    assert "1 problem would stop a launch" in panel.targets.summary.text()
    screenshot(panel, "ray_target_checked")

    # Started anyway, Ray holds the run: the Runs page shows it QUEUED, and Stop cancels it.
    workspace = RayWorkspace(tmp_path / "ws", ray_workspace.base_model)
    write_dataset(workspace.root / "data")
    ctx = TargetContext(load_settings(settings_file()), known_hosts_file())
    prepared, _ = preflight(target, workspace.config("waits-for-gpu"), ctx)
    start(target, prepared, ctx)
    thumbnails = ThumbnailLoader(tmp_path / "thumbs")
    page = MonitorPage(runner, thumbnails, context=lambda: ctx, refresh_ms=200, runs_refresh_ms=500)
    qtbot.addWidget(page)
    page.resize(1400, 860)
    page.show()
    page.set_workspace(workspace.root)
    qtbot.waitUntil(lambda: [r.state for r in page.model.runs] == ["queued"], timeout=30_000)
    qtbot.waitUntil(lambda: page.state.text() == "QUEUED", timeout=10_000)
    assert page.model.index(0, 1).data() == "queued" and "Queued by Ray" in page.model.index(0, 0).data(3)
    assert page.stop_bar.stop_button.isEnabled()
    screenshot(page, "ray_run_queued")
    page.stop_bar.stop_button.click()
    qtbot.waitUntil(lambda: page.state.text() == "STOPPED", timeout=30_000)
    qtbot.waitUntil(lambda: "Ray had not started the run" in page.stop_bar.text.text(), timeout=10_000)
    page.set_workspace(None)
    thumbnails.stop()
