"""Storage policies (SPBM): list them, create the studio's vSAN policy, apply one to a VM, and
check how well a training VM is protected.

The SPBM service lives next to vCenter's SDK at ``/pbm`` and accepts the vCenter session:
the standard pyvmomi pattern is a second SOAP stub that sends the session cookie (as the
HTTP cookie and as the ``vcSessionCookie`` request-context header) over the same TLS
context, so a pinned certificate stays pinned.

The studio's policy (the seed's): vSAN, one host failure tolerated with RAID-1 mirroring
(two replicas), an IOPS limit so one training job's checkpoint writes cannot starve the
cluster, and thin provisioning (proportionalCapacity 0).
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from typing import Any, Callable

from pyVmomi import SoapStubAdapter, pbm, vim, vmodl

from trainer.wording import plural

from ..targets.preflight import OK, WARNING, Check
from ..targets.vsphere import VCenterSession
from .errors import BadInput, VSphereError, choices, fault_text
from .hardware import config_spec, Hardware, disks
from .tasks import Progress, call, properties, wait_task

PBM_VERSION = "pbm.version.version11"   # vSphere 6.7+; later vCenters answer it too
VSAN = "VSAN"
MIRRORING = "RAID-1 (Mirroring) - Performance"


@dataclass(frozen=True)
class Policy:
    """A storage policy with the vSAN rules the studio cares about (None: the policy sets none)."""

    id: str
    name: str
    description: str = ""
    failures_to_tolerate: int | None = None
    iops_limit: int | None = None
    thin: bool | None = None
    rules: dict[str, Any] = field(default_factory=dict)   # every "NAMESPACE.capability": value


@dataclass(frozen=True)
class Spbm:
    """A connection to the SPBM service of a vCenter session."""

    session: VCenterSession
    content: Any

    @property
    def profiles(self) -> Any:
        return self.content.profileManager


def connect_spbm(session: VCenterSession) -> Spbm:
    """The SPBM service of ``session``'s vCenter, logged in with the session's cookie."""
    stub = session.si._stub
    scheme = "http" if stub.scheme is http.client.HTTPConnection else "https"
    cookie = stub.GetSessionId()
    pbm_stub = SoapStubAdapter(url=f"{scheme}://{stub.host}/pbm", version=PBM_VERSION, poolSize=0,
                               sslContext=stub.schemeArgs.get("context"), sessionId=cookie,
                               requestContext={"vcSessionCookie": cookie})
    try:
        content = pbm.ServiceInstance("ServiceInstance", pbm_stub).RetrieveContent()
    except vmodl.MethodFault as exc:
        raise VSphereError(f"the storage policy service of {session.vcenter.host} refused: {fault_text(exc)}",
                           "storage policies need vCenter (not a single ESXi host) and the StorageProfile.View privilege") from None
    except Exception as exc:  # HTTP errors of a vCenter without SPBM
        raise VSphereError(f"cannot reach the storage policy service of {session.vcenter.host}: {exc}",
                           "storage policies need vCenter, not a single ESXi host") from None
    return Spbm(session, content)


def _rules(profile: Any) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    constraints = getattr(profile, "constraints", None)
    for sub in getattr(constraints, "subProfiles", None) or ():
        for capability in sub.capability or ():
            for constraint in capability.constraint or ():
                for prop in constraint.propertyInstance or ():
                    rules[f"{capability.id.namespace}.{prop.id}"] = prop.value
    return rules


def _policy(profile: Any) -> Policy:
    rules = _rules(profile)
    ftt, iops, capacity = (rules.get(f"{VSAN}.{k}") for k in ("hostFailuresToTolerate", "iopsLimit", "proportionalCapacity"))
    return Policy(profile.profileId.uniqueId, profile.name, profile.description or "",
                  int(ftt) if ftt is not None else None, int(iops) if iops is not None else None,
                  int(capacity) == 0 if capacity is not None else None, rules)


def list_policies(spbm: Spbm) -> list[Policy]:
    """Every storage (requirement) policy, by name."""
    ids = call("listing storage policies", spbm.profiles.PbmQueryProfile,
               resourceType=pbm.profile.ResourceType(resourceType="STORAGE"), profileCategory="REQUIREMENT")
    profiles = call("reading storage policies", spbm.profiles.PbmRetrieveContent, profileIds=ids) if ids else []
    return sorted((_policy(p) for p in profiles), key=lambda p: p.name.lower())


def find_policy(spbm: Spbm, name: str, option: str = "--policy") -> Policy:
    """The policy called ``name``; :class:`BadInput` listing the policies otherwise."""
    policies = list_policies(spbm)
    for policy in policies:
        if policy.name == name:
            return policy
    raise BadInput(option, f"there is no storage policy called {name!r}",
                   f"policies: {choices([p.name for p in policies])}; or create one with `policies --create`")


def policy_ids(spbm: Spbm) -> Callable[[str], str]:
    """``name -> policy id`` for :func:`~.vms.create_vm` (raising :class:`BadInput` for an unknown name)."""
    def policy_id(name: str) -> str:
        return find_policy(spbm, name).id
    return policy_id


def _capability(capability: str, value: Any) -> Any:
    prop = pbm.capability.PropertyInstance(id=capability, value=value)
    return pbm.capability.CapabilityInstance(
        id=pbm.capability.CapabilityMetadata.UniqueId(namespace=VSAN, id=capability),
        constraint=[pbm.capability.ConstraintInstance(propertyInstance=[prop])])


def create_vsan_policy(spbm: Spbm, name: str, *, failures_to_tolerate: int = 1, iops_limit: int = 0,
                       thin: bool = True, description: str = "") -> Policy:
    """Create a vSAN policy: ``failures_to_tolerate`` host failures with mirroring (1 = two
    replicas), ``iops_limit`` per disk (0 = none), thin or thick provisioning."""
    if not 0 <= failures_to_tolerate <= 3:
        raise BadInput("--failures-to-tolerate", f"{failures_to_tolerate} is out of range", "vSAN tolerates 0 to 3 host failures")
    if iops_limit < 0:
        raise BadInput("--iops-limit", f"{iops_limit} is negative", "give IOPS per disk, or 0 for no limit")
    if any(p.name == name for p in list_policies(spbm)):
        raise BadInput("--name", f"a storage policy called {name!r} exists already", "choose another name, or use that policy")
    capabilities = [_capability("hostFailuresToTolerate", failures_to_tolerate),
                    _capability("proportionalCapacity", 0 if thin else 100)]
    if failures_to_tolerate:
        capabilities.append(_capability("replicaPreference", MIRRORING))
    if iops_limit:
        capabilities.append(_capability("iopsLimit", iops_limit))
    sub = pbm.profile.SubProfileCapabilityConstraints.SubProfile(name="VSAN sub-profile", capability=capabilities)
    spec = pbm.profile.CapabilityBasedProfileCreateSpec(
        name=name,
        description=description or f"LoRA Studio: vSAN, {plural(failures_to_tolerate, 'failure')} to tolerate",
        category="REQUIREMENT", resourceType=pbm.profile.ResourceType(resourceType="STORAGE"),
        constraints=pbm.profile.SubProfileCapabilityConstraints(subProfiles=[sub]))
    profile_id = call(f"creating storage policy {name}", spbm.profiles.PbmCreate, createSpec=spec)
    return next(p for p in list_policies(spbm) if p.id == profile_id.uniqueId)


def apply_policy(session: VCenterSession, vm: vim.VirtualMachine, policy: Policy, *,
                 progress: Progress | None = None) -> None:
    """Put the VM's home folder and every disk under ``policy`` (vSAN re-lays the data out in the background)."""
    devices = properties(session, vm, ["config.hardware.device"]).get("config.hardware.device") or []
    spec = config_spec(devices, Hardware(profile_id=policy.id))
    name = properties(session, vm, ["name"]).get("name", "")
    wait_task(session, call(f"applying {policy.name}", vm.ReconfigVM_Task, spec=spec),
              f"applying storage policy {policy.name} to {name}", progress=progress)


