"""The vSphere tab's operations against govmomi's vCenter simulator (an instance of this module's
own: these tests add VMs and snapshots): the New VM dialog read back through pyvmomi, its
refusals and its Cancel; the snapshot panel; the cluster view; the datastore browser; the
protection warnings of the preflight; and "Snapshot the VM first" on the Train tab.
"""

from __future__ import annotations

import shlex
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtGui import QGuiApplication, QTextDocument
from PySide6.QtWidgets import QApplication, QMessageBox
from pyVmomi import vim

from app_helpers import screenshot
from trainer.rundir import read_status
from lora_studio.targets import PathMapping, VSphereTarget, load_settings
from lora_studio.targets.credentials import store_password
from lora_studio.targets_ui.store import settings_file
from lora_studio.vsphere import NewVm, VSphereError, create_vm, list_snapshots
from lora_studio.vsphere.hardware import GB, disks, nics
from lora_studio.vsphere.tasks import properties
from lora_studio.workers.tasks import TaskRunner
# A simulator, a pinned session and a template of this module's own (the fixtures of the backend tests).
from tests.targets.conftest import memory_keyring, vcsim, vcsim_binary  # noqa: F401
from tests.vsphere.conftest import by_name, pinned, session, template  # noqa: F401

FAKE_PYTHON = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).with_name('fake_guest_python.py')))}"
SNAPSHOT_VM = "DC0_C0_RP0_VM1"


def plain(label) -> str:
    """What a rich-text label shows, as text."""
    document = QTextDocument()
    document.setHtml(label.text())
    return document.toPlainText()


def snap(widget, name: str) -> None:
    """A screenshot once the layouts have caught up with the texts just set (posted layout requests)."""
    QApplication.sendPostedEvents()
    QApplication.processEvents()
    screenshot(widget, name)


def vm_names(session) -> set[str]:
    return {p.get("name") for _, p in session.collect(vim.VirtualMachine, ["name"])}


@pytest.fixture
def panel(qtbot, vcsim, pinned, memory_keyring, tmp_path):
    """The Targets panel on its vSphere tab, with the simulator's vCenter saved, pinned and its password in the keyring."""
    from lora_studio.targets_ui.panel import VSPHERE, TargetsPanel

    pool = QThreadPool()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    widget = TargetsPanel(TaskRunner(pool), lambda: workspace)
    widget.workspace_path = workspace
    qtbot.addWidget(widget)
    widget.resize(1240, 760)
    widget.show()
    store_password(pinned.secret_account(), vcsim.password)
    widget.store.put_vcenter(pinned)
    widget.tabs.setCurrentIndex(VSPHERE)
    yield widget
    assert pool.waitForDone(60_000)


def open_dialog(qtbot, panel):
    dialog = panel.vsphere.open_new_vm_dialog()
    qtbot.waitUntil(lambda: bool(dialog.form.isEnabled()), timeout=60_000)
    return dialog


def choose(box, data: str) -> None:
    index = box.findData(data)
    assert index >= 0, (data, [box.itemData(i) for i in range(box.count())])
    box.setCurrentIndex(index)


