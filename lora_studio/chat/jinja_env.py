"""Rendering Hugging Face chat templates without transformers: the same Jinja, the same variables.

transformers' ``apply_chat_template`` compiles a template in a sandboxed environment with
``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols`` extension, a ``{% generation %}``
block, a ``tojson`` filter that does not escape HTML, and the globals ``raise_exception``,
``strftime_now``; it renders with ``messages``, ``tools``, ``documents``,
``add_generation_prompt`` and the tokenizer's special tokens (``bos_token``, ``eos_token``,
...). This module does exactly that, so that the app shows the text the trainer
tokenizes (the trainer renders through transformers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(Exception):
    """The template cannot be compiled or rendered (its message, or what it raised, says why)."""


class _GenerationBlock(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}``: transformers marks assistant text with it; it renders its body."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.CallBlock:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    @staticmethod
    def _body(caller) -> str:
        return caller()


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value: object, ensure_ascii: bool = False, indent: int | None = None, separators=None,
            sort_keys: bool = False) -> str:
    # transformers' own filter: Jinja's escapes HTML characters, which chat templates must not.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=16)
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def render_chat(source: str, messages: list[dict[str, str]], add_generation_prompt: bool = False,
                special_tokens: Mapping[str, str | None] | None = None) -> str:
    """``messages`` rendered through the template ``source``, as ``apply_chat_template(tokenize=False)`` does.

    ``special_tokens`` maps ``bos_token``, ``eos_token`` ... to their text (None ones are left out,
    as transformers leaves out tokens the tokenizer does not have).
    """
    tokens = {name: value for name, value in (special_tokens or {}).items() if value is not None}
    try:
        template = _compile(source)
        return template.render(messages=messages, tools=None, documents=None,
                               add_generation_prompt=add_generation_prompt, **tokens)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"the chat template failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a template is code from the model folder; say what it did
        raise TemplateError(f"the chat template failed: {exc.__class__.__name__}: {exc}") from None
