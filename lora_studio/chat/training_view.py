"""How training will see the examples: which tokenizer counts, which template renders, and ``cutoff_len``.

They follow the training config being edited (the Train tab): its ``base_model`` (the tokenizer
of a language model folder, else an estimate), ``chat_template`` and ``cutoff_len``, with the
schema's defaults when no config says otherwise. Plain Python: the app reads the tokenizer
with :func:`~.tokenizer.load_tokenizer` in a worker and hands it to :meth:`TrainingView.use`.
"""

from __future__ import annotations

from pathlib import Path

from trainer.config.schema import defaults
from trainer.llm.formats import Example
from trainer.llm.templates import BUILTIN_TEMPLATES, DEFAULT_TEMPLATE

from .preview import ExamplePreview, choose, preview_example
from .tokenizer import ChatTokenizer, EstimateTokenizer

NO_CONFIG = "no training config is open (Train tab), so the base model is not known"


class TrainingView:
    """The tokenizer, template and ``cutoff_len`` an example is shown with."""

    def __init__(self) -> None:
        settings = defaults()
        self.default_cutoff: int = settings.get("cutoff_len") or 1024
        self.cutoff_len = self.default_cutoff
        self.template_name: str = settings.get("chat_template") or DEFAULT_TEMPLATE
        self.base_model: Path | None = None
        self.use(EstimateTokenizer(), NO_CONFIG)

    def read_config(self, raw: dict, config_dir: Path | None) -> Path | None:
        """Take ``cutoff_len`` and ``chat_template`` from a config; returns its base model folder (None: none)."""
        cutoff = raw.get("cutoff_len")
        self.cutoff_len = cutoff if isinstance(cutoff, int) and cutoff > 0 else self.default_cutoff
        name = raw.get("chat_template")
        self.template_name = name if name in BUILTIN_TEMPLATES else DEFAULT_TEMPLATE
        base = raw.get("base_model")
        if not isinstance(base, str) or not base:
            return None
        return (config_dir / base if config_dir else Path(base)).resolve()

    def use(self, tokenizer: ChatTokenizer, reason: str) -> None:
        """Count with ``tokenizer`` (``reason``: why it is an estimate, when it is); the template follows it."""
        self.tokenizer, self.reason = tokenizer, reason
        self.template = choose(tokenizer, self.template_name)

    def preview(self, example: Example) -> ExamplePreview:
        """``example`` rendered, its trained text and its tokens against ``cutoff_len``."""
        return preview_example(example, self.tokenizer, self.template, self.cutoff_len)

    def template_label(self) -> str:
        """Which template renders: "model's own" or "built-in “default”"."""
        return "model's own" if not self.template.builtin else f"built-in “{self.template.name}”"

    def note(self) -> str:
        """Why the example is shown as it is, when that is not the model's own tokenizer and template."""
        if not self.tokenizer.exact:
            return (f"Not counted with the model's tokenizer: {self.reason}. Shown with the built-in "
                    f"“{self.template.name}” template (end marker shown as {self.tokenizer.eos_token}); the token "
                    "count is an estimate.")
        if self.template.builtin:
            return (f"The tokenizer has no chat template: shown with the built-in “{self.template.name}” "
                    "template, which training uses for it.")
        return ""
