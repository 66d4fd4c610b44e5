"""Named training recipes and experiment files for ``oodbench train --method rpl``.

A recipe is a named set of field values of :class:`~oodbench.methods.rpl.train.RPLTrainConfig`
(:data:`RECIPES`); the resolved configuration is built in one place, :func:`resolve_config`, with
this precedence (later wins):

1. the dataclass defaults;
2. the recipe (``--recipe``, else the file's ``recipe``, else :data:`DEFAULT_RECIPE`);
3. the ``[train]`` table of an experiment file (``--config experiments/<file>.toml``);
4. the flags given on the command line.

:func:`resolve_config` also returns where every non-default value came from, which
``--dry-run`` prints and ``config.json`` next to the checkpoints keeps (as ``recipe`` plus the
values themselves).

Recipes (docs/rpl-official.md §5, §6, §12.10):

* ``reference`` -- what the released code does: fp32 (no autocast), its data quirks (h-flip 0.8,
  Cityscapes not shuffled, the 0.5 paste scale listed twice, the inclusive crop bound, the LR set
  one step late, a per-epoch COCO subset: ``reference_quirks``), 40 epochs (its config);
* ``paper`` -- the run behind the published numbers: ``reference`` with 80 epochs (the authors'
  run, yyliu01/RPL#9), validation every 185 iterations from epoch 5 on on those of the released
  code's five validation splits that are found (``--val-splits paper``), and the best checkpoint per split kept (``--select *:auprc``; the released code
  kept every validated ``iter_N.pth``: add ``--max-iter-ckpts all`` for that, ~160 files of
  ~0.7 GB on WRN38);
* ``oodbench`` (default) -- what the paper's text describes (flip 0.5, shuffled, the five paste
  scales {.1, .125, .25, .5, .75}, exact LR schedule) with bf16 autocast on CUDA. It is the default
  because it implements the method as published rather than the release's accidents, and bf16
  makes training cheaper on current GPUs; ``reference``/``paper`` exist to reproduce the release
  and the published numbers.

Experiment files are TOML (Python 3.11 ``tomllib``): an ``[experiment]`` table (free-form
description: the table row, the published numbers) that training ignores, a ``[train]`` table of
``RPLTrainConfig`` fields (``method = "rpl"`` allowed), and a ``[run]`` table for the evaluation
step (read by the README and tests, not by ``train``).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping
from oodbench.errors import UsageError

__all__ = ["RECIPES", "DEFAULT_RECIPE", "RECIPE_HELP", "load_experiment", "resolve_config"]

#: recipe name -> field values it sets
RECIPES: dict[str, dict[str, Any]] = {
    "reference": {"amp": False, "amp_cpu": False, "reference_quirks": True, "epochs": 40},
    "paper": {"amp": False, "amp_cpu": False, "reference_quirks": True, "epochs": 80, "val_every": 185,
              "val_from_epoch": 5, "val_splits": "paper", "select": "*:auprc"},
    "oodbench": {"amp": True, "reference_quirks": False, "epochs": 40},
}
DEFAULT_RECIPE = "oodbench"
RECIPE_HELP = ("named recipe: 'oodbench' (default: the paper's text -- flip 0.5, shuffled, five paste scales -- "
               "with bf16 autocast on CUDA; the method as published, cheaper on current GPUs), 'reference' (the "
               "released code: fp32, its data/LR quirks, 40 epochs), 'paper' (the published run: reference + "
               "80 epochs, validation every 185 iterations from epoch 5, best checkpoint per split); "
               "any other flag overrides a recipe value")


def load_experiment(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed experiment file (``ValueError`` names the file on a syntax error or a missing ``[train]``)."""
    import tomllib

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--config {p}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {p}: not valid TOML ({exc})") from None
    if not isinstance(data.get("train"), dict):
        raise UsageError(f"--config {p}: no [train] table")
    return data


def _coerce(cls: type, name: str, value: Any, source: str) -> Any:
    """A file value as the field's type (lists -> tuples; ``parse`` metadata such as 'all')."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if "parse" in f.metadata:
        try:
            return f.metadata["parse"](value)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{source}: {name}: {exc}") from None
    if isinstance(value, list):
        value = tuple(value)
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise UsageError(f"{source}: {name} = {value!r}; choose from {', '.join(map(str, choices))}")
    return value


def resolve_config(cls: type, flags: Mapping[str, Any], config_path: str | os.PathLike | None = None,
                   **python_values: Any) -> tuple[Any, dict[str, str]]:
    """The configuration ``cls(...)`` from defaults < recipe < file < flags (module doc).

    Args:
        flags: the fields given on the command line (only those; see ``suppress_defaults``).
        config_path: an experiment file, or ``None``.
        python_values: fields set from Python (e.g. ``validator``), applied last.
    Returns:
        ``(config, sources)`` with ``sources[field]`` in ``{"recipe", "file", "flag"}`` for every
        field not at its default.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    file_values: dict[str, Any] = {}
    if config_path is not None:
        table = dict(load_experiment(config_path)["train"])
        method = table.pop("method", "rpl")
        if method != "rpl":
            raise UsageError(f"--config {config_path}: [train] method = {method!r}; only 'rpl' trains here")
        unknown = sorted(set(table) - names)
        if unknown:
            raise UsageError(f"--config {config_path}: [train] has unknown field(s) {', '.join(unknown)}")
        file_values = {k: _coerce(cls, k, v, f"--config {config_path}") for k, v in table.items()}
    recipe = flags.get("recipe", file_values.get("recipe", DEFAULT_RECIPE))
    if recipe not in RECIPES:
        raise UsageError(f"--recipe: unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer, name in ((RECIPES[recipe], "recipe"), (file_values, "file"), (dict(flags), "flag"),
                        (python_values, "python")):
        for k, v in layer.items():
            if k in names:
                values[k] = v
                sources[k] = name
    values["recipe"] = recipe
    sources.setdefault("recipe", "default")
    cfg = cls(**values)
    defaults = cls()
    return cfg, {k: s for k, s in sources.items() if getattr(cfg, k) != getattr(defaults, k) or s in ("flag", "file")}
