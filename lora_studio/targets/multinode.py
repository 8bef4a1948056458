"""One run over several targets: the same torchrun on every node, one c10d rendezvous, one run folder.

Each node runs ``python -m torch.distributed.run --nnodes N --nproc-per-node G --rdzv-backend c10d
--rdzv-endpoint HOST:PORT --rdzv-id RUN --max-restarts K -m trainer train --config X``, HOST being
the first node's address as the app reaches it (that node hosts the rendezvous store). torchrun
sets RANK and WORLD_SIZE; the trainer's rank 0 alone writes the run folder, so the folder on the
share reads like any other run's. When a worker dies, torchrun restarts the workers of every
node (up to K times) and they resume from the last complete checkpoint in the same folder.

Before the start, every node passes the one-target preflight (run folder visible, trainer,
paths, config), the nodes agree (one view of the paths, one trainer version, GPUs on all or on
none) and every node reaches the rendezvous port (:mod:`.rendezvous`): a network that would make
torchrun hang fails here, naming the host and the port. ``run.json`` lists every node
(:mod:`.placement`); stop and liveness reach all of them (:mod:`.node_control`).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lora_studio import __version__ as APP_VERSION

from . import commands
from .api import LaunchOutcome, TargetContext, open_shell
from .errors import TargetError, UntrustedCertificate, UntrustedHostKey
from .launch import MappedJob, map_job, start_with_shell, target_python, train_job
from .model import SshTarget, Target, VSphereTarget
from .placement import Node, Placement
from .prepare import PreparedRun, load_for_launch, map_config, prepare_run
from .preflight import ERROR, OK, SKIPPED, WARNING, Check, PreflightReport, run_preflight
from .rendezvous import NodeShell, check_interface, check_rendezvous, endpoint_text
from .runinfo import RunInfo, start_moment, write_run_info
from .runs import active_runs_on

DEFAULT_MAX_RESTARTS = 3


@dataclass(frozen=True)
class NodesOptions:
    """How a multi-node run is started (launch options, not config options: the trainer never sees them)."""

    max_restarts: int = DEFAULT_MAX_RESTARTS   # torchrun's restarts of the workers after a failure
    rdzv_port: int = 0                         # the rendezvous port on the first node; 0: any free one
    nproc_per_node: int = 0                    # processes per node; 0: each node's GPUs (1 without one)


def node_log(index: int) -> str:
    """The run folder's file for node ``index``'s output (the first node's is the run's train.log)."""
    return "train.log" if index == 0 else f"train.node{index + 1}.log"


# torchrun's agents share one store server with the workers for the whole job by default, so the
# keys of a round survive into the next: after a restart the node whose workers come up first read
# the dead workers' gloo addresses of the round before, fail to connect, and use up the restarts.
# A store of the round's own (torch's opt-out of the sharing) leaves nothing stale to read.
ROUND_STORE = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}


def node_env(target: Target) -> dict[str, str]:
    """The environment of torchrun on a node: a store per round, and the network interface for NCCL and
    gloo when the target names one."""
    interface = target.network_interface.strip()
    return {**ROUND_STORE, **({"NCCL_SOCKET_IFNAME": interface, "GLOO_SOCKET_IFNAME": interface} if interface else {})}


def torchrun_argv(target: Target, mapped: MappedJob, *, nnodes: int, nproc: int, endpoint: str, rdzv_id: str,
                  max_restarts: int, local_addr: str, is_host: bool) -> list[str]:
    """The torchrun command of one node, with ``target``'s interpreter (no ``torchrun`` on PATH needed)."""
    python = commands.python_argv(target_python(target))[:-2]  # the interpreter's words, without "-m trainer"
    return [*python, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", rdzv_id,
            # The first node hosts the store; torchrun's own guess compares host names, which fails for
            # an address of a second network card. --local-addr is where the others reach this node.
            "--rdzv-conf", f"is_host={1 if is_host else 0}", "--max-restarts", str(int(max_restarts)),
            "--local-addr", local_addr, "-m", "trainer", *mapped.args]


