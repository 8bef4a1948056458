"""cloud-init data for a new trainer VM: mount the shared storage, install the trainer.

VMware's cloud-init datasource (and ``cloud-init`` 21.3+ on Ubuntu/RHEL templates) reads
``guestinfo.userdata`` and ``guestinfo.metadata`` from the VM's advanced settings. Anyone
who can read the VM's configuration in vCenter can read those, so no password goes in: an
SMB share is mounted with a credentials file the template already holds.

Everything here is pure: text in, text out.
"""

from __future__ import annotations

import base64
import json
import posixpath
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..targets.install import install_script
from .errors import BadInput

SHARE_KINDS = ("nfs", "smb")
DEFAULT_VENV = "/opt/lora-studio/venv"


@dataclass(frozen=True)
class GuestSetup:
    """What the guest needs to become a trainer.

    ``share`` is ``server:/export`` for NFS or ``//server/share`` for SMB; it is mounted at
    ``mount_point`` (the folder the target's path mapping points to). ``wheel`` is the
    ``lora_studio-*.whl`` as the guest sees it (usually on the share).
    """

    share: str = ""
    share_kind: str = "nfs"
    mount_point: str = "/data/lora"
    smb_credentials: str = "/etc/lora-studio/smb-credentials"   # on the template, root-only
    wheel: str = ""
    venv: str = DEFAULT_VENV
    ssh_user: str = ""
    ssh_key: str = ""            # an authorized public key for ssh_user
    hostname: str = ""

    def __post_init__(self) -> None:
        if self.share_kind not in SHARE_KINDS:
            raise BadInput("--share-kind", f"{self.share_kind!r} is not a share kind", "use nfs or smb")
        if self.share and not posixpath.isabs(self.mount_point):
            raise BadInput("--mount-point", f"{self.mount_point!r} is not an absolute path", "use a folder like /data/lora")
        if self.share_kind == "nfs" and self.share and ":" not in self.share:
            raise BadInput("--share", f"{self.share!r} is not an NFS export", "write it as server:/export/path")
        if self.share_kind == "smb" and self.share and not self.share.startswith("//"):
            raise BadInput("--share", f"{self.share!r} is not an SMB share", "write it as //server/share")
        if self.wheel and not self.wheel.endswith(".whl"):
            raise BadInput("--wheel", f"{self.wheel!r} is not a wheel file", "give the lora_studio-*.whl as the VM sees it")
        if self.ssh_key and not self.ssh_user:
            raise BadInput("--ssh-key", "an SSH key needs a user", "add --ssh-user")

    @property
    def empty(self) -> bool:
        """Nothing to set up: the template is a trainer already."""
        return not (self.share or self.wheel or self.ssh_key)


def _mount_entry(setup: GuestSetup) -> list[str]:
    """The /etc/fstab fields cloud-init's ``mounts`` module writes (``nofail``: boot even when the NAS is down)."""
    if setup.share_kind == "nfs":
        return [setup.share, setup.mount_point, "nfs", "defaults,_netdev,nofail", "0", "0"]
    return [setup.share, setup.mount_point, "cifs",
            f"credentials={setup.smb_credentials},uid=0,gid=0,file_mode=0664,dir_mode=0775,_netdev,nofail", "0", "0"]


def userdata(setup: GuestSetup) -> str:
    """The ``#cloud-config`` document: packages, the share's mount, the trainer's venv."""
    config: dict = {}
    if setup.hostname:
        config["hostname"] = setup.hostname
    if setup.share:
        config["packages"] = ["nfs-common" if setup.share_kind == "nfs" else "cifs-utils", "python3-venv"]
        config["mounts"] = [_mount_entry(setup)]
    elif setup.wheel:
        config["packages"] = ["python3-venv"]
    if setup.ssh_key:
        config["users"] = ["default", {"name": setup.ssh_user, "shell": "/bin/bash", "sudo": "ALL=(ALL) NOPASSWD:ALL",
                                       "ssh_authorized_keys": [setup.ssh_key]}]
    commands: list = []
    if setup.share:
        # cloud-init's mounts module runs before packages are installed, so the first mount
        # (nofail) fails for want of nfs-common/cifs-utils; runcmd runs after them and mounts.
        commands += [["mkdir", "-p", setup.mount_point], ["mount", setup.mount_point]]
    if setup.wheel:
        # The same script "Install trainer from wheel" runs over SSH, so both install alike.
        commands.append(["sh", "-c", install_script(setup.wheel, setup.venv)])
    if commands:
        config["runcmd"] = commands
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def metadata(name: str, hostname: str = "") -> str:
    """The instance metadata: an instance id (the VM's name: a clone is a new instance) and its host name."""
    return json.dumps({"instance-id": name, "local-hostname": hostname or name})


def guestinfo(setup: GuestSetup, vm_name: str) -> dict[str, str]:
    """The ``guestinfo.*`` advanced settings that hand ``setup`` to cloud-init (empty when there is nothing to do)."""
    if setup.empty:
        return {}

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {"guestinfo.userdata": b64(userdata(setup)), "guestinfo.userdata.encoding": "base64",
            "guestinfo.metadata": b64(metadata(vm_name, setup.hostname)), "guestinfo.metadata.encoding": "base64"}


def read_public_key(path: str, option: str = "--ssh-key-file") -> str:
    """The OpenSSH public key in the file ``path`` (``~`` expanded), for :attr:`GuestSetup.ssh_key`."""
    try:
        key = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not text"
        raise BadInput(option, f"cannot read {path}: {reason}", "give the public key file, e.g. ~/.ssh/id_ed25519.pub") from None
    if not key.startswith(("ssh-", "ecdsa-", "sk-")):
        raise BadInput(option, f"{path} is not an OpenSSH public key", "give the .pub file")
    return key
