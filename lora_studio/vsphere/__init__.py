"""vSphere operations for trainer VMs (issue 18): Qt-free and torch-free, for the app's worker
threads and the ``python -m lora_studio.vsphere`` CLI. Sessions come from
:func:`lora_studio.targets.vsphere.connect_vcenter` (TLS verified or pinned). Modules, one job each:

- :mod:`.newvm` a new VM as asked and resolved against the inventory; :mod:`.vms` making it
  (clone or linked clone, reconfigure, power on, wait for VMware Tools and an IP)
- :mod:`.hardware` the reconfiguration spec; :mod:`.gpus` a host's passthrough GPUs and vGPU
  profiles; :mod:`.cloudinit` guestinfo cloud-init data that mounts the share and installs the trainer
- :mod:`.snapshots` list / take / revert / delete; :mod:`.policies` SPBM storage policies and
  the protection preflight; :mod:`.cluster` the cluster view; :mod:`.datastore` browsing
- :mod:`.inventory` names to objects; :mod:`.tasks` property reads and task waiting (progress,
  cancel); :mod:`.errors` the errors; :mod:`.cli` / :mod:`.commands` the command line
- :mod:`.choices` what a New VM form lists; :mod:`.run_snapshot` the launch option "snapshot the
  VM first" (a ``before_start`` step of :func:`lora_studio.targets.api.launch`)
"""

from .cloudinit import GuestSetup
from .cluster import ClusterView, HostView, HostVm, cluster_view
from .datastore import Entry, browse
from .errors import BadInput, Cancelled, TaskFailed, VSphereError
from .gpus import HostGpus, PciGpu, host_gpus
from .newvm import NewVm
from .policies import Policy, Spbm, apply_policy, connect_spbm, create_vsan_policy, list_policies, preflight_vm
from .snapshots import SnapshotRow, create_snapshot, delete_snapshot, list_snapshots, revert_snapshot
from .vms import MadeVm, clone_for_experiment, create_vm

__all__ = [
    "BadInput", "Cancelled", "ClusterView", "Entry", "GuestSetup", "HostGpus", "HostView", "HostVm", "MadeVm", "NewVm",
    "PciGpu", "Policy", "SnapshotRow", "Spbm", "TaskFailed", "VSphereError", "apply_policy", "browse",
    "clone_for_experiment", "cluster_view", "connect_spbm", "create_snapshot", "create_vm", "create_vsan_policy",
    "delete_snapshot", "host_gpus", "list_policies", "list_snapshots", "preflight_vm", "revert_snapshot",
]
