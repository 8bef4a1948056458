"""Prompt conditioning for the denoiser, with an optional cache, and the long-caption warning.

:class:`PromptEncoder` owns what every family shares: tokenising to the encoder's 77
tokens, counting a caption's tokens, and the cache. When the text encoders are frozen and a
caption always reads the same, its conditioning is computed once and kept (on the training
device), which removes the text encoders from the step entirely. A family says how captions
become conditioning in :meth:`PromptEncoder.encode`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainer.wording import plural


@dataclass
class Conditioning:
    """What the text encoders give the denoiser: per-token states and, for SDXL, a pooled vector."""

    hidden: torch.Tensor  # [batch, tokens, width]
    pooled: torch.Tensor | None = None  # [batch, width] or None

    def to(self, dtype: torch.dtype) -> "Conditioning":
        """Both tensors cast to ``dtype``."""
        return Conditioning(self.hidden.to(dtype), None if self.pooled is None else self.pooled.to(dtype))


class PromptEncoder:
    """Turns captions into :class:`Conditioning`; subclasses implement :meth:`encode`."""

    token_encoder = "CLIP"  # whose tokens :attr:`token_limit` counts (Flux.1's and SD3's: T5's)

    def __init__(self, tokenizers, device: torch.device, cache: bool, token_limit: int = 75) -> None:
        self.tokenizers = list(tokenizers)
        self.device = device
        self.cache_enabled = cache
        self.token_limit = token_limit
        self._cache: dict[str, Conditioning] = {}

    @property
    def tokenizer(self):
        """The first tokenizer (the one that counts tokens; SDXL's two share a vocabulary)."""
        return self.tokenizers[0]

    def token_ids(self, captions: list[str], tokenizer=None) -> torch.Tensor:
        """Token ids padded/truncated to the tokenizer's 77 tokens."""
        tokenizer = tokenizer or self.tokenizer
        return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids

    def count_tokens(self, caption: str) -> int:
        """Tokens of a caption without the start/end tokens (over :attr:`token_limit` are cut off)."""
        return len(self.tokenizer(caption, truncation=False).input_ids) - 2

    def encode(self, captions: list[str]) -> Conditioning:
        """The conditioning of a batch of captions, computed now."""
        raise NotImplementedError

    def __call__(self, captions: list[str]) -> Conditioning:
        """Conditioning for a batch of captions (from the cache when it is on)."""
        if not self.cache_enabled:
            return self.encode(captions)
        missing = sorted({c for c in captions if c not in self._cache})
        if missing:
            with torch.no_grad():
                encoded = self.encode(missing)
                for index, caption in enumerate(missing):
                    pooled = None if encoded.pooled is None else encoded.pooled[index]
                    self._cache[caption] = Conditioning(encoded.hidden[index], pooled)
        entries = [self._cache[c] for c in captions]
        pooled = None if entries[0].pooled is None else torch.stack([e.pooled for e in entries])
        return Conditioning(torch.stack([e.hidden for e in entries]), pooled)

    def precompute(self, captions: list[str], batch_size: int = 32) -> None:
        """Fill the cache before training, so the first epoch is as fast as the rest."""
        unique = sorted(set(captions))
        for start in range(0, len(unique), batch_size):
            self(unique[start:start + batch_size])


class T5PromptEncoder(PromptEncoder):
    """A prompt encoder whose captions T5's limit cuts off (Flux.1's, SD3's): T5's tokenizer is the last one;
    the CLIPs before it see fewer tokens, but past T5's limit a word reaches no encoder."""

    token_encoder = "T5"

    def __init__(self, tokenizers, device: torch.device, cache: bool, max_tokens: int) -> None:
        super().__init__(tokenizers, device, cache, token_limit=max_tokens - 1)  # T5 ends with one </s>
        self.max_tokens = max_tokens

    @property
    def tokenizer(self):
        """T5's tokenizer (the one that counts tokens)."""
        return self.tokenizers[-1]

    def count_tokens(self, caption: str) -> int:
        """T5 tokens of a caption without the end token."""
        return len(self.tokenizer(caption, truncation=False).input_ids) - 1

    def t5_ids(self, captions: list[str]) -> torch.Tensor:
        """T5 token ids padded/truncated to :attr:`max_tokens`, on the device."""
        return self.tokenizer(captions, padding="max_length", max_length=self.max_tokens, truncation=True,
                              return_tensors="pt").input_ids.to(self.device)


def final_norm(text_encoder) -> torch.nn.Module:
    """A CLIP text encoder's final layer norm (transformers 5 has no `text_model` level in
    CLIPTextModel any more; CLIPTextModelWithProjection and older versions do)."""
    return getattr(text_encoder, "text_model", text_encoder).final_layer_norm


class ClipPromptEncoder(PromptEncoder):
    """SD 1.x/2.x: one CLIP text encoder's hidden states, with A1111's clip skip."""

    def __init__(self, tokenizer, text_encoder, clip_skip: int, device: torch.device, cache: bool) -> None:
        super().__init__([tokenizer], device, cache)
        self.text_encoder = text_encoder
        self.clip_skip = clip_skip

    def encode(self, captions: list[str]) -> Conditioning:
        """Hidden states [batch, 77, width] of the layer ``clip_skip`` from the end."""
        ids = self.token_ids(captions).to(self.device)
        if self.clip_skip == 1:
            return Conditioning(self.text_encoder(ids).last_hidden_state)
        output = self.text_encoder(ids, output_hidden_states=True)
        # Layer n from the end, normalised like the last layer is (A1111's clip skip).
        return Conditioning(final_norm(self.text_encoder)(output.hidden_states[-self.clip_skip]))


def long_caption_warning(prompts: PromptEncoder, samples) -> tuple[str, str] | None:
    """(message, hint) naming the captions the text encoder will cut off, or None when none are too long."""
    limit = prompts.token_limit
    long = [s for s in samples if prompts.count_tokens(s.caption) > limit]
    if not long:
        return None
    names = ", ".join(s.image_path.name for s in long[:5]) + (" ..." if len(long) > 5 else "")
    return (f"{plural(len(long), 'caption is', 'captions are')} longer than {limit} {prompts.token_encoder} tokens "
            "and will be cut off: "
            f"{names}",
            f"shorten those captions; words past {limit} tokens are ignored")
