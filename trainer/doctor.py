"""`python -m trainer doctor`: what this machine offers for training (and what is missing)."""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from trainer import __version__

_PACKAGES = ("torch", "diffusers", "peft", "transformers", "safetensors", "accelerate", "tensorboard",
             "bitsandbytes", "prodigyopt")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(path: Path | None = None) -> dict[str, Any]:
    """Facts about this machine as JSON-ready data; never raises for a missing package."""
    report: dict[str, Any] = {
        "trainer_version": __version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "torch": None, "cuda": None, "gpus": [], "problems": [],
    }
    folder = path or Path.cwd()
    # The run folder may not exist yet (the preflight asks before it is made): the free
    # space that counts is that of the folder it will be made in.
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    report["disk"] = {"path": str(folder), "free_gb": round(usage.free / 2**30, 2), "total_gb": round(usage.total / 2**30, 2)}
    try:
        import torch
    except ImportError:
        report["problems"].append({"message": "torch is not installed", "hint": "pip install 'lora-studio[trainer]'"})
        return report
    report["torch"] = torch.__version__
    report["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            free, total = torch.cuda.mem_get_info(index)
            report["gpus"].append({"index": index, "name": props.name, "total_gb": round(total / 2**30, 2),
                                   "free_gb": round(free / 2**30, 2), "capability": f"{props.major}.{props.minor}",
                                   "bf16": torch.cuda.is_bf16_supported()})
    else:
        report["problems"].append({"message": "no CUDA GPU is visible: training would run on the CPU (very slow)",
                                   "hint": "check the GPU driver (nvidia-smi) and that torch is a CUDA build",
                                   "severity": "warning"})
    for name in ("diffusers", "peft", "transformers", "safetensors"):
        if report["packages"][name] is None:
            report["problems"].append({"message": f"{name} is not installed", "hint": "pip install 'lora-studio[trainer]'"})
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as lines for a terminal."""
    lines = [f"LoRA Studio trainer {report['trainer_version']} on {report['host']} ({report['platform']})",
             f"Python {report['python']} ({report['python_executable']})",
             f"torch {report['torch'] or 'not installed'}, CUDA {report['cuda'] or 'none'}"]
    for gpu in report["gpus"]:
        lines.append(f"GPU {gpu['index']}: {gpu['name']}, {gpu['free_gb']:.1f} of {gpu['total_gb']:.1f} GiB free, "
                     f"compute {gpu['capability']}{', bf16' if gpu['bf16'] else ''}")
    disk = report["disk"]
    lines.append(f"Disk {disk['path']}: {disk['free_gb']:.1f} GiB free of {disk['total_gb']:.1f} GiB")
    lines.append("Packages: " + ", ".join(f"{k} {v or '-'}" for k, v in report["packages"].items()))
    for problem in report["problems"]:
        lines.append(f"{problem.get('severity', 'error')}: {problem['message']} ({problem['hint']})")
    return "\n".join(lines)
