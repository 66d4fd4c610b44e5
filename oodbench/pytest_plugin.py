"""pytest plugin (entry point ``pytest11``): pin metric numbers in a regression test.

A method's repository keeps its leaderboard numbers honest with::

    def test_leaderboard_numbers(oodbench_golden):
        results = oodbench.leaderboard.load("leaderboard/results")  # or a dict of floats
        oodbench_golden.check("my_method", results, abs_tol=1e-9)

The first run (or ``pytest --update-golden``) writes ``golden/my_method.json`` next to the test
file; later runs fail with a readable diff when any number moves by more than the tolerance. Golden
files are never rewritten without the explicit flag.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import pytest

__all__ = ["GoldenRegression", "flatten_metrics"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oodbench")
    group.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="oodbench: rewrite golden metric files instead of comparing against them",
    )


def flatten_metrics(values: Any) -> dict[str, float]:
    """Accept a dict of floats, a nested dict, a Result, or a leaderboard DataFrame."""
    try:
        import pandas as pd

        if isinstance(values, pd.DataFrame):
            from oodbench.leaderboard import METRIC_COLUMNS

            out = {}
            for _, row in values.iterrows():
                for key in METRIC_COLUMNS:
                    v = row.get(key)
                    if v is not None and not (isinstance(v, float) and math.isnan(v)):
                        out[f"{row['dataset']}/{row['method']}/{key}"] = float(v)
            return out
    except ImportError:  # pragma: no cover
        pass
    if hasattr(values, "metrics") and hasattr(values, "dataset"):
        return {f"{values.dataset}/{values.method}/{k}": float(v) for k, v in values.metrics.items()
                if isinstance(v, (int, float))}
    out: dict[str, float] = {}

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                walk(f"{prefix}/{k}" if prefix else str(k), v)
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            out[prefix] = float(obj)

    walk("", values)
    return out


class GoldenRegression:
    """Compare numbers with a golden JSON file (or rewrite it under ``--update-golden``)."""

    def __init__(self, directory: Path, update: bool) -> None:
        self.directory = directory
        self.update = update

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def check(self, name: str, values: Any, abs_tol: float = 1e-12, rel_tol: float = 0.0) -> None:
        flat = flatten_metrics(values)
        if not flat:
            pytest.fail(f"oodbench golden {name!r}: no numbers to compare")
        path = self.path(name)
        if self.update or not path.exists():
            from oodbench.atomic import atomic_write_json

            atomic_write_json(path, dict(sorted(flat.items())))
            if not self.update:
                pytest.fail(f"oodbench golden {name!r}: {path} did not exist and was written; "
                            "review and commit it, then rerun")
            return
        golden = json.loads(path.read_text())
        problems = []
        for key in sorted(set(golden) | set(flat)):
            if key not in flat:
                problems.append(f"  {key}: missing (golden {golden[key]!r})")
            elif key not in golden:
                problems.append(f"  {key}: new value {flat[key]!r} not in golden file")
            elif not math.isclose(flat[key], golden[key], rel_tol=rel_tol, abs_tol=abs_tol):
                problems.append(f"  {key}: {flat[key]!r} != golden {golden[key]!r} "
                                f"(diff {flat[key] - golden[key]:+.3e})")
        if problems:
            pytest.fail(
                f"oodbench golden {name!r} ({path}) differs:\n" + "\n".join(problems)
                + "\n(rerun with --update-golden if the change is intended)",
                pytrace=False,
            )


@pytest.fixture
def oodbench_golden(request: pytest.FixtureRequest) -> GoldenRegression:
    """Golden-number regression helper; files live in ``golden/`` next to the test file."""
    directory = Path(str(request.node.fspath)).parent / "golden"
    return GoldenRegression(directory, bool(request.config.getoption("--update-golden")))
