"""The app's side of a dataset folder: opening it, saving it, and checking its files.

Every caption format is read and written by the trainer's shared, torch-free
``trainer.captions`` package (one parser, one writer), so the app saves exactly what the
trainer reads and keeps every byte the user did not edit. This package adds what an
editor needs around it: the image list with sizes for the grid, notes about what the app
will do with unusual rows, change snapshots for outside edits, trash and copy-in, and
cheap image checks.
"""
