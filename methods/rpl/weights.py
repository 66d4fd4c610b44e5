"""Loading and saving RPL checkpoints (official ``rev3.pth``/``res.pth`` layout, and ours).

(Named ``weights`` like :mod:`oodbench.segmenters.weights`, whose safe reader it uses; resumable
training state is :mod:`oodbench.training.checkpointing`.)

Two kinds of file are accepted (both through the safe reader of
:mod:`oodbench.segmenters.weights`: ``torch.load(weights_only=True)`` or safetensors):

* an **RPL checkpoint**: ``{'model': state_dict}`` with ``branch1.``-prefixed keys including
  ``branch1.residual_block.*`` (what the official engine saves, ``engine.py`` ``save_checkpoint``;
  and what :func:`save_rpl_checkpoint` writes). Loaded strictly into :class:`RPLNet`. Whether the
  CoroCL projector is present (``rev3.pth``) or not (``res.pth``) is read from the keys;
* a **closed-set segmenter checkpoint** (NVIDIA ``{'state_dict'}`` with ``module.`` and the
  criterion key, VainF ``{'model_state'}``, plain, safetensors): loaded strictly into ``branch1``
  (the residual block excepted), then the residual block is initialised from it
  (:meth:`RPLNet.init_from_segmenter`), as the official ``load_model`` does (§2.3 steps 1-6).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from oodbench.segmenters.weights import (
    CheckpointError,
    LoadReport,
    extract_state_dict,
    load_state_dict_checked,
    read_checkpoint,
    save_checkpoint,
)

from .model import RPLNet

__all__ = [
    "RESIDUAL_PREFIX",
    "read_rpl_state",
    "is_rpl_state",
    "has_projector",
    "projector_spec",
    "TRAINING_FIELDS",
    "read_rpl_file",
    "describe_missing_rpl",
    "load_rpl_state",
    "load_rpl_checkpoint",
    "save_rpl_checkpoint",
]

RESIDUAL_PREFIX = "branch1.residual_block."


#: training-config fields an ``oodbench train`` checkpoint records that the ``rpl`` method copies
#: into its hparams (so every result record names the recipe and the ablation it comes from)
TRAINING_FIELDS = ("recipe", "epochs", "reference_quirks", "amp", "corocl_weight", "anchors", "contrast",
                   "projector", "embed_dim", "extra_data")


def read_rpl_file(path: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], LoadReport, dict[str, Any]]:
    """:func:`read_rpl_state` plus the file's metadata: ``selected_on`` / ``selection`` (a
    ``best-*.pth`` of :mod:`oodbench.training.selection`), ``iteration`` and the training ``config``
    fields of :data:`TRAINING_FIELDS` (absent from official and hand-made files)."""
    if isinstance(path, Mapping):
        obj: Any = path
        sd, report = extract_state_dict(path, f"<in-memory {type(path).__name__}>")
    else:
        obj, sha = read_checkpoint(path)
        sd, report = extract_state_dict(obj, str(path))
        report.sha256 = sha
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for key in ("selected_on", "selection", "iteration"):
            if key in obj:
                meta[key] = obj[key]
        config = obj.get("config")
        if isinstance(config, Mapping):
            meta["train"] = {k: config[k] for k in TRAINING_FIELDS if k in config}
    return sd, report, meta


def read_rpl_state(path: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Read (safely), unwrap and clean a checkpoint; returns the state dict and a report with the sha256."""
    sd, report, _meta = read_rpl_file(path)
    return sd, report


def is_rpl_state(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when the state dict holds an RPL residual block (``branch1.residual_block.*``)."""
    return any(k.startswith(RESIDUAL_PREFIX) for k in state_dict)


def has_projector(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when the CoroCL projector (``residual_block.proj_head``) is present (``rev3.pth``)."""
    return any(k.startswith(RESIDUAL_PREFIX + "proj_head.") for k in state_dict)


def projector_spec(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, int] | None:
    """``(kind, R)`` of the CoroCL projector stored in ``state_dict`` (``None``: no projector).

    The kind follows from the keys (:class:`~.model.ProjectionHead`): ``proj.3`` -> ``mlp-bn``,
    ``proj.2`` -> ``mlp``, else ``linear``; R is the last conv's output channels.
    """
    prefix = RESIDUAL_PREFIX + "proj_head.proj."
    layers = {k[len(prefix):].split(".", 1)[0] for k in state_dict if k.startswith(prefix)}
    if not layers:
        return None
    kind, last = ("mlp-bn", "3") if "3" in layers else ("mlp", "2") if "2" in layers else ("linear", "0")
    return kind, int(state_dict[f"{prefix}{last}.weight"].shape[0])


def describe_missing_rpl(state_dict: Mapping[str, torch.Tensor], source: str) -> str | None:
    """What a checkpoint lacks to be an RPL checkpoint (one line), or ``None`` when it is one.

    A closed-set file loads into RPL (the residual block is then copied from the segmenter's ASPP,
    §2.3), but that residual block is untrained: its anomaly scores are not RPL's.
    """
    if is_rpl_state(state_dict):
        return None
    return (f"checkpoint {source} holds segmenter weights only ({len(state_dict)} tensors, no "
            f"'{RESIDUAL_PREFIX}*' keys): RPL's residual block (atten_aspp, bot_atten_aspp, "
            "atten_aspp_final; proj_head for CoroCL) would be untrained; pass --checkpoint with an RPL checkpoint "
            "(rev3.pth / res.pth, or one written by `oodbench train`)")


def load_rpl_state(net: RPLNet, state_dict: Mapping[str, torch.Tensor], report: LoadReport,
                   strict: bool = True, assign: bool = False) -> LoadReport:
    """Load an RPL or a closed-set state dict into ``net`` (see module docstring)."""
    if is_rpl_state(state_dict):
        load_state_dict_checked(net, state_dict, report, strict=strict, assign=assign)
    else:
        if any(k.startswith("branch1.") for k in state_dict):
            # an RPL-layout file without the residual block: closed-set part only
            state_dict = {k[len("branch1."):]: v for k, v in state_dict.items()}
        load_state_dict_checked(net.branch1, state_dict, report, strict=strict,
                                ignore_missing=("residual_block.",), assign=assign)
        net.init_from_segmenter()
    net.checkpoint_sha256 = report.sha256
    net.branch1.checkpoint_sha256 = report.sha256
    return report


def load_rpl_checkpoint(net: RPLNet, path: str | os.PathLike | Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> LoadReport:
    """Read ``path`` and :func:`load_rpl_state` it into ``net``."""
    sd, report = read_rpl_state(path)
    if is_rpl_state(sd) and has_projector(sd) != net.projector:
        want = "with" if has_projector(sd) else "without"
        raise CheckpointError(
            f"checkpoint {report.source} is an RPL checkpoint {want} the CoroCL projector "
            f"(residual_block.proj_head), but the network was built with projector={net.projector}"
        )
    return load_rpl_state(net, sd, report, strict=strict, assign=assign)


def save_rpl_checkpoint(net: RPLNet, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``{'model': net.state_dict(), **extra}`` (the official layout; ``.safetensors`` also works)."""
    if not isinstance(net, RPLNet):
        raise TypeError(f"save_rpl_checkpoint needs an RPLNet, got {type(net).__name__}")
    return save_checkpoint(net, path, wrapper_key="model", **extra)
