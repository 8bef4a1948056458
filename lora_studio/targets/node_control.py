"""Stop and liveness for a run over several targets: every node's torchrun, reached over SSH.

The run's ``run.json`` lists its nodes (:mod:`.placement`). The run is alive while any node's
torchrun is; a signal goes to each node still running. SIGTERM goes to torchrun, which passes
it to its workers (the trainer takes it as "checkpoint and stop", and its ranks agree on the
stop); a kill must reach the workers themselves, which torchrun starts in sessions of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import commands
from .control import ShellProcessControl
from .errors import TargetError
from .model import SshTarget, VSphereTarget
from .placement import Placement

if TYPE_CHECKING:
    from .api import TargetContext


class TorchrunProcess(ShellProcessControl):
    """One node's torchrun: SIGTERM reaches the workers through torchrun; a kill reaches them directly."""

    def signal(self, name: str) -> None:
        if name != "KILL":
            super().signal(name)
            return
        self._run(commands.kill_with_children(self.pid))
        if self.is_alive():
            raise TargetError(f"could not kill process {self.pid}", "end it on the machine itself")


class NodesControl:
    """Liveness and signals for every node of a multi-node run: alive while any node's torchrun is."""

    def __init__(self, nodes: list[tuple[str, TorchrunProcess]]) -> None:
        self.nodes = nodes

    def is_alive(self) -> bool:
        unreachable: TargetError | None = None
        for _name, control in self.nodes:
            try:
                if control.is_alive():
                    return True
            except TargetError as exc:
                unreachable = exc
        if unreachable is not None:
            raise unreachable  # none answered alive, and one could not be asked: not known to be gone
        return False

    def signal(self, name: str) -> None:
        failures = []
        for node, control in self.nodes:
            try:
                if control.is_alive():
                    control.signal(name)
            except TargetError as exc:
                failures.append(f"{node}: {exc.message}")
        if failures:
            raise TargetError("; ".join(failures), "stop the remaining processes on those machines")

    def close(self) -> None:
        """Close every node's kept shell."""
        for _name, control in self.nodes:
            control.close()


def nodes_control(placement: Placement, ctx: TargetContext) -> NodesControl:
    """The control of every node of ``placement`` over SSH (the targets as saved in ``ctx``)."""
    from .ssh import SshShell

    controls = []
    for node in placement.nodes:
        target = ctx.settings.target(node.target)
        if isinstance(target, VSphereTarget):
            ssh = target.ssh_target(node.host)
        elif isinstance(target, SshTarget):
            ssh = target
        else:
            raise TargetError(f"{node.target} is not an SSH or VM target any more", "stop the run with the STOP file")
        controls.append((node.target, TorchrunProcess(lambda ssh=ssh: SshShell(ssh, ctx.known_hosts), node.pid)))
    return NodesControl(controls)
