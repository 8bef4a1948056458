"""widgets of the LoRA Studio app."""