def target_problems(targets: list[Target]) -> list[tuple[str, str]]:
    """Why these targets cannot be the nodes of one run: (message, hint) pairs."""
    problems = []
    if not targets:
        problems.append(("no targets are chosen", "choose the targets the run spans"))
    names = [t.name for t in targets]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append((f"{name} is chosen twice", "each target is one node: choose it once"))
    for target in targets:
        if isinstance(target, VSphereTarget) and target.launch != "ssh":
            problems.append((f"{target.name} starts the trainer through Guest Operations",
                             "a multi-node run needs a network between the VMs: set its launch to SSH"))
        elif not isinstance(target, (SshTarget, VSphereTarget)):
            problems.append((f"{target.name} cannot be a node of a multi-node run",
                             "use SSH hosts or vSphere VMs (this computer can join as an SSH target of itself)"))
    return problems


def _prefixed(name: str, checks: list[Check]) -> list[Check]:
    return [Check(c.name, c.status, f"{name}: {c.message}", c.hint) for c in checks]


def _same_view(targets: list[Target], prepared: PreparedRun, report: PreflightReport) -> bool:
    """One config serves every node: each must see the paths where the first does."""
    values = load_for_launch(prepared.source_config)
    ok = True
    for target in targets[1:]:
        try:
            mapped = map_config(values, target)
        except TargetError as exc:
            report.add("paths", ERROR, f"{target.name}: {exc.message}", exc.hint)
            ok = False
            continue
        differ = sorted(k for k in mapped if mapped[k] != prepared.values.get(k))
        if differ:
            ok = False
            report.add("paths", ERROR, f"{target.name} sees {differ[0]} at {mapped[differ[0]]}, {targets[0].name} at "
                       f"{prepared.values.get(differ[0])}",
                       "the nodes read one config: give them the same path mapping (the share mounted at one path)")
    return ok


def _processes(nodes: list[NodeShell], reports: list[PreflightReport], prepared: PreparedRun, wanted: int,
               report: PreflightReport) -> int | None:
    """Processes per node: ``wanted``, else the GPUs every node has (1 on CPUs); None when they disagree."""
    versions = {str((r.doctor or {}).get("trainer_version")) for r in reports}
    if len(versions) > 1:
        found = ", ".join(f"{n.target.name} {(r.doctor or {}).get('trainer_version')}" for n, r in zip(nodes, reports))
        report.add("trainer", ERROR, f"the nodes have different trainer versions ({found})",
                   "install the same trainer on every node (the wheel on the shared storage)")
        return None
    gpus = [len((r.doctor or {}).get("gpus") or []) for r in reports]
    on_cpu = str(prepared.values.get("device") or "auto") == "cpu"
    if wanted > 0:
        short = [n.target.name for n, count in zip(nodes, gpus) if not on_cpu and 0 < count < wanted]
        if short:
            report.add("processes", ERROR, f"{', '.join(short)} has fewer than {wanted} GPUs",
                       "use fewer processes per node, or leave that node out")
            return None
        return wanted
    if on_cpu or not any(gpus):
        return 1
    if not all(gpus):
        bare = ", ".join(n.target.name for n, count in zip(nodes, gpus) if not count)
        report.add("gpu", ERROR, f"{bare} has no GPU but the other nodes have: one run trains on GPUs everywhere "
                   "or on CPUs everywhere", "leave the nodes without a GPU out, or set device: cpu")
        return None
    if len(set(gpus)) > 1:
        report.add("processes", WARNING, f"the nodes have {', '.join(map(str, gpus))} GPUs: the run uses "
                   f"{min(gpus)} on each")
    return min(gpus)


