"""Snapshots and linked clones through the CLI against the simulator: take, list, revert (which
moves "current"), delete down to none, and a linked clone for an experiment with its own GPU."""

from __future__ import annotations

import json

import pytest
from pyVmomi import vim

from lora_studio.vsphere import NewVm, create_vm, host_gpus, list_snapshots

from .conftest import by_name, one_line_error


@pytest.fixture(scope="module")
def trainer_vm(session, template) -> str:
    """A trainer VM on DC0_C0_H0 with the host's first GPU, powered on."""
    create_vm(session, NewVm(name="lora-snap-01", template=template, host="DC0_C0_H0", gpu="0000:3b:00.0", cpus=4,
                             wait_ip_s=60))
    return "lora-snap-01"


def snapshot_list(cli, vm: str) -> list[dict]:
    result = cli("snapshot", "--vm", vm, "--list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_snapshot_list_revert_and_delete(cli, session, trainer_vm):
    for name in ("before-run-a", "before-run-b"):
        result = cli("snapshot", "--vm", trainer_vm, "--name", name, "--description", f"before training {name}", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["name"] == name
    rows = snapshot_list(cli, trainer_vm)
    assert [(r["name"], r["parent"], r["current"]) for r in rows] == \
        [("before-run-a", "", False), ("before-run-b", "before-run-a", True)]
    assert rows[0]["description"] == "before training before-run-a" and rows[0]["power_state"] == "poweredOn"
    text = cli("snapshot", "--vm", trainer_vm, "--list").stdout
    assert "before-run-b (current)" in text

    # Revert and delete ask first; a script must say --yes.
    assert "--yes" in one_line_error(cli("revert", "--vm", trainer_vm, "--snapshot", "before-run-a"))
    assert "has no snapshot called 'before-run-z'" in one_line_error(
        cli("revert", "--vm", trainer_vm, "--snapshot", "before-run-z", "--yes"))
    result = cli("revert", "--vm", trainer_vm, "--snapshot", "before-run-a", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["current"] is True
    assert [r["name"] for r in snapshot_list(cli, trainer_vm) if r["current"]] == ["before-run-a"]
    assert "already" in one_line_error(cli("snapshot", "--vm", trainer_vm, "--name", "before-run-a"))

    assert cli("snapshot", "--vm", trainer_vm, "--delete", "before-run-b", "--yes").returncode == 0
    assert [r["name"] for r in snapshot_list(cli, trainer_vm)] == ["before-run-a"]
    assert cli("snapshot", "--vm", trainer_vm, "--delete", "before-run-a", "--yes").returncode == 0
    assert snapshot_list(cli, trainer_vm) == []  # the VM has no snapshot property now: still listed fine
    assert cli("snapshot", "--vm", trainer_vm, "--list").stdout.strip() == "no snapshots"


def test_clone_for_an_experiment_is_linked_and_gets_its_own_gpu(cli, session, trainer_vm):
    assert cli("snapshot", "--vm", trainer_vm, "--name", "known-good").returncode == 0
    result = cli("clone", "--vm", trainer_vm, "--snapshot", "known-good", "--name", "lora-exp-lr3e-4", "--json")
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert made["linked_to"] == f"{trainer_vm}@known-good"
    assert (made["host"], made["power_state"], made["cpus"]) == ("DC0_C0_H0", "poweredOff", 4)
    assert made["gpus"] == ["passthrough NVIDIA A100-PCIE-40GB (0000:d8:00.0)"]  # not the VM's own 3b:00.0
    gpus = host_gpus(session, by_name(session, vim.HostSystem, "DC0_C0_H0"))
    assert [g.used_by for g in gpus.passthrough] == [(trainer_vm,), ("lora-exp-lr3e-4",)]
    # No GPU left on the host for a third one.
    line = one_line_error(cli("clone", "--vm", trainer_vm, "--snapshot", "known-good", "--name", "lora-exp-2"))
    assert line.startswith("error: --gpu: host DC0_C0_H0 has no free passthrough GPU"), line
    result = cli("clone", "--vm", trainer_vm, "--snapshot", "known-good", "--name", "lora-exp-2", "--gpu", "none")
    assert result.returncode == 0 and "GPUs: none" in result.stdout, result.stderr
    assert "exists already" in one_line_error(
        cli("clone", "--vm", trainer_vm, "--snapshot", "known-good", "--name", "lora-exp-2"))
    assert [r.name for r in list_snapshots(session, by_name(session, vim.VirtualMachine, trainer_vm))] == ["known-good"]
