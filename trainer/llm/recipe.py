"""The language-model LoRA recipe: chats and texts to tokens, causal-LM loss on the answers.

The loop (steps, checkpoints, exact resume, stop, DDP) is :class:`trainer.loop.TrainingLoop`'s,
as for images. This recipe reads the checked examples, renders them through the chat template
(the tokenizer's own, else the named built-in, with a warning), masks the prompt out of the
loss (unless ``train_on_prompt``), cuts at ``cutoff_len`` and says how many rows it cut, holds
out ``val_size`` examples for ``eval_loss``, optionally packs short rows, and trains peft's
LoRA on the model's attention and MLP projections. Samples are greedy answers to
``sample_prompts``; the finished run writes ``adapter/`` (and ``merged/`` with ``export: merged``,
``adapter/adapter.gguf`` for llama.cpp with ``export: gguf``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from trainer.buckets import plan_steps
from trainer.causal_lm_folder import read_model_config
from trainer.checkpoint import ADAPTER_FILE
from trainer.config import TrainConfig
from trainer.distributed import DistContext
from trainer.llm.batches import TokenBatch, collate, epoch_order
from trainer.llm.formats import TextDataset
from trainer.llm.gguf_lora import gguf_refusal
from trainer.llm.model import LoadedLM, add_lora, load_causal_lm
from trainer.llm.outputs import EXPORT_PARTS, save_adapter_folder, save_merged_folder
from trainer.llm.tokenize import pack_rows, split_validation, template_for, tokenize_examples
from trainer.loop import TrainingFailure, TrainingLoop
from trainer.model_family import LLM
from trainer.models.errors import ModelLoadError
from trainer.optim import make_optimizer, make_scheduler
from trainer.precision import autocast
from trainer.problems import ExplainedError
from trainer.rng_state import seed_everything
from trainer.rundir import ADAPTER_DIR, GGUF_FILE, MERGED_DIR, RunWriter
from trainer.tensorboard_log import tensorboard_writer

log = logging.getLogger("trainer")


class LLMRecipe(TrainingLoop):
    """Trains one LoRA adapter of a causal language model from a checked text dataset."""

    def __init__(self, config: TrainConfig, run: RunWriter, dataset: TextDataset, *, stop_flag=None,
                 dist: DistContext | None = None) -> None:
        super().__init__(config, run, stop_flag=stop_flag, dist=dist)
        self.dataset = dataset

    # ------------------------------------------------------------------------------------
    # setup

    def setup(self) -> None:
        """Load the model, add the LoRA, tokenize and split the data, build optimizer and schedule."""
        cfg = self.config
        self.run.set_state("preparing")
        self.resolve_device()
        seed_everything(cfg.seed)  # the same LoRA initialisation on every rank
        self._check_exports()
        self.lm: LoadedLM = self.load_model()
        self.params = add_lora(self.lm, cfg)
        self.warn_unused_options(LLM)
        log.info("LoRA rank %d alpha %g on %s of %s: %d trainable parameters", cfg.lora_rank, cfg.lora_scale_alpha,
                 ", ".join(sorted(self.lm.model.peft_config["default"].target_modules)), self.lm.source.name,
                 sum(p.numel() for p in self.params))
        self._prepare_rows()
        per_epoch = math.ceil(len(self.rows) / cfg.batch_size)
        plan = plan_steps(per_epoch, cfg.gradient_accumulation_steps, self.dist.world_size, cfg.epochs,
                          cfg.max_train_steps)
        self.steps_per_epoch, self.total_steps, self.total_epochs = plan.steps_per_epoch, plan.total_steps, plan.epochs
        self.run.update(total_steps=self.total_steps, total_epochs=self.total_epochs)
        log.info("%d training rows (%d held out), %d steps per epoch, %d steps in %d epochs", len(self.rows),
                 len(self.val_rows), self.steps_per_epoch, self.total_steps, self.total_epochs)
        self.optimizer = make_optimizer(cfg.optimizer, [{"params": self.params, "lr": cfg.learning_rate}],
                                        cfg.learning_rate, cfg.weight_decay, device=self.precision.device,
                                        warmup_steps=cfg.lr_warmup_steps)
        self.lr_scheduler = make_scheduler(cfg.lr_scheduler, self.optimizer, cfg.lr_warmup_steps, self.total_steps,
                                           cfg.lr_scheduler_num_cycles, cfg.lr_scheduler_power)
        self.scaler = torch.amp.GradScaler(self.precision.device.type, enabled=self.precision.use_grad_scaler)
        self.generator = torch.Generator().manual_seed(cfg.seed + self.dist.rank)  # dropout draws from the global RNG
        self.tb = tensorboard_writer(self.root / "tb") if cfg.tensorboard and self.dist.is_main else None

    def load_model(self) -> LoadedLM:
        """The config's model folder, offline; the device benchmark gives a full-size one built in code."""
        cfg = self.config
        return load_causal_lm(cfg.base_model, dtype=self.precision.weight_dtype, device=self.precision.device,
                              allow_pickle=cfg.allow_pickle, allow_remote_code=cfg.allow_remote_code,
                              quantization_bit=cfg.quantization_bit)

    def _check_exports(self) -> None:
        """Refuse an export the finished run could not write (no gguf package, another architecture,
        DoRA), before anything loads or trains."""
        cfg = self.config
        if "gguf" not in EXPORT_PARTS[cfg.export]:
            return
        try:
            refusal = gguf_refusal(read_model_config(Path(cfg.base_model)), use_dora=cfg.use_dora)
        except ExplainedError as exc:
            refusal = exc
        if refusal is not None:  # refused as the other missing packages and model limits are: exit 2
            raise ModelLoadError(refusal.message, refusal.hint)

    def _prepare_rows(self) -> None:
        """Tokenize, report what cutoff_len cut, hold out the validation rows, pack if asked."""
        cfg = self.config
        tokenizer = self.lm.tokenizer
        self.template = template_for(tokenizer, cfg.chat_template)
        if self.template.warning:
            log.warning(self.template.warning)
            self.run.log_event("warning", message=self.template.warning)
        try:
            tokenized = tokenize_examples(self.dataset.examples, tokenizer, self.template, cutoff_len=cfg.cutoff_len,
                                          train_on_prompt=cfg.train_on_prompt)
            # The option is a float; from 1 up it is a count of examples (trainer.llm.tokenize.held_out_count).
            val_size = int(cfg.val_size) if cfg.val_size >= 1 else cfg.val_size
            rows, self.val_rows = split_validation(tokenized.rows, val_size, cfg.seed)
        except ExplainedError as exc:
            raise TrainingFailure(exc.message, exc.hint) from exc
        if tokenized.truncated:
            message = (f"{tokenized.truncated} of {len(self.dataset.examples)} examples are longer than cutoff_len "
                       f"({cfg.cutoff_len} tokens) and were cut" + (f"; {len(tokenized.dropped)} kept no answer "
                                                                    "tokens and were left out" if tokenized.dropped else ""))
            log.warning(message)
            self.run.log_event("warning", message=message, hint="raise cutoff_len, or shorten those examples")
        if not rows:
            raise TrainingFailure("no example is left to train on", "check cutoff_len and val_size")
        self.rows: Sequence[Any] = pack_rows(rows, cfg.cutoff_len) if cfg.packing else rows

    # ------------------------------------------------------------------------------------
    # the loop's hooks

    def structure(self) -> dict[str, Any]:
        """Options that shape the adapter's tensors."""
        cfg = self.config
        return {"lora_rank": cfg.lora_rank, "lora_target": cfg.lora_target, "use_dora": cfg.use_dora,
                "task": "text"}

    def data_order(self) -> dict[str, Any]:
        """Options that decide which rows come when."""
        cfg = self.config
        return {"seed": cfg.seed, "batch_size": cfg.batch_size, "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
                "rows": len(self.rows), "packing": cfg.packing, "total_steps": self.total_steps}

    def epoch_batches(self, epoch: int) -> Sequence[list[int]]:
        """Row indices of each batch of ``epoch``."""
        return epoch_order(len(self.rows), self.config.batch_size, self.config.seed, epoch)

    def micro_step(self, item: list[int]) -> tuple[float, dict[str, float]]:
        """The causal-LM loss of one batch (mean over its trained tokens) and its backward pass."""
        batch = self._collate([self.rows[i] for i in item])
        with autocast(self.precision):
            loss = self.lm.model(**batch.inputs).loss
        self.scaler.scale(loss / self.config.gradient_accumulation_steps).backward()
        return float(loss.detach()), {"samples": batch.rows, "tokens": batch.tokens}

    def _collate(self, rows: Sequence[Any]) -> TokenBatch:
        return collate(rows, self.lm.tokenizer.pad_token_id, self.precision.device)

    def metrics_rates(self, counts: dict[str, float], seconds: float) -> dict[str, float]:
        """Examples and tokens per second."""
        seconds = max(seconds, 1e-9)
        return {"samples_per_s": counts.get("samples", 0) / seconds, "tokens_per_s": counts.get("tokens", 0) / seconds}

    def after_step(self, record: dict[str, Any]) -> None:
        """``eval_loss`` on the held-out rows every ``eval_steps`` steps and at the last one."""
        cfg = self.config
        if not self.val_rows:
            return
        due = (cfg.eval_steps and self.global_step % cfg.eval_steps == 0) or self.global_step == self.total_steps
        if due:
            record["eval_loss"] = self.evaluate()

    def evaluate(self) -> float:
        """The mean loss per trained token of the held-out rows (no gradient, dropout off), with the weights
        the run would export now (the moving average with ``ema_decay``): the curve users pick a step by."""
        self.set_training(False)
        total, tokens = 0.0, 0
        try:
            with torch.no_grad(), autocast(self.precision), self.exported_weights():
                for start in range(0, len(self.val_rows), self.config.batch_size):
                    rows = self.val_rows[start:start + self.config.batch_size]
                    batch = self._collate(rows)
                    trained = int((batch.inputs["labels"][:, 1:] != -100).sum())
                    total += float(self.lm.model(**batch.inputs).loss) * trained
                    tokens += trained
        finally:
            self.set_training(True)
        return total / max(tokens, 1)

    def set_training(self, training: bool) -> None:
        """Dropout on while training, off while evaluating and sampling."""
        self.lm.model.train(training)

    def save_adapter(self, folder: Path) -> None:
        """The LoRA tensors, and a ready-to-load peft adapter of this step (``adapter/``)."""
        from peft.utils import get_peft_model_state_dict
        from trainer.lora import save_safetensors

        save_safetensors(folder / ADAPTER_FILE, get_peft_model_state_dict(self.lm.model))
        with self.exported_weights():  # the adapter to try is what the run would export now
            save_adapter_folder(self.lm, self.template, folder / ADAPTER_DIR)

    def load_adapter(self, folder: Path) -> None:
        """The LoRA tensors of a checkpoint."""
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(self.lm.model, load_file(folder / ADAPTER_FILE))

    # ------------------------------------------------------------------------------------
    # samples and export

    def sample(self) -> None:
        """Greedy answers to the sample prompts, one text file each (rank 0)."""
        if not self.dist.is_main:
            return
        from trainer.llm.samples import write_text_samples

        self.run.set_state("sampling")
        self.set_training(False)
        try:
            records = write_text_samples(self.lm, self.template, self.config, self.global_step, self.root / "samples",
                                         self.precision)
        finally:
            self.set_training(True)
        for record in records:
            self.run.log_event("sample", **record)
        self.run.set_state("training")

    def export(self) -> Path:
        """``adapter/`` (peft format, with the tokenizer and chat template), and ``merged/`` when asked (rank 0)."""
        adapter = self.root / ADAPTER_DIR
        if not self.dist.is_main:
            return adapter
        self.run.set_state("saving")
        parts = EXPORT_PARTS[self.config.export]
        gguf_name = self.config.resolved_output_name if "gguf" in parts else None
        save_adapter_folder(self.lm, self.template, adapter, _model_card(self.config, self.global_step), gguf_name)
        self.run.log_event("export", path=ADAPTER_DIR, step=self.global_step, format="peft")
        log.info("saved %s", adapter)
        if gguf_name is not None:
            self.run.log_event("export", path=f"{ADAPTER_DIR}/{GGUF_FILE}", step=self.global_step, format="gguf")
        if "merged" in parts:
            save_merged_folder(self.lm, self.template, self.root / MERGED_DIR)
            self.run.log_event("export", path=MERGED_DIR, step=self.global_step, format="merged")
            log.info("saved %s", self.root / MERGED_DIR)
        return adapter


def _model_card(config: TrainConfig, step: int) -> str:
    """The adapter's README: what it was trained on and how to load it."""
    return (f"# LoRA adapter for {Path(config.base_model).name}\n\nTrained by LoRA Studio for {step} steps "
            f"(rank {config.lora_rank}, alpha {config.lora_scale_alpha:g}, {config.lora_target}).\n\n"
            "Load it with `PeftModel.from_pretrained(base_model, this_folder)`, or give this folder to vLLM "
            "(`--enable-lora --lora-modules name=this_folder`).\n")