@contextlib.contextmanager
def _open_nodes(targets: list[Target], ctx: TargetContext, report: PreflightReport) -> Iterator[list[NodeShell] | None]:
    """A shell on every node (logins in parallel), closed on exit; None (and the reasons in ``report``) if any fails."""
    with contextlib.ExitStack() as stack:
        def enter(target: Target):
            manager = open_shell(target, ctx)
            try:
                return manager, manager.__enter__()
            except Exception as exc:  # noqa: BLE001 - reported below, with the node's name
                return None, exc
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            opened = list(pool.map(enter, targets))
        nodes: list[NodeShell] = []
        for target, (manager, shell) in zip(targets, opened):
            if manager is None:
                if isinstance(shell, (UntrustedHostKey, UntrustedCertificate)) and report.trust is None:
                    report.trust = shell  # the user may pin it and start again
                message, hint = (shell.message, shell.hint) if isinstance(shell, TargetError) else (str(shell), "")
                report.add("reachable", ERROR, f"{target.name}: {message}", hint)
                continue
            stack.push(manager.__exit__)
            nodes.append(NodeShell(target, shell))
        yield nodes if len(nodes) == len(targets) else None


def _check(nodes: list[NodeShell], prepared: PreparedRun, options: NodesOptions,
           report: PreflightReport) -> tuple[int, int] | None:
    """Every node's preflight, then the nodes together; (processes per node, rendezvous port) when all pass."""
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        reports = list(pool.map(lambda n: run_preflight(n.shell, prepared, n.target), nodes))
    for node, node_report in zip(nodes, reports):
        report.checks += _prefixed(node.target.name, node_report.checks)
    report.doctor = reports[0].doctor
    if not report.ok:
        report.add("rendezvous", SKIPPED, "the network between the nodes is checked once each node passes")
        return None
    nproc = _processes(nodes, reports, prepared, options.nproc_per_node, report)
    interfaces = all([check_interface(node, report) for node in nodes])
    if nproc is None or not interfaces:
        return None
    port = check_rendezvous(nodes, options.rdzv_port, report)
    return (nproc, port) if port is not None else None


