"""Path mapping: desktop paths to target paths, and the mapped config written into the run folder."""

from __future__ import annotations

import pytest
import yaml

from lora_studio.targets import LocalTarget, PathMapper, PathMapping, SshTarget, TargetConfigError
from lora_studio.targets.prepare import path_options, prepare_run

from .helpers import write_config


def test_windows_share_maps_case_insensitively_and_keeps_case_below():
    mapper = PathMapper([PathMapping(r"Z:\lora", "/data/lora")])
    assert mapper.to_target(r"z:\LORA\datasets\Cats 1\a.png") == "/data/lora/datasets/Cats 1/a.png"
    assert mapper.to_target("Z:/lora/runs/x") == "/data/lora/runs/x"
    assert mapper.to_target(r"Z:\lora") == "/data/lora"
    assert mapper.to_local("/data/lora/runs/x") == r"Z:\lora\runs\x"


def test_unc_and_posix_roots_and_longest_prefix_wins():
    mapper = PathMapper([PathMapping("/mnt/vsan/lora", "/data/lora"), PathMapping("/mnt/vsan/lora/models", "/models"),
                         PathMapping(r"\\vsan\share", "/share")])
    assert mapper.to_target("/mnt/vsan/lora/models/sd15.safetensors") == "/models/sd15.safetensors"
    assert mapper.to_target("/mnt/vsan/lora/runs/../runs/a") == "/data/lora/runs/a"
    assert mapper.to_target(r"\\VSAN\share\x") == "/share/x"
    # A sibling folder whose name merely starts like the root is not inside it.
    with pytest.raises(TargetConfigError, match="outside the folders"):
        mapper.to_target("/mnt/vsan/lora-old/x")


def test_no_mapping_leaves_paths_alone_and_bad_mappings_are_refused():
    assert PathMapper().to_target("/anything/at all") == "/anything/at all"
    with pytest.raises(TargetConfigError, match="absolute Linux path"):
        PathMapping("/mnt/x", "data/lora")
    with pytest.raises(TargetConfigError, match="empty side"):
        PathMapping("", "/data")


def test_prepare_run_maps_every_path_option_into_config_yaml(tmp_path):
    workspace = tmp_path / "ws"
    (workspace / "configs").mkdir(parents=True)
    (workspace / "configs" / "demo.yaml").write_text(
        "train_data_dir: ../datasets/shapes\nmetadata_path: ../datasets/shapes/metadata.csv\n"
        "base_model: ../models/tiny.safetensors\ncache_dir: ../cache\nresume: ../runs/old/checkpoints/step-00000010\n")
    config = write_config(workspace, "mapped", "runs/mapped run")
    target = SshTarget("gpu1", "gpu1.example", "ai", mappings=(PathMapping(str(workspace), "/data/lora"),))
    prepared = prepare_run(config, target)
    assert prepared.local_run_dir == workspace / "runs" / "mapped run"
    assert prepared.target_run_dir == "/data/lora/runs/mapped run"
    assert prepared.target_config == "/data/lora/runs/mapped run/config.yaml"
    written = yaml.safe_load((prepared.local_run_dir / "config.yaml").read_text())
    assert written["train_data_dir"] == "/data/lora/datasets/shapes"
    assert written["metadata_path"] == "/data/lora/datasets/shapes/metadata.csv"
    assert written["base_model"] == "/data/lora/models/tiny.safetensors"
    assert written["cache_dir"] == "/data/lora/cache"
    assert written["output_dir"] == "/data/lora/runs/mapped run"
    assert written["resume"] == "/data/lora/runs/old/checkpoints/step-00000010"
    for name in path_options():  # nothing of the desktop's view is left
        assert str(workspace) not in str(written.get(name))


def test_prepare_run_refuses_paths_outside_the_mapping(tmp_path):
    workspace = tmp_path / "ws"
    (workspace / "configs").mkdir(parents=True)
    (workspace / "configs" / "demo.yaml").write_text(
        "train_data_dir: /elsewhere/data\nbase_model: ../m.safetensors\n")
    config = write_config(workspace, "c", "runs/r")
    target = SshTarget("gpu1", "gpu1", "ai", mappings=(PathMapping(str(workspace), "/data/lora"),))
    with pytest.raises(TargetConfigError, match="train_data_dir /elsewhere/data is outside"):
        prepare_run(config, target)


def test_prepare_run_reports_an_invalid_config(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("lora_rnk: 4\noutput_dir: out\n")
    with pytest.raises(TargetConfigError, match="lora_rnk"):
        prepare_run(config, LocalTarget())
