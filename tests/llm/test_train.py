"""LLM LoRA through the real CLI on the tiny Llama: a YAML config trains, the loss falls, the adapter
loads in peft with every tensor, resume after SIGKILL is bit-identical, STOP stops, bad input is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.cli_helpers import ranks_trainer, trainer_cli
from tests.test_resume import run_killed_at

pytestmark = pytest.mark.slow
COLOURS = ("red", "blue", "green", "yellow")


def write_rows(path: Path, form: str, count: int = 24) -> Path:
    """``count`` examples in one of the three chat forms: question i, answer a colour."""
    rows = []
    for i in range(count):
        question, answer = f"Name colour number {i}.", f"{COLOURS[i % 4]} is the colour."
        if form == "alpaca":
            rows.append({"instruction": question, "output": answer})
        elif form == "sharegpt":
            rows.append({"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]})
        else:
            rows.append({"messages": [{"role": "system", "content": "Answer briefly."},
                                      {"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_config(folder: Path, model: Path, data: Path, out: Path, **extra) -> Path:
    # The acceptance's keys, and a few of the run's own.
    values = {"base_model": str(model), "dataset_path": str(data), "lora_rank": 8, "batch_size": 4, "epochs": 3,
              "learning_rate": 5e-3, "output_dir": str(out), "save_steps": 4, "tensorboard": False, "seed": 5,
              **extra}
    path = folder / f"config-{out.name}.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def alpaca_run(llm_alpaca_run):
    """The session's alpaca run (tests/conftest.py), shared with the app's text-sample test."""
    return llm_alpaca_run


def test_an_alpaca_config_trains_and_the_loss_falls(alpaca_run):
    _folder, _config, run = alpaca_run
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == status["total_steps"] == 15
    curve = losses(run)
    assert len(curve) == 15 and sum(curve[-3:]) / 3 < sum(curve[:3]) / 3
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(r["tokens_per_s"] > 0 for r in records)
    assert [r["step"] for r in records if "eval_loss" in r] == [5, 10, 15]
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == [f"step-{step:08d}_p{p:02d}.txt" for step in (5, 10, 15) for p in (0, 1)]


def test_the_adapter_loads_in_peft_with_every_tensor_and_changes_the_output(alpaca_run, tiny_llama):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = alpaca_run[2] / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8
    assert set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    saved = load_file(adapter / "adapter_model.safetensors")
    # Only LoRA tensors: vLLM refuses adapters that carry full embedding or lm_head weights.
    assert saved and all(".lora_A." in k or ".lora_B." in k for k in saved)

    base = AutoModelForCausalLM.from_pretrained(tiny_llama, local_files_only=True)
    ids = AutoTokenizer.from_pretrained(adapter, local_files_only=True)("Name colour number 2.", return_tensors="pt")
    before = base(**ids).logits
    model = PeftModel.from_pretrained(base, adapter)
    loaded = {name: p for name, p in model.named_parameters() if "lora_" in name}
    # Every LoRA tensor of the model came from the file, and the file has no other (no missing, no unexpected key).
    assert len(loaded) == len(saved)
    for name, tensor in saved.items():
        key = name.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
        assert torch.equal(loaded[key], tensor), name
    assert (model(**ids).logits - before).abs().max() > 1e-4


def test_a_folder_of_sharegpt_and_openai_files_trains_too(tmp_path, tiny_llama):
    folder = tmp_path / "chats"
    folder.mkdir()
    write_rows(folder / "sharegpt.jsonl", "sharegpt", count=6)
    write_rows(folder / "openai.jsonl", "openai", count=6)
    config = write_config(tmp_path, tiny_llama, folder, tmp_path / "run", epochs=2, save_steps=0)
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    curve = losses(tmp_path / "run")
    assert len(curve) == 6 and curve[-1] < curve[0]
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


def test_sigkill_then_resume_is_bit_identical(alpaca_run, tmp_path):
    folder, config, reference = alpaca_run
    values = yaml.safe_load(config.read_text())
    values["output_dir"] = str(tmp_path / "resumed")
    resumed = tmp_path / "config.yaml"
    resumed.write_text(yaml.safe_dump(values), encoding="utf-8")
    run_killed_at(resumed, "step:7")
    result = trainer_cli("train", "--config", str(resumed))
    assert result.returncode == 0, result.stderr
    expected = load_file(reference / "adapter" / "adapter_model.safetensors")
    got = load_file(tmp_path / "resumed" / "adapter" / "adapter_model.safetensors")
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    from trainer.rundir import MetricsSeries

    series = MetricsSeries(tmp_path / "resumed" / "metrics.jsonl")
    series.refresh()
    assert [r["step"] for r in series.records()] == list(range(1, 16))  # one curve, every step once


def test_a_stop_file_stops_with_a_checkpoint_and_the_run_resumes_to_the_end(tmp_path, tiny_llama):
    import time

    from tests.cli_helpers import trainer_process

    data = write_rows(tmp_path / "train.jsonl", "alpaca", count=40)
    out = tmp_path / "run"
    config = write_config(tmp_path, tiny_llama, data, out, epochs=40, save_steps=0)
    process = trainer_process("train", "--config", str(config), env={"LORA_TRAINER_HOLD_AT": "step:1"})
    deadline = time.monotonic() + 300
    while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().strip()):
        assert process.poll() is None and time.monotonic() < deadline, process.output()
        time.sleep(0.05)
    (out / "STOP").write_text("", encoding="utf-8")
    assert process.wait(timeout=300) == 0, process.output()
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "stopped" and 0 < status["step"] < status["total_steps"]
    assert status["last_checkpoint"] == f"checkpoints/step-{status['step']:08d}"
    values = yaml.safe_load(config.read_text())
    values["max_train_steps"] = status["step"] + 2  # finish soon after the resume
    config.write_text(yaml.safe_dump(values), encoding="utf-8")
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    resumed = json.loads((out / "status.json").read_text())
    assert resumed["state"] == "completed" and resumed["step"] == status["step"] + 2


def test_dora_rslora_checkpointing_and_the_merged_export(tmp_path, tiny_llama):
    """The options a user turns on for quality and memory train, and `export: merged` writes a model
    that loads alone and answers as the base model with the adapter does."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = write_rows(tmp_path / "train.jsonl", "openai", count=8)
    out = tmp_path / "run"
    config = write_config(tmp_path, tiny_llama, data, out, epochs=1, save_steps=0, use_dora=True, use_rslora=True,
                          gradient_checkpointing=True, export="merged", lora_target="all_linear")
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["use_dora"] and adapter_config["use_rslora"]
    ids = torch.tensor([[5, 17, 42, 9, 33]])
    merged = AutoModelForCausalLM.from_pretrained(out / "merged", local_files_only=True)
    assert list((out / "merged").glob("*.safetensors")) and not list((out / "merged").glob("*.bin"))
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, local_files_only=True)
    with_adapter = PeftModel.from_pretrained(base, out / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, with_adapter(ids).logits, atol=1e-4)


