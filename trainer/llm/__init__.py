"""LLM LoRA training: text datasets, chat templates and their token labels.

- :mod:`.formats` reads alpaca, sharegpt, OpenAI-messages and plain-text datasets into
  :class:`~trainer.llm.formats.Example` objects and reports every bad row (torch-free);
- :mod:`.rows` checks one row (torch-free; :mod:`.formats` is what callers use);
- :mod:`.templates` holds the built-in chat templates and picks one (torch-free);
- :mod:`.tokenize` turns examples into ``input_ids`` and ``labels`` with a tokenizer
  (imports transformers' tokenizers, not torch).

This package file imports nothing: the desktop app imports the torch-free modules, and
importing the package must not pull in the tokenizer code.
"""
