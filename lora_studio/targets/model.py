"""Target definitions (where training runs) and their settings file.

Targets are plain frozen dataclasses so a Qt panel can hand them to worker threads. They
hold no secrets: passwords live in the OS keyring under :meth:`secret_account` names
(see :mod:`.secrets`); the settings file written here never contains one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Union

from trainer.fsutil import atomic_write_text

from .errors import TargetConfigError
from .pathmap import PathMapper, PathMapping
from .ray_client import normalize_address

SETTINGS_VERSION = 1
SSH_AUTH = ("agent", "key", "password")
VM_LAUNCH = ("ssh", "guest_ops")


@dataclass(frozen=True, kw_only=True)
class _TargetBase:
    """What every kind of target has: how its paths map to the desktop's, how many jobs it takes, and
    the network interface the processes of a run over several machines talk over."""

    mappings: tuple[PathMapping, ...] = ()
    max_jobs: int = 1
    # NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME for a multi-node run ("eth1"); empty: let them choose.
    network_interface: str = ""

    def mapper(self) -> PathMapper:
        """The path mapper of this target (none for this computer: the desktop's paths are its own)."""
        return PathMapper(self.mappings)


@dataclass(frozen=True)
class LocalTarget(_TargetBase):
    """This computer. ``python`` empty means the interpreter running the app's trainer."""

    name: str = "This computer"
    python: str = ""
    kind: ClassVar[str] = "local"


@dataclass(frozen=True)
class SshTarget(_TargetBase):
    """A Linux machine reached over SSH, with the trainer installed (``python -m trainer``)."""

    name: str
    host: str
    user: str
    port: int = 22
    auth: str = "agent"  # agent | key | password (the password comes from the keyring)
    key_file: str = ""   # private key for auth == "key"; its passphrase, if any, from the keyring
    python: str = "python3"
    kind: ClassVar[str] = "ssh"

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise TargetConfigError(f"SSH target {self.name!r} has no host", "enter the host name or IP address")
        if not self.user.strip():
            raise TargetConfigError(f"SSH target {self.name!r} has no user", "enter the login user on the host")
        if self.auth not in SSH_AUTH:
            raise TargetConfigError(f"SSH target {self.name!r}: auth {self.auth!r} is not one of {', '.join(SSH_AUTH)}",
                                    "choose agent, key or password")
        if self.auth == "key" and not self.key_file:
            raise TargetConfigError(f"SSH target {self.name!r} uses a key but names no key file",
                                    "choose the private key file, or use the SSH agent")
        if not 0 < int(self.port) < 65536:
            raise TargetConfigError(f"SSH target {self.name!r}: port {self.port} is not a TCP port", "use 1-65535 (22 by default)")

    def secret_account(self) -> str:
        """Keyring account of this target's password (or key passphrase)."""
        return f"ssh:{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class VCenter:
    """A vCenter (or ESXi host) connection. ``thumbprint`` is the pinned SHA-256 of its
    certificate when the user trusted a self-signed one; empty means "verify with the
    system's CA store"."""

    name: str
    host: str
    user: str
    port: int = 443
    thumbprint: str = ""

    def __post_init__(self) -> None:
        if not self.host.strip() or not self.user.strip():
            raise TargetConfigError(f"vCenter {self.name!r} needs a host and a user", "enter both")

    def secret_account(self) -> str:
        """Keyring account of the vCenter password."""
        return f"vcenter:{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class VSphereTarget(_TargetBase):
    """A VM of a vCenter's inventory. Launch over SSH to its guest IP, or through VMware
    Tools' Guest Operations API (no network path needed; ``guest_user`` and a keyring password)."""

    name: str
    vcenter: str                # VCenter.name
    vm: str                     # the VM's name in the inventory
    launch: str = "ssh"         # ssh | guest_ops
    ssh_user: str = ""
    ssh_port: int = 22
    ssh_auth: str = "agent"
    ssh_key_file: str = ""
    guest_user: str = ""
    python: str = "python3"
    kind: ClassVar[str] = "vsphere"

    def __post_init__(self) -> None:
        if self.launch not in VM_LAUNCH:
            raise TargetConfigError(f"VM target {self.name!r}: launch {self.launch!r} is not ssh or guest_ops",
                                    "choose SSH to the guest IP, or Guest Operations")
        if self.launch == "ssh" and not self.ssh_user:
            raise TargetConfigError(f"VM target {self.name!r} launches over SSH but has no SSH user", "enter the guest's SSH user")
        if self.launch == "guest_ops" and not self.guest_user:
            raise TargetConfigError(f"VM target {self.name!r} uses Guest Operations but has no guest user",
                                    "enter a user of the guest OS (its password goes to the keyring)")

    def guest_secret_account(self) -> str:
        """Keyring account of the guest OS password (Guest Operations)."""
        return f"guest:{self.guest_user}@{self.vcenter}/{self.vm}"

    def ssh_target(self, ip: str) -> SshTarget:
        """The SSH target that reaches this VM at its guest ``ip``."""
        return SshTarget(name=self.name, host=ip, user=self.ssh_user, port=self.ssh_port, auth=self.ssh_auth,
                         key_file=self.ssh_key_file, python=self.python, mappings=self.mappings, max_jobs=self.max_jobs,
                         network_interface=self.network_interface)


RAY_RUNS_AT_ONCE = 32  # a Ray target's max_jobs: Ray queues the runs, this only caps what one app hands it


@dataclass(frozen=True)
class RayTarget(_TargetBase):
    """A Ray cluster: runs go to its Jobs API (the dashboard's address), and Ray queues each until a
    node has the GPUs and CPUs it asks for, then runs the trainer there (:mod:`.ray_jobs`).

    ``python`` is the interpreter with the trainer on the cluster's nodes; ``runtime_env`` is an
    optional Ray runtime environment as JSON text (``{"env_vars": {"HF_HOME": "/data/hf"}}``).
    ``max_jobs`` only caps how many runs this app hands the cluster at once: Ray does the queueing.
    """

    name: str
    address: str                 # the Ray dashboard, e.g. http://ray-head:8265
    python: str = "python3"
    num_gpus: float = 1.0        # per run (entrypoint_num_gpus)
    num_cpus: float = 1.0        # per run (entrypoint_num_cpus)
    runtime_env: str = ""
    max_jobs: int = field(default=RAY_RUNS_AT_ONCE, kw_only=True)
    kind: ClassVar[str] = "ray"

    def __post_init__(self) -> None:
        normalize_address(self.address)  # the same check the client makes
        for what, value in (("GPUs", self.num_gpus), ("CPUs", self.num_cpus)):
            if not isinstance(value, (int, float)) or value < 0:
                raise TargetConfigError(f"Ray target {self.name!r}: {what} per run must be 0 or more, not {value!r}",
                                        "enter how many the trainer needs, e.g. 1")
        self.runtime_env_dict()

    def runtime_env_dict(self) -> dict[str, Any]:
        """The runtime environment as a dict ({} when there is none); TargetConfigError when it is not a JSON object."""
        if not self.runtime_env.strip():
            return {}
        try:
            data = json.loads(self.runtime_env)
        except ValueError as exc:
            raise TargetConfigError(f"Ray target {self.name!r}: the runtime environment is not valid JSON ({exc})",
                                    'write a JSON object, e.g. {"env_vars": {"HF_HOME": "/data/hf"}}') from None
        if not isinstance(data, dict):
            raise TargetConfigError(f"Ray target {self.name!r}: the runtime environment must be a JSON object",
                                    'write it in braces, e.g. {"env_vars": {"HF_HOME": "/data/hf"}}')
        return data


Target = Union[LocalTarget, SshTarget, VSphereTarget, RayTarget]
_KINDS: dict[str, type] = {cls.kind: cls for cls in (LocalTarget, SshTarget, VSphereTarget, RayTarget)}


@dataclass
class TargetSettings:
    """Everything the Targets panel saves: vCenters and targets (no secrets)."""

    vcenters: list[VCenter] = field(default_factory=list)
    targets: list[Target] = field(default_factory=lambda: [LocalTarget()])

    def target(self, name: str) -> Target:
        """The target called ``name``."""
        for target in self.targets:
            if target.name == name:
                return target
        raise TargetConfigError(f"no target is called {name!r}", "pick one of the targets in the Targets panel")

    def vcenter(self, name: str) -> VCenter:
        """The vCenter called ``name``."""
        for vc in self.vcenters:
            if vc.name == name:
                return vc
        raise TargetConfigError(f"no vCenter is called {name!r}", "add the vCenter in the Targets panel first")


def _to_json(obj: Any) -> dict[str, Any]:
    data = asdict(obj)
    if "mappings" in data:
        data["mappings"] = [{"local": m["local"], "target": m["target"]} for m in data["mappings"]]
    return data


def target_to_dict(target: Target) -> dict[str, Any]:
    """A target as JSON-ready data, with its ``kind``."""
    return {"kind": target.kind, **_to_json(target)}


def target_from_dict(data: dict[str, Any]) -> Target:
    """The target described by ``data`` (as written by :func:`target_to_dict`)."""
    data = dict(data)
    kind = data.pop("kind", None)
    cls = _KINDS.get(kind)
    if cls is None:
        raise TargetConfigError(f"unknown target kind {kind!r}", f"use one of {', '.join(_KINDS)}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TargetConfigError(f"target {data.get('name')!r}: unknown fields {', '.join(unknown)}",
                                "remove them (they may come from a newer version of the app)")
    if "mappings" in data:
        data["mappings"] = tuple(PathMapping(m["local"], m["target"]) for m in data["mappings"] or ())
    try:
        return cls(**data)
    except TypeError as exc:
        raise TargetConfigError(f"target {data.get('name')!r}: {exc}", "check the targets settings file") from None


def settings_to_json(settings: TargetSettings) -> str:
    """The settings as JSON text (no secrets: the dataclasses hold none)."""
    return json.dumps({"version": SETTINGS_VERSION,
                       "vcenters": [_to_json(vc) for vc in settings.vcenters],
                       "targets": [target_to_dict(t) for t in settings.targets]}, indent=1, ensure_ascii=False) + "\n"


def settings_from_json(text: str, source: str = "targets settings") -> TargetSettings:
    """Parse settings written by :func:`settings_to_json`."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TargetConfigError(f"{source} is not valid JSON: {exc}", "fix or delete the file; targets can be added again") from None
    if not isinstance(data, dict) or data.get("version") != SETTINGS_VERSION:
        raise TargetConfigError(f"{source} has an unknown format or version", "it may come from a newer app; update the app")
    try:
        vcenters = [VCenter(**vc) for vc in data.get("vcenters", [])]
    except TypeError as exc:
        raise TargetConfigError(f"{source}: a vCenter entry is invalid: {exc}", "check the file") from None
    return TargetSettings(vcenters=vcenters, targets=[target_from_dict(t) for t in data.get("targets", [])])


def load_settings(path: Path | str) -> TargetSettings:
    """The targets saved at ``path`` (the default set, only this computer, when there is no file yet)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TargetSettings()
    return settings_from_json(text, str(path))


def save_settings(path: Path | str, settings: TargetSettings) -> None:
    """Write the targets to ``path`` atomically."""
    atomic_write_text(Path(path), settings_to_json(settings))