def test_with_ema_the_eval_loss_is_that_of_the_averaged_adapter_the_run_exports(tmp_path, tiny_llama):
    """Users pick a step by the eval curve: with ema_decay it must measure the average they get, not the raw weights."""
    from trainer.config import load_config
    from trainer.llm.formats import read_dataset
    from trainer.llm.recipe import LLMRecipe
    from trainer.rundir import RunWriter

    data = write_rows(tmp_path / "train.jsonl", "alpaca", count=16)
    path = write_config(tmp_path, tiny_llama, data, tmp_path / "run", epochs=1, save_steps=0, val_size=4,
                        eval_steps=0, ema_decay=0.5, learning_rate=2e-2)
    config, problems = load_config(path)
    assert config is not None, problems
    run = RunWriter(config.output_dir, "test")
    recipe = LLMRecipe(config, run, read_dataset(data))
    try:
        assert recipe.run_all() == "completed"
        recorded = [r["eval_loss"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
                    if "eval_loss" in r]
        ema, recipe.ema = recipe.ema, None  # evaluate() then measures the weights in place
        raw_weights = [p.detach().clone() for p in recipe.params]
        raw = recipe.evaluate()  # the last weights
        with ema.applied():
            averaged = recipe.evaluate()  # the average, as the adapter file has it
        assert all(torch.equal(a, b) for a, b in zip(raw_weights, recipe.params))  # measuring changed nothing
    finally:
        recipe.cleanup()
        run.close()
    assert len(recorded) == 1 and recorded[0] == pytest.approx(averaged, rel=1e-6)
    assert abs(raw - averaged) > 1e-4  # a strong average is another adapter: it would be seen


def test_4_bit_qlora_is_refused_on_the_cpu(tmp_path, tiny_llama):
    config = write_config(tmp_path, tiny_llama, write_rows(tmp_path / "d.jsonl", "alpaca"), tmp_path / "run",
                          quantization_bit="4", device="cpu")
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "quantization_bit 4 (QLoRA) needs a CUDA GPU" in result.stderr


def _refused(tmp_path: Path, model: Path, data: Path, command: str = "train", **extra) -> str:
    """What `train` (or `validate`: the same checks, without loading torch) says when it refuses."""
    config = write_config(tmp_path, model, data, tmp_path / "run", **extra)
    args = ["train", "--config", str(config)] if command == "train" else ["validate", "--config", str(config)]
    result = trainer_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
    return result.stdout + result.stderr


def _copy_model(tiny_llama: Path, folder: Path) -> Path:
    import shutil

    return Path(shutil.copytree(tiny_llama, folder))


def test_a_model_that_needs_its_own_code_is_refused_unless_allowed(tmp_path, tiny_llama):
    model = _copy_model(tiny_llama, tmp_path / "glm")
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_chatglm.ChatGLMForConditionalGeneration"}
    (model / "config.json").write_text(json.dumps(config))
    said = _refused(tmp_path, model, write_rows(tmp_path / "d.jsonl", "alpaca"), "validate")
    assert "needs the Python code in its folder" in said and "allow_remote_code: true" in said


def test_pickle_weights_are_refused_unless_allowed(tmp_path, tiny_llama):
    model = _copy_model(tiny_llama, tmp_path / "pickled")
    weights = load_file(model / "model.safetensors")
    (model / "model.safetensors").unlink()
    torch.save(weights, model / "pytorch_model.bin")
    said = _refused(tmp_path, model, write_rows(tmp_path / "d.jsonl", "alpaca"), "validate")
    assert "only pickle weights (pytorch_model.bin)" in said and "allow_pickle: true" in said


def test_a_model_without_a_tokenizer_is_refused(tmp_path, tiny_llama):
    model = _copy_model(tiny_llama, tmp_path / "no-tokenizer")
    (model / "tokenizer.json").unlink()
    said = _refused(tmp_path, model, write_rows(tmp_path / "d.jsonl", "alpaca"), "validate")
    assert "has no tokenizer" in said


def test_every_broken_row_is_named_with_its_line_before_anything_loads(tmp_path, tiny_llama):
    data = tmp_path / "broken.jsonl"
    data.write_bytes(b'{"instruction": "hi", "output": "hello"}\n{"instruction": "no answer"}\n'
                     b'{not json\n{"instruction": "x", "output": ""}\n')
    said = _refused(tmp_path, tiny_llama, data)
    for line in (2, 3, 4):
        assert f"broken.jsonl:{line}" in said, said


def test_an_image_option_set_for_a_language_model_is_named(tmp_path, tiny_llama):
    config = write_config(tmp_path, tiny_llama, write_rows(tmp_path / "d.jsonl", "alpaca"), tmp_path / "run")
    values = yaml.safe_load(config.read_text())
    del values["dataset_path"]
    values["train_data_dir"] = str(tmp_path)
    config.write_text(yaml.safe_dump(values))
    result = trainer_cli("validate", "--config", str(config), "--no-images")
    assert result.returncode == 2
    assert "dataset_path: is missing: a language model trains on text examples" in result.stdout + result.stderr


def test_a_packed_row_gives_each_example_the_loss_it_has_alone(tiny_llama):
    """Packing must not let an example see its neighbour: the packed logits equal the separate ones."""
    from transformers import AutoModelForCausalLM

    from trainer.llm.batches import collate
    from trainer.llm.tokenize import TokenizedRow, pack_rows

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, local_files_only=True).eval()
    rows = [TokenizedRow(list(range(5, 5 + n)), list(range(5, 5 + n)), Path("x"), i) for i, n in enumerate((7, 4))]
    packed = collate(pack_rows(rows, 16), 0, torch.device("cpu"))
    with torch.no_grad():
        together = model(**{k: v for k, v in packed.inputs.items() if k != "labels"}).logits[0]
        alone = [model(input_ids=torch.tensor([r.input_ids])).logits[0] for r in rows]
    assert torch.allclose(together[:7], alone[0], atol=1e-5)
    assert torch.allclose(together[7:11], alone[1], atol=1e-5)


def test_two_process_ddp_trains_and_writes_the_curve_once(tmp_path, tiny_llama):
    from trainer.config import load_config
    from trainer.estimate import text_run_figures

    data = write_rows(tmp_path / "train.jsonl", "alpaca", count=16)
    out = tmp_path / "run"
    config = write_config(tmp_path, tiny_llama, data, out, batch_size=2, epochs=2, save_steps=2)
    result = ranks_trainer(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 processes" in (out / "train.log").read_text()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # 16 rows at batch 2 on 2 ranks: 4 steps per epoch, written once, by rank 0.
    assert [m["step"] for m in metrics] == list(range(1, 9))
    figures = text_run_figures(load_config(config)[0], 16, world_size=2)
    assert (figures.steps_per_epoch, figures.total_steps) == (4, 8)
    newest = sorted((out / "checkpoints").iterdir())[-1]
    assert len(torch.load(newest / "training_state.pt", weights_only=True)["rank_rng"]) == 2  # both ranks' states
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
