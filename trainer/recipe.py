"""The image LoRA recipe: what one step of latent-diffusion training is, for every image family.

The loop itself (steps, checkpoints, resume, stop) is :class:`trainer.loop.TrainingLoop`'s.
The objective is the standard latent-diffusion one: encode
images to latents (cached), add noise at a random timestep, and train the LoRA layers of
the UNet (and optionally of the text encoders) to predict that noise (or velocity). What
differs between model families (SD, SDXL) is asked of the family's model
(:class:`trainer.models.family.DiffusionModel`); this module never names a family.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trainer.buckets import plan_steps
from trainer.checkpoint import ADAPTER_FILE
from trainer.config import TrainConfig
from trainer.distributed import DistContext
from trainer.data import (BatchEntry, Sample, batches_per_epoch, build_samples, epoch_batches, image_geometry,
                          image_loader, load_image_tensor, process_caption)
from trainer.latent_cache import LatentCache, LatentStats, fill_latent_cache
from trainer.lora import adapter_state, add_lora, save_safetensors, split_adapter_state
from trainer.lycoris import adapter_label
from trainer.lora_files import LoraFiles
from trainer.model_family import COMPANION_OPTIONS
from trainer.models.family import ImageGeometry, load_base_model
from trainer.optim import make_optimizer, make_scheduler
from trainer.objective import multires_noise
from trainer.precision import autocast, move_to
from trainer.loop import StopRequested, TrainingFailure, TrainingLoop
from trainer.rng_state import seed_everything
from trainer.rundir import RunWriter
from trainer.sampling import make_samples
from trainer.speed import apply_model_levers, describe, offloadable_parts, pin_memory
from trainer.tensorboard_log import tensorboard_writer
from trainer.text_encoding import long_caption_warning

log = logging.getLogger("trainer")


__all__ = ["LoRATrainingRecipe", "StopRequested", "TrainingFailure"]


class LoRATrainingRecipe(TrainingLoop):
    """Trains one image LoRA from a validated config and dataset into a run directory."""

    def __init__(self, config: TrainConfig, run: RunWriter, dataset_items: list, *, stop_flag=None,
                 dist: DistContext | None = None) -> None:
        super().__init__(config, run, stop_flag=stop_flag, dist=dist)
        self.items = dataset_items

    # ------------------------------------------------------------------------------------
    # setup

    def setup(self) -> None:
        """Load the model, fill the caches, then add LoRA layers and build the optimizer and schedule."""
        cfg = self.config
        self.run.set_state("preparing")
        device = self.resolve_device()
        # Each rank draws its own noise; rank 0 of a single process uses the plain seed.
        seed_everything(cfg.seed + self.dist.rank)

        self.model = self.load_model()
        model = self.model
        log.info("loaded %s (%s, %s prediction)", cfg.base_model, model.variant, model.prediction_type)
        model.configure(cfg)
        # The trained text encoders and their learning rates; the others stay frozen.
        self.text_encoder_lrs = model.text_encoder_lrs(cfg)

        # The VAE stays fp32: SD's and SDXL's VAEs overflow in fp16, and it mostly runs to fill the cache.
        move_to(model.vae, device, torch.float32).requires_grad_(False).eval()
        for name, encoder in model.text_encoders.items():
            move_to(encoder, device, torch.float32 if name in self.text_encoder_lrs else self.precision.weight_dtype)

        self.samples = build_samples(self.items, cfg)
        n_batches = batches_per_epoch(self.samples, cfg.batch_size)
        plan = plan_steps(n_batches, cfg.gradient_accumulation_steps, self.dist.world_size, cfg.epochs,
                          cfg.max_train_steps)
        self.steps_per_epoch, self.total_steps, self.total_epochs = plan.steps_per_epoch, plan.total_steps, plan.epochs
        self.run.update(total_steps=self.total_steps, total_epochs=self.total_epochs)
        log.info("%d images, %d batches per epoch, %d steps per epoch, %d steps in %d epochs", len(self.samples),
                 n_batches, self.steps_per_epoch, self.total_steps, self.total_epochs)

        # The caches are filled before the denoiser comes onto the GPU, and the frozen parts whose work
        # they hold leave it first: Flux.1's T5-XXL (9 GB) never shares a GPU with its 12B transformer.
        self._fill_caches(device)
        self._adapt(device)
        self.files = LoraFiles(model, cfg, self.samples, self.started_at)

        groups = [{"params": self.adapted[model.denoiser_name], "lr": cfg.learning_rate}]
        groups += [{"params": self.adapted[name], "lr": lr} for name, lr in self.text_encoder_lrs.items()]
        self.optimizer = make_optimizer(cfg.optimizer, groups, cfg.learning_rate, cfg.weight_decay, device=device,
                                        warmup_steps=cfg.lr_warmup_steps)
        self.lr_scheduler = make_scheduler(cfg.lr_scheduler, self.optimizer, cfg.lr_warmup_steps, self.total_steps,
                                           cfg.lr_scheduler_num_cycles, cfg.lr_scheduler_power)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.use_grad_scaler)
        # All noise and timesteps come from this generator: its state is part of a checkpoint.
        self.generator = torch.Generator().manual_seed(cfg.seed + self.dist.rank)
        self.tb = tensorboard_writer(self.root / "tb") if cfg.tensorboard and self.dist.is_main else None
        self.pipeline = None
        self.sample_conditioning: list[dict[str, torch.Tensor]] | None = None  # the sample prompts, encoded once

    def _fill_caches(self, device: torch.device) -> None:
        """Encode the captions (frozen encoders) and the images once, then move the parts whose work is
        cached to host memory (:func:`trainer.speed.offloadable_parts`): SDXL's encoders are 1.6 GB of a GPU."""
        cfg, model = self.config, self.model
        shuffled = cfg.shuffle_caption or cfg.caption_dropout_rate > 0
        self.prompts = model.prompt_encoder(cfg.clip_skip, device, cache=cfg.cache_text_encoder_outputs
                                            and not self.text_encoder_lrs and not cfg.shuffle_caption)
        self._warn_long_captions()
        if self.prompts.cache_enabled:
            captions = [s.caption for s in self.samples] + ([""] if shuffled else [])
            self.prompts.precompute(captions)
            # The sample prompts too: then sampling needs only the VAE back on the GPU (Flux's T5 is 9.5 GB).
            self.sample_conditioning = self._sample_inputs() if cfg.sample_prompts and self.dist.is_main else None
        # The text encoders go before the VAE encodes the images: its activations at 1024 px are GBs too.
        self.offloaded = offloadable_parts(device, latents_cached=False, prompts_cached=self.prompts.cache_enabled,
                                           text_encoders=list(model.text_encoders))
        self._place_offloaded(torch.device("cpu"))
        self.latents = self._prepare_latent_cache() if cfg.cache_latents != "off" else None
        self.offloaded = offloadable_parts(device, latents_cached=self.latents is not None,
                                           prompts_cached=self.prompts.cache_enabled,
                                           text_encoders=list(model.text_encoders))
        self._place_offloaded(torch.device("cpu"))
        if self.offloaded:
            log.info("kept in host memory while training (their outputs are cached): %s", ", ".join(self.offloaded))

    def _adapt(self, device: torch.device) -> None:
        """The denoiser onto the GPU (in 8 bits with `quantization_bit: 8`), LoRA layers on it and on the
        trained text encoders, gradient checkpointing and the speed levers."""
        cfg, model = self.config, self.model
        if cfg.quantization_bit == "8":
            from trainer.quantize import quantize_denoiser  # imports torchao: only for 8-bit runs

            log.info("8-bit base weights: %s", quantize_denoiser(model, device, self.precision.weight_dtype))
        else:
            move_to(model.denoiser, device, self.precision.weight_dtype)
        alpha = cfg.lora_scale_alpha
        self.adapted: dict[str, list[torch.nn.Parameter]] = {}
        for name in (model.denoiser_name, *self.text_encoder_lrs):
            self.adapted[name] = add_lora(model.component(name), model.lora_targets(name, cfg.lora_target),
                                          cfg.lora_rank, alpha, cfg.lora_dropout, lora_type=cfg.lora_type,
                                          use_dora=cfg.use_dora)
        for name, encoder in model.text_encoders.items():
            if name not in self.adapted:
                encoder.requires_grad_(False).eval()
        if cfg.gradient_checkpointing:
            model.denoiser.enable_gradient_checkpointing()
            for name in self.text_encoder_lrs:
                te = model.text_encoders[name]  # transformers 5 renamed the method
                (getattr(te, "activation_checkpointing_enable", None) or te.gradient_checkpointing_enable)()
        self.levers = apply_model_levers(model.denoiser, cfg, device, self.warn)
        log.info("speed: %s", describe(self.levers))
        self.params = [p for params in self.adapted.values() for p in params]
        log.info("%s rank %d alpha %g on %s layers of %s: %d trainable parameters", adapter_label(cfg), cfg.lora_rank,
                 alpha, cfg.lora_target, ", ".join(self.adapted), sum(p.numel() for p in self.params))
        self.warn_unused_options(self.model.spec)

    def _place_offloaded(self, device: torch.device, only: tuple[str, ...] | None = None) -> None:
        """Move the offloaded parts (``only`` those of them) to ``device`` (the GPU while sampling, else the CPU)."""
        for name in self.offloaded:
            if only is None or name in only:
                (self.model.vae if name == "vae" else self.model.text_encoders[name]).to(device)

    def _sample_inputs(self) -> list[dict[str, torch.Tensor]]:
        """Each sample prompt's pipeline inputs, encoded as training conditions (clip skip included; a pipeline
        encoding the text itself would not), in host memory. Needs the text encoders where the prompts encode."""
        cfg, model = self.config, self.model
        negative_text = cfg.sample_negative_prompt or ""
        with torch.no_grad():
            negative = self.prompts.encode([negative_text])
            return [{k: v.cpu() for k, v in model.sample_inputs(self.prompts.encode([p]), negative,
                                                                 not negative_text).items()}
                    for p in cfg.sample_prompts]

    def load_model(self):
        """The config's base model, offline (:func:`trainer.models.family.load_base_model`); the device
        benchmark gives a full-size one built in code instead."""
        cfg = self.config
        prediction = None if cfg.prediction_type == "auto" else cfg.prediction_type
        return load_base_model(cfg.base_model, model_family=cfg.model_family, allow_pickle=cfg.allow_pickle,
                               prediction_type=prediction,
                               companions={option: cfg[option] for option in COMPANION_OPTIONS if cfg[option]})

    def _warn_long_captions(self) -> None:
        warning = long_caption_warning(self.prompts, self.samples)
        if warning:
            log.warning(warning[0])
            self.run.log_event("warning", message=warning[0], hint=warning[1])

    def _prepare_latent_cache(self) -> LatentCache:
        def progress(done: int, total: int) -> None:
            self.run.update(state="preparing", cache_progress=[done, total])
            if self.stop_flag():
                raise StopRequested()

        cache, self.cache_fill_s = fill_latent_cache(self.samples, self.config, self.model.vae_identity, self.root,
                                                     self._encode_latents, progress)
        return cache

    @torch.no_grad()
    def _encode_latents(self, entries: list[tuple[Sample, bool]]) -> list[LatentStats]:
        images = torch.stack([load_image_tensor(s, f, self.config.max_image_pixels) for s, f in entries])
        dist = self.model.vae.encode(images.to(self.precision.device, torch.float32)).latent_dist
        return [LatentStats(m.cpu(), s.cpu()) for m, s in zip(dist.mean, dist.std)]

    # ------------------------------------------------------------------------------------
    # resume

    def structure(self) -> dict[str, Any]:
        """Options that shape the LoRA's tensors: a checkpoint only fits a run with the same ones."""
        cfg = self.config
        structure = {"lora_rank": cfg.lora_rank, "lora_target": cfg.lora_target,
                     "train_text_encoder": cfg.train_text_encoder}
        if cfg.lora_type != "lora" or cfg.use_dora:  # checkpoints of plain LoRA runs never said
            structure.update(lora_type=cfg.lora_type, use_dora=cfg.use_dora)
        if len(self.model.text_encoders) > 1:  # which of several encoders: SD checkpoints never said
            structure["text_encoders"] = sorted(self.text_encoder_lrs)
        return structure

    def data_order(self) -> dict[str, Any]:
        """Options that decide which batch comes when: changing them breaks exactness, not resume."""
        cfg = self.config
        return {"seed": cfg.seed, "batch_size": cfg.batch_size, "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
                "images": len(self.samples), "total_steps": self.total_steps}

    def load_adapter(self, folder: Path) -> None:
        """The LoRA weights of every adapted part from a checkpoint's adapter file."""
        from safetensors.torch import load_file
        from trainer.lora import load_lora_state_dict

        adapters = split_adapter_state(load_file(folder / ADAPTER_FILE))
        for name in self.adapted:
            load_lora_state_dict(self.model.component(name), adapters.get(name, {}))

    # ------------------------------------------------------------------------------------
    # one step

    def epoch_batches(self, epoch: int) -> Sequence[list[BatchEntry]]:
        """The epoch's bucketed batches, shuffled by the seed and the epoch."""
        cfg = self.config
        return epoch_batches(self.samples, cfg.batch_size, cfg.seed, epoch, cfg.random_flip)

    def batch_source(self, batches: Sequence[list[BatchEntry]]) -> Iterator[tuple[list[BatchEntry], torch.Tensor | None]]:
        """Each batch with its images, loaded ahead by workers when latents are not cached."""
        if self.latents is not None:
            return ((batch, None) for batch in batches)
        return zip(batches, image_loader(self.samples, list(batches), 0, self.config,
                                         pin_memory=pin_memory(self.precision.device)))

    def micro_step(self, item: tuple[list[BatchEntry], torch.Tensor | None]) -> tuple[float, dict[str, float]]:
        """Forward and backward of one batch; returns its loss and its image count."""
        batch, images = item
        latents, captions, geometry = self.batch_inputs(batch, images)
        return self.loss_and_backward(latents, captions, geometry), {"samples": len(batch)}

    def batch_inputs(self, batch: list[BatchEntry], images: torch.Tensor | None
                     ) -> tuple[torch.Tensor, list[str], list[ImageGeometry]]:
        """The data path: scaled latents (on the device), this step's captions and each image's geometry."""
        cfg = self.config
        if self.latents is not None:
            stats = [self.latents.get(self.samples[e.index], e.flip) for e in batch]
            mean = torch.stack([s.mean for s in stats])
            std = torch.stack([s.std for s in stats])
        else:
            with torch.no_grad():
                # non_blocking: from the loader's pinned memory (CUDA) the copy overlaps the step
                dist = self.model.vae.encode(images.to(self.precision.device, torch.float32,
                                                       non_blocking=True)).latent_dist
            mean, std = dist.mean.cpu(), dist.std.cpu()
        latents = mean + std * torch.randn(mean.shape, generator=self.generator)
        latents = self.model.scale_latents(latents).to(self.precision.device)
        # Caption shuffling/dropout depend only on where we are, so a resume repeats them exactly.
        caption_rng = random.Random(hash((cfg.seed, self.epoch, self.global_step, self.dist.rank, batch[0].index)))
        captions = [process_caption(self.samples[e.index].caption, shuffle=cfg.shuffle_caption, keep_tokens=cfg.keep_tokens,
                                    dropout_rate=cfg.caption_dropout_rate, rng=caption_rng) for e in batch]
        return latents, captions, [image_geometry(self.samples[e.index], e.flip) for e in batch]

    def loss_and_backward(self, latents: torch.Tensor, captions: list[str], geometry: list[ImageGeometry]) -> float:
        """The diffusion loss of one batch and its backward pass; returns the loss."""
        cfg = self.config
        device = self.precision.device
        model = self.model
        noise = torch.randn(latents.shape, generator=self.generator)
        if cfg.noise_offset:
            noise += cfg.noise_offset * torch.randn((latents.shape[0], latents.shape[1], 1, 1), generator=self.generator)
        # A noise-prediction family's option (flow matching's noise is its own target): warned about elsewhere.
        if cfg.multires_noise_iterations and "multires_noise_iterations" in self.model.spec.own_options:
            noise = multires_noise(noise, self.generator, cfg.multires_noise_iterations, cfg.multires_noise_discount)
        noise = noise.to(device)
        timesteps = model.sample_timesteps(latents, self.generator).to(device)
        noisy, target = model.noisy_and_target(latents, noise, timesteps)
        dtype = self.precision.weight_dtype
        with autocast(self.precision):
            conditioning = self.prompts(captions).to(dtype)
            prediction = model.predict(noisy.to(dtype), timesteps, conditioning, geometry)
        loss = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        if cfg.min_snr_gamma:
            loss = loss * model.loss_weights(timesteps, cfg.min_snr_gamma)
        if cfg.debiased_estimation_loss:
            loss = loss * model.debiased_weights(timesteps)
        loss = loss.mean()
        self.scaler.scale(loss / cfg.gradient_accumulation_steps).backward()
        return float(loss.detach())

    # ------------------------------------------------------------------------------------
    # samples, checkpoints, export

    def sample(self) -> None:
        """Render the sample prompts with the LoRA as trained so far (rank 0 only)."""
        if not self.dist.is_main:
            return
        self.run.set_state("sampling")
        if self.pipeline is None:
            from trainer.models import build_pipeline  # imports diffusers' pipelines: only when sampling
            self.pipeline = build_pipeline(self.model)
        self.set_training(False)
        self._place_offloaded(self.precision.device, ("vae",))  # the prompts are encoded here, not by the pipeline
        try:
            with autocast(self.precision):
                # Encoded once when the encoders are frozen and cached; else now, with the LoRA as trained so far.
                inputs = self.sample_conditioning or self._sample_inputs()
                inputs = [{k: v.to(self.precision.device) for k, v in one.items()} for one in inputs]
                records = make_samples(self.pipeline, self.config, self.global_step, self.root / "samples", inputs)
        finally:
            self._place_offloaded(torch.device("cpu"))
            self.set_training(True)
        for record in records:
            self.run.log_event("sample", **record)
        self.run.set_state("training")

    def save_adapter(self, folder: Path) -> None:
        """The LoRA weights, and a ready-to-use LoRA of this step (to try checkpoints in ComfyUI/A1111)."""
        states = self.files.states(self.adapted)
        save_safetensors(folder / ADAPTER_FILE, adapter_state(states))
        step = self.global_step
        with self.exported_weights():  # the LoRA to try is what the run would export now
            self.files.write_kohya(folder / f"{self.config.resolved_output_name}-step{step:08d}.safetensors",
                                   self.files.states(self.adapted), step, self.epoch + 1)

    def set_training(self, training: bool) -> None:
        """Train mode for the adapted parts (dropout on), eval mode while sampling."""
        for name in self.adapted:
            self.model.component(name).train(training)

    def export(self) -> Path:
        """Write the final LoRA (kohya layout with metadata) and the diffusers-layout file (rank 0)."""
        cfg = self.config
        if not self.dist.is_main:
            return self.root / f"{cfg.resolved_output_name}.safetensors"
        self.run.set_state("saving")
        states = self.files.states(self.adapted)
        path = self.root / f"{cfg.resolved_output_name}.safetensors"
        self.files.write_kohya(path, states, self.global_step, self.epoch + 1)
        for message in self.files.loader_notes():
            self.warn(message)
        self.run.log_event("export", path=path.name, step=self.global_step, format="kohya")
        diffusers = self.files.write_diffusers(self.root, states)
        if diffusers is not None:
            self.run.log_event("export", path=diffusers.relative_to(self.root).as_posix(), step=self.global_step,
                               format="diffusers")
        log.info("saved %s", path)
        return path
