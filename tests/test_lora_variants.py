"""DoRA, LoHa and LoKr (``use_dora``, ``lora_type``): the files' tensors give peft's weights in the loaders.

What a user notices is whether the LoRA looks the same in ComfyUI as it did while training. So
each variant is put on the tiny SD and SDXL models (every layer kind: linear, 1x1 and 3x3
convolutions, the text encoders), given random non-zero weights, written by the trainer's own
exporter, and each module's patched weight is recomputed with each program's formula
(tests/loader_rules/) and compared with peft's merged weight. In-process, on models built
in code; one CLI run covers the variant end to end (options, files, metadata, the run's notes).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from tests.cli_helpers import trainer_cli
from tests.loader_rules.a1111 import a1111_targets, a1111_unmapped
from tests.loader_rules.comfyui import comfyui_targets, comfyui_unmapped
from tests.loader_rules.common import lora_modules
from tests.loader_rules.patched_weights import a1111_patched_weight, comfyui_patched_weight, lycoris_merged_weight
from trainer.lora import add_lora, lora_state_dict, save_safetensors, to_diffusers

RANK, ALPHA = 4, 2.0
VARIANTS = {"dora": ("lora", True), "loha": ("loha", False), "lokr": ("lokr", False)}
FAMILY_VARIANT = {"sd": "sd1", "sdxl": "sdxl"}


def tiny_model(family: str):
    from trainer.models.full_size import build_image_model

    return build_image_model(family, device=torch.device("cpu"), dtype=torch.float32, tiny=True)


def adapted(family: str, variant: str, seed: int = 0):
    """A tiny model with the variant on every layer of the denoiser and the text encoders, its adapter
    weights random (a freshly added adapter is a no-op, which would prove nothing)."""
    lora_type, use_dora = VARIANTS[variant]
    model = tiny_model(family)
    generator = torch.Generator().manual_seed(seed)
    components = [model.denoiser_name, *model.text_encoders]
    for name in components:
        params = add_lora(model.component(name), model.lora_targets(name, "all"), RANK, ALPHA, 0.0,
                          lora_type=lora_type, use_dora=use_dora)
        with torch.no_grad():
            for param in params:
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return model, components


def kohya_file(model, components) -> dict[str, torch.Tensor]:
    states = {name: lora_state_dict(model.component(name)) for name in components}
    return model.kohya_weights(states, ALPHA, torch.float32, RANK)


def peft_layers(model, components):
    """(kohya module name, peft layer) of every adapted layer."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for component in components:
        for module, layer in model.component(component).named_modules():
            if isinstance(layer, BaseTunerLayer):
                yield model.kohya_name(component, module), layer


def merged_by_peft(layer) -> torch.Tensor:
    clone = copy.deepcopy(layer)
    clone.merge()
    return clone.get_base_layer().weight.detach()


@pytest.mark.parametrize("family", sorted(FAMILY_VARIANT))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_exported_tensors_give_peft_weights_in_each_loader(family, variant):
    model, components = adapted(family, variant)
    tensors = kohya_file(model, components)
    by_module: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        module, _, part = key.partition(".")
        by_module.setdefault(module, {})[part] = tensor
    layers = dict(peft_layers(model, components))
    assert set(by_module) == set(layers)
    kinds = {tuple(sorted(layer.get_base_layer().weight.shape[2:])) for layer in layers.values()}
    assert {(), (1, 1), (3, 3)} <= kinds  # linear layers and both kinds of convolution are covered
    comfy_error = 0.0
    for module, layer in layers.items():
        base = layer.get_base_layer().weight.detach()
        want = merged_by_peft(layer)
        parts = by_module[module]
        # LyCORIS' definition of the format: exactly peft's weights, for every variant.
        torch.testing.assert_close(lycoris_merged_weight(base, parts), want, rtol=1e-5, atol=1e-6, msg=module)
        comfy, a1111 = comfyui_patched_weight(base, parts), a1111_patched_weight(base, parts)
        if variant != "dora":
            torch.testing.assert_close(comfy, want, rtol=1e-5, atol=1e-6, msg=module)
            torch.testing.assert_close(a1111, want, rtol=1e-5, atol=1e-6, msg=module)
            continue
        # ComfyUI divides DoRA's output-axis magnitude by the base weight's row norms, where peft (and
        # LyCORIS) take the patched weight's: each row is off by at most the LoRA's relative size there.
        rows = base.reshape(base.shape[0], -1)
        delta = (want - base).reshape(base.shape[0], -1)
        bound = (delta.norm(dim=1) / rows.norm(dim=1)).max().item()
        error = ((comfy - want).reshape(base.shape[0], -1).norm(dim=1) / want.reshape(base.shape[0], -1)
                 .norm(dim=1)).max().item()
        assert error <= 2 * bound + 1e-5, (module, error, bound)
        comfy_error = max(comfy_error, error)
        # AUTOMATIC1111 normalises DoRA along the input axis only: it changes the LoRA (the run says so).
        assert not torch.allclose(a1111, want, rtol=1e-3, atol=1e-4), module
    if variant == "dora":
        assert comfy_error > 0  # the difference is real (and bounded above)


