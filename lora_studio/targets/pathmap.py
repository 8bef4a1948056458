"""Path mapping: the workspace as the desktop sees it, and as a target sees it.

A studio's desktop sees the vSAN share as ``Z:\\lora`` (SMB) or ``/mnt/vsan/lora`` (NFS);
its GPU VMs see the same files as ``/data/lora``. Every path of a config is rewritten
through the mapping at launch. Targets are Linux machines, so mapped paths are POSIX.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from dataclasses import dataclass

from .errors import TargetConfigError

_WINDOWS = re.compile(r"^([A-Za-z]:|\\\\)")


def _is_windows(path: str) -> bool:
    """True for ``C:\\x``, ``C:/x`` and UNC ``\\\\server\\share`` paths."""
    return bool(_WINDOWS.match(path))


def _parts(path: str) -> tuple[bool, list[str]]:
    """(windows?, normalised components) of a desktop path; Windows ones compare case-insensitively."""
    if _is_windows(path):
        norm = ntpath.normpath(path.replace("/", "\\"))
        drive, rest = ntpath.splitdrive(norm)
        return True, [drive.lower()] + [p.lower() for p in rest.split("\\") if p]
    norm = posixpath.normpath(path)
    return False, [p for p in norm.split("/") if p]


def _original_parts(path: str) -> list[str]:
    """Components with their case kept (for the part of a path below the mapped root)."""
    if _is_windows(path):
        drive, rest = ntpath.splitdrive(ntpath.normpath(path.replace("/", "\\")))
        return [drive] + [p for p in rest.split("\\") if p]
    return [p for p in posixpath.normpath(path).split("/") if p]


@dataclass(frozen=True)
class PathMapping:
    """One folder as the desktop sees it (``local``) and as the target sees it (``target``)."""

    local: str
    target: str

    def __post_init__(self) -> None:
        if not self.local.strip() or not self.target.strip():
            raise TargetConfigError(f"path mapping {self.local!r} -> {self.target!r} has an empty side",
                                    "give both the desktop's folder and the target's folder")
        if not self.target.startswith("/"):
            raise TargetConfigError(f"path mapping target {self.target!r} is not an absolute Linux path",
                                    "write the folder as the target sees it, e.g. /data/lora")

    def to_target(self, path: str) -> str | None:
        """``path`` as the target sees it, or None when it is not under ``local``."""
        win, root = _parts(self.local)
        pwin, parts = _parts(path)
        if win != pwin or parts[: len(root)] != root:
            return None
        below = _original_parts(path)[len(root):]
        return posixpath.join(posixpath.normpath(self.target), *below) if below else posixpath.normpath(self.target)

    def to_local(self, target_path: str) -> str | None:
        """A target path as the desktop sees it, or None when it is not under ``target``."""
        root = [p for p in posixpath.normpath(self.target).split("/") if p]
        parts = [p for p in posixpath.normpath(target_path).split("/") if p]
        if parts[: len(root)] != root:
            return None
        below = parts[len(root):]
        if _is_windows(self.local):
            return ntpath.join(self.local.replace("/", "\\"), *below) if below else self.local
        return posixpath.join(self.local, *below) if below else self.local


class PathMapper:
    """A target's mappings; the longest matching ``local`` folder wins. No mappings: paths unchanged."""

    def __init__(self, mappings: tuple[PathMapping, ...] | list[PathMapping] = ()) -> None:
        # Longest first, so /mnt/vsan/lora/models beats /mnt/vsan/lora.
        self.mappings = sorted(mappings, key=lambda m: len(_parts(m.local)[1]), reverse=True)

    def to_target(self, path: str, what: str = "path") -> str:
        """``path`` as the target sees it; raises TargetConfigError when no mapping covers it."""
        if not self.mappings:
            return path
        for mapping in self.mappings:
            mapped = mapping.to_target(path)
            if mapped is not None:
                return mapped
        folders = ", ".join(m.local for m in self.mappings)
        raise TargetConfigError(f"{what} {path} is outside the folders this target can see ({folders})",
                                "move it into the shared workspace, or add a path mapping for its folder")

    def to_local(self, target_path: str) -> str:
        """A target path as the desktop sees it (unchanged when no mapping covers it)."""
        for mapping in sorted(self.mappings, key=lambda m: len(m.target), reverse=True):
            mapped = mapping.to_local(target_path)
            if mapped is not None:
                return mapped
        return target_path
