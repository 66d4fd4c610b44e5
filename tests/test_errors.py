"""One exception family: what the CLI prints as one line (exit 2) and what stays a traceback."""
from __future__ import annotations

import argparse

import pytest

from oodbench import cli
from oodbench.errors import CheckpointError, OodbenchError, UsageError


def _family() -> list[type]:
    from oodbench.atomic import DiskFullError
    from oodbench.contracts import ContractError
    from oodbench.datasets import DataLayoutError
    from oodbench.datasets._archive import UnsafeArchiveError
    from oodbench.datasets.download import ChecksumError, DigestChangedError, DownloadError, ManualDownloadRequired
    from oodbench.datasets.synth.generate import SynthExistsError
    from oodbench.evaluate import LabelsHiddenError, MissingPredictionsError
    from oodbench.fishyscapes_submission import ContainerContractError
    from oodbench.methods.base import UntrainedMethodError
    from oodbench.metrics import MetricInputError, StateError
    from oodbench.registry import PluginValidationError, RegistryError
    from oodbench.results import RecordError
    from oodbench.runner import StaleRunError
    from oodbench.segmenters.recipe import ManifestError
    from oodbench.store import MixedPredictionsError, PredictionError
    from oodbench.submit import SubmissionError
    from oodbench.training.resume import ResumeError

    return [DiskFullError, ContractError, DataLayoutError, UnsafeArchiveError, ChecksumError, DigestChangedError,
            DownloadError, ManualDownloadRequired, SynthExistsError, LabelsHiddenError, MissingPredictionsError,
            ContainerContractError, UntrainedMethodError, MetricInputError, StateError, PluginValidationError,
            RegistryError, RecordError, StaleRunError, ManifestError, MixedPredictionsError, PredictionError,
            SubmissionError, ResumeError, CheckpointError, UsageError, cli.CLIError]


def test_every_user_error_is_in_the_family():
    assert all(issubclass(cls, OodbenchError) for cls in _family())


def test_one_checkpoint_error_and_one_contract_family():
    from oodbench.contracts import ContractError
    from oodbench.metrics import MetricInputError
    from oodbench.segmenters import CheckpointError as SegmenterCheckpointError
    from oodbench.training import CheckpointError as TrainingCheckpointError

    assert SegmenterCheckpointError is TrainingCheckpointError is CheckpointError
    assert issubclass(MetricInputError, ContractError)
    assert issubclass(UsageError, ValueError) and issubclass(CheckpointError, ValueError)  # old bases kept


def _main_raising(monkeypatch, exc: BaseException) -> int:
    def command(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(cli, "cmd_leaderboard", command)
    return cli.main(["leaderboard"])


@pytest.mark.parametrize("exc", [UsageError("--x: bad value 3"), OSError(2, "No such file", "/no/such")])
def test_user_errors_are_one_line_and_status_2(monkeypatch, capsys, exc):
    assert _main_raising(monkeypatch, exc) == 2
    err = capsys.readouterr().err
    assert err == f"oodbench: error: {exc}\n"


@pytest.mark.parametrize("exc", [ZeroDivisionError("division by zero"), ValueError("a bug"), KeyError("k")])
def test_bugs_keep_their_traceback(monkeypatch, exc):
    with pytest.raises(type(exc)):
        _main_raising(monkeypatch, exc)


def test_torchrun_entry_points_follow_the_same_rule(capsys):
    from oodbench.training.entry import run_entry_point

    def fail(exc):
        def func(args):
            raise exc
        return argparse.Namespace(func=func)

    assert run_entry_point(fail(CheckpointError("/x/last.pth: not a checkpoint")), "prog") == 2
    assert capsys.readouterr().err == "prog: error: /x/last.pth: not a checkpoint\n"
    with pytest.raises(ZeroDivisionError):
        run_entry_point(fail(ZeroDivisionError()), "prog")
