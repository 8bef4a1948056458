"""Inference pipelines over a loaded base model, for sample images during training."""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from diffusers import DPMSolverMultistepScheduler  # noqa: E402

from .family import DiffusionModel  # noqa: E402


def sampling_scheduler(model: DiffusionModel) -> DPMSolverMultistepScheduler:
    """DPM-Solver++ (good images in 20-30 steps) made from the training scheduler's config,
    so that betas and prediction type match the model."""
    return DPMSolverMultistepScheduler.from_config(model.noise_scheduler.config)


def build_pipeline(model: DiffusionModel):
    """The family's diffusers pipeline, sharing ``model``'s modules (LoRA layers included).

    There is no safety checker (it would need another download and it is not this tool's
    call) and no progress bar (the trainer reports its own progress).
    """
    return model.build_pipeline()
