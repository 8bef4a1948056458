"""Load a causal language model for LoRA training, offline, and put peft's LoRA on it.

The model and tokenizer come from the folder alone (``local_files_only``); the folder's own
Python code runs only with ``allow_remote_code`` (the config check refuses it otherwise),
and pickled ``.bin`` weights only with ``allow_pickle``. QLoRA (``quantization_bit: 4``)
needs bitsandbytes and a CUDA GPU and is refused clearly without them.

Which layers get a LoRA is told from the module tree, not from per-architecture name lists:
a linear layer inside an attention block (a module path with ``attn``/``attention``) is an
attention projection, one inside ``mlp``/``feed_forward`` an MLP projection. That covers
Llama's ``q_proj``, Phi-3's fused ``qkv_proj`` and GLM-4's ``gate_up_proj`` alike.
"""

from __future__ import annotations

from trainer.models.offline import enable_offline_mode

enable_offline_mode()  # before transformers is imported: it reads it at import

import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from trainer.causal_lm_folder import weight_files  # noqa: E402
from trainer.models.errors import ModelLoadError  # noqa: E402

# peft 0.21 (the newest there is) still asks transformers 5 for its old name of this property.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

_ATTENTION_PARTS = ("attn", "attention")
_MLP_PARTS = ("mlp", "feed_forward", "ffn")
_HEADS = ("lm_head", "embed_out", "output_layer")  # output heads: never adapted (vLLM refuses full heads)
# lora_target -> the kinds of linear layer it adapts (image names work too: attention_ff = attention_mlp).
_TARGET_KINDS = {"attention": {"attention"}, "attention_ff": {"attention", "mlp"},
                 "attention_mlp": {"attention", "mlp"}, "all": {"attention", "mlp", "other"},
                 "all_linear": {"attention", "mlp", "other"}}


@dataclass
class LoadedLM:
    """The causal LM (peft-wrapped after :func:`add_lora`) and its tokenizer."""

    model: Any
    tokenizer: Any
    source: Path


def load_causal_lm(path: str | Path, *, dtype: torch.dtype, device: torch.device, allow_pickle: bool = False,
                   allow_remote_code: bool = False, quantization_bit: str = "none") -> LoadedLM:
    """The model (frozen, in ``dtype``, on ``device``) and tokenizer of a causal LM folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(path).expanduser()
    safe, _pickled = weight_files(folder)
    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": allow_remote_code,
                              "use_safetensors": bool(safe) or not allow_pickle, "dtype": dtype}
    if quantization_bit == "4":
        kwargs["quantization_config"] = _four_bit_config(device)
        kwargs["device_map"] = {"": device.index or 0}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=allow_remote_code)
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{folder} could not be loaded as a causal language model: {exc}",
                             "check that the folder is complete (config.json, weights, tokenizer)") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is masked out of the loss and the attention
    if quantization_bit != "4":
        model.to(device)
    model.requires_grad_(False)
    model.config.use_cache = False  # no KV cache while training (it only costs memory)
    return LoadedLM(model, tokenizer, folder)


def _four_bit_config(device: torch.device):
    """bitsandbytes' NF4 config with bf16 compute, or a clear refusal where QLoRA cannot run (the
    config check's, which `train` makes before anything is written)."""
    from trainer.model_check import check_quantization

    for problem in check_quantization("4", device.type):
        raise ModelLoadError(problem.message, problem.hint)
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def linear_kind(name: str) -> str | None:
    """"attention", "mlp", "other" for a linear layer's module path; None for an output head."""
    parts = name.lower().split(".")
    if parts[-1] in _HEADS:
        return None
    if any(p in part for part in parts[:-1] for p in _ATTENTION_PARTS):
        return "attention"
    if any(p in part for part in parts[:-1] for p in _MLP_PARTS):
        return "mlp"
    return "other"


def lora_target_modules(model: torch.nn.Module, lora_target: str) -> list[str]:
    """The leaf names (``q_proj``, ``down_proj`` ...) of the linear layers ``lora_target`` adapts, sorted."""
    kinds = _TARGET_KINDS[lora_target]
    names = set()
    for name, module in model.named_modules():
        is_linear = isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt")
        if is_linear and linear_kind(name) in kinds:
            names.add(name.rsplit(".", 1)[-1])
    if not names:
        raise ModelLoadError(f"the model has no linear layers that lora_target {lora_target} adapts",
                             "use lora_target all_linear")
    return sorted(names)


def add_lora(loaded: LoadedLM, config: Any) -> list[torch.nn.Parameter]:
    """Wrap the model in a peft LoRA (rank, alpha, dropout, DoRA, rsLoRA from ``config``); returns the trained tensors."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model = loaded.model
    if config.quantization_bit == "4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_scale_alpha, lora_dropout=config.lora_dropout,
                      target_modules=lora_target_modules(model, config.lora_target), use_dora=config.use_dora,
                      use_rslora=config.use_rslora, bias="none", task_type="CAUSAL_LM")
    loaded.model = get_peft_model(model, lora)
    return [p for p in loaded.model.parameters() if p.requires_grad]
