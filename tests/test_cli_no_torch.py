"""Commands that need no model never import torch (``oodbench --version`` used to take 2.4 s and
650 MB because every command imported the extension parsers, and ``evaluate`` the method registry)."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import sys

import pytest


def _run_without_torch(argv: list, extra: str = "") -> subprocess.CompletedProcess:
    code = (
        "import sys, oodbench.cli as c\n"
        f"{extra}\n"
        "try:\n"
        f"    rc = c.main({[str(a) for a in argv]!r})\n"
        "except SystemExit as exc:\n"
        "    rc = exc.code\n"
        "assert rc in (0, None), rc\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, 'imported ' + ', '.join(bad[:5])\n"
    )
    # cwd outside the checkout: `python -c` puts the cwd first on sys.path, where the source
    # oodbench/ would shadow the installed package (CI tests the wheel)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_version_and_list_datasets_do_not_import_torch(fixture_tree):
    root, _ = fixture_tree
    assert "oodbench " in _run_without_torch(["--version"]).stdout
    assert "smiyc-anomaly-val" in _run_without_torch(["list", "datasets", "--data-root", root]).stdout


def test_evaluate_and_leaderboard_do_not_import_torch(fixture_tree, tmp_path):
    root, _ = fixture_tree
    results = tmp_path / "results"
    # official-layout predictions without a run manifest: the provenance comes from metadata
    _run_without_torch(["evaluate", "--predictions", root, "--method", "FixtureGood", "--dataset",
                        "smiyc-anomaly-val", "streethazards-test", "--no-count-check", "--data-root", root,
                        "--results", results, "-q"])
    records = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    assert len(records) == 2 and all(r["plugin"] == {"distribution": "external"} for r in records)
    out = _run_without_torch(["leaderboard", "--results", results]).stdout
    assert "FixtureGood" in out
    # the submit command's module too (building a submission needs test-split predictions)
    _run_without_torch(["--version"], extra="import oodbench.submit")


def test_builtin_method_names_match_the_registry():
    from oodbench.cli import _BUILTIN_METHODS, _method_provenance
    from oodbench.methods import METHODS

    builtin = {n for n in METHODS.names() if METHODS.get(n).distribution == "oodbench"}
    assert builtin == _BUILTIN_METHODS
    for name in builtin:
        assert _method_provenance(name) == METHODS.get(name).provenance
    assert _method_provenance("not-a-method") == {"distribution": "external"}


@pytest.mark.parametrize("argv, needed", [
    (["--version"], False), (["list", "datasets"], False), (["evaluate", "--method", "x"], False),
    (["leaderboard"], False), (["submit", "smiyc"], False), (["run", "--method", "msp"], False),
    (["train", "--method", "rpl"], True), (["synth", "--out", "x"], True), (["--help"], True), ([], True),
])
def test_extension_parsers_are_built_only_when_needed(argv, needed):
    from oodbench.cli import _needs_extensions, build_parser

    assert _needs_extensions(argv) is needed
    help_text = build_parser().format_help()
    assert "train" in help_text and "synth" in help_text   # the full parser still lists every command
