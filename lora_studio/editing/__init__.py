"""editing of the LoRA Studio app."""
