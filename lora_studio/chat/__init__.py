"""Chat examples as a language model's training sees them: templates, tokenizer, trained text (no transformers)."""