def test_new_vm_dialog_makes_the_vm_as_entered_then_offers_it_as_a_target(qtbot, panel, session, template, tmp_path):
    dialog = open_dialog(qtbot, panel)
    form = dialog.form
    host = properties(session, by_name(session, vim.VirtualMachine, template), ["runtime.host"])["runtime.host"]
    assert form.template.currentText() == template
    assert form.place.currentData() == properties(session, host, ["name"])["name"]  # where the template is
    form.name.setText("lora-ui-01")
    choose(form.place, "DC0_C0")
    assert not form.gpu.isEnabled()   # a GPU is one host's: a cluster offers none
    choose(form.place, "DC0_C0_H1")
    # The lists follow the host: its datastores, networks and GPUs.
    assert form.gpu.isEnabled() and form.gpu.findData("vgpu:grid_a100-8c") > 0
    choose(form.datastore, "LocalDS_0")
    form.cpus.setValue(8)
    form.memory.setValue(16)
    form.disk.setValue(150)
    choose(form.network, "VM Network")
    choose(form.gpu, "0000:3b:00.0")
    form.guest.setChecked(True)
    form.share.setText("nas:/export/lora")
    form.ssh_user.setText("trainer")
    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample trainer@studio\n")
    form.key_file.setText(str(key))
    form.wait_s.setValue(60)
    snap(dialog, "vsphere-new-vm-dialog")
    steps: list[str] = []
    dialog.steps.step.connect(lambda step, _: steps.append(step))
    with qtbot.waitSignal(dialog.workDone, timeout=120_000) as done:
        dialog.create_button.click()
    assert done.args == ["made"], plain(dialog.status)
    assert "lora-ui-01" in plain(dialog.status) and "127.0.0.1" in plain(dialog.status)
    assert [s.split()[0] for s in dict.fromkeys(steps)][:2] == ["cloning", "configuring"]
    assert any(s.startswith("waiting for VMware Tools") for s in steps)

    vm = by_name(session, vim.VirtualMachine, "lora-ui-01")   # what vCenter has, not what the dialog says
    p = properties(session, vm, ["config.hardware.numCPU", "config.hardware.memoryMB", "config.hardware.device",
                                 "datastore", "runtime.host", "runtime.powerState", "config.extraConfig"])
    assert (p["config.hardware.numCPU"], p["config.hardware.memoryMB"]) == (8, 16 * 1024)
    [disk] = disks(p["config.hardware.device"])
    assert disk.capacityInKB * 1024 == 150 * GB
    assert nics(p["config.hardware.device"])[0].backing.deviceName == "VM Network"
    assert [properties(session, ds, ["name"])["name"] for ds in p["datastore"]] == ["LocalDS_0"]
    assert properties(session, p["runtime.host"], ["name"])["name"] == "DC0_C0_H1"
    [gpu] = [d for d in p["config.hardware.device"] if isinstance(d, vim.vm.device.VirtualPCIPassthrough)]
    assert gpu.backing.id == "0000:3b:00.0" and p["runtime.powerState"] == "poweredOn"
    assert "guestinfo.userdata" in {o.key for o in p["config.extraConfig"]}

    # "Add as a target…": the Targets tab's dialog, with the VM, the SSH user and the share's mount as the mapping.
    # The inventory is listed again, with the new VM.
    qtbot.waitUntil(lambda: "lora-ui-01" in [r.name for r in panel.vsphere.model.rows], timeout=60_000)
    dialog.target_button.click()
    target_dialog = panel.targets.dialog
    assert panel.tabs.currentIndex() == 0
    assert (target_dialog.vm.text(), target_dialog.vcenter.currentText(), target_dialog.user.text()) == \
        ("lora-ui-01", "lab", "trainer")
    assert target_dialog.mappings.mappings() == (PathMapping(str(panel.workspace_path), "/data/lora"),)
    target_dialog.accept()
    target = load_settings(settings_file()).target("lora-ui-01")
    assert isinstance(target, VSphereTarget) and target.ssh_user == "trainer" and target.vm == "lora-ui-01"


def test_new_vm_dialog_refuses_bad_values_in_one_line_and_makes_nothing(qtbot, panel, session, template):
    dialog = open_dialog(qtbot, panel)
    form = dialog.form
    before = vm_names(session)
    form.name.setText("DC0_H0_VM0")
    with qtbot.waitSignal(dialog.workDone, timeout=60_000) as done:
        dialog.create_button.click()
    assert done.args == ["refused"]
    shown = plain(dialog.status)
    assert "Name: a VM called 'DC0_H0_VM0' exists already (choose another name" in shown
    assert "Traceback" not in shown and "\n" not in shown and "--name" not in shown
    assert form.name.styleSheet() and form.isEnabled()   # the field is outlined; the form can be fixed

    # Another admin takes the GPU after the dialog listed it as free: refused, naming who has it and what is free.
    create_vm(session, NewVm(name="lora-holds-gpu", template=template, host="DC0_C0_H2", gpu="0000:3b:00.0",
                             power_on=False))
    form.name.setText("lora-ui-gpu")
    choose(form.place, "DC0_C0_H2")
    choose(form.gpu, "0000:3b:00.0")
    with qtbot.waitSignal(dialog.workDone, timeout=60_000) as done:
        dialog.create_button.click()
    assert done.args == ["refused"]
    assert "GPU: GPU 0000:3b:00.0 of host DC0_C0_H2 is used by lora-holds-gpu" in plain(dialog.status)
    assert "0000:d8:00.0" in plain(dialog.status) and form.gpu.styleSheet()

    # A guest setup cloud-init could not use is refused before any vCenter is asked.
    form.guest.setChecked(True)
    form.share.setText("nas-without-export")
    dialog.create()
    assert "Share: 'nas-without-export' is not an NFS export" in plain(dialog.status)
    assert vm_names(session) == before | {"lora-holds-gpu"}
    dialog.cancel()   # idle: Cancel closes
    assert not dialog.isVisible()


