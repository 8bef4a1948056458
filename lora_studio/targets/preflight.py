"""Preflight: everything that must hold on a target before a launch, each failure with what to do.

Checks run through a :class:`Shell`, so the same code covers this machine, SSH hosts and
Guest Operations. The order matters: a later check is skipped (reported as such) when an
earlier one makes it meaningless (no trainer: no validate).
"""

from __future__ import annotations

import json
import posixpath
import secrets as _random
from dataclasses import dataclass, field
from pathlib import Path

from trainer import __version__ as APP_TRAINER_VERSION
from trainer.wording import plural

from . import commands
from .launch import target_python
from .model import Target
from .prepare import PreparedRun
from .runs import active_runs_on
from .shell import Shell

OK, WARNING, ERROR, SKIPPED = "ok", "warning", "error", "skipped"
MIN_FREE_GB = 2.0
MARKER_PREFIX = ".lora-studio-check-"


@dataclass(frozen=True)
class Check:
    """One preflight check: ``status`` is ok, warning, error or skipped."""

    name: str
    status: str
    message: str
    hint: str = ""


@dataclass
class PreflightReport:
    """All checks of one preflight, plus what the target said about itself."""

    target: str
    checks: list[Check] = field(default_factory=list)
    doctor: dict | None = None
    trust: Exception | None = None  # UntrustedHostKey / UntrustedCertificate for the user to confirm

    @property
    def ok(self) -> bool:
        """True when nothing blocks the launch (warnings allowed)."""
        return not any(c.status == ERROR for c in self.checks)

    @property
    def trainer_missing(self) -> bool:
        """True when the trainer is not installed there (the UI offers the wheel install)."""
        return any(c.name == "trainer" and c.status == ERROR and "not installed" in c.message for c in self.checks)

    def add(self, name: str, status: str, message: str, hint: str = "") -> Check:
        check = Check(name, status, message, hint)
        self.checks.append(check)
        return check

    def summary(self) -> str:
        """One line per check, for logs and tests."""
        return "\n".join(f"{c.status:7} {c.name}: {c.message}" + (f" ({c.hint})" if c.hint else "") for c in self.checks)


def versions_compatible(app: str, remote: str) -> bool:
    """Same major and minor version (0.x releases may change the run folder contract)."""
    def key(v: str) -> tuple[str, ...]:
        return tuple(v.split(".")[:2])
    return key(app) == key(remote)


def _json_from(text: str) -> dict | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(text[start:])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def check_free_slot(target: Target, workspace: Path | str, report: PreflightReport) -> bool:
    """Whether ``target`` runs fewer than its ``max_jobs`` runs of ``workspace``; a ``busy`` error if not."""
    busy = active_runs_on(workspace, target.name)
    if len(busy) < target.max_jobs:
        return True
    names = ", ".join(r.name for r in busy)
    report.add("busy", ERROR, f"{target.name} already runs {names}",
               "wait for it to finish, stop it, or allow more jobs on this target")
    return False


def check_shared_files(shell: Shell, prepared: PreparedRun, report: PreflightReport) -> bool:
    """Write a marker into the run folder here and read it on the target: proves the mapping."""
    token = _random.token_hex(8)
    marker = Path(prepared.local_run_dir) / f"{MARKER_PREFIX}{token}"
    marker.write_text(token, encoding="utf-8")
    try:
        result = shell.run_script(f"cat {commands.join([posixpath.join(prepared.target_run_dir, marker.name)])}", 30)
    finally:
        marker.unlink(missing_ok=True)
    if result.ok and result.stdout.strip() == token:
        report.add("shared_files", OK, f"{shell.host} sees the run folder at {prepared.target_run_dir}")
        return True
    report.add("shared_files", ERROR,
               f"{shell.host} does not see the files written here: {prepared.local_run_dir} is not "
               f"{prepared.target_run_dir} there",
               "fix the target's path mapping (desktop folder -> target folder) or mount the share on the target")
    return False


