"""bench/gpu_train.py, the device benchmark: its quick run on the CPU, and its pure parts.

On a GPU the script measures the full-size models (see its docstring); here it runs the
families' tiny models so that a change to a recipe, the levers or the script itself that
breaks it is caught before someone spends GPU time on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli_helpers import ROOT

sys.path.insert(0, str(ROOT))
from bench.gpu_train import PEAK_BF16_TFLOPS, meets, peak_tflops_of  # noqa: E402

FAMILIES = {"sd", "sdxl", "flux", "llm"}


@pytest.mark.slow
def test_quick_cpu_run_prints_sane_figures_for_every_family(tmp_path):
    # Through the device's prepared command, so the one GPU run finds it working.
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    result = subprocess.run(["bash", "bench/on_device.sh", "--quick", "--device", "cpu"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.startswith("python 3.") and ", diffusers 0." in result.stdout.splitlines()[0]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads((tmp_path / "gpu_train.json").read_text(encoding="utf-8")) == summary
    assert (tmp_path / "gpu_train.log").read_text(encoding="utf-8").strip().endswith(json.dumps(summary))
    assert summary["device"] == "cpu" and summary["quick"] is True and summary["peak_bf16_tflops"] is None
    assert {r["family"] for r in summary["results"]} == FAMILIES
    for record in summary["results"]:
        assert "error" not in record, record
        assert record["it_per_s"] > 0 and record["samples_per_s"] >= record["it_per_s"]
        assert record["flops_per_step"] > 0 and record["tflops_per_s"] >= 0
        assert record["mfu"] is None  # no peak is known for a CPU
        assert record["peak_vram_gb"] is None
        assert record["flops_include_recompute"] is False  # counted with checkpointing off, where it fits
    llm = next(r for r in summary["results"] if r["family"] == "llm")
    assert llm["tokens_per_s"] > 0
    flux = next(r for r in summary["results"] if r["family"] == "flux")
    assert flux["sample_s"] > 0 and flux["sample_peak_vram_gb"] is None  # its sample renders (peaks: CUDA only)
    sd = next(r for r in summary["results"] if r["family"] == "sd")
    assert sd["cached"] == {"latents": True, "text": True, "offloaded": []}  # nothing to offload on a CPU
    assert sd["levers"]["attention"] == "sdpa"
    levers = {lever["lever"]: lever for lever in summary["levers"]}
    for name in ("attention", "channels_last", "fused_adamw", "gradient_checkpointing", "latent_cache"):
        assert levers[name]["it_per_s_on"] > 0 and levers[name]["it_per_s_off"] > 0, levers[name]
    for name in ("cudnn_benchmark", "pinned_memory", "tf32"):
        assert levers[name]["skipped"] == "CUDA only"
    assert summary["elapsed_s"] < 60


def test_every_full_size_setting_makes_a_config_the_trainer_accepts(tmp_path):
    """A GPU session must not find out on the device that a setting's config is refused."""
    from bench.gpu_step import image_config
    from bench.gpu_train import settings
    for setting in settings(quick=False):
        if setting.family != "llm":
            config = image_config(setting, tmp_path / "data", tmp_path / setting.name, "cuda")
            assert config["quantization_bit"] == setting.quantization_bit, setting.name


def test_the_carried_wheels_are_the_versions_the_suite_pins():
    from bench.device_wheels import CARRIED, carried_requirements
    from importlib import metadata

    requirements = carried_requirements(ROOT / "constraints.txt")
    assert [r.split("==")[0] for r in requirements] == list(CARRIED)
    for requirement in requirements:
        name, version = requirement.split("==")
        if name != "bitsandbytes":  # CUDA machines only
            assert metadata.version(name) == version, name  # what this suite ran is what the device runs


def test_a_carried_package_without_a_pin_is_named(tmp_path):
    from bench.device_wheels import carried_requirements

    constraints = tmp_path / "constraints.txt"
    constraints.write_text("diffusers==0.42.1\npeft==0.21.2  # comment\ntorchao==0.18.0\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no `==` pin for bitsandbytes"):
        carried_requirements(constraints)


def test_known_gpus_get_their_dense_bf16_peak():
    assert peak_tflops_of("NVIDIA H200") == 989.4
    assert peak_tflops_of("NVIDIA H100 80GB HBM3") == 989.4
    assert peak_tflops_of("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops_of("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops_of("NVIDIA L40S") == 362.05
    assert peak_tflops_of("NVIDIA GeForce RTX 4090") == 165.2
    assert peak_tflops_of("NVIDIA A10") == 125.0
    assert peak_tflops_of("NVIDIA A10G") is None  # not an A10: unknown, --peak-tflops gives it
    assert peak_tflops_of("cpu") is None
    assert all(peak > 0 for _name, peak in PEAK_BF16_TFLOPS)


def test_targets_are_judged_only_when_measurable():
    assert meets({"mfu_min": 0.45}, {"mfu": 0.5, "peak_vram_gb": 3.0}) is True
    assert meets({"mfu_min": 0.45}, {"mfu": 0.3, "peak_vram_gb": 3.0}) is False
    assert meets({"peak_vram_gb_max": 4.0}, {"mfu": None, "peak_vram_gb": 4.2}) is False
    assert meets({"peak_vram_gb_max": 4.0}, {"mfu": None, "peak_vram_gb": None}) is None  # a CPU run
    assert meets({}, {"mfu": 0.9, "peak_vram_gb": 1.0}) is None
    both = {"peak_vram_gb_max": 24.0, "sample_peak_vram_gb_max": 24.0}
    assert meets(both, {"peak_vram_gb": 20.0, "sample_peak_vram_gb": 23.0}) is True
    assert meets(both, {"peak_vram_gb": 20.0, "sample_peak_vram_gb": 25.0}) is False  # the sample must fit too
