"""The LoRA training recipe: setup -> (resume) -> train -> checkpoint -> export -> cleanup.

One class, read top to bottom. The loop is the standard latent-diffusion objective: encode
images to latents (cached), add noise at a random timestep, and train the LoRA layers of
the UNet (and optionally of the text encoders) to predict that noise (or velocity). What
differs between model families (SD, SDXL) is asked of the family's model
(:class:`trainer.models.family.DiffusionModel`); this module never names a family.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trainer import __version__
from trainer.buckets import plan_steps
from trainer.checkpoint import (ADAPTER_FILE, TRAINER_STATE_FILE, TRAINING_STATE_FILE, checkpoint_folder,
                                write_checkpoint)
from trainer.config import TrainConfig
from trainer.distributed import DistContext
from trainer.data import (BatchEntry, Sample, batch_positions, batches_per_epoch, build_samples, epoch_batches,
                          image_geometry, image_loader, load_image_tensor, process_caption)
from trainer.latent_cache import LatentCache, LatentStats, fill_latent_cache
from trainer.lora import adapter_state, add_lora, save_safetensors, split_adapter_state
from trainer.lora_files import LoraFiles
from trainer.models.family import ImageGeometry, load_base_model
from trainer.optim import make_optimizer, make_scheduler
from trainer.precision import autocast, move_to, resolve_precision
from trainer.rng_state import host_rng_state, restore_host_rng, restore_torch_rng, seed_everything, torch_rng_state
from trainer.problems import ExplainedError
from trainer.rundir import RunWriter
from trainer.sampling import make_samples
from trainer.fault_injection import kill_here_if_asked
from trainer.tensorboard_log import tensorboard_writer
from trainer.text_encoding import long_caption_warning

log = logging.getLogger("trainer")


class TrainingFailure(ExplainedError):
    """A failure we can explain: a message and what to do."""


class StopRequested(Exception):
    """Raised out of the loop after a graceful stop has saved its checkpoint."""


class LoRATrainingRecipe:
    """Trains one LoRA from a validated config and dataset into a run directory."""

    def __init__(self, config: TrainConfig, run: RunWriter, dataset_items: list, *, stop_flag=None,
                 dist: DistContext | None = None) -> None:
        self.config = config
        self.dist = dist or DistContext()
        self.run = run
        self.items = dataset_items
        self.root = Path(config.output_dir)
        # A callable returning True when a stop was asked for (signal handler or STOP file).
        self.stop_flag = stop_flag or (lambda: False)
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.started_at = time.time()
        self.train_started_at = self.started_at  # reset when the loop starts (for the ETA)
        self.resumed_from_step = 0

    # ------------------------------------------------------------------------------------
    # setup

    def setup(self) -> None:
        """Load the model, add LoRA layers, build data, optimizer and schedule, fill caches."""
        cfg = self.config
        self.run.set_state("preparing")
        self.precision = resolve_precision(cfg.device, cfg.mixed_precision)
        if self.precision.device.type == "cuda" and self.dist.enabled:
            self.precision = dataclasses.replace(self.precision, device=torch.device("cuda", self.dist.local_rank))
        device = self.precision.device
        log.info("device %s, precision %s%s", device, self.precision.name,
                 f", {self.dist.world_size} processes" if self.dist.enabled else "")
        # Each rank draws its own noise; rank 0 of a single process uses the plain seed.
        seed_everything(cfg.seed + self.dist.rank)

        prediction = None if cfg.prediction_type == "auto" else cfg.prediction_type
        self.model = load_base_model(cfg.base_model, model_family=cfg.model_family, allow_pickle=cfg.allow_pickle,
                                     prediction_type=prediction)
        model = self.model
        log.info("loaded %s (%s, %s prediction)", cfg.base_model, model.variant, model.prediction_type)
        model.configure(cfg)
        # The trained text encoders and their learning rates; the others stay frozen.
        self.text_encoder_lrs = model.text_encoder_lrs(cfg)

        # The VAE stays fp32: SD's and SDXL's VAEs overflow in fp16, and it mostly runs to fill the cache.
        move_to(model.vae, device, torch.float32).requires_grad_(False).eval()
        move_to(model.denoiser, device, self.precision.weight_dtype)
        for name, encoder in model.text_encoders.items():
            move_to(encoder, device, torch.float32 if name in self.text_encoder_lrs else self.precision.weight_dtype)

        alpha = cfg.lora_scale_alpha
        self.adapted: dict[str, list[torch.nn.Parameter]] = {}
        for name in (model.denoiser_name, *self.text_encoder_lrs):
            self.adapted[name] = add_lora(model.component(name), model.lora_targets(name, cfg.lora_target),
                                          cfg.lora_rank, alpha, cfg.lora_dropout)
        for name, encoder in model.text_encoders.items():
            if name not in self.adapted:
                encoder.requires_grad_(False).eval()
        if cfg.gradient_checkpointing:
            model.denoiser.enable_gradient_checkpointing()
            for name in self.text_encoder_lrs:
                te = model.text_encoders[name]  # transformers 5 renamed the method
                (getattr(te, "activation_checkpointing_enable", None) or te.gradient_checkpointing_enable)()
        self.params = [p for params in self.adapted.values() for p in params]
        log.info("LoRA rank %d alpha %g on %s layers of %s: %d trainable parameters", cfg.lora_rank, alpha,
                 cfg.lora_target, ", ".join(self.adapted), sum(p.numel() for p in self.params))
        self._warn_unused_options()

        self.samples = build_samples(self.items, cfg)
        self.files = LoraFiles(model, cfg, self.samples, self.started_at)
        n_batches = batches_per_epoch(self.samples, cfg.batch_size)
        plan = plan_steps(n_batches, cfg.gradient_accumulation_steps, self.dist.world_size, cfg.epochs,
                          cfg.max_train_steps)
        self.steps_per_epoch, self.total_steps, self.total_epochs = plan.steps_per_epoch, plan.total_steps, plan.epochs
        self.run.update(total_steps=self.total_steps, total_epochs=self.total_epochs)
        log.info("%d images, %d batches per epoch, %d steps per epoch, %d steps in %d epochs", len(self.samples),
                 n_batches, self.steps_per_epoch, self.total_steps, self.total_epochs)

        groups = [{"params": self.adapted[model.denoiser_name], "lr": cfg.learning_rate}]
        groups += [{"params": self.adapted[name], "lr": lr} for name, lr in self.text_encoder_lrs.items()]
        self.optimizer = make_optimizer(cfg.optimizer, groups, cfg.learning_rate, cfg.weight_decay)
        self.lr_scheduler = make_scheduler(cfg.lr_scheduler, self.optimizer, cfg.lr_warmup_steps, self.total_steps,
                                           cfg.lr_scheduler_num_cycles, cfg.lr_scheduler_power)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.use_grad_scaler)
        # All noise and timesteps come from this generator: its state is part of a checkpoint.
        self.generator = torch.Generator().manual_seed(cfg.seed + self.dist.rank)

        shuffled = cfg.shuffle_caption or cfg.caption_dropout_rate > 0
        self.prompts = model.prompt_encoder(cfg.clip_skip, device, cache=cfg.cache_text_encoder_outputs
                                            and not self.text_encoder_lrs and not cfg.shuffle_caption)
        self._warn_long_captions()
        self.latents = self._prepare_latent_cache() if cfg.cache_latents != "off" else None
        if self.prompts.cache_enabled:
            captions = [s.caption for s in self.samples] + ([""] if shuffled else [])
            self.prompts.precompute(captions)
        self.tb = tensorboard_writer(self.root / "tb") if cfg.tensorboard and self.dist.is_main else None
        self.pipeline = None

    def _warn_unused_options(self) -> None:
        """A warning for each option set in the config that this model's family does not use."""
        from trainer.config.schema import OPTIONS_BY_NAME
        from trainer.model_family import FAMILY_OPTIONS

        spec = self.model.spec
        for name in sorted(FAMILY_OPTIONS - spec.own_options):
            if self.config[name] != OPTIONS_BY_NAME[name].default:
                message = f"{name} has no effect on {spec.label} models"
                log.warning(message)
                self.run.log_event("warning", message=message, hint=f"remove {name} from the config")

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

    def _structure(self) -> dict[str, Any]:
        """Options that shape the LoRA's tensors: a checkpoint only fits a run with the same ones."""
        cfg = self.config
        structure = {"lora_rank": cfg.lora_rank, "lora_target": cfg.lora_target,
                     "train_text_encoder": cfg.train_text_encoder}
        if len(self.model.text_encoders) > 1:  # which of several encoders: SD checkpoints never said
            structure["text_encoders"] = sorted(self.text_encoder_lrs)
        return structure

    def _data_order(self) -> dict[str, Any]:
        """Options that decide which batch comes when: changing them breaks exactness, not resume."""
        cfg = self.config
        return {"seed": cfg.seed, "batch_size": cfg.batch_size, "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
                "images": len(self.samples), "total_steps": self.total_steps}

    def resume_from(self, folder: Path) -> None:
        """Restore weights, optimizer, schedule, scaler, every RNG and the data position."""
        from safetensors.torch import load_file
        from trainer.lora import load_lora_state_dict

        state = json.loads((folder / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
        if state.get("structure") != self._structure():
            raise TrainingFailure(
                f"checkpoint {folder.name} was trained with {state.get('structure')}, but the config now says "
                f"{self._structure()}", "put those options back, or start a new run in a new output_dir")
        if state.get("data_order") != self._data_order():
            message = (f"the data order changed since {folder.name} ({state.get('data_order')} -> {self._data_order()}): "
                       "the run continues, but it will not match an uninterrupted one exactly")
            log.warning(message)
            self.run.log_event("warning", message=message)
        adapters = split_adapter_state(load_file(folder / ADAPTER_FILE))
        for name in self.adapted:
            load_lora_state_dict(self.model.component(name), adapters.get(name, {}))
        training = torch.load(folder / TRAINING_STATE_FILE, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(training["optimizer"])
        self.lr_scheduler.load_state_dict(training["lr_scheduler"])
        self.scaler.load_state_dict(training["grad_scaler"])
        restore_torch_rng(training)
        self.generator.set_state(training["generator"])
        rank_rng = training.get("rank_rng") or []
        if self.dist.enabled:
            if len(rank_rng) == self.dist.world_size:
                self.generator.set_state(rank_rng[self.dist.rank]["generator"])
                torch.set_rng_state(rank_rng[self.dist.rank]["torch_rng"])
            else:
                log.warning("the checkpoint was saved by %d process(es), this run has %d: noise will differ from an "
                            "uninterrupted run", len(rank_rng), self.dist.world_size)
        restore_host_rng(state)
        self.global_step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.run.update(step=self.global_step, epoch=self.epoch + 1, last_checkpoint=str(folder.relative_to(self.root))
                        if folder.is_relative_to(self.root) else str(folder))
        self.run.log_event("resume", checkpoint=folder.name, step=self.global_step, epoch=self.epoch + 1)
        log.info("resumed from %s at step %d (epoch %d, batch %d)", folder.name, self.global_step, self.epoch + 1,
                 self.batch_in_epoch)

    # ------------------------------------------------------------------------------------
    # training

    def train(self) -> str:
        """Run the loop until the last step (returns "completed") or a stop (returns "stopped")."""
        cfg = self.config
        device = self.precision.device
        self.run.set_state("training", step=self.global_step, epoch=self.epoch + 1)
        self._set_training(True)
        per_step = cfg.gradient_accumulation_steps * self.dist.world_size
        window_start, window_samples = time.time(), 0
        last_status = 0.0

        while self.global_step < self.total_steps:
            batches = epoch_batches(self.samples, cfg.batch_size, cfg.seed, self.epoch, cfg.random_flip)
            groups = range(math.ceil(self.batch_in_epoch / per_step), math.ceil(len(batches) / per_step))
            plan = [(g, batch_positions(g, len(batches), cfg.gradient_accumulation_steps, self.dist.world_size,
                                        self.dist.rank)) for g in groups]
            images = None
            if self.latents is None:
                images = image_loader(self.samples, [batches[p] for _, ps in plan for p in ps], 0, cfg)
            for group, positions in plan:
                losses = []
                for position in positions:
                    losses.append(self._micro_step(batches[position], next(images) if images is not None else None))
                    window_samples += len(batches[position]) * self.dist.world_size
                self.batch_in_epoch = min((group + 1) * per_step, len(batches))
                mean_loss = self.dist.mean(sum(losses) / len(losses), device)
                if math.isfinite(mean_loss):
                    grad_norm = self.optimizer_step()
                else:
                    grad_norm = self._non_finite_loss(mean_loss)
                self.global_step += 1
                kill_here_if_asked("step", self.global_step)
                now = time.time()
                if self.global_step % cfg.log_every_n_steps == 0:
                    self._log_step(mean_loss, grad_norm, window_samples / max(now - window_start, 1e-9), now)
                    window_start, window_samples = now, 0
                if now - last_status >= 1.0 or self.global_step == self.total_steps:
                    self._update_progress(now)
                    last_status = now
                if cfg.sample_every_n_steps and cfg.sample_prompts and self.global_step % cfg.sample_every_n_steps == 0:
                    self.sample()
                if cfg.save_steps and self.global_step % cfg.save_steps == 0 and self.global_step < self.total_steps:
                    self.save_checkpoint()
                if self.global_step >= self.total_steps:
                    return "completed"
                if self.dist.any(self.stop_flag(), device):
                    log.info("stop requested: saving a checkpoint at step %d", self.global_step)
                    self.save_checkpoint()
                    return "stopped"
            # The epoch ran to its end: the next one starts at its first batch.
            self.epoch += 1
            self.batch_in_epoch = 0
            if cfg.save_every_n_epochs and self.epoch % cfg.save_every_n_epochs == 0:
                self.save_checkpoint()
        return "completed"

    def _micro_step(self, batch: list[BatchEntry], images: torch.Tensor | None) -> float:
        """Forward and backward of one batch; returns its loss."""
        latents, captions, geometry = self.batch_inputs(batch, images)
        return self.loss_and_backward(latents, captions, geometry)

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
                dist = self.model.vae.encode(images.to(self.precision.device, torch.float32)).latent_dist
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
        loss = loss.mean()
        self.scaler.scale(loss / cfg.gradient_accumulation_steps).backward()
        return float(loss.detach())

    def _non_finite_loss(self, loss: float) -> None:
        """Stop with an explanation, or (nan_policy: skip) drop this step's update."""
        step = self.global_step + 1
        hint = ("the learning rate is probably too high, or fp16 overflowed: lower learning_rate, "
                "or use mixed_precision: bf16 (or no)")
        if self.config.nan_policy == "stop":
            raise TrainingFailure(f"the loss became {loss} at step {step}", hint)
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_scheduler.step()  # keep the schedule aligned with the step count
        message = f"the loss became {loss} at step {step}; its update was skipped (nan_policy: skip)"
        log.warning(message)
        self.run.log_event("warning", message=message, hint=hint, step=step)
        return None

    def optimizer_step(self) -> float | None:
        """Clip, step the optimizer and the schedule, clear gradients; returns the gradient norm."""
        params = self.params
        grad_norm = None
        self.dist.average_gradients(params)
        self.scaler.unscale_(self.optimizer)
        if self.config.max_grad_norm:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm, foreach=True))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _log_step(self, loss: float, grad_norm: float | None, rate: float, now: float) -> None:
        record: dict[str, Any] = {"step": self.global_step, "epoch": self.epoch + 1, "loss": loss,
                                  "lr": self.lr_scheduler.get_last_lr()[0], "time": now, "samples_per_s": rate}
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        if self.precision.device.type == "cuda":
            record["mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
        self.run.log_metrics(record)
        if self.tb is not None:
            self.tb.add_scalar("loss", loss, self.global_step)
            self.tb.add_scalar("lr", record["lr"], self.global_step)

    def _update_progress(self, now: float) -> None:
        done = self.global_step - self.resumed_from_step
        elapsed = now - self.train_started_at
        eta = (self.total_steps - self.global_step) * elapsed / done if done and elapsed else None
        self.run.update(state="training", step=self.global_step, epoch=self.epoch + 1, eta_s=eta)

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
        self._set_training(False)
        try:
            with autocast(self.precision):
                records = make_samples(self.pipeline, self.config, self.global_step, self.root / "samples",
                                       self.precision.device)
        finally:
            self._set_training(True)
        for record in records:
            self.run.log_event("sample", **record)
        self.run.set_state("training")

    def save_checkpoint(self) -> Path:
        """Save LoRA weights and the full training state at the current step."""
        cfg = self.config
        step = self.global_step
        # Every rank's random state, so that each rank continues its own noise after a resume.
        rank_rng = self.dist.gather({"generator": self.generator.get_state(), "torch_rng": torch.get_rng_state()})
        if not self.dist.is_main:
            return checkpoint_folder(self.root, step)
        self.run.set_state("saving")

        def write(folder: Path) -> None:
            states = self.files.states(self.adapted)
            save_safetensors(folder / ADAPTER_FILE, adapter_state(states))
            # A ready-to-use LoRA of this step, so users can try checkpoints in ComfyUI/A1111.
            self.files.write_kohya(folder / f"{cfg.resolved_output_name}-step{step:08d}.safetensors", states, step,
                                   self.epoch + 1)
            torch.save({
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict(),
                "grad_scaler": self.scaler.state_dict(),
                **torch_rng_state(),
                "generator": self.generator.get_state(),
                "rank_rng": rank_rng,
            }, folder / TRAINING_STATE_FILE)
            (folder / TRAINER_STATE_FILE).write_text(json.dumps({
                "step": step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "total_steps": self.total_steps, "trainer_version": __version__, "time": time.time(),
                "structure": self._structure(), "data_order": self._data_order(),
                **host_rng_state(),
            }) + "\n", encoding="utf-8")
            kill_here_if_asked("checkpoint", step)

        folder = write_checkpoint(self.root, step, write, cfg.keep_last_n_checkpoints)
        relative = str(folder.relative_to(self.root))
        self.run.log_event("checkpoint", step=step, epoch=self.epoch + 1, path=relative)
        self.run.update(last_checkpoint=relative, state="training", step=step, epoch=self.epoch + 1)
        log.info("checkpoint saved: %s", relative)
        return folder

    def _set_training(self, training: bool) -> None:
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
        self.files.write_diffusers(self.root, states)
        self.run.log_event("export", path=path.name, step=self.global_step)
        log.info("saved %s", path)
        return path

    def cleanup(self) -> None:
        """Flush TensorBoard; the caller closes the run writer."""
        if getattr(self, "tb", None) is not None:
            self.tb.close()

    def run_all(self, resume_from: Path | None = None) -> str:
        """setup -> (resume) -> train -> export; returns the final state ("completed" or "stopped")."""
        self.setup()
        if resume_from is not None:
            self.resume_from(resume_from)
        self.train_started_at = time.time()
        self.resumed_from_step = self.global_step
        self.run.log_event("start", step=self.global_step, total_steps=self.total_steps)
        outcome = self.train()
        if outcome == "completed":
            self.export()
        return outcome
