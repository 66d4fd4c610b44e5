"""The method contract (what a method declares; the runner reads only these members).

A method turns a normalised image batch ``x [B,3,H,W]`` into an anomaly map ``[B,H,W]``
(higher = more anomalous) and the closed-set logits ``[B,C,H,W]``:

* post-hoc methods subclass :class:`PostHocMethod` and only write a pure ``score(logits)``;
* methods with their own network override :meth:`Method.predict`;
* fitted methods (``requires_fit = True``) implement :meth:`Method.fit` on :class:`FitBatch`
  batches of the training split and :meth:`Method.state_dict_fitted` / :meth:`Method.load_fitted`;
  ``oodbench fit`` saves that state and ``oodbench run --state`` loads it.

Declared, never probed (the runner reads no member through ``getattr``):

* :attr:`Method.pretrained_cfg` -- the weights' data contract (timm ``PretrainedCfg``): input
  normalisation and the label space of the logits; ``None`` for a method without one;
* :meth:`Method.preprocessing` -- the :class:`~oodbench.preprocess.Normalisation` the runner (and
  ``oodbench fit``, and :func:`oodbench.preprocess.normalise`) applies to uint8 images;
* :attr:`Method.semantic_label_space` -- ``"cityscapes19"`` lets the evaluator map the argmax of the
  logits to a split's own classes; ``None`` = the split's own ids;
* :attr:`Method.requires_fit`, :meth:`Method.untrained_reason`, :attr:`Method.fit_command`.

Where the weights come from is part of the contract: :meth:`Method.untrained_reason` says, from
facts (a checkpoint given or not, what it holds, ``requires_fit``), why a method would score with
random or unfitted weights. The runner refuses such a method (:class:`UntrainedMethodError`) unless
told to score it anyway (``--allow-untrained``), and then marks its records ``untrained``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable

import torch

from oodbench.errors import OodbenchError
from oodbench.preprocess import Normalisation
from oodbench.registry import PluginValidationError, Registry
from oodbench.segmenters.base import CITYSCAPES_LABEL_IDS, PretrainedCfg

__all__ = ["Method", "SegmenterMethod", "PostHocMethod", "FitBatch", "METHODS", "UntrainedMethodError", "build",
           "register_method",
           "label_space_of"]


@dataclass
class FitBatch:
    """One batch of the training split, as :meth:`Method.fit` receives it.

    Attributes:
        image: normalised images ``[B,3,H,W]`` float32 (the method's own :meth:`Method.preprocessing`,
            exactly as ``oodbench run`` normalises), on the method's device.
        labels: closed-set train ids ``[B,H,W]`` int64 (Cityscapes train ids 0..18, 255 = ignore), on
            the same device; a method may ignore them (e.g. SML uses the predicted classes).
        frame_ids: where each image came from (for logs).
    """

    image: torch.Tensor
    labels: torch.Tensor | None
    frame_ids: tuple[str, ...] = ()


_UNSET = object()


def label_space_of(cfg: PretrainedCfg | None) -> str | None:
    """``"cityscapes19"`` when ``cfg``'s output channels are the 19 Cityscapes train ids, else ``None``."""
    if cfg is not None and tuple(cfg.label_ids) == CITYSCAPES_LABEL_IDS:
        return "cityscapes19"
    return None


class UntrainedMethodError(OodbenchError, ValueError):
    """The method's weights come from nowhere (random or unfitted); the message names what is missing."""


