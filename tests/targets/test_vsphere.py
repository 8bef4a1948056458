"""vSphere targets against govmomi's vCenter simulator over TLS: certificate pinning, inventory
with GPUs, power-on, and a training launched, watched and stopped through Guest Operations."""

from __future__ import annotations

import hashlib
import ssl
import sys

import pytest
from pyVmomi import vim

from lora_studio.targets import (CertificateChanged, ConnectionFailed, PathMapping, TargetContext, TargetSettings,
                                 UntrustedCertificate, VCenter, VSphereTarget, inventory, is_running, launch,
                                 list_runs, pin_vcenter, power_on, preflight, save_settings, stop, vcenter_certificate)
from lora_studio.targets.api import connect, open_shell
from lora_studio.targets.credentials import store_password

from .helpers import copy_workspace, wait_for, wait_state, write_config
from .test_ssh import pinned_context

VM = "DC0_H0_VM0"


def server_thumbprint(vcsim) -> str:
    pem = ssl.get_server_certificate((vcsim.host, vcsim.port))
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2))


@pytest.fixture
def vc_ctx(vcsim, tmp_path):
    """Settings with the simulator's vCenter pinned, its passwords in the (test) keyring."""
    vcenter = VCenter("lab", vcsim.host, vcsim.user, vcsim.port, thumbprint=server_thumbprint(vcsim))
    store_password(vcenter.secret_account(), vcsim.password)
    return TargetContext(TargetSettings(vcenters=[vcenter]), tmp_path / "app" / "known_hosts")


def test_untrusted_certificate_is_shown_then_pinned_and_a_changed_one_refused(vcsim, tmp_path):
    vcenter = VCenter("lab", vcsim.host, vcsim.user, vcsim.port)
    store_password(vcenter.secret_account(), vcsim.password)
    settings = TargetSettings(vcenters=[vcenter])
    ctx = TargetContext(settings, tmp_path / "known_hosts")
    with pytest.raises(UntrustedCertificate) as caught:
        inventory(vcenter, ctx)
    assert caught.value.thumbprint == server_thumbprint(vcsim)
    assert "self-signed" in caught.value.reason
    assert vcenter_certificate(vcenter).thumbprint == caught.value.thumbprint
    # The user compares the thumbprint and trusts it: the pin is saved with the vCenter.
    settings = pin_vcenter(settings, "lab", caught.value.thumbprint.replace(":", "").lower())
    pinned = settings.vcenter("lab")
    assert pinned.thumbprint == caught.value.thumbprint
    save_settings(tmp_path / "targets.json", settings)
    assert vcsim.password not in (tmp_path / "targets.json").read_text()
    assert len(inventory(pinned, ctx)) == 4
    other = VCenter("lab", vcsim.host, vcsim.user, vcsim.port, thumbprint="AB" * 32)
    with pytest.raises(CertificateChanged, match="has CHANGED"):
        inventory(other, ctx)
    store_password(vcenter.secret_account(), "wrong")
    with pytest.raises(ConnectionFailed, match="refused the login"):
        inventory(pinned, ctx)


def test_inventory_shows_gpus_and_a_vm_can_be_powered_on(vc_ctx):
    vcenter = vc_ctx.settings.vcenter("lab")
    with connect(vcenter, vc_ctx) as session:
        vm = session.find_vm(VM)
        gpu = vim.vm.device.VirtualPCIPassthrough(key=-100, backing=vim.vm.device.VirtualPCIPassthrough.DeviceBackingInfo(
            id="0000:3b:00.0", deviceId="20b0", systemId="sys", vendorId=0x10DE, deviceName="NVIDIA A100-PCIE-40GB"))
        vgpu = vim.vm.device.VirtualPCIPassthrough(
            key=-101, backing=vim.vm.device.VirtualPCIPassthrough.VmiopBackingInfo(vgpu="grid_a100-8c"))
        spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=d) for d in (gpu, vgpu)])
        session.wait(vm.ReconfigVM_Task(spec), 30, "adding GPUs")
        session.wait(session.find_vm("DC0_H0_VM1").PowerOffVM_Task(), 30, "powering off")
    rows = {row.name: row for row in inventory(vcenter, vc_ctx)}
    row = rows[VM]
    assert row.gpus == ("passthrough NVIDIA A100-PCIE-40GB (0000:3b:00.0)", "vGPU grid_a100-8c")
    assert (row.power_state, row.host, row.tools, row.ip) == ("poweredOn", "DC0_H0", "guestToolsRunning", "127.0.0.1")
    assert row.cpus >= 1 and row.memory_mb >= 32 and row.guest_os
    assert rows["DC0_H0_VM1"].power_state == "poweredOff"
    assert power_on(vcenter, "DC0_H0_VM1", vc_ctx) == "poweredOn"
    assert {r.name: r for r in inventory(vcenter, vc_ctx)}["DC0_H0_VM1"].power_state == "poweredOn"


