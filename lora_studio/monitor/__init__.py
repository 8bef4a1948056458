"""The live training monitor: runs list, loss curves, progress, log, samples, checkpoints."""
