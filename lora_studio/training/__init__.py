"""Training settings: a form generated from the trainer's option schema, presets, YAML view."""
