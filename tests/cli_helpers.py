"""Helpers shared by the tests that run the real trainer CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def trainer_cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m trainer ARGS` and capture its output."""
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def torchrun_trainer(config: Path, port: int, processes: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=N -m trainer train --config F` (gloo on the CPU), one thread per process."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                           f"--master_port={port}", "-m", "trainer", "train", "--config", str(config)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
