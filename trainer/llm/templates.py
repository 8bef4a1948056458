"""Chat templates: the built-in ones, and which one a model trains with (torch-free).

A chat template turns a conversation into the exact text the model reads. The model's own
template (``chat_template`` in its tokenizer files) always wins: training with another one
teaches a format the model is not prompted with at inference, the classic cause of models
that repeat themselves or never stop. A tokenizer without one (most base models) gets a
built-in, named by the ``chat_template`` option, and a warning that says which was used
(the adapter is saved with that template, so inference can use the same one).

The built-ins are Jinja in the Hugging Face chat-template dialect: they see ``messages``
(``[{"role", "content"}]``, an optional system message first), ``add_generation_prompt``
and the tokenizer's special tokens (``eos_token``), and render the same under
transformers' ``apply_chat_template`` (``trim_blocks``/``lstrip_blocks``: they contain no
literal newlines outside Jinja strings, so those settings change nothing).

- ``default``: ``### System:`` / ``### User:`` / ``### Assistant:`` headers, blocks separated by
  a blank line, each answer ending with the tokenizer's ``eos_token`` (so the model learns
  to stop). It needs no special tokens, so it suits any tokenizer.
- ``alpaca``: the Stanford Alpaca prompt (its preamble, ``### Instruction:``, ``### Response:``,
  answers ending with ``eos_token``); a system message replaces the preamble; more turns
  repeat the instruction/response pair.
- ``chatml``: ``<|im_start|>role\\ncontent<|im_end|>\\n`` (Qwen, OpenHermes).
- ``llama3``: ``<|begin_of_text|>`` then ``<|start_header_id|>role<|end_header_id|>\\n\\ncontent<|eot_id|>``
  with the content trimmed, as in Meta's Llama 3 Instruct template.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from trainer.problems import ExplainedError

DEFAULT_TEMPLATE = "default"
ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.")

# Separators come *before* a block, never after an answer: then the text after an answer's
# end (eos_token, <|im_end|>) belongs to the next prompt, and the generation prompt is exactly
# what precedes an answer, which is what locating the trained tokens needs.
_DEFAULT = (
    r"{% for message in messages %}"
    r"{% if not loop.first %}{{ '\n\n' }}{% endif %}"
    r"{% if message['role'] == 'system' %}{{ '### System:\n' + message['content'] }}"
    r"{% elif message['role'] == 'user' %}{{ '### User:\n' + message['content'] }}"
    r"{% elif message['role'] == 'assistant' %}{{ '### Assistant:\n' + message['content'] + eos_token }}"
    r"{% else %}{{ raise_exception('unknown role: ' + message['role']) }}{% endif %}"
    r"{% endfor %}"
    r"{% if add_generation_prompt %}{% if messages %}{{ '\n\n' }}{% endif %}{{ '### Assistant:\n' }}{% endif %}"
)
_ALPACA = (
    r"{% if messages and messages[0]['role'] == 'system' %}{% set preamble = messages[0]['content'] %}"
    r"{% set loop_messages = messages[1:] %}"
    r"{% else %}{% set preamble = '" + ALPACA_PREAMBLE + r"' %}{% set loop_messages = messages %}{% endif %}"
    r"{{ preamble }}"
    r"{% for message in loop_messages %}"
    r"{% if message['role'] == 'user' %}{{ '\n\n### Instruction:\n' + message['content'] }}"
    r"{% elif message['role'] == 'assistant' %}{{ '\n\n### Response:\n' + message['content'] + eos_token }}"
    r"{% else %}{{ raise_exception('unknown role: ' + message['role']) }}{% endif %}"
    r"{% endfor %}"
    r"{% if add_generation_prompt %}{{ '\n\n### Response:\n' }}{% endif %}"
)
_CHATML = (
    r"{% for message in messages %}"
    r"{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    r"{% endfor %}"
    r"{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_LLAMA3 = (
    r"{% for message in messages %}"
    r"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    r" + '<|eot_id|>' %}"
    r"{% if loop.index0 == 0 %}{% set content = '<|begin_of_text|>' + content %}{% endif %}"
    r"{{ content }}"
    r"{% endfor %}"
    r"{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

BUILTIN_TEMPLATES: dict[str, str] = {"default": _DEFAULT, "alpaca": _ALPACA, "chatml": _CHATML, "llama3": _LLAMA3}
# The markers each built-in writes that a tokenizer should know as single (special) tokens.
TEMPLATE_TOKENS: dict[str, tuple[str, ...]] = {
    "default": (), "alpaca": (), "chatml": ("<|im_start|>", "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
}
# Built-ins that write their own start-of-text token; the others get the tokenizer's bos token
# in front when the tokenizer adds one to ordinary text (see trainer.llm.tokenize).
_WRITES_OWN_START = frozenset({"llama3"})
TOKENIZER_TEMPLATE = "tokenizer"  # ChatTemplate.name of a tokenizer's own template


@dataclass(frozen=True)
class ChatTemplate:
    """The template a run uses: ``name`` (a built-in's, or ``"tokenizer"``), its Jinja ``source``,
    and ``warning``, the text to show the user (``None`` when the model's own template is used
    as asked)."""

    name: str
    source: str
    warning: str | None = None

    @property
    def builtin(self) -> bool:
        """True when a built-in is used (the tokenizer has no template of its own)."""
        return self.name != TOKENIZER_TEMPLATE

    @property
    def prepend_bos(self) -> bool:
        """True when the tokenizer's bos token belongs in front (built-ins without their own start token)."""
        return self.builtin and self.name not in _WRITES_OWN_START


def builtin_template(name: str) -> str:
    """The Jinja source of the built-in template ``name``; an unknown name is explained."""
    try:
        return BUILTIN_TEMPLATES[name]
    except KeyError:
        raise ExplainedError(f"chat_template {name!r} is not a built-in template",
                             f"set chat_template to one of {', '.join(BUILTIN_TEMPLATES)}") from None


def choose_template(tokenizer_template: str | Mapping[str, str] | None,
                    name: str = DEFAULT_TEMPLATE) -> ChatTemplate:
    """The tokenizer's own chat template if it has one, else the built-in ``name`` with a warning.

    ``tokenizer_template`` is the tokenizer's ``chat_template``: a string, a mapping of named
    templates (its ``"default"`` one is used) or ``None``. ``name`` is the ``chat_template``
    option; when the tokenizer has a template and ``name`` is not the default, the warning
    says that the option was not used.
    """
    source = builtin_template(name)  # checks the option even when the tokenizer's template wins
    own = tokenizer_template.get("default") if isinstance(tokenizer_template, Mapping) else tokenizer_template
    if own:
        warning = None
        if name != DEFAULT_TEMPLATE:
            warning = (f"the model's tokenizer has its own chat template, which is used; chat_template: {name} "
                       "applies only to models without one")
        return ChatTemplate(TOKENIZER_TEMPLATE, own, warning)
    warning = (f"the model's tokenizer has no chat template; training with the built-in {name!r} template "
               f"(set chat_template to {', '.join(n for n in BUILTIN_TEMPLATES if n != name)} for another). "
               "The adapter is saved with it: prompt the model with the same template")
    return ChatTemplate(name, source, warning)


def missing_template_tokens(template: ChatTemplate, vocabulary: Collection[str]) -> list[str]:
    """The markers a built-in writes that are not single tokens of ``vocabulary`` (empty for the model's own)."""
    if not template.builtin:
        return []
    return [token for token in TEMPLATE_TOKENS[template.name] if token not in vocabulary]
