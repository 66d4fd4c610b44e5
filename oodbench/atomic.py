"""Atomic file writes: write to a temporary file in the same directory, fsync, then rename.

A reader therefore sees either the old file or the complete new one, never a half-written file.

* Modes: the temporary file is created like a normal ``open(path, "w")`` would create ``path``
  (``0o666 & ~umask``), so outputs are shared exactly as the user's umask says.
* Leftovers: a killed process leaves its ``.tmp-<name>.<pid>-<random><suffix>`` file behind (an
  exception never does: it is removed here). The first atomic write of a process into a folder
  sweeps that folder's stale temporaries -- those last modified before this process started and
  whose writer (the pid in the name) is not running -- so the next ``oodbench run`` on a store, or
  the next training run on a checkpoint folder, reclaims them (checkpoint temps are ~0.7 GB).
* Full disks: ``ENOSPC``/``EDQUOT``/``EFBIG`` become :class:`DiskFullError`, an ``OSError`` whose
  message names the folder (the CLI prints it and exits 2).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from oodbench.errors import OodbenchError

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "json_default",
    "json_sha256",
    "clean_stale_temps",
    "DiskFullError",
    "TMP_PREFIX",
]

TMP_PREFIX = ".tmp-"
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class DiskFullError(OodbenchError, OSError):
    """A write failed because the file system (or a quota / file-size limit) is full."""


def _process_start_time() -> float:
    """Wall-clock start of this process (Linux ``/proc``), else the time this module was imported."""
    now = time.time()
    try:
        with open("/proc/self/stat", "rb") as fh:
            start_ticks = int(fh.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith(b"btime"))
        started = btime + start_ticks / os.sysconf("SC_CLK_TCK")
        return min(started, now)
    except (OSError, ValueError, IndexError, StopIteration):
        return now


PROCESS_START = _process_start_time()
_swept: set[Path] = set()
_sweep_lock = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_pid(name: str) -> int | None:
    """The pid in ``.tmp-<target>.<pid>-<random><suffix>`` (``None`` for other names)."""
    rest = name[len(TMP_PREFIX):]
    for part in reversed(rest.split(".")):
        head, sep, _ = part.partition("-")
        if sep and head.isdigit():
            return int(head)
    return None


def clean_stale_temps(folder: str | os.PathLike, before: float | None = None) -> list[Path]:
    """Remove ``.tmp-*`` files in ``folder`` left by killed writers; returns the removed paths.

    A temporary is stale when it was last modified before ``before`` (default: this process's
    start) and the pid in its name is not a running process. Errors (read-only folder, a file
    removed meanwhile) are ignored: cleaning is best effort and never blocks a run.
    """
    before = PROCESS_START if before is None else before
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(TMP_PREFIX):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_mtime >= before:
                continue
            pid = _writer_pid(entry.name)
            if pid is not None and pid != os.getpid() and _pid_alive(pid):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _sweep_once(folder: Path) -> None:
    with _sweep_lock:
        if folder in _swept:
            return
        _swept.add(folder)
        clean_stale_temps(folder)


def _create_temp(target: Path, suffix: str) -> Path:
    """Create an empty temporary next to ``target`` with mode ``0o666 & ~umask`` (like ``open``)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = target.parent / f"{TMP_PREFIX}{target.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"{target.parent}: could not create a temporary file for {target.name}")


def _disk_full(exc: OSError, target: Path) -> DiskFullError:
    return DiskFullError(
        exc.errno,
        f"{target.parent}: no space left while writing {target.name} ({os.strerror(exc.errno)}); "
        "free space there or choose another folder",
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary name keeps ``path``'s suffix (``suffix`` overrides it) so libraries that choose a
    format by extension (PIL, h5py, torch) still work.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(target.parent.resolve())
    tmp_path: Path | None = None
    try:
        tmp_path = _create_temp(target, suffix if suffix is not None else target.suffix)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException as exc:
        if tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, DiskFullError) and exc.errno in _FULL_ERRNOS:
            raise _disk_full(exc, target) from exc
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def json_sha256(obj: Any) -> str:
    """sha256 of ``obj``'s canonical JSON (sorted keys, compact, :func:`json_default` values): the
    same for an object and for what :func:`atomic_write_json` wrote of it, read back."""
    text = json.dumps(json.loads(json.dumps(obj, default=json_default)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for what oodbench writes: numpy scalars and arrays, paths."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
