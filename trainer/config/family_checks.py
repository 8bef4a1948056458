"""The checks of a config that depend on its base model's family (torch-free).

The family comes from `model_family` when it names one, else from the model's files (one
read of a safetensors header or a ``model_index.json``). A file that is no trainable model
is left to the model check, which says what it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainer.model_family import FAMILIES_BY_ID, FLUX, LLM, Detection, FamilySpec, ModelKindError, \
    companion_problems, detect_family

# `lora_target` values that only some families have, and which.
_FAMILY_LORA_TARGETS = {"single_blocks": FLUX, "attention_mlp": LLM, "all_linear": LLM}


def configured_model(values: dict[str, Any]) -> Detection | None:
    """What the config's base model is, or None when it is unset, missing or not a trainable model."""
    base_model = values.get("base_model")
    if not base_model or not Path(base_model).exists():
        return None
    try:
        return detect_family(base_model, allow_pickle=values["allow_pickle"])
    except ModelKindError:
        return None


def _family(values: dict[str, Any], detection: Detection | None) -> FamilySpec | None:
    return FAMILIES_BY_ID.get(values["model_family"]) or (detection.spec if detection else None)


def family_defaults(values: dict[str, Any], raw: dict[str, Any], detection: Detection | None
                    ) -> Iterator[tuple[str, str]]:
    """The base model family's usual sizes for a config that sets no resolution (SDXL trains at
    1024 px), written into ``values``; yields one notice."""
    spec = _family(values, detection)
    if "resolution" in raw or spec is None or spec.task != "image" or spec.default_resolution == values["resolution"]:
        return
    size = spec.default_resolution
    sizes = {"resolution": size, "min_bucket_reso": spec.bucket_range[0], "max_bucket_reso": spec.bucket_range[1],
             "sample_width": size, "sample_height": size}
    changed = []
    for name, value in sizes.items():
        if name not in raw:
            values[name] = value
            changed.append(f"{name} {value}")
    yield ("resolution", f"{spec.label} model: {', '.join(changed)} (the family's usual sizes)")


def family_checks(values: dict[str, Any], detection: Detection | None) -> Iterator[tuple[str, str, str, str]]:
    """(option, message, hint, severity): the base model's other files (a Flux.1 transformer file
    needs its text encoders, VAE and T5 tokenizer named) and options of another family."""
    if detection is not None:
        for option, message, hint in companion_problems(detection, values):
            yield option, message, hint, "error"
    spec = _family(values, detection)
    yield from _data_checks(values, spec)
    if spec is LLM and detection is not None and not values["allow_remote_code"]:
        from trainer.causal_lm_folder import needs_remote_code, read_model_config

        if needs_remote_code(read_model_config(Path(values["base_model"]))):
            yield ("base_model", f"{values['base_model']} needs the Python code in its folder to load (its config.json "
                   "has an auto_map), and running it could do anything",
                   "use a model that transformers supports natively (GLM-4 instead of ChatGLM3), or set "
                   "`allow_remote_code: true` if you trust where the folder came from", "error")
    owner = _FAMILY_LORA_TARGETS.get(values["lora_target"])
    if owner is not None and spec is not None and spec is not owner:
        yield ("lora_target", f"{values['lora_target']} is for {owner.label} only, and the base model is {spec.label}",
               "choose attention, attention_ff or all", "error")
    if spec is not None:
        yield from _variant_checks(values, spec)
        yield from _quantization_checks(values, spec)


def _quantization_checks(values: dict[str, Any], spec: FamilySpec) -> Iterator[tuple[str, str, str, str]]:
    """`quantization_bit` only in the bits the family's loader has (4 for language models, 8 for Flux.1)."""
    bits = values["quantization_bit"]
    if bits == "none" or bits in spec.quantization_bits:
        return
    owners = [other.label for other in FAMILIES_BY_ID.values() if bits in other.quantization_bits]
    allowed = " or ".join(("none", *spec.quantization_bits))
    yield ("quantization_bit", f"{bits} bits work with {' and '.join(owners)} only, and the base model is {spec.label}",
           f"set quantization_bit to {allowed}", "error")


def _variant_checks(values: dict[str, Any], spec: FamilySpec) -> Iterator[tuple[str, str, str, str]]:
    """LoHa, LoKr and DoRA only where the family's files can carry them (Flux.1's fuse q, k and v)."""
    if values["lora_type"] != "lora" and "lora_type" not in spec.own_options:
        yield ("lora_type", f"{values['lora_type']} adapters are for SD and SDXL models, and the base model is "
               f"{spec.label}", "set lora_type: lora", "error")
    if values["use_dora"] and "use_dora" not in spec.own_options:
        yield ("use_dora", f"DoRA is for SD, SDXL and language models, and the base model is {spec.label}",
               "turn use_dora off", "error")


def _data_checks(values: dict[str, Any], spec: FamilySpec | None) -> Iterator[tuple[str, str, str, str]]:
    """Images train on train_data_dir, language models on dataset_path: the one the family needs must be
    set (the validator has already said so when neither is)."""
    text = spec is not None and spec.task == "text"
    if text and not values["dataset_path"]:
        yield ("dataset_path", "is missing: a language model trains on text examples, and train_data_dir is for "
               "image models", "set `dataset_path:` to a .jsonl/.json file or a folder of them", "error")
    elif spec is not None and not text and not values["train_data_dir"]:
        yield ("train_data_dir", f"is missing: {spec.label} trains on images, and dataset_path is for language models",
               "add `train_data_dir:`, the folder with the training images", "error")
