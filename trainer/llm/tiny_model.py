"""A tiny random Llama (``LlamaForCausalLM``) with its own tokenizer, for tests, demos and benchmarks.

It has Llama's structure (RMSNorm, rotary positions, grouped-query attention with 4 heads and
2 key/value heads, a SwiGLU MLP, untied input and output embeddings) at a width of 64 and two
layers, so that it trains on a CPU in seconds. The tokenizer is a byte-level BPE trained here,
offline, with the `tokenizers` library on the sentences below (no tokenizer can be downloaded at
run time), as :mod:`trainer.models.tiny_flux` trains its T5 tokenizer; being byte-level, it
encodes any text. Its special tokens are ``<s>`` (bos, put in front of text as Llama does),
``</s>`` (eos), ``<pad>`` and ChatML's ``<|im_start|>``/``<|im_end|>``, and its chat template is
the built-in ChatML one (:mod:`trainer.llm.templates`); ``chat_template=False`` writes it without
one, as a base model comes, for the built-in fallback.
"""

from __future__ import annotations

from trainer.models.offline import enable_offline_mode

enable_offline_mode()  # before transformers is imported: it reads the switches at import

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from trainer.fsutil import replace_folder  # noqa: E402
from trainer.llm.templates import BUILTIN_TEMPLATES  # noqa: E402

TINY_LLAMA_WIDTH = 64
TINY_LLAMA_VOCAB = 400  # 256 bytes, 5 special tokens, the rest merges
TINY_LLAMA_CONTEXT = 2048
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>")  # ids 0..4, in this order
# What the tokenizer learns its merges from: the words of chats in tests and demos.
_SENTENCES = (
    "Hello! How are you today?", "I am fine, thank you. How can I help you?",
    "What is the capital of France?", "The capital of France is Paris.",
    "Write a short poem about the sea.", "The sea is wide and blue, the waves are white.",
    "Translate this sentence into German.", "Summarize the text in one sentence.",
    "You are a helpful assistant.", "You are a friendly support assistant for our shop.",
    "Be brief and polite in every answer.", "Thanks for your help!", "You are welcome.",
    "Give me three ideas for a birthday party.", "A picnic, a film night and a treasure hunt.",
    "How do I reset my password?", "Open the settings, choose account and press reset password.",
    "Explain what a language model is.", "A language model predicts the next word of a text.",
    "Below is an instruction that describes a task.", "Write a response that appropriately completes the request.",
    "### Instruction:", "### Response:", "### User:", "### Assistant:", "### System:",
    "system", "user", "assistant", "input", "output", "question", "answer",
    "One, two, three, four, five, six, seven, eight, nine, ten.", "1 2 3 4 5 6 7 8 9 10 100 2024",
    "The quick brown fox jumps over the lazy dog.", "Once upon a time there was a small red house.",
    "It was a dark and stormy night; the rain fell in torrents.", "Please answer the question below.",
    "Continue the story.", "Yes.", "No.", "Maybe tomorrow.", "Good morning, good evening, good night.",
)


def train_llama_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE fast tokenizer trained offline on :data:`_SENTENCES` (about 400 tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(list(_SENTENCES) * 8, trainers.BpeTrainer(
        vocab_size=TINY_LLAMA_VOCAB, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # bos in front of text, as Llama's tokenizer does. (A ByteLevel post-processor would trim
    # the offsets of leading spaces; this one leaves them whole, which the label masks use.)
    core.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                        special_tokens=[("<s>", SPECIAL_TOKENS.index("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                                   model_max_length=TINY_LLAMA_CONTEXT)


def build_tiny_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    """The tiny Llama with seeded random weights (the global RNG is left as it was)."""
    ids = {name: SPECIAL_TOKENS.index(token) for name, token in
           (("pad_token_id", "<pad>"), ("bos_token_id", "<s>"), ("eos_token_id", "</s>"))}
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=TINY_LLAMA_WIDTH, intermediate_size=2 * TINY_LLAMA_WIDTH,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=TINY_LLAMA_CONTEXT, tie_word_embeddings=False, **ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()


def make_tiny_llama(out_dir: Path | str, seed: int = 0, *, chat_template: bool = True) -> Path:
    """Write the tiny Llama as a Hugging Face model folder ``out_dir/llama``; returns it.

    The folder holds ``config.json``, ``generation_config.json``, ``model.safetensors`` and the
    tokenizer files (``tokenizer.json``, ``tokenizer_config.json`` and, with ``chat_template``,
    ``chat_template.jinja``), and loads with ``from_pretrained(folder, local_files_only=True)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_llama_tokenizer()
    if chat_template:
        tokenizer.chat_template = BUILTIN_TEMPLATES["chatml"]
    model = build_tiny_llama(len(tokenizer), seed)
    final = out_dir / "llama"
    staging = out_dir / f".llama.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(str(staging))
    # The generic class name that transformers 4 (vLLM, older tools) and 5 both know; 5 writes its
    # own new name ("TokenizersBackend"), which 4 cannot load.
    config_path = staging / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    replace_folder(staging, final)
    return final
