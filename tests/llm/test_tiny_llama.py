"""The tiny Llama of `make-tiny-model --family llama`: loads offline, chats through its template, gives logits."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from trainer.llm.tiny_model import make_tiny_llama


def test_the_tiny_llama_loads_offline_and_its_forward_gives_logits_over_the_vocabulary(tiny_llama, chat_tokenizer):
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in tiny_llama.iterdir()}
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, local_files_only=True)
    assert isinstance(model, LlamaForCausalLM)
    config = json.loads((tiny_llama / "config.json").read_text())
    assert (config["num_hidden_layers"], config["num_attention_heads"], config["num_key_value_heads"]) == (2, 4, 2)
    assert 300 <= len(chat_tokenizer) <= 500 and model.config.vocab_size == len(chat_tokenizer)
    ids = chat_tokenizer.apply_chat_template([{"role": "user", "content": "Hello! How are you today?"}],
                                             add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert chat_tokenizer.decode(ids["input_ids"][0]) == (
        "<|im_start|>user\nHello! How are you today?<|im_end|>\n<|im_start|>assistant\n")
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape == (1, ids["input_ids"].shape[1], len(chat_tokenizer))
    assert torch.isfinite(logits).all()


def test_the_plain_variant_has_no_chat_template_and_the_same_seed_gives_the_same_weights(tiny_llama_plain, tmp_path):
    assert AutoTokenizer.from_pretrained(tiny_llama_plain, local_files_only=True).chat_template is None
    again = make_tiny_llama(tmp_path, chat_template=False)
    assert (again / "model.safetensors").read_bytes() == (tiny_llama_plain / "model.safetensors").read_bytes()
    assert (again / "tokenizer.json").read_bytes() == (tiny_llama_plain / "tokenizer.json").read_bytes()
