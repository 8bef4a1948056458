"""The trainer package for the GPU VMs: the project wheel (the trainer lives in it) and the pinned
requirements, closed over the ``trainer`` extra, with an INSTALL.txt."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from .common import ROOT, Built, constraint_pins

TRAINER_EXTRA_BASE = ("pillow", "pyyaml", "numpy")  # the trainer's needs from the base dependencies


def trainer_requirements(version: str) -> str:
    """Pinned requirements of the trainer: the ``trainer`` extra and its dependencies, closed over.

    Versions come from constraints.txt (what the tests ran with), else from this environment.
    """
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = constraint_pins()
    project = metadata.metadata("lora-studio")
    wanted: list[Requirement] = [Requirement(r) for r in project.get_all("Requires-Dist") or []]
    roots = [r for r in wanted if r.marker and "trainer" in str(r.marker)]
    roots += [r for r in wanted if canonicalize_name(r.name) in TRAINER_EXTRA_BASE]
    env = {"extra": ""}
    seen: dict[str, str] = {}
    queue = [r for r in roots]
    while queue:
        req = queue.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            seen[name] = pins.get(name, "")
            continue
        seen[name] = pins.get(name, dist.version)
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is None or child.marker.evaluate(env):
                queue.append(child)
    lines = [
        f"# LoRA Studio trainer {version}: pinned requirements for the GPU VMs (Linux, Python 3.11+).",
        "# Made by build_installer.py --trainer from constraints.txt (the versions the tests ran with).",
        "#",
        "# torch: the PyPI wheel for Linux x86_64 is the CUDA 12 build, so on a GPU VM",
        "#   pip install -r requirements-trainer.txt",
        "# installs CUDA torch. For another CUDA version add, for example,",
        "#   --extra-index-url https://download.pytorch.org/whl/cu121",
        "# (same torch version). The CI machines use the CPU build of the same version.",
        "# Then: pip install --no-deps lora_studio-*.whl  (the trainer package; `lora-train doctor`).",
    ]
    # Drop the torch CUDA runtime pieces (nvidia-*, triton): torch's own pins choose them per platform.
    for name in sorted(seen):
        if name.startswith("nvidia-") or name == "triton":
            continue
        lines.append(f"{name}=={seen[name]}" if seen[name] else name)
    return "\n".join(lines) + "\n"


def trainer_package(out: Path, version: str) -> list[Built]:
    """The project wheel (the trainer lives in it) plus requirements-trainer.txt."""
    folder = out / "trainer"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(folder), str(ROOT)], check=True)
    wheels = sorted(folder.glob("*.whl"))
    requirements = folder / "requirements-trainer.txt"
    requirements.write_text(trainer_requirements(version), encoding="utf-8")
    (folder / "INSTALL.txt").write_text(textwrap.dedent(f"""\
        LoRA Studio trainer {version} for the GPU VMs

        Copy this folder to the shared datastore (for example /data/lora/_install) and on each VM:

            python3 -m venv /opt/lora-trainer
            /opt/lora-trainer/bin/pip install -r requirements-trainer.txt
            /opt/lora-trainer/bin/pip install --no-deps {wheels[0].name if wheels else 'lora_studio-*.whl'}
            /opt/lora-trainer/bin/python -m trainer doctor

        The VM needs no internet at run time: models and tokenizers are read from the datastore.
        """), encoding="utf-8")
    return [Built("trainer wheel", w) for w in wheels] + [Built("trainer requirements", requirements)]
