"""The explicit package list in pyproject.toml must cover every package folder.

setuptools' wheel silently drops a subpackage of methods/ or datasets/ that is missing from the
list while an editable install still imports it (setuptools builds the wheel from the list only); this
test catches that.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {"oodbench": "oodbench", "methods": "oodbench.methods", "datasets": "oodbench.datasets"}


def _declared() -> set[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(cfg["tool"]["setuptools"]["packages"])


def _on_disk() -> set[str]:
    found = set()
    for folder, prefix in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            parts = [p for p in rel.parts if p]
            if any(p.startswith((".", "__")) for p in parts):
                continue
            found.add(".".join([prefix, *parts]))
    return found


def test_every_package_folder_is_declared():
    missing = _on_disk() - _declared()
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_declared_packages_exist():
    stale = _declared() - _on_disk()
    assert not stale, f"declared in pyproject.toml but no such folder: {sorted(stale)}"


def test_package_dir_mapping():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert cfg["tool"]["setuptools"]["package-dir"] == {
        "oodbench": "oodbench", "oodbench.methods": "methods", "oodbench.datasets": "datasets"
    }


def test_no_top_level_datasets_or_methods_imports():
    pattern = re.compile(r"^\s*(import|from)\s+(datasets|methods)(\s|\.|$)", re.M)
    offenders = []
    for folder in ("oodbench", "methods", "datasets", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if pattern.search(path.read_text(encoding="utf-8", errors="replace")):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"use oodbench.datasets / oodbench.methods instead: {offenders}"


def test_import_names():
    import oodbench.datasets
    import oodbench.methods

    assert oodbench.methods.__name__ == "oodbench.methods"
    assert oodbench.datasets.__name__ == "oodbench.datasets"
