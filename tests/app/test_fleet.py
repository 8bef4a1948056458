"""The Fleet tab and the queue in the app: Start queues a run when its target is busy and says what it
waits for; the app sends it when the target frees up; the queue can be reordered and a run cancelled
(after asking); the queue is still there after a restart. Starts are stand-ins (no trainer runs)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app_helpers import new_main_window, screenshot, write_base_model_header
from lora_studio.fleet import Needs, enqueue, list_queue
from lora_studio.fleet_ui.queue_model import QueueModel
from lora_studio.targets import LaunchOutcome
from lora_studio.targets.model import LocalTarget, SshTarget, TargetSettings, save_settings
from lora_studio.targets.preflight import PreflightReport
from lora_studio.targets.prepare import load_for_launch
from lora_studio.targets_ui.store import known_hosts_file, settings_file
from lora_studio.widgets.run_targets import ANY_FREE_TARGET
from tests.fleet.helpers import finish, pretend_running, write_config
from tests.targets.conftest import sshd  # noqa: F401 - the real OpenSSH server on loopback
from trainer.demo_workspace import create_demo_workspace


@pytest.fixture
def workspace(tmp_path) -> Path:
    """The demo workspace (no model: its header is enough for the form; nothing trains here)."""
    root = tmp_path / "share"
    create_demo_workspace(root, make_model=False)
    write_base_model_header(root / "models" / "tiny-sd" / "tiny-sd-v1.safetensors")
    return root


class FakeLaunch:
    """Stands in for the preflight and launch: the run's folder then says it runs on the target."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, target, config, ctx, *, workspace=None, before_start=None) -> LaunchOutcome:
        self.calls.append((target.name, Path(config).name))
        run_dir = Path(load_for_launch(config)["output_dir"])
        pretend_running(run_dir, target.name)
        return LaunchOutcome(PreflightReport(target.name), info=object(), prepared=SimpleNamespace(local_run_dir=run_dir))


def fake_launches(fleet) -> FakeLaunch:
    """The dispatcher's starts go to a FakeLaunch (and it makes no real preflights ahead of them)."""
    fleet.launch_fn = FakeLaunch()
    fleet.ahead = None
    return fleet.launch_fn


def _open(qtbot, window, workspace: Path) -> None:
    window.open_workspace(workspace)
    qtbot.waitUntil(lambda: window.session is not None, timeout=30_000)


def _rows(window) -> list[tuple[str, str]]:
    model = window.workbench.fleet_page.model
    return [(r.entry.name, model.data(model.index(i, 3))) for i, r in enumerate(model.rows)]


def test_start_on_a_busy_target_queues_the_run_and_the_app_sends_it_when_the_target_frees_up(qtbot, window, workspace):
    busy = pretend_running(workspace / "runs" / "portrait-v3", "This computer")
    bench = window.workbench
    launch = fake_launches(bench.fleet)
    _open(qtbot, window, workspace)
    bench.open_config(workspace / "configs" / "demo.yaml")
    page = bench.training
    qtbot.waitUntil(page.start_button.isEnabled, timeout=30_000)
    page.start_button.click()
    qtbot.waitUntil(lambda: bench.currentWidget() is bench.fleet_page, timeout=20_000)
    assert launch.calls == []  # busy: not started, queued
    assert page.start_reason.text().startswith("Queued — waits for This computer (busy: runs portrait-v3).")
    fleet = bench.fleet_page
    assert fleet.banner.isVisible() and "shapes-demo</b> is queued — waits for This computer" in fleet.banner.text()
    qtbot.waitUntil(lambda: bool(_rows(window)), timeout=10_000)
    assert _rows(window) == [("shapes-demo", "Waits for This computer (busy: runs portrait-v3)")]
    assert fleet.selected_run() == str(workspace / "runs" / "shapes-demo")
    target_row = fleet.targets.topLevelItem(0)
    assert target_row.text(2) == "busy (1 of 1 in use)" and target_row.child(0).text(0) == "portrait-v3"
    finish(busy)  # the target frees up: the next look sends the queued run
    with qtbot.waitSignal(bench.fleet.dispatched, timeout=20_000):
        bench.fleet.poll()
    assert launch.calls == [("This computer", "queued-config.yaml")]
    assert page.start_reason.text() == "shapes-demo started on This computer from the queue."
    qtbot.waitUntil(lambda: fleet.queue_stack.currentWidget() is fleet.empty, timeout=10_000)
    assert "No runs are waiting" in fleet.empty.text() and not fleet.banner.isVisible()
    assert list_queue(workspace) == []


