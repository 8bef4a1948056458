"""Installer benchmark: build time, bundle and archive size, cold start of the frozen app.

Reports, in one run (targets from issue 8):
- build_s: ``build_installer.py`` wall time (PyInstaller's cache warm after the first build);
- bundle_mb: the one-folder bundle (target < 250), archive_mb: the ``.tar.gz``;
- start_s: process start to ``--self-test`` done (main window shown, parts checked, exit),
  an upper bound of the time to the window shown (target < 2); first run and median of 5.

Usage: python bench/bundle.py [--bundle DIR]  (reuse a built bundle); the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tree_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def start_seconds(executable: Path, home: Path) -> float:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LORA_STUDIO_HOME": str(home)}
    started = time.perf_counter()
    subprocess.run([str(executable), "--self-test"], env=env, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="an already built bundle folder (skips the build)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        result: dict[str, float | str] = {}
        bundle = args.bundle
        if bundle is None:
            started = time.perf_counter()
            subprocess.run([sys.executable, str(ROOT / "build_installer.py"), "--output", str(out)], check=True,
                           capture_output=True)
            result["build_s"] = round(time.perf_counter() - started, 1)
            bundle = out / "bundle" / "lora-studio"
            result["archive_mb"] = round(next(out.glob("*.tar.gz")).stat().st_size / 2**20, 1)
        result["bundle_mb"] = round(tree_mb(bundle), 1)
        times = [start_seconds(bundle / "lora-studio", out / f"home{i}") for i in range(6)]
        result["start_first_s"] = round(times[0], 2)
        result["start_median_s"] = round(statistics.median(times[1:]), 2)
        for key, value in result.items():
            print(f"{key:>16}: {value}")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