class Method:
    """Base class of every method plugin: the contract the runner relies on.

    Score convention: ``predict(x)`` returns ``(anomaly [B,H,W], logits [B,C,H,W])`` at the input
    resolution, **higher anomaly = more anomalous**; ``logits.argmax(1)`` is the closed-set
    prediction in :attr:`semantic_label_space`.

    Class attributes:
        name: registry name (``--method`` value).
        paper: citation shown in ``oodbench list methods`` and stored in results.
        requires_fit: ``True`` when the method must be fitted before it can score; read by the
            default :meth:`untrained_reason`, enforced by ``oodbench run``. An instance sets it
            ``False`` once its state is fitted or loaded (:meth:`load_fitted`).
        fit_command: the command that fits this method, named by the refusal to run it unfitted.
        pretrained_cfg: the weights' :class:`~oodbench.segmenters.base.PretrainedCfg` (normalisation,
            classes), or ``None``; instances set it from their network.

    Fitting (``oodbench fit``): :meth:`fit` consumes :class:`FitBatch` batches, then
    :meth:`state_dict_fitted` returns the fitted tensors, saved with safetensors next to their
    provenance; ``oodbench run --state FILE`` calls :meth:`load_fitted` on a fresh instance. The
    state file's sha256 (:attr:`fitted_state_sha256`) enters the prediction fingerprint and the
    result record, so predictions of one fitted state are never reused for another.

    Preprocessing: ``x = (rgb / 255 - mean) / std`` from :meth:`preprocessing`;
    :func:`oodbench.preprocess.normalise` applies exactly what ``run`` applies. Prediction
    fingerprint (resume reuses only the same configuration): registry name, class, :meth:`hparams`,
    :attr:`checkpoint_sha256`, :attr:`fitted_state_sha256`, :attr:`semantic_label_space`, untrained.
    Third-party methods register through the ``oodbench.methods`` entry-point group; records name
    the providing distribution and version. README "Writing a method plugin" and
    ``examples/oodbench-example-plugin`` show a complete package.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    requires_fit: ClassVar[bool] = False
    fit_command: ClassVar[str] = "oodbench fit --method {name} ... --out STATE, then oodbench run --state STATE"
    pretrained_cfg: PretrainedCfg | None = None
    #: sha256 of the fitted-state file loaded by ``oodbench run --state`` (set by the loader)
    fitted_state_sha256: str | None = None
    #: the validation split a checkpoint was selected on (its numbers there are not held-out), or None
    selected_on: str | None = None
    #: the registry name this instance was built under (set by :func:`build`; an entry point may
    #: register a class under another name than its ``name``)
    registry_name: str | None = None

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    # -- contract ---------------------------------------------------------------------------
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(anomaly [B,H,W], logits [B,C,H,W])`` for a normalised batch."""
        raise NotImplementedError

    def fit(self, batches: Iterable[FitBatch]) -> "Method":
        """Fit the method's statistics on batches of the training split; a no-op for training-free methods.

        Fitted methods override it, consume every batch (streaming: never all pixels at once), set
        ``self.requires_fit = False`` and return ``self``.
        """
        return self

    def state_dict_fitted(self) -> dict[str, torch.Tensor]:
        """The fitted tensors (what ``oodbench fit`` saves); ``{}`` for training-free methods."""
        return {}

    def load_fitted(self, state: dict[str, torch.Tensor]) -> "Method":
        """Restore :meth:`state_dict_fitted`'s tensors (refuse missing keys / shapes with ``ValueError``)."""
        if state:
            raise ValueError(f"method {self.name!r} has no fitted state, got keys {sorted(state)}")
        return self

    def hparams(self) -> dict[str, Any]:
        """Hyperparameters recorded with every result (and part of the prediction fingerprint)."""
        return {}

    def preprocessing(self) -> Normalisation:
        """How uint8 RGB images become ``x``: :attr:`pretrained_cfg`'s mean/std, ImageNet's without one."""
        cfg = self.pretrained_cfg
        return Normalisation() if cfg is None else Normalisation(tuple(cfg.mean), tuple(cfg.std))

    @property
    def semantic_label_space(self) -> str | None:
        """Label space of ``logits.argmax(1)``: what an instance declared (assign it), else from
        :attr:`pretrained_cfg`."""
        declared = self.__dict__.get("_semantic_label_space", _UNSET)
        return label_space_of(self.pretrained_cfg) if declared is _UNSET else declared

    @semantic_label_space.setter
    def semantic_label_space(self, value: str | None) -> None:
        self.__dict__["_semantic_label_space"] = value

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
        default reads :attr:`requires_fit` and names :attr:`fit_command`; methods whose weights come
        from a checkpoint override it.
        """
        if self.requires_fit:
            name = self.name or type(self).__name__
            return f"method {name!r} must be fitted before it can score: {self.fit_command.format(name=name)}"
        return None

    @classmethod
    def accepted_params(cls) -> list[str]:
        """Keyword arguments the constructor takes (``--param`` names), following ``**kwargs`` up the MRO."""
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = list(inspect.signature(init).parameters.values())[1:]
            names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                      and p.name not in names]
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break
        return names

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({hp})"


class SegmenterMethod(Method):
    """A method on top of a closed-set segmenter (built from the registry or passed in).

    Args:
        segmenter: registered segmenter name (see ``oodbench list segmenters``) or an
            ``nn.Module`` mapping ``[B,3,H,W] -> [B,C,H,W]``.
        checkpoint: weights for the segmenter (any format :mod:`oodbench.segmenters` loads).
        pretrained_cfg: the data contract of a module passed in (normalisation, classes); a
            registered segmenter brings its own. Without either, ImageNet normalisation and no
            label space (the split's own ids) are assumed -- never guessed from the class count.
    """

    def __init__(
        self,
        segmenter: str | torch.nn.Module = "deeplabv3plus_wrn38",
        checkpoint: str | None = None,
        pretrained_cfg: PretrainedCfg | None = None,
    ) -> None:
        super().__init__()
        from oodbench.segmenters.base import DeepLabV3PlusBase

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
        if pretrained_cfg is None and isinstance(self.model, DeepLabV3PlusBase):
            pretrained_cfg = self.model.pretrained_cfg
        self.pretrained_cfg = pretrained_cfg

    def to(self, device: str | torch.device) -> "SegmenterMethod":
        super().to(device)
        self.model.to(self.device)
        return self

    def hparams(self) -> dict[str, Any]:
        return {"segmenter": self.segmenter_name}

    def untrained_reason(self) -> str | None:
        """Random weights when a registered segmenter was built without a checkpoint.

        A module passed in by the caller counts as trained: its weights are the caller's.
        """
        if self.weights_origin is None:
            return (f"segmenter {self.segmenter_name!r} would score with random weights: no --checkpoint "
                    "given; pass --checkpoint FILE with its weights")
        return super().untrained_reason()

    @property
    def checkpoint_sha256(self) -> str | None:
        from oodbench.segmenters.base import DeepLabV3PlusBase

        return self.model.checkpoint_sha256 if isinstance(self.model, DeepLabV3PlusBase) else None


class PostHocMethod(SegmenterMethod):
    """A score function on the logits of a closed-set segmenter (arguments: :class:`SegmenterMethod`)."""

    @staticmethod
    def score(logits: torch.Tensor) -> torch.Tensor:
        """Map logits ``[B,C,H,W]`` to an anomaly score ``[B,H,W]`` (higher = more anomalous)."""
        raise NotImplementedError

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return self.score(logits.float()), logits

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
    method = METHODS.build(name, **kwargs)
    method.registry_name = name
    return method
