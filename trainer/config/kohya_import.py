"""Import a kohya_ss GUI JSON config or an sd-scripts TOML config (torch-free).

kohya is what most LoRA trainers use today, so their configs should come across with one
click. Every key is either mapped to our option (values converted where the meaning
differs), or listed as not mapped, with the reason, so nothing is dropped silently.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# kohya optimizer names -> ours.
_OPTIMIZERS = {"adamw": "AdamW", "adamw8bit": "AdamW8bit", "adafactor": "Adafactor", "sgdnesterov": "SGD",
               "sgd": "SGD", "prodigy": "Prodigy"}
_SCHEDULERS = {"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"}
# kohya_ss' LoRA_type values of the LyCORIS kinds this trainer has.
_LYCORIS_TYPES = {"LyCORIS/LoHa": "loha", "LyCORIS/LoKr": "lokr"}
# Keys that are kohya's business only (UI state, launch settings) or that we do on our own.
_HARMLESS = {
    "xformers": "we always use PyTorch's scaled-dot-product attention", "sdpa": "always on here",
    "mem_eff_attn": "we always use PyTorch's scaled-dot-product attention",
    "save_model_as": "we always save .safetensors", "network_module": "the adapter kind comes from LoRA_type (lora_type)",
    "logging_dir": "logs go to the run folder (tb/)", "log_with": "TensorBoard files go to the run folder",
    "persistent_data_loader_workers": "not needed with cached latents", "max_data_loader_n_workers": "see num_workers",
    "LoRA_type": "handled through lora_target", "sample_sampler": "samples use DPM-Solver++",
    "cache_latents": "handled with cache_latents_to_disk", "full_fp16": "LoRA weights always train in fp32",
    "full_bf16": "LoRA weights always train in fp32", "save_state": "every checkpoint holds the full state",
}


@dataclass
class ImportResult:
    """Our config values, and the keys we could not take over (key -> why)."""

    values: dict[str, Any] = field(default_factory=dict)
    not_mapped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _resolution(value: Any) -> int:
    # "512,768" (width,height) -> the side of a square of the same area, as buckets use.
    parts = [int(float(p)) for p in str(value).replace("x", ",").split(",") if p.strip()]
    if len(parts) == 2:
        return int(round((parts[0] * parts[1]) ** 0.5 / 8) * 8)
    return parts[0]


def _optimizer(value: Any) -> str:
    name = str(value).lower().replace("_", "").replace(".", "")
    name = name.removeprefix("bitsandbytesoptim").removeprefix("torchoptim")
    if name not in _OPTIMIZERS:
        raise ValueError(f"optimizer {value!r} has no counterpart here (AdamW, AdamW8bit, Adafactor, SGD, Prodigy)")
    return _OPTIMIZERS[name]


def _scheduler(value: Any) -> str:
    if str(value) not in _SCHEDULERS:
        raise ValueError(f"scheduler {value!r} has no counterpart here ({', '.join(sorted(_SCHEDULERS))})")
    return str(value)


def _precision(value: Any) -> str:
    text = str(value).lower()
    if text not in ("no", "fp16", "bf16", "float", "fp32"):
        raise ValueError(f"precision {value!r} is not no/fp16/bf16")
    return "no" if text in ("float", "fp32") else text


def _save_precision(value: Any) -> str:
    text = str(value).lower()
    return "fp32" if text in ("float", "fp32") else text


def _positive_or_none(value: Any) -> float | None:
    number = float(value or 0)
    return number if number > 0 else None


# kohya key -> (our option, converter). Keys of the GUI JSON and of sd-scripts' arguments.
_MAP: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "pretrained_model_name_or_path": ("base_model", str),
    "network_dim": ("lora_rank", int),
    "network_alpha": ("lora_alpha", float),
    "network_dropout": ("lora_dropout", float),
    "unet_lr": ("learning_rate", float),
    "text_encoder_lr": ("text_encoder_lr", _positive_or_none),
    "train_batch_size": ("batch_size", int),
    "epoch": ("epochs", int),
    "max_train_epochs": ("epochs", int),
    "max_train_steps": ("max_train_steps", lambda v: int(v) or None),
    "max_resolution": ("resolution", _resolution),
    "resolution": ("resolution", _resolution),
    "optimizer": ("optimizer", _optimizer),
    "optimizer_type": ("optimizer", _optimizer),
    "lr_scheduler": ("lr_scheduler", _scheduler),
    "lr_scheduler_num_cycles": ("lr_scheduler_num_cycles", lambda v: max(1, int(v or 1))),
    "mixed_precision": ("mixed_precision", _precision),
    "save_precision": ("save_precision", _save_precision),
    "save_every_n_epochs": ("save_every_n_epochs", lambda v: int(v or 0)),
    "save_every_n_steps": ("save_steps", lambda v: int(v or 0)),
    "flip_aug": ("random_flip", bool),
    "clip_skip": ("clip_skip", lambda v: max(1, int(v or 1))),
    "min_snr_gamma": ("min_snr_gamma", _positive_or_none),
    "cache_latents_to_disk": ("cache_latents", lambda v: "disk" if v else "memory"),
    "sample_every_n_steps": ("sample_every_n_steps", lambda v: int(v or 0)),
}
# Keys that kohya and this trainer spell alike, with their plain type.
_SAME_NAME: dict[type, tuple[str, ...]] = {
    str: ("train_data_dir", "output_dir", "output_name", "caption_extension"),
    int: ("lr_warmup_steps", "seed", "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "keep_tokens",
          "gradient_accumulation_steps", "multires_noise_iterations"),
    float: ("learning_rate", "lr_scheduler_power", "caption_dropout_rate", "noise_offset", "max_grad_norm",
            "multires_noise_discount"),
    bool: ("enable_bucket", "shuffle_caption", "gradient_checkpointing", "debiased_estimation_loss"),
}
_MAP.update({name: (name, kind) for kind, names in _SAME_NAME.items() for name in names})


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """sd-scripts TOML files group arguments in sections; the names are unique across them."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value))
        else:
            flat[key] = value
    return flat


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def map_kohya(data: dict[str, Any], base_dir: Path | None = None) -> ImportResult:
    """Map kohya keys to our options; every other key lands in `not_mapped` with a reason."""
    result = ImportResult()
    flat = _flatten(data)
    for key, value in flat.items():
        if key in _HARMLESS:
            if not _is_empty(value) and value is not False:
                result.not_mapped[key] = _HARMLESS[key]
            continue
        if key == "v2":
            if value:
                result.notes.append("v2: SD 2.x is detected from the base model itself")
            continue
        if key == "v_parameterization":
            if value:
                result.values["prediction_type"] = "v_prediction"
            continue
        if key == "network_train_unet_only":
            result.values["train_text_encoder"] = not bool(value)
            continue
        if key == "lr_warmup" and not _is_empty(value):
            # The GUI gives warm-up as a percentage of all steps; we need steps.
            result.not_mapped[key] = (f"warm-up of {value}% of the steps: set lr_warmup_steps once the number of steps "
                                      "is known (the form shows it)")
            continue
        if key == "sample_prompts" and not _is_empty(value):
            prompts = _read_prompts(value, base_dir)
            if prompts is None:
                result.not_mapped[key] = f"prompt file {value} could not be read"
            else:
                result.values["sample_prompts"] = prompts
            continue
        if key == "LoRA_type" or key == "network_args":
            continue
        mapping = _MAP.get(key)
        if mapping is None:
            if not _is_empty(value) and value is not False and value != 0:
                result.not_mapped[key] = "no counterpart in LoRA Studio"
            continue
        option, convert = mapping
        if _is_empty(value):
            continue
        try:
            result.values[option] = convert(value)
        except (TypeError, ValueError) as exc:
            result.not_mapped[key] = str(exc)
    # kohya trains the text encoder unless told not to; a zero text-encoder LR means "don't".
    if "train_text_encoder" not in result.values:
        te_lr = flat.get("text_encoder_lr")
        result.values["train_text_encoder"] = not (te_lr is not None and float(te_lr or 0) == 0)
    lora_type = str(flat.get("LoRA_type", "Standard"))
    if flat.get("dora_wd"):
        result.values["use_dora"] = True
    if lora_type in _LYCORIS_TYPES:
        result.values["lora_type"] = _LYCORIS_TYPES[lora_type]
        result.values["lora_target"] = "all"  # LyCORIS adapts the convolutions too
    elif "LoCon" in lora_type or flat.get("conv_dim"):
        result.values["lora_target"] = "all"
        result.notes.append(f"LoRA_type {lora_type}: convolution layers are trained (lora_target: all) at the LoRA rank; "
                            "a separate conv_dim is not supported")
    elif lora_type not in ("Standard", "Kohya LoCon", ""):
        result.not_mapped["LoRA_type"] = f"{lora_type} is not supported; a standard LoRA will be trained"
    return result


def _read_prompts(value: Any, base_dir: Path | None) -> list[str] | None:
    if isinstance(value, list):
        return [str(v) for v in value]
    path = Path(str(value))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    # sd-scripts prompt files allow options after " --"; keep the prompt text.
    return [line.split(" --")[0].strip() for line in lines if line.strip() and not line.startswith("#")]


def import_kohya_file(path: Path | str) -> ImportResult:
    """Read a kohya_ss GUI `.json` or an sd-scripts `.toml` file and map it."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".toml":
        data = tomllib.loads(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a config (expected a JSON object or TOML table)")
    return map_kohya(data, path.parent)


def imported_yaml(result: ImportResult, source: Path) -> str:
    """Our YAML config for the mapped values, headed by what was not mapped and why."""
    import yaml
    lines = [f"# Imported from {source.name} (kohya). Check it with: python -m trainer validate --config <this file>"]
    for note in result.notes:
        lines.append(f"# note: {note}")
    if result.not_mapped:
        lines.append("# Not imported:")
        lines += [f"#   {key}: {why}" for key, why in sorted(result.not_mapped.items())]
    body = yaml.safe_dump(result.values, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return "\n".join(lines) + "\n" + body
