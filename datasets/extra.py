"""Extra closed-set training sets for the "with extra datasets" fine-tuning (RPL supplementary §B).

``build_extra_training_sets("vistas,wilddash2", root)`` returns one dataset per name, each with the
item format of :class:`oodbench.datasets.cityscapes.CityscapesSegmentation` --
``(image uint8 [H, W, 3], train_ids uint8 [H, W])``, Cityscapes train ids 0..18 / 255 -- so a
trainer takes ``torch.utils.data.ConcatDataset([cityscapes, *extras])`` (or the extras alone)
wherever it took the Cityscapes set.  NFlowJS and DenseHybrid, whose setup the paper follows for
these rows, fine-tune on Cityscapes together with Vistas and WildDash 2.

Names (CLI ``--extra-data``): ``vistas`` (= ``vistas-v1.2``, the 66-class version the supplementary
describes), ``vistas-v1.2``, ``vistas-v2.0``, ``wilddash2``.  Vistas sets use the ``training``
split; WildDash 2 has a single public set.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

from oodbench.errors import UsageError

from .vistas import MapillaryVistas
from .wilddash import WildDash2

__all__ = ["ALIASES", "EXTRA_TRAINING_SETS", "build_extra_training_sets", "parse_extra_names"]

#: name -> factory ``(data root, short_side) -> dataset``
EXTRA_TRAINING_SETS: dict[str, Callable[..., object]] = {
    "vistas-v1.2": lambda root, short_side=None: MapillaryVistas(root, "training", "v1.2", short_side=short_side),
    "vistas-v2.0": lambda root, short_side=None: MapillaryVistas(root, "training", "v2.0", short_side=short_side),
    "wilddash2": lambda root, short_side=None: WildDash2(root, short_side=short_side),
}

#: alternative names -> canonical name
ALIASES = {"vistas": "vistas-v1.2"}


def parse_extra_names(names: str | Iterable[str]) -> list[str]:
    """``"vistas, wilddash2"`` or ``["vistas", "wilddash2"]`` -> validated, canonical, de-duplicated
    names (``["vistas-v1.2", "wilddash2"]``).

    Raises:
        ValueError: an unknown or empty name (the message lists the known ones).
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for raw in items:
        name = str(raw).strip().lower()
        name = ALIASES.get(name, name)
        if name not in EXTRA_TRAINING_SETS:
            raise UsageError(f"--extra-data: unknown dataset {raw!r}; choose from {_known()}")
        if name not in out:
            out.append(name)
    if not out:
        raise UsageError(f"--extra-data: no dataset named; choose from {_known()}")
    return out


def _known() -> str:
    return ", ".join([*ALIASES, *EXTRA_TRAINING_SETS])


def build_extra_training_sets(names: str | Iterable[str], root: str | os.PathLike,
                              short_side: int | None = None) -> list:
    """One training dataset per name under the data ``root`` (see the module doc).

    Args:
        names: comma-separated string or iterable of names.
        root: data root holding ``vistas/`` and/or ``wd_public_02/`` (see the adapters).
        short_side: optional rescale of every pair (shorter side in pixels), e.g. 1024 to bring
            Vistas and WildDash 2 to the Cityscapes scale before RPL's 700x700 crops.

    Raises:
        ValueError: unknown names.
        DataLayoutError: a named dataset is missing or malformed (the message names the folder).
    """
    return [EXTRA_TRAINING_SETS[n](root, short_side=short_side) for n in parse_extra_names(names)]
