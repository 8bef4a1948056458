"""The preflight of a Ray target: the cluster answers, and one of its nodes has what a run asks for.

A Ray cluster has no shell to run the other targets' checks through: the node that runs the
trainer is Ray's choice, made when resources are free. So the checks here are the ones the
Jobs API can answer at once, each with a short timeout; what only that node can tell (the
trainer installed, the share mounted, the config valid there) ends the run with its reason
in ``train.log`` and the Ray job's log instead.
"""

from __future__ import annotations

from trainer.wording import plural

from .errors import TargetError
from .model import RayTarget
from .preflight import ERROR, OK, SKIPPED, WARNING, PreflightReport
from .ray_client import RayJobsClient, RayNode

START_TIMEOUT_NOTE = "Ray fails a job that waits longer than RAY_JOB_START_TIMEOUT_SECONDS (15 min unless the head sets more)"


def _amount(value: float, what: str) -> str:
    count = f"{value:g}"
    return f"{count} {what}" + ("" if value == 1 else "s")


def check_resources(nodes: list[RayNode], target: RayTarget, address: str, report: PreflightReport) -> bool:
    """Whether some node has the GPUs and CPUs one run asks for (in total: Ray queues while they are busy)."""
    need = f"{_amount(target.num_gpus, 'GPU')} and {_amount(target.num_cpus, 'CPU')}"
    if not nodes:
        report.add("resources", ERROR, f"the Ray cluster at {address} has no live node",
                   "start the cluster's nodes (`ray start --address=...` on each), then check again")
        return False
    fits = [n for n in nodes if n.gpus >= target.num_gpus and n.cpus >= target.num_cpus]
    if not fits:
        gpus, cpus = max(n.gpus for n in nodes), max(n.cpus for n in nodes)
        report.add("resources", ERROR,
                   f"no node of the Ray cluster at {address} has {need} for a run "
                   f"(its {plural(len(nodes), 'node has', 'nodes have')} at "
                   f"most {_amount(gpus, 'GPU')} and {_amount(cpus, 'CPU')}); Ray would keep the run waiting",
                   "lower the GPUs or CPUs per run in the target's settings, or add a node that has them to the cluster")
        return False
    has = "has" if len(fits) == 1 else "have"
    report.add("resources", OK, f"{len(fits)} of {plural(len(nodes), 'node')} {has} {need}: Ray starts the run on one "
               f"of them once they are free, and queues it until then ({START_TIMEOUT_NOTE})")
    if target.num_gpus == 0:
        report.add("gpu", WARNING, "the run asks Ray for no GPU: it would train on the CPU (very slow)",
                   "set the GPUs per run in the target's settings (1 for one GPU)")
    return True


def ray_checks(target: RayTarget) -> PreflightReport:
    """Reachable (the Jobs API answers, within a few seconds) and resources, for ``target``."""
    report = PreflightReport(target.name)
    client = RayJobsClient(target.address)
    try:
        version = client.version()
    except TargetError as exc:
        report.add("reachable", ERROR, exc.message, exc.hint)
        report.add("resources", SKIPPED, "not checked: the cluster does not answer")
        return report
    report.add("reachable", OK, f"Ray {version} answers at {client.address}")
    try:
        nodes = client.nodes()
    except TargetError as exc:
        report.add("resources", WARNING, f"the cluster's resources could not be read: {exc.message}",
                   "Ray still queues the run; check them with `ray status` on the head node")
    else:
        check_resources(nodes, target, client.address, report)
    report.add("trainer", SKIPPED, "checked on the node Ray starts the run on: the trainer, the shared folder and the "
               "config there; a problem ends the run with its reason in train.log and the Ray job's log")
    return report