def test_the_queue_can_be_reordered_and_a_run_cancelled_after_asking_and_it_outlives_the_app(
        qtbot, window, workspace, monkeypatch, app_home):
    save_settings(settings_file(), TargetSettings(targets=[
        LocalTarget(), SshTarget(name="gpu-01", host="gpu-01.lab.example", user="trainer", max_jobs=2)]))
    pretend_running(workspace / "runs" / "portrait-v3", "gpu-01")
    pretend_running(workspace / "runs" / "cats-v2", "gpu-01")
    now = time.time()
    for offset, name in enumerate(("style-a", "style-b", "style-c")):
        enqueue(write_config(workspace, name), workspace, Needs(gpus=1, memory_gb=6.2, targets=("gpu-01",)),
                "alice@desk-7", now=now + offset)
    bench = window.workbench
    fake_launches(bench.fleet)
    _open(qtbot, window, workspace)
    bench.show_fleet()
    fleet = bench.fleet_page
    qtbot.waitUntil(lambda: len(_rows(window)) == 3, timeout=10_000)
    assert [name for name, _ in _rows(window)] == ["style-a", "style-b", "style-c"]
    assert _rows(window)[0][1] == "Waits for gpu-01 (busy: runs cats-v2, portrait-v3)"
    assert fleet.model.data(fleet.model.index(0, 2)) == "1 GPU, ~6.2 GiB"
    assert window.workbench.training.target_box.findText(ANY_FREE_TARGET) >= 0  # two targets: "any" is offered

    fleet.table.selectRow(2)
    assert fleet.top_button.isEnabled() and not fleet.down_button.isEnabled()
    fleet.top_button.click()
    qtbot.waitUntil(lambda: [n for n, _ in _rows(window)] == ["style-c", "style-a", "style-b"], timeout=10_000)
    assert fleet.selected_run().endswith("style-c")  # it stays selected in its new place
    assert "<b>style-c</b> waits for:<ul><li>gpu-01: busy: runs cats-v2, portrait-v3</li></ul>" in fleet.detail.text()
    assert "may run on gpu-01 · queued from configs/style-c.yaml by alice@desk-7" in fleet.detail.text()
    fleet.down_button.click()
    qtbot.waitUntil(lambda: [n for n, _ in _rows(window)] == ["style-a", "style-c", "style-b"], timeout=10_000)

    asked = []
    answer = QMessageBox.StandardButton.No
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: asked.append(args[2]) or answer)
    fleet.table.selectRow(2)
    fleet.cancel_button.click()
    assert "Take style-b out of the queue?" in asked[0] and len(_rows(window)) == 3  # No: nothing changed
    answer = QMessageBox.StandardButton.Yes
    fleet.cancel_button.click()
    qtbot.waitUntil(lambda: [n for n, _ in _rows(window)] == ["style-a", "style-c"], timeout=10_000)
    screenshot(window, "fleet-queue-offscreen")

    window.close()  # the app restarts: the queue is the run folders' files, so it is all still there
    again = new_main_window(qtbot)
    fake_launches(again.workbench.fleet)
    try:
        _open(qtbot, again, workspace)
        again.workbench.show_fleet()
        qtbot.waitUntil(lambda: [n for n, _ in _rows(again)] == ["style-a", "style-c"], timeout=10_000)
    finally:
        again.close()
        assert again.runner.pool.waitForDone(10_000)


