"""Run a command with a deadline and stop *all* of it when the deadline passes.

``subprocess.run(timeout=...)`` kills only the direct child; DataLoader workers, torch.compile's
compile workers or torchrun's ranks would live on (holding GPU memory). Here the command starts in
its own session and the whole process group is killed: SIGTERM, then SIGKILL after a grace period.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import IO, Sequence

__all__ = ["Finished", "run_with_deadline"]


class Finished:
    """How a command ended: ``returncode`` (``None`` when stopped at the deadline) and ``seconds``."""

    def __init__(self, returncode: int | None, seconds: float) -> None:
        self.returncode, self.seconds = returncode, seconds

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def _kill_group(proc: subprocess.Popen, grace: float) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:  # also when the leader went on SIGTERM: its workers may not have
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_with_deadline(cmd: Sequence[str], timeout: float, *, cwd: str | os.PathLike | None = None,
                      env: dict | None = None, log: IO[str] | None = None, grace: float = 5.0) -> Finished:
    """Run ``cmd`` (stdout+stderr appended to ``log``, else discarded) for at most ``timeout`` s."""
    t0 = time.perf_counter()
    out = log if log is not None else subprocess.DEVNULL
    if log is not None:
        log.flush()
    proc = subprocess.Popen([str(c) for c in cmd], cwd=str(cwd) if cwd else None, env=env, stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        rc: int | None = proc.wait(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        _kill_group(proc, grace)
        rc = None
    except BaseException:  # Ctrl-C in the parent: do not leave the group running
        _kill_group(proc, grace)
        raise
    else:
        try:  # workers that outlived a finished leader
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return Finished(rc, time.perf_counter() - t0)


if __name__ == "__main__":  # pragma: no cover - manual check
    import sys

    r = run_with_deadline(sys.argv[2:], float(sys.argv[1]), log=sys.stdout)
    print(f"rc={r.returncode} seconds={r.seconds:.1f}", file=sys.stderr)
    raise SystemExit(0 if r.returncode == 0 else 1)
