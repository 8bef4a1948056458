"""Tiny random captioners for tests, the benchmark and demos (built in code, saved as folders).

Like :mod:`trainer.models.tiny` for Stable Diffusion: the real loading code runs on them,
offline, in seconds. Their captions are nonsense (BLIP) or fixed by construction (the
tagger), which is what tests need.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path

# Words for the tiny BLIP's vocabulary: whatever it generates is made of these.
BLIP_WORDS = ("a an the of with on in and cat dog bird red blue green house tree sky river "
              "photo painting drawing sitting standing small large bright dark").split()


def make_tiny_blip(folder: Path | str, seed: int = 0, image_size: int = 32, patch_size: int = 8) -> Path:
    """Save a random BlipForConditionalGeneration with a BLIP processor and BERT tokenizer."""
    from trainer.models.offline import enable_offline_mode

    enable_offline_mode()
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer, vocab = _bert_tokenizer(folder, extra=("[DEC]",))
    # BLIP's decoder starts from [DEC]: a special token, so it never shows in a caption.
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    dec = vocab.index("[DEC]")
    config = BlipConfig(
        text_config=dict(_SMALL, vocab_size=len(vocab), max_position_embeddings=64, bos_token_id=dec,
                         sep_token_id=3, pad_token_id=0, eos_token_id=3),
        vision_config=dict(_SMALL, image_size=image_size, patch_size=patch_size, projection_dim=32),
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    model.generation_config.min_new_tokens = 3  # a random model may otherwise stop at once
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def _bert_tokenizer(folder: Path, extra: tuple[str, ...] = ()):
    """A BERT WordPiece tokenizer over :data:`BLIP_WORDS`, from a ``vocab.txt`` written here."""
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BLIP_WORDS, *extra]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizer(vocab=str(vocab_file)), vocab


_SMALL = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)


def make_tiny_git(folder: Path | str, seed: int = 0, image_size: int = 32) -> Path:
    """Save a random GitForCausalLM with a CLIP image processor and a BERT tokenizer."""
    from trainer.models.offline import enable_offline_mode

    enable_offline_mode()
    import torch
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer, vocab = _bert_tokenizer(folder)
    config = GitConfig(vision_config=dict(_SMALL, image_size=image_size, patch_size=8), vocab_size=len(vocab),
                       max_position_embeddings=64, bos_token_id=2, eos_token_id=3, pad_token_id=0, **_SMALL)
    torch.manual_seed(seed)
    model = GitForCausalLM(config).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                   crop_size={"height": image_size, "width": image_size})
    GitProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def make_tiny_blip2(folder: Path | str, seed: int = 0, image_size: int = 32) -> Path:
    """Save a random Blip2ForConditionalGeneration (OPT text model) with its processor."""
    from trainer.models.offline import enable_offline_mode

    enable_offline_mode()
    import torch
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer, vocab = _bert_tokenizer(folder, extra=("<image>",))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    queries = 4
    config = Blip2Config(
        vision_config=dict(_SMALL, image_size=image_size, patch_size=8),
        qformer_config=dict(_SMALL, vocab_size=len(vocab), encoder_hidden_size=32, max_position_embeddings=64),
        text_config=dict(model_type="opt", vocab_size=len(vocab), hidden_size=32, ffn_dim=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32,
                         bos_token_id=2, eos_token_id=3, pad_token_id=0),
        num_query_tokens=queries, image_token_index=len(vocab) - 1,
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    processor = Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=queries)
    processor.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


# The tiny tagger's tags: (name, category, how it scores). Category 9 = rating, 0 = general,
# 4 = character. Fixed scores make thresholds testable; "red_theme"/"blue_theme" follow the
# image's colour, which proves the BGR input order is right.
TINY_TAGS: tuple[tuple[str, int, str | float], ...] = (
    ("general", 9, 0.80),
    ("explicit", 9, 0.10),
    ("red_theme", 0, "red"),
    ("blue_theme", 0, "blue"),
    ("solo", 0, 0.92),
    ("hatsune_miku", 4, 0.88),
    ("kagamine_rin", 4, 0.70),
    ("simple_background", 0, 0.60),
    ("^_^", 0, 0.50),
    ("long_hair", 0, 0.30),
)


def make_tiny_tagger(folder: Path | str, image_size: int = 32) -> Path:
    """Export a tiny WD14-style tagger (NHWC BGR 0-255 in, sigmoid scores out) and its tags CSV."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    linear = torch.nn.Linear(3, len(TINY_TAGS))
    with torch.no_grad():
        linear.weight.zero_()
        for index, (_, _, how) in enumerate(TINY_TAGS):
            if how == "red":  # channels arrive as B, G, R
                linear.weight[index] = torch.tensor([-12.0, 0.0, 12.0])
                linear.bias[index] = 0.0
            elif how == "blue":
                linear.weight[index] = torch.tensor([12.0, 0.0, -12.0])
                linear.bias[index] = 0.0
            else:
                linear.bias[index] = torch.logit(torch.tensor(float(how)))
    model = _tagger_module(linear).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.zeros(1, image_size, image_size, 3),), str(folder / "model.onnx"),
                          input_names=["input_1"], output_names=["predictions_sigmoid"],
                          dynamic_axes={"input_1": {0: "batch"}, "predictions_sigmoid": {0: "batch"}}, dynamo=False)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["tag_id", "name", "category", "count"])
    for index, (name, category, _) in enumerate(TINY_TAGS):
        writer.writerow([1000 + index, name, category, 100 - index])
    (folder / "selected_tags.csv").write_text(buffer.getvalue(), encoding="utf-8")
    return folder


def _tagger_module(linear):
    """The tiny tagger as a torch module (a function so that torch is imported only here)."""
    import torch

    class TinyTagger(torch.nn.Module):
        """Mean colour of the image -> one linear layer -> sigmoid."""

        def __init__(self, linear: torch.nn.Linear) -> None:
            super().__init__()
            self.linear = linear

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.linear(x.mean(dim=(1, 2)) / 255.0))

    return TinyTagger(linear)


def make_tiny_captioners(root: Path | str, realistic_inputs: bool = False) -> dict[str, Path]:
    """The tiny BLIP and tagger under ``root``: ``{"blip": ..., "wd14": ...}``.

    ``realistic_inputs`` gives them the input sizes of the real models (BLIP-base 384 px,
    WD14 448 px), so that preprocessing costs what it costs in real use (benchmarks).
    """
    root = Path(root)
    blip_size, patch, tagger_size = (384, 32, 448) if realistic_inputs else (32, 8, 32)
    return {"blip": make_tiny_blip(root / "tiny-blip", image_size=blip_size, patch_size=patch),
            "wd14": make_tiny_tagger(root / "tiny-wd14", image_size=tagger_size)}


if __name__ == "__main__":  # python -m trainer.labeling.tiny DIR
    import sys

    print(make_tiny_captioners(Path(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())))
