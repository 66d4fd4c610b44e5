"""Safe, strict checkpoint loading for segmenters and RPL (and saving in the same layouts).

(Named ``weights``: it reads and writes released model weights; training checkpoints with optimizer
and RNG state are :mod:`oodbench.training.checkpointing`.)

Reading (:func:`read_checkpoint`):

* ``*.safetensors`` through :func:`safetensors.torch.load_file`;
* anything else through ``torch.load(..., weights_only=True)`` ONLY. A file whose pickle needs any
  other global (``os.system``, a custom class, ...) is refused with :class:`CheckpointError`; the
  only additions to torch's allowlist are NumPy scalars/dtypes, which the official training loops
  store next to the weights (e.g. NVIDIA's ``mean_iu``, VainF's ``best_score``);
* the file's sha256 is computed while reading.

Unwrapping (:func:`extract_state_dict`): ``model`` -> ``model_state`` -> ``state_dict`` (the RPL
order, ``yyliu01/RPL:rpl_corocl.code/utils/pyt_utils.py`` ``load_model``), whichever exist; a
leading ``module.`` (DataParallel/DDP) is stripped from every key; ``criterion.*`` entries (the
loss weight NVIDIA's ``cityscapes_best.pth`` carries) are dropped.

Loading (:func:`load_checkpoint`): keys and shapes are compared with the model first; with
``strict=True`` any missing, unexpected or shape-mismatched key raises :class:`CheckpointError`
naming the file and listing the first 20 keys of each kind with their counts. The sha256 is
stored on the model as ``checkpoint_sha256``.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from oodbench.errors import CheckpointError

__all__ = [
    "CheckpointError",
    "LoadReport",
    "WRAPPER_KEYS",
    "file_sha256",
    "read_checkpoint",
    "extract_state_dict",
    "compare_state_dict",
    "load_state_dict_checked",
    "load_checkpoint",
    "save_checkpoint",
]

#: Wrapper keys unwrapped in this order (RPL's ``load_model``); each is optional.
WRAPPER_KEYS = ("model", "model_state", "state_dict")
_SHOW = 20


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` found and did.

    Attributes:
        source: file path (or ``"<in-memory ...>"``).
        sha256: sha256 of the file, ``None`` for in-memory checkpoints.
        wrappers: wrapper keys that were unwrapped, outermost first.
        stripped_prefix: number of keys whose leading ``module.`` was stripped.
        dropped: checkpoint keys dropped as non-model entries (``criterion.*``).
        missing: model keys absent from the checkpoint.
        unexpected: checkpoint keys the model does not have.
        mismatched: ``(key, checkpoint_shape, model_shape)`` for shape mismatches.
        loaded: number of tensors copied into the model.
        training_seed: the ``seed`` of the training config stored next to the weights (checkpoints
            written by ``oodbench train`` / ``train-segmenter``), ``None`` when there is none.
    """

    source: str
    sha256: str | None = None
    wrappers: list[str] = field(default_factory=list)
    stripped_prefix: int = 0
    dropped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    loaded: int = 0
    training_seed: int | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, model_name: str = "model") -> str:
        """Readable multi-line report (first 20 keys of each kind, with counts)."""
        lines = [
            f"checkpoint {self.source} does not match {model_name}: {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} shape-mismatched keys"
        ]

        def block(title: str, items: Sequence[str]) -> None:
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines.extend(f"    {s}" for s in items[:_SHOW])
                if len(items) > _SHOW:
                    lines.append(f"    ... and {len(items) - _SHOW} more")

        block("missing in checkpoint", self.missing)
        block("unexpected in checkpoint", self.unexpected)
        block("shape mismatch (checkpoint vs model)",
              [f"{k}: {list(a)} vs {list(b)}" for k, a, b in self.mismatched])
        if self.wrappers or self.stripped_prefix or self.dropped:
            lines.append(
                f"  (unwrapped {self.wrappers or 'nothing'}; stripped 'module.' from "
                f"{self.stripped_prefix} keys; dropped {self.dropped or 'nothing'})"
            )
        return "\n".join(lines)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (streamed)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _numpy_safe_globals() -> list[Any]:
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    allowed: list[Any] = [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
                          np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType", "Int32DType")
                    if hasattr(dtypes, n)]
    return allowed


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    sha256: bool = True) -> tuple[Any, str | None]:
    """Load a checkpoint file safely; return ``(object, sha256)`` (``None`` when ``sha256=False``).

    The one safe reader of oodbench (released weights, training checkpoints, RPL files): safetensors,
    or ``torch.load(weights_only=True)`` with only the numpy scalar types allowed beyond it.

    Raises:
        CheckpointError: the file is missing, not a checkpoint, or needs unsafe unpickling.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    sha = file_sha256(path) if sha256 else None
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(map_location)), sha
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise CheckpointError(f"checkpoint {path}: not a valid safetensors file: {exc}") from exc
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        unsafe = [ln.strip() for ln in first if "GLOBAL" in ln or "Unsupported" in ln][:3]
        raise CheckpointError(
            f"checkpoint {path} refused: its pickle needs objects that weights-only loading does not "
            f"allow ({'; '.join(unsafe) or first[0] if first else 'unknown'}). oodbench never unpickles "
            "arbitrary code; re-save the weights as a plain state dict or as .safetensors from a "
            "trusted environment."
        ) from exc
    except Exception as exc:  # corrupt or foreign files surface as many exception types
        raise CheckpointError(
            f"checkpoint {path}: cannot be read as a torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    return obj, sha


def stored_training_seed(obj: Any) -> int | None:
    """The training seed a checkpoint records (``obj["config"]["seed"]``, as the oodbench trainers
    write it), or ``None``."""
    config = obj.get("config") if isinstance(obj, Mapping) else None
    seed = config.get("seed") if isinstance(config, Mapping) else None
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None


def extract_state_dict(obj: Any, source: str = "<in-memory>") -> tuple["OrderedDict[str, torch.Tensor]", LoadReport]:
    """Unwrap, strip ``module.`` and drop ``criterion.*``; return the state dict and a report."""
    report = LoadReport(source=source, training_seed=stored_training_seed(obj))
    for key in WRAPPER_KEYS:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            report.wrappers.append(key)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {source}: expected a state dict (mapping), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise CheckpointError(
            f"checkpoint {source}: not a state dict of tensors; offending entries {bad[:_SHOW]!r} "
            f"(top-level keys: {list(obj)[:_SHOW]})"
        )
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for k, v in obj.items():
        if k.startswith("module."):
            k = k[len("module."):]
            report.stripped_prefix += 1
        if k.startswith("criterion.") or ".criterion." in k:
            report.dropped.append(k)
            continue
        out[k] = v
    return out, report


def compare_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], report: LoadReport,
                       ignore_missing: Sequence[str] = ()) -> LoadReport:
    """Fill ``report.missing/unexpected/mismatched`` (model keys starting with ``ignore_missing`` are not expected)."""
    expected = {k: v for k, v in model.state_dict().items() if not any(k.startswith(p) for p in ignore_missing)}
    report.missing = [k for k in expected if k not in state_dict]
    report.unexpected = [k for k in state_dict if k not in expected]
    report.mismatched = [
        (k, tuple(v.shape), tuple(expected[k].shape))
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    return report


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], report: LoadReport,
                            strict: bool = True, ignore_missing: Sequence[str] = (), assign: bool = False) -> LoadReport:
    """Compare, then copy ``state_dict`` into ``model``; raise :class:`CheckpointError` when strict and unequal.

    ``assign=True`` replaces the model's tensors instead of copying into them (use it for a model
    built on the ``meta`` device); values are cast to the model's dtypes first.
    """
    compare_state_dict(model, state_dict, report, ignore_missing)
    name = type(model).__name__
    if report.mismatched or (strict and not report.ok):
        raise CheckpointError(report.describe(name))
    own = model.state_dict()
    usable = {k: v.to(dtype=own[k].dtype) if v.dtype != own[k].dtype else v
              for k, v in state_dict.items() if k in own}
    if assign:
        usable = {k: v.contiguous() for k, v in usable.items()}
    result = model.load_state_dict(usable, strict=False, assign=assign)
    leftover = [k for k in result.missing_keys if not any(k.startswith(p) for p in ignore_missing)]
    if strict and (leftover or result.unexpected_keys):  # pragma: no cover - compare_state_dict already checked
        raise CheckpointError(report.describe(name))
    if assign:
        still_meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta
                      and not any(n.startswith(p) for p in ignore_missing)]
        if still_meta:
            raise CheckpointError(f"checkpoint {report.source}: {len(still_meta)} tensors left uninitialised: {still_meta[:_SHOW]}")
    report.loaded = len(usable)
    return report


def load_checkpoint(model: nn.Module, path: str | os.PathLike | Mapping[str, Any], strict: bool = True,
                    ignore_missing: Sequence[str] = (), assign: bool = False) -> LoadReport:
    """Load a checkpoint (file path or already-loaded object) into ``model``.

    Args:
        model: target module (any segmenter, or an RPL network).
        path: ``.pth``/``.pt``/``.tar`` (weights-only torch pickle), ``.safetensors``, or a mapping
            (an in-memory checkpoint, e.g. the recipe weights).
        strict: raise on any missing/unexpected key (shape mismatches always raise).
        ignore_missing: model-key prefixes the checkpoint is not expected to contain.
        assign: replace instead of copy (for models built on the meta device).

    Returns:
        the :class:`LoadReport`; ``model.checkpoint_sha256`` is set to the file's sha256.
    """
    if isinstance(path, Mapping):
        obj, sha, source = path, None, f"<in-memory {type(path).__name__}>"
    else:
        obj, sha = read_checkpoint(path)
        source = str(path)
    state_dict, report = extract_state_dict(obj, source)
    report.sha256 = sha
    load_state_dict_checked(model, state_dict, report, strict=strict, ignore_missing=ignore_missing, assign=assign)
    try:
        model.checkpoint_sha256 = sha
        model.training_seed = report.training_seed
    except AttributeError:  # pragma: no cover - exotic modules with slots
        pass
    return report


def save_checkpoint(state: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike,
                    wrapper_key: str | None = None, **extra: Any) -> Path:
    """Write a state dict atomically: ``.safetensors`` by extension, else ``torch.save``.

    ``wrapper_key`` (e.g. ``"model"`` for RPL, ``"state_dict"`` for NVIDIA) wraps the weights as
    the official files do, with ``extra`` siblings (ints, floats, strings only, so the file stays
    weights-only loadable). safetensors files hold the flat state dict; ``extra`` becomes string
    metadata.
    """
    from oodbench.atomic import atomic_path

    sd = state.state_dict() if isinstance(state, nn.Module) else state
    sd = OrderedDict((k, v.detach().cpu().contiguous()) for k, v in sd.items())
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(sd, str(tmp), metadata={k: str(v) for k, v in extra.items()})
        else:
            torch.save({wrapper_key: sd, **extra} if wrapper_key else sd, tmp)
    return path
