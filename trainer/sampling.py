"""Sample images during training: the same prompts and seeds every time, so steps compare."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from trainer.fsutil import atomic_write_bytes


def sample_file_name(step: int, prompt_index: int, suffix: str = ".png") -> str:
    """`step-00000100_p00.png` (text samples: `.txt`): sorts by step, then prompt."""
    return f"step-{step:08d}_p{prompt_index:02d}{suffix}"


def make_samples(pipeline, config, step: int, out_dir: Path, inputs: list[dict[str, torch.Tensor]]) -> list[dict]:
    """Render every sample prompt from its pipeline ``inputs`` (its encoded prompt, see
    ``DiffusionModel.sample_inputs``); returns one event record per image written.

    The global RNG states are saved and restored around sampling so that making samples
    never changes the training run (an exact resume must not depend on when samples ran).
    """
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    records = []
    try:
        for index, prompt in enumerate(config.sample_prompts):
            generator = torch.Generator(device="cpu").manual_seed(config.sample_seed + index)
            with torch.no_grad():
                image = pipeline(**inputs[index], num_inference_steps=config.sample_steps,
                                 guidance_scale=config.sample_guidance_scale, width=config.sample_width,
                                 height=config.sample_height, generator=generator).images[0]
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            path = out_dir / sample_file_name(step, index)
            atomic_write_bytes(path, buffer.getvalue())
            records.append({"step": step, "prompt_index": index, "prompt": prompt, "seed": config.sample_seed + index,
                            "path": f"{out_dir.name}/{path.name}"})
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
    return records
