"""dialogs of the LoRA Studio app."""
