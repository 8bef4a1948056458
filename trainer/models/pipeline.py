"""An inference pipeline over a loaded SD model, for sample images during training."""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline  # noqa: E402

from .sd import SDModel  # noqa: E402


def build_pipeline(model: SDModel) -> StableDiffusionPipeline:
    """A ``StableDiffusionPipeline`` that shares ``model``'s modules (LoRA layers included).

    The sampler is DPM-Solver++ (good images in 20-30 steps) made from the training
    scheduler's config, so betas and prediction type match the model. There is no safety
    checker (it would need another download and it is not this tool's call) and no
    progress bar (the trainer reports its own progress).
    """
    scheduler = DPMSolverMultistepScheduler.from_config(model.noise_scheduler.config)
    pipe = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=model.unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
