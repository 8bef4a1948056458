"""Where a run over several machines runs: its nodes, as ``run.json`` records them.

A run started by torchrun on several targets keeps one ``run.json`` (the first node's, so that
every reader of a one-machine run still finds its target, host and pid) with a ``placement``
entry in its ``extra``: every node with its target, address, torchrun pid, processes and log.
Stop, liveness, the busy rule and the monitor read it from there. Pure data: no connection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .runinfo import RunInfo

PLACEMENT_KEY = "placement"


@dataclass(frozen=True)
class Node:
    """One machine of a multi-node run."""

    target: str           # the saved target's name
    host: str             # the address the app reached it at; torchrun's --local-addr there
    pid: int              # its torchrun's pid (the workers are torchrun's children)
    processes: int        # worker processes on it (--nproc-per-node)
    log: str              # its console output, a file of the run folder
    interface: str = ""   # NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME, "" when not set
    vm: str = ""          # the VM's name for vSphere targets


@dataclass(frozen=True)
class Placement:
    """The nodes of a multi-node run and its rendezvous (the first node hosts it)."""

    nodes: tuple[Node, ...]
    endpoint: str          # host:port of torchrun's c10d rendezvous
    rdzv_id: str
    max_restarts: int
    launcher: str = "torchrun"

    @property
    def world_size(self) -> int:
        """Training processes in all."""
        return sum(node.processes for node in self.nodes)

    @property
    def targets(self) -> tuple[str, ...]:
        """The nodes' target names, the rendezvous host first."""
        return tuple(node.target for node in self.nodes)

    def describe(self) -> str:
        """``2 nodes × 1 process`` (``3 nodes, 5 processes`` when the nodes differ)."""
        counts = {node.processes for node in self.nodes}
        nodes = f"{len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}"
        if len(counts) == 1:
            per = counts.pop()
            return f"{nodes} × {per} process{'es' if per != 1 else ''}"
        return f"{nodes}, {self.world_size} processes"

    def to_json(self) -> dict[str, Any]:
        """The placement as run.json's ``extra["placement"]`` holds it."""
        data = asdict(self)
        data["nodes"] = [asdict(node) for node in self.nodes]
        return data

    @classmethod
    def from_json(cls, data: Any) -> "Placement | None":
        """The placement of a run.json entry; None when it is missing or unreadable."""
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not data["nodes"]:
            return None
        known = {f.name for f in fields(Node)}
        try:
            nodes = tuple(Node(**{k: v for k, v in node.items() if k in known}) for node in data["nodes"])
            return cls(nodes, str(data["endpoint"]), str(data.get("rdzv_id", "")), int(data.get("max_restarts", 0)),
                       str(data.get("launcher", "torchrun")))
        except (TypeError, KeyError, ValueError, AttributeError):
            return None


def placement_of(info: RunInfo | None) -> Placement | None:
    """The placement of a run started on several targets; None for a one-machine run."""
    if info is None:
        return None
    return Placement.from_json((info.extra or {}).get(PLACEMENT_KEY))


def run_targets(info: RunInfo | None) -> tuple[str, ...]:
    """Every target a run occupies: its nodes, or the one target of a one-machine run."""
    placement = placement_of(info)
    if placement is not None:
        return placement.targets
    return (info.target_name,) if info is not None and info.target_name else ()
