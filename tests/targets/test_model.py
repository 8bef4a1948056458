"""Target settings: JSON round trip without secrets, clear messages for bad entries."""

from __future__ import annotations

import json

import pytest

from lora_studio.targets import (LocalTarget, PathMapping, SshTarget, TargetConfigError, TargetSettings, VCenter,
                                 VSphereTarget, load_settings, save_settings)
from lora_studio.targets.credentials import load_password, store_password


def test_settings_round_trip_and_hold_no_password(tmp_path):
    settings = TargetSettings(
        vcenters=[VCenter("lab", "vc.example", "admin@vsphere.local", thumbprint="AB:" * 31 + "CD")],
        targets=[LocalTarget(),
                 SshTarget("gpu1", "10.0.0.5", "ai", auth="password", mappings=(PathMapping(r"Z:\lora", "/data/lora"),)),
                 VSphereTarget("vm-a100", "lab", "gpu-vm-01", launch="guest_ops", guest_user="trainer",
                               mappings=(PathMapping("/mnt/vsan/lora", "/data/lora"),))])
    store_password(settings.targets[1].secret_account(), "s3cret-ssh")
    store_password(settings.vcenters[0].secret_account(), "s3cret-vc")
    path = tmp_path / "targets.json"
    save_settings(path, settings)
    text = path.read_text()
    assert "s3cret" not in text
    assert load_settings(path) == settings
    assert load_password("ssh:ai@10.0.0.5:22") == "s3cret-ssh"
    assert json.loads(text)["targets"][1]["mappings"] == [{"local": r"Z:\lora", "target": "/data/lora"}]


def test_missing_file_gives_this_computer(tmp_path):
    assert load_settings(tmp_path / "none.json").targets == [LocalTarget()]


@pytest.mark.parametrize("entry, message", [
    ({"kind": "ssh", "name": "x", "host": "", "user": "u"}, "has no host"),
    ({"kind": "ssh", "name": "x", "host": "h", "user": "u", "auth": "rsa"}, "auth 'rsa' is not one of"),
    ({"kind": "ssh", "name": "x", "host": "h", "user": "u", "auth": "key"}, "names no key file"),
    ({"kind": "ssh", "name": "x", "host": "h", "user": "u", "port": 0}, "is not a TCP port"),
    ({"kind": "vsphere", "name": "x", "vcenter": "v", "vm": "m", "launch": "guest_ops"}, "no guest user"),
    ({"kind": "cloud", "name": "x"}, "unknown target kind"),
    ({"kind": "local", "name": "x", "colour": "red"}, "unknown fields colour"),
])
def test_bad_entries_are_named(tmp_path, entry, message):
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"version": 1, "targets": [entry]}))
    with pytest.raises(TargetConfigError, match=message):
        load_settings(path)


def test_broken_json_says_what_to_do(tmp_path):
    path = tmp_path / "targets.json"
    path.write_text("{oops")
    with pytest.raises(TargetConfigError, match="not valid JSON.*fix or delete"):
        load_settings(path)
