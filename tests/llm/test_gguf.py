"""`export: gguf`: the adapter as a llama.cpp LoRA file, read back with gguf-py's own reader.

What llama.cpp checks when it loads a LoRA (general.type, adapter.type, the architecture, a
``.lora_a``/``.lora_b`` pair named after each base tensor, ne of A = (in, rank) and of B =
(rank, out)) is checked here against gguf-py's tables; and B·A·alpha/rank rebuilt from the file
must be the peft adapter's delta with the q/k row order llama.cpp's converter gives the base
weights, a permutation computed here from its definition.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.cli_helpers import trainer_cli
from tests.llm.test_train import write_config, write_rows

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (pip install -c constraints.txt gguf)")

pytestmark = pytest.mark.slow


def ggml_rope_row_order(rows: int, heads: int) -> list[int]:
    """Row j of a q/k weight in ggml's layout is row order[j] of Hugging Face's.

    Hugging Face's rotary embedding pairs dimension i of a head with dimension i + d/2
    (rotate_half); ggml's (llama.cpp's LLAMA rope) pairs 2i with 2i + 1. So within each head
    the rows i and i + d/2 become neighbours.
    """
    d = rows // heads
    return [h * d + half * (d // 2) + i for h in range(heads) for i in range(d // 2) for half in (0, 1)]


def test_that_row_order_makes_ggmls_rope_of_the_llama_layout_equal_hugging_faces():
    """Why q and k are permuted at all: rotating adjacent pairs (ggml) of the permuted rows gives the
    permuted result of rotating halves (Hugging Face's rotate_half), at any position."""
    rng = np.random.default_rng(0)
    d, position = 16, 7.0
    theta = position * 10000.0 ** (-np.arange(0, d, 2) / d)
    q = rng.standard_normal(d)
    cos, sin = np.tile(np.cos(theta), 2), np.tile(np.sin(theta), 2)
    hugging_face = q * cos + np.concatenate([-q[d // 2:], q[:d // 2]]) * sin
    order = ggml_rope_row_order(d, 1)
    pairs = q[order].reshape(-1, 2)
    ggml = np.stack([pairs[:, 0] * np.cos(theta) - pairs[:, 1] * np.sin(theta),
                     pairs[:, 0] * np.sin(theta) + pairs[:, 1] * np.cos(theta)], axis=1).reshape(-1)
    np.testing.assert_allclose(ggml, hugging_face[order], atol=1e-12)


def expected_gguf_names(arch, blocks: int) -> dict[str, str]:
    """{Hugging Face module path: llama.cpp tensor name} from gguf-py's own tables for ``arch``:
    the tensors the architecture loads (MODEL_TENSORS) and the Hugging Face names each is known by."""
    from gguf.tensor_mapping import TensorNameMap

    names = {}
    for tensor in gguf.MODEL_TENSORS[arch]:
        for pattern in TensorNameMap.block_mappings_cfg.get(tensor, ()):
            for bid in range(blocks):
                names[pattern.format(bid=bid)] = gguf.TENSOR_NAMES[tensor].format(bid=bid) + ".weight"
    return names


def read_gguf(path: Path) -> tuple[dict, dict]:
    reader = gguf.GGUFReader(path)
    fields = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}
    return fields, {t.name: t for t in reader.tensors}


def check_against_peft(path: Path, adapter: Path, model: Path) -> dict:
    """Every check of the file against the adapter and the base model; returns its metadata."""
    fields, tensors = read_gguf(path)
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    model_config = json.loads((model / "config.json").read_text())
    base = load_file(model / "model.safetensors")
    peft = load_file(adapter / "adapter_model.safetensors")
    rank, alpha = adapter_config["r"], adapter_config["lora_alpha"]
    scale = alpha / math.sqrt(rank) if adapter_config["use_rslora"] else alpha / rank

    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA]
    names = expected_gguf_names(gguf.MODEL_ARCH.LLAMA, model_config["num_hidden_layers"])
    modules = sorted({k.removeprefix("base_model.model.").rsplit(".lora_", 1)[0] for k in peft})
    assert set(tensors) == {names[m] + suffix for m in modules for suffix in (".lora_a", ".lora_b")}

    heads = {"q_proj": model_config["num_attention_heads"], "k_proj": model_config["num_key_value_heads"]}
    for module in modules:
        a, b = tensors[names[module] + ".lora_a"], tensors[names[module] + ".lora_b"]
        assert a.tensor_type == b.tensor_type == gguf.GGMLQuantizationType.F32
        out_features, in_features = base[module + ".weight"].shape
        # llama.cpp's checks: ne of the base tensor is (in, out); A's is (in, rank), B's (rank, out).
        assert list(a.shape) == [in_features, rank] and list(b.shape) == [rank, out_features]
        delta = peft[f"base_model.model.{module}.lora_B.weight"] @ peft[f"base_model.model.{module}.lora_A.weight"]
        assert np.abs(delta).max() > 0, module  # trained: B is no longer zero
        leaf = module.rsplit(".", 1)[-1]
        if leaf in heads:
            delta = delta[ggml_rope_row_order(out_features, heads[leaf])]
        # llama.cpp's scale: alpha / rank, the rank read from B.
        rebuilt = np.asarray(b.data) @ np.asarray(a.data) * (fields["adapter.lora.alpha"] / b.shape[0])
        np.testing.assert_allclose(rebuilt, delta * scale, rtol=1e-5, atol=1e-7, err_msg=module)
    return fields


def test_the_gguf_file_is_what_llama_cpp_loads_with_the_adapters_delta(llm_alpaca_run, tiny_llama, tmp_path):
    from trainer.llm.gguf_lora import write_gguf_lora

    adapter = llm_alpaca_run[2] / "adapter"
    path = write_gguf_lora(adapter, json.loads((tiny_llama / "config.json").read_text()), tmp_path / "a.gguf", "run")
    fields = check_against_peft(path, adapter, tiny_llama)
    assert fields["adapter.lora.alpha"] == 8.0 and fields["general.name"] == "run"
    # The q rows really moved: the permutation is not the identity for the tiny Llama's heads.
    assert ggml_rope_row_order(64, 4) != list(range(64))


def test_export_gguf_writes_the_file_beside_the_adapter_and_keeps_rslora_scale(tmp_path, tiny_llama):
    data = write_rows(tmp_path / "train.jsonl", "alpaca", count=8)
    out = tmp_path / "run"
    config = write_config(tmp_path, tiny_llama, data, out, epochs=1, save_steps=0, export="gguf", use_rslora=True,
                          lora_target="attention", lora_alpha=16)
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    fields = check_against_peft(out / "adapter" / "adapter.gguf", out / "adapter", tiny_llama)
    # llama.cpp scales by alpha / rank: rsLoRA's alpha / sqrt(rank) is written as alpha * sqrt(rank).
    assert fields["adapter.lora.alpha"] == pytest.approx(16 * math.sqrt(8))
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {"adapter", "adapter/adapter.gguf"} <= {e.get("path") for e in events if e["kind"] == "export"}


def test_export_gguf_is_refused_before_training_where_llama_cpp_could_not_load_it(tmp_path, tiny_llama, monkeypatch):
    from trainer.llm import gguf_lora

    config = json.loads((tiny_llama / "config.json").read_text())
    assert gguf_lora.gguf_refusal(config) is None
    other = gguf_lora.gguf_refusal({**config, "architectures": ["GemmaForCausalLM"]})
    assert "GemmaForCausalLM" in other.message and "LlamaForCausalLM" in other.message
    assert "DoRA" in gguf_lora.gguf_refusal(config, use_dora=True).message
    monkeypatch.setattr(gguf_lora.importlib.util, "find_spec", lambda name: None)
    assert "needs the gguf package" in gguf_lora.gguf_refusal(config).message
    monkeypatch.undo()
    # Through the CLI: the run fails in its preparation, with the message and no traceback.
    data = write_rows(tmp_path / "d.jsonl", "alpaca", count=8)
    result = trainer_cli("train", "--config", str(write_config(tmp_path, tiny_llama, data, tmp_path / "run",
                                                               export="merged_gguf", use_dora=True)))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot carry a DoRA adapter" in result.stderr
    assert not (tmp_path / "run" / "adapter").exists()
