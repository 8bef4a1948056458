"""Where training runs: this computer, SSH hosts and vSphere VMs (DESIGN.md section 6).

Torch-free and Qt-free: the Targets panel calls :mod:`.api` from worker threads with plain
data and gets dataclasses back. Modules, one job each:

- :mod:`.model` target dataclasses and their settings file (no secrets)
- :mod:`.pathmap` desktop path <-> target path
- :mod:`.prepare` the mapped config written into the run folder
- :mod:`.commands` quoted POSIX command lines; :mod:`.shell` running them
- :mod:`.ssh` paramiko with pinned host keys; :mod:`.credentials` the OS keyring
- :mod:`.vsphere` vCenter TLS pinning, inventory, power-on; :mod:`.guestops` Guest Operations
- :mod:`.preflight` checks before launch; :mod:`.launch` a trainer command (train, label) mapped for a
  target, started detached in its run folder, and run.json (:func:`.api.start_job` is the one entry)
- :mod:`.run_control` a started run's liveness and stop over its channel (:mod:`.control` / :mod:`.stop`
  the process signals and the staged stop); :mod:`.runs` re-attach, and how a run ended; :mod:`.heartbeats`
  a heartbeat's age by the desk's own clock (liveness whatever the clocks say)
- :mod:`.install` the trainer from a wheel on the shared storage
- :mod:`.ray_client` Ray's Jobs REST API; :mod:`.ray_jobs` a command as a Ray job, its liveness and stop;
  :mod:`.ray_preflight` the cluster's checks; :mod:`.ray_state` Ray's word on a job beside the run folder's
- :mod:`.multinode` one run over several targets with torchrun; :mod:`.rendezvous` the network check
  between its nodes; :mod:`.placement` its nodes as run.json records them; :mod:`.node_control` their stop
"""

from .api import (LaunchOutcome, TargetContext, inventory, install_trainer, launch, pin_vcenter, power_on, preflight,
                  start, start_job, trust_ssh_host, vcenter_certificate)
from .credentials import forget_password, load_password, store_password
from .errors import (CertificateChanged, ConnectionFailed, HostKeyChanged, LaunchFailed, TargetConfigError, TargetError,
                     UntrustedCertificate, UntrustedHostKey)
from .launch import PathsNotVisible, TrainerJob
from .multinode import NodesOptions, launch_nodes, preflight_nodes
from .placement import Node, Placement, placement_of
from .model import (LocalTarget, SshTarget, Target, TargetSettings, VCenter, VSphereTarget, load_settings,
                    save_settings)
from .pathmap import PathMapper, PathMapping
from .preflight import Check, PreflightReport
from .run_control import RunProbe, is_running, stop, stop_now
from .runinfo import RunInfo, read_run_info
from .runs import RunSummary, list_runs
from .stop import StopResult, request_stop
from .vsphere import CertificateInfo, VmRow

__all__ = [
    "CertificateChanged", "CertificateInfo", "Check", "ConnectionFailed", "HostKeyChanged", "LaunchFailed",
    "LaunchOutcome", "LocalTarget", "Node", "NodesOptions", "Placement", "launch_nodes", "placement_of", "preflight_nodes", "PathMapper", "PathMapping", "PathsNotVisible", "PreflightReport", "RunInfo",
    "RunProbe", "RunSummary", "SshTarget", "StopResult", "Target", "TargetConfigError", "TargetContext", "TargetError",
    "TargetSettings", "TrainerJob", "UntrustedCertificate", "UntrustedHostKey", "VCenter", "VSphereTarget", "VmRow", "forget_password",
    "install_trainer", "inventory", "load_password", "store_password",
    "is_running", "launch", "list_runs", "load_settings", "pin_vcenter", "power_on", "preflight", "read_run_info",
    "request_stop", "save_settings", "start", "start_job", "stop", "stop_now", "trust_ssh_host", "vcenter_certificate",
]