def test_new_vm_dialog_cancel_removes_the_half_made_vm(qtbot, panel, session, template):
    dialog = open_dialog(qtbot, panel)
    dialog.form.name.setText("lora-ui-cancelled")
    dialog.form.power_on.setChecked(False)
    # Hold the worker at its first progress report until Cancel is pressed: no race with a fast simulator.
    pressed = threading.Event()
    dialog.steps.step.connect(lambda step, _: pressed.wait(30), Qt.ConnectionType.DirectConnection)
    dialog.create_button.click()
    qtbot.waitUntil(lambda: plain(dialog.status).startswith("Cloning"), timeout=60_000)
    assert dialog.progress.isVisible() and not dialog.form.isEnabled()
    with qtbot.waitSignal(dialog.workDone, timeout=60_000) as done:
        dialog.cancel_button.click()
        assert plain(dialog.status).startswith("Cancelling")
        pressed.set()
    assert done.args == ["cancelled"]
    assert "Cancelled" in plain(dialog.status) and "removed" in plain(dialog.status)
    assert "lora-ui-cancelled" not in vm_names(session)
    assert dialog.form.isEnabled() and dialog.create_button.isEnabled()   # try again, or change something


def _answer(qtbot, snapshots, name: str, button) -> None:
    qtbot.waitUntil(lambda: snapshots.prompt is not None and snapshots.prompt.objectName() == name)
    box = snapshots.prompt
    assert isinstance(box, QMessageBox)
    box.button(button).click()


def test_snapshot_panel_take_revert_delete_and_clone(qtbot, panel, session):
    page = panel.vsphere
    with qtbot.waitSignal(page.inventoryLoaded, timeout=60_000):
        page.refresh()
    snapshots = page.snapshots
    with qtbot.waitSignal(snapshots.listed, timeout=60_000) as listed:
        page.select_vm(SNAPSHOT_VM)
    assert listed.args == [0] and "no snapshots yet" in plain(snapshots.status)
    assert not snapshots.revert_button.isEnabled()
    for name, description in (("known-good", "driver 550, CUDA 12.4"), ("before-run-a", "before lr 3e-4")):
        snapshots.ask_take()
        dialog = snapshots.prompt
        dialog.name.setText(name)
        dialog.description.setText(description)
        with qtbot.waitSignal(snapshots.listed, timeout=60_000):
            dialog.accept()
    top = snapshots.tree.topLevelItem(0)
    assert (top.text(0), top.text(3), top.child(0).text(0)) == ("known-good", "driver 550, CUDA 12.4",
                                                                "before-run-a   ◀ you are here")
    assert top.text(1)[:2] == "20" and top.text(2) == "on"

    # Revert asks first; Cancel changes nothing.
    snapshots.select("known-good")
    snapshots.ask_revert()
    _answer(qtbot, snapshots, "revertPrompt", QMessageBox.StandardButton.Cancel)
    vm = by_name(session, vim.VirtualMachine, SNAPSHOT_VM)
    assert [r.name for r in list_snapshots(session, vm) if r.current] == ["before-run-a"]
    snapshots.ask_revert()
    with qtbot.waitSignal(snapshots.listed, timeout=60_000):
        _answer(qtbot, snapshots, "revertPrompt", QMessageBox.StandardButton.Yes)
    assert [r.name for r in list_snapshots(session, vm) if r.current] == ["known-good"]
    assert snapshots.tree.topLevelItem(0).text(0) == "known-good   ◀ you are here"
    snap(panel, "vsphere-snapshots")

    snapshots.select("before-run-a")
    snapshots.ask_delete()
    with qtbot.waitSignal(snapshots.listed, timeout=60_000):
        _answer(qtbot, snapshots, "deletePrompt", QMessageBox.StandardButton.Yes)
    assert [r.name for r in list_snapshots(session, vm)] == ["known-good"]

    # Clone for an experiment: a linked clone at the selected snapshot, listed in the inventory.
    snapshots.select("known-good")
    snapshots.ask_clone()
    prompt = snapshots.prompt
    prompt.setTextValue("lora-exp-ui")
    with qtbot.waitSignal(snapshots.cloned, timeout=60_000) as cloned:
        prompt.accept()
    assert cloned.args[0].linked_to == f"{SNAPSHOT_VM}@known-good"
    qtbot.waitUntil(lambda: "lora-exp-ui" in [r.name for r in page.model.rows], timeout=60_000)
    assert "linked to" in plain(snapshots.status)


