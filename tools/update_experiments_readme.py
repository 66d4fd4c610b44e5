"""Render the table of ``experiments/README.md`` from the experiment files and ``published.json``.

``python tools/update_experiments_readme.py`` rewrites the block between the ``<!-- table -->``
markers; ``tests/test_rpl_recipes.py`` checks the file is up to date, so the published numbers and
iteration counts shown there cannot drift from their sources.
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "experiments" / "README.md"
BEGIN, END = "<!-- table -->", "<!-- /table -->"

#: training images per set (Cityscapes train: docs/rpl-official.md §9; Vistas v1.2 training: the Vistas
#: paper's split; WildDash 2: the RPL supplementary §B)
IMAGES = {"cityscapes": 2975, "vistas-v1.2": 18000, "wilddash2": 4255}
SHORT = {"fishyscapes-static-val": "FS-Static", "fishyscapes-laf-val": "FS-L&F", "smiyc-anomaly-val": "SMIYC-A",
         "smiyc-obstacle-val": "SMIYC-O", "road-anomaly": "RA", "fishyscapes-static-test": "FS-Static test",
         "fishyscapes-laf-test": "FS-L&F test"}


def _iterations(cfg) -> tuple[int, int]:
    """(training iterations, periodic validations) of one run on one GPU (batch ``cfg.batch_size``)."""
    from oodbench.datasets.extra import parse_extra_names

    n = IMAGES["cityscapes"] + sum(IMAGES[x] for x in (parse_extra_names(cfg.extra_data) if cfg.extra_data else []))
    per_epoch = n // cfg.batch_size
    total = cfg.epochs * per_epoch
    start = cfg.val_from_epoch * per_epoch
    vals = (total // cfg.val_every - start // cfg.val_every) if cfg.val_every else 0
    return total, vals + (0 if cfg.val_every and total % cfg.val_every == 0 else 1)


def _published(tags: list[str], datasets: list[str]) -> str:
    from oodbench.published import load_published

    lines = []
    for tag in tags:
        cells = []
        for ds in datasets:
            e = next((e for e in load_published()["entries"] if ds == e["dataset"] and tag in e.get("tables", ())), None)
            if e is not None:
                m = e["metrics"]
                cells.append(f"{SHORT.get(ds, ds)} {100 * m['auprc']:.2f} / {100 * m['fpr95']:.2f}")
        label = tag.rsplit("/", 1)[-1] if tag.startswith("supp-table2") else ""
        if cells:
            lines.append((f"{label}: " if label else "") + ", ".join(cells))
    return "<br>".join(lines) or "-"


def render() -> str:
    from oodbench.methods.rpl.recipes import resolve_config
    from oodbench.methods.rpl.train import RPLTrainConfig

    rows = ["| File | Paper table row | Published AuPRC / FPR95 (%) | Training iterations (batch 8) | Validations | GPU hours |",
            "|---|---|---|---|---|---|"]
    for path in sorted((ROOT / "experiments").glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        cfg, _ = resolve_config(RPLTrainConfig, {}, path)
        total, vals = _iterations(cfg)
        tags = data["experiment"]["tables"]
        row = ", ".join(tags) or "main-paper ablation (no supplementary row)"
        rows.append(f"| `{path.name}` | {row}: {data['experiment']['title']} | {_published(tags, data['run']['datasets'])} "
                    f"| {total:,} ({cfg.epochs} epochs) | {vals} | {total:,} x s/iter / 3600 + validation |")
    return "\n".join(rows)


def update(check: bool = False) -> bool:
    """Rewrite the table (or, with ``check``, only say whether it is up to date)."""
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{render()}\n{END}{tail}"
    if check:
        return new == text
    README.write_text(new, encoding="utf-8")
    return True


if __name__ == "__main__":
    sys.exit(0 if update(check="--check" in sys.argv) else 1)
