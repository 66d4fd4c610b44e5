"""The method contract.

A method turns a normalised image batch ``x [B,3,H,W]`` into an anomaly map ``[B,H,W]``
(higher = more anomalous) and the closed-set logits ``[B,C,H,W]``:

* post-hoc methods subclass :class:`PostHocMethod` and only write a pure ``score(logits)``;
* methods with their own network override :meth:`Method.predict` (and optionally :meth:`fit`).

``fit`` is optional: the default does nothing, so training-free methods carry no boilerplate.

Where the weights come from is part of the contract: :meth:`Method.untrained_reason` says, from
facts (a checkpoint given or not, what it holds, ``requires_fit``), why a method would score with
random or unfitted weights. The runner refuses such a method (:class:`UntrainedMethodError`) unless
told to score it anyway (``--allow-untrained``), and then marks its records ``untrained``.
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch

from oodbench.errors import OodbenchError
from oodbench.registry import PluginValidationError, Registry

__all__ = ["Method", "PostHocMethod", "METHODS", "UntrainedMethodError", "build", "register_method"]


class UntrainedMethodError(OodbenchError, ValueError):
    """The method's weights come from nowhere (random or unfitted); the message names what is missing."""


class Method:
    """Base class of every method plugin.

    Class attributes:
        name: registry name (``--method`` value).
        paper: citation shown in ``oodbench list methods`` and stored in results.
        requires_fit: ``True`` when the method must be trained (:meth:`fit`) before it can score;
            read by the default :meth:`untrained_reason`. An instance sets it ``False`` once its
            weights are loaded or fitted.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    requires_fit: ClassVar[bool] = False

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    # -- contract ---------------------------------------------------------------------------
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(anomaly [B,H,W], logits [B,C,H,W])`` for a normalised batch."""
        raise NotImplementedError

    def fit(self, *args: Any, **kwargs: Any) -> "Method":
        """Train the method; a no-op for training-free methods."""
        return self

    def hparams(self) -> dict[str, Any]:
        """Hyperparameters recorded with every result."""
        return {}

    def to(self, device: str | torch.device) -> "Method":
        self.device = torch.device(device)
        return self

    @property
    def checkpoint_sha256(self) -> str | None:
        """sha256 of the weights this method loaded, if any."""
        return None

    @property
    def training_seed(self) -> int | None:
        """Seed of the training run that produced the loaded weights (stored in checkpoints written
        by ``oodbench train`` / ``train-segmenter``), ``None`` when unknown; result records carry it
        so leaderboards can average runs that differ only in it."""
        return None

    def untrained_reason(self) -> str | None:
        """Why this method would score with random or unfitted weights, or ``None`` when it would not.

        One line that names what is missing (the flag to pass, or what a given file lacks). The
        default reads :attr:`requires_fit`; methods whose weights come from a checkpoint override it.
        """
        if self.requires_fit:
            return f"method {self.name or type(self).__name__!r} must be fitted before it can score (requires_fit)"
        return None

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({hp})"


class PostHocMethod(Method):
    """A score function on the logits of a closed-set segmenter.

    Args:
        segmenter: registered segmenter name (see ``oodbench list segmenters``) or an
            ``nn.Module`` mapping ``[B,3,H,W] -> [B,C,H,W]``.
        checkpoint: weights for the segmenter (any format :mod:`oodbench.segmenters` loads).
    """

    def __init__(
        self,
        segmenter: str | torch.nn.Module = "deeplabv3plus_wrn38",
        checkpoint: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(segmenter, str):
            from oodbench import segmenters

            self.segmenter_name = segmenter
            self.model = segmenters.build(segmenter, checkpoint=checkpoint)
        else:
            self.segmenter_name = type(segmenter).__name__
            self.model = segmenter
        self.model.eval()
        self.checkpoint = checkpoint
        #: whence the segmenter's weights: "checkpoint" (a file), "module" (the caller's), None (random)
        self.weights_origin = ("checkpoint" if checkpoint is not None
                               else "module" if not isinstance(segmenter, str) else None)
        n_classes = getattr(self.model, "num_classes", None)
        #: label space of the argmax predictions ("cityscapes19" lets the evaluator map them to a
        #: split's own classes, e.g. StreetHazards); None = the split's own ids
        self.semantic_label_space = "cityscapes19" if n_classes == 19 else None

    @staticmethod
    def score(logits: torch.Tensor) -> torch.Tensor:
        """Map logits ``[B,C,H,W]`` to an anomaly score ``[B,H,W]`` (higher = more anomalous)."""
        raise NotImplementedError

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return self.score(logits.float()), logits

    def to(self, device: str | torch.device) -> "PostHocMethod":
        super().to(device)
        self.model.to(self.device)
        return self

    def hparams(self) -> dict[str, Any]:
        return {"segmenter": self.segmenter_name}

    def untrained_reason(self) -> str | None:
        """Random weights when a registered segmenter was built without a checkpoint.

        A module passed in by the caller counts as trained: its weights are the caller's.
        """
        if getattr(self, "weights_origin", "unknown") is None:
            return (f"segmenter {self.segmenter_name!r} would score with random weights: no --checkpoint "
                    "given; pass --checkpoint FILE with its weights")
        return super().untrained_reason()

    @property
    def checkpoint_sha256(self) -> str | None:
        return getattr(self.model, "checkpoint_sha256", None)

    @property
    def training_seed(self) -> int | None:
        return getattr(self.model, "training_seed", None)


def _validate_method(name: str, obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Method)):
        raise PluginValidationError(
            f"method plugin {name!r} must be a subclass of oodbench.methods.Method, got {obj!r}"
        )
    if issubclass(obj, PostHocMethod):
        score = inspect.getattr_static(obj, "score")
        if score is inspect.getattr_static(PostHocMethod, "score"):
            raise PluginValidationError(f"post-hoc method {name!r} does not implement score(logits)")
        params = list(inspect.signature(obj.score).parameters)
        if params[:1] != ["logits"] and params[:2] != ["self", "logits"]:
            raise PluginValidationError(
                f"method {name!r}: score() must take the logits as first argument, got {params}"
            )
    elif obj.predict is Method.predict:
        raise PluginValidationError(f"method plugin {name!r} does not implement predict(x)")


METHODS = Registry("method", entry_point_group="oodbench.methods", validator=_validate_method)


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register a :class:`Method` subclass under ``cls.name``."""
    METHODS.register(cls.name, cls)
    return cls


def build(name: str, **kwargs: Any) -> Method:
    """Instantiate method ``name`` (``oodbench.methods.build("energy", segmenter=..., ...)``)."""
    return METHODS.build(name, **kwargs)
