"""Fetch the wheels that bench/gpu_train.py needs on a lent GPU machine and that its image lacks.

The lent H200 machines run an image of their own (Python 3.12, a CUDA torch 2.11, transformers
5.17, accelerate, huggingface_hub 1.33, safetensors, pillow, pyyaml, ...) that reaches no package
registry. It has no diffusers, torchao or bitsandbytes, and its peft is not the one the suite runs.
Those wheels travel with the working tree, which may hold 64 MiB in all, so only they are carried:
the image's transformers runs the benchmark (the suite's trainer tests pass with it), and carrying
the suite's 5.24 would leave no room for bitsandbytes (8-bit AdamW, one of the levers).

Usage, here (where pip reaches PyPI):  python bench/device_wheels.py        (writes .whl/)
then one device run, carrying ".whl":   bash bench/on_device.sh
Versions come from constraints.txt, so the device runs what the suite tests.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from installer.common import constraint_pins  # noqa: E402

# What the device image lacks, or holds at a version the suite does not run.
CARRIED = ("diffusers", "peft", "torchao", "bitsandbytes")
# The device image's interpreter and platform (pip matches each manylinux tag exactly).
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
# What travels in one device call: the working tree and the carried paths together.
TRAVEL_LIMIT_BYTES = 64 * 1024 * 1024


def carried_requirements(constraints: Path) -> list[str]:
    """``name==version`` of every carried package; a package constraints.txt does not pin is an error."""
    from packaging.utils import canonicalize_name

    pins = constraint_pins(constraints)
    missing = [name for name in CARRIED if canonicalize_name(name) not in pins]
    if missing:
        raise SystemExit(f"{constraints}: no `==` pin for {', '.join(missing)}; add one so the device runs a "
                         "version the suite knows")
    return [f"{name}=={pins[canonicalize_name(name)]}" for name in CARRIED]


def tree_bytes() -> int:
    """Bytes of what a device call sends besides the carried paths: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    paths = [ROOT / name for name in listed if name]
    return sum(path.stat().st_size for path in paths if path.is_file())


def download(requirements: list[str], dest: Path) -> None:
    """pip-download each requirement's wheel for the device's interpreter into ``dest`` (its old wheels go)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    platform_args = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", PYTHON_VERSION, "--implementation", "cp", *platform_args, "-d", str(dest),
               *requirements]
    if subprocess.run(command).returncode != 0:
        raise SystemExit("pip could not fetch the wheels (is PyPI reachable from here?)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl", help="where the wheels go (default: .whl)")
    parser.add_argument("--list", action="store_true", help="print the requirements and fetch nothing")
    args = parser.parse_args(argv)
    requirements = carried_requirements(ROOT / "constraints.txt")
    if args.list:
        print("\n".join(requirements))
        return 0
    download(requirements, args.dest)
    wheels = sorted(args.dest.glob("*.whl"))
    carried = sum(wheel.stat().st_size for wheel in wheels)
    total = carried + tree_bytes()
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:6.1f} MiB  {wheel.name}")
    print(f"{total / 2**20:.1f} MiB travel in all (wheels {carried / 2**20:.1f} MiB), limit "
          f"{TRAVEL_LIMIT_BYTES / 2**20:.0f} MiB")
    if total > TRAVEL_LIMIT_BYTES:
        print("too much to travel: leave a wheel out (bitsandbytes only serves the 8-bit AdamW lever)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
