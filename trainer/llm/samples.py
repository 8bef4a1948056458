"""Text samples during training: greedy answers to the sample prompts, one file per prompt and step.

Greedy decoding makes a sample depend only on the weights, so samples of different steps
compare. Names carry the step and prompt index as image samples do
(``samples/step-00000100_p00.txt``); the random states are left as they were.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainer.fsutil import atomic_write_text
from trainer.llm.model import LoadedLM
from trainer.llm.templates import ChatTemplate
from trainer.llm.tokenize import render_prompt
from trainer.precision import Precision, autocast
from trainer.sampling import sample_file_name

TEXT_IN_EVENT = 4000  # characters of an answer kept in its `sample` event (the file has all of it)


def write_text_samples(lm: LoadedLM, template: ChatTemplate, config: Any, step: int, out_dir: Path,
                       precision: Precision) -> list[dict]:
    """Answer every sample prompt; returns one event record per file written."""
    tokenizer, model = lm.tokenizer, lm.model
    records = []
    cpu_state = torch.get_rng_state()
    try:
        for index, prompt in enumerate(config.sample_prompts):
            text = render_prompt([{"role": "user", "content": prompt}], tokenizer, template)
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids.to(precision.device)
            with torch.no_grad(), autocast(precision):
                output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                        max_new_tokens=config.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
            answer = tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True)
            path = out_dir / sample_file_name(step, index, ".txt")
            atomic_write_text(path, answer)
            # The answer rides in the event too, so the monitor shows it without reading files on the share.
            records.append({"step": step, "prompt_index": index, "prompt": prompt, "path": f"{out_dir.name}/{path.name}",
                            "media": "text", "text": answer[:TEXT_IN_EVENT]})
    finally:
        torch.set_rng_state(cpu_state)
    return records
