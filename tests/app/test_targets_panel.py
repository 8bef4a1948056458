"""The Targets panel against real parts: an OpenSSH server on loopback (host key prompt, preflight,
a refused changed key, a remote run shown on the Runs tab) and govmomi's vCenter simulator over TLS
(certificate trust, inventory, power-on, a VM made a target). Passwords go to an in-memory keyring.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QMessageBox

from app_helpers import screenshot
from lora_studio.targets import (Check, LocalTarget, PathMapping, SshTarget, TargetConfigError, UntrustedHostKey,
                                 VmRow, VSphereTarget, launch, load_settings, stop)
from lora_studio.targets.api import connect
from lora_studio.targets.credentials import SERVICE
from lora_studio.targets.ssh import trust_host_key
from lora_studio.targets_ui.models import ChecksModel, InventoryModel, TargetsModel
from lora_studio.targets_ui.store import known_hosts_file, settings_file
from lora_studio.workers.tasks import TaskRunner
# The real-parts fixtures of the backend tests (sshd, vCenter simulator, demo workspace), reused.
from tests.targets.conftest import (demo_workspace, memory_keyring, reap_trainers, sshd,  # noqa: F401
                                   vcsim, vcsim_binary)
from tests.targets.helpers import copy_workspace, pid_alive, wait_state, write_config


class Workspace:
    """What the panel asks for as the open workspace."""

    path: Path | None = None


@pytest.fixture
def panel(qtbot):
    from lora_studio.targets_ui.panel import TargetsPanel

    pool = QThreadPool()
    runner = TaskRunner(pool)
    ws = Workspace()
    widget = TargetsPanel(runner, lambda: ws.path)
    widget.ws = ws
    qtbot.addWidget(widget)
    widget.resize(1100, 620)
    widget.show()
    yield widget
    assert pool.waitForDone(60_000)


def _fingerprint(pub: Path) -> str:
    return subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout.split()[1]


def _small_workspace(root: Path) -> tuple[Path, Path]:
    """A workspace with a config whose files exist here (enough for a preflight to map and check)."""
    (root / "configs").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "models").mkdir()
    (root / "models" / "base.safetensors").write_bytes(b"\0" * 16)
    config = root / "configs" / "remote.yaml"
    config.write_text("train_data_dir: ../data\nbase_model: ../models/base.safetensors\noutput_dir: ../runs/r\n")
    return root, config


def _by_name(panel) -> dict[str, Check]:
    return {c.name: c for c in panel.targets.checks.rows}


def _button(box: QMessageBox, text: str):
    return next(b for b in box.buttons() if b.text() == text)


def test_models_and_dialog_validation(qtbot, qtmodeltester, panel):
    targets = TargetsModel()
    targets.set_rows([LocalTarget(), SshTarget("gpu", "h", "u", mappings=(PathMapping("Z:\\lora", "/data/lora"),))])
    qtmodeltester.check(targets)
    assert targets.index(1, 3).data() == "Z:\\lora → /data/lora"
    checks = ChecksModel()
    checks.set_rows([Check("reachable", "ok", "connected"), Check("shared_files", "error", "not seen", "fix the mapping"),
                     Check("gpu", "warning", "no GPU"), Check("config", "skipped", "later")])
    qtmodeltester.check(checks)
    vms = InventoryModel()
    vms.set_rows([VmRow("vm", "poweredOff", "esx1", 8, 65536, ("vGPU grid_a100-8c",), "Ubuntu", "", "guestToolsNotRunning",
                        "toolsNotRunning")])
    qtmodeltester.check(vms)
    assert [vms.index(0, c).data() for c in range(9)] == ["vm", "Off", "esx1", "8", "64.0 GiB", "vGPU grid_a100-8c",
                                                         "Ubuntu", "—", "not running"]
    qtmodeltester.check(panel.targets.model)

    # A bad mapping keeps the dialog open and names the row; nothing is saved.
    dialog = panel.targets.add_target("ssh")
    dialog.name.setText("box")
    dialog.host.setText("gpu.example")
    dialog.user.setText("me")
    dialog.mappings.add_row("/mnt/lora", "relative/path")
    dialog.accept()
    assert dialog.isVisible() and "row 1" in dialog.error.text() and "absolute" in dialog.error.text()
    screenshot(dialog, "targets_ssh_dialog")
    with pytest.raises(TargetConfigError):
        dialog.target()
    dialog.reject()
    assert [t.name for t in load_settings(settings_file()).targets] == ["This computer"]


def test_ssh_target_first_use_prompt_then_a_preflight_failure(qtbot, panel, sshd, tmp_path, memory_keyring):
    workspace, config = _small_workspace(tmp_path / "ws")
    panel.ws.path = workspace
    dialog = panel.targets.add_target("ssh")
    dialog.name.setText("gpu-ssh")
    dialog.host.setText(sshd.host)
    dialog.port.setValue(sshd.port)
    dialog.user.setText(sshd.user)
    dialog.auth.setCurrentIndex(dialog.auth.findData("key"))
    dialog.key_file.setText(str(sshd.user_key_encrypted))
    assert dialog.form.isRowVisible(dialog.password) and dialog.password_label.text() == "Key passphrase:"
    dialog.password.setText(sshd.PASSPHRASE)
    dialog.python.setText(sys.executable)
    dialog.accept()
    assert not dialog.isVisible()
    target = load_settings(settings_file()).target("gpu-ssh")
    assert isinstance(target, SshTarget) and target.port == sshd.port
    qtbot.waitUntil(lambda: memory_keyring.store.get((SERVICE, target.secret_account())) == sshd.PASSPHRASE)
    assert sshd.PASSPHRASE not in settings_file().read_text()   # the keyring only

    # First contact: the fingerprint is shown, nothing is trusted until the user says so.
    panel.targets.select("gpu-ssh")
    with qtbot.waitSignal(panel.targets.checkFinished, timeout=60_000) as first:
        panel.targets.run_check()
    assert isinstance(first.args[0].trust, UntrustedHostKey)
    qtbot.waitUntil(lambda: panel.trust.prompt is not None)
    prompt = panel.trust.prompt
    assert _fingerprint(sshd.host_key_pub) in prompt.text() and not known_hosts_file().exists()
    screenshot(prompt, "targets_host_key_prompt")
    with qtbot.waitSignal(panel.targets.checkFinished, timeout=120_000) as second:
        _button(prompt, "Trust this host").click()
    assert f"[{sshd.host}]:{sshd.port} ssh-ed25519 " in known_hosts_file().read_text()
    checks = {c.name: c for c in second.args[0].checks}
    assert checks["reachable"].status == "ok" and checks["shared_files"].status == "ok", second.args[0].summary()
    assert checks["trainer"].status == "ok"

    # The target's mapping points at a folder the host does not have: the preflight says which check and what to do.
    dialog = panel.targets.edit_selected()
    elsewhere = f"{tmp_path}/not-mounted/lora"  # a folder the host does not have (and not outside the test's own)
    dialog.mappings.add_row(str(workspace), elsewhere)
    assert dialog.password.placeholderText().startswith("leave empty")
    dialog.accept()
    assert load_settings(settings_file()).target("gpu-ssh").mappings == (PathMapping(str(workspace), elsewhere),)
    panel.targets.refresh_configs()
    panel.targets.set_config(config)
    with qtbot.waitSignal(panel.targets.checkFinished, timeout=120_000):
        panel.targets.run_check()
    checks = _by_name(panel)
    assert checks["reachable"].status == "ok" and checks["trainer"].status == "ok", (checks["trainer"].message,
                                                                                    checks["trainer"].hint)
    assert checks["shared_files"].status == "error" and "path mapping" in checks["shared_files"].hint
    assert checks["base_model"].status == "error" and f"{elsewhere}/models" in checks["base_model"].message
    assert checks["config"].status == "skipped"
    row = [c.name for c in panel.targets.checks.rows].index("shared_files")
    assert panel.targets.checks.index(row, 2).data() == checks["shared_files"].hint
    assert "problems would stop a launch" in panel.targets.summary.text()
    assert panel.trust.prompt is None  # a failed check is not a trust question
    screenshot(panel, "targets_preflight_failure")


def test_changed_host_key_is_refused_clearly(qtbot, panel, sshd, tmp_path):
    target = SshTarget("gpu-ssh", sshd.host, sshd.user, port=sshd.port, auth="key", key_file=str(sshd.user_key),
                       python=sys.executable)
    panel.store.put_target(target)
    # known_hosts pins another key for this host: a changed key, maybe an attack.
    trust_host_key(known_hosts_file(), sshd.host, sshd.port, paramiko.Ed25519Key(filename=str(sshd.user_key)))
    before = known_hosts_file().read_text()
    panel.targets.select("gpu-ssh")
    with qtbot.waitSignal(panel.targets.checkFinished, timeout=60_000) as done:
        panel.targets.run_check()
    assert done.args[0].trust is None
    qtbot.waitUntil(lambda: panel.trust.prompt is not None)
    box = panel.trust.prompt
    assert box.objectName() == "refusal" and "CHANGED" in box.text() and "known_hosts" in box.informativeText()
    assert not any(b.text().startswith("Trust") for b in box.buttons())  # no one-click way past it
    assert _by_name(panel)["reachable"].status == "error"
    box.button(QMessageBox.StandardButton.Ok).click()
    assert known_hosts_file().read_text() == before


def _add_gpus(vcenter, ctx) -> None:
    from pyVmomi import vim
    with connect(vcenter, ctx) as session:
        vm = session.find_vm("DC0_H0_VM0")
        gpu = vim.vm.device.VirtualPCIPassthrough(key=-100, backing=vim.vm.device.VirtualPCIPassthrough.DeviceBackingInfo(
            id="0000:3b:00.0", deviceId="20b0", systemId="sys", vendorId=0x10DE, deviceName="NVIDIA A100-PCIE-40GB"))
        spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=gpu)])
        session.wait(vm.ReconfigVM_Task(spec), 30, "adding a GPU")
        off = session.find_vm("DC0_H0_VM1")
        if off.runtime.powerState == "poweredOn":
            session.wait(off.PowerOffVM_Task(), 30, "powering off")


def test_vcenter_certificate_trust_inventory_power_on_and_use_as_target(qtbot, panel, vcsim, memory_keyring):
    page = panel.vsphere
    panel.tabs.setCurrentIndex(1)
    dialog = page.open_vcenter_dialog(None)
    dialog.name.setText("lab")
    dialog.host.setText(vcsim.host)
    dialog.port.setValue(vcsim.port)
    dialog.user.setText(vcsim.user)
    dialog.password.setText(vcsim.password)
    dialog.accept()
    # The certificate is fetched and shown; nothing is pinned until the user trusts it.
    qtbot.waitUntil(lambda: panel.trust.prompt is not None, timeout=30_000)
    prompt = panel.trust.prompt
    import hashlib
    import ssl
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((vcsim.host, vcsim.port)))
    digest = hashlib.sha256(der).hexdigest().upper()
    thumbprint = ":".join(digest[i:i + 2] for i in range(0, 64, 2))
    assert re.sub(r"<[^>]+>", "", prompt.thumbprint.text()) == thumbprint and prompt.can_trust
    screenshot(prompt, "targets_certificate")
    assert load_settings(settings_file()).vcenter("lab").thumbprint == ""
    assert vcsim.password not in settings_file().read_text()
    with qtbot.waitSignal(page.inventoryLoaded, timeout=60_000):
        prompt.trust_button.click()
    assert load_settings(settings_file()).vcenter("lab").thumbprint == thumbprint
    assert page.model.rowCount() == 4

    _add_gpus(panel.store.settings.vcenter("lab"), panel.store.context())
    with qtbot.waitSignal(page.inventoryLoaded, timeout=60_000):
        page.refresh()
    page.select_vm("DC0_H0_VM1")
    assert page.selected_vm().power_state == "poweredOff" and page.power_button.isEnabled()
    with qtbot.waitSignal(page.inventoryLoaded, timeout=60_000):
        page.power_on_selected()
    assert page.selected_vm().name == "DC0_H0_VM1" and page.selected_vm().power_state == "poweredOn"
    assert not page.power_button.isEnabled()
    page.select_vm("DC0_H0_VM0")
    vm = page.selected_vm()
    assert vm.gpus == ("passthrough NVIDIA A100-PCIE-40GB (0000:3b:00.0)",) and vm.ip == "127.0.0.1"
    screenshot(panel, "targets_inventory")

    # "Use this VM as a target": the dialog comes prefilled; the guest password goes to the keyring.
    page.use_selected()
    dialog = panel.targets.dialog
    assert panel.tabs.currentIndex() == 0 and dialog.vm.text() == "DC0_H0_VM0" and dialog.vcenter.currentText() == "lab"
    dialog.launch.setCurrentIndex(dialog.launch.findData("guest_ops"))
    assert dialog.form.isRowVisible(dialog.guest_user) and not dialog.form.isRowVisible(dialog.user_row)
    dialog.guest_user.setText(vcsim.guest_user)
    dialog.password.setText(vcsim.guest_password)
    dialog.accept()
    target = load_settings(settings_file()).target("DC0_H0_VM0")
    assert isinstance(target, VSphereTarget) and target.launch == "guest_ops" and target.vcenter == "lab"
    qtbot.waitUntil(lambda: memory_keyring.store.get((SERVICE, target.guest_secret_account())) == vcsim.guest_password)
    assert vcsim.guest_password not in settings_file().read_text()
    # The VM answers a connectivity check through Guest Operations (login and the trainer there).
    panel.targets.select("DC0_H0_VM0")
    with qtbot.waitSignal(panel.targets.checkFinished, timeout=120_000) as done:
        panel.targets.run_check()
    checks = {c.name: c for c in done.args[0].checks}
    assert checks["reachable"].status == "ok", done.args[0].summary()


def test_targets_dock_is_in_the_menus(qtbot, window):
    dock = window.docks["targets"]
    assert not dock.isVisible() and dock.widget() is window.targets_panel
    training = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Training")
    problems = window.docks["problems"]
    next(a for a in training.actions() if a.text() == "&Targets…").trigger()
    assert dock.isVisible()
    # It opens as a tab beside Problems (the whole width for its columns and checks), taller than Problems was.
    assert window.tabifiedDockWidgets(problems) == [dock]
    qtbot.waitUntil(lambda: dock.height() >= 300)
    # Closed, it gives the grid back its room: Problems is a few lines again.
    dock.close()
    qtbot.waitUntil(lambda: problems.isVisible() and problems.height() < 200)
    dock.toggleViewAction().trigger()
    assert dock.isVisible()
    view = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    assert dock.toggleViewAction() in view.actions()
    # A target added in the panel appears at once in the Train tab's "Run on:" list.
    window.targets_panel.store.put_target(SshTarget("render-01", "10.0.0.5", "me"))
    box = window.workbench.training.target_box
    # With two targets, "Any free target" too: Start takes the first free one, or queues the run for either.
    assert [box.itemText(i) for i in range(box.count())] == ["This computer", "render-01", "Any free target"]


@pytest.mark.slow
def test_running_remote_job_shows_on_the_runs_tab(qtbot, window, sshd, demo_workspace, tmp_path, reap_trainers):
    from lora_studio.targets_ui.store import app_context

    workspace = copy_workspace(demo_workspace, tmp_path / "ws")
    view = tmp_path / "gpu-view"   # the same files at another path: the target's mount
    view.symlink_to(workspace, target_is_directory=True)
    target = SshTarget("gpu-ssh", sshd.host, sshd.user, port=sshd.port, auth="key", key_file=str(sshd.user_key),
                       python=sys.executable, mappings=(PathMapping(str(workspace), str(view)),))
    window.targets_panel.store.put_target(target)
    assert "gpu-ssh" in [window.workbench.training.target_box.itemText(i)
                         for i in range(window.workbench.training.target_box.count())]
    kind, blob = sshd.host_key_pub.read_text().split()[:2]
    trust_host_key(known_hosts_file(), sshd.host, sshd.port, paramiko.PKey.from_type_string(kind, __import__("base64").b64decode(blob)))
    window.open_workspace(workspace)
    config = write_config(workspace, "remote", "runs/remote", max_train_steps=2000)
    run_dir = workspace / "runs" / "remote"
    ctx = app_context()
    outcome = launch(ctx.settings.target("gpu-ssh"), config, ctx, workspace=workspace)
    assert outcome.started, outcome.report.summary()
    reap_trainers.append(outcome.info.pid)
    try:
        wait_state(run_dir, ("training",), timeout=180, min_step=3)
        window.workbench.show_runs()
        monitor = window.workbench.monitor
        monitor.refresh_runs()
        qtbot.waitUntil(lambda: monitor.run_dir == run_dir, timeout=20_000)
        qtbot.waitUntil(lambda: len(monitor.plot.series.get("remote", [])) >= 3, timeout=60_000)
        row = next(r for r in monitor.model.runs if r.path == run_dir)
        assert row.target == "gpu-ssh" and row.host and row.state == "training"
        qtbot.wait(300)
        screenshot(window, "targets_remote_run")
    finally:
        result = stop(run_dir, ctx, grace_s=60, poll_s=0.3)
        assert result.stopped and not pid_alive(outcome.info.pid)
