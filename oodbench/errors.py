"""The one exception family of oodbench: errors that are the user's to fix.

Every error oodbench raises on purpose -- a bad flag or parameter, data not in the expected
layout, a checkpoint that does not fit, predictions or records that break the contract -- derives
from :class:`OodbenchError`. Its message is one line naming the file, flag or frame and what is
wrong. ``oodbench`` (:func:`oodbench.cli.main`) and the torchrun entry points
(:mod:`oodbench.training.entry`) print exactly this family as ``oodbench: error: <message>`` and
exit with status 2; any other exception is a bug and keeps its traceback.

Each class also keeps the builtin base it had before the family existed (``ValueError``,
``OSError``, ``KeyError``, ...), so ``except ValueError`` in callers still works.

The family, by where it is defined:

* here: :class:`UsageError` (a value the user chose), :class:`CheckpointError` (a weights or
  training-state file), and its subclass ``oodbench.training.resume.ResumeError``;
* :mod:`oodbench.contracts`: ``ContractError`` (scores/labels break the 0/1/255 contract), with
  ``oodbench.metrics.MetricInputError``, ``oodbench.store.PredictionError`` (and
  ``MixedPredictionsError``, ``evaluate.MissingPredictionsError``, ``submit.SubmissionError``)
  under it;
* data: ``oodbench.datasets.DataLayoutError``, ``datasets.synth.generate.SynthExistsError``,
  ``datasets._archive.UnsafeArchiveError``, ``datasets.download.DownloadError`` (with
  ``ChecksumError``, ``DigestChangedError``), ``datasets.download.ManualDownloadRequired``;
* the rest: ``registry.RegistryError``, ``registry.PluginValidationError``,
  ``results.RecordError``, ``runner.StaleRunError``, ``evaluate.LabelsHiddenError``,
  ``metrics.StateError``, ``segmenters.recipe.ManifestError``, ``atomic.DiskFullError``,
  ``methods.base.UntrainedMethodError``, ``cli_support.CLIError``,
  ``fishyscapes.ContainerContractError``, ``fitting.StateError``.
"""
from __future__ import annotations

__all__ = ["CheckpointError", "OodbenchError", "UsageError"]


class OodbenchError(Exception):
    """Base of every error that is the user's to fix (one-line message, CLI exit status 2)."""


class UsageError(OodbenchError, ValueError):
    """A value the user chose -- a flag, a method or segmenter parameter, a config field -- is not valid.

    The message names the flag or parameter, the value given and what is accepted.
    """


class CheckpointError(OodbenchError, ValueError):
    """A checkpoint cannot be read or does not fit the model (the message names the file).

    One class for released segmenter weights (:mod:`oodbench.segmenters`), RPL weights and
    training checkpoints (:mod:`oodbench.training`).
    """
