"""Argument types shared by the bench scripts (each is run as `python bench/NAME.py`, so this file is on sys.path)."""

import argparse


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)
