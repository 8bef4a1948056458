"""A language model of Llama 3.2 1B's shape with random weights, built in code for the device benchmark.

As :mod:`trainer.models.full_size` does for the image families: the published config's numbers
(meta-llama/Llama-3.2-1B ``config.json``: 1.24B parameters), random weights made directly on the
training device, nothing downloaded. ``tiny=True`` gives the tiny test Llama instead.
"""

from __future__ import annotations

from trainer.models.offline import enable_offline_mode

enable_offline_mode()  # before transformers is imported: it reads it at import

import torch  # noqa: E402

LLAMA_1B = {"vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
            "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192,
            "rope_theta": 500000.0, "tie_word_embeddings": True, "rms_norm_eps": 1e-5}


def build_language_model(*, device: torch.device, dtype: torch.dtype, tiny: bool = False):
    """A :class:`trainer.llm.model.LoadedLM`: a Llama of Llama 3.2 1B's shape (``tiny``: the tiny Llama's)
    with random weights on ``device`` in ``dtype``, and the tiny model's offline tokenizer (its ids
    fit any vocabulary; the model's own size is what costs)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.llm.model import LoadedLM
    from trainer.llm.tiny_model import SPECIAL_TOKENS, build_tiny_llama, train_llama_tokenizer
    from trainer.models.full_size import SOURCE, on_device

    tokenizer = train_llama_tokenizer()
    if tiny:
        model = build_tiny_llama(len(tokenizer)).to(device, dtype)
    else:
        ids = {name: SPECIAL_TOKENS.index(token) for name, token in
               (("pad_token_id", "<pad>"), ("bos_token_id", "<s>"), ("eos_token_id", "</s>"))}
        model = on_device(device, lambda: LlamaForCausalLM(LlamaConfig(**LLAMA_1B, **ids)), dtype)
    model.requires_grad_(False)
    model.config.use_cache = False
    return LoadedLM(model, tokenizer, SOURCE)
