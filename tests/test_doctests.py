"""The ``Example:`` blocks in oodbench's docstrings run and print what they show."""
from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import oodbench


def _modules_with_examples() -> list[str]:
    """Modules of the installed package whose source holds a ``>>>`` example (found without importing)."""
    names = []
    for info in pkgutil.walk_packages(oodbench.__path__, prefix="oodbench."):
        spec = importlib.util.find_spec(info.name)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            if ">>>" in Path(spec.origin).read_text(encoding="utf-8"):
                names.append(info.name)
    return names


def test_docstring_examples_run():
    names = _modules_with_examples()
    assert "oodbench.metrics.pixel" in names  # the ExactPixelAccumulator example
    for name in names:
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
        assert result.attempted > 0 and result.failed == 0, f"{name}: {result}"


def test_a_wrong_example_output_fails():
    """The check above can fail: the same example with another expected output does."""
    from oodbench.metrics import pixel

    doc = pixel.ExactPixelAccumulator.__doc__.replace("0.75", "0.5")
    test = doctest.DocTestParser().get_doctest(doc, vars(pixel), "wrong", None, 0)
    runner = doctest.DocTestRunner(verbose=False)
    runner.run(test, out=lambda _: None)
    assert runner.failures == 1
