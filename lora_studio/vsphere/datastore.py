"""Browsing a datastore's folders through vCenter, read-only, to pick base models and datasets
when this computer has no SMB/NFS mount of the share.

Paths are datastore paths: ``[vsanDatastore] lora/models/base.safetensors``. What a VM sees
at that place depends on how the share is mounted in it, so a pick still needs the target's
path mapping (the desktop path side can be the datastore path itself).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from pyVmomi import vim

from ..targets.vsphere import VCenterSession
from . import inventory
from .errors import BadInput, TaskFailed, VSphereError
from .tasks import call, properties, wait_task


@dataclass(frozen=True)
class Entry:
    """A file or folder in a datastore folder."""

    name: str
    is_folder: bool
    size: int                  # bytes; 0 for folders
    modified: str              # ISO 8601, "" when the host gives none
    path: str                  # the datastore path, "[ds] folder/name"


def datastore_path(datastore: str, folder: str = "") -> str:
    """``[datastore] folder`` (the form vCenter's file APIs take)."""
    return f"[{datastore}] {folder}".rstrip() if folder else f"[{datastore}]"


def clean_folder(folder: str) -> str:
    """``folder`` relative to the datastore's top, with "/" separators; ``..`` is refused."""
    parts = [p for p in folder.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadInput("--folder", f"{folder!r} climbs out with ..", "give the folder from the datastore's top")
    return "/".join(parts)


def datastores(session: VCenterSession) -> list[str]:
    """The names of the vCenter's datastores, for a browser to choose from."""
    return sorted(inventory.names_of(session, vim.Datastore), key=str.lower)


def browse(session: VCenterSession, datastore: str, folder: str = "", pattern: str = "*") -> list[Entry]:
    """The files and folders of ``folder`` on ``datastore`` (folders first, then by name)."""
    folder = clean_folder(folder)
    ds = inventory.find(session, vim.Datastore, datastore, "--datastore", "datastore")
    browser = properties(session, ds, ["browser"]).get("browser")
    if browser is None:
        raise VSphereError(f"datastore {datastore} cannot be browsed now", "check that it is mounted and accessible")
    spec = vim.host.DatastoreBrowser.SearchSpec(
        details=vim.host.DatastoreBrowser.FileInfo.Details(fileType=True, fileSize=True, modification=True),
        matchPattern=[pattern or "*"], sortFoldersFirst=True)
    where = datastore_path(datastore, folder)
    task = call(f"browsing {where}", browser.SearchDatastore_Task, datastorePath=where, searchSpec=spec)
    try:
        result = wait_task(session, task, f"browsing {where}")
    except TaskFailed as exc:
        if isinstance(exc.fault, vim.fault.FileNotFound):
            parent = posixpath.dirname(folder)
            raise BadInput("--folder", f"there is no folder {folder!r} on {datastore}",
                           f"browse {datastore_path(datastore, parent)} to see what is there") from None
        raise
    entries = []
    for info in (result.file if result else None) or ():
        is_folder = isinstance(info, vim.host.DatastoreBrowser.FolderInfo)
        entries.append(Entry(info.path, is_folder, 0 if is_folder else int(info.fileSize or 0),
                             info.modification.isoformat() if info.modification else "",
                             datastore_path(datastore, posixpath.join(folder, info.path))))
    return sorted(entries, key=lambda e: (not e.is_folder, e.name.lower()))
