"""Import every built-in adapter module so its splits register themselves.

Registered splits (CLI ``--dataset`` names): ``smiyc-anomaly-val``, ``smiyc-anomaly-test``,
``smiyc-obstacle-val``, ``smiyc-obstacle-test``, ``smiyc-laf-noknown`` (:mod:`.smiyc`),
``fishyscapes-laf-val``, ``fishyscapes-static-val`` (:mod:`.fishyscapes`), ``road-anomaly``
(:mod:`.road_anomaly`), ``streethazards-test`` (:mod:`.streethazards`).
"""
from . import fishyscapes, road_anomaly, smiyc, streethazards  # noqa: F401

__all__: list[str] = []
