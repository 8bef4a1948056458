"""One run over several targets in the app: "Several targets…" in Run on opens the nodes dialog, Start
launches on the chosen nodes (a stand-in here: nothing trains) and shows why it did not start, and
the Runs page shows a multi-node run's placement (its nodes and processes per node)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox

from app_helpers import screenshot, write_base_model_header
from lora_studio.targets import LaunchOutcome, Node, NodesOptions, Placement
from lora_studio.targets.model import LocalTarget, SshTarget, TargetSettings, VSphereTarget, save_settings
from lora_studio.targets.preflight import ERROR, PreflightReport
from lora_studio.targets.runinfo import RunInfo, write_run_info
from lora_studio.targets_ui.nodes_dialog import NodesChoice
from lora_studio.targets_ui.store import settings_file
from lora_studio.widgets.node_choice import SEVERAL_TARGETS
from tests.fleet.helpers import pretend_running
from trainer.demo_workspace import create_demo_workspace

TARGETS = [LocalTarget(), SshTarget(name="gpu-a", host="10.0.0.11", user="t", network_interface="eth1"),
           SshTarget(name="gpu-b", host="10.0.0.12", user="t"),
           VSphereTarget(name="vm-c", vcenter="vc", vm="vm-c", ssh_user="t"),
           VSphereTarget(name="vm-guest", vcenter="vc", vm="vm-guest", launch="guest_ops", guest_user="g")]


@pytest.fixture
def workspace(tmp_path) -> Path:
    root = tmp_path / "share"
    create_demo_workspace(root, make_model=False)
    write_base_model_header(root / "models" / "tiny-sd" / "tiny-sd-v1.safetensors")
    save_settings(settings_file(), TargetSettings(targets=list(TARGETS)))
    return root


def _choose_several(qtbot, bench):
    box = bench.training.target_box
    index = box.findText(SEVERAL_TARGETS)
    assert index >= 0
    box.setCurrentIndex(index)
    box.activated.emit(index)
    qtbot.waitUntil(lambda: bench.node_choice.dialog is not None and bench.node_choice.dialog.isVisible(), timeout=20_000)
    return bench.node_choice.dialog


def test_several_targets_are_chosen_in_a_dialog_and_start_launches_on_them(qtbot, window, workspace, monkeypatch):
    bench = window.workbench
    window.open_workspace(workspace)
    qtbot.waitUntil(lambda: window.session is not None, timeout=30_000)
    bench.open_config(workspace / "configs" / "demo.yaml")
    box = bench.training.target_box
    assert box.findText(SEVERAL_TARGETS) >= 0

    # Cancel puts the previous choice back.
    box.setCurrentText("gpu-b")
    dialog = _choose_several(qtbot, bench)
    dialog.reject()
    assert box.currentText() == "gpu-b" and bench.node_choice.chosen() is None

    dialog = _choose_several(qtbot, bench)
    names = [dialog.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(dialog.list.count())]
    assert names == ["gpu-a", "gpu-b", "vm-c"]  # this computer and a Guest Operations VM cannot be nodes
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    dialog.list.item(2).setCheckState(Qt.CheckState.Checked)
    assert not ok.isEnabled() and "two targets" in dialog.note.text()
    dialog.list.item(0).setCheckState(Qt.CheckState.Checked)
    assert ok.isEnabled() and dialog.note.text() == "2 nodes; gpu-a hosts the rendezvous."
    dialog.restarts.setValue(5)
    screenshot(dialog, "nodes-dialog")
    ok.click()
    assert box.currentText() == "gpu-a + vm-c (2 nodes)"
    assert bench.node_choice.chosen() == NodesChoice(("gpu-a", "vm-c"), NodesOptions(max_restarts=5))
    bench.offer_targets()  # the Targets panel changed something: the choice stays
    assert box.currentText() == "gpu-a + vm-c (2 nodes)" and bench.node_choice.chosen() is not None

    calls = []

    def unreachable(targets, config, ctx, *, workspace=None, options=None):
        calls.append(([t.name for t in targets], options))
        report = PreflightReport("gpu-a + vm-c")
        report.add("rendezvous", ERROR, "vm-c (10.0.0.40) cannot reach the rendezvous at 10.0.0.11:41234 (host "
                   "10.0.0.11, port 41234) on gpu-a: Connection refused", "open the port")
        return LaunchOutcome(report)
    bench.fleet.launch_nodes_fn = unreachable
    page = bench.training
    qtbot.waitUntil(page.start_button.isEnabled, timeout=30_000)
    with qtbot.waitSignal(bench.launchDone, timeout=20_000):
        page.start_button.click()
    assert calls == [(["gpu-a", "vm-c"], NodesOptions(max_restarts=5))]
    box_shown = window.findChild(QMessageBox, "notStartedBox")
    assert box_shown is not None and "10.0.0.11:41234" in box_shown.text() and "port 41234" in box_shown.text()
    box_shown.close()


def test_the_train_page_divides_the_steps_among_the_processes_of_the_chosen_nodes(qtbot, window, workspace):
    from lora_studio.fleet import note_gpus
    from lora_studio.targets_ui.store import gpu_notes_file

    bench = window.workbench
    window.open_workspace(workspace)
    qtbot.waitUntil(lambda: window.session is not None, timeout=30_000)
    bench.open_config(workspace / "configs" / "demo.yaml")
    page = bench.training
    page.target_box.setCurrentText("gpu-a")
    qtbot.waitUntil(lambda: page.analysis is not None and page.analysis.figures is not None, timeout=30_000)
    alone = page.analysis.figures
    assert "processes" not in page.figures.text()

    def choose(nodes: tuple[int, ...]) -> None:
        dialog = _choose_several(qtbot, bench)
        for row in nodes:
            dialog.list.item(row).setCheckState(Qt.CheckState.Checked)
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()

    choose((0, 2))  # gpu-a + vm-c: their GPUs are not known yet, so one process each
    qtbot.waitUntil(lambda: page.analysis.processes.count == 2, timeout=30_000)
    assert "Over <b>2</b> processes (2 nodes, one each until their GPUs are known)" in page.figures.text()
    assert page.analysis.figures.total_steps == -(-alone.batches_per_epoch // 2) * alone.epochs

    for name in ("gpu-a", "vm-c"):  # their preflights reported two GPUs each
        note_gpus(gpu_notes_file(), name, {"gpus": [{"name": "NVIDIA L40S", "total_gb": 45.0}] * 2})
    choose(())  # the same nodes again: now counted by their GPUs
    qtbot.waitUntil(lambda: page.analysis.processes.count == 4, timeout=30_000)
    assert "Over <b>4</b> processes (2 nodes × 2 GPUs): each step trains 4 batches side by side" in page.figures.text()
    assert page.analysis.figures.steps_per_epoch == -(-alone.batches_per_epoch // 4)
    page.target_box.setCurrentText("gpu-b")  # one target again
    qtbot.waitUntil(lambda: page.analysis.processes.count == 1, timeout=30_000)
    assert page.analysis.figures.total_steps == alone.total_steps


def _multinode_run(run: Path) -> Path:
    run.mkdir(parents=True)
    (run / "train.log").write_text("step 40: rank 0 on gpu-a\n", encoding="utf-8")
    (run / "train.node2.log").write_text("[W] gloo connect to 10.0.0.11 failed, retrying\n", encoding="utf-8")
    now = time.time()
    (run / "status.json").write_text(json.dumps({"state": "training", "step": 40, "total_steps": 200, "epoch": 2,
                                                 "total_epochs": 10, "heartbeat": now, "pid": 4242,
                                                 "host": "gpu-a", "started_at": now - 60}))  # rank 0's machine
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 0.2 + 0.5 / s, "lr": 1e-4,
                                                           "samples_per_s": 8.0}) + "\n" for s in range(1, 41)))
    placement = Placement((Node("gpu-a", "10.0.0.11", 4101, 2, "train.log", "eth1"),
                           Node("gpu-b", "10.0.0.12", 5202, 2, "train.node2.log")), "10.0.0.11:41234", "r-1", 3)
    write_run_info(run, RunInfo("ssh", "gpu-a", "10.0.0.11", 4101, ["python"], now - 60, "0", "ssh", str(run),
                                str(run / "config.yaml"), extra={"kind": "train", "placement": placement.to_json()}))
    return run


def test_the_runs_page_shows_the_nodes_of_a_multi_node_run(qtbot, window, workspace):
    run = _multinode_run(workspace / "runs" / "two-nodes")
    bench = window.workbench
    window.open_workspace(workspace)
    monitor = bench.monitor
    bench.show_runs()
    qtbot.waitUntil(lambda: any(r.path == run for r in monitor.model.runs), timeout=20_000)
    row = next(i for i, r in enumerate(monitor.model.runs) if r.path == run)
    assert monitor.model.data(monitor.model.index(row, 3)) == "gpu-a +1"
    tip = monitor.model.data(monitor.model.index(row, 3), Qt.ItemDataRole.ToolTipRole)
    assert tip == "2 nodes × 2 processes: gpu-a (10.0.0.11), gpu-b (10.0.0.12)"
    monitor.show_run(run)
    assert monitor.placement.isVisible()
    text = monitor.placement.text()
    for part in ("2 nodes × 2 processes", "(4 in all)", "rendezvous 10.0.0.11:41234", "up to 3 restarts",
                 "gpu-a (rendezvous)", "10.0.0.12", "eth1", "train.node2.log"):
        assert part in text, part
    assert "on 2 nodes × 2 processes" in monitor.details.text()
    screenshot(monitor, "monitor-multinode-offscreen")
    # The Log tab follows node 1's output; node 2's is a choice away (each node writes its own file).
    log = monitor.log_view
    assert not log.node.isHidden() and [log.node.itemText(i) for i in range(log.node.count())] == [
        "Node 1: gpu-a", "Node 2: gpu-b"]
    assert "rank 0 on gpu-a" in log.text.toPlainText() and "gloo" not in log.text.toPlainText()
    log.node.setCurrentIndex(1)
    assert "gloo connect to 10.0.0.11 failed" in log.text.toPlainText()
    with (run / "train.node2.log").open("a", encoding="utf-8") as handle:
        handle.write("torchrun: restarting workers (1 of 3)\n")
    monitor.refresh()  # the page's per-second refresh: the chosen node's new lines, the choice kept
    assert log.node.currentIndex() == 1 and "restarting workers" in log.text.toPlainText()
    # A run on one machine shows no placement, and no choice of node.
    monitor.show_run(pretend_running(workspace / "runs" / "one-node", "gpu-b"))
    assert not monitor.placement.isVisible() and "on gpu-b" in monitor.details.text()
    assert log.node.isHidden()


def test_the_target_dialog_edits_the_network_interface(qtbot):
    from lora_studio.targets.model import target_from_dict, target_to_dict
    from lora_studio.targets_ui.target_dialog import TargetDialog

    dialog = TargetDialog("ssh", TARGETS[1])
    qtbot.addWidget(dialog)
    assert dialog.network_interface.text() == "eth1"
    dialog.network_interface.setText(" ens224 ")
    target = dialog.target()
    assert target.network_interface == "ens224" and target_from_dict(target_to_dict(target)) == target
    local = TargetDialog("local", LocalTarget())
    qtbot.addWidget(local)
    assert local.network_interface.isHidden()  # this computer is never a node


def test_a_run_over_two_nodes_one_of_them_busy_is_queued_and_sent_when_both_are_free(qtbot, window, workspace):
    from tests.fleet.helpers import finish
    busy = pretend_running(workspace / "runs" / "portrait-v3", "gpu-b")
    bench = window.workbench
    calls = []

    def launch_nodes(targets, config, ctx, *, workspace=None, options=None):
        calls.append(([t.name for t in targets], Path(config).name, options))
        pretend_running(Path(config).parent, targets[0].name)
        return LaunchOutcome(PreflightReport(" + ".join(t.name for t in targets)), info=object())
    bench.fleet.launch_nodes_fn = launch_nodes
    window.open_workspace(workspace)
    qtbot.waitUntil(lambda: window.session is not None, timeout=30_000)
    bench.open_config(workspace / "configs" / "demo.yaml")
    dialog = _choose_several(qtbot, bench)
    dialog.list.item(0).setCheckState(Qt.CheckState.Checked)
    dialog.list.item(1).setCheckState(Qt.CheckState.Checked)
    dialog.restarts.setValue(4)
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    page = bench.training
    qtbot.waitUntil(page.start_button.isEnabled, timeout=30_000)
    page.start_button.click()
    qtbot.waitUntil(lambda: bench.currentWidget() is bench.fleet_page, timeout=20_000)
    assert calls == []  # gpu-b is busy: queued, not started
    assert page.start_reason.text().startswith("Queued — waits for gpu-b (busy: runs portrait-v3).")
    model = bench.fleet_page.model
    qtbot.waitUntil(lambda: bool(model.rows), timeout=10_000)
    needs = [model.data(model.index(0, column)) for column in range(model.columnCount())]
    assert any(str(cell).startswith("2 nodes: ") for cell in needs), needs
    finish(busy)
    with qtbot.waitSignal(bench.fleet.dispatched, timeout=20_000):
        bench.fleet.poll()
    assert calls == [(["gpu-a", "gpu-b"], "queued-config.yaml", NodesOptions(max_restarts=4))]