def test_cluster_view_shows_hosts_gpus_vms_and_ha_drs(qtbot, panel):
    page = panel.vsphere
    with qtbot.waitSignal(page.cluster.loaded, timeout=60_000):
        page.views.setCurrentWidget(page.cluster)   # read when first shown
    tree = page.cluster.tree
    tops = {tree.topLevelItem(i).text(0): tree.topLevelItem(i) for i in range(tree.topLevelItemCount())}
    cluster = tops["DC0_C0"]
    assert cluster.text(2).startswith("⚠ HA off · DRS on")
    hosts = [cluster.child(i) for i in range(cluster.childCount())]
    assert [h.text(0) for h in hosts] == ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]
    gpus = [hosts[0].child(i) for i in range(hosts[0].childCount()) if hosts[0].child(i).text(0).startswith("GPU")]
    assert [g.text(0) for g in gpus] == ["GPU 0000:3b:00.0", "GPU 0000:d8:00.0"]
    assert all("NVIDIA A100-PCIE-40GB" in g.text(2) for g in gpus)
    assert "vGPU profiles grid_a100-4c" in hosts[0].text(2)
    standalone = tops["DC0_H0"]
    assert "standalone host" in standalone.text(2)
    vms = [standalone.child(i).text(0) for i in range(standalone.childCount())]
    assert "VM DC0_H0_VM0" in vms
    assert "passthrough GPUs free" in plain(page.cluster.status)
    snap(panel, "vsphere-cluster-view")


def test_datastore_browser_lists_folders_and_says_where_a_mapping_is_needed(qtbot, panel, session):
    ds = by_name(session, vim.Datastore, "LocalDS_0")
    root = Path(properties(session, ds, ["info.url"])["info.url"])
    (root / "lora" / "models").mkdir(parents=True, exist_ok=True)
    (root / "lora" / "models" / "sd15-base.safetensors").write_bytes(b"\0" * 4096)
    (root / "lora" / "datasets" / "cats").mkdir(parents=True, exist_ok=True)
    page = panel.vsphere
    browser = page.browser
    with qtbot.waitSignal(browser.listed, timeout=60_000):
        page.views.setCurrentWidget(browser)
    assert browser.datastore.currentText() == "LocalDS_0"
    with qtbot.waitSignal(browser.listed, timeout=60_000):
        browser.open_folder("lora")
    names = [browser.tree.topLevelItem(i).text(0) for i in range(browser.tree.topLevelItemCount())]
    assert names == ["datasets", "models"]
    item = browser.tree.topLevelItem(1)
    with qtbot.waitSignal(browser.listed, timeout=60_000):
        browser.tree.itemActivated.emit(item, 0)   # a double-click opens the folder
    assert plain(browser.where) == "[LocalDS_0] lora/models" and browser.up_button.isEnabled()
    browser.select("sd15-base.safetensors")
    assert browser.tree.topLevelItem(0).text(1) == "4.0 KB"
    assert "No target maps this path" in plain(browser.mapping) and "[LocalDS_0] lora" in plain(browser.mapping)
    snap(panel, "vsphere-datastore-browser")
    # A target whose mapping covers the datastore folder: the view says what the VM opens.
    panel.store.put_target(VSphereTarget("gpu-vm", "lab", "DC0_H0_VM0", ssh_user="trainer",
                                         mappings=(PathMapping("[LocalDS_0] lora", "/data/lora"),)))
    assert "gpu-vm sees it at /data/lora/models/sd15-base.safetensors" in plain(browser.mapping)
    browser.copy_path()
    assert QGuiApplication.clipboard().text() == "/data/lora/models/sd15-base.safetensors"
    with qtbot.waitSignal(browser.listed, timeout=60_000):
        browser.up()
    assert browser.folder == "lora"


def _guest_target(vcsim, name: str, vm: str) -> VSphereTarget:
    target = VSphereTarget(name, "lab", vm, launch="guest_ops", guest_user=vcsim.guest_user, python=FAKE_PYTHON)
    store_password(target.guest_secret_account(), vcsim.guest_password)
    return target


