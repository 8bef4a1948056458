"""Storage policies through the simulator's SPBM service: list, create the seed's vSAN policy,
apply one to a VM, and the protection preflight (HA off, no failure tolerated)."""

from __future__ import annotations

import json

import pytest
from pyVmomi import vim
from lora_studio.vsphere import NewVm, connect_spbm, create_vm, create_vsan_policy, list_policies
from lora_studio.vsphere.policies import Policy, protection_checks
from lora_studio.vsphere.vms import describe

from .conftest import by_name, one_line_error


def policies_of(cli) -> dict[str, dict]:
    result = cli("policies", "--json")
    assert result.returncode == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)}


def test_list_and_create_the_seed_policy(cli):
    default = policies_of(cli)["vSAN Default Storage Policy"]
    assert (default["failures_to_tolerate"], default["thin"]) == (1, True)
    result = cli("policies", "--create", "LoRA vSAN FTT1", "--iops-limit", "2000", "--json")
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert (made["name"], made["failures_to_tolerate"], made["iops_limit"], made["thin"]) == ("LoRA vSAN FTT1", 1, 2000, True)
    assert made["rules"]["VSAN.replicaPreference"] == "RAID-1 (Mirroring) - Performance"  # two replicas
    assert policies_of(cli)["LoRA vSAN FTT1"]["id"] == made["id"]
    assert "exists already" in one_line_error(cli("policies", "--create", "LoRA vSAN FTT1"))
    assert "argument --iops-limit" in one_line_error(cli("policies", "--create", "x", "--iops-limit", "-5"))
    text = cli("policies").stdout
    assert "LoRA vSAN FTT1" in text and "2000" in text and "thin" in text


def test_new_vm_with_a_policy_apply_and_preflight(cli, session, template):
    spbm = connect_spbm(session)
    create_vsan_policy(spbm, "LoRA thick FTT1", thin=False)
    result = cli("new-vm", "--name", "lora-policy-01", "--template", template, "--policy", "LoRA thick FTT1",
                 "--no-power-on", "--json")
    assert result.returncode == 0, result.stderr
    assert cli("policies", "--apply", "vSAN Default Storage Policy", "--vm", "lora-policy-01").returncode == 0
    assert "--apply" in one_line_error(cli("policies", "--apply", "Gold", "--vm", "lora-policy-01"))
    assert "--vm" in one_line_error(cli("policies", "--check"))

    # Applying a policy changes storage only: a VM's passthrough GPU stays.
    gpu_vm = create_vm(session, NewVm(name="lora-policy-gpu", template=template, host="DC0_C0_H1", gpu="0000:d8:00.0",
                                      power_on=False))
    assert cli("policies", "--apply", "LoRA thick FTT1", "--vm", gpu_vm.name).returncode == 0
    assert cli("list", "--json").stdout.count("passthrough NVIDIA A100-PCIE-40GB (0000:d8:00.0)") >= 1
    assert describe(session, by_name(session, vim.VirtualMachine, gpu_vm.name)).gpus == gpu_vm.gpus

    result = cli("policies", "--check", "--vm", "lora-policy-01", "--json")
    assert result.returncode == 0, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["ha"]["status"] == "warning" and "DC0_C0 has vSphere HA off" in checks["ha"]["message"]
    # The simulator associates no policy with any disk (PbmQueryAssociatedProfile is empty): warned as such.
    assert checks["storage_policy"]["status"] == "warning" and "no storage policy" in checks["storage_policy"]["message"]

    standalone = create_vm(session, NewVm(name="lora-standalone", template=template, host="DC0_H0", power_on=False))
    result = cli("policies", "--check", "--vm", standalone.name, "--json")
    assert "in no cluster" in {c["name"]: c for c in json.loads(result.stdout)}["ha"]["message"]


@pytest.fixture(scope="module")
def served(session) -> dict[str, Policy]:
    """Policies as the SPBM service returns them, with one that keeps a single copy."""
    spbm = connect_spbm(session)
    create_vsan_policy(spbm, "LoRA scratch FTT0", failures_to_tolerate=0)
    return {p.name: p for p in list_policies(spbm)}


def test_preflight_warns_for_disks_that_tolerate_no_failure(served):
    scratch, safe = served["LoRA scratch FTT0"], served["vSAN Default Storage Policy"]
    assert scratch.failures_to_tolerate == 0
    checks = protection_checks({"VM home": safe, "Hard disk 1": scratch, "Hard disk 2": safe}, "gpu-cluster", True)
    assert [(c.name, c.status) for c in checks] == [("storage_policy", "warning"), ("storage_policy", "ok"), ("ha", "ok")]
    assert "Hard disk 1 tolerates no failure (policy LoRA scratch FTT0)" == checks[0].message
    assert all(c.status == "ok" for c in protection_checks({"Hard disk 1": safe}, "gpu-cluster", True))


def test_policies_need_a_vm_that_exists(cli):
    line = one_line_error(cli("policies", "--check", "--vm", "ghost"))
    assert "there is no VM called 'ghost'" in line and "DC0_H0_VM0" in line  # what exists, in the hint