def vm_policies(spbm: Spbm, vm: vim.VirtualMachine) -> dict[str, Policy | None]:
    """The policy of the VM's home and of each disk (by disk label); None where none is associated."""
    session = spbm.session
    server = session.content.about.instanceUuid
    devices = properties(session, vm, ["config.hardware.device"]).get("config.hardware.device") or []
    objects = {"VM home": pbm.ServerObjectRef(key=vm._moId, objectType="virtualMachine", serverUuid=server)}
    for disk in disks(devices):
        label = disk.deviceInfo.label if disk.deviceInfo else f"disk {disk.key}"
        objects[label] = pbm.ServerObjectRef(key=f"{vm._moId}:{disk.key}", objectType="virtualDiskId", serverUuid=server)
    by_id = {p.id: p for p in list_policies(spbm)}
    out: dict[str, Policy | None] = {}
    for label, ref in objects.items():
        ids = call("reading the VM's storage policy", spbm.profiles.PbmQueryAssociatedProfile, entity=ref) or []
        out[label] = next((by_id[i.uniqueId] for i in ids if i.uniqueId in by_id), None)
    return out


def protection_checks(policies: dict[str, Policy | None], cluster: str, ha: bool | None) -> list[Check]:
    """Warnings for a training VM whose data or uptime is unprotected (pure: see :func:`preflight_vm`)."""
    checks = []
    for label, policy in policies.items():
        if label == "VM home":
            continue
        if policy is None:
            checks.append(Check("storage_policy", WARNING, f"{label} has no storage policy",
                                "the datastore's default decides how many failures it survives; apply a policy with "
                                "hostFailuresToTolerate 1: policies --apply NAME --vm VM"))
        elif policy.failures_to_tolerate == 0:
            checks.append(Check("storage_policy", WARNING, f"{label} tolerates no failure (policy {policy.name})",
                                "one failed host or disk loses checkpoints: apply a policy with hostFailuresToTolerate 1"))
        else:
            ftt = "the datastore's redundancy" if policy.failures_to_tolerate is None else \
                f"{plural(policy.failures_to_tolerate, 'failure')} tolerated"
            checks.append(Check("storage_policy", OK, f"{label}: policy {policy.name}, {ftt}"))
    if not cluster:
        checks.append(Check("ha", WARNING, "the VM's host is in no cluster: no vSphere HA restarts it",
                            "a host failure stops the run until the host is back; resume from the last checkpoint"))
    elif not ha:
        checks.append(Check("ha", WARNING, f"cluster {cluster} has vSphere HA off",
                            "a host failure stops the run and the VM is not restarted elsewhere; turn HA on in the cluster"))
    else:
        checks.append(Check("ha", OK, f"cluster {cluster} has vSphere HA on"))
    return checks


def preflight_vm(spbm: Spbm, vm: vim.VirtualMachine) -> list[Check]:
    """How well a training VM is protected: each disk's failures to tolerate, and HA of its cluster."""
    session = spbm.session
    host = properties(session, vm, ["runtime.host"]).get("runtime.host")
    compute = properties(session, host, ["parent"]).get("parent") if host is not None else None
    cluster, ha = "", None
    if isinstance(compute, vim.ClusterComputeResource):
        p = properties(session, compute, ["name", "configurationEx"])
        cluster = p.get("name", "")
        das = getattr(p.get("configurationEx"), "dasConfig", None)
        ha = bool(das is not None and das.enabled)
    return protection_checks(vm_policies(spbm, vm), cluster, ha)
