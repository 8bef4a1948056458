"""Samples are conditioned as training is: the recipe encodes the sample prompts with the family's own prompt
encoder and gives the pipeline the encoded states. The images are then the pipeline's own for the same text
(where its encoding is the trainer's), clip skip reaches the samples too, and the text encoders need not come
back to the GPU for them (Flux.1's and SD3's T5 is 9.5 GB)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.models.family import load_base_model
from trainer.text_encoding import T5PromptEncoder

# diffusers' DPM-Solver calls np.array(tensor, copy=False), which numpy 2 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
PROMPT = "a red square on a blue floor"


def _render(pipe, generator_seed: int = 0, **inputs) -> np.ndarray:
    return pipe(num_inference_steps=2, height=64, width=64, guidance_scale=4.0, output_type="np",
                generator=torch.Generator().manual_seed(generator_seed), **inputs).images[0]


def test_samples_from_the_trainers_encoding_are_the_images_the_pipeline_makes_from_the_text(family_model):
    model = load_base_model(family_model.diffusers_dir)
    pipe = model.build_pipeline()
    prompts = model.prompt_encoder(1, torch.device("cpu"), cache=False)
    text = {"prompt": PROMPT}
    if isinstance(prompts, T5PromptEncoder):  # the same T5 length as the trainer's (the pipelines default to 256/512)
        text["max_sequence_length"] = prompts.max_tokens
    with torch.no_grad():
        from_text = _render(pipe, **text)
        states = model.sample_inputs(prompts.encode([PROMPT]), prompts.encode([""]), negative_is_empty=True)
        from_states = _render(pipe, **states)
        other = _render(pipe, **model.sample_inputs(prompts.encode(["a green circle"]), prompts.encode([""]), True))
    assert np.abs(from_text - from_states).max() < 1e-4
    assert np.abs(other - from_states).max() > 1e-3  # the states carry the prompt: another prompt, another image


def test_clip_skip_reaches_the_samples_as_it_reaches_training(tiny_model_of):
    """SD with clip_skip 2: the samples come from the layer the run trains with, not the pipeline's last layer
    (diffusers' own `clip_skip` reaches for `text_model.final_layer_norm`, which transformers 5 removed)."""
    model = load_base_model(tiny_model_of("sd1").diffusers_dir)
    pipe = model.build_pipeline()
    last, skipped = (model.prompt_encoder(skip, torch.device("cpu"), cache=False) for skip in (1, 2))
    with torch.no_grad():
        sample = _render(pipe, **model.sample_inputs(skipped.encode([PROMPT]), skipped.encode([""]), True))
        unskipped = _render(pipe, **model.sample_inputs(last.encode([PROMPT]), last.encode([""]), True))
        from_text = _render(pipe, prompt=PROMPT)
    assert np.abs(unskipped - from_text).max() < 1e-4  # clip_skip 1 is the pipeline's own encoding
    assert np.abs(sample - unskipped).max() > 1e-3
