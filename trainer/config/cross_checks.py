"""The rules that involve several options (torch-free): a bucket bound moved to hold the
resolution, and the combinations that are wrong, or set but without effect. One option's
own value is checked in :mod:`.value_checks`; a model family's rules in :mod:`.family_checks`.
"""

from __future__ import annotations

from typing import Any, Iterator

from trainer.config.schema import OPTIONS_BY_NAME


def adapt_bucket_range(values: dict[str, Any], raw: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Move a bucket bound the user did not set so that it holds the resolution, as kohya users expect
    (`resolution: 128` alone is valid); yields a notice for each change. A bound set in the
    config stays, and the cross checks report the conflict."""
    if not values["enable_bucket"]:
        return
    resolution = values["resolution"]
    if resolution < values["min_bucket_reso"] and "min_bucket_reso" not in raw:
        values["min_bucket_reso"] = int(max(OPTIONS_BY_NAME["min_bucket_reso"].minimum, resolution // 2 // 8 * 8))
        yield ("min_bucket_reso", f"set to {values['min_bucket_reso']} (the default, 256, is above resolution "
               f"{resolution})")
    if resolution > values["max_bucket_reso"] and "max_bucket_reso" not in raw:
        values["max_bucket_reso"] = int(min(OPTIONS_BY_NAME["max_bucket_reso"].maximum, resolution * 2))
        yield ("max_bucket_reso", f"set to {values['max_bucket_reso']} (the default, 1024, is below resolution "
               f"{resolution})")


def cross_checks(values: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """Rules that involve several options: (option, message, hint, severity)."""
    if values["min_bucket_reso"] > values["max_bucket_reso"]:
        yield ("min_bucket_reso", f"({values['min_bucket_reso']}) is larger than max_bucket_reso ({values['max_bucket_reso']})",
               "make min_bucket_reso <= resolution <= max_bucket_reso", "error")
    if values["enable_bucket"] and not values["min_bucket_reso"] <= values["resolution"] <= values["max_bucket_reso"]:
        yield ("resolution", f"({values['resolution']}) is outside the bucket range "
               f"{values['min_bucket_reso']}-{values['max_bucket_reso']}", "widen min/max_bucket_reso or change resolution", "error")
    for name in ("resolution", "sample_width", "sample_height"):
        if values[name] % 8:
            yield (name, f"({values[name]}) is not a multiple of 8", "Stable Diffusion needs sides that are multiples of 8", "error")
    if values["bucket_reso_steps"] % 8:
        yield ("bucket_reso_steps", f"({values['bucket_reso_steps']}) is not a multiple of 8", "use 64 (or 8, 16, 32)", "error")
    if values["sample_every_n_steps"] and not values["sample_prompts"]:
        yield ("sample_every_n_steps", "is set but sample_prompts is empty, so no samples will be made",
               "add sample_prompts or set sample_every_n_steps to 0", "warning")
    if values["text_encoder_lr"] is not None and not values["train_text_encoder"]:
        yield ("text_encoder_lr", "is set but train_text_encoder is off, so it has no effect",
               "turn train_text_encoder on or clear text_encoder_lr", "warning")
    if values["keep_tokens"] and not values["shuffle_caption"]:
        yield ("keep_tokens", "only matters when shuffle_caption is on", "turn shuffle_caption on or set keep_tokens to 0", "warning")
    if values["use_dora"] and values["lora_type"] != "lora":
        yield ("use_dora", f"applies to lora_type lora, not {values['lora_type']}",
               "set lora_type: lora, or turn use_dora off", "error")
    if values["optimizer"] == "AdamWScheduleFree" and values["ema_decay"]:
        yield ("ema_decay", "cannot be used with AdamWScheduleFree, whose weights are an average already",
               "clear ema_decay, or choose another optimizer", "error")
    if values["optimizer"] == "AdamWScheduleFree" and values["lr_scheduler"] != "constant":
        yield ("lr_scheduler", f"({values['lr_scheduler']}) cannot be used with AdamWScheduleFree, which replaces the "
               "schedule (it warms up over lr_warmup_steps itself)", "set lr_scheduler: constant", "error")
    if values["optimizer"] == "Prodigy" and values["learning_rate"] < 0.1:
        yield ("learning_rate", f"({values['learning_rate']:g}) is very low for Prodigy, which expects about 1.0",
               "set learning_rate to 1.0 with Prodigy", "warning")
    elif values["optimizer"] != "Prodigy" and values["learning_rate"] > 0.01:
        yield ("learning_rate", f"({values['learning_rate']:g}) is very high for {values['optimizer']} and will likely diverge",
               "LoRA usually trains at 1e-4 to 5e-4", "warning")
