"""Synthetic benchmark generator (``oodbench synth --out DIR [--seed S]``).

:func:`generate` writes a small, deterministic urban world in the official on-disk layouts:
a Cityscapes-format training set, a COCO-format outlier source and every evaluation split
(SMIYC AnomalyTrack / ObstacleTrack / LostAndFound-noKnown, Fishyscapes L&F / Static, RoadAnomaly,
StreetHazards), plus ``oodbench_manifest.json`` whose ``counts`` replace the official frame counts.
The world's facts (classes, palettes, train ids present) live in :mod:`.world`.
"""
from .generate import (MANIFEST_NAME, OFFICIAL_VALIDATION_SIZES, SIZED_SPLITS, SynthExistsError, generate,
                       generator_string, read_manifest)
from .world import SYNTH_VERSION, TRAIN_IDS_PRESENT

__all__ = [
    "MANIFEST_NAME",
    "OFFICIAL_VALIDATION_SIZES",
    "SIZED_SPLITS",
    "SYNTH_VERSION",
    "TRAIN_IDS_PRESENT",
    "SynthExistsError",
    "generate",
    "generator_string",
    "read_manifest",
]
