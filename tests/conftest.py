"""Fixtures shared by the trainer tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_helpers import trainer_cli
from trainer.model_family import FAMILIES, IMAGE_FAMILIES


@pytest.fixture(scope="session")
def tiny_model(tiny_model_of) -> Path:
    """The folder of the tiny SD model (`diffusers/` and `tiny-sd-v1.safetensors`), made by the real
    `make-tiny-model` command; the same model as ``tiny_model_of("sd1")``."""
    return tiny_model_of("sd1").diffusers_dir.parent


@dataclass(frozen=True)
class TinyFamilyModel:
    """A registered family's tiny model, as a diffusers folder and as a single file."""

    family: str
    diffusers_dir: Path
    # None where the family's single files need other files named (Flux.1, SD3: their files lie in split/, single/)
    single_file: Path | None

    @property
    def base_model(self) -> Path:
        """What a config's `base_model` names: the single file where there is one (what most users have)."""
        return self.single_file or self.diffusers_dir


@pytest.fixture(scope="session")
def tiny_model_of(tmp_path_factory) -> Callable[[str], TinyFamilyModel]:
    """``tiny_model_of(variant)``: the tiny model of a `make-tiny-model --family` variant (sd1, sd2,
    sdxl, flux, sd3), made once per session by the real command and shared by every test that asks."""
    made: dict[str, TinyFamilyModel] = {}

    def get(variant: str) -> TinyFamilyModel:
        if variant not in made:
            folder = tmp_path_factory.mktemp(f"tiny-{variant}")
            result = trainer_cli("make-tiny-model", str(folder), "--family", variant)
            assert result.returncode == 0, result.stderr
            family = next(s.id for s in FAMILIES if s.tiny_variant == variant) if variant != "sd2" else "sd"
            made[variant] = TinyFamilyModel(family, folder / "diffusers", next(folder.glob("*.safetensors"), None))
        return made[variant]

    return get


@pytest.fixture(scope="session", params=[spec.id for spec in IMAGE_FAMILIES])
def family_model(request, tiny_model_of) -> TinyFamilyModel:
    """Each registered image family's tiny model (`make-tiny-model --family`): a test that takes this
    fixture runs once per family, so a new family gets the whole suite by being registered."""
    return tiny_model_of(next(s for s in IMAGE_FAMILIES if s.id == request.param).tiny_variant)


@pytest.fixture(scope="session")
def trained_run_of(tmp_path_factory, tiny_model_of) -> Callable[[str], Path]:
    """``trained_run_of(variant)``: the run folder of one short training of that tiny model from its
    single file (or folder), with every layer and the text encoders adapted, fp32 files and a sample at the end;
    trained once per session and read by every test that checks the files a run writes."""
    from tests.test_train_e2e import make_dataset, write_config

    runs: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in runs:
            folder = tmp_path_factory.mktemp(f"trained-{variant}")
            data = make_dataset(folder / "data", "csv")
            config = write_config(folder / "config.yaml", tiny_model_of(variant).base_model, data, folder / "run",
                                  max_train_steps=6, sample_every_n_steps=6, sample_prompts=["a red square"],
                                  learning_rate=5e-2, lora_target="all", train_text_encoder=True,
                                  save_precision="fp32")  # exact files: the fused-layer test compares them
            result = trainer_cli("train", "--config", str(config))
            assert result.returncode == 0, result.stderr
            runs[variant] = folder / "run"
        return runs[variant]

    return get


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """The tiny Llama folder (ChatML template), made by the real `make-tiny-model --family llama`."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    result = trainer_cli("make-tiny-model", str(folder), "--family", "llama")
    assert result.returncode == 0, result.stderr
    assert f"model folder: {folder / 'llama'}" in result.stdout
    return folder / "llama"


@pytest.fixture(scope="session")
def llm_alpaca_run(tmp_path_factory, tiny_llama) -> tuple[Path, Path, Path]:
    """(folder, config, run folder) of one language-model run on alpaca rows through the real CLI:
    15 steps, 4 rows held out, eval_loss every 5 steps and two sample prompts answered every 5."""
    from tests.llm.test_train import write_config, write_rows

    folder = tmp_path_factory.mktemp("llm-alpaca")
    data = write_rows(folder / "train.jsonl", "alpaca")
    config = write_config(folder, tiny_llama, data, folder / "run", val_size=4, eval_steps=5, lora_dropout=0.1,
                          sample_prompts=["Name colour number 2.", "Name colour number 3."], sample_every_n_steps=5,
                          max_new_tokens=8)
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    return folder, config, folder / "run"
