"""New trainer VMs against the simulator: the CLI's PowerCLI-style new-vm read back through
pyvmomi, the library call with a vGPU and progress, cancel, and every kind of bad input."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from pyVmomi import vim

from lora_studio.vsphere import BadInput, Cancelled, NewVm, create_vm, host_gpus
from lora_studio.vsphere.hardware import GB, disks, nics
from lora_studio.vsphere.tasks import properties

from .conftest import by_name, one_line_error

WHEEL = "/data/lora/wheels/lora_studio-0.1.0-py3-none-any.whl"


def read_back(session, name: str) -> dict:
    vm = by_name(session, vim.VirtualMachine, name)
    return properties(session, vm, ["config.hardware.numCPU", "config.hardware.memoryMB", "config.hardware.device",
                                    "config.memoryReservationLockedToMax", "config.extraConfig", "datastore",
                                    "runtime.host", "runtime.powerState", "guest.ipAddress"])


def names(session, refs) -> list[str]:
    return [properties(session, ref, ["name"])["name"] for ref in refs]


def test_cli_new_vm_makes_the_vm_the_powercli_flags_ask_for(cli, session, template, tmp_path):
    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample trainer@studio\n")
    result = cli("new-vm", "--name", "lora-trainer-01", "--host", "DC0_C0_H1", "--datastore", "LocalDS_0",
                 "--disk-gb", "200", "--memory-gb", "64", "--cpus", "16", "--network", "VM Network",
                 "--template", template, "--gpu", "any", "--share", "nas:/export/lora", "--wheel", WHEEL,
                 "--ssh-user", "trainer", "--ssh-key-file", str(key), "--wait-ip", "60", "--json")
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert (made["name"], made["host"], made["cpus"], made["memory_mb"], made["disk_gb"]) == \
        ("lora-trainer-01", "DC0_C0_H1", 16, 65536, 200)
    assert (made["network"], made["power_state"], made["ip"]) == ("VM Network", "poweredOn", "127.0.0.1")
    assert "cloning" in result.stderr and "waiting for VMware Tools" in result.stderr  # progress on stderr

    p = read_back(session, "lora-trainer-01")  # what vCenter has, not what the CLI says
    assert (p["config.hardware.numCPU"], p["config.hardware.memoryMB"]) == (16, 64 * 1024)
    [disk] = disks(p["config.hardware.device"])
    assert disk.capacityInKB * 1024 == 200 * GB
    assert nics(p["config.hardware.device"])[0].backing.deviceName == "VM Network"
    assert names(session, p["datastore"]) == ["LocalDS_0"]
    assert names(session, [p["runtime.host"]]) == ["DC0_C0_H1"]
    [gpu] = [d for d in p["config.hardware.device"] if isinstance(d, vim.vm.device.VirtualPCIPassthrough)]
    assert (gpu.backing.id, gpu.backing.deviceName) == ("0000:3b:00.0", "NVIDIA A100-PCIE-40GB")
    assert p["config.memoryReservationLockedToMax"] is True  # passthrough needs the full reservation
    extra = {o.key: o.value for o in p["config.extraConfig"]}
    assert extra["pciPassthru.use64bitMMIO"] == "TRUE"
    cloud = base64.b64decode(extra["guestinfo.userdata"]).decode()
    assert cloud.startswith("#cloud-config\n")
    config = yaml.safe_load(cloud)
    assert config["mounts"][0][:3] == ["nas:/export/lora", "/data/lora", "nfs"]
    assert any(WHEEL + "[trainer]" in " ".join(cmd) for cmd in config["runcmd"])
    assert config["users"][1]["ssh_authorized_keys"] == [key.read_text().strip()]
    assert json.loads(base64.b64decode(extra["guestinfo.metadata"]))["instance-id"] == "lora-trainer-01"
    # The host's GPU list now shows the device as this VM's.
    gpus = host_gpus(session, by_name(session, vim.HostSystem, "DC0_C0_H1"))
    assert {g.id: g.used_by for g in gpus.passthrough}["0000:3b:00.0"] == ("lora-trainer-01",)


def test_create_vm_with_a_vgpu_on_a_distributed_port_group_reports_each_step(session, template):
    steps: list[str] = []
    made = create_vm(session, NewVm(name="lora-vgpu-01", template=template, host="DC0_C0_H2", cpus=8, memory_gb=32,
                                    network="DC0_DVPG0", gpu="vgpu:grid_a100-8c", wait_ip_s=60),
                     progress=lambda step, percent: steps.append(step))
    assert made.gpus == ("vGPU grid_a100-8c",) and made.memory_reserved
    assert (made.host, made.network, made.cpus, made.memory_mb) == ("DC0_C0_H2", "DC0_DVPG0", 8, 32768)
    ordered = [s for s in dict.fromkeys(s.split(" ")[0] for s in steps) if s != "moving"]  # moving: the simulator's
    assert ordered == ["cloning", "configuring", "powering", "waiting"]
    nic = nics(read_back(session, "lora-vgpu-01")["config.hardware.device"])[0]
    pg = by_name(session, vim.dvs.DistributedVirtualPortgroup, "DC0_DVPG0")
    assert nic.backing.port.portgroupKey == properties(session, pg, ["key"])["key"]


def test_cancel_after_the_clone_removes_the_half_made_vm(session, template):
    seen: list[str] = []
    with pytest.raises(Cancelled, match="cancelled"):
        create_vm(session, NewVm(name="lora-cancelled", template=template, cpus=4),
                  progress=lambda step, percent: seen.append(step), cancelled=lambda: bool(seen))
    assert "lora-cancelled" not in [p.get("name") for _, p in session.collect(vim.VirtualMachine, ["name"])]
    # The name is free again: the same request, not cancelled, goes through.
    assert create_vm(session, NewVm(name="lora-cancelled", template=template, power_on=False)).power_state == "poweredOff"


@pytest.fixture(scope="module")
def gpu_taken(session, template) -> str:
    """A VM on DC0_C0_H2 holding its GPU 0000:3b:00.0."""
    create_vm(session, NewVm(name="lora-holds-gpu", template=template, host="DC0_C0_H2", gpu="0000:3b:00.0",
                             power_on=False))
    return "0000:3b:00.0"


@pytest.mark.parametrize("flags, option, shows", [
    (["--host", "esxi-09"], "--host", "DC0_C0_H1"),
    (["--datastore", "vsanDatastore"], "--datastore", "LocalDS_0"),
    (["--network", "Management"], "--network", "VM Network"),
    (["--policy", "No Such Policy"], "--policy", "vSAN Default Storage Policy"),
    (["--cluster", "DC0_C9"], "--cluster", "DC0_C0"),
    (["--host", "DC0_H0", "--cluster", "DC0_C0"], "--host", "DC0_C0_H0"),
    (["--host", "DC0_C0_H2", "--gpu", "0000:3b:00.0"], "--gpu", "0000:d8:00.0"),
    (["--host", "DC0_C0_H2", "--gpu", "0000:99:00.0"], "--gpu", "0000:d8:00.0"),
    (["--host", "DC0_C0_H2", "--gpu", "vgpu:grid_v100-8q"], "--gpu", "grid_a100-8c"),
    (["--cluster", "DC0_C0", "--gpu", "any"], "--gpu", "--host"),
    (["--disk-gb", "0.0001"], "--disk-gb", "can only grow"),
    (["--snapshot", "never-taken"], "--snapshot", "no snapshots"),
])
def test_new_vm_bad_input_is_one_line_naming_the_option_and_what_exists(cli, template, gpu_taken, flags, option, shows):
    line = one_line_error(cli("new-vm", "--name", "lora-bad", "--template", template, *flags))
    assert line.startswith(f"error: {option}:"), line
    assert shows in line, line


@pytest.mark.parametrize("flags, shows", [
    (["--template", "ubuntu-cuda"], "templates: trainer-template"),
    (["--template", "trainer-template", "--name", "DC0_H0_VM0"], "exists already"),
    (["--template", "trainer-template", "--cpus", "0"], "argument --cpus: 0 is not 1 or more"),
    (["--template", "trainer-template", "--cpus", "sixteen"], "argument --cpus: 'sixteen' is not a whole number"),
    (["--template", "trainer-template", "--memory-gb", "-64"], "argument --memory-gb"),
    (["--template", "trainer-template", "--cpus", "1000"], "--cpus: 1000 is out of range"),
    (["--template", "trainer-template", "--extra-config", "novalue"], "is not KEY=VALUE"),
    (["--template", "trainer-template", "--share", "nas-without-export"], "--share"),
])
def test_new_vm_refuses_bad_names_and_numbers(cli, template, flags, shows):
    args = ["new-vm", *flags] if "--name" in flags else ["new-vm", "--name", "lora-bad", *flags]
    assert shows in one_line_error(cli(*args))


def test_library_refusals_are_bad_input_with_the_option(session, template):
    with pytest.raises(BadInput) as caught:
        create_vm(session, NewVm(name="x", template=template, memory_gb=1.001))
    assert caught.value.option == "--memory-gb"
