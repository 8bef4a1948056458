"""The training loop every recipe shares: steps, checkpoints, resume, stop.

A recipe (images: :mod:`trainer.recipe`; text: :mod:`trainer.llm.recipe`) says what one
micro-batch is and how its loss is made; this class does the rest the same way for both:
gradient accumulation over ranks, clipping, the NaN policy, one metrics line per step,
progress in ``status.json``, samples and checkpoints at their steps, STOP between steps, and
a checkpoint that holds every state an exact resume needs (LoRA weights, optimizer,
schedule, grad scaler, every RNG and the position in the data).

A recipe's ``setup`` must set: ``precision``, ``params`` (the trained tensors), ``optimizer``,
``lr_scheduler``, ``scaler``, ``generator`` (the recipe's own noise and order RNG),
``total_steps``, ``steps_per_epoch``, ``total_epochs`` and ``tb`` (a TensorBoard writer or
None); and implement the hooks below the line "hooks".
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from trainer import __version__
from trainer.checkpoint import TRAINER_STATE_FILE, TRAINING_STATE_FILE, checkpoint_folder, write_checkpoint
from trainer.config import TrainConfig
from trainer.data import batch_positions
from trainer.distributed import DistContext
from trainer.fault_injection import hold_here_if_asked, kill_here_if_asked
from trainer.ema import EmaWeights
from trainer.exported_weights import exported_weights, set_optimizer_mode
from trainer.precision import resolve_precision
from trainer.problems import ExplainedError
from trainer.rng_state import host_rng_state, restore_host_rng, restore_torch_rng, torch_rng_state
from trainer.rundir import RunWriter

log = logging.getLogger("trainer")


class TrainingFailure(ExplainedError):
    """A failure we can explain: a message and what to do."""


class StopRequested(Exception):
    """Raised out of the loop after a graceful stop has saved its checkpoint."""


class TrainingLoop:
    """Runs a recipe's micro-batches into a run directory (see the module docstring)."""

    def __init__(self, config: TrainConfig, run: RunWriter, *, stop_flag=None, dist: DistContext | None = None) -> None:
        self.config = config
        self.dist = dist or DistContext()
        self.run = run
        self.root = Path(config.output_dir)
        # A callable returning True when a stop was asked for (signal handler or STOP file).
        self.stop_flag = stop_flag or (lambda: False)
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.started_at = time.time()
        self.train_started_at = self.started_at  # reset when the loop starts (for the ETA)
        self.resumed_from_step = 0
        self.tb = None
        self.ema: EmaWeights | None = None  # the moving average of the weights, with ema_decay

    # ------------------------------------------------------------------------------------
    # hooks

    def setup(self) -> None:
        """Load the model, add the LoRA, build data, optimizer and schedule (see the module docstring)."""
        raise NotImplementedError

    def epoch_batches(self, epoch: int) -> Sequence[Any]:
        """Every rank's batches of ``epoch``, in order (the same on every rank)."""
        raise NotImplementedError

    def batch_source(self, batches: Sequence[Any]) -> Iterator[Any]:
        """What :meth:`micro_step` gets for each of ``batches`` (a recipe may load ahead here)."""
        return iter(batches)

    def micro_step(self, item: Any) -> tuple[float, dict[str, float]]:
        """Forward and backward of one batch; its loss and counts for the metrics (``samples``, ...)."""
        raise NotImplementedError

    def structure(self) -> dict[str, Any]:
        """Options that shape the LoRA's tensors: a checkpoint only fits a run with the same ones."""
        raise NotImplementedError

    def data_order(self) -> dict[str, Any]:
        """Options that decide which batch comes when: changing them breaks exactness, not resume."""
        raise NotImplementedError

    def save_adapter(self, folder: Path) -> None:
        """Write the LoRA weights (and any ready-to-use file of this step) into a checkpoint folder."""
        raise NotImplementedError

    def load_adapter(self, folder: Path) -> None:
        """Load the LoRA weights of a checkpoint folder written by :meth:`save_adapter`."""
        raise NotImplementedError

    def set_training(self, training: bool) -> None:
        """Train mode for the adapted modules (dropout on), eval mode while sampling or evaluating."""
        raise NotImplementedError

    def sample(self) -> None:
        """Make the samples of this step (rank 0)."""

    def after_step(self, record: dict[str, Any]) -> None:
        """Called after each optimizer step with its metrics record (None-free); evaluation goes here."""

    def export(self) -> Path:
        """Write the finished LoRA; returns its path."""
        raise NotImplementedError

    def metrics_rates(self, counts: dict[str, float], seconds: float) -> dict[str, float]:
        """The metrics line's rates for what the last steps did (``samples_per_s``, ...)."""
        return {"samples_per_s": counts.get("samples", 0) / max(seconds, 1e-9)}

    def resolve_device(self) -> torch.device:
        """Set ``precision`` from the config (each rank of a multi-GPU run on its own GPU), say it, return the device."""
        from trainer.speed import apply_backend_flags, describe

        self.precision = resolve_precision(self.config.device, self.config.mixed_precision)
        if self.dist.enabled and self.precision.device.type == "cuda":
            self.precision = dataclasses.replace(self.precision, device=torch.device("cuda", self.dist.local_rank))
        flags = apply_backend_flags(self.precision.device, allow_tf32=self.config.allow_tf32,
                                    cudnn_benchmark=self.config.cudnn_benchmark)
        log.info("device %s, precision %s%s; %s", self.precision.device, self.precision.name,
                 f", {self.dist.world_size} processes" if self.dist.enabled else "", describe(flags))
        return self.precision.device

    def warn(self, message: str, hint: str = "") -> None:
        """A warning in the log and in events.jsonl."""
        log.warning(message)
        self.run.log_event("warning", message=message, **({"hint": hint} if hint else {}))

    def start_averaging(self) -> None:
        """The moving average of the trained weights, when ``ema_decay`` is set (after :meth:`setup`)."""
        if self.config.ema_decay:
            self.ema = EmaWeights(self.params, self.config.ema_decay)
            log.info("keeping a moving average of the weights (decay %g); the run exports it", self.config.ema_decay)

    def exported_weights(self) -> AbstractContextManager[None]:
        """The weights a user gets in place for a ``with`` block (:mod:`trainer.exported_weights`)."""
        return exported_weights(self.params, self.optimizer, self.ema)

    def warn_unused_options(self, spec) -> None:
        """A warning for each option set in the config that the model's family (``spec``) does not use."""
        from trainer.config.schema import OPTIONS_BY_NAME
        from trainer.model_family import FAMILY_OPTIONS

        for name in sorted(FAMILY_OPTIONS - spec.own_options):
            if self.config[name] != OPTIONS_BY_NAME[name].default:
                message = f"{name} has no effect on {spec.label} models"
                log.warning(message)
                self.run.log_event("warning", message=message, hint=f"remove {name} from the config")

    # ------------------------------------------------------------------------------------
    # resume

    def resume_from(self, folder: Path) -> None:
        """Restore weights, optimizer, schedule, scaler, every RNG and the data position."""
        state = json.loads((folder / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
        if state.get("structure") != self.structure():
            raise TrainingFailure(
                f"checkpoint {folder.name} was trained with {state.get('structure')}, but the config now says "
                f"{self.structure()}", "put those options back, or start a new run in a new output_dir")
        if state.get("data_order") != self.data_order():
            message = (f"the data order changed since {folder.name} ({state.get('data_order')} -> {self.data_order()}): "
                       "the run continues, but it will not match an uninterrupted one exactly")
            log.warning(message)
            self.run.log_event("warning", message=message)
        self.load_adapter(folder)
        training = torch.load(folder / TRAINING_STATE_FILE, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(training["optimizer"])
        if self.ema is not None:
            if "ema" in training:
                self.ema.load_state_dict(training["ema"])
            else:
                self.warn(f"checkpoint {folder.name} has no moving average (it was saved without ema_decay): the "
                          "average starts from its weights")
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
        self.set_training(True)
        set_optimizer_mode(self.optimizer, True)
        per_step = cfg.gradient_accumulation_steps * self.dist.world_size
        window_start, window = time.time(), {}
        last_status = 0.0

        while self.global_step < self.total_steps:
            batches = self.epoch_batches(self.epoch)
            groups = range(math.ceil(self.batch_in_epoch / per_step), math.ceil(len(batches) / per_step))
            plan = [(g, batch_positions(g, len(batches), cfg.gradient_accumulation_steps, self.dist.world_size,
                                        self.dist.rank)) for g in groups]
            source = self.batch_source([batches[p] for _, positions in plan for p in positions])
            for group, positions in plan:
                losses = []
                for _position in positions:
                    loss, counts = self.micro_step(next(source))
                    losses.append(loss)
                    for name, value in counts.items():
                        window[name] = window.get(name, 0) + value * self.dist.world_size
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
                    self._log_step(mean_loss, grad_norm, self.metrics_rates(window, now - window_start), now)
                    window_start, window = now, {}
                if now - last_status >= 1.0 or self.global_step == self.total_steps:
                    self._update_progress(now)
                    last_status = now
                if self._samples_due():
                    with self.exported_weights():
                        self.sample()
                if cfg.save_steps and self.global_step % cfg.save_steps == 0 and self.global_step < self.total_steps:
                    self.save_checkpoint()
                if self.global_step >= self.total_steps:
                    return "completed"
                hold_here_if_asked("step", self.global_step, self.stop_flag)
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

    def _samples_due(self) -> bool:
        """Samples every ``sample_every_n_steps``, and of the finished LoRA at the last step (``sample_at_end``):
        the samples a user judges a run by are those of the file it hands over."""
        cfg = self.config
        if not (cfg.sample_every_n_steps and cfg.sample_prompts):
            return False
        at_end = cfg.sample_at_end and self.global_step == self.total_steps
        return at_end or self.global_step % cfg.sample_every_n_steps == 0

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
        if self.ema is not None:
            self.ema.update(self.global_step + 1)
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _log_step(self, loss: float, grad_norm: float | None, rates: dict[str, float], now: float) -> None:
        record: dict[str, Any] = {"step": self.global_step, "epoch": self.epoch + 1, "loss": loss,
                                  "lr": self.lr_scheduler.get_last_lr()[0], "time": now, **rates}
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        if self.precision.device.type == "cuda":
            record["mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
        self.after_step(record)
        self.run.log_metrics(record)
        if self.tb is not None:
            for name in ("loss", "lr", "eval_loss"):
                if name in record:
                    self.tb.add_scalar(name, record[name], self.global_step)

    def _update_progress(self, now: float) -> None:
        done = self.global_step - self.resumed_from_step
        elapsed = now - self.train_started_at
        eta = (self.total_steps - self.global_step) * elapsed / done if done and elapsed else None
        self.run.update(state="training", step=self.global_step, epoch=self.epoch + 1, eta_s=eta)

    # ------------------------------------------------------------------------------------
    # checkpoints

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
            self.save_adapter(folder)
            torch.save({
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict(),
                "grad_scaler": self.scaler.state_dict(),
                **torch_rng_state(),
                "generator": self.generator.get_state(),
                "rank_rng": rank_rng,
                **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            }, folder / TRAINING_STATE_FILE)
            (folder / TRAINER_STATE_FILE).write_text(json.dumps({
                "step": step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "total_steps": self.total_steps, "trainer_version": __version__, "time": time.time(),
                "structure": self.structure(), "data_order": self.data_order(),
                **host_rng_state(),
            }) + "\n", encoding="utf-8")
            kill_here_if_asked("checkpoint", step)

        folder = write_checkpoint(self.root, step, write, cfg.keep_last_n_checkpoints)
        relative = str(folder.relative_to(self.root))
        self.run.log_event("checkpoint", step=step, epoch=self.epoch + 1, path=relative)
        self.run.update(last_checkpoint=relative, state="training", step=step, epoch=self.epoch + 1)
        log.info("checkpoint saved: %s", relative)
        return folder

    # ------------------------------------------------------------------------------------
    # the whole run

    def cleanup(self) -> None:
        """Flush TensorBoard; the caller closes the run writer."""
        if self.tb is not None:
            self.tb.close()

    def run_all(self, resume_from: Path | None = None) -> str:
        """setup -> (resume) -> train -> export; returns the final state ("completed" or "stopped")."""
        self.setup()
        self.dist.broadcast_parameters(self.params)  # one starting point on every rank (see there)
        self.start_averaging()
        if resume_from is not None:
            self.resume_from(resume_from)
        self.train_started_at = time.time()
        self.resumed_from_step = self.global_step
        self.run.log_event("start", step=self.global_step, total_steps=self.total_steps)
        outcome = self.train()
        if outcome == "completed":
            with self.exported_weights():
                self.export()
        return outcome