def _runs_rows(window) -> list[tuple[str, str, str]]:
    """The Runs list as shown (sorted): name, state, target."""
    proxy = window.workbench.monitor.proxy
    return [tuple(proxy.index(row, column).data() for column in (0, 1, 3)) for row in range(proxy.rowCount())]


def test_queued_runs_are_listed_on_the_runs_page_where_cancel_takes_them_out_of_the_queue(
        qtbot, window, workspace, monkeypatch, app_home):
    save_settings(settings_file(), TargetSettings(targets=[LocalTarget(), SshTarget(name="gpu-01", host="h", user="u")]))
    busy = pretend_running(workspace / "runs" / "portrait-v3", "gpu-01")
    now = time.time()
    for offset, (name, where) in enumerate((("style-a", ("gpu-01",)), ("style-b", ("gpu-01", "This computer")))):
        enqueue(write_config(workspace, name), workspace, Needs(targets=where), "alice@desk-7", now=now + offset)
    bench = window.workbench
    launch = fake_launches(bench.fleet)
    _open(qtbot, window, workspace)
    bench.show_runs()
    monitor = bench.monitor
    # The queue first, in its order (they have not started), then the run folders, newest first.
    qtbot.waitUntil(lambda: [r[0] for r in _runs_rows(window)][:3] == ["style-a", "style-b", "portrait-v3"],
                    timeout=20_000)
    assert _runs_rows(window)[:3] == [("style-a", "queued", "gpu-01"), ("style-b", "queued", "gpu-01 or 1 more"),
                                      ("portrait-v3", "training", "gpu-01")]
    monitor.table.selectRow(1)
    assert monitor.run_dir == workspace / "runs" / "style-b"
    assert monitor.state.text() == "QUEUED"
    assert monitor.details.text().startswith("#2 in the queue: waits for gpu-01 (busy), alice@desk-7 (its own computer)")
    assert monitor.progress.text() == "not started: in the queue"
    assert not monitor.resume_button.isEnabled()
    assert monitor.stop_button.text() == "Cancel…" and monitor.stop_button.isEnabled()
    # Recovery can be chosen ahead: it is kept with the run and holds from its start.
    monitor.table.selectRow(0)
    assert monitor.auto_recover.text() == "Recover automatically when lost, once it has started"
    monitor.auto_recover.setChecked(True)
    monitor.table.selectRow(1)

    # While another desk starts it (its claim), Cancel… waits: that desk's start would refuse the change anyway.
    from lora_studio.fleet.claim import release, try_claim
    claim = try_claim(workspace / "runs" / "style-b", "ben@desk-3", "start", "gpu-01")
    bench.fleet.refresh()
    qtbot.waitUntil(lambda: not monitor.stop_button.isEnabled(), timeout=20_000)
    assert monitor.stop_button.toolTip() == "It is being started on gpu-01 by ben@desk-3: wait a moment"
    release(workspace / "runs" / "style-b", claim)
    bench.fleet.refresh()
    qtbot.waitUntil(monitor.stop_button.isEnabled, timeout=20_000)

    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: asked.append(args[2]) or QMessageBox.StandardButton.Yes)
    monitor.stop_button.click()
    assert "Take style-b out of the queue?" in asked[0]
    qtbot.waitUntil(lambda: "style-b" not in [r[0] for r in _runs_rows(window)], timeout=20_000)
    assert [e.name for e in list_queue(workspace)] == ["style-a"]

    finish(busy)  # gpu-01 frees up: style-a goes out, and is listed once, from its run folder
    with qtbot.waitSignal(bench.fleet.dispatched, timeout=20_000):
        bench.fleet.poll()
    assert launch.calls == [("gpu-01", "queued-config.yaml")]
    qtbot.waitUntil(lambda: ("style-a", "training", "gpu-01") in _runs_rows(window), timeout=20_000)
    assert [r[0] for r in _runs_rows(window)].count("style-a") == 1
    monitor.table.selectRow([r[0] for r in _runs_rows(window)].index("style-a"))
    assert monitor.stop_button.text() == "Stop"
    assert monitor.auto_recover.text() == "Recover automatically when lost" and monitor.auto_recover.isChecked()


