"""What the Targets panel runs in worker threads: plain data in, plain data out, no Qt.

The app's :class:`~lora_studio.workers.tasks.TaskRunner` turns an exception into its text,
but the panel must tell "unknown host key, ask the user" from "refused": :func:`capture`
keeps the :class:`TargetError` itself in the result instead.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..fleet import GpuNote, note_gpus
from ..fleet.fit import gpus_from_doctor
from ..targets import (PreflightReport, Target, TargetContext, TargetError, UntrustedCertificate, UntrustedHostKey,
                       preflight)
from ..targets.api import open_shell
from ..targets.model import LocalTarget, RayTarget, VSphereTarget
from ..targets.ray_preflight import ray_checks
from ..targets.preflight import ERROR, SKIPPED, check_shared_files, check_trainer
from ..targets.prepare import PreparedRun
from .vsphere_jobs import protection

CHECK_FOLDER = ".lora-studio-check"
# Both refusals (errors.HostKeyChanged, errors.CertificateChanged) say this; the preflight keeps only
# the text of the error, so this is how the panel tells a refusal from any other failed login.
CHANGED_MARK = "has CHANGED"


@dataclass
class Captured:
    """A worker's result: ``value``, or the :class:`TargetError` it raised (kept typed)."""

    value: Any = None
    error: TargetError | None = None


def capture(fn: Callable[..., Any], *args: Any) -> Captured:
    """Run ``fn(*args)``; a TargetError becomes ``Captured.error`` (anything else still raises)."""
    try:
        return Captured(fn(*args))
    except TargetError as exc:
        return Captured(error=exc)


def check_folder(target: Target, workspace: Path | None) -> Path | None:
    """A folder of the check's own that the target should also see: in the workspace, else under its
    first mapping (a fresh temporary one on this computer); None when there is no way to know."""
    if workspace is not None:
        return Path(workspace) / CHECK_FOLDER
    if target.mappings:
        return Path(target.mappings[0].local) / CHECK_FOLDER
    if isinstance(target, LocalTarget):
        return Path(tempfile.mkdtemp(prefix="lora-studio-check-"))
    return None


def connectivity_check(target: Target, ctx: TargetContext, workspace: Path | None) -> PreflightReport:
    """Without a config: can we log in, does the target see a marker file written here, is the trainer there?"""
    report = PreflightReport(target.name)
    folder = check_folder(target, workspace)
    target_dir, mapping_error = None, None
    if folder is not None:
        try:
            target_dir = target.mapper().to_target(str(folder), what="the workspace")
            folder.mkdir(parents=True, exist_ok=True)
        except (TargetError, OSError) as exc:
            mapping_error = exc
    prepared = PreparedRun(Path(), folder or Path("."), target_dir or ".", "", {}, {})
    try:
        with open_shell(target, ctx, prepared) as shell:
            report.add("reachable", "ok", f"connected to {shell.host}")
            shared = False
            if isinstance(mapping_error, TargetError):
                report.add("shared_files", ERROR, mapping_error.message, mapping_error.hint)
            elif mapping_error is not None:
                report.add("shared_files", ERROR, f"cannot write a check file in {folder}: {mapping_error}",
                           "open a workspace you can write to")
            elif target_dir is None:
                report.add("shared_files", SKIPPED, "not checked: no workspace is open and the target has no path mapping",
                           "open a workspace, or add a path mapping")
            else:
                shared = check_shared_files(shell, prepared, report)
            # doctor reports free disk at --path; a folder the target cannot see would only confuse it.
            check_trainer(shell, target, prepared if shared else PreparedRun(Path(), Path("."), ".", "", {}, {}), report)
    except (UntrustedHostKey, UntrustedCertificate) as exc:
        report.trust = exc
        report.add("reachable", ERROR, exc.message, exc.hint)
    except TargetError as exc:  # includes HostKeyChanged / CertificateChanged: refused, with their text
        report.add("reachable", ERROR, exc.message, exc.hint)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)  # a folder of the check's own (see check_folder)
    return report


def check_target(target: Target, ctx: TargetContext, config: Path | None, workspace: Path | None,
                 notes_path: Path | None = None) -> PreflightReport:
    """The full preflight for ``config`` on ``target``, or the connectivity check when there is no config.

    A vSphere VM that answered also gets the protection warnings: disks that tolerate no
    failure, a cluster with HA off (what ``python -m lora_studio.vsphere policies --check`` says).
    The GPUs its trainer reported are noted in ``notes_path`` for the Fleet tab and the queue's fit check.
    """
    if config is None and isinstance(target, RayTarget):
        report = ray_checks(target)  # no shell there: what the cluster's Jobs API answers
    elif config is None:
        report = connectivity_check(target, ctx, workspace)
    else:
        _, report = preflight(target, config, ctx, workspace=workspace)
    reached = any(c.name == "reachable" and c.status != ERROR for c in report.checks)
    if isinstance(target, VSphereTarget) and reached:
        report.checks += protection(target, ctx)
    if notes_path is not None:
        note_gpus(notes_path, target.name, report.doctor)
    return report


@dataclass(frozen=True)
class GpuAnswer:
    """What one target said when asked for its GPUs: them (``gpus``, described), or why it could not tell."""

    target: str
    gpus: str | None
    problem: str = ""

    def line(self) -> str:
        """``gpu-01: 2 × NVIDIA L40S (45 GiB)`` or ``gpu-01: not known (why)``."""
        return f"{self.target}: {self.gpus if self.gpus is not None else f'not known ({self.problem})'}"


def check_gpus(targets: list[Target], ctx: TargetContext, workspace: Path | None, notes_path: Path) -> list[GpuAnswer]:
    """Check each of ``targets`` as Test / preflight does without a config, noting the GPUs in ``notes_path``."""
    answers = []
    for target in targets:
        report = check_target(target, ctx, None, workspace, notes_path)
        gpus = gpus_from_doctor(report.doctor)
        if gpus is not None:
            answers.append(GpuAnswer(target.name, GpuNote(gpus, 0.0).describe()))
            continue
        if report.trust is not None:  # trusting is a question for the user, asked by the Targets tab
            problem = ("it is not trusted yet: Test / preflight on the Targets tab shows its fingerprint and asks"
                       if isinstance(report.trust, UntrustedHostKey) else
                       "its vCenter's certificate is not trusted yet: Test / preflight on the Targets tab asks")
        else:
            problem = next((c.message for c in report.checks if c.status == ERROR),
                           "Ray places each run on a node of its own choosing" if isinstance(target, RayTarget)
                           else "its trainer did not say")
        answers.append(GpuAnswer(target.name, None, problem))
    return answers


def refusal(report: PreflightReport) -> str | None:
    """The message when the target's host key or certificate changed and the connection was refused."""
    for check in report.checks:
        if check.name == "reachable" and check.status == ERROR and CHANGED_MARK in check.message:
            return check.message
    return None