def test_preflight_warns_when_the_vm_has_no_failure_tolerance_or_ha(qtbot, panel, vcsim):
    panel.store.put_target(_guest_target(vcsim, "cluster-vm", "DC0_C0_RP0_VM0"))
    panel.tabs.setCurrentIndex(0)
    panel.targets.select("cluster-vm")
    with qtbot.waitSignal(panel.targets.checkFinished, timeout=120_000) as done:
        panel.targets.run_check()
    checks = done.args[0].checks
    assert [c.status for c in checks if c.name == "reachable"] == ["ok"], done.args[0].summary()
    ha = [c for c in checks if c.name == "ha"]
    assert [(c.status, c.message) for c in ha] == [("warning", "cluster DC0_C0 has vSphere HA off")]
    policy = [c for c in checks if c.name == "storage_policy"]
    assert policy and all(c.status == "warning" for c in policy)   # the simulator associates no policy with a disk
    assert "ready (" in plain(panel.targets.summary)                # warnings, not problems: the VM still trains


def _config(workspace: Path, run: str) -> Path:
    (workspace / "data").mkdir(parents=True, exist_ok=True)
    (workspace / "models").mkdir(exist_ok=True)
    (workspace / "models" / "base.safetensors").write_bytes(b"\0" * 16)
    config = workspace / "configs" / f"{run}.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(f"train_data_dir: ../data\nbase_model: ../models/base.safetensors\noutput_dir: ../runs/{run}\n")
    return config


def test_snapshot_the_vm_first_is_named_after_the_run_and_a_failed_one_stops_the_launch(
        qtbot, window, vcsim, pinned, session, tmp_path, monkeypatch):
    store_password(pinned.secret_account(), vcsim.password)
    store = window.targets_panel.store
    store.put_vcenter(pinned)
    store.put_target(_guest_target(vcsim, "vm-guest", "DC0_H0_VM1"))
    workspace = tmp_path / "ws"
    config = _config(workspace, "exp-snap")
    workbench = window.workbench
    training = workbench.training
    workbench.workspace = workspace
    workbench.open_config(config)
    assert not training.snapshot_box.isVisible()   # this computer: no VM to snapshot
    training.target_box.setCurrentText("vm-guest")
    assert training.snapshot_box.isVisible()
    training.snapshot_box.setChecked(True)
    with qtbot.waitSignal(workbench.launchDone, timeout=120_000) as done:
        workbench.start_training(str(config))
    outcome = done.args[0]
    assert outcome.started, outcome.report.summary()
    vm = by_name(session, vim.VirtualMachine, "DC0_H0_VM1")
    [row] = [r for r in list_snapshots(session, vm) if r.name == "exp-snap"]
    assert "before run exp-snap" in row.description
    assert [c.message for c in outcome.report.checks if c.name == "snapshot"] == \
        ["took snapshot 'exp-snap' of DC0_H0_VM1 before the run"]
    names = [c.name for c in outcome.report.checks]
    assert names.index("snapshot") > names.index("config")   # after the preflight passed
    # The stand-in trainer ran (and finished, so the VM is free for the next run).
    qtbot.waitUntil(lambda: (read_status(workspace / "runs" / "exp-snap") or {}).get("state") == "completed",
                    timeout=60_000)

    # vCenter refuses the snapshot: the run does not start, and the message says why.
    def refuse(*args, **kwargs):
        raise VSphereError("taking snapshot exp-refused failed: The operation is not allowed in the current state.",
                           "look at the task's events in vSphere Client")
    monkeypatch.setattr("lora_studio.vsphere.run_snapshot.create_snapshot", refuse)
    refused = _config(workspace, "exp-refused")
    with qtbot.waitSignal(workbench.launchDone, timeout=120_000) as done:
        workbench.start_training(str(refused))
    assert not done.args[0].started
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "notStartedBox") is not None)
    box = window.findChild(QMessageBox, "notStartedBox")
    assert "no snapshot of DC0_H0_VM1 could be taken" in box.text() and "not allowed" in box.text()
    assert training.start_reason.text() == "Not started: the VM's snapshot could not be taken."
    assert not (workspace / "runs" / "exp-refused" / "run.json").exists()
    box.button(QMessageBox.StandardButton.Ok).click()
