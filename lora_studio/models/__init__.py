"""models of the LoRA Studio app."""
