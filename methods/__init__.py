"""Method plugins (import name ``oodbench.methods``).

Build one with :func:`build`; list them with ``METHODS.names()`` or ``oodbench list methods``.
Third-party methods register through the ``oodbench.methods`` entry-point group.
"""
if __name__ != "oodbench.methods":  # pragma: no cover - guard against the shadowing mistake
    raise ImportError(
        "this folder is the package 'oodbench.methods'; import it as 'oodbench.methods', "
        "never as top-level 'methods'"
    )

from .base import (METHODS, FitBatch, Method, PostHocMethod, SegmenterMethod, UntrainedMethodError,
                   build, register_method)
from .postprocess import POSTPROCESSES, GroundFocus, apply_postprocess

__all__ = ["METHODS", "POSTPROCESSES", "FitBatch", "GroundFocus", "Method", "PostHocMethod", "SegmenterMethod",
           "UntrainedMethodError", "apply_postprocess", "build", "register_method"]

from . import posthoc  # noqa: F401  (registers msp, energy, maxlogit, entropy)
from . import rpl  # noqa: F401  (registers rpl)
from . import sml, mahalanobis  # noqa: F401  (register the fitted baselines sml, mahalanobis)