def _rdzv_id(run_dir: Path) -> str:
    """A rendezvous id of this start: the run's name and a random part (a restart never joins an old round)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", run_dir.name).strip("-")[:40] or "run"
    return f"{name}-{secrets.token_hex(4)}"


def _start(nodes: list[NodeShell], prepared: PreparedRun, nproc: int, port: int, options: NodesOptions) -> RunInfo:
    """torchrun on every node, the rendezvous host first; run.json with the placement. Raises TargetError."""
    first = nodes[0]
    mapped = map_job(train_job(prepared), first.target)
    endpoint, rdzv_id = endpoint_text(first.shell.host, port), _rdzv_id(Path(prepared.local_run_dir))
    moment = start_moment(prepared.local_run_dir)
    placed: list[tuple[NodeShell, Node, list[str]]] = []
    try:
        for index, node in enumerate(nodes):
            argv = torchrun_argv(node.target, mapped, nnodes=len(nodes), nproc=nproc, endpoint=endpoint,
                                 rdzv_id=rdzv_id, max_restarts=options.max_restarts, local_addr=node.shell.host,
                                 is_host=index == 0)
            pid = start_with_shell(node.shell, node.target, mapped, argv, node_log(index), node_env(node.target))
            placed.append((node, Node(node.target.name, node.shell.host, pid, nproc, node_log(index),
                                      node.target.network_interface.strip(), getattr(node.target, "vm", "")), argv))
    except TargetError as exc:
        for node, started, _ in placed:  # the others would wait for the missing node until the rendezvous times out
            node.shell.run_script(commands.kill_with_children(started.pid), timeout=30)
        raise TargetError(f"{exc.message} (the nodes already started were stopped)", exc.hint) from None
    placement = Placement(tuple(node for _, node, _ in placed), endpoint, rdzv_id, options.max_restarts)
    target = first.target
    info = RunInfo(target_kind=target.kind, target_name=target.name, host=first.shell.host, pid=placed[0][1].pid,
                   command=placed[0][2], started_at=moment.at, app_version=APP_VERSION, launch="ssh",
                   run_dir=mapped.run_dir, config=mapped.config, vm=getattr(target, "vm", ""),
                   vcenter=getattr(target, "vcenter", ""), extra={"kind": "train", "placement": placement.to_json()},
                   heartbeat_before=moment.heartbeat_before)
    write_run_info(prepared.local_run_dir, info)
    return info


def _checked_launch(targets: list[Target], config_path: Path | str, ctx: TargetContext, workspace: Path | str | None,
                    allow_busy: bool, options: NodesOptions, start: bool) -> LaunchOutcome:
    report = PreflightReport(" + ".join(t.name for t in targets))
    for message, hint in target_problems(targets):
        report.add("targets", ERROR, message, hint)
    if not report.ok:
        return LaunchOutcome(report)
    try:
        prepared = prepare_run(config_path, targets[0])
    except TargetError as exc:
        report.add("config", ERROR, exc.message, exc.hint)
        return LaunchOutcome(report)
    outcome = LaunchOutcome(report, prepared=prepared)
    if workspace is not None and not allow_busy:
        for target in targets:
            busy = active_runs_on(workspace, target.name)
            if len(busy) >= target.max_jobs:
                report.add("busy", ERROR, f"{target.name} already runs {', '.join(r.name for r in busy)}",
                           "wait for it to finish, stop it, or allow more jobs on this target")
    if not report.ok or not _same_view(targets, prepared, report):
        return outcome
    with _open_nodes(targets, ctx, report) as nodes:
        if nodes is None:
            return outcome
        chosen = _check(nodes, prepared, options, report)
        if chosen is None or not start:
            return outcome
        try:
            outcome.info = _start(nodes, prepared, *chosen, options)
        except TargetError as exc:
            report.add("launch", ERROR, exc.message, exc.hint)
    if outcome.info is not None:
        report.add("launch", OK, f"torchrun started on {len(targets)} nodes, rendezvous at "
                   f"{outcome.info.extra['placement']['endpoint']}")
    return outcome


def preflight_nodes(targets: list[Target], config_path: Path | str, ctx: TargetContext, *,
                    workspace: Path | str | None = None, allow_busy: bool = False,
                    options: NodesOptions = NodesOptions()) -> LaunchOutcome:
    """Every check of :func:`launch_nodes`, without the start (``outcome.started`` stays False)."""
    return _checked_launch(targets, config_path, ctx, workspace, allow_busy, options, start=False)


def launch_nodes(targets: list[Target], config_path: Path | str, ctx: TargetContext, *,
                 workspace: Path | str | None = None, allow_busy: bool = False,
                 options: NodesOptions = NodesOptions()) -> LaunchOutcome:
    """Preflight every node and the network between them, then start torchrun on each; returns once started.

    ``targets[0]`` hosts the rendezvous. The report holds every node's checks, each message
    starting with the node's name. Blocking: call it from a worker.
    """
    return _checked_launch(targets, config_path, ctx, workspace, allow_busy, options, start=True)


def relaunch_nodes(placement: Placement, config_path: Path | str, ctx: TargetContext, *,
                   workspace: Path | str | None = None) -> LaunchOutcome:
    """Start a run over several nodes again on all of ``placement``'s nodes, with the processes per node
    and the restarts it had, so it goes on with the same ranks and batches (Resume, automatic recovery).
    A node no longer set up on this desk raises TargetConfigError naming it."""
    counts = {node.processes for node in placement.nodes}
    options = NodesOptions(max_restarts=placement.max_restarts, nproc_per_node=counts.pop() if len(counts) == 1 else 0)
    return launch_nodes([ctx.settings.target(name) for name in placement.targets], config_path, ctx,
                        workspace=workspace, options=options)
