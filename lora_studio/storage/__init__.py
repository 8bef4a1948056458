"""Reading and writing a dataset's caption files without losing a byte the user did not edit.

The trainer's ``trainer.captions`` module defines the formats; this package adds what an
editor needs on top: line numbers for every problem, and saves that rewrite only the
records whose caption changed, keeping encoding, BOM, line endings, quoting, column order,
extra columns and unknown JSON fields of everything else exactly as they were.
"""