def test_a_queued_run_whose_start_failed_is_listed_as_failed_with_why_and_cannot_be_resumed(qtbot, monitor_page,
                                                                                              workspace):
    from dataclasses import replace
    from lora_studio.fleet import fleet_snapshot
    from lora_studio.fleet.queue import read_entry, write_entry
    enqueue(write_config(workspace, "style-a"), workspace, Needs(), "alice@desk-7")
    run_dir = workspace / "runs" / "style-a"
    write_entry(replace(read_entry(run_dir), state="failed", error={
        "message": "the base model is missing", "problems": ["the base model is missing", "copy it to models/"]}))
    page = monitor_page
    page.set_workspace(workspace)
    page.show_queue(fleet_snapshot(workspace, [LocalTarget()], "desk-1").queue)
    qtbot.waitUntil(lambda: page.proxy.rowCount() > 0 and page.proxy.index(0, 0).data() == "style-a", timeout=20_000)
    assert page.proxy.index(0, 1).data() == "failed"
    assert page.proxy.index(0, 0).data(Qt.ItemDataRole.ToolTipRole) == (
        "Its start from the queue failed: the base model is missing\n"
        "copy it to models/; fix it, then Queue again")
    page.table.selectRow(0)
    assert page.error.isVisible() and page.error.text().startswith("Its start from the queue failed: the base model")
    assert page.stop_button.text() == "Cancel…" and page.stop_button.isEnabled()
    # Nothing ran, so there is no checkpoint to resume from: the button puts it back into the queue.
    assert page.resume_button.text() == "Queue again" and not page.resume_elsewhere.isEnabled()
    with qtbot.waitSignal(page.requeueQueued, timeout=20_000) as asked:
        page.resume_button.click()
    assert asked.args == [str(run_dir)]


def test_queue_again_on_the_runs_page_puts_a_failed_start_back_into_the_queue(qtbot, window, workspace, app_home):
    from dataclasses import replace
    from lora_studio.fleet.queue import read_entry, write_entry
    save_settings(settings_file(), TargetSettings(targets=[LocalTarget(), SshTarget(name="gpu-01", host="h", user="u")]))
    pretend_running(workspace / "runs" / "portrait-v3", "gpu-01")  # busy: the run waits once it is queued again
    enqueue(write_config(workspace, "style-a"), workspace, Needs(targets=("gpu-01",)), "alice@desk-7")
    run_dir = workspace / "runs" / "style-a"
    write_entry(replace(read_entry(run_dir), state="failed", error={"message": "gpu-01 cannot see the dataset"}))
    bench = window.workbench
    fake_launches(bench.fleet)
    _open(qtbot, window, workspace)
    bench.show_runs()
    monitor = bench.monitor
    qtbot.waitUntil(lambda: ("style-a", "failed", "gpu-01") in _runs_rows(window), timeout=20_000)
    monitor.table.selectRow([r[0] for r in _runs_rows(window)].index("style-a"))
    assert monitor.resume_button.text() == "Queue again"
    monitor.resume_button.click()
    qtbot.waitUntil(lambda: ("style-a", "queued", "gpu-01") in _runs_rows(window), timeout=20_000)
    assert [(e.name, e.state) for e in list_queue(workspace)] == [("style-a", "queued")]
    assert monitor.resume_button.text() == "Resume" and not monitor.resume_button.isEnabled()


def test_the_queue_model_passes_the_model_tester(qtmodeltester, workspace):
    from lora_studio.fleet import fleet_snapshot
    for name in ("a", "b"):
        enqueue(write_config(workspace, name), workspace, Needs(), "desk-1")
    model = QueueModel()
    model.set_rows(fleet_snapshot(workspace, [LocalTarget()], "desk-1").queue)
    assert model.rowCount() == 2
    qtmodeltester.check(model)


