"""Shared test fixtures: the real console script, the synthetic benchmark, the shared folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def console_script() -> str:
    """The installed ``oodbench`` console script next to this interpreter."""
    exe = Path(sys.executable).parent / "oodbench"
    if exe.exists():
        return str(exe)
    found = shutil.which("oodbench")
    if not found:
        pytest.fail("the oodbench console script is not installed (pip install -e . or tox)")
    return found


def run_cli(*args: str, env: dict | None = None, cwd: str | os.PathLike | None = None,
            check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([console_script(), *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"oodbench {' '.join(map(str, args))} failed ({proc.returncode}):\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def cli():
    """Run the real ``oodbench`` console script: ``cli("list", "methods").stdout``."""
    return run_cli


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """The synthetic benchmark (official layouts), generated once per test session."""
    from oodbench.datasets.synth import generate

    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, seed=0)
    return out


FIXTURE_GENERATORS = (ROOT / "tests" / "fixtures_gen" / "make_fixtures.py",
                      SHARED / "fixtures" / "make_fixtures.py")


@pytest.fixture(scope="session")
def fixture_tree(tmp_path_factory) -> tuple[Path, dict]:
    """The official-layout fixture tree of ``shared/fixtures`` (generated once) and its per-frame facts.

    The generator is kept in ``tests/fixtures_gen/`` so this works without ``../shared``.
    """
    import json

    script = next((p for p in FIXTURE_GENERATORS if p.is_file()), None)
    if script is None:
        pytest.skip(f"fixture generator not found at {FIXTURE_GENERATORS[0]}")
    out = tmp_path_factory.mktemp("fixtree") / "data"   # no 't5'/'t6' in the path (DenseHybrid rule)
    facts = out.parent / "facts.json"
    subprocess.run([sys.executable, str(script), str(out), "--write-manifest", str(facts)],
                   check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return out, json.loads(facts.read_text())["frames"]


@pytest.fixture(scope="session")
def shared_dir() -> Path | None:
    return SHARED if SHARED.is_dir() else None
