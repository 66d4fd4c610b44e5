"""Run logs: a CSV file per stream (always), TensorBoard (when importable), tqdm on rank 0.

The CSV is kept in memory and rewritten atomically (:mod:`oodbench.atomic`) every
``flush_every`` rows and on :meth:`CSVLogger.flush`, so a reader or a kill never sees a torn
line. On resume at iteration ``k`` the rows after ``k`` (logged after the checkpoint the run
resumes from) are dropped, so a resumed run's log reads like an uninterrupted one.
Columns are the union of the keys logged, in order of first appearance.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Iterable

from oodbench.atomic import atomic_write_text
from oodbench.errors import UsageError

__all__ = ["CSVLogger", "TensorBoardLogger", "progress", "read_csv_log"]


def read_csv_log(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a CSV log as dicts of strings (empty list when the file does not exist)."""
    p = Path(path)
    if not p.is_file():
        return []
    with open(p, newline="") as fh:
        return list(csv.DictReader(fh))


class CSVLogger:
    """Append-only table of numbers keyed by ``iteration``, written atomically.

    Args:
        path: CSV file.
        resume_iteration: keep existing rows with ``iteration <= resume_iteration``; ``None``
            starts a new file (any old one is replaced on the first flush).
        flush_every: rows between automatic rewrites.
        enabled: ``False`` on non-main ranks (nothing is kept or written).
    """

    def __init__(self, path: str | os.PathLike, resume_iteration: int | None = None, flush_every: int = 50, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.flush_every = max(1, int(flush_every))
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []
        self._pending = 0
        if enabled and resume_iteration is not None:
            for row in read_csv_log(self.path):
                try:
                    it = int(float(row.get("iteration", "")))
                except ValueError:
                    raise UsageError(f"{self.path}: row without a numeric 'iteration': {row}") from None
                if it <= resume_iteration:
                    self._add({k: v for k, v in row.items() if v != ""})

    def _add(self, row: dict[str, Any]) -> None:
        for k in row:
            if k not in self.columns:
                self.columns.append(k)
        self.rows.append(row)

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if "iteration" not in row:
            raise ValueError("CSVLogger.log: every row needs an 'iteration'")
        self._add(dict(row))
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.enabled or (not self.rows and not self.path.exists()):
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(v) for k, v in row.items()})
        atomic_write_text(self.path, buf.getvalue())
        self._pending = 0


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v)  # shortest round-trip form: the log keeps full float precision
    return v


class TensorBoardLogger:
    """Scalars to TensorBoard when ``torch.utils.tensorboard`` imports, otherwise nothing.

    ``purge_step`` drops events after the resumed iteration, like :class:`CSVLogger`.
    """

    def __init__(self, log_dir: str | os.PathLike, purge_step: int | None = None, enabled: bool = True) -> None:
        self.writer = None
        self.reason = ""
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as exc:  # tensorboard is an optional dependency
            self.reason = f"TensorBoard disabled ({type(exc).__name__}: {exc})"
            return
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def log(self, step: int, values: dict[str, Any], prefix: str = "") -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and k != "iteration":
                self.writer.add_scalar(f"{prefix}{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def progress(total: int, initial: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar (rank 0) or a no-op stand-in with the same ``update``/``set_postfix``/``close``."""
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True)
    return _NoBar()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterable:  # pragma: no cover - never iterated
        return iter(())