def check_trainer(shell: Shell, target: Target, prepared: PreparedRun, report: PreflightReport) -> bool:
    """``python -m trainer doctor --json``: installed, compatible version, GPU, packages, disk."""
    argv = commands.python_argv(target_python(target), "doctor", "--json", "--path", prepared.target_run_dir)
    result = shell.run(argv, timeout=120)
    doctor = _json_from(result.stdout) if result.ok else None
    if doctor is None:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        report.add("trainer", ERROR, f"the trainer is not installed on {shell.host} for {target_python(target)} ({detail[0]})",
                   "install it there (pip install the lora-studio wheel), or set the target's Python to the "
                   "interpreter of the venv that has it")
        return False
    report.doctor = doctor
    version = str(doctor.get("trainer_version", "?"))
    if not versions_compatible(APP_TRAINER_VERSION, version):
        report.add("trainer", ERROR, f"{shell.host} has trainer {version}; this app needs {APP_TRAINER_VERSION}",
                   "install the matching version there (the wheel on the shared storage)")
        return False
    report.add("trainer", OK, f"trainer {version}, Python {doctor.get('python')}, torch {doctor.get('torch')}")
    blocking = [p for p in doctor.get("problems", []) if p.get("severity", "error") == "error"]
    for problem in blocking:
        report.add("packages", ERROR, problem.get("message", "?"), problem.get("hint", ""))
    gpus = doctor.get("gpus") or []
    if gpus:
        names = ", ".join(f"{g.get('name')} ({g.get('free_gb')} GiB free)" for g in gpus)
        report.add("gpu", OK, f"{plural(len(gpus), 'GPU')}: {names}")
    else:
        report.add("gpu", WARNING, f"no CUDA GPU is visible on {shell.host}: training would run on the CPU (very slow)",
                   "check the GPU driver there (nvidia-smi), the VM's PCI passthrough/vGPU, and that torch is a CUDA build")
    free = (doctor.get("disk") or {}).get("free_gb")
    if isinstance(free, (int, float)):
        if free < MIN_FREE_GB:
            report.add("disk", ERROR, f"only {free:.1f} GiB free at {prepared.target_run_dir}",
                       f"free at least {MIN_FREE_GB:.0f} GiB for checkpoints, or choose another output folder")
        else:
            report.add("disk", OK, f"{free:.1f} GiB free for checkpoints")
    return not blocking


def check_paths(shell: Shell, prepared: PreparedRun, report: PreflightReport) -> bool:
    """Base model and data visible at the mapped paths; output folder writable."""
    ok = True
    wanted = [(name, prepared.values.get(name)) for name in ("base_model", "train_data_dir", "metadata_path",
                                                             "dataset_path")]  # dataset_path: language models
    for name, path in wanted:
        if not path:
            continue
        result = shell.run_script(f"test -e {commands.join([path])} && test -r {commands.join([path])}", 30)
        if result.ok:
            report.add(name, OK, f"{path} is visible")
        else:
            ok = False
            local = prepared.local_paths.get(name, "?")
            report.add(name, ERROR, f"{name} {path} is not readable on {shell.host} (here it is {local})",
                       "check that the share is mounted there and the path mapping covers this folder")
    out = prepared.target_run_dir
    probe = posixpath.join(out, f"{MARKER_PREFIX}write")
    result = shell.run_script(f"mkdir -p {commands.join([out])} && : > {commands.join([probe])} && rm -f {commands.join([probe])}", 30)
    if result.ok:
        report.add("output_dir", OK, f"{out} is writable")
    else:
        ok = False
        report.add("output_dir", ERROR, f"cannot write to {out} on {shell.host}: {result.stderr.strip()[-200:]}",
                   "give the target's user write access to the output folder, or choose another one")
    return ok


def check_config(shell: Shell, target: Target, prepared: PreparedRun, report: PreflightReport) -> bool:
    """``python -m trainer validate --json`` on the mapped config, on the target."""
    argv = commands.python_argv(target_python(target), "validate", "--config", prepared.target_config, "--json", "--no-images")
    result = shell.run(argv, timeout=300)
    data = _json_from(result.stdout)
    if data is None:
        report.add("config", ERROR, f"validate failed on {shell.host}: {(result.stderr or result.stdout).strip()[-300:]}",
                   "run the same command there to see why")
        return False
    problems = data.get("problems", [])
    for problem in problems:
        status = ERROR if problem.get("severity", "error") == "error" else WARNING
        option = f"{problem['option']}: " if problem.get("option") else ""
        report.add("config", status, f"{option}{problem.get('message')}", problem.get("hint", ""))
    if data.get("ok"):
        held = f"{data['examples']} examples" if "examples" in data else f"{data.get('images', '?')} images"
        report.add("config", OK, f"config valid ({held})")  # examples: a language model's text dataset
        return True
    return False


def run_preflight(shell: Shell, prepared: PreparedRun, target: Target) -> PreflightReport:
    """All checks for launching ``prepared`` on ``target`` through an open ``shell``."""
    report = PreflightReport(target.name)
    report.add("reachable", OK, f"connected to {shell.host}")
    shared = check_shared_files(shell, prepared, report)
    trainer_ok = check_trainer(shell, target, prepared, report)
    paths_ok = check_paths(shell, prepared, report)
    if trainer_ok and paths_ok and shared:
        check_config(shell, target, prepared, report)
    else:
        report.add("config", SKIPPED, "not validated: fix the problems above first")
    return report
