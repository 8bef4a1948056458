"""Prompt embeddings for the UNet's cross-attention, with clip skip and an optional cache."""

from __future__ import annotations

import torch


class PromptEncoder:
    """Turns captions into text-encoder hidden states (the UNet's `encoder_hidden_states`).

    When the text encoder is frozen and a caption always reads the same, its embedding is
    computed once and kept (on the training device), which removes the text encoder from
    the step entirely.
    """

    def __init__(self, tokenizer, text_encoder, clip_skip: int, device: torch.device, cache: bool) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.clip_skip = clip_skip
        self.device = device
        self.cache_enabled = cache
        self._cache: dict[str, torch.Tensor] = {}

    def token_ids(self, captions: list[str]) -> torch.Tensor:
        """Token ids padded/truncated to the tokenizer's 77 tokens."""
        return self.tokenizer(captions, padding="max_length", max_length=self.tokenizer.model_max_length,
                              truncation=True, return_tensors="pt").input_ids

    def count_tokens(self, caption: str) -> int:
        """Tokens of a caption without the start/end tokens (over 75 are cut off)."""
        return len(self.tokenizer(caption, truncation=False).input_ids) - 2

    def _encode(self, captions: list[str]) -> torch.Tensor:
        ids = self.token_ids(captions).to(self.device)
        if self.clip_skip == 1:
            return self.text_encoder(ids).last_hidden_state
        output = self.text_encoder(ids, output_hidden_states=True)
        # Layer n from the end, normalised like the last layer is (A1111's clip skip).
        # transformers 5 has no `text_model` level any more; older versions do.
        text_model = getattr(self.text_encoder, "text_model", self.text_encoder)
        return text_model.final_layer_norm(output.hidden_states[-self.clip_skip])

    def __call__(self, captions: list[str]) -> torch.Tensor:
        """Hidden states for a batch of captions, [batch, 77, width]."""
        if not self.cache_enabled:
            return self._encode(captions)
        missing = sorted({c for c in captions if c not in self._cache})
        if missing:
            with torch.no_grad():
                for caption, hidden in zip(missing, self._encode(missing)):
                    self._cache[caption] = hidden
        return torch.stack([self._cache[c] for c in captions])

    def precompute(self, captions: list[str], batch_size: int = 32) -> None:
        """Fill the cache before training, so the first epoch is as fast as the rest."""
        unique = sorted(set(captions))
        for start in range(0, len(unique), batch_size):
            self(unique[start:start + batch_size])


def long_caption_warning(prompts: PromptEncoder, samples) -> tuple[str, str] | None:
    """(message, hint) naming the captions the text encoder will cut off, or None when none are too long."""
    long = [s for s in samples if prompts.count_tokens(s.caption) > 75]
    if not long:
        return None
    names = ", ".join(s.image_path.name for s in long[:5]) + (" ..." if len(long) > 5 else "")
    return (f"{len(long)} caption(s) are longer than 75 CLIP tokens and will be cut off: {names}",
            "shorten those captions; words past 75 tokens are ignored")
