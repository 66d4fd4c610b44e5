"""Named recipes, experiment files and --dry-run of ``oodbench train --method rpl`` (methods/rpl/recipes.py)."""
from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest

from oodbench.cli import main as cli_main
from oodbench.methods.rpl.data import FIXED, REFERENCE
from oodbench.methods.rpl.recipes import RECIPES, resolve_config
from oodbench.methods.rpl.train import RPLTrainConfig, RPLTrainer
from oodbench.training.config import runtime_fields

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
FILES = sorted(EXPERIMENTS.glob("*.toml"))


def _resolve(*argv: str):
    """The configuration ``oodbench train`` resolves for ``argv`` (through the real parser)."""
    import argparse

    from oodbench.methods.rpl.train import add_train_parser, resolve_from_args

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    return resolve_from_args(parser.parse_args(["train", *argv]))


def _dry_run(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert cli_main(["train", "--method", "rpl", *argv, "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------------------------ recipes
def test_reference_recipe_is_the_released_training_step(tmp_path):
    """--recipe reference: fp32 and every quirk of docs/rpl-official.md §5-§6 switched on, 40 epochs."""
    import numpy as np
    import torch

    from oodbench import segmenters
    from oodbench.methods.rpl.model import RPLNet

    cfg, sources = _resolve("--recipe", "reference", "--out-dir", str(tmp_path))
    assert (cfg.amp, cfg.amp_cpu, cfg.reference_quirks, cfg.epochs, cfg.recipe) == (False, False, True, 40, "reference")
    assert sources["reference_quirks"] == "recipe" and sources["amp"] == "recipe"
    # the trainer built from it uses the reference data/LR recipe: flip 0.8, no shuffling, the 0.5
    # scale twice, the inclusive crop bound, the per-epoch COCO subset, the LR set one step late
    cfg = dataclasses.replace(cfg, segmenter="deeplabv3plus_small", crop_size=(16, 16), batch_size=1,
                              num_workers=0, progress=False, val_splits="none")
    city = [(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20), np.uint8))] * 2
    torch.manual_seed(0)
    trainer = RPLTrainer(cfg, model=RPLNet(segmenters.build("deeplabv3plus_small")), city=city, coco=[("a", "b")])
    trainer.setup()
    assert trainer.recipe == REFERENCE and trainer.train_set.recipe == REFERENCE
    assert (REFERENCE.flip_prob, REFERENCE.shuffle, REFERENCE.crop_inclusive_bound, REFERENCE.lr_off_by_one) == (
        0.8, False, True, True)
    assert sorted(REFERENCE.scales) == [0.1, 0.125, 0.25, 0.5, 0.5, 0.75]
    assert trainer.schedule.off_by_one


def test_paper_and_default_recipes():
    paper, _ = _resolve("--recipe", "paper")
    assert (paper.epochs, paper.val_every, paper.val_from_epoch, paper.val_splits, paper.select) == (
        80, 185, 5, "paper", "*:auprc")
    assert paper.reference_quirks and not paper.amp
    default, sources = _resolve()
    assert default.recipe == "oodbench" and default.amp and not default.reference_quirks and default.epochs == 40
    assert sources == {}  # nothing differs from the defaults, which are the oodbench recipe's
    assert (FIXED.flip_prob, FIXED.shuffle, FIXED.scales) == (0.5, True, (0.1, 0.125, 0.25, 0.5, 0.75))


def test_flags_override_the_recipe_and_the_file(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text('[train]\nmethod = "rpl"\nrecipe = "paper"\nepochs = 10\ncrop_size = [64, 64]\nmax_iter_ckpts = "all"\n')
    cfg, sources = _resolve("--config", str(f))
    assert (cfg.recipe, cfg.epochs, cfg.crop_size, cfg.max_iter_ckpts, cfg.val_every) == ("paper", 10, (64, 64), None, 185)
    assert sources["epochs"] == "file" and sources["val_every"] == "recipe"
    cfg, sources = _resolve("--config", str(f), "--epochs", "3", "--amp", "--recipe", "reference", "--max-iter-ckpts", "7")
    assert (cfg.recipe, cfg.epochs, cfg.amp, cfg.max_iter_ckpts, cfg.val_every) == ("reference", 3, True, 7, 0)
    assert sources["epochs"] == sources["amp"] == sources["recipe"] == "flag"
    cfg, _ = _resolve("--max-iter-ckpts", "all")
    assert cfg.max_iter_ckpts is None


@pytest.mark.parametrize("text, match", [
    ('[train]\nlearning_rate = 1\n', "unknown field"),
    ('[train]\nrecipe = "fast"\n', "recipe = 'fast'; choose from"),
    ('[train]\nprojector = "deep"\n', "projector"),
    ('[train]\nmethod = "energy"\n', "only 'rpl'"),
    ('[run]\nmethods = []\n', "no \\[train\\] table"),
    ('[train\n', "not valid TOML"),
])
def test_bad_experiment_files_are_one_line_errors(tmp_path, capsys, text, match):
    import re

    f = tmp_path / "bad.toml"
    f.write_text(text)
    assert cli_main(["train", "--method", "rpl", "--config", str(f), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(f) in err and re.search(match, err), err


def test_recipe_values_are_fields():
    names = {f.name for f in dataclasses.fields(RPLTrainConfig)}
    for recipe in RECIPES.values():
        assert set(recipe) <= names
    # recipe and ablation fields decide the weights: a resume must not change them
    rt = runtime_fields(RPLTrainConfig)
    assert not {"recipe", "anchors", "contrast", "projector", "embed_dim", "extra_data", "extra_short_side"} & rt
    assert {"finetune_from", "extra_root", "select", "val_from_epoch"} <= rt


# ------------------------------------------------------------------------------------ experiments/
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_experiment_file_dry_runs(path, capsys):
    out = _dry_run(capsys, "--config", str(path))
    data = tomllib.loads(path.read_text())
    cfg = out["config"]
    assert cfg["recipe"] == data["train"]["recipe"] and cfg["out_dir"] == f"runs/{path.stem}"
    for key, value in data["train"].items():
        if key != "method":
            assert cfg[key] == value and out["sources"][key] == "file", key
    assert set(data["run"]) >= {"methods", "datasets", "checkpoint"}


def _configs(prefix: str) -> dict[str, dict]:
    """Configuration fields (not runtime ones) of the files whose tables start with ``prefix``."""
    out = {}
    for path in FILES:
        data = tomllib.loads(path.read_text())
        if any(t.startswith(prefix) for t in data["experiment"]["tables"]):
            cfg, _ = resolve_config(RPLTrainConfig, {}, path)
            d = dataclasses.asdict(cfg)
            out[path.stem] = {k: v for k, v in d.items() if k not in runtime_fields(RPLTrainConfig)}
    return out


@pytest.mark.parametrize("table, rows, varied", [
    ("supp-table3/", 5, {"anchors", "contrast"}),
    ("supp-table4/", 3, {"projector"}),
    ("supp-table2/", 4, {"segmenter"}),
])
def test_table_rows_differ_exactly_in_what_the_table_varies(table, rows, varied):
    configs = _configs(table)
    assert len(configs) == rows, sorted(configs)
    first = next(iter(configs.values()))
    differing = {k for c in configs.values() for k in c if c[k] != first[k]}
    assert differing == varied
    assert len({tuple(c[k] for k in sorted(varied)) for c in configs.values()}) == rows  # every row distinct


def test_experiment_tables_name_published_entries():
    """Each file's tables exist in published.json (or are explained in the README: Table 1 SMIYC, RPL-only)."""
    from oodbench.published import load_published

    known = {t for e in load_published()["entries"] for t in e.get("tables", ())}
    for path in FILES:
        for t in tomllib.loads(path.read_text())["experiment"]["tables"]:
            assert t in known, (path.name, t)


def test_experiments_readme_table_is_up_to_date(script):
    """experiments/README.md's table is rendered from the files and published.json (tools/update_experiments_readme.py)."""
    tool = script("tools/update_experiments_readme.py")
    assert tool.update(check=True), "run: python tools/update_experiments_readme.py"
    table = tool.render()
    assert all(f"`{p.name}`" in table for p in FILES)
    assert "FS-L&F 70.61 / 2.52" in table  # the paper's headline row (Table 2 WRN38 after = Table 3 row 4)
