"""The CLI's connection handling (certificate pinning as the app does it, passwords) and its
plain-text / JSON output of the inventory; the cloud-init builder's output."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from lora_studio.vsphere import BadInput, GuestSetup
from lora_studio.vsphere.cloudinit import guestinfo, userdata

from .conftest import one_line_error


def connection(vcsim, *extra: str) -> list[str]:
    return ["--vcenter", f"{vcsim.host}:{vcsim.port}", "--user", vcsim.user, *extra]


def test_list_as_text_and_json(cli):
    result = cli("list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["DC0_H0_VM0"]["power_state"] == "poweredOn" and rows["DC0_H0_VM0"]["host"] == "DC0_H0"
    text = cli("list").stdout.splitlines()
    assert text[0].split() == ["VM", "POWER", "HOST", "CPUS", "MEMORY_GB", "GPUS", "IP"]
    assert any(line.startswith("DC0_H0_VM0 ") for line in text)


def test_an_untrusted_certificate_is_refused_with_its_thumbprint(cli, vcsim, pinned):
    line = one_line_error(cli("list", *connection(vcsim), connect=False))
    assert line.startswith("error: --thumbprint: the TLS certificate of") and f"--thumbprint {pinned.thumbprint}" in line
    wrong = "AB" * 32
    assert "has CHANGED" in one_line_error(cli("list", *connection(vcsim, "--thumbprint", wrong), connect=False), 1)
    line = one_line_error(cli("list", *connection(vcsim, "--thumbprint", "abc"), connect=False))
    assert line.startswith("error: --thumbprint: 'abc' is not a SHA-256 thumbprint")
    # --insecure trusts the certificate of this one call, and says which one to pin.
    result = cli("list", *connection(vcsim, "--insecure"), connect=False)
    assert result.returncode == 0, result.stderr
    assert f"--thumbprint {pinned.thumbprint}" in result.stderr


def test_passwords_come_from_stdin_the_environment_or_the_keyring(cli, vcsim):
    assert "refused the login" in one_line_error(cli("list", password="wrong"), 1)
    result = cli("list", "--password-stdin", password="wrong", stdin=vcsim.password + "\n")
    assert result.returncode == 0, result.stderr  # stdin wins over the environment
    line = one_line_error(cli("list", password="", env={"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}))
    assert line.startswith("error: --user: no password") and "LORA_STUDIO_VCENTER_PASSWORD" in line


@pytest.mark.parametrize("address, shows", [("vc.lab:99999", "port '99999'"), (":443", "names no host")])
def test_a_bad_vcenter_address_is_bad_input(cli, vcsim, address, shows):
    line = one_line_error(cli("list", "--vcenter", address, "--user", "u", connect=False))
    assert line.startswith("error: --vcenter:") and shows in line


def test_usage_errors_are_one_line(cli):
    assert "--vm" in one_line_error(cli("snapshot", "--list"))
    assert "invalid choice" in one_line_error(cli("reboot", connect=False))


def test_cloud_init_mounts_the_share_and_installs_the_trainer():
    setup = GuestSetup(share="//nas/lora", share_kind="smb", mount_point="/mnt/lora", wheel="/mnt/lora/lora_studio-1.0-py3-none-any.whl")
    config = yaml.safe_load(userdata(setup))
    assert config["packages"] == ["cifs-utils", "python3-venv"]
    source, point, kind, options = config["mounts"][0][:4]
    assert (source, point, kind) == ("//nas/lora", "/mnt/lora", "cifs")
    assert "credentials=/etc/lora-studio/smb-credentials" in options and "password" not in options
    assert config["runcmd"][:2] == [["mkdir", "-p", "/mnt/lora"], ["mount", "/mnt/lora"]]
    assert "/opt/lora-studio/venv" in config["runcmd"][2][2]
    data = guestinfo(setup, "lora-trainer-02")
    assert data["guestinfo.userdata.encoding"] == "base64"
    assert base64.b64decode(data["guestinfo.userdata"]).decode() == userdata(setup)
    assert guestinfo(GuestSetup(), "x") == {}  # a template that is a trainer already gets no cloud-init data
    with pytest.raises(BadInput, match="--share"):
        GuestSetup(share="nas/lora", share_kind="smb")