@pytest.mark.parametrize("family", sorted(FAMILY_VARIANT))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_files_map_onto_the_model_in_comfyui_and_a1111(family, variant):
    from trainer.models.ldm_export import export_ldm_checkpoint

    model = tiny_model(family)
    encoders = tuple(model.text_encoders.values())
    checkpoint = list(export_ldm_checkpoint(model.unet, model.vae, encoders if family == "sdxl" else encoders[0],
                                            FAMILY_VARIANT[family]))
    adapted_model, components = adapted(family, variant)
    keys = list(kohya_file(adapted_model, components))
    ldm_family = FAMILY_VARIANT[family]
    config = dict(model.unet.config)
    assert comfyui_unmapped(keys, checkpoint, ldm_family, config) == []
    assert a1111_unmapped(keys, checkpoint, ldm_family) == []
    assert comfyui_targets(keys, checkpoint, ldm_family, config) == a1111_targets(keys, checkpoint, ldm_family)
    parts = set().union(*lora_modules(keys).values())
    expected = {"dora": {"lora_down.weight", "lora_up.weight", "dora_scale", "alpha"},
                "loha": {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"},
                "lokr": {"lokr_w1", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "alpha"}}[variant]
    assert parts == expected  # LoKr: small layers keep w2 whole, large ones split it


def test_dora_loads_in_diffusers_from_the_diffusers_file(tmp_path):
    """diffusers reads DoRA (both the UNet's and the text encoder's) from the diffusers-format file."""
    model, components = adapted("sd", "dora")
    states = {name: lora_state_dict(model.component(name)) for name in components}
    save_safetensors(tmp_path / "pytorch_lora_weights.safetensors",
                     to_diffusers(states, model.diffusers_name, RANK, ALPHA, torch.float32))
    fresh = tiny_model("sd")  # the same seeded base weights
    pipe = fresh.build_pipeline()
    pipe.load_lora_weights(str(tmp_path), weight_name="pytorch_lora_weights.safetensors")
    ids = torch.randint(0, 1000, (1, 77), generator=torch.Generator().manual_seed(0))
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hidden = model.text_encoder(ids).last_hidden_state
        torch.testing.assert_close(fresh.text_encoder(ids).last_hidden_state, hidden, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fresh.unet(latents, torch.tensor([10]), hidden).sample,
                                   model.unet(latents, torch.tensor([10]), hidden).sample, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["loha", "lokr"])
def test_diffusers_refuses_lycoris_files(tmp_path, variant):
    """Why a LoHa/LoKr run writes no diffusers-format file: diffusers cannot load these adapters."""
    model, components = adapted("sd", variant)
    save_safetensors(tmp_path / "lora.safetensors", kohya_file(model, components))
    pipe = tiny_model("sd").build_pipeline()
    with pytest.raises(ValueError, match="not been correctly renamed"):
        pipe.load_lora_weights(str(tmp_path), weight_name="lora.safetensors")


@pytest.mark.slow
def test_loha_run_through_the_cli(tmp_path, tiny_model_of):
    """A LoHa run on every layer and the text encoder: LyCORIS keys and metadata, no diffusers file, the
    run says why; and the checkpoint's step file is the same LoHa."""
    from safetensors import safe_open

    from tests.test_train_e2e import make_dataset, write_config

    data = make_dataset(tmp_path / "data", "csv")
    out = tmp_path / "run"
    config = write_config(tmp_path / "config.yaml", tiny_model_of("sd1").base_model, data, out, lora_type="loha",
                          lora_target="all", train_text_encoder=True, lora_dropout=0.1, max_train_steps=3,
                          save_steps=2, sample_every_n_steps=0)
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    with safe_open(out / "run.safetensors", "pt") as lora:
        keys, metadata = list(lora.keys()), lora.metadata()
    assert any(k.endswith(".hada_w1_a") for k in keys) and not any("lora_down" in k for k in keys)
    assert any(k.startswith("lora_te_") for k in keys) and any("_resnets_" in k for k in keys)
    assert metadata["ss_network_module"] == "lycoris.kohya"
    assert json.loads(metadata["ss_network_args"])["algo"] == "loha"
    assert not (out / "diffusers").exists()
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "warning" and "does not load loha" in e["message"] for e in events)
    assert "LoHa rank 4" in (out / "train.log").read_text()
    with safe_open(next((out / "checkpoints").glob("step-*/run-step*.safetensors")), "pt") as step_file:
        assert set(step_file.keys()) == set(keys)
