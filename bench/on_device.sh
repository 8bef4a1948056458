#!/usr/bin/env bash
# The one GPU-benchmark run on a lent GPU machine, as a single prepared command (its time is scarce).
#
# Installs the wheels bench/device_wheels.py put in .whl/ (carried with the working tree), says which
# versions and which GPU run, then runs bench/gpu_train.py. Its figures go to $OUT/gpu_train.json after
# every setting (a run cut short keeps what it measured) and its console to $OUT/gpu_train.log.
# Arguments go to the benchmark (the suite runs `bench/on_device.sh --quick --device cpu`).
# PYTHON names the interpreter (default python3: on the lent machines, the one that holds torch).
set -u
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
out=${OUT:-bench-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" > /dev/null; then
    site=$(mktemp -d /tmp/device-site.XXXXXX)
    # --no-deps: the machine's image holds everything else; one version of each package is carried.
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl \
        || { echo "the carried wheels did not install (see above)"; exit 1; }
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

"$python" - <<'EOF'
import importlib.metadata as metadata
import platform

names = ("torch", "diffusers", "transformers", "peft", "accelerate", "torchao", "bitsandbytes", "safetensors")
found = []
for name in names:
    try:
        found.append(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        found.append(f"{name} missing")
print(f"python {platform.python_version()}: " + ", ".join(found), flush=True)
EOF
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

"$python" bench/gpu_train.py --json-out "$out/gpu_train.json" "$@" 2>&1 | tee "$out/gpu_train.log"
exit "${PIPESTATUS[0]}"
