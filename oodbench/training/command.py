"""CLI hook for ``oodbench train-segmenter`` (``oodbench/cli.py`` imports it from here)."""
from __future__ import annotations

from .segmenter import add_train_segmenter_parser

__all__ = ["add_train_segmenter_parser"]
