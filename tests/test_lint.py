"""The repository passes ``ruff check`` with the configuration in pyproject.toml (``[tool.ruff]``).

CI installs the test extras (which include ruff) and runs this test, so the lint rules -- and the
``# noqa`` markers, which RUF100 requires to name a rule that fires -- are enforced, not advisory.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes_on_the_repository():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
