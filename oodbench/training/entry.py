"""The error contract of ``oodbench`` for the training entry points that torchrun launches.

``torchrun -m oodbench.methods.rpl.train`` and ``python -m oodbench.training.segmenter`` do not go
through :func:`oodbench.cli.main`, so they apply its rule here: a user-facing error (:class:`~oodbench.errors.OodbenchError` -- bad
flag, refused resume, checkpoint that does not fit -- or ``OSError``) is one line on stderr and exit
status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys

from oodbench.errors import OodbenchError

__all__ = ["run_entry_point"]


def run_entry_point(args: argparse.Namespace, prog: str) -> int:
    """Run ``args.func(args)``; user-facing errors become ``prog: error: ...`` and status 2."""
    try:
        return int(args.func(args) or 0)
    except (OodbenchError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
