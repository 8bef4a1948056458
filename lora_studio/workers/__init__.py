"""workers of the LoRA Studio app."""