def test_vm_over_ssh_reaches_the_guest_ip(vc_ctx, sshd, tmp_path):
    target = VSphereTarget("vm-ssh", "lab", VM, launch="ssh", ssh_user=sshd.user, ssh_port=sshd.port, ssh_auth="key",
                           ssh_key_file=str(sshd.user_key), python=sys.executable)
    known = pinned_context(sshd, tmp_path).known_hosts
    ctx = TargetContext(TargetSettings(vcenters=vc_ctx.settings.vcenters, targets=[target]), known, vc_ctx.password)
    with open_shell(target, ctx) as shell:
        assert shell.host == "127.0.0.1"  # the guest IP the inventory reports
        assert shell.run(["echo", "in the guest"]).stdout == "in the guest\n"


def test_wrong_guest_password_is_a_clear_preflight_error(vc_ctx, vcsim, tmp_path):
    target = VSphereTarget("vm-guest", "lab", VM, launch="guest_ops", guest_user=vcsim.guest_user, python=sys.executable)
    store_password(target.guest_secret_account(), "not the password")
    config = tmp_path / "ws" / "configs" / "c.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("train_data_dir: ../d\nbase_model: ../m.safetensors\noutput_dir: ../runs/r\n")
    ctx = TargetContext(TargetSettings(vcenters=vc_ctx.settings.vcenters, targets=[target]), vc_ctx.known_hosts)
    _, report = preflight(target, config, ctx)
    [check] = [c for c in report.checks if c.name == "reachable"]
    assert check.status == "error" and "refused the login" in check.message and "password" in check.hint


@pytest.mark.slow
def test_guest_operations_launch_liveness_and_terminate(vc_ctx, vcsim, demo_workspace, tmp_path, reap_trainers):
    workspace = copy_workspace(demo_workspace, tmp_path / "ws")
    view = tmp_path / "guest-view"
    view.symlink_to(workspace, target_is_directory=True)
    target = VSphereTarget("vm-guest", "lab", VM, launch="guest_ops", guest_user=vcsim.guest_user,
                           python=sys.executable, mappings=(PathMapping(str(workspace), str(view)),))
    store_password(target.guest_secret_account(), vcsim.guest_password)
    ctx = TargetContext(TargetSettings(vcenters=vc_ctx.settings.vcenters, targets=[target]), vc_ctx.known_hosts)
    save_settings(tmp_path / "app" / "targets.json", ctx.settings)
    config = write_config(workspace, "guest", "runs/guest", max_train_steps=2000)
    run_dir = workspace / "runs" / "guest"

    # The preflight ran doctor and validate through StartProgramInGuest, reading their output from files.
    outcome = launch(target, config, ctx, workspace=workspace)
    assert outcome.started, outcome.report.summary()
    assert {c.name for c in outcome.report.checks if c.status == "ok"} >= {"shared_files", "trainer", "config"}
    info = outcome.info
    reap_trainers.append(info.pid)
    assert (info.launch, info.vm, info.vcenter) == ("guest_ops", VM, "lab")
    status = wait_state(run_dir, ("training",), timeout=120, min_step=2)
    assert status["pid"] == info.pid  # the pid VMware Tools reported is the trainer's (exec)
    assert is_running(run_dir, ctx)  # ListProcessesInGuest
    assert "loaded" in (run_dir / "train.log").read_text()  # output went to the run folder
    stages: list[str] = []
    result = stop(run_dir, ctx, use_stop_file=False, kill_after_s=60, poll_s=0.3, on_stage=stages.append)
    assert (result.stage, result.stopped, result.state) == ("terminate", True, "stopped"), result
    assert stages == ["terminate"]
    wait_for(lambda: not is_running(run_dir, ctx), 10, "the guest process to be listed as ended")
    assert [r.state for r in list_runs(workspace)] == ["stopped"]
    assert not list(run_dir.glob(".lora-studio-guest/*"))  # the preflight's output files were cleaned up
    for secret in (vcsim.password, vcsim.guest_password):
        for folder in (workspace, tmp_path / "app"):
            for path in folder.rglob("*"):
                if path.is_file():
                    assert secret.encode() not in path.read_bytes(), f"a password leaked into {path}"