def test_a_queued_run_that_asked_for_a_vm_snapshot_gets_it_when_it_goes_out_to_a_vm():
    from lora_studio.fleet_ui.dispatcher import launch_options
    from lora_studio.targets.model import VSphereTarget
    from lora_studio.vsphere.run_snapshot import snapshot_before_run
    entry = SimpleNamespace(options={"snapshot_first": True})
    vm = VSphereTarget(name="vm-01", vcenter="vc", vm="trainer-01", ssh_user="trainer")
    assert launch_options(entry, vm) == {"before_start": snapshot_before_run}
    assert launch_options(entry, SshTarget(name="gpu-01", host="h", user="u")) == {}  # not a VM: nothing to snapshot
    assert launch_options(SimpleNamespace(options={}), vm) == {}


def test_test_preflight_on_the_targets_tab_shows_the_targets_gpus_on_the_fleet_tab(qtbot, window, workspace):
    """This computer read "not known yet" on the Fleet tab until a run started there; a check on the
    Targets tab runs the same doctor, so what it reports is now shown (and kept for the queue's fit check)."""
    _open(qtbot, window, workspace)
    fleet = window.workbench.fleet_page
    qtbot.waitUntil(lambda: fleet.targets.topLevelItemCount() == 1, timeout=20_000)
    row = fleet.targets.topLevelItem(0)
    assert (row.text(0), row.text(1)) == ("This computer", "not checked yet")
    assert "Test / preflight" in row.toolTip(1)
    page = window.targets_panel.targets
    page.select("This computer")
    with qtbot.waitSignal(page.checkFinished, timeout=120_000) as checked:
        page.run_check()
    reported = checked.args[0].doctor["gpus"]   # the real doctor of this machine's trainer
    expected = (f"{len(reported)} × " if reported else "no GPU (CPU only)")
    qtbot.waitUntil(lambda: fleet.targets.topLevelItem(0).text(1).startswith(expected), timeout=20_000)
    assert not fleet.targets.topLevelItem(0).toolTip(1)


def test_check_gpus_on_the_fleet_tab_asks_the_targets_not_known_yet(qtbot, window, workspace, app_home, sshd):
    """This computer's doctor answers; a host where nothing listens says why; a real SSH server met for the
    first time is not trusted behind the user's back (the Targets tab shows its fingerprint and asks)."""
    save_settings(settings_file(), TargetSettings(targets=[
        LocalTarget(), SshTarget(name="gpu-01", host="127.0.0.1", port=_closed_port(), user="trainer"),
        SshTarget(name="gpu-02", host=sshd.host, port=sshd.port, user=sshd.user, key_file=str(sshd.user_key))]))
    _open(qtbot, window, workspace)
    fleet = window.workbench.fleet_page
    window.workbench.setCurrentWidget(fleet)
    qtbot.waitUntil(lambda: fleet.targets.topLevelItemCount() == 3 and fleet.check_button.isEnabled(), timeout=20_000)
    fleet.check_button.click()
    assert not fleet.check_button.isEnabled()
    assert "Asking This computer, gpu-01, gpu-02 for their GPUs" in fleet.footer.text()
    qtbot.waitUntil(lambda: "GPUs checked at" in fleet.footer.text(), timeout=120_000)
    gpus = [fleet.targets.topLevelItem(i).text(1) for i in range(3)]
    assert gpus[0] != "not checked yet" and gpus[1:] == ["not known (see below)"] * 2
    footer = fleet.footer.text()
    assert f"This computer: {gpus[0]}" in footer                       # its doctor answered
    assert "gpu-01: not known (cannot connect to trainer@127.0.0.1" in footer   # why, in its check's words:
    assert "connection refused)" in footer and "Errno" not in footer        # the system's, not "[Errno None] …"
    assert "gpu-02: not known (it is not trusted yet: Test / preflight on the Targets tab" in footer
    assert not known_hosts_file().exists()                            # nothing trusted without asking
    screenshot(fleet, "fleet_check_gpus")
    qtbot.waitUntil(fleet.check_button.isEnabled, timeout=20_000)


def _closed_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]   # free, and closed again once the probe is gone
