"""The cluster view (HA, DRS, GPUs free/used, VMs per host) and browsing a datastore through
vCenter, against the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyVmomi import vim

from lora_studio.vsphere import NewVm, create_vm
from lora_studio.vsphere.tasks import properties

from .conftest import by_name, one_line_error


def test_hosts_view_shows_ha_drs_gpus_and_vms(cli, session, template):
    create_vm(session, NewVm(name="lora-hosts-01", template=template, host="DC0_H0", gpu="any", power_on=False))
    result = cli("hosts", "--json")
    assert result.returncode == 0, result.stderr
    view = {c["name"]: c for c in json.loads(result.stdout)}
    cluster, standalone = view["DC0_C0"], view["DC0_H0"]
    assert (cluster["standalone"], cluster["ha"], cluster["drs"]) == (False, False, True)
    assert [h["name"] for h in cluster["hosts"]] == ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]
    assert standalone["standalone"] is True
    [host] = standalone["hosts"]
    assert [(g["id"], g["used_by"]) for g in host["gpus"]["passthrough"]] == \
        [("0000:3b:00.0", ["lora-hosts-01"]), ("0000:d8:00.0", [])]
    assert "grid_a100-8c" in host["gpus"]["vgpu_profiles"]
    vms = {v["name"]: v for v in host["vms"]}
    assert vms["lora-hosts-01"]["gpus"] == ["passthrough NVIDIA A100-PCIE-40GB (0000:3b:00.0)"]
    assert vms["DC0_H0_VM0"]["power_state"] == "poweredOn"
    assert any(v["template"] for h in cluster["hosts"] for v in h["vms"])  # the template is listed as one
    text = cli("hosts").stdout
    assert "cluster DC0_C0: HA off, DRS on" in text and "GPU 0000:3b:00.0 NVIDIA A100-PCIE-40GB: used by lora-hosts-01" in text


@pytest.fixture(scope="module")
def datastore_folder(session) -> Path:
    """The simulator's datastore LocalDS_0 is a folder on this machine: models and datasets put there."""
    ds = by_name(session, vim.Datastore, "LocalDS_0")
    root = Path(properties(session, ds, ["info.url"])["info.url"])
    (root / "lora" / "models").mkdir(parents=True)
    (root / "lora" / "models" / "sd15-base.safetensors").write_bytes(b"\0" * 4096)
    (root / "lora" / "models" / "notes.txt").write_text("base models")
    (root / "lora" / "datasets" / "cats").mkdir(parents=True)
    return root


def test_browse_lists_folders_then_files_with_sizes(cli, datastore_folder):
    result = cli("browse", "--datastore", "LocalDS_0", "--folder", "lora", "--json")
    assert result.returncode == 0, result.stderr
    assert [(e["name"], e["is_folder"]) for e in json.loads(result.stdout)] == [("datasets", True), ("models", True)]
    result = cli("browse", "--datastore", "LocalDS_0", "--folder", "/lora/models/", "--json")
    entries = json.loads(result.stdout)
    assert [(e["name"], e["size"], e["path"]) for e in entries] == [
        ("notes.txt", 11, "[LocalDS_0] lora/models/notes.txt"),
        ("sd15-base.safetensors", 4096, "[LocalDS_0] lora/models/sd15-base.safetensors")]
    result = cli("browse", "--datastore", "LocalDS_0", "--folder", "lora/models", "--pattern", "*.safetensors", "--json")
    assert [e["name"] for e in json.loads(result.stdout)] == ["sd15-base.safetensors"]
    assert "sd15-base.safetensors" in cli("browse", "--datastore", "LocalDS_0", "--folder", "lora/models").stdout
    assert "is empty" in cli("browse", "--datastore", "LocalDS_0", "--folder", "lora/datasets/cats").stdout


def test_browse_refuses_unknown_places(cli, datastore_folder):
    line = one_line_error(cli("browse", "--datastore", "LocalDS_0", "--folder", "lora/loras"))
    assert line.startswith("error: --folder: there is no folder 'lora/loras' on LocalDS_0") and "[LocalDS_0] lora" in line
    assert "climbs out" in one_line_error(cli("browse", "--datastore", "LocalDS_0", "--folder", "../etc"))
    assert "LocalDS_0" in one_line_error(cli("browse", "--datastore", "vsanDatastore"))
