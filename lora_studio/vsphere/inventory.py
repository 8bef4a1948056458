"""Finding inventory objects by the names users type, with errors that list what exists.

Every lookup raises :class:`BadInput` naming the option (``--host``), the value, and the
names that would have worked, so a typo is fixed from the message alone.
"""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from ..targets.vsphere import VCenterSession
from .errors import BadInput, choices
from .tasks import properties


def names_of(session: VCenterSession, kind: type) -> list[str]:
    """The names of every object of ``kind``."""
    return [p.get("name", "") for _, p in session.collect(kind, ["name"])]


def _unique(found: list[Any], option: str, what: str, name: str) -> Any:
    if len(found) > 1:
        raise BadInput(option, f"{len(found)} {what}s are called {name!r}",
                       f"rename one of them in vSphere Client so that {name!r} names one {what}")
    return found[0]


def find(session: VCenterSession, kind: type, name: str, option: str, what: str) -> Any:
    """The object of ``kind`` called ``name``; :class:`BadInput` listing the existing names otherwise."""
    rows = session.collect(kind, ["name"])
    found = [obj for obj, p in rows if p.get("name") == name]
    if not found:
        raise BadInput(option, f"there is no {what} called {name!r}",
                       f"use one of: {choices([p.get('name', '') for _, p in rows])}")
    return _unique(found, option, what, name)


def find_vm(session: VCenterSession, name: str, option: str = "--vm") -> vim.VirtualMachine:
    """The VM (not template) called ``name``."""
    rows = session.collect(vim.VirtualMachine, ["name", "config.template"])
    vms = [(obj, p) for obj, p in rows if not p.get("config.template")]
    found = [obj for obj, p in vms if p.get("name") == name]
    if not found:
        hint = "it is a template: clone it with new-vm --template" if any(
            p.get("name") == name for _, p in rows) else f"use one of: {choices([p.get('name', '') for _, p in vms])}"
        raise BadInput(option, f"there is no VM called {name!r}", hint)
    return _unique(found, option, "VM", name)


def find_source(session: VCenterSession, name: str, option: str = "--template") -> vim.VirtualMachine:
    """The template, or VM, called ``name`` to clone from; the error lists the templates."""
    rows = session.collect(vim.VirtualMachine, ["name", "config.template"])
    found = [obj for obj, p in rows if p.get("name") == name]
    if not found:
        templates = [p.get("name", "") for _, p in rows if p.get("config.template")]
        raise BadInput(option, f"there is no template or VM called {name!r}", f"templates: {choices(templates)}")
    return _unique(found, option, "VM", name)


def require_free_name(session: VCenterSession, name: str, option: str = "--name") -> None:
    """:class:`BadInput` when a VM or template is already called ``name`` (vCenter would refuse it late)."""
    if name in names_of(session, vim.VirtualMachine):
        raise BadInput(option, f"a VM called {name!r} exists already", "choose another name, or remove that VM first")


def find_pool(session: VCenterSession, name: str, owner: Any = None, option: str = "--resource-pool") -> vim.ResourcePool:
    """The resource pool called ``name`` (under ``owner``, a cluster or host's compute resource, when given).

    A cluster's root pool is called "Resources" in every cluster, hence the owner.
    """
    rows = session.collect(vim.ResourcePool, ["name", "owner"])
    if owner is not None:
        rows = [(obj, p) for obj, p in rows if p.get("owner") == owner]
    found = [obj for obj, p in rows if p.get("name") == name]
    if not found:
        raise BadInput(option, f"there is no resource pool called {name!r}" + (" there" if owner is not None else ""),
                       f"use one of: {choices([p.get('name', '') for _, p in rows])}")
    return _unique(found, option, "resource pool", name)


def compute_of(session: VCenterSession, host: vim.HostSystem) -> Any:
    """The cluster (or standalone compute resource) ``host`` belongs to."""
    return properties(session, host, ["parent"]).get("parent")


def find_datastore(session: VCenterSession, name: str, where: Any, where_name: str,
                   option: str = "--datastore") -> vim.Datastore:
    """The datastore called ``name`` among those mounted on ``where`` (a host or cluster)."""
    mounted = properties(session, where, ["datastore"]).get("datastore") or []
    by_name = {properties(session, ds, ["name"]).get("name", ""): ds for ds in mounted}
    if name not in by_name:
        exists = name in names_of(session, vim.Datastore)
        raise BadInput(option, f"datastore {name!r} is {'not mounted on' if exists else 'unknown to'} {where_name}",
                       f"datastores of {where_name}: {choices(list(by_name))}")
    return by_name[name]


def find_network(session: VCenterSession, name: str, where: Any, where_name: str,
                 option: str = "--network") -> Any:
    """The network (standard port group or distributed port group) called ``name`` on ``where``."""
    networks = properties(session, where, ["network"]).get("network") or []
    by_name = {properties(session, net, ["name"]).get("name", ""): net for net in networks}
    if name not in by_name:
        raise BadInput(option, f"there is no network called {name!r} on {where_name}",
                       f"networks of {where_name}: {choices(list(by_name))}")
    return by_name[name]
