"""Language-model LoRA throughput: does the data path stall, and how does it compare with transformers' Trainer?

Measures in one run, on a small random Llama (width 256, 4 layers; its tokenizer trained
offline) and alpaca rows of varied length, batch 8, LoRA rank 16 on attention and MLP:
- tokens_per_s: median tokens/s of `python -m trainer train` (its metrics lines);
- data_stall_ratio: the real data path (batch order, collation, padding) over the same steps
  on batches already collated in memory, as step times in one process (target <= 1.02);
  data_path_share_of_step: the data path's own time (timed alone) over a step's, the same
  question without the machine's noise;
- hf_trainer_tokens_per_s and vs_hf_trainer_ratio: a plain transformers `Trainer` with a peft
  LoRA of the same model, rows (tokenized the same way), batch size, learning rate and
  steps, timed per step by a callback; ours over theirs (target >= 1.0). The two take turns
  three times (once with --quick) and the medians are compared: on a small CPU machine one
  pair differs by +-10 % from noise alone;
- peak_rss_gb / hf_peak_rss_gb: the peak resident memory of each training process (on a GPU
  the trainer's own metrics carry mem_gb).
Per-step medians throughout, so start-up does not count.

Usage: python bench/llm_throughput.py [--quick]; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = "the a red blue green square circle shape colour number style flat wide tall small large answer".split()


def make_model(folder: Path) -> Path:
    """A Llama of width 256 with the tiny model's offline tokenizer and chat template."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from trainer.llm.tiny_model import make_tiny_llama

    tiny = make_tiny_llama(folder / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(tiny, local_files_only=True)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    model_dir = folder / "llama-256"
    LlamaForCausalLM(config).save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    return model_dir


def make_rows(path: Path, count: int) -> Path:
    """Alpaca rows whose answers run from a few to ~100 words (padding matters, as in real data)."""
    rng = random.Random(0)
    lines = []
    for i in range(count):
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20)))
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 100)))
        lines.append(json.dumps({"instruction": f"{question} {i}?", "output": answer}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(path: Path, model: Path, data: Path, out: Path, steps: int) -> Path:
    path.write_text("\n".join([
        f"base_model: {model}", f"dataset_path: {data}", f"output_dir: {out}", "lora_rank: 16", "batch_size: 8",
        f"max_train_steps: {steps}", "save_steps: 0", "learning_rate: 2e-4", "cutoff_len: 256",
        "tensorboard: false", "lora_target: attention_mlp", "seed: 1"]) + "\n", encoding="utf-8")
    return path


def median_gap(times: list[float]) -> float:
    return statistics.median(b - a for a, b in zip(times, times[1:]))


def peak_rss_gb_of(command: list[str]) -> float:
    """Run ``command`` and return its own peak resident memory (Linux reports ru_maxrss in KiB)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{command[1:4]} failed:\n{stderr.decode(errors='replace')[-2000:]}")
    return usage.ru_maxrss / 2**20


def ours(config: Path, out: Path) -> tuple[float, float, float]:
    """(median tokens/s, median step s, peak RSS GB) of `python -m trainer train`."""
    rss = peak_rss_gb_of([sys.executable, "-m", "trainer", "train", "--config", str(config)])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    tokens = statistics.median(r["tokens_per_s"] for r in records[2:])
    return tokens, median_gap([r["time"] for r in records[2:]]), rss


def data_stall(config: Path, steps: int) -> tuple[float, float]:
    """Step time through the real data path over step time on the same batches already collated, and
    the data path's share of a step (its own time, measured alone)."""
    from trainer.config import load_config
    from trainer.llm.formats import read_dataset
    from trainer.llm.recipe import LLMRecipe
    from trainer.precision import autocast
    from trainer.rundir import NullRunWriter

    cfg, _problems = load_config(config)
    recipe = LLMRecipe(cfg, NullRunWriter(cfg.output_dir), read_dataset(cfg.dataset_path))
    recipe.setup()
    batches = list(recipe.epoch_batches(0))[:steps]

    def run(step) -> float:
        start = time.perf_counter()
        for batch in batches:
            step(batch)
            recipe.optimizer_step()
        return time.perf_counter() - start

    collated = [recipe._collate([recipe.rows[i] for i in batch]) for batch in batches]
    ready = iter(collated)

    def in_memory(_batch) -> None:
        inputs = next(ready).inputs
        with autocast(recipe.precision):
            loss = recipe.lm.model(**inputs).loss
        recipe.scaler.scale(loss).backward()

    run(recipe.micro_step)  # warm-up: first-call costs out of both timings
    real, memory = [], []
    for _ in range(3):  # alternate, so drift hits both the same
        real.append(run(recipe.micro_step))
        ready = iter(collated)
        memory.append(run(in_memory))
    # The data path's own cost, timed alone: the ratio above is as noisy as the machine.
    start = time.perf_counter()
    for _ in range(10):
        for batch in batches:
            recipe._collate([recipe.rows[i] for i in batch])
    data_path_s = (time.perf_counter() - start) / (10 * len(batches))
    return statistics.median(real) / statistics.median(memory), data_path_s / (statistics.median(memory) / len(batches))


def hf_trainer(config: Path, tmp: Path, steps: int) -> tuple[float, float]:
    """(median tokens/s, peak RSS GB) of transformers' Trainer + peft on the same rows, in its own process."""
    script = tmp / "hf_run.py"
    script.write_text(HF_SCRIPT, encoding="utf-8")
    result_file = tmp / "hf_result.json"
    rss = peak_rss_gb_of([sys.executable, str(script), str(config), str(result_file), str(steps)])
    result = json.loads(result_file.read_text())
    return result["tokens_per_s"], rss


# The baseline, as a user of transformers would write it: our tokenization (the same rows and
# masks), their Trainer and collator, peft's LoRA with the same settings.
HF_SCRIPT = r'''
import json, statistics, sys, time
sys.path.insert(0, %r)
import torch
from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments
from peft import LoraConfig, get_peft_model
from trainer.config import load_config
from trainer.llm.formats import read_dataset
from trainer.llm.model import load_causal_lm, lora_target_modules
from trainer.llm.tokenize import template_for, tokenize_examples

cfg, _ = load_config(sys.argv[1]); out, steps = sys.argv[2], int(sys.argv[3])
torch.manual_seed(cfg.seed)
lm = load_causal_lm(cfg.base_model, dtype=torch.float32, device=torch.device("cpu"))
rows = tokenize_examples(read_dataset(cfg.dataset_path).examples, lm.tokenizer, template_for(lm.tokenizer),
                         cutoff_len=cfg.cutoff_len).rows
data = [{"input_ids": r.input_ids, "labels": r.labels, "attention_mask": [1] * len(r.input_ids)} for r in rows]
model = get_peft_model(lm.model, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_rank, target_modules=
                       lora_target_modules(lm.model, cfg.lora_target), task_type="CAUSAL_LM"))
times, tokens = [], []
class Clock(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        times.append(time.time())
args = TrainingArguments(output_dir=out + ".d", per_device_train_batch_size=cfg.batch_size, max_steps=steps,
                         learning_rate=cfg.learning_rate, logging_steps=10**9, save_strategy="no", report_to=[],
                         use_cpu=True, dataloader_num_workers=0, seed=cfg.seed, disable_tqdm=True)
collator = DataCollatorForSeq2Seq(lm.tokenizer, padding=True, label_pad_token_id=-100)
trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collator, callbacks=[Clock()])
trainer.train()
per_step = statistics.median(b - a for a, b in zip(times[2:], times[3:]))
mean_tokens = statistics.mean(len(r.input_ids) for r in rows) * cfg.batch_size
json.dump({"tokens_per_s": mean_tokens / per_step}, open(out, "w"))
''' % str(ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (under a minute)")
    args = parser.parse_args()
    steps = 8 if args.quick else 40
    tmp = Path(tempfile.mkdtemp(prefix="llm-bench-"))
    try:
        model = make_model(tmp)
        data = make_rows(tmp / "rows.jsonl", 400)
        # Ours and theirs take turns (A B A B), so a slow minute of the machine hits both.
        mine, theirs = [], []
        for turn in range(1 if args.quick else 3):
            config = write_config(tmp / f"config-{turn}.yaml", model, data, tmp / f"run-{turn}", steps)
            mine.append(ours(config, tmp / f"run-{turn}"))
            theirs.append(hf_trainer(config, tmp, steps))
        tokens_per_s, step_s, rss = (statistics.median(values) for values in zip(*mine))
        hf_tokens, hf_rss = (statistics.median(values) for values in zip(*theirs))
        stall, data_share = data_stall(write_config(tmp / "stall.yaml", model, data, tmp / "stall", steps),
                           4 if args.quick else 20)
        # Our tokens/s counts the tokens of the batches trained; the Trainer's the mean row times the batch.
        figures = {"tokens_per_s": round(tokens_per_s, 1), "step_s": round(step_s, 4),
                   "data_stall_ratio": round(stall, 3), "data_path_share_of_step": round(data_share, 4), "hf_trainer_tokens_per_s": round(hf_tokens, 1),
                   "vs_hf_trainer_ratio": round(tokens_per_s / hf_tokens, 3), "peak_rss_gb": round(rss, 2),
                   "hf_peak_rss_gb": round(hf_rss, 2), "steps": steps, "turns": len(mine)}
        print(json.dumps(figures))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
